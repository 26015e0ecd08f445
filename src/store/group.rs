//! Writing a group of batches, for both write paths (`writer`): the one writer thread, or
//! each shard on its own thread. What the paths share lives here: the write itself (sorted
//! for the memtable, hook events keyed), the failed flag, the count of groups written, the
//! WAL sync (the syncer of `wal` mode, the sync rounds of `sync` mode on the direct path)
//! and the close.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocksdb::{FlushOptions, WriteOptions, DB};

use super::{Batch, Events, Op, StoreError};
use crate::config::Durability;

/// Where the write paths report their group sizes and latencies.
pub type Measures = crate::metrics::WriterMetrics;

/// The state every writer of one store shares.
pub(super) struct Groups {
    pub db: Arc<DB>,
    pub events: Arc<Events>,
    opts: WriteOptions,
    /// Set by the first failed write or WAL sync: memory is then ahead of the disk, and every
    /// later write is refused until restart.
    pub failed: AtomicBool,
    /// Groups written (the WAL syncer syncs only when it moved).
    written: AtomicU64,
    pub m: Measures,
}

impl Groups {
    /// `deferred_sync`: in `sync` mode, writes are not fdatasync'ed themselves; the caller
    /// runs `sync` before anyone hears of them (the direct path's sync thread).
    pub fn new(db: Arc<DB>, events: Arc<Events>, durability: Durability, deferred_sync: bool, m: Measures) -> Groups {
        let mut opts = WriteOptions::default();
        opts.set_sync(durability == Durability::Sync && !deferred_sync);
        if durability == Durability::Sync && deferred_sync {
            // A written event is visible before it is durable: readers wait for the sync.
            events.bound_to_syncs();
        }
        opts.set_memtable_insert_hint_per_batch(true);
        Groups { db, events, opts, failed: AtomicBool::new(false), written: AtomicU64::new(0), m }
    }

    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Writes `batches` as one atomic RocksDB write (fdatasync'ed in `sync` mode): `Ok` once
    /// it is in the WAL. After a failure, this and every later write get `Failed`.
    pub fn write<'a>(
        &self,
        batches: impl Iterator<Item = &'a Batch> + Clone,
        commits: usize,
    ) -> Result<(), StoreError> {
        if self.has_failed() {
            return Err(StoreError::Failed);
        }
        let started = Instant::now();
        let r = self.write_sorted(batches);
        self.m.write_seconds.observe(started.elapsed().as_secs_f64());
        self.m.group_size.observe(commits as f64);
        match r {
            Ok(()) => {
                self.written.fetch_add(1, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                if !self.failed.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "store write failed; refusing writes until restart");
                }
                Err(StoreError::Failed)
            }
        }
    }

    fn write_sorted<'a>(&self, batches: impl Iterator<Item = &'a Batch> + Clone) -> Result<(), StoreError> {
        // The group's operations sorted by (column family, key): consecutive inserts into a
        // skip list then pass through nodes the previous insert brought into the cache. The
        // per-batch insert hints (`memtable_insert_hint_per_batch`) go further, starting each
        // search at the previous insert's position, but RocksDB uses them only when it
        // inserts concurrently: when several shards' writes meet in one RocksDB write group,
        // never for a single writer. The sort is stable: operations on one key keep their
        // order (a later put or delete still wins).
        let all = batches.flat_map(|b| b.ops.iter());
        // After-hook events get their keys here, in write order: with several writers the
        // order lock is held from the keys' assignment until the write returned, so a
        // reader that saw event n has seen every event before it (`store::events`).
        let order = all.clone().any(|op| matches!(op, Op::Event(..))).then(|| self.events.order());
        let keyed = if order.is_some() { self.events.assign(all.clone()) } else { Vec::new() };
        let mut ops: Vec<&Op> = all.filter(|op| !matches!(op, Op::Event(..))).chain(&keyed).collect();
        ops.sort_by(|a, b| op_key(a).cmp(&op_key(b)));
        let wb = super::write_batch(&self.db, ops)?;
        if wb.is_empty() {
            return Ok(());
        }
        self.db.write_opt(wb, &self.opts).map_err(|e| StoreError::Rocks(e.to_string()))?;
        if !keyed.is_empty() {
            self.events.written();
        }
        drop(order);
        Ok(())
    }

    /// fdatasyncs the WAL: every write that returned before this call is then durable (and
    /// so are the hook events among them). A failed sync marks the store failed (the kernel
    /// may have dropped the unsynced pages).
    pub fn sync(&self) -> Result<(), StoreError> {
        if self.has_failed() {
            return Err(StoreError::Failed);
        }
        let events = self.events.written_upto();
        let started = Instant::now();
        let r = self.db.flush_wal(true);
        self.m.sync_seconds.observe(started.elapsed().as_secs_f64());
        match r {
            Ok(()) => {
                self.events.durable(events);
                Ok(())
            }
            Err(e) => {
                if !self.failed.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "WAL sync failed; refusing writes until restart");
                }
                Err(StoreError::Failed)
            }
        }
    }

    /// After the last write: fdatasyncs the WAL whatever the mode, then flushes the memtables
    /// (so the next start replays no WAL). `false` when the sync failed or any write did.
    pub fn close(&self) -> bool {
        let synced = match self.db.flush_wal(true) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "final WAL sync failed");
                false
            }
        };
        if synced && !self.has_failed() {
            flush_memtables(&self.db);
        }
        synced && !self.has_failed()
    }

    /// `wal` mode: every `every`, fdatasync the WAL if a group was written since the last sync.
    /// A failed sync marks the store failed (the kernel may have dropped the unsynced pages).
    pub fn sync_loop(&self, every: Duration, stop: &crossbeam::channel::Receiver<()>) {
        let mut synced = 0;
        while let Err(crossbeam::channel::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
            let now = self.written.load(Ordering::Acquire);
            if now == synced {
                continue;
            }
            if self.sync().is_err() {
                return;
            }
            synced = now;
        }
    }
}

/// Starts `wal` mode's WAL syncer (none in `sync` mode or with a 0 interval); it stops when
/// the sender is dropped.
pub(super) fn start_syncer(
    g: &Arc<Groups>,
    durability: Durability,
    wal_sync_ms: u64,
) -> Option<(crossbeam::channel::Sender<()>, std::thread::JoinHandle<()>)> {
    (durability == Durability::Wal && wal_sync_ms > 0).then(|| {
        let (stop, stopped) = crossbeam::channel::bounded::<()>(0);
        let g = g.clone();
        let every = Duration::from_millis(wal_sync_ms);
        let handle = std::thread::Builder::new()
            .name("wal-syncer".into())
            .spawn(move || g.sync_loop(every, &stopped))
            .expect("spawning the WAL syncer at startup");
        (stop, handle)
    })
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

#[cfg(test)]
mod tests {
    use crate::config::Durability;
    use crate::domain::ids::AppId;
    use crate::store::{Batch, Store, WriterOptions};

    /// Two shards writing groups with hook events at once (the direct path): a reader never
    /// sees event n+1 without event n, or it would move past n and skip it until a restart.
    #[test]
    fn concurrent_writers_make_hook_events_visible_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let o = WriterOptions { durability: Durability::Wal, wal_sync_ms: 0, queue: 16, max_group: 16, direct: true };
        let (c, w) = store.start_writer(o);
        let app = AppId(1);
        const EACH: u64 = 3000;
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        let mut b = Batch::default();
                        b.put_hook_event(app, format!("{t}-{i}").into_bytes());
                        c.commit_blocking(b).unwrap();
                    }
                })
            })
            .collect();
        let mut reads = 0;
        loop {
            let finished = writers.iter().all(|h| h.is_finished());
            let seqs: Vec<u64> = store.hook_events(app, 0, usize::MAX).unwrap().into_iter().map(|(s, _)| s).collect();
            let prefix: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, prefix, "after {reads} reads the visible events are not 1..=n");
            reads += 1;
            if finished {
                assert_eq!(seqs.len() as u64, 2 * EACH);
                break;
            }
        }
        for h in writers {
            h.join().unwrap();
        }
        drop(c);
        w.join().unwrap();
    }

    /// `sync` mode on the direct path: a written hook event is invisible to readers until a
    /// WAL sync covers it.
    #[test]
    fn deferred_sync_hides_events_until_the_wal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let g = super::Groups::new(store.db.clone(), store.events.clone(), Durability::Sync, true, Default::default());
        let mut b = Batch::default();
        b.put_hook_event(AppId(1), b"e".to_vec());
        g.write(std::iter::once(&b), 1).unwrap();
        assert!(store.hook_events(AppId(1), 0, 10).unwrap().is_empty(), "an event before its sync");
        g.sync().unwrap();
        assert_eq!(store.hook_events(AppId(1), 0, 10).unwrap().len(), 1, "the event after its sync");
    }

    /// `sync` mode on the direct path: `done` runs on the WAL-sync thread, after a sync, for
    /// a write and for a barrier; what was written is readable then.
    #[test]
    fn deferred_sync_runs_done_after_a_sync_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let o = WriterOptions { durability: Durability::Sync, wal_sync_ms: 0, queue: 16, max_group: 16, direct: true };
        let (c, w) = store.start_writer(o);
        assert!(c.visible_before_durable());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for batch in [
            {
                let mut b = Batch::default();
                b.put_hook_event(AppId(1), b"e".to_vec());
                b
            },
            Batch::default(),
        ] {
            let (tx, rx) = std::sync::mpsc::channel();
            rt.block_on(c.commit(
                batch,
                Box::new(move |res| {
                    let thread = std::thread::current().name().map(str::to_owned);
                    tx.send((res, thread)).unwrap();
                }),
            ));
            let (res, thread) = rx.recv().unwrap();
            res.unwrap();
            assert_eq!(thread.as_deref(), Some("wal-sync"));
            assert_eq!(store.hook_events(AppId(1), 0, 10).unwrap().len(), 1);
        }
        c.commit_blocking(Batch::default()).unwrap();
        drop(c);
        w.join().unwrap();
    }

    /// On the direct path in `wal` mode `done` runs before `commit` returns, for a barrier
    /// (an empty commit) and for a write, and what was written is readable then.
    #[test]
    fn direct_commits_run_their_done_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let o = WriterOptions { durability: Durability::Wal, wal_sync_ms: 0, queue: 16, max_group: 16, direct: true };
        let (c, w) = store.start_writer(o);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for batch in [Batch::default(), {
            let mut b = Batch::default();
            b.put_hook_event(AppId(1), b"e".to_vec());
            b
        }] {
            let r = ran.clone();
            rt.block_on(c.commit(
                batch,
                Box::new(move |res| {
                    res.unwrap();
                    r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }),
            ));
        }
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 2, "done ran inside commit");
        assert_eq!(store.hook_events(AppId(1), 0, 10).unwrap().len(), 1);
        drop(c);
        w.join().unwrap();
    }
}
