//! `GET /ws`: the WebSocket upgrade. The upgraded connection is a session like a TCP one
//! (`net::session`, over `transport::Conn::Ws`): it takes a connection permit from the same
//! limit and joins the listener's sessions, which close it at shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::{error, HttpError, Resp};
use crate::domain::web::origin_allowed;
use crate::metrics::Refusal;
use crate::net::transport::Conn;
use crate::net::{Ctx, Handoff};
use crate::protocol::wire::ErrorCode;

/// The subprotocol a client may ask for; answered when asked.
pub const SUBPROTOCOL: &str = "imserver.v1";

fn header(req: &Request<Incoming>, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn refuse(status: u16, code: ErrorCode, message: &str) -> Resp {
    error(&HttpError { status, code, message: message.into(), backend_code: 0 })
}

pub async fn upgrade(ctx: Arc<Ctx>, mut req: Request<Incoming>) -> Resp {
    if !has_token(header(&req, UPGRADE), "websocket") || !has_token(header(&req, CONNECTION), "upgrade") {
        return refuse(400, ErrorCode::InvalidArgument, "a WebSocket upgrade (Upgrade: websocket) is expected here");
    }
    if header(&req, "sec-websocket-version") != Some("13") {
        let mut r = refuse(426, ErrorCode::InvalidArgument, "WebSocket version 13 only");
        r.headers_mut().insert("sec-websocket-version", HeaderValue::from_static("13"));
        return r;
    }
    let Some(key) = header(&req, SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.trim().as_bytes())) else {
        return refuse(400, ErrorCode::MissingField, "Sec-WebSocket-Key");
    };
    if !origin_allowed(&ctx.cfg.web.origins, header(&req, ORIGIN), header(&req, HOST)) {
        ctx.metrics.refused(Refusal::Origin);
        return refuse(403, ErrorCode::PermissionDenied, "this page's origin may not open a session (web.origins)");
    }
    if ctx.draining.load(Ordering::Acquire) {
        return refuse(503, ErrorCode::ShuttingDown, "the server is stopping");
    }
    let Ok(permit) = ctx.edge.permits.clone().try_acquire_owned() else {
        ctx.metrics.refused(Refusal::Limit);
        return refuse(503, ErrorCode::TooManyConnections, "too many connections");
    };
    let subprotocol = has_token(header(&req, "sec-websocket-protocol"), SUBPROTOCOL);
    let limits = &ctx.cfg.limits;
    // Small buffers for idle connections; tungstenite's write buffer takes one batch.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(limits.write_chunk.max(1))
        .max_message_size(Some(limits.max_frame))
        .max_frame_size(Some(limits.max_frame));
    let on = hyper::upgrade::on(&mut req);
    let handoff = ctx.edge.handoff.clone();
    tokio::spawn(async move {
        // After the 101 below is written; fails if the client went away meanwhile.
        let Ok(upgraded) = on.await else { return };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        // A closed hand-off (the server is stopping) drops the connection and its permit.
        let _ = handoff.send(Handoff::Upgraded(Conn::Ws(Box::new(ws)), permit)).await;
    });
    let mut resp = Response::builder()
        .status(101)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, key);
    if subprotocol {
        resp = resp.header("sec-websocket-protocol", SUBPROTOCOL);
    }
    resp.body(Default::default()).expect("a valid response")
}
