//! What the server counts, served as `GET /metrics` (OpenMetrics/Prometheus text).
//!
//! Counting sits on the hottest paths (every frame in and out), so it costs one relaxed
//! atomic add where it happens, and the writers of connections add their frames up locally
//! and hand them over once per write. Counts by operation, result code and push kind are
//! dense arrays indexed by the wire enum's value (`Dense`), not label maps: no lookup, no
//! lock. What is a level rather than a count (inbox depths, RocksDB's memory) is read when
//! scraped (`Snapshot`), by whoever owns it.
//!
//! Names, meanings and the alerts to set on them: `docs/operations.md`, "Metrics".

mod dense;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use dense::{Dense, Snapshot};

use crate::protocol::{self, wire, Peek};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Refusal {
    /// `limits.max_connections` reached.
    Limit,
    /// `accept` failed (out of file descriptors and the like).
    AcceptError,
    /// Plain bytes on a TLS-only port (answered with `TlsRequired`).
    TlsRequired,
    /// The TLS handshake failed or timed out.
    TlsHandshake,
    /// A WebSocket upgrade from an origin not allowed (`web.origins`).
    Origin,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: Refusal,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabel {
    /// "ok", or the `ErrorCode` name of the refusal.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// The group-commit writer's measures (`store::writer`).
#[derive(Clone)]
pub struct WriterMetrics {
    /// Commits merged into one RocksDB write.
    pub group_size: Histogram,
    /// One group's write, its fdatasync included in `sync` mode.
    pub write_seconds: Histogram,
    /// One WAL fdatasync of `wal` mode's syncer thread, or of a sync round (`sync` mode with
    /// shards writing their own groups).
    pub sync_seconds: Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        WriterMetrics {
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            write_seconds: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
            sync_seconds: Histogram::new(exponential_buckets(0.000_025, 2.0, 16)),
        }
    }
}

/// One server's counters. Shared (`Arc`) by the listener, sessions, shards, the writer and
/// the HTTP API; every server in a process has its own (tests run several).
pub struct Metrics {
    pub accepted: Counter,
    /// Sessions started, by transport (`tcp`, `tls`, `ws`).
    sessions: Family<KindLabel, Counter>,
    /// Sessions moved to their user's shard thread after login (`sessions_on_shards`).
    pub sessions_moved: Counter,
    refused: Family<ReasonLabel, Counter>,
    pub open: Gauge,
    logins: Family<LoginLabel, Counter>,
    pub frames_in: Counter,
    pub frames_out: Counter,
    pub bytes_out: Counter,
    /// Requests by operation (`wire::Request`).
    pub requests: Dense,
    /// Answers by result (`wire::ErrorCode`; `None` is success).
    pub answers: Dense,
    /// Pushes written to sockets by kind (`wire::Push`; `MessagePush` is a delivery).
    pub pushes: Dense,
    sent: Family<KindLabel, Counter>,
    pub sent_c2c: Counter,
    pub sent_group: Counter,
    /// Frames a connection could not take: refused by a full queue, or dropped at its close
    /// as a slow consumer.
    pub push_drops: Counter,
    pub slow_consumers: Counter,
    http: Family<StatusLabel, Counter>,
    pub writer: WriterMetrics,
    /// Nanoseconds each shard spent running commands.
    busy_ns: Arc<[AtomicU64]>,
}

impl Metrics {
    pub fn new(shards: usize) -> Arc<Metrics> {
        let sent = Family::<KindLabel, Counter>::default();
        let sent_c2c = sent.get_or_create(&KindLabel { kind: "c2c" }).clone();
        let sent_group = sent.get_or_create(&KindLabel { kind: "group" }).clone();
        Arc::new(Metrics {
            accepted: Counter::default(),
            sessions: Family::default(),
            sessions_moved: Counter::default(),
            refused: Family::default(),
            open: Gauge::default(),
            logins: Family::default(),
            frames_in: Counter::default(),
            frames_out: Counter::default(),
            bytes_out: Counter::default(),
            requests: Dense::new(
                "op",
                dense::names(wire::Request::ENUM_VALUES.iter().map(|r| (r.0 as usize, r.variant_name()))),
            ),
            answers: Dense::new(
                "result",
                dense::names(wire::ErrorCode::ENUM_VALUES.iter().map(|c| (c.0 as usize, result_name(*c)))),
            ),
            pushes: Dense::new(
                "kind",
                dense::names(wire::Push::ENUM_VALUES.iter().map(|p| (p.0 as usize, p.variant_name()))),
            ),
            sent,
            sent_c2c,
            sent_group,
            push_drops: Counter::default(),
            slow_consumers: Counter::default(),
            http: Family::default(),
            writer: WriterMetrics::default(),
            busy_ns: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Counts a connection as open until the guard drops.
    pub fn hold_open(&self) -> Open {
        self.open.inc();
        Open(self.open.clone())
    }

    pub fn refused(&self, reason: Refusal) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A session started over `kind` (`Conn::kind`).
    pub fn session_started(&self, kind: &'static str) {
        self.sessions.get_or_create(&KindLabel { kind }).inc();
    }

    /// A login's outcome (`ErrorCode::None`: logged in).
    pub fn login(&self, code: wire::ErrorCode) {
        self.logins.get_or_create(&LoginLabel { result: result_name(code).unwrap_or("unknown").to_owned() }).inc();
    }

    pub fn request(&self, op: wire::Request) {
        self.requests.inc(op.0 as usize);
    }

    /// An HTTP API answer's status.
    pub fn http_status(&self, status: u16) {
        self.http.get_or_create(&StatusLabel { status }).inc();
    }

    /// Adds what shard `shard` spent running one batch of commands.
    pub fn busy(&self, shard: usize, ns: u64) {
        if let Some(c) = self.busy_ns.get(shard) {
            c.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// Counts one frame handed to a client (or to the HTTP API's caller) by its kind.
    pub fn frame_out(&self, tally: &mut Tally, frame: &[u8]) {
        tally.frames += 1;
        tally.bytes += frame.len() as u64;
        match protocol::peek(frame) {
            Peek::Answer(wire::ErrorCode::None) => tally.ok += 1,
            Peek::Answer(code) => self.answers.inc(code.0 as usize),
            Peek::Push(wire::Push::MessagePush) => tally.messages += 1,
            Peek::Push(p) => self.pushes.inc(p.0 as usize),
            Peek::Other => {}
        }
    }

    /// Counts the result of an answer handed over some other way than a connection's writer
    /// (the HTTP API's).
    pub fn answer(&self, frame: &[u8]) {
        if let Peek::Answer(code) = protocol::peek(frame) {
            self.answers.inc(code.0 as usize);
        }
    }

    /// Hands a writer's local counts over.
    pub fn flush(&self, tally: &mut Tally) {
        if tally.frames == 0 {
            return;
        }
        self.frames_out.inc_by(tally.frames);
        self.bytes_out.inc_by(tally.bytes);
        if tally.ok > 0 {
            self.answers.add(wire::ErrorCode::None.0 as usize, tally.ok);
        }
        if tally.messages > 0 {
            self.pushes.add(wire::Push::MessagePush.0 as usize, tally.messages);
        }
        *tally = Tally::default();
    }

    /// The text exposition of every metric, with `live` (what is read when scraped).
    pub fn render(&self, live: Snapshot) -> String {
        let mut r = Registry::with_prefix("im");
        r.register("connections_accepted", "Connections accepted on the binary listener", self.accepted.clone());
        r.register("connections_refused", "Connections refused, by reason", self.refused.clone());
        r.register("sessions", "Sessions started, by transport", self.sessions.clone());
        r.register(
            "sessions_moved",
            "Sessions moved to their user's shard thread after login",
            self.sessions_moved.clone(),
        );
        r.register("connections_open", "Binary-protocol connections open now", self.open.clone());
        r.register("logins", "Login attempts by result (ok or the error's name)", self.logins.clone());
        r.register("frames_in", "Frames read from clients", self.frames_in.clone());
        r.register("frames_out", "Frames written to clients (answers and pushes)", self.frames_out.clone());
        r.register("bytes_out", "Bytes of frames written to clients", self.bytes_out.clone());
        r.register("messages_sent", "Messages stored and acknowledged, by conversation kind", self.sent.clone());
        r.register(
            "push_drops",
            "Frames a connection could not take (full queue, slow consumer)",
            self.push_drops.clone(),
        );
        r.register(
            "slow_consumer_disconnects",
            "Connections closed because they did not read",
            self.slow_consumers.clone(),
        );
        r.register("http_requests", "HTTP API answers by status", self.http.clone());
        r.register("commit_group_size", "Commits merged into one RocksDB write", self.writer.group_size.clone());
        r.register(
            "store_write_seconds",
            "One group's RocksDB write (with its fdatasync in sync mode)",
            self.writer.write_seconds.clone(),
        );
        r.register("store_wal_sync_seconds", "One WAL fdatasync (wal mode)", self.writer.sync_seconds.clone());
        let busy: Vec<u64> = self.busy_ns.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        r.register_collector(Box::new(dense::Collected {
            requests: self.requests.clone(),
            answers: self.answers.clone(),
            pushes: self.pushes.clone(),
            busy_ns: busy,
            live,
        }));
        let mut out = String::with_capacity(16 << 10);
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }
}

/// An open connection, counted until dropped.
pub struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A connection writer's counts since its last `Metrics::flush`.
#[derive(Default)]
pub struct Tally {
    frames: u64,
    bytes: u64,
    ok: u64,
    messages: u64,
}

/// "ok" for success, else the code's name.
fn result_name(c: wire::ErrorCode) -> Option<&'static str> {
    if c == wire::ErrorCode::None {
        Some("ok")
    } else {
        c.variant_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_counted_by_kind() {
        let m = Metrics::new(2);
        let mut t = Tally::default();
        m.frame_out(&mut t, &protocol::ok(7));
        m.frame_out(&mut t, &protocol::error(8, wire::ErrorCode::UserNotFound, "no"));
        m.frame_out(&mut t, &protocol::kick(wire::KickReason::IdleTimeout, "idle"));
        m.flush(&mut t);
        m.request(wire::Request::SendMessageReq);
        m.busy(1, 1_500_000_000);
        let text = m.render(Snapshot::default());
        assert!(text.contains("im_frames_out_total 3"), "{text}");
        assert!(text.contains("im_answers_total{result=\"ok\"} 1"), "{text}");
        assert!(text.contains("im_answers_total{result=\"UserNotFound\"} 1"), "{text}");
        assert!(text.contains("im_pushes_total{kind=\"KickPush\"} 1"), "{text}");
        assert!(text.contains("im_requests_total{op=\"SendMessageReq\"} 1"), "{text}");
        assert!(text.contains("im_requests_total{op=\"LoginReq\"} 0"), "{text}");
        assert!(text.contains("im_shard_busy_seconds_total{shard=\"1\"} 1.5"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
