//! The write paths: how a shard's commit group becomes durable before its `done` runs.
//!
//! - `writer` (a thread): shards hand `Commit`s to one writer thread through a bounded
//!   queue. It drains up to `max_group` of them, merges them into one `WriteBatch`, writes
//!   that once (fdatasync'ed in `sync` mode), and runs each commit's `done` in submission
//!   order, on its thread. A commit with no operations is a barrier: its `done` runs after
//!   every commit queued before it, from any shard.
//! - `shards` (direct): each shard writes its own group on its own thread. RocksDB groups
//!   concurrent writers into one WAL write by itself. Ordering between shards comes from
//!   causality instead of one queue: a shard sends another a command only after its own
//!   write returned (`Shard::flush`), and the WAL recovers a prefix, so the effect is never
//!   durable without its cause.
//!   - `wal` mode: `done` runs on the shard's thread once the write returned. A commit with
//!     no operations runs its `done` at once: everything this shard wrote has returned, and
//!     so has every write of another shard that caused it.
//!   - `sync` mode: the write is not fdatasync'ed (that would stall the shard, and its
//!     sessions, for every group). Its `done` goes to the WAL-sync thread, which takes what
//!     is queued, fdatasyncs the WAL once and then runs those `done`s in order, on its thread:
//!     every write that returned before a sync began is covered by it. A commit with no
//!     operations waits for the next sync, which covers everything written before it, by
//!     any shard. Writes are visible before they are durable here, so answers read straight
//!     from the store wait for a sync too (`Shard::after_durable`), and hook-event readers
//!     see only synced events (`store::events`).
//!
//! Either way an ack sent from `done` is only sent after its data is in the WAL (and synced
//! in `sync` mode: the writer thread's synced write is visible only after its fdatasync; the
//! direct path runs `done` after the sync).
//!
//! In `wal` mode a WAL syncer thread fdatasyncs the WAL every `wal_sync_ms` when something was
//! written since its last sync (RocksDB's `SyncWAL` runs beside writes). So a machine crash or
//! power loss loses at most the writes acknowledged in the last interval (plus up to two
//! fdatasync durations); a process crash loses nothing in either mode.
//!
//! On close, after the final WAL sync, the memtables are flushed to table files, so the next
//! start has no WAL to replay. When a write fails the store is marked failed: that group and
//! every later commit get `StoreError::Failed`, because the shards' memory is now ahead of the
//! disk. A restart rebuilds memory from what is durable.

use std::sync::Arc;
use std::thread::JoinHandle;

use rocksdb::DB;
use tokio::sync::mpsc;

use super::group::{start_syncer, Groups};
use super::{Batch, StoreError};
use crate::config::Durability;

pub use super::group::Measures;

/// What to run once a commit is durable (or has failed): on the writer thread, or on the
/// committing shard's thread. It must not block; it typically hands frames to connection
/// queues with `try_send`.
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub struct Commit {
    pub batch: Batch,
    pub done: Done,
}

/// The committing side, cloned into every shard.
#[derive(Clone)]
pub struct Committer {
    groups: Arc<Groups>,
    /// The writer thread's queue; `None` when shards write their own groups.
    tx: Option<mpsc::Sender<Commit>>,
    /// The WAL-sync thread's queue (`sync` mode on the direct path): what to run after the
    /// next WAL sync.
    syncs: Option<mpsc::Sender<Done>>,
}

impl Committer {
    /// Makes `batch` durable, then runs `done`. Through the writer thread it queues the
    /// commit, waiting while the queue is full (backpressure); on the direct path it writes
    /// on this thread (the write is the backpressure) and runs `done` before returning.
    pub async fn commit(&self, batch: Batch, done: Done) {
        if self.groups.has_failed() {
            done(Err(StoreError::Failed));
            return;
        }
        match &self.tx {
            Some(tx) => {
                if let Err(mpsc::error::SendError(c)) = tx.send(Commit { batch, done }).await {
                    (c.done)(Err(StoreError::Closed));
                }
            }
            None => {
                // A barrier (no operations) only waits: in `wal` mode everything it waits for
                // has returned already; in `sync` mode, for the next sync.
                let written = if batch.is_empty() { Ok(()) } else { self.groups.write(std::iter::once(&batch), 1) };
                match (&self.syncs, written) {
                    (Some(syncs), Ok(())) => {
                        if let Err(mpsc::error::SendError(done)) = syncs.send(done).await {
                            done(Err(StoreError::Closed));
                        }
                    }
                    (_, r) => done(r),
                }
            }
        }
    }

    /// Makes `batch` durable from a thread that may block (never a shard's or an async
    /// worker's), returning when it is.
    pub fn commit_blocking(&self, batch: Batch) -> Result<(), StoreError> {
        if self.groups.has_failed() {
            return Err(StoreError::Failed);
        }
        match &self.tx {
            Some(tx) => {
                let (done, result) = std::sync::mpsc::sync_channel(1);
                let done: Done = Box::new(move |r| drop(done.send(r)));
                tx.blocking_send(Commit { batch, done }).map_err(|_| StoreError::Closed)?;
                result.recv().unwrap_or(Err(StoreError::Closed))
            }
            None => {
                if !batch.is_empty() {
                    self.groups.write(std::iter::once(&batch), 1)?;
                }
                let Some(syncs) = &self.syncs else { return Ok(()) };
                let (done, result) = std::sync::mpsc::sync_channel(1);
                let done: Done = Box::new(move |r| drop(done.send(r)));
                syncs.blocking_send(done).map_err(|_| StoreError::Closed)?;
                result.recv().unwrap_or(Err(StoreError::Closed))
            }
        }
    }

    pub fn has_failed(&self) -> bool {
        self.groups.has_failed()
    }

    /// Whether a write may be read before it is durable (`sync` mode on the direct path):
    /// answers read from the store then wait for a WAL sync.
    pub fn visible_before_durable(&self) -> bool {
        self.syncs.is_some()
    }
}

pub struct WriterThread {
    groups: Arc<Groups>,
    /// The writer thread; `None` on the direct path.
    handle: Option<JoinHandle<()>>,
    /// The WAL-sync thread (`sync` mode on the direct path); it ends with the last `Committer`.
    sync_thread: Option<JoinHandle<()>>,
    /// The WAL syncer (`wal` mode with a sync interval), stopped by dropping the sender.
    syncer: Option<(crossbeam::channel::Sender<()>, JoinHandle<()>)>,
}

impl WriterThread {
    /// Waits for the writer to drain its queue (all `Committer`s must be dropped first: on
    /// the direct path, every shard must have stopped), syncs the WAL and flushes the
    /// memtables. `Err` when any write or sync failed, or the final sync did: then not
    /// everything acknowledged may be durable, and the process should not exit cleanly.
    pub fn join(self) -> Result<(), StoreError> {
        for (h, name) in [(self.handle, "store writer"), (self.sync_thread, "WAL sync")] {
            if h.is_some_and(|h| h.join().is_err()) {
                tracing::error!("{name} thread panicked");
                self.groups.failed.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        if let Some((stop, handle)) = self.syncer {
            drop(stop);
            if handle.join().is_err() {
                tracing::error!("WAL syncer thread panicked");
            }
        }
        if self.groups.close() {
            Ok(())
        } else {
            Err(StoreError::Failed)
        }
    }
}

/// How commits become durable.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    pub durability: Durability,
    /// `wal` mode: fdatasync the WAL this often (milliseconds); 0 leaves it to the kernel.
    pub wal_sync_ms: u64,
    /// Commits queued before shards wait (writer thread; the WAL-sync thread's queue).
    pub queue: usize,
    /// Commits merged into one write (writer thread), or covered by one sync, at most.
    pub max_group: usize,
    /// Shards write their own groups; no writer thread.
    pub direct: bool,
}

pub fn spawn(db: Arc<DB>, events: Arc<super::Events>, o: WriterOptions, m: Measures) -> (Committer, WriterThread) {
    let sync_rounds = o.direct && o.durability == Durability::Sync;
    let groups = Arc::new(Groups::new(db, events, o.durability, sync_rounds, m));
    let syncer = start_syncer(&groups, o.durability, o.wal_sync_ms);
    let (syncs, sync_thread) = if sync_rounds {
        let (tx, handle) = spawn_rounds("wal-sync", &groups, o.queue, o.max_group, sync_round);
        (Some(tx), Some(handle))
    } else {
        (None, None)
    };
    let (tx, handle) = if o.direct {
        (None, None)
    } else {
        let (tx, handle) = spawn_rounds("store-writer", &groups, o.queue, o.max_group, write_round);
        (Some(tx), Some(handle))
    };
    (Committer { groups: groups.clone(), tx, syncs }, WriterThread { groups, handle, sync_thread, syncer })
}

/// A store thread fed through a bounded queue (`queue`): it blocks for the first item, takes
/// up to `max` in all without waiting, and hands them to `round` as one round; until every
/// sender is dropped.
fn spawn_rounds<T: Send + 'static>(
    name: &str,
    g: &Arc<Groups>,
    queue: usize,
    max: usize,
    round: fn(&Groups, &mut Vec<T>),
) -> (mpsc::Sender<T>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel(queue.max(1));
    let (g, max) = (g.clone(), max.max(1));
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut taken = Vec::with_capacity(max);
            while let Some(first) = rx.blocking_recv() {
                taken.push(first);
                while taken.len() < max {
                    match rx.try_recv() {
                        Ok(t) => taken.push(t),
                        Err(_) => break,
                    }
                }
                round(&g, &mut taken);
            }
        })
        .expect("spawning a store thread at startup");
    (tx, handle)
}

/// The writer thread's round: the commits written as one group, then their `done`s in
/// submission order.
fn write_round(g: &Groups, group: &mut Vec<Commit>) {
    let result = g.write(group.iter().map(|c| &c.batch), group.len());
    for c in group.drain(..) {
        (c.done)(result.clone());
    }
}

/// The WAL-sync thread's round (`sync` mode on the direct path): one fdatasync of the WAL,
/// then the `done`s in queue order. Each was queued after its write returned, so the sync
/// covers it.
fn sync_round(g: &Groups, dones: &mut Vec<Done>) {
    let result = g.sync();
    for done in dones.drain(..) {
        done(result.clone());
    }
}
