//! Counters indexed by a wire enum's value, and what is read only when scraped.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Label values by enum value; `None` where the value has no member.
pub(super) fn names(members: impl Iterator<Item = (usize, Option<&'static str>)>) -> Vec<Option<&'static str>> {
    let members: Vec<_> = members.collect();
    let len = members.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let mut out = vec![None; len];
    for (i, n) in members {
        out[i] = n;
    }
    out
}

/// One counter per member of a wire enum, by its value: an increment is an index and a relaxed
/// add. Values past the enum (a newer peer's) count under the label "unknown".
#[derive(Clone, Debug)]
pub struct Dense {
    label: &'static str,
    names: Arc<[Option<&'static str>]>,
    cells: Arc<[AtomicU64]>,
}

impl Dense {
    pub(super) fn new(label: &'static str, names: Vec<Option<&'static str>>) -> Dense {
        let cells = (0..names.len() + 1).map(|_| AtomicU64::new(0)).collect();
        Dense { label, names: names.into(), cells }
    }

    pub fn inc(&self, i: usize) {
        self.add(i, 1);
    }

    pub fn add(&self, i: usize, n: u64) {
        let i = i.min(self.names.len());
        self.cells[i].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, i: usize) -> u64 {
        self.cells[i.min(self.names.len())].load(Ordering::Relaxed)
    }

    /// Writes the family; with `zeros`, members never counted too (a short, fixed set).
    fn encode(&self, enc: &mut DescriptorEncoder, name: &str, help: &str, zeros: bool) -> fmt::Result {
        let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (i, cell) in self.cells.iter().enumerate() {
            let v = cell.load(Ordering::Relaxed);
            let label = match self.names.get(i) {
                Some(Some(n)) => *n,
                Some(None) => continue,
                None => "unknown",
            };
            // The enums' `NONE` members are not operations or pushes.
            if label == "NONE" || (v == 0 && !zeros) {
                continue;
            }
            let labels = [(self.label, label)];
            ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Levels read when scraped, by whoever owns them.
#[derive(Default, Debug)]
pub struct Snapshot {
    /// Each shard's inbox depths: (from sessions, from other shards).
    pub inboxes: Vec<(u64, u64)>,
    /// (name, help, value) of gauges such as RocksDB's memory use.
    pub gauges: Vec<(&'static str, &'static str, i64)>,
    /// (name, help, value) of counters kept elsewhere (the after-hook queue's drops).
    pub counters: Vec<(&'static str, &'static str, u64)>,
}

#[derive(Debug)]
pub(super) struct Collected {
    pub requests: Dense,
    pub answers: Dense,
    pub pushes: Dense,
    pub busy_ns: Vec<u64>,
    pub live: Snapshot,
}

impl Collector for Collected {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.requests.encode(&mut enc, "requests", "Requests taken, by operation", true)?;
        self.answers.encode(&mut enc, "answers", "Answers sent, by result (ok or the error's name)", false)?;
        self.pushes.encode(
            &mut enc,
            "pushes",
            "Pushes written to sockets, by kind (MessagePush: a delivery)",
            false,
        )?;
        {
            let mut f = enc.encode_descriptor(
                "shard_busy_seconds",
                "Time each shard spent running commands",
                None,
                MetricType::Counter,
            )?;
            for (i, ns) in self.busy_ns.iter().enumerate() {
                let shard = i.to_string();
                ConstCounter::new(*ns as f64 / 1e9).encode(f.encode_family(&[("shard", shard.as_str())])?)?;
            }
        }
        {
            let mut f = enc.encode_descriptor(
                "shard_inbox_depth",
                "Commands queued in each shard's inboxes",
                None,
                MetricType::Gauge,
            )?;
            for (i, (sessions, peers)) in self.live.inboxes.iter().enumerate() {
                let shard = i.to_string();
                for (from, v) in [("sessions", sessions), ("shards", peers)] {
                    let labels = [("shard", shard.as_str()), ("from", from)];
                    ConstGauge::new(*v as i64).encode(f.encode_family(&labels)?)?;
                }
            }
        }
        for (name, help, v) in &self.live.gauges {
            ConstGauge::new(*v).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        for (name, help, v) in &self.live.counters {
            ConstCounter::new(*v).encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }
}
