//! `imload p2p` (and the sending and receiving of `imload fanout`): pairs of users, one
//! sender and one receiver connection per pair. Closed loop
//! (`--window W`: at most W unacknowledged sends per sender) or open loop (`--rate R`: a fixed
//! offered rate over all senders; latency is measured from each message's *scheduled* send
//! time, so a stalled server cannot hide its stall: no coordinated omission).
//!
//! Each body starts with its send time; each client id ends with it, so send->ack and
//! send->delivery latency need no shared state. Receivers check that every conversation
//! arrives in seq order without duplicates and send receive-acks as a real client does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::FutureExt;
use hdrhistogram::Histogram;
use imserver::protocol::{self, wire};

use crate::conn::{self, Target};
use crate::stats::histogram;

/// Shared counters, read by the progress line.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    pub out_of_order: AtomicU64,
    pub duplicates: AtomicU64,
    /// Inside the measurement window (after warm-up).
    pub measuring: AtomicBool,
    /// Senders stop sending.
    pub stop: AtomicBool,
    /// Counted inside the window.
    pub win_acked: AtomicU64,
    pub win_delivered: AtomicU64,
    /// Receivers logged in (the senders start once all are, so none misses the first
    /// messages and reads them as a gap).
    pub ready: AtomicU64,
    /// Receive-acks sent (group members ack cumulatively, so fewer than deliveries).
    pub acks: AtomicU64,
}

pub struct Opts {
    /// Senders (pairs, or groups).
    pub pairs: usize,
    pub window: usize,
    pub rate: Option<f64>,
    pub payload: usize,
    /// Senders write to groups (`imload fanout`) instead of users.
    pub group: bool,
    /// A group member acks once this many messages are unacknowledged, or `ack_ms` after
    /// the first of them, whichever comes first (as a mobile client batches its acks).
    pub ack_every: u64,
    pub ack_ms: u64,
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

fn body(payload: usize, t_ns: u64) -> Vec<u8> {
    let mut b = vec![0u8; payload.max(8)];
    b[..8].copy_from_slice(&t_ns.to_le_bytes());
    b
}

/// Runs one sender until `stop`; returns its send->ack histogram (µs).
pub async fn sender(
    t: Target,
    me: String,
    to: String,
    opts: Arc<Opts>,
    c: Arc<Counters>,
    epoch: Instant,
) -> anyhow::Result<Histogram<u64>> {
    let (mut rd, mut wr) = conn::login(&t, &me, wire::ClientType::Backend, "load").await?;
    let mut h = histogram();
    let mut k: u64 = 0;
    let mut inflight: usize = 0;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let interval = opts.rate.map(|r| Duration::from_secs_f64(opts.pairs as f64 / r.max(0.001)));
    let mut next_at = Instant::now();
    loop {
        let stopping = c.stop.load(Ordering::Relaxed);
        if stopping && inflight == 0 {
            break;
        }
        // Fill the window (closed loop) or catch up with the schedule (open loop).
        if !stopping {
            match interval {
                None => {
                    while inflight < opts.window {
                        k += 1;
                        let t_ns = now_ns(epoch);
                        buf.extend_from_slice(&conn::send_to(
                            k,
                            (opts.group, &to),
                            &format!("{k}:{t_ns}"),
                            &body(opts.payload, t_ns),
                        ));
                        inflight += 1;
                    }
                }
                Some(iv) => {
                    while Instant::now() >= next_at {
                        k += 1;
                        // The scheduled time, not the actual one.
                        let t_ns = next_at.saturating_duration_since(epoch).as_nanos() as u64;
                        buf.extend_from_slice(&conn::send_to(
                            k,
                            (opts.group, &to),
                            &format!("{k}:{t_ns}"),
                            &body(opts.payload, t_ns),
                        ));
                        inflight += 1;
                        next_at += iv;
                    }
                }
            }
        }
        if !buf.is_empty() {
            conn::send(&mut wr, &buf).await?;
            buf.clear();
        }
        // Wait for an answer, or (open loop) for the next scheduled send.
        let frame = match interval {
            Some(_) if !c.stop.load(Ordering::Relaxed) => {
                let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next_at));
                tokio::select! {
                    f = conn::next(&mut rd) => f,
                    _ = sleep => continue,
                }
            }
            _ => match tokio::time::timeout(Duration::from_secs(10), conn::next(&mut rd)).await {
                Ok(f) => f,
                Err(_) => anyhow::bail!("{me}: no answer for 10 s with {inflight} in flight"),
            },
        };
        let Some(frame) = frame else { anyhow::bail!("{me}: connection closed") };
        let mut frames = vec![frame];
        // Take whatever else is already there without waiting.
        while let Some(Some(f)) = conn::next(&mut rd).now_or_never() {
            frames.push(f);
        }
        let measuring = c.measuring.load(Ordering::Relaxed);
        for f in frames {
            let Ok(sf) = protocol::decode_server(&f) else { continue };
            if sf.id() == 0 {
                continue; // receipts and other pushes
            }
            inflight = inflight.saturating_sub(1);
            if let Some(a) = sf.response_as_send_ack() {
                c.acked.fetch_add(1, Ordering::Relaxed);
                let sent_ns = a.client_id().and_then(|s| s.split(':').nth(1)).and_then(|s| s.parse::<u64>().ok());
                if measuring {
                    c.win_acked.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = sent_ns {
                        let _ = h.record(now_ns(epoch).saturating_sub(s) / 1000);
                    }
                }
            } else {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    c.sent.fetch_add(k, Ordering::Relaxed);
    Ok(h)
}

/// Runs one receiver until `done`; returns its send->delivery histogram (µs). A group
/// member (`group`) acks cumulatively: one receive-ack per batch of frames read, for the
/// highest seq, as a real client does; a P2P receiver acks each message to its sender.
pub async fn receiver(
    t: Target,
    me: String,
    c: Arc<Counters>,
    epoch: Instant,
    done: Arc<AtomicBool>,
    group: Option<(u64, u64)>,
) -> anyhow::Result<Histogram<u64>> {
    let (mut rd, mut wr) = conn::login(&t, &me, wire::ClientType::Android, "load").await?;
    c.ready.fetch_add(1, Ordering::Relaxed);
    let mut h = histogram();
    let mut last_seq = 0u64;
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut req = 1u64;
    // A group member's cumulative ack not sent yet: (group, seq, unacked count, since).
    let mut group_ack: Option<(String, u64, u64, Instant)> = None;
    loop {
        let f = tokio::select! {
            f = conn::next(&mut rd) => f,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if done.load(Ordering::Relaxed) { break } else { continue }
            }
        };
        let Some(f) = f else { break };
        let mut frames = vec![f];
        while let Some(Some(f)) = conn::next(&mut rd).now_or_never() {
            frames.push(f);
        }
        let measuring = c.measuring.load(Ordering::Relaxed);
        for f in frames {
            let Ok(sf) = protocol::decode_server(&f) else { continue };
            let Some(m) = sf.event_as_message_push().and_then(|p| p.message()) else { continue };
            let seq = m.seq();
            if seq <= last_seq {
                c.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if seq != last_seq + 1 {
                c.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            last_seq = seq;
            c.delivered.fetch_add(1, Ordering::Relaxed);
            if measuring {
                c.win_delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(b) = m.body().map(|b| b.bytes()).filter(|b| b.len() >= 8) {
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&b[..8]);
                    let _ = h.record(now_ns(epoch).saturating_sub(u64::from_le_bytes(t)) / 1000);
                }
            }
            if group.is_some() {
                let since = group_ack.as_ref().map_or_else(Instant::now, |a| a.3);
                let n = group_ack.as_ref().map_or(0, |a| a.2) + 1;
                group_ack = Some((m.to().unwrap_or_default().to_owned(), seq, n, since));
            } else {
                req += 1;
                c.acks.fetch_add(1, Ordering::Relaxed);
                out.extend_from_slice(&conn::receive_ack(req, m.from_user().unwrap_or_default(), m.server_id(), seq));
            }
        }
        let due = |a: &(String, u64, u64, Instant)| {
            group.is_some_and(|(every, ms)| a.2 >= every || a.3.elapsed() >= Duration::from_millis(ms))
        };
        if let Some((g, seq, _, _)) = group_ack.take_if(|a| due(a)) {
            req += 1;
            c.acks.fetch_add(1, Ordering::Relaxed);
            out.extend_from_slice(&conn::group_receive_ack(req, &g, seq));
        }
        if !out.is_empty() {
            conn::send(&mut wr, &out).await?;
            out.clear();
        }
    }
    Ok(h)
}
