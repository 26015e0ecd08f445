//! One HTTP POST to a backend, bounded in time and in answer size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest answer read from a backend.
const MAX_ANSWER: usize = 64 * 1024;

/// A pooled keep-alive client (connections are reused between calls to the same backend).
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub fn client() -> Client {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(2)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(http)
}

/// POSTs `body` (JSON) with `headers`; the answer's status and body, or why there is none.
pub async fn post(
    client: &Client,
    uri: Uri,
    headers: &[(&'static str, String)],
    body: Bytes,
    timeout: Duration,
) -> Result<(u16, Bytes), &'static str> {
    let mut req = hyper::Request::post(uri).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let req = req.body(Full::new(body)).map_err(|_| "building the request")?;
    let call = async {
        let resp = client.request(req).await.map_err(|_| "the backend is unreachable")?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|_| "the backend's answer is cut or too large")?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, call).await.unwrap_or(Err("the backend did not answer in time"))
}
