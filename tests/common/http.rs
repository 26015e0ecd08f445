//! An HTTP client for the server's HTTP listener (hyper's), and the calls tests make with it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{ticket_for, TestServer, APP, SECRET};

pub type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The query a Tencent-style caller signs in with.
pub fn admin_query() -> String {
    format!("sdkappid={APP}&identifier=admin&usersig={}&random=7", ticket_for(APP, "admin", SECRET))
}

pub async fn request(
    c: &Http,
    s: &TestServer,
    method: &str,
    path_and_query: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let uri = format!("http://{}{path_and_query}", s.http_addr.as_ref().unwrap());
    let mut b = hyper::Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    let call = async {
        let resp = c.request(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    };
    let (status, raw) = tokio::time::timeout(Duration::from_secs(20), call).await.expect("an answer within 20 s");
    let v = serde_json::from_slice(&raw).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into()));
    (status, v)
}

/// `POST path` as the app's administrator, with `body`.
pub async fn post(c: &Http, s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    request(c, s, "POST", &format!("{path}?{}", admin_query()), None, &body.to_string()).await
}

pub async fn ok(c: &Http, s: &TestServer, path: &str, body: Value) -> Value {
    let (status, v) = post(c, s, path, body).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// `GET path`: the status and the body as text.
pub async fn get(c: &Http, s: &TestServer, path: &str) -> (u16, String) {
    let uri = format!("http://{}{path}", s.http_addr.as_ref().unwrap());
    let req = hyper::Request::builder().method("GET").uri(uri).body(Full::new(Bytes::new())).unwrap();
    let call = async {
        let resp = c.request(req).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    };
    let (status, raw) = tokio::time::timeout(Duration::from_secs(20), call).await.expect("an answer within 20 s");
    (status, String::from_utf8_lossy(&raw).into_owned())
}
