//! One connection, over any transport (`transport`: TCP, TLS, WebSocket): the login
//! handshake, heartbeats and idle timeout, and the request loop. Requests are parsed here (`dispatch`) and run on shards; their answers, and every
//! push, reach the socket through this connection's bounded `Outbox`.
//!
//! The reader stops reading while `max_inflight_per_conn` requests are unanswered, so a client
//! cannot queue unbounded work. The writer batches queued frames into few syscalls.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit};

use super::dispatch::{self, Session};
use super::transport::{Conn, FramesIn, FramesOut, InError, Written};
use super::Ctx;
use crate::auth::ticket;
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::ratelimit::{Bucket, Verdict};
use crate::metrics::{Metrics, Tally};
use crate::protocol::{self, wire, wire::ErrorCode, wire::KickReason};
use crate::shard::cmd::{DeviceLogin, Disconnect, Login};
use crate::shard::outbox::{Next, Outbox, OutboxRx};

pub async fn run(stream: Conn, ctx: Arc<Ctx>, _permit: OwnedSemaphorePermit, mut closing: watch::Receiver<bool>) {
    let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
    ctx.metrics.session_started(stream.kind());
    // A small read buffer to start with: an idle connection should cost little memory; it
    // grows for larger frames (up to the frame limit).
    let (mut reader, wr) = stream.split(ctx.cfg.limits.max_login_frame, ctx.cfg.limits.read_buffer_start);
    let _open = ctx.metrics.hold_open();
    let (outbox, orx) = Outbox::counting(conn, ctx.cfg.limits.outbound_queue, ctx.metrics.push_drops.clone());
    let write_timeout = Duration::from_secs(ctx.cfg.timeouts.write_secs);
    let sink = Sink { timeout: write_timeout, chunk: ctx.cfg.limits.write_chunk.max(1), metrics: ctx.metrics.clone() };
    let mut writer = tokio::spawn(write_loop(wr, orx, sink));

    // Login: the first frame, within the timeout.
    let first = tokio::select! {
        r = tokio::time::timeout(ctx.cfg.login_timeout(), reader.next()) => r,
        _ = closing.changed() => {
            outbox.close(KickReason::ServerShutdown);
            let end = Box::pin(finish(None, writer, reader, write_timeout));
            return end.await;
        }
    };
    let sess = match first {
        Err(_) => {
            ctx.metrics.login(ErrorCode::LoginTimeout);
            outbox.send(protocol::error(0, ErrorCode::LoginTimeout, "no login within the timeout"));
            None
        }
        Ok(None) => None,
        Ok(Some(Err(e))) => {
            frame_error(&outbox, &e);
            None
        }
        Ok(Some(Ok(buf))) => {
            ctx.metrics.frames_in.inc();
            // Boxed, like every step that runs once per connection (the login, the drain,
            // the disconnect, the end): a future holds room for the largest state of any
            // step it awaits inline, for the connection's whole life.
            // (The box is made in a statement of its own: a temporary lives to the end of its
            // statement, so `Box::pin(f).await` would still hold room for `f`.)
            let login = Box::pin(login(&ctx, conn, &outbox, &buf));
            login.await
        }
    };
    let Some(sess) = sess else {
        outbox.close(KickReason::None);
        let end = Box::pin(finish(None, writer, reader, write_timeout));
        return end.await;
    };
    reader.set_max(ctx.cfg.limits.max_frame);

    let idle = ctx.cfg.idle_timeout();
    let max_inflight = ctx.cfg.limits.max_inflight_per_conn.max(1);
    let mut pending = FuturesUnordered::new();
    let mut last_frame = Instant::now();
    let mut written = None;
    let lim = &ctx.cfg.limits;
    // Administrators (app backends) are trusted with bulk work: no rate limit.
    let mut bucket = (!sess.admin)
        .then(|| Bucket::new(lim.requests_per_sec, lim.request_burst, lim.rate_limit_strikes, crate::now_ms()));
    // The reason to close, and a last frame to send after every pending answer (Logout's Ok).
    // One idle timer for the connection's life, checked lazily: a frame only notes its time,
    // and when the timer fires it either closes the connection or moves to the new deadline
    // (a timer registered and dropped per frame cost more than the frame's dispatch).
    let idle_timer = tokio::time::sleep_until(tokio::time::Instant::from_std(last_frame + idle));
    tokio::pin!(idle_timer);
    let closed = outbox.closed();
    tokio::pin!(closed);
    let (reason, last) = loop {
        tokio::select! {
            biased;
            _ = closing.changed() => break (KickReason::ServerShutdown, None),
            w = &mut writer => { written = Some(w); break (KickReason::None, None) }
            // Closed by a shard (a kick, a slow consumer): stop taking requests at once, while
            // the writer may still be waiting for the client to read its last frames.
            _ = &mut closed => break (KickReason::None, None),
            Some(resp) = pending.next(), if !pending.is_empty() => { if let Some(r) = resp { outbox.send(r); } }
            // Requests answered by a shard straight to the outbox (sends) count as well.
            _ = outbox.some_answered(), if in_flight(&pending, &outbox) >= max_inflight => {}
            frame = reader.next(), if in_flight(&pending, &outbox) < max_inflight => match frame {
                None => break (KickReason::None, None),
                Some(Err(e)) => { frame_error(&outbox, &e); break (KickReason::None, None) }
                Some(Ok(buf)) => {
                    ctx.metrics.frames_in.inc();
                    last_frame = Instant::now();
                    match bucket.as_mut().map_or(Verdict::Allowed, |b| b.take(crate::now_ms())) {
                        Verdict::Allowed => {}
                        Verdict::Refused => {
                            let id = protocol::decode_client(&buf).map(|f| f.id()).unwrap_or(0);
                            outbox.send(protocol::error(id, ErrorCode::RateLimited, "too many requests"));
                            continue;
                        }
                        Verdict::Disconnect => break (KickReason::RateLimited, None),
                    }
                    match dispatch::request(&ctx, &sess, &outbox, &buf) {
                        dispatch::Outcome::Done => {}
                        dispatch::Outcome::Pending(fut) => pending.push(fut),
                        dispatch::Outcome::Forwarded(fut) => pending.push(fut),
                        dispatch::Outcome::Logout(ok) => break (KickReason::Logout, Some(ok)),
                    }
                }
            },
            _ = &mut idle_timer => {
                let deadline = last_frame + idle;
                if deadline <= Instant::now() {
                    break (KickReason::IdleTimeout, None);
                }
                idle_timer.as_mut().reset(tokio::time::Instant::from_std(deadline));
            }
        }
    };
    // Requests already taken are answered before the close: their changes happen either way,
    // so the client must hear of them. Bounded by the write timeout.
    if written.is_none() {
        let drain = Box::pin(tokio::time::timeout(write_timeout, async {
            while let Some(resp) = pending.next().await {
                if let Some(r) = resp {
                    outbox.send(r);
                }
            }
            while outbox.unanswered() > 0 {
                outbox.some_answered().await;
            }
        }));
        let _ = drain.await;
        if let Some(f) = last {
            outbox.send(f);
        }
    }
    if let Some(user) = &sess.user {
        let shard = ctx.router.user_shard(sess.app, user);
        let send =
            Box::pin(ctx.router.send(shard, Disconnect { app: sess.app, user: user.clone(), conn, reason }.into()));
        let _ = send.await;
    }
    outbox.close(reason);
    let end = Box::pin(finish(written, writer, reader, write_timeout));
    end.await;
}

/// The end of every connection: once the writer has sent its last frame and shut the
/// sending side (`written`, or what `writer` gives back), the connection stays until the
/// client has it all (`FramesIn::finish`).
async fn finish(
    written: Option<Result<Option<FramesOut>, tokio::task::JoinError>>,
    writer: tokio::task::JoinHandle<Option<FramesOut>>,
    reader: FramesIn,
    within: Duration,
) {
    let written = match written {
        Some(w) => w,
        None => writer.await,
    };
    reader.finish(written.ok().flatten(), within).await;
}

/// Requests taken and not answered: the session's futures plus those a shard answers straight
/// to the outbox, less the ones counted twice (a future waiting for room in a shard's inbox
/// for a command that carries its `Unanswered` guard).
fn in_flight<T>(pending: &FuturesUnordered<T>, outbox: &Outbox) -> usize {
    (pending.len() + outbox.unanswered()).saturating_sub(outbox.waiting())
}

/// A framing error: an oversized frame or a text message gets an answer; I/O errors just end.
fn frame_error(outbox: &Outbox, e: &InError) {
    match e {
        InError::TooLarge => {
            outbox.send(protocol::error(0, ErrorCode::FrameTooLarge, "frame too large"));
        }
        InError::NotBinary => {
            outbox.send(protocol::error(0, ErrorCode::MalformedFrame, "frames are binary WebSocket messages"));
        }
        InError::Io => {}
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Runs the login handshake; on failure the error is queued and `None` returned.
async fn login(ctx: &Ctx, conn: ConnId, outbox: &Outbox, buf: &[u8]) -> Option<Session> {
    let fail = |id: u64, code: ErrorCode, msg: &str| {
        ctx.metrics.login(code);
        outbox.send(protocol::error(id, code, msg));
        None
    };
    let Ok(frame) = protocol::decode_client(buf) else {
        return fail(0, ErrorCode::MalformedFrame, "malformed frame");
    };
    let id = frame.id();
    if id == 0 {
        return fail(0, ErrorCode::InvalidArgument, "request id 0 is reserved for pushes");
    }
    let Some(req) = frame.request_as_login_req() else {
        return fail(id, ErrorCode::NotLoggedIn, "the first frame must be a login");
    };
    let protocol_version = req.protocol_version();
    if !protocol::SERVED_VERSIONS.contains(&protocol_version) {
        let (lo, hi) = (protocol::SERVED_VERSIONS.start(), protocol::SERVED_VERSIONS.end());
        let msg = format!("protocol_version {protocol_version} is not served; this server speaks {lo} to {hi}");
        return fail(id, ErrorCode::InvalidArgument, &msg);
    }
    let app_id = AppId(req.app_id());
    let Some(app) = ctx.cfg.app(app_id) else {
        return fail(id, ErrorCode::UnknownApp, "unknown app");
    };
    let Some(user) = req.user_id().and_then(UserId::new) else {
        return fail(id, ErrorCode::InvalidArgument, "user_id");
    };
    let Some(t) = req.ticket() else {
        return fail(id, ErrorCode::MissingField, "ticket");
    };
    let device_id = req.device_id().unwrap_or_default();
    if device_id.len() > 128 {
        return fail(id, ErrorCode::InvalidArgument, "device_id");
    }
    let Ok(client_type) = crate::domain::wire::known(req.client_type(), "client_type") else {
        return fail(id, ErrorCode::InvalidArgument, "client_type");
    };
    let checked = ticket::verify(
        t,
        app_id.0 as u64,
        user.as_str(),
        app.secret.as_bytes(),
        now_secs(),
        ctx.cfg.timeouts.ticket_skew_secs,
    );
    if let Err(e) = checked {
        return fail(id, e.code(), &e.to_string());
    }
    let admin = app.admins.contains(&user);
    if !admin {
        let (tx, rx) = oneshot::channel();
        let cmd = Login {
            app: app_id,
            user: user.clone(),
            device: DeviceLogin { client_type, device_id: device_id.to_owned(), outbox: outbox.clone() },
            reply: tx,
        }
        .into();
        if ctx.router.send(ctx.router.user_shard(app_id, &user), cmd).await.is_err() {
            return fail(id, ErrorCode::ShuttingDown, "shutting down");
        }
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return fail(id, e.code(), &e.message()),
            Err(_) => return fail(id, ErrorCode::ShuttingDown, "shutting down"),
        }
    }
    let resp = protocol::response(id, |fbb| {
        let addr = fbb.create_string(&ctx.advertise);
        let r = wire::LoginResp::create(
            fbb,
            &wire::LoginRespArgs {
                session_id: conn.0,
                server_addr: Some(addr),
                server_time_ms: crate::now_ms(),
                heartbeat_secs: ctx.cfg.timeouts.heartbeat_secs as u32,
                idle_timeout_secs: ctx.cfg.timeouts.idle_secs as u32,
                is_admin: admin,
            },
        );
        (wire::Response::LoginResp, r.as_union_value())
    });
    outbox.send(resp);
    ctx.metrics.login(ErrorCode::None);
    tracing::debug!(conn = conn.0, app = app_id.0, user = %user, admin, "logged in");
    let platform = client_type;
    Some(Session {
        app: app_id,
        me: user.clone(),
        user: (!admin).then_some(user),
        admin,
        conn,
        protocol_version,
        platform,
    })
}

/// Writes queued frames, several per syscall, until the connection is closed.
///
/// Every close the server starts ends with the `KickPush` of its reason, a slow consumer's
/// too: frames still queued are dropped (the client resyncs by seq), but the bytes already
/// taken for the socket are finished, so the kick follows whole frames and a client that
/// reads again before the write timeout finds it.
async fn write_loop(mut out: FramesOut, mut rx: OutboxRx, sink: Sink) -> Option<FramesOut> {
    let Sink { timeout: write_timeout, chunk: write_chunk, metrics } = sink;
    let mut tally = Tally::default();
    let reason = loop {
        match rx.next().await {
            None => break KickReason::None,
            Some(Next::Close(reason)) => break reason,
            Some(Next::Frame(f)) => {
                metrics.frame_out(&mut tally, &f);
                out.push(&f);
                while out.gathered() < write_chunk {
                    match rx.try_next() {
                        Some(f) => {
                            metrics.frame_out(&mut tally, &f);
                            out.push(&f)
                        }
                        None => break,
                    }
                }
                // Counted as written once the socket takes them (or the connection ends).
                let written = out.write(&rx, write_timeout, write_chunk).await;
                metrics.flush(&mut tally);
                match written {
                    Written::All => {}
                    Written::Stalled => break KickReason::SlowConsumer,
                    Written::Failed => return None,
                }
            }
        }
    };
    // Queued frames go out before the kick, except to a slow consumer: it cannot take them,
    // and they are freed now rather than when the connection ends.
    let mut dropped = 0;
    while let Some(f) = rx.try_next() {
        if reason != KickReason::SlowConsumer {
            metrics.frame_out(&mut tally, &f);
            out.push(&f);
        } else {
            dropped += 1;
        }
    }
    if reason == KickReason::SlowConsumer {
        metrics.slow_consumers.inc();
        metrics.push_drops.inc_by(dropped);
    }
    if reason != KickReason::None {
        let name = reason.variant_name().unwrap_or("closed");
        let kick = protocol::kick(reason, name);
        metrics.frame_out(&mut tally, &kick);
        out.push(&kick);
    }
    metrics.flush(&mut tally);
    out.close(reason, write_timeout).await
}

/// How a connection's writer writes, and where it counts what it wrote.
struct Sink {
    timeout: Duration,
    /// Bytes gathered into one write at most.
    chunk: usize,
    metrics: Arc<Metrics>,
}
