//! One HTTP API request, run as a binary request: its JSON body becomes the request table
//! (`protocol::json`), framed as a `ClientFrame` and handed to the same dispatch a connection
//! uses, for an administrator's session of its own; the answer frame is written back as JSON.
//! So every rule, limit and check is the binary protocol's, and so is every error code.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, WIPOffset};
use serde_json::Value;

use super::HttpError;
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::net::dispatch::{self, Session};
use crate::net::Ctx;
use crate::protocol::{self, json, wire};
use crate::shard::outbox::{Next, Outbox};

/// The request id every HTTP call uses on its own session.
const ID: u64 = 1;
/// How long an answer a shard sends later (a send, perhaps waiting on its before-hook) is
/// waited for.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds the frame of `request` from `body`.
fn frame(request: wire::Request, body: &Value) -> Result<Vec<u8>, HttpError> {
    let name = request.variant_name().unwrap_or_default();
    let o = json::object(name).ok_or_else(|| HttpError::internal("a request without a table"))?;
    let mut fbb = FlatBufferBuilder::new();
    let table = json::build(&mut fbb, o, body, "$").map_err(|e| HttpError::bad_json(e.0))?;
    let args = wire::ClientFrameArgs { id: ID, request_type: request, request: Some(WIPOffset::new(table.value())) };
    let f = wire::ClientFrame::create(&mut fbb, &args);
    fbb.finish(f, None);
    Ok(fbb.finished_data().to_vec())
}

/// Runs `request` with `body` as administrator `admin` of `app`; the answer's table as JSON
/// (`{}` for a plain Ok), or its error.
pub async fn call(
    ctx: &Ctx,
    (app, admin): (AppId, UserId),
    request: wire::Request,
    body: &Value,
) -> Result<Value, HttpError> {
    let buf = frame(request, body)?;
    let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
    let s = Session {
        app,
        me: admin,
        user: None,
        admin: true,
        conn,
        protocol_version: protocol::PROTOCOL_VERSION,
        platform: wire::ClientType::Backend,
    };
    let (outbox, mut rx) = Outbox::new(conn, 8);
    let answer = match dispatch::request(ctx, &s, &outbox, &buf) {
        dispatch::Outcome::Done => None,
        dispatch::Outcome::Pending(f) | dispatch::Outcome::Forwarded(f) => f.await,
        dispatch::Outcome::Logout(_) => return Err(HttpError::internal("logout over HTTP")),
    };
    let answer = match answer {
        Some(a) => a,
        // Answered through the outbox (at once, or by the shard that ran it).
        None => {
            let answered = async {
                loop {
                    match rx.next().await {
                        Some(Next::Frame(f)) if is_answer(&f) => return Some(f),
                        Some(Next::Frame(_)) => continue,
                        _ => return None,
                    }
                }
            };
            match tokio::time::timeout(ANSWER_WITHIN, answered).await {
                Ok(Some(f)) => f,
                Ok(None) => return Err(HttpError::internal("no answer")),
                Err(_) => {
                    return Err(HttpError {
                        status: 504,
                        message: "no answer in time".into(),
                        ..HttpError::internal("")
                    });
                }
            }
        }
    };
    drop(outbox);
    ctx.metrics.answer(&answer);
    read(&answer)
}

/// A frame as the server writes it: its length, then the `ServerFrame`.
fn unframed(f: &[u8]) -> &[u8] {
    f.get(protocol::LEN_PREFIX..).unwrap_or_default()
}

fn is_answer(f: &Bytes) -> bool {
    protocol::decode_server(unframed(f)).is_ok_and(|f| f.id() == ID)
}

/// The answer frame as JSON, or the error it carries.
fn read(frame: &[u8]) -> Result<Value, HttpError> {
    let f =
        protocol::decode_server(unframed(frame)).map_err(|_| HttpError::internal("an answer that does not verify"))?;
    if let Some(e) = f.response_as_error() {
        return Err(HttpError::wire(e.code(), e.message().unwrap_or_default(), e.backend_code()));
    }
    let name = f.response_type().variant_name().unwrap_or_default();
    let (Some(o), Some(t)) = (json::object(name), f.response()) else {
        return Err(HttpError::internal("an answer without a table"));
    };
    // SAFETY: `t` is the response table of a frame `decode_server` verified against the
    // generated code of the same schema, and `o` is its type.
    Ok(unsafe { json::write(&o, &t) })
}
