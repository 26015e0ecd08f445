//! A backend for the callback tests: a real HTTP/1.1 server (hyper) on 127.0.0.1:0 that
//! records every request and answers as the test says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::Value;

/// One request the backend got.
#[derive(Clone)]
pub struct Seen {
    pub query: String,
    pub timestamp: String,
    pub signature: String,
    pub raw: Bytes,
    pub body: Value,
}

/// How the backend answers a request: after a delay, a status and a body.
type Answer = dyn Fn(&Value) -> (Duration, u16, String) + Send + Sync;

pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub async fn backend(answer: impl Fn(&Value) -> (Duration, u16, String) + Send + Sync + 'static) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let answer: Arc<Answer> = Arc::new(answer);
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (log, answer) = (log.clone(), answer.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let raw = body.collect().await?.to_bytes();
                        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                        let header =
                            |k: &str| parts.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        let (delay, status, text) = answer(&body);
                        log.lock().push(Seen {
                            query: parts.uri.query().unwrap_or("").to_owned(),
                            timestamp: header("x-im-timestamp"),
                            signature: header("x-im-signature"),
                            raw,
                            body,
                        });
                        tokio::time::sleep(delay).await;
                        let resp =
                            hyper::Response::builder().status(status).body(Full::new(Bytes::from(text))).unwrap();
                        Ok::<_, hyper::Error>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
    Backend { addr, seen }
}
