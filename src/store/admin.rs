//! What operators ask of the store: RocksDB's levels for the metrics, and online backups.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rocksdb::checkpoint::Checkpoint;

use super::{cf, keys, rocks, Store, StoreError};

/// A finished backup.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub took_ms: u64,
}

impl Store {
    /// RocksDB's levels worth watching, as (metric name, help, value).
    pub fn gauges(&self) -> Vec<(&'static str, &'static str, i64)> {
        let db = &self.db;
        let db_int = |name: &str| db.property_int_value(name).ok().flatten().unwrap_or(0) as i64;
        // Per column family, summed.
        let sum = |name: &str| -> i64 {
            keys::ALL_CFS
                .iter()
                .filter_map(|c| cf(db, c).ok())
                .map(|h| db.property_int_value_cf(h, name).ok().flatten().unwrap_or(0) as i64)
                .sum()
        };
        vec![
            (
                "store_memtable_bytes",
                "Bytes in RocksDB's memtables (all column families; bounded by db_write_buffer_size)",
                sum("rocksdb.cur-size-all-mem-tables"),
            ),
            ("store_block_cache_bytes", "Bytes held by the shared block cache", db_int("rocksdb.block-cache-usage")),
            (
                "store_pending_compaction_bytes",
                "Bytes RocksDB estimates compaction must rewrite to meet its level targets",
                sum("rocksdb.estimate-pending-compaction-bytes"),
            ),
            (
                "store_l0_files",
                "Table files in level 0 (many slow reads, then stall writes)",
                sum("rocksdb.num-files-at-level0"),
            ),
            ("store_live_bytes", "Bytes of table files the database uses", sum("rocksdb.live-sst-files-size")),
            (
                "store_write_stopped",
                "1 while RocksDB stops writes (a write stall), else 0",
                db_int("rocksdb.is-write-stopped"),
            ),
            (
                "store_delayed_write_rate",
                "Bytes/s RocksDB slows writes to while it delays them (0: not delayed)",
                db_int("rocksdb.actual-delayed-write-rate"),
            ),
            ("store_running_compactions", "Compactions running now", db_int("rocksdb.num-running-compactions")),
        ]
    }

    /// After-hook events left out because an app's queue was full, since start.
    pub fn hook_events_dropped(&self) -> u64 {
        self.events.dropped()
    }

    /// Writes a consistent copy of the live database into `dir` (which must not exist; its
    /// parent is created), without stopping writes: RocksDB flushes the memtables and links
    /// (or copies, across file systems) every table file into `dir`. Everything written
    /// before the call is in it; a server started on `dir` reads it as its data directory.
    /// Blocking: run it off the async runtime.
    pub fn checkpoint(&self, dir: &Path) -> Result<BackupInfo, StoreError> {
        let started = Instant::now();
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Rocks(format!("creating {}: {e}", parent.display())))?;
        }
        Checkpoint::new(&self.db).and_then(|c| c.create_checkpoint(dir)).map_err(rocks)?;
        let (mut files, mut bytes) = (0, 0);
        for e in std::fs::read_dir(dir).map_err(|e| StoreError::Rocks(format!("reading {}: {e}", dir.display())))? {
            let meta = e.and_then(|e| e.metadata()).map_err(|e| StoreError::Rocks(e.to_string()))?;
            if meta.is_file() {
                files += 1;
                bytes += meta.len();
            }
        }
        Ok(BackupInfo { path: dir.to_owned(), files, bytes, took_ms: started.elapsed().as_millis() as u64 })
    }
}
