//! The write paths: how a shard's commit group becomes durable before its `done` runs.
//!
//! - `writer` (a thread): shards hand `Commit`s to one writer thread through a bounded
//!   queue. It drains up to `max_group` of them, merges them into one `WriteBatch`, writes
//!   that once (fdatasync'ed in `sync` mode), and runs each commit's `done` in submission
//!   order, on its thread. A commit with no operations is a barrier: its `done` runs after
//!   every commit queued before it, from any shard.
//! - `shards` (direct): each shard writes its own group on its own thread, and `done` runs
//!   there once the write returned. RocksDB groups concurrent writers into one WAL write by
//!   itself. Ordering between shards comes from causality instead of one queue: a shard sends
//!   another a command only after its own write returned (`Shard::flush`), and the WAL
//!   recovers a prefix, so the effect is never durable without its cause. A commit with no
//!   operations runs its `done` at once: everything this shard wrote has returned, and so
//!   has every write of another shard that caused it.
//!
//! Either way an ack sent from `done` is only sent after its data is in the WAL (and synced
//! in `sync` mode: RocksDB makes a synced write visible only after its fdatasync).
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
            // A barrier: everything it waits for has returned already.
            None if batch.is_empty() => done(Ok(())),
            None => done(self.groups.write(std::iter::once(&batch), 1)),
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
            None if batch.is_empty() => Ok(()),
            None => self.groups.write(std::iter::once(&batch), 1),
        }
    }

    pub fn has_failed(&self) -> bool {
        self.groups.has_failed()
    }
}

pub struct WriterThread {
    groups: Arc<Groups>,
    /// The writer thread; `None` on the direct path.
    handle: Option<JoinHandle<()>>,
    /// The WAL syncer (`wal` mode with a sync interval), stopped by dropping the sender.
    syncer: Option<(crossbeam::channel::Sender<()>, JoinHandle<()>)>,
}

impl WriterThread {
    /// Waits for the writer to drain its queue (all `Committer`s must be dropped first: on
    /// the direct path, every shard must have stopped), syncs the WAL and flushes the
    /// memtables. `Err` when any write or sync failed, or the final sync did: then not
    /// everything acknowledged may be durable, and the process should not exit cleanly.
    pub fn join(self) -> Result<(), StoreError> {
        if let Some(h) = self.handle {
            if h.join().is_err() {
                tracing::error!("store writer thread panicked");
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
    /// Commits queued before shards wait (writer thread).
    pub queue: usize,
    /// Commits merged into one write at most (writer thread).
    pub max_group: usize,
    /// Shards write their own groups; no writer thread.
    pub direct: bool,
}

pub fn spawn(db: Arc<DB>, events: Arc<super::Events>, o: WriterOptions, m: Measures) -> (Committer, WriterThread) {
    let groups = Arc::new(Groups::new(db, events, o.durability, m));
    let syncer = start_syncer(&groups, o.durability, o.wal_sync_ms);
    let (tx, handle) = if o.direct {
        (None, None)
    } else {
        let (tx, rx) = mpsc::channel(o.queue.max(1));
        let g = groups.clone();
        let max_group = o.max_group.max(1);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&g, rx, max_group))
            .expect("spawning the writer thread at startup");
        (Some(tx), Some(handle))
    };
    (Committer { groups: groups.clone(), tx }, WriterThread { groups, handle, syncer })
}

/// The writer thread: takes what is queued (up to `max_group` commits), writes it as one
/// group, and runs the `done`s in submission order; until every `Committer` is dropped.
fn run(g: &Groups, mut rx: mpsc::Receiver<Commit>, max_group: usize) {
    let mut group: Vec<Commit> = Vec::with_capacity(max_group);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let result = g.write(group.iter().map(|c| &c.batch), group.len());
        for c in group.drain(..) {
            (c.done)(result.clone());
        }
    }
}
