//! One connection, over any transport (`transport`: TCP, TLS, WebSocket): the login
//! handshake, heartbeats and idle timeout, and the request loop. Requests are parsed here (`dispatch`) and run on shards; their answers, and every
//! push, reach the socket through this connection's bounded `Outbox`.
//!
//! The reader stops reading while `max_inflight_per_conn` requests are unanswered, so a client
//! cannot queue unbounded work. The writer batches queued frames into few syscalls.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc::error::SendError;
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::dispatch;
use super::transport::{self, Conn, Detached, FramesIn, FramesOut, InError, Written};
use super::{login, Ctx, Handoff};
use crate::domain::ids::ConnId;
use crate::domain::ratelimit::{Bucket, Verdict};
use crate::metrics::{Metrics, Tally};
use crate::protocol::{self, wire::ErrorCode, wire::KickReason};
use crate::shard::cmd::Disconnect;
use crate::shard::outbox::{Next, Outbox, OutboxRx};

/// A session that logged in and runs here, holding its connection permit and open count.
type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

pub async fn run(stream: Conn, ctx: Arc<Ctx>, permit: OwnedSemaphorePermit, closing: watch::Receiver<bool>) {
    // The login in a box of its own, freed before the session runs: a future holds room for
    // the largest state of any step it awaits inline, for the connection's whole life.
    let serving = {
        let accepted = Box::pin(accept(stream, ctx, permit, closing));
        accepted.await
    };
    if let Some(s) = serving {
        s.await
    }
}

/// Reads and checks the login frame; a refused login is answered here (`None`), a plain TCP
/// user session moves to its shard thread (`None`), any other is given back to run here.
async fn accept(
    stream: Conn,
    ctx: Arc<Ctx>,
    permit: OwnedSemaphorePermit,
    mut closing: watch::Receiver<bool>,
) -> Option<Serving> {
    let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
    ctx.metrics.session_started(stream.kind());
    // A small read buffer to start with: an idle connection should cost little memory; it
    // grows for larger frames (up to the frame limit).
    let (mut reader, wr) = stream.split(ctx.cfg.limits.max_login_frame, ctx.cfg.limits.read_buffer_start);
    let open = ctx.metrics.hold_open();

    // Login: the first frame, within the timeout. The writer starts once it is known where
    // the session runs.
    let first = tokio::select! {
        r = tokio::time::timeout(ctx.cfg.login_timeout(), reader.next()) => r,
        _ = closing.changed() => {
            let end = Box::pin(refuse(&ctx, conn, reader, wr, |outbox| outbox.close(KickReason::ServerShutdown)));
            end.await;
            return None;
        }
    };
    let buf = match first {
        Ok(Some(Ok(buf))) => buf,
        other => {
            let end = Box::pin(refuse(&ctx, conn, reader, wr, |outbox| {
                match other {
                    Err(_) => {
                        ctx.metrics.login(ErrorCode::LoginTimeout);
                        outbox.send(protocol::error(0, ErrorCode::LoginTimeout, "no login within the timeout"));
                    }
                    Ok(Some(Err(e))) => frame_error(outbox, &e),
                    _ => {}
                }
                outbox.close(KickReason::None);
            }));
            end.await;
            return None;
        }
    };
    ctx.metrics.frames_in.inc();
    let login = match login::verify(&ctx, &buf) {
        Ok(v) => v,
        Err(r) => {
            let end = Box::pin(refuse(&ctx, conn, reader, wr, |outbox| {
                r.answer(&ctx, outbox);
                outbox.close(KickReason::None);
            }));
            end.await;
            return None;
        }
    };
    // A plain TCP user session moves to its user's shard thread (when configured): its
    // reads, writes and its own shard's work then share one thread.
    let stays = ctx.edge.shard_rt.is_empty() || login.admin;
    let (reader, wr) = if stays {
        (reader, wr)
    } else {
        match reader.detach(wr) {
            Detached::Kept(reader, wr) => (reader, wr),
            Detached::Lost => return None,
            Detached::Tcp(stream, read_buf) => {
                let shard = ctx.router.user_shard(login.app, &login.user);
                let m = Box::new(Moved { shard, stream, read_buf, conn, login, permit });
                // The listener spawns it on the shard. It stops taking hand-offs when the
                // server stops: then the session runs here, and closes at once.
                let Err(SendError(Handoff::Moved(m))) = ctx.edge.handoff.send(Handoff::Moved(m)).await else {
                    return None;
                };
                let max = ctx.cfg.limits.max_login_frame;
                let Ok((reader, wr)) = transport::attach(m.stream, m.read_buf, max, ctx.cfg.limits.read_buffer_start)
                else {
                    return None;
                };
                let held = (m.permit, open);
                return Some(Box::pin(serve(ctx, conn, reader, wr, m.login, closing, held)));
            }
        }
    };
    Some(Box::pin(serve(ctx, conn, reader, wr, login, closing, (permit, open))))
}

/// A plain TCP session on its way to its user's shard thread: the socket taken off the
/// connection thread, the bytes read behind its login frame, and its verified login.
pub struct Moved {
    pub shard: usize,
    stream: std::net::TcpStream,
    read_buf: bytes::Bytes,
    conn: ConnId,
    login: login::Verified,
    permit: OwnedSemaphorePermit,
}

/// A moved session, on its shard thread: the socket joins that thread's runtime, then the
/// session goes on as anywhere else.
pub async fn resume(m: Moved, ctx: Arc<Ctx>, closing: watch::Receiver<bool>) {
    let Moved { stream, read_buf, conn, login, permit: _permit, .. } = m;
    let max = ctx.cfg.limits.max_login_frame;
    let Ok((reader, wr)) = transport::attach(stream, read_buf, max, ctx.cfg.limits.read_buffer_start) else {
        return;
    };
    let open = ctx.metrics.hold_open();
    ctx.metrics.sessions_moved.inc();
    serve(ctx, conn, reader, wr, login, closing, (_permit, open)).await
}

/// A connection that did not log in: the writer sends what `answer` queues (an error, the
/// close), then the connection ends.
async fn refuse(ctx: &Ctx, conn: ConnId, reader: FramesIn, wr: FramesOut, answer: impl FnOnce(&Outbox)) {
    let (outbox, writer) = start_writer(ctx, conn, wr);
    answer(&outbox);
    finish(None, writer, reader, Duration::from_secs(ctx.cfg.timeouts.write_secs)).await
}

/// The connection's bounded outbox and the task writing it to the socket.
fn start_writer(ctx: &Ctx, conn: ConnId, wr: FramesOut) -> (Outbox, tokio::task::JoinHandle<Option<FramesOut>>) {
    let (outbox, orx) = Outbox::counting(conn, ctx.cfg.limits.outbound_queue, ctx.metrics.push_drops.clone());
    let write_timeout = Duration::from_secs(ctx.cfg.timeouts.write_secs);
    let sink = Sink { timeout: write_timeout, chunk: ctx.cfg.limits.write_chunk.max(1), metrics: ctx.metrics.clone() };
    (outbox, tokio::spawn(write_loop(wr, orx, sink)))
}

/// A logged-in connection (its ticket checked): registers the device with its user's shard,
/// then takes requests until the connection ends.
async fn serve(
    ctx: Arc<Ctx>,
    conn: ConnId,
    mut reader: FramesIn,
    wr: FramesOut,
    login: login::Verified,
    mut closing: watch::Receiver<bool>,
    // The connection permit and the open count, held to the end.
    _held: (OwnedSemaphorePermit, crate::metrics::Open),
) {
    let write_timeout = Duration::from_secs(ctx.cfg.timeouts.write_secs);
    let (outbox, mut writer) = start_writer(&ctx, conn, wr);
    // Boxed, like every step that runs once per connection (the login, the drain, the
    // disconnect, the end): a future holds room for the largest state of any step it awaits
    // inline, for the connection's whole life.
    // (The box is made in a statement of its own: a temporary lives to the end of its
    // statement, so `Box::pin(f).await` would still hold room for `f`.)
    let register = Box::pin(login::register(&ctx, conn, &outbox, login));
    let Some(sess) = register.await else {
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
                out.push(f);
                while out.gathered() < write_chunk {
                    match rx.try_next() {
                        Some(f) => {
                            metrics.frame_out(&mut tally, &f);
                            out.push(f)
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
            out.push(f);
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
        out.push(kick);
    }
    metrics.flush(&mut tally);
    // Boxed: the close runs once per connection, and inline its state would be part of
    // every writer task for the connection's whole life.
    let closing = Box::pin(out.close(reason, write_timeout));
    closing.await
}

/// How a connection's writer writes, and where it counts what it wrote.
struct Sink {
    timeout: Duration,
    /// Bytes gathered into one write at most.
    chunk: usize,
    metrics: Arc<Metrics>,
}
