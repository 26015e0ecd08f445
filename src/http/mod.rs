//! The HTTP listener (`http_listen`, HTTPS where `[tls]` says): the JSON admin API (`POST
//! /v1/<area>/<operation>`, see `routes`), `GET /healthz`, `GET /readyz`, `GET /metrics`,
//! WebSocket sessions at `GET /ws` (`ws`), and the web chat at `GET /` (`web`). Served with hyper's HTTP/1.1 server, which the
//! callbacks' client already brings: the API is one route table over one handler, so a
//! router framework would add nothing but dependencies.
//!
//! An API request is an administrator's (`auth`) binary request in JSON (`call`): no rule is
//! implemented twice. Errors are `{"code": <ErrorCode number>, "error": "<name>", "message":
//! ..}` with a fitting HTTP status.

mod auth;
mod call;
pub mod routes;
mod web;
pub mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::net::tls::Refused;
use crate::net::Ctx;
use crate::protocol::wire::ErrorCode;

/// An HTTP API error: its status and the wire error it carries.
#[derive(Debug)]
pub struct HttpError {
    pub status: u16,
    pub code: ErrorCode,
    pub message: String,
    /// The app backend's code (`CallbackRefused`).
    pub backend_code: i64,
}

impl HttpError {
    fn bad_json(message: String) -> HttpError {
        HttpError { status: 400, code: ErrorCode::InvalidArgument, message, backend_code: 0 }
    }

    fn internal(message: &str) -> HttpError {
        HttpError { status: 500, code: ErrorCode::Internal, message: message.into(), backend_code: 0 }
    }

    /// The error a binary client would get, with the HTTP status that fits it.
    fn wire(code: ErrorCode, message: &str, backend_code: i64) -> HttpError {
        let name = code.variant_name().unwrap_or("");
        let status = match code {
            ErrorCode::PermissionDenied => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::CallbackUnavailable => 502,
            _ if code.0 >= 9000 => 503,
            _ if name.ends_with("NotFound") => 404,
            _ if name.starts_with("Already") || name.ends_with("AlreadyExists") || name.ends_with("Conflict") => 409,
            _ => 400,
        };
        HttpError { status, code, message: message.into(), backend_code }
    }

    fn body(&self) -> Value {
        let mut v = serde_json::json!({
            "code": self.code.0,
            "error": self.code.variant_name().unwrap_or("Unknown"),
            "message": self.message,
        });
        if self.backend_code != 0 {
            v["backend_code"] = self.backend_code.into();
        }
        v
    }
}

type Resp = Response<Full<Bytes>>;

fn json(status: u16, v: &Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default())))
        .expect("a valid response")
}

fn text(status: u16, t: &'static str) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(t)))
        .expect("a valid response")
}

fn error(e: &HttpError) -> Resp {
    json(e.status, &e.body())
}

/// Serves `listener` until `stop` completes; connections still open then get a moment to
/// finish their request.
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>, stop: impl Future<Output = ()>) {
    let mut conns = JoinSet::new();
    // At most this many connections are served; the next is accepted once one ends.
    let permits = Arc::new(tokio::sync::Semaphore::new(ctx.cfg.limits.max_http_connections.max(1)));
    tokio::pin!(stop);
    loop {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::select! {
                _ = &mut stop => break,
                Some(_) = conns.join_next() => {}
            }
            continue;
        };
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    conns.spawn(async move {
                        let _permit = permit;
                        let _ = stream.set_nodelay(true);
                        match ctx.edge.tls.clone().filter(|t| t.applies_to_http()) {
                            None => connection(ctx, stream).await,
                            Some(tls) => match tls.accept(stream, Duration::from_secs(30)).await {
                                Ok(s) => connection(ctx, s).await,
                                Err(Refused::Plain(stream)) => plain_on_https(stream).await,
                                Err(Refused::Failed(e)) => tracing::debug!(error = %e, "https handshake failed"),
                            },
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(1), async { while conns.join_next().await.is_some() {} }).await.is_err()
    {
        conns.shutdown().await;
    }
}

/// One HTTP/1.1 connection, plain or TLS, until it closes or is upgraded to a WebSocket.
async fn connection<S>(ctx: Arc<Ctx>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(ctx.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    let _ = conn.await;
}

/// Plain HTTP to an HTTPS-only listener: one plain answer saying so, then close.
async fn plain_on_https(stream: tokio::net::TcpStream) {
    let body = HttpError {
        status: 400,
        code: ErrorCode::TlsRequired,
        message: "this listener speaks HTTPS only".into(),
        backend_code: 0,
    }
    .body()
    .to_string();
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let answer = [head.as_bytes(), body.as_bytes()].concat();
    crate::net::linger::close_with(stream, &answer, Duration::from_secs(2)).await;
}

async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/ws") => ws::upgrade(ctx.clone(), req).await,
        _ => answer(&ctx, req).await,
    };
    ctx.metrics.http_status(resp.status().as_u16());
    Ok(resp)
}

async fn answer(ctx: &Ctx, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => text(200, "ok\n"),
        (&Method::GET, "/readyz") if ctx.draining.load(Ordering::Acquire) => text(503, "draining\n"),
        (&Method::GET, "/readyz") => text(200, "ready\n"),
        (&Method::GET, "/metrics") => metrics(ctx).await,
        (&Method::GET, p) if ctx.cfg.web.chat && web::file(p).is_some() => web::serve(p),
        (&Method::POST, "/v1/dev/ticket") => dev_ticket(ctx, req).await.unwrap_or_else(|e| error(&e)),
        (&Method::POST, p) => match routes::route(p) {
            Some(r) => api(ctx, r, req).await.unwrap_or_else(|e| error(&e)),
            None => error(&HttpError {
                status: 404,
                code: ErrorCode::UnknownOperation,
                message: format!("no operation at {p}"),
                backend_code: 0,
            }),
        },
        _ => error(&HttpError {
            status: 405,
            code: ErrorCode::UnknownOperation,
            message: "POST an operation, or GET /healthz, /readyz, /metrics, /ws or the web chat at /".into(),
            backend_code: 0,
        }),
    }
}

/// `GET /metrics`: every counter, with the levels read now (inboxes, RocksDB).
async fn metrics(ctx: &Ctx) -> Resp {
    let mut live = crate::metrics::Snapshot { inboxes: ctx.router.depths(), ..Default::default() };
    if let Some(store) = ctx.store.clone() {
        // RocksDB's property reads take its mutex: on a blocking thread, not an async worker.
        let read = tokio::task::spawn_blocking(move || (store.gauges(), store.hook_events_dropped())).await;
        if let Ok((gauges, dropped)) = read {
            live.gauges = gauges;
            live.counters.push((
                "hook_events_dropped",
                "After-hook events left out because an app's queue was full",
                dropped,
            ));
        }
    }
    Response::builder()
        .status(200)
        .header("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(Full::new(Bytes::from(ctx.metrics.render(live))))
        .expect("a valid response")
}

/// The request body, at most `max` bytes kept. A larger one is read on (up to 8 times the
/// bound, and thrown away) so that the client, still sending, gets the 413 rather than a
/// broken connection.
async fn bounded_body(mut body: Incoming, max: usize) -> Result<Vec<u8>, HttpError> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| HttpError::bad_json(format!("the body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen <= max {
            kept.extend_from_slice(&data);
        } else if seen > max.saturating_mul(8) {
            break;
        }
    }
    if seen > max {
        return Err(HttpError {
            status: 413,
            code: ErrorCode::FrameTooLarge,
            message: format!("the body is over {max} bytes"),
            backend_code: 0,
        });
    }
    Ok(kept)
}

/// `POST /v1/dev/ticket {"app_id": .., "user_id": ".."}`: a login ticket signed for whoever
/// asks (a day long), for the web chat on a development server; `web.dev_tickets` turns it
/// on. A user that does not exist yet is imported first (by the app's first administrator).
/// Never for an app's administrators.
async fn dev_ticket(ctx: &Ctx, req: Request<Incoming>) -> Result<Resp, HttpError> {
    if !ctx.cfg.web.dev_tickets {
        return Err(HttpError {
            status: 404,
            code: ErrorCode::UnknownOperation,
            message: "development tickets are off (web.dev_tickets)".into(),
            backend_code: 0,
        });
    }
    let body = bounded_body(req.into_body(), 4096).await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| HttpError::bad_json(format!("not JSON: {e}")))?;
    let app = v["app_id"].as_u64().and_then(|a| u32::try_from(a).ok()).map(crate::domain::ids::AppId);
    let user = v["user_id"].as_str().and_then(crate::domain::ids::UserId::new);
    let (Some(app), Some(user)) = (app, user) else {
        return Err(HttpError::bad_json("app_id (a number) and user_id (a user id) are required".into()));
    };
    let Some(cfg) = ctx.cfg.app(app) else {
        return Err(HttpError::wire(ErrorCode::UnknownApp, "unknown app", 0));
    };
    if cfg.admins.contains(&user) {
        return Err(HttpError::wire(ErrorCode::PermissionDenied, "no development tickets for administrators", 0));
    }
    if let Some(admin) = cfg.admins.first() {
        let import = serde_json::json!({ "users": [{ "user_id": user.as_str(), "nickname": user.as_str() }] });
        // An existing user answers UserAlreadyExists in the batch: nothing changes.
        call::call(ctx, (app, admin.clone()), crate::protocol::wire::Request::ImportUserReq, &import).await?;
    }
    let now = crate::now_ms() / 1000;
    let t = crate::auth::ticket::sign(app.0 as u64, user.as_str(), cfg.secret.as_bytes(), now, 24 * 3600);
    Ok(json(200, &serde_json::json!({ "app_id": app.0, "user_id": user.as_str(), "ticket": t })))
}

/// One API call: the administrator, the JSON body (bounded), the operation.
async fn api(ctx: &Ctx, r: crate::protocol::wire::Request, req: Request<Incoming>) -> Result<Resp, HttpError> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let who = auth::admin(&ctx.cfg, req.uri().query(), header.as_deref())?;
    if ctx.draining.load(Ordering::Acquire) {
        return Err(HttpError::wire(ErrorCode::ShuttingDown, "the server is stopping", 0));
    }
    // A JSON body is a few times the size of the binary frame it becomes.
    let max = ctx.cfg.limits.max_frame * 4;
    let body = bounded_body(req.into_body(), max).await?;
    let v: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&body).map_err(|e| HttpError::bad_json(format!("not JSON: {e}")))?
    };
    let answer = call::call(ctx, who, r, &v).await?;
    Ok(json(200, &answer))
}
