//! The web chat (`web/`, and the TypeScript SDK's browser bundle), embedded in the binary so
//! that one file is the whole server: `GET /` and the files it loads.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use super::Resp;

/// (path, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("../../web/index.html")),
    ("/chat.js", "text/javascript; charset=utf-8", include_bytes!("../../web/chat.js")),
    ("/chat.css", "text/css; charset=utf-8", include_bytes!("../../web/chat.css")),
    ("/imclient.js", "text/javascript; charset=utf-8", include_bytes!("../../sdk/ts/dist/imclient.js")),
];

/// The embedded file at `path`, if any.
pub fn file(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = if path == "/index.html" { "/" } else { path };
    FILES.iter().find(|(p, _, _)| *p == path).map(|(_, t, b)| (*t, *b))
}

pub fn serve(path: &str) -> Resp {
    let (content_type, body) = file(path).expect("checked by the caller");
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        // The page talks to its own server only.
        .header("content-security-policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:")
        .body(Full::new(Bytes::from_static(body)))
        .expect("a valid response")
}
