//! The after-hook queue (`CF_HOOK_EVENTS`). An event is written in the same batch as the change
//! it reports (`Batch::put_hook_event`); the write gives it its key, the app then a sequence
//! in commit order, so a reader taking keys in order sees events in the order their changes
//! became durable, across shards and restarts. Bounded per app (`set_limit`): past the bound
//! the writer leaves new events out (the change itself is written), counts them (`dropped`)
//! and logs; what is already queued is never dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rocksdb::{Direction, IteratorMode, DB};

use super::batch::Op;
use super::{cf, keys, rocks, Store, StoreError};
use crate::domain::ids::AppId;

#[derive(Default)]
struct Counts {
    queued: HashMap<AppId, u64>,
    limits: HashMap<AppId, u64>,
    warned: Option<Instant>,
}

/// The queue's bookkeeping, shared by the writer and the readers.
pub struct Events {
    next: AtomicU64,
    counts: Mutex<Counts>,
    dropped: AtomicU64,
    written: tokio::sync::Notify,
    /// Held by a writer from the keys' assignment until its write returned (`order`).
    order: Mutex<()>,
    /// The last sequence whose write returned.
    written_upto: AtomicU64,
    /// Readers see events up to `durable_upto` only (`sync` mode with shards writing their
    /// own groups: a write is visible before its WAL sync, which publishes it).
    bounded: AtomicBool,
    durable_upto: AtomicU64,
}

impl Events {
    /// Reads what is queued: the next sequence and each app's count.
    pub(super) fn open(db: &DB) -> Result<Events, StoreError> {
        let mut counts = Counts::default();
        let mut last = 0;
        for kv in db.iterator_cf(cf(db, keys::CF_HOOK_EVENTS)?, IteratorMode::Start) {
            let (k, _) = kv.map_err(rocks)?;
            let (app, seq) = keys::decode_hook_event(&k).ok_or_else(|| StoreError::Corrupt("hook event key".into()))?;
            *counts.queued.entry(app).or_default() += 1;
            last = last.max(seq);
        }
        Ok(Events {
            next: AtomicU64::new(last + 1),
            counts: Mutex::new(counts),
            dropped: AtomicU64::new(0),
            written: tokio::sync::Notify::new(),
            order: Mutex::new(()),
            written_upto: AtomicU64::new(last),
            bounded: AtomicBool::new(false),
            durable_upto: AtomicU64::new(last),
        })
    }

    /// The puts for the events of `ops` (the writer, for one group, in commit order).
    pub(super) fn assign<'a>(&self, ops: impl Iterator<Item = &'a Op>) -> Vec<Op> {
        let mut out = Vec::new();
        // Most groups have no event: the lock is taken at the first one.
        let mut events = ops.filter_map(|op| match op {
            Op::Event(app, v) => Some((app, v)),
            _ => None,
        });
        let Some(first) = events.next() else { return out };
        let mut c = self.counts.lock();
        for (app, v) in std::iter::once(first).chain(events) {
            let limit = c.limits.get(app).copied().unwrap_or(u64::MAX);
            let queued = c.queued.entry(*app).or_default();
            if *queued >= limit {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if c.warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    c.warned = Some(Instant::now());
                    tracing::warn!(app = app.0, limit, dropped = n, "after-hook queue full: new events are dropped");
                }
                continue;
            }
            *queued += 1;
            let seq = self.next.fetch_add(1, Ordering::Relaxed);
            out.push(Op::Put(keys::CF_HOOK_EVENTS, keys::hook_event(*app, seq), v.clone()));
        }
        out
    }

    /// Held across assigning keys and writing them. With several writers (shards writing
    /// their own groups) event n+1 could otherwise become visible before event n, and a
    /// reader that moved past n+1 would skip n until the next start.
    pub(super) fn order(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.order.lock()
    }

    /// A group with events was written (the order lock still held): its events are the last
    /// assigned. Wakes the readers.
    pub(super) fn written(&self) {
        self.written_upto.store(self.next.load(Ordering::Relaxed) - 1, Ordering::Release);
        self.written.notify_waiters();
    }

    /// From now on readers see only the events a WAL sync covered (`durable`).
    pub(super) fn bound_to_syncs(&self) {
        self.bounded.store(true, Ordering::Release);
    }

    /// The last event whose write returned: a WAL sync that starts now covers it.
    pub(super) fn written_upto(&self) -> u64 {
        self.written_upto.load(Ordering::Acquire)
    }

    /// A WAL sync covered every event up to `seq`: readers may see them. Wakes the readers.
    pub(super) fn durable(&self, seq: u64) {
        self.durable_upto.fetch_max(seq, Ordering::AcqRel);
        self.written.notify_waiters();
    }

    /// The last event a reader may see.
    fn readable_upto(&self) -> u64 {
        if self.bounded.load(Ordering::Acquire) {
            self.durable_upto.load(Ordering::Acquire)
        } else {
            u64::MAX
        }
    }

    /// At most `max` events of `app` are queued; more are dropped.
    pub fn set_limit(&self, app: AppId, max: u64) {
        self.counts.lock().limits.insert(app, max);
    }

    /// `n` events of `app` were delivered and deleted.
    pub fn delivered(&self, app: AppId, n: u64) {
        let mut c = self.counts.lock();
        let q = c.queued.entry(app).or_default();
        *q = q.saturating_sub(n);
    }

    /// Events of `app` queued now.
    pub fn queued(&self, app: AppId) -> u64 {
        self.counts.lock().queued.get(&app).copied().unwrap_or(0)
    }

    /// Events left out since start because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A future that completes at the next write of events (register it before reading).
    pub fn next_write(&self) -> tokio::sync::futures::Notified<'_> {
        self.written.notified()
    }
}

impl Store {
    /// Up to `limit` queued events of `app` after `after`, in order: (seq, event).
    pub fn hook_events(&self, app: AppId, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let from = keys::hook_event(app, after.saturating_add(1));
        let upto = self.events.readable_upto();
        let mut out = Vec::new();
        for kv in
            self.db.iterator_cf(cf(&self.db, keys::CF_HOOK_EVENTS)?, IteratorMode::From(&from, Direction::Forward))
        {
            let (k, v) = kv.map_err(rocks)?;
            match keys::decode_hook_event(&k) {
                Some((a, seq)) if a == app && seq <= upto => out.push((seq, v.to_vec())),
                _ => break,
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}
