//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz / libFuzzer) and for
//! `tests/fuzz_corpus.rs`, which replays the committed corpus through the same functions in
//! `cargo test`. Each function takes arbitrary bytes, must never panic, and panics (so the
//! fuzzer reports it) when a property it checks is broken.
//!
//! - `frame_decoder`: the length-prefixed framing fed in arbitrary chunk sizes, then each
//!   frame through the verifier.
//! - `request`: envelope verification and request conversion: the whole dispatch layer
//!   (`net::dispatch::request`) behind a harness that plays the shards.
//! - `ticket`: the login-ticket verifier, on arbitrary text and on mutated genuine tickets.

use std::cell::RefCell;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use crate::auth::ticket;
use crate::config::Config;
use crate::domain::ids::{ConnId, UserId};
use crate::net::dispatch::{self, Outcome, Session};
use crate::net::Ctx;
use crate::protocol::{self, wire};
use crate::shard::outbox::Outbox;
use crate::shard::Router;

/// The login limit, then the limit after login, as a session uses them.
const MAX_LOGIN_FRAME: usize = 4096;
const MAX_FRAME: usize = 65536;

/// Decodes `stream` with the session's codec, fed `chunks` bytes at a time (cycling), the
/// first frame under the login limit and the rest under the full limit. Returns the frames
/// and whether decoding stopped on an error.
fn decode_all(stream: &[u8], chunks: &[usize]) -> (Vec<Vec<u8>>, bool) {
    let mut codec = protocol::frame_codec(MAX_LOGIN_FRAME);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut i = 0;
    loop {
        // Everything already buffered is decoded before more arrives, as FramedRead does.
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    let limit = if frames.is_empty() { MAX_LOGIN_FRAME } else { MAX_FRAME };
                    assert!(f.len() <= limit, "a frame of {} bytes passed a limit of {limit}", f.len());
                    frames.push(f.to_vec());
                    codec.set_max_frame_length(MAX_FRAME);
                }
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
        if at == stream.len() {
            break;
        }
        let n = chunks[i % chunks.len()].clamp(1, stream.len() - at);
        i += 1;
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(f)) => frames.push(f.to_vec()),
        Ok(None) => {}
        Err(_) => return (frames, true),
    }
    // A clean end leaves nothing behind.
    assert_eq!(buf.remaining(), 0, "bytes left in the buffer after a clean end");
    (frames, false)
}

/// Frame decoder. The first byte picks the chunk sizes, the rest is the byte stream.
/// Checks: no frame exceeds its limit; chunked decoding yields exactly what decoding all at
/// once yields; the frames never add up to more than the input; verifying each frame never
/// panics.
pub fn frame_decoder(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else { return };
    let chunks: Vec<usize> = match seed % 4 {
        0 => vec![1],
        1 => vec![stream.len().max(1)],
        2 => vec![1 + (seed as usize >> 2), 3, 1, 7],
        _ => vec![4, 1 + (seed as usize >> 2) * 17],
    };
    let (frames, failed) = decode_all(stream, &chunks);
    let (whole, whole_failed) = decode_all(stream, &[stream.len().max(1)]);
    assert_eq!(frames, whole, "chunked decoding differs from whole decoding");
    assert_eq!(failed, whole_failed, "chunked decoding fails differently");
    let used: usize = frames.iter().map(|f| protocol::LEN_PREFIX + f.len()).sum();
    assert!(used <= stream.len(), "frames add up to {used} bytes from {} bytes", stream.len());
    for f in &frames {
        if let Ok(frame) = protocol::decode_client(f) {
            let _ = frame.request_type();
        }
    }
}

/// The dispatch layer without shards: a router whose inboxes are drained and dropped by
/// tasks on a current-thread runtime, so every command a request sends fails the way it would
/// if its shard had stopped.
struct Harness {
    rt: tokio::runtime::Runtime,
    ctx: Ctx,
}

impl Harness {
    fn new() -> Harness {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime");
        let cfg = Config::default();
        let (router, inboxes) = Router::new(2, 64);
        for mut rx in inboxes.sessions.into_iter().chain(inboxes.peers) {
            rt.spawn(async move { while rx.recv().await.is_some() {} });
        }
        let (edge, _) = crate::net::Edge::new(&cfg, None, Vec::new());
        let ctx = Ctx {
            edge,
            cfg: Arc::new(cfg),
            router,
            next_conn: AtomicU64::new(1),
            advertise: "fuzz".into(),
            hooks: None,
            draining: Default::default(),
            metrics: crate::metrics::Metrics::new(2),
            store: None,
            backing_up: Default::default(),
        };
        Harness { rt, ctx }
    }

    fn session(&self, admin: bool) -> Session {
        let app = self.ctx.cfg.apps[0].id;
        let me = UserId::new(if admin { "admin" } else { "alice" }).expect("a valid id");
        Session {
            app,
            user: (!admin).then(|| me.clone()),
            me,
            admin,
            conn: ConnId(1),
            protocol_version: crate::protocol::PROTOCOL_VERSION,
            platform: Default::default(),
        }
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

/// Checks one frame the server would write: a verified `ServerFrame` with a correct length
/// prefix that answers `id` (a malformed request is answered with id 0).
fn check_answer(frame: &[u8], id: u64) {
    assert!(frame.len() >= protocol::LEN_PREFIX, "an answer shorter than its length prefix");
    let len = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, frame.len() - protocol::LEN_PREFIX, "an answer's length prefix is wrong");
    let f = protocol::decode_server(&frame[protocol::LEN_PREFIX..]).expect("the server wrote an invalid frame");
    if f.response_type() != wire::Response::NONE {
        assert!(f.id() == id || f.id() == 0, "an answer to {} carries id {}", id, f.id());
    }
}

/// Envelope verification and request conversion. The input is one frame body. It is run as a
/// user's request and as an administrator's. Checks: every answer is a valid frame for this
/// request; every future the dispatch layer returns completes (no hang) once its shards are
/// gone; nothing panics. Returns how many answers it checked.
pub fn request(data: &[u8]) -> usize {
    HARNESS.with(|cell| {
        let mut answers = 0;
        let mut slot = cell.borrow_mut();
        let h = slot.get_or_insert_with(Harness::new);
        let id = protocol::decode_client(data).map(|f| f.id()).unwrap_or(0);
        for admin in [false, true] {
            let s = h.session(admin);
            let (outbox, mut rx) = Outbox::new(ConnId(1), 64);
            let _guard = h.rt.enter();
            let fut = match dispatch::request(&h.ctx, &s, &outbox, data) {
                Outcome::Done => None,
                Outcome::Pending(f) | Outcome::Forwarded(f) => Some(f),
                Outcome::Logout(frame) => {
                    check_answer(&frame, id);
                    answers += 1;
                    None
                }
            };
            if let Some(f) = fut {
                let answer =
                    h.rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), f).await })
                        .expect("a request's future never completed");
                if let Some(frame) = answer {
                    check_answer(&frame, id);
                    answers += 1;
                }
            }
            while let Some(frame) = rx.try_next() {
                check_answer(&frame, id);
                answers += 1;
            }
        }
        answers
    })
}

const APP: u64 = 1400000000;
const SECRET: &[u8] = b"fuzz-secret";
const NOW: u64 = 1_800_000_000;

/// Ticket verifier. The input is tried as a ticket (it must never verify: it was not signed
/// with the secret), then used to mint a genuine ticket, mutate one byte of it and verify
/// that: the genuine one must verify with exactly its claims, and a mutated one may verify
/// only if it still says exactly the same.
pub fn ticket(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = ticket::verify(&text, APP, "alice", SECRET, NOW, 300) {
        panic!("an unsigned ticket verified: {c:?}");
    }
    let (head, tail) = data.split_at(data.len().min(8));
    let mut n = [0u8; 8];
    n[..head.len()].copy_from_slice(head);
    let n = u64::from_le_bytes(n);
    let user: String = String::from_utf8_lossy(tail).chars().take(64).collect();
    let issued = NOW - (n % 100_000);
    let lifetime = 1 + (n >> 20) % 200_000;
    let genuine = ticket::sign(APP, &user, SECRET, issued, lifetime);
    let expect =
        ticket::TicketClaims { app_id: APP, user_id: user.clone(), issued_at: issued, lifetime_secs: lifetime };
    match ticket::verify(&genuine, APP, &user, SECRET, NOW, 300) {
        Ok(c) => assert_eq!(c, expect, "a genuine ticket verified with other claims"),
        Err(ticket::TicketError::Expired) => assert!(issued + lifetime <= NOW, "a live ticket was called expired"),
        Err(e) if genuine.len() > ticket::MAX_TICKET_LEN => assert_eq!(e, ticket::TicketError::Malformed("length")),
        Err(e) => panic!("a genuine ticket failed: {e}"),
    }
    if genuine.is_empty() {
        return;
    }
    let mut bytes = genuine.into_bytes();
    let at = (n as usize >> 3) % bytes.len();
    bytes[at] = bytes[at].wrapping_add(1 + (n >> 40) as u8 % 254);
    let mutated = String::from_utf8_lossy(&bytes);
    if let Ok(c) = ticket::verify(&mutated, APP, &user, SECRET, NOW, 300) {
        assert_eq!(c, expect, "a mutated ticket verified with other claims");
    }
}
