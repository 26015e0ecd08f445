//! Bytes <-> typed frames. The flatc-generated code lives in `generated/` and is never edited
//! by hand (`protocol/generate.sh` rewrites it).
//!
//! A frame on the wire is a 4-byte big-endian length, then that many bytes of one FlatBuffer:
//! a `ClientFrame` from the client, a `ServerFrame` from the server. Every inbound buffer goes
//! through the FlatBuffers verifier (`root_with_opts`) with tight limits; nothing here panics
//! on input.

#[allow(clippy::all, unused_imports, dead_code, non_camel_case_types, non_snake_case, mismatched_lifetime_syntaxes)]
#[rustfmt::skip]
#[path = "generated/im_generated.rs"]
mod generated;
pub mod json;

pub use generated::im::wire;

use std::cell::RefCell;

use bytes::{BufMut, Bytes, BytesMut};
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, VerifierOptions, WIPOffset};

use wire::{ClientFrame, ErrorCode, Push, Response, ServerFrame};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// The largest server frame: the FlatBuffer after the length prefix, inclusive. Lists are cut
/// by size to stay under it (`domain::page`); any other answer that would pass it is replaced
/// by `Error{ResponseTooLarge}`.
pub const MAX_SERVER_FRAME: usize = 1024 * 1024;

/// The current protocol version, sent in `LoginReq.protocol_version`. Version 2 made
/// `GetHistoryReq.before_seq` exclusive, like `after_seq`; nothing else differs from 1.
pub const PROTOCOL_VERSION: u32 = 2;

/// The versions a client may log in with.
pub const SERVED_VERSIONS: std::ops::RangeInclusive<u32> = 1..=PROTOCOL_VERSION;

fn verifier_opts(len: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: 16,
        max_tables: 20_000,
        // The verifier counts bytes it visits; a frame cannot make it visit more than a few
        // times its own size.
        max_apparent_size: len.saturating_mul(4).max(1024),
        ignore_missing_null_terminator: false,
    }
}

/// The framing codec: a 4-byte big-endian length, then the body; a length over `max` is an
/// error before anything is buffered. (Raise the limit after login with
/// `set_max_frame_length`.)
pub fn frame_codec(max: usize) -> tokio_util::codec::LengthDelimitedCodec {
    tokio_util::codec::LengthDelimitedCodec::builder()
        .big_endian()
        .length_field_length(LEN_PREFIX)
        .max_frame_length(max)
        .new_codec()
}

/// Verifies and opens a client frame body (length prefix already removed).
pub fn decode_client(buf: &[u8]) -> Result<ClientFrame<'_>, flatbuffers::InvalidFlatbuffer> {
    flatbuffers::root_with_opts::<ClientFrame>(&verifier_opts(buf.len()), buf)
}

/// Verifies and opens a server frame body (length prefix already removed).
pub fn decode_server(buf: &[u8]) -> Result<ServerFrame<'_>, flatbuffers::InvalidFlatbuffer> {
    flatbuffers::root_with_opts::<ServerFrame>(&verifier_opts(buf.len()), buf)
}

type Fbb = FlatBufferBuilder<'static>;

thread_local! {
    // One builder per thread, reset after each frame, so encoding does not allocate a fresh
    // buffer per frame.
    static BUILDER: RefCell<Fbb> = RefCell::new(FlatBufferBuilder::with_capacity(1024));
}

/// Runs `f` with this thread's builder and returns the finished buffer, length-prefixed.
fn with_builder<T>(f: impl FnOnce(&mut Fbb) -> WIPOffset<T>) -> Bytes {
    BUILDER.with(|cell| {
        // Re-entrancy would mean an encoder calls another encoder: not done in this crate.
        let mut fbb = cell.borrow_mut();
        fbb.reset();
        let root = f(&mut fbb);
        fbb.finish_minimal(root);
        let data = fbb.finished_data();
        let mut out = BytesMut::with_capacity(LEN_PREFIX + data.len());
        // Frames we build are far below 4 GiB (bounded by the page and batch limits).
        out.put_u32(data.len() as u32);
        out.put_slice(data);
        out.freeze()
    })
}

/// A server response frame to request `id`.
///
/// One past `MAX_SERVER_FRAME` becomes `Error{ResponseTooLarge}`: a client sized for the bound
/// never meets a larger frame.
pub fn response(id: u64, f: impl FnOnce(&mut Fbb) -> (Response, WIPOffset<UnionWIPOffset>)) -> Bytes {
    let frame = with_builder(|fbb| {
        let (response_type, body) = f(fbb);
        ServerFrame::create(
            fbb,
            &wire::ServerFrameArgs { id, response_type, response: Some(body), ..Default::default() },
        )
    });
    if frame.len() - LEN_PREFIX > MAX_SERVER_FRAME {
        tracing::warn!(id, bytes = frame.len(), "an answer over the frame bound was refused");
        return error(id, ErrorCode::ResponseTooLarge, "the answer would pass 1 MiB; ask for fewer items");
    }
    frame
}

/// A server push frame.
pub fn push(f: impl FnOnce(&mut Fbb) -> (Push, WIPOffset<UnionWIPOffset>)) -> Bytes {
    with_builder(|fbb| {
        let (event_type, body) = f(fbb);
        ServerFrame::create(fbb, &wire::ServerFrameArgs { id: 0, event_type, event: Some(body), ..Default::default() })
    })
}

/// An error response.
pub fn error(id: u64, code: ErrorCode, message: &str) -> Bytes {
    error_from_backend(id, code, message, 0)
}

/// An error response carrying the app backend's own code (`CallbackRefused`).
pub fn error_from_backend(id: u64, code: ErrorCode, message: &str, backend_code: i64) -> Bytes {
    response(id, |fbb| {
        let m = fbb.create_string(message);
        let e = wire::Error::create(fbb, &wire::ErrorArgs { code, message: Some(m), backend_code });
        (Response::Error, e.as_union_value())
    })
}

/// What a frame this server built is, read without verifying it again: a response (its
/// `ErrorCode`, `None` for success), a push (its `Push` kind), or neither.
pub enum Peek {
    Answer(ErrorCode),
    Push(Push),
    Other,
}

/// Reads the kind of a length-prefixed frame built by this module's builders (`response`,
/// `push`, `error`, `ok`, `kick`), for counting. Never call it on bytes from a peer.
pub fn peek(frame: &[u8]) -> Peek {
    let Some(body) = frame.get(LEN_PREFIX..) else { return Peek::Other };
    if body.len() < 8 {
        return Peek::Other;
    }
    // SAFETY: every frame given here was finished by `with_builder` in this process (the
    // outboxes hold only such frames), so it is a valid `ServerFrame`; verifying it a second
    // time would cost as much as a small frame's encoding.
    let f = unsafe { flatbuffers::root_unchecked::<ServerFrame>(body) };
    if f.id() == 0 {
        return match f.event_type() {
            Push::NONE => Peek::Other,
            p => Peek::Push(p),
        };
    }
    match f.response_as_error() {
        Some(e) => Peek::Answer(e.code()),
        None => Peek::Answer(ErrorCode::None),
    }
}

/// An empty success response.
pub fn ok(id: u64) -> Bytes {
    response(id, |fbb| (Response::Ok, wire::Ok::create(fbb, &wire::OkArgs {}).as_union_value()))
}

/// A kick push.
pub fn kick(reason: wire::KickReason, message: &str) -> Bytes {
    push(|fbb| {
        let m = fbb.create_string(message);
        let k = wire::KickPush::create(fbb, &wire::KickPushArgs { reason, message: Some(m) });
        (Push::KickPush, k.as_union_value())
    })
}

/// What a request builder gives `client_frame`: the union tag and the request table.
pub type RequestBody = (wire::Request, WIPOffset<UnionWIPOffset>);

/// Writes a `LoginReq` (for `client_frame` or the SDK's `call`): the SDK, imload and the
/// tests all log in with it.
pub fn login_req(
    fbb: &mut Fbb,
    app_id: u32,
    user: &str,
    ticket: &str,
    client_type: wire::ClientType,
    device: &str,
) -> RequestBody {
    let user_id = fbb.create_string(user);
    let ticket = fbb.create_string(ticket);
    let device_id = fbb.create_string(device);
    let r = wire::LoginReq::create(
        fbb,
        &wire::LoginReqArgs {
            app_id,
            user_id: Some(user_id),
            ticket: Some(ticket),
            client_type,
            device_id: Some(device_id),
            protocol_version: PROTOCOL_VERSION,
        },
    );
    (wire::Request::LoginReq, r.as_union_value())
}

/// Writes a one-to-one `SendMessageReq` to `to`; `from_user`: an administrator sending for a
/// user.
pub fn send_req(
    fbb: &mut Fbb,
    to: &str,
    client_id: &str,
    msg_type: u32,
    body: &[u8],
    from_user: Option<&str>,
) -> RequestBody {
    send_conv_req(fbb, (wire::ConvType::P2P, to), client_id, msg_type, body, from_user)
}

/// A send to a conversation of either kind: `to` is (kind, peer or group id).
pub fn send_conv_req(
    fbb: &mut Fbb,
    to: (wire::ConvType, &str),
    client_id: &str,
    msg_type: u32,
    body: &[u8],
    from_user: Option<&str>,
) -> RequestBody {
    let from_user = from_user.map(|u| fbb.create_string(u));
    let peer = fbb.create_string(to.1);
    let conv = wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: to.0, peer: Some(peer) });
    let client_id = fbb.create_string(client_id);
    let body = fbb.create_vector(body);
    let r = wire::SendMessageReq::create(
        fbb,
        &wire::SendMessageReqArgs {
            from_user,
            client_id: Some(client_id),
            conv: Some(conv),
            msg_type,
            body: Some(body),
        },
    );
    (wire::Request::SendMessageReq, r.as_union_value())
}

/// A client frame (used by the SDK, the tests and the benches).
pub fn client_frame(id: u64, f: impl FnOnce(&mut Fbb) -> (wire::Request, WIPOffset<UnionWIPOffset>)) -> Bytes {
    with_builder(|fbb| {
        let (request_type, body) = f(fbb);
        ClientFrame::create(fbb, &wire::ClientFrameArgs { id, request_type, request: Some(body) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_over_the_frame_bound_becomes_response_too_large() {
        let big = |n: usize| {
            response(9, |fbb| {
                let body = fbb.create_vector(&vec![0u8; n]);
                let m = wire::Message::create(fbb, &wire::MessageArgs { body: Some(body), ..Default::default() });
                let v = fbb.create_vector(&[m]);
                let r = wire::MessagesResp::create(fbb, &wire::MessagesRespArgs { messages: Some(v), more: false });
                (Response::MessagesResp, r.as_union_value())
            })
        };
        let under = big(MAX_SERVER_FRAME - 200);
        assert!(under.len() - LEN_PREFIX <= MAX_SERVER_FRAME);
        assert!(decode_server(&under[LEN_PREFIX..]).unwrap().response_as_messages_resp().is_some());
        let over = big(MAX_SERVER_FRAME);
        let f = decode_server(&over[LEN_PREFIX..]).unwrap();
        assert_eq!((f.id(), f.response_as_error().map(|e| e.code())), (9, Some(ErrorCode::ResponseTooLarge)));
    }

    #[test]
    fn error_frame_round_trips() {
        let f = error(7, ErrorCode::UserNotFound, "no such user");
        let len = u32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(len, f.len() - 4);
        let sf = decode_server(&f[4..]).unwrap();
        assert_eq!(sf.id(), 7);
        let e = sf.response_as_error().unwrap();
        assert_eq!(e.code(), ErrorCode::UserNotFound);
        assert_eq!(e.message(), Some("no such user"));
    }

    #[test]
    fn verifier_refuses_garbage_and_truncation() {
        let f = client_frame(1, |fbb| {
            (
                wire::Request::PingReq,
                wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 5 }).as_union_value(),
            )
        });
        let body = &f[4..];
        assert!(decode_client(body).is_ok());
        for cut in 0..body.len() {
            // Every strict prefix is refused or, at worst, parses without panicking.
            let _ = decode_client(&body[..cut]);
        }
        assert!(decode_client(&[]).is_err());
        assert!(decode_client(&[0xff; 64]).is_err());
        assert!(decode_client(&[1, 0, 0, 0]).is_err());
    }
}
