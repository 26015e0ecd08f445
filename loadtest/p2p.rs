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
use hdrhistogram::Histogram;
use imserver::protocol::wire;

use crate::conn::{self, Target};
use crate::frames::{see, AckTemplate, FrameReader, Seen, SendTemplate};
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

/// How long a closed-loop sender waits for an answer before it gives up.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Runs one sender until `stop`; returns its send->ack histogram and (open loop) how late
/// each send left after its scheduled time (µs, the generator's own lag: its timers have
/// millisecond resolution, so it is part of every open-loop latency).
pub async fn sender(
    t: Target,
    me: String,
    to: String,
    opts: Arc<Opts>,
    c: Arc<Counters>,
    epoch: Instant,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let (rd, mut wr) = conn::login(&t, &me, wire::ClientType::Backend, "load").await?;
    let mut rd = FrameReader::new(rd);
    let tmpl = SendTemplate::new(opts.group, &to, opts.payload)?;
    let mut h = histogram();
    let mut lag = histogram();
    let mut k: u64 = 0;
    let mut inflight: usize = 0;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let interval = opts.rate.map(|r| Duration::from_secs_f64(opts.pairs as f64 / r.max(0.001)));
    let mut next_at = Instant::now();
    // One timer for the whole run: the open loop's next send, or the closed loop's watchdog
    // (reset lazily, when it fires, to the last answer's time plus the bound).
    let mut last_answer = Instant::now();
    let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(next_at));
    tokio::pin!(timer);
    loop {
        let stopping = c.stop.load(Ordering::Relaxed);
        if stopping && inflight == 0 {
            break;
        }
        // Fill the window (closed loop) or catch up with the schedule (open loop).
        if !stopping {
            match interval {
                None => {
                    let now = now_ns(epoch);
                    while inflight < opts.window {
                        k += 1;
                        tmpl.put(&mut buf, k, now);
                        inflight += 1;
                    }
                }
                Some(iv) => {
                    let now = Instant::now();
                    let measuring = c.measuring.load(Ordering::Relaxed);
                    while now >= next_at {
                        if measuring {
                            let _ = lag.record(now.duration_since(next_at).as_micros() as u64);
                        }
                        k += 1;
                        // The scheduled time, not the actual one.
                        tmpl.put(&mut buf, k, next_at.saturating_duration_since(epoch).as_nanos() as u64);
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
        // Wait for answers, or (open loop) for the next scheduled send.
        match interval {
            Some(_) if !stopping => timer.as_mut().reset(tokio::time::Instant::from_std(next_at)),
            _ if timer.is_elapsed() => {
                timer.as_mut().reset(tokio::time::Instant::from_std(last_answer + ANSWER_WITHIN))
            }
            _ => {}
        }
        tokio::select! {
            r = rd.read() => if !r? { anyhow::bail!("{me}: connection closed") },
            _ = &mut timer => {
                if (interval.is_none() || stopping) && last_answer.elapsed() >= ANSWER_WITHIN {
                    anyhow::bail!("{me}: no answer for 10 s with {inflight} in flight");
                }
                continue;
            }
        }
        let measuring = c.measuring.load(Ordering::Relaxed);
        let now = now_ns(epoch);
        let (mut acked, mut errors) = (0, 0);
        while let Some(r) = rd.pop()? {
            let Some(Seen::Answer { ok_send, sent_ns }) = see(rd.frame(r)) else { continue };
            inflight = inflight.saturating_sub(1);
            if !ok_send {
                errors += 1;
                continue;
            }
            acked += 1;
            if let (true, Some(sent)) = (measuring, sent_ns) {
                let _ = h.record(now.saturating_sub(sent) / 1000);
            }
        }
        if acked + errors > 0 {
            last_answer = Instant::now();
            c.acked.fetch_add(acked, Ordering::Relaxed);
            if measuring {
                c.win_acked.fetch_add(acked, Ordering::Relaxed);
            }
            if errors > 0 {
                c.errors.fetch_add(errors, Ordering::Relaxed);
            }
        }
    }
    c.sent.fetch_add(k, Ordering::Relaxed);
    Ok((h, lag))
}

/// Runs one receiver until `done`; returns its send->delivery histogram (µs). A group
/// member (`group`) acks cumulatively: one receive-ack per batch of frames read, for the
/// highest seq, as a real client does; a P2P receiver acks each message to its sender.
pub async fn receiver(
    t: Target,
    me: String,
    c: Arc<Counters>,
    epoch: Instant,
    mut done: tokio::sync::watch::Receiver<bool>,
    group: Option<(u64, u64)>,
) -> anyhow::Result<Histogram<u64>> {
    let (rd, mut wr) = conn::login(&t, &me, wire::ClientType::Android, "load").await?;
    let mut rd = FrameReader::new(rd);
    c.ready.fetch_add(1, Ordering::Relaxed);
    let mut h = histogram();
    let mut last_seq = 0u64;
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut req = 1u64;
    // The receive-ack of the one conversation this receiver reads (its sender, or its group),
    // made from the first message.
    let mut ack: Option<AckTemplate> = None;
    // A group member's cumulative ack not sent yet: (seq, unacked count, since).
    let mut group_ack: Option<(u64, u64, Instant)> = None;
    // A group's pending ack is sent at the latest `ack_ms` after its first message, even if
    // nothing more arrives: a timer only while one is pending.
    let ack_ms = Duration::from_millis(group.map_or(0, |g| g.1));
    let ack_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(ack_timer);
    let mut armed = None;
    loop {
        if let Some((_, _, since)) = group_ack {
            if armed != Some(since) {
                armed = Some(since);
                ack_timer.as_mut().reset(tokio::time::Instant::from_std(since + ack_ms));
            }
        }
        tokio::select! {
            r = rd.read() => if !matches!(r, Ok(true)) { break },
            _ = &mut ack_timer, if group_ack.is_some() => {}
            _ = done.wait_for(|d| *d) => break,
        }
        let measuring = c.measuring.load(Ordering::Relaxed);
        let now = now_ns(epoch);
        let (mut delivered, mut acks, mut dups, mut gaps) = (0, 0, 0, 0);
        while let Some(r) = rd.pop()? {
            let Some(Seen::Message(m)) = see(rd.frame(r)) else { continue };
            let seq = m.seq();
            if seq <= last_seq {
                dups += 1;
                continue;
            }
            if seq != last_seq + 1 {
                gaps += 1;
            }
            last_seq = seq;
            delivered += 1;
            if measuring {
                if let Some(sent) = m.sent_ns() {
                    let _ = h.record(now.saturating_sub(sent) / 1000);
                }
            }
            if ack.is_none() {
                let conv = if group.is_some() { m.to() } else { m.sender() };
                ack = Some(AckTemplate::new(group.is_some(), conv.unwrap_or_default())?);
            }
            if group.is_some() {
                let (n, since) = group_ack.map_or((0, Instant::now()), |a| (a.1, a.2));
                group_ack = Some((seq, n + 1, since));
            } else if let Some(a) = &ack {
                req += 1;
                acks += 1;
                a.put(&mut out, req, m.server_id(), seq);
            }
        }
        let due = |a: &(u64, u64, Instant)| {
            group.is_some_and(|(every, ms)| a.1 >= every || a.2.elapsed() >= Duration::from_millis(ms))
        };
        if let (Some((seq, _, _)), Some(a)) = (group_ack.take_if(|a| due(a)), &ack) {
            req += 1;
            acks += 1;
            a.put(&mut out, req, 0, seq);
        }
        if delivered > 0 {
            c.delivered.fetch_add(delivered, Ordering::Relaxed);
            if measuring {
                c.win_delivered.fetch_add(delivered, Ordering::Relaxed);
            }
        }
        if acks > 0 {
            c.acks.fetch_add(acks, Ordering::Relaxed);
        }
        if dups > 0 {
            c.duplicates.fetch_add(dups, Ordering::Relaxed);
        }
        if gaps > 0 {
            c.out_of_order.fetch_add(gaps, Ordering::Relaxed);
        }
        if !out.is_empty() {
            conn::send(&mut wr, &out).await?;
            out.clear();
        }
    }
    Ok(h)
}
