//! The group-commit writer: one thread that owns every RocksDB write.
//!
//! Shards hand it `Commit`s through a bounded queue. It drains up to `max_group` of them,
//! merges them into one `WriteBatch`, writes that once (fdatasync'ed in `sync` mode), and
//! then runs each commit's `done` callback in submission order. So many mutations share one
//! WAL write, and an ack sent from `done` is only ever sent after its data is durable.
//!
//! A commit with no operations is a barrier: its `done` runs after every commit queued before
//! it, which lets a shard answer a read only after the writes that read may have seen.
//!
//! In `wal` mode a second thread, the WAL syncer, fdatasyncs the WAL every `wal_sync_ms` when
//! something was written since its last sync (RocksDB's `SyncWAL` runs beside writes). So a
//! machine crash or power loss loses at most the writes acknowledged in the last interval
//! (plus up to two fdatasync durations: a write landing just after a sync began waits for the
//! next one); a process crash loses nothing in either mode.
//!
//! On close, after the final WAL sync, the memtables are flushed to table files, so the next
//! start has no WAL to replay and takes the same time however much was written before a
//! clean stop (after a crash, replay is bounded by `max_total_wal_size`).
//!
//! When a write fails the store is marked failed: that group and every later commit get
//! `StoreError::Failed`, because the shards' memory is now ahead of the disk. A restart
//! rebuilds memory from what is durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rocksdb::{FlushOptions, WriteOptions, DB};
use tokio::sync::mpsc;

use super::{Batch, Op, StoreError};
use crate::config::Durability;

/// What to run once a commit is durable (or has failed). Runs on the writer thread: it must
/// not block; it typically hands frames to connection queues with `try_send`.
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub struct Commit {
    pub batch: Batch,
    pub done: Done,
}

/// The sending side, cloned into every shard.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Commit>,
    failed: Arc<AtomicBool>,
}

impl Committer {
    /// Queues a commit, waiting while the writer's queue is full (backpressure).
    pub async fn commit(&self, batch: Batch, done: Done) {
        if self.failed.load(Ordering::Acquire) {
            done(Err(StoreError::Failed));
            return;
        }
        if let Err(mpsc::error::SendError(c)) = self.tx.send(Commit { batch, done }).await {
            (c.done)(Err(StoreError::Closed));
        }
    }

    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

pub struct WriterThread {
    handle: JoinHandle<bool>,
    failed: Arc<AtomicBool>,
    /// The WAL syncer (`wal` mode with a sync interval), stopped by dropping `stop`.
    syncer: Option<(crossbeam::channel::Sender<()>, JoinHandle<()>)>,
}

impl WriterThread {
    /// Waits for the writer to drain its queue (all `Committer`s must be dropped first) and
    /// sync the WAL. `Err` when any write or sync failed, or the final sync did: then not
    /// everything acknowledged may be durable, and the process should not exit cleanly.
    pub fn join(self) -> Result<(), StoreError> {
        let synced = self.handle.join().unwrap_or_else(|_| {
            tracing::error!("store writer thread panicked");
            false
        });
        if let Some((stop, handle)) = self.syncer {
            drop(stop);
            if handle.join().is_err() {
                tracing::error!("WAL syncer thread panicked");
            }
        }
        if synced && !self.failed.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(StoreError::Failed)
        }
    }
}

/// How the writer makes writes durable.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    pub durability: Durability,
    /// `wal` mode: fdatasync the WAL this often (milliseconds); 0 leaves it to the kernel.
    pub wal_sync_ms: u64,
    /// Commits queued before shards wait.
    pub queue: usize,
    /// Commits merged into one write at most.
    pub max_group: usize,
}

/// Where the writer reports its group sizes and latencies.
pub type Measures = crate::metrics::WriterMetrics;

pub fn spawn(db: Arc<DB>, events: Arc<super::Events>, o: WriterOptions, m: Measures) -> (Committer, WriterThread) {
    let (tx, rx) = mpsc::channel(o.queue.max(1));
    let failed = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let syncer = (o.durability == Durability::Wal && o.wal_sync_ms > 0).then(|| {
        let (stop, stopped) = crossbeam::channel::bounded::<()>(0);
        let (db, failed, written, m) = (db.clone(), failed.clone(), written.clone(), m.clone());
        let every = Duration::from_millis(o.wal_sync_ms);
        let handle = std::thread::Builder::new()
            .name("wal-syncer".into())
            .spawn(move || sync_loop(&db, every, &stopped, (&written, &failed), &m))
            .expect("spawning the WAL syncer at startup");
        (stop, handle)
    });
    let f2 = failed.clone();
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || run(db, &events, o.durability, rx, o.max_group.max(1), (f2, written), &m))
        .expect("spawning the writer thread at startup");
    (Committer { tx, failed: failed.clone() }, WriterThread { handle, failed, syncer })
}

/// `wal` mode: every `every`, fdatasync the WAL if a group was written since the last sync.
/// A failed sync marks the store failed (the kernel may have dropped the unsynced pages).
fn sync_loop(
    db: &DB,
    every: Duration,
    stop: &crossbeam::channel::Receiver<()>,
    (written, failed): (&AtomicU64, &AtomicBool),
    m: &Measures,
) {
    let mut synced = 0;
    while let Err(crossbeam::channel::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let now = written.load(Ordering::Acquire);
        if now == synced {
            continue;
        }
        let started = Instant::now();
        let r = db.flush_wal(true);
        m.sync_seconds.observe(started.elapsed().as_secs_f64());
        if let Err(e) = r {
            if !failed.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "WAL sync failed; refusing writes until restart");
            }
            return;
        }
        synced = now;
    }
}

fn run(
    db: Arc<DB>,
    events: &super::Events,
    durability: Durability,
    mut rx: mpsc::Receiver<Commit>,
    max_group: usize,
    (failed, written): (Arc<AtomicBool>, Arc<AtomicU64>),
    m: &Measures,
) -> bool {
    let mut opts = WriteOptions::default();
    opts.set_sync(durability == Durability::Sync);
    opts.set_memtable_insert_hint_per_batch(true);
    let mut group: Vec<Commit> = Vec::with_capacity(max_group);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let result = if failed.load(Ordering::Acquire) {
            Err(StoreError::Failed)
        } else {
            let started = Instant::now();
            let r = write_group(&db, events, &opts, &group);
            m.write_seconds.observe(started.elapsed().as_secs_f64());
            m.group_size.observe(group.len() as f64);
            r
        };
        if result.is_ok() {
            written.fetch_add(1, Ordering::Release);
        }
        if let Err(e) = &result {
            if !failed.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "store write failed; refusing writes until restart");
            }
        }
        for c in group.drain(..) {
            (c.done)(result.clone().map_err(|_| StoreError::Failed));
        }
    }
    // Queue closed: everything queued is written. Make it durable whatever the mode.
    let synced = match db.flush_wal(true) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "final WAL sync failed");
            false
        }
    };
    if synced && !failed.load(Ordering::Acquire) {
        flush_memtables(&db);
    }
    synced
}

/// Writes every column family's memtable to table files, so the next open replays no WAL.
/// Everything is already durable in the WAL: a failure here only costs the next start that
/// replay.
fn flush_memtables(db: &DB) {
    let started = Instant::now();
    let cfs: Vec<_> = super::keys::ALL_CFS.iter().filter_map(|name| db.cf_handle(name)).collect();
    match db.flush_cfs_opt(&cfs, &FlushOptions::default()) {
        Ok(()) => tracing::info!(ms = started.elapsed().as_millis() as u64, "memtables flushed at close"),
        Err(e) => tracing::warn!(error = %e, "flushing the memtables at close failed; the next start replays the WAL"),
    }
}

/// Sort key of an operation: its column family (by the name's address: the names are
/// constants, and any fixed order groups them) and its key.
fn op_key(op: &Op) -> (usize, &[u8]) {
    match op {
        Op::Put(cf, k, _) | Op::Delete(cf, k) => (cf.as_ptr() as usize, k),
        Op::Event(..) => (0, &[]),
    }
}

fn write_group(db: &DB, events: &super::Events, opts: &WriteOptions, group: &[Commit]) -> Result<(), StoreError> {
    // The group's operations sorted by (column family, key), so the memtable inserts walk each
    // skip list forward from the previous insert's position (`memtable_insert_hint_per_batch`)
    // instead of searching it from the top for every key. The sort is stable: operations on
    // one key keep their order (a later put or delete still wins).
    // After-hook events get their keys here, in commit order (`store::events`).
    let keyed = events.assign(group.iter().flat_map(|c| c.batch.ops.iter()));
    let mut ops: Vec<&Op> =
        group.iter().flat_map(|c| c.batch.ops.iter()).filter(|op| !matches!(op, Op::Event(..))).chain(&keyed).collect();
    ops.sort_by(|a, b| op_key(a).cmp(&op_key(b)));
    let wb = super::write_batch(db, ops)?;
    if wb.is_empty() {
        return Ok(());
    }
    db.write_opt(wb, opts).map_err(|e| StoreError::Rocks(e.to_string()))?;
    if !keyed.is_empty() {
        events.wake();
    }
    Ok(())
}
