//! `imload hook-backend`: a tiny app backend for callback measurements. It answers every
//! callback `{"ActionStatus":"OK","ErrorCode":0}` (allow; 200 for after-hooks), optionally
//! after a delay, and prints how many it answered each second. It checks no signature: it
//! measures the server's side of a hook round trip, not a backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

pub async fn run(listen: &str, delay_ms: u64) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("hook backend on http://{}/", listener.local_addr()?);
    let answered = Arc::new(AtomicU64::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = count.load(Ordering::Relaxed);
            if now != last {
                println!("{} callbacks/s ({now} in all)", now - last);
            }
            last = now;
        }
    });
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let answered = answered.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let answered = answered.clone();
                async move {
                    req.into_body().collect().await?;
                    if delay_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                    let body = Full::new(Bytes::from_static(br#"{"ActionStatus":"OK","ErrorCode":0}"#));
                    Ok::<_, hyper::Error>(hyper::Response::new(body))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
        });
    }
}
