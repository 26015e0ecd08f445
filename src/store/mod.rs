//! The store: the ONLY module that imports `rocksdb`.
//!
//! It owns the column families (`keys`), the checked value encoding helpers (`codec`) and the
//! group-commit writer (`writer`). Everything above it sees typed keys and opaque values:
//! a `Batch` of puts and deletes that becomes durable atomically, and a few reads.
//!
//! Reads run on the caller's thread (a shard thread, never an async worker). Writes go
//! through a `Committer` (`writer`): one writer thread, or each shard on its own thread.

mod admin;
mod batch;
pub mod codec;
mod events;
mod group;
mod groups;
pub mod keys;
mod messages;
mod upgrade;
pub mod writer;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode, Options, DB};

use crate::domain::ids::{AppId, UserId};
use crate::domain::sync::{ItemId, Stream};
pub use admin::BackupInfo;
pub(crate) use batch::Op;
pub use batch::{Batch, StreamPut};
pub use events::Events;
pub use groups::GroupSyncRecord;
pub use messages::{decode_message_ref, message_ref, Location};
pub use writer::{Commit, Committer, Done, WriterOptions, WriterThread};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(String),
    #[error("the store failed earlier; writes are refused until restart")]
    Failed,
    #[error("the store is closed")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("missing column family {0}")]
    MissingCf(&'static str),
}

impl From<codec::Corrupt> for StoreError {
    fn from(_: codec::Corrupt) -> Self {
        StoreError::Corrupt("value does not decode".into())
    }
}

/// A key (or its suffix) and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Raw stored friendship state of one user: (friends, blacklist entries, friend requests,
/// (friend tag name, members)).
pub type SocialRaw = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Entry>);

/// One entry of a per-user change stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub seq: u64,
    pub item: ItemId,
    /// `None` is a tombstone: the item was deleted.
    pub payload: Option<Vec<u8>>,
}

fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a ColumnFamily, StoreError> {
    db.cf_handle(name).ok_or(StoreError::MissingCf(name))
}

/// The RocksDB batch of `ops`, in their order (the writer's groups, start-up's `write_now`).
fn write_batch<'a>(db: &DB, ops: impl IntoIterator<Item = &'a Op>) -> Result<rocksdb::WriteBatch, StoreError> {
    let mut wb = rocksdb::WriteBatch::default();
    for op in ops {
        match op {
            Op::Put(c, k, v) => wb.put_cf(cf(db, c)?, k, v),
            Op::Delete(c, k) => wb.delete_cf(cf(db, c)?, k),
            // Keyed by the writer first (`Events::assign`).
            Op::Event(..) => {}
        }
    }
    Ok(wb)
}

fn rocks(e: rocksdb::Error) -> StoreError {
    StoreError::Rocks(e.to_string())
}

fn be_u64(v: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(v.try_into().map_err(|_| StoreError::Corrupt("u64 value".into()))?))
}

/// The opened database. Cheap to clone; reads are safe from any thread.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    events: Arc<Events>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Rocks(format!("creating {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        // The WAL is written back in the background every 512 KiB (sync_file_range), so the
        // `wal` mode's periodic fdatasync has little left to do and stalls writes less.
        opts.set_wal_bytes_per_sync(512 << 10);
        opts.set_keep_log_file_num(4);
        // All column families' memtables together; each flushes early when the total is hit.
        opts.set_db_write_buffer_size(256 << 20);
        // Restart time is WAL replay. A WAL file lives until every column family with data in
        // it has flushed, so quiet families (users, heads, subscriptions) would keep gigabytes
        // alive (the default bound is 4x all write buffers, 1.8 GB here). Past this total the
        // families holding the oldest WAL are flushed, so at most this much is replayed.
        opts.set_max_total_wal_size(256 << 20);
        // Open does not read every table file's statistics.
        opts.set_skip_stats_update_on_db_open(true);
        let cache = Cache::new_lru_cache(128 << 20);
        let cfs = keys::ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            let mut bb = BlockBasedOptions::default();
            bb.set_block_cache(&cache);
            bb.set_bloom_filter(10.0, false);
            // Index and filter blocks live in the block cache, so their memory is bounded by
            // it instead of growing with the data (L0's stay pinned: they are read most).
            bb.set_cache_index_and_filter_blocks(true);
            bb.set_cache_index_and_filter_blocks_with_high_priority(true);
            bb.set_pin_l0_filter_and_index_blocks_in_cache(true);
            // Partitioned: a big table file's filter and index come in 4 KiB pieces, each
            // cached on its own. Whole, a compacted `idem` file's filter (2.9 MB) was larger
            // than a block-cache shard (128 MiB / 64), so it was never kept: every send's
            // client-id lookup read and checked it again, and the shard stalled for seconds.
            bb.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
            bb.set_partition_filters(true);
            bb.set_metadata_block_size(4096);
            bb.set_pin_top_level_index_and_filter(true);
            o.set_block_based_table_factory(&bb);
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_write_buffer_size(32 << 20);
            // A busy family (idem, msgs) can fill a second memtable while the first flushes;
            // with 2 RocksDB stopped writes for ~80 ms in a 13 M-message fill. The total stays
            // bounded by `db_write_buffer_size`.
            o.set_max_write_buffer_number(4);
            if *name == keys::CF_IDEM {
                // Every send looks up its new client id, nearly always a miss: a bloom filter
                // over the memtable's keys answers that without a skip-list search (which was
                // half of the lookup's cost in a shard profile).
                o.set_memtable_prefix_bloom_ratio(0.02);
                o.set_memtable_whole_key_filtering(true);
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(rocks)?;
        let events = Arc::new(Events::open(&db)?);
        let store = Store { db: Arc::new(db), events };
        store.check_format()?;
        Ok(store)
    }

    /// Starts the group-commit writer for this store.
    pub fn start_writer(&self, o: WriterOptions) -> (Committer, WriterThread) {
        self.start_measured_writer(o, Default::default())
    }

    /// Starts the writer, reporting its group sizes and latencies to `m`.
    pub fn start_measured_writer(&self, o: WriterOptions, m: writer::Measures) -> (Committer, WriterThread) {
        writer::spawn(self.db.clone(), self.events.clone(), o, m)
    }

    /// The after-hook queue's bookkeeping.
    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// One user's record, if stored: a point read (the block cache keeps the hot ones; the
    /// bloom filter answers most misses).
    pub fn user(&self, app: AppId, user: &UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(cf(&self.db, keys::CF_USERS)?, keys::user(app, user)).map_err(rocks)
    }

    /// The head (newest seq) of each of a user's streams: the last entry's key, found by one
    /// reverse seek per stream. Entries are never removed from the top of a stream (a moved
    /// item takes a newer seq; a deleted one leaves a tombstone), so the last key is the head.
    pub fn stream_heads(&self, app: AppId, user: &UserId, streams: u8) -> Result<Vec<u64>, StoreError> {
        let mut heads = vec![0; streams as usize];
        let cf = cf(&self.db, keys::CF_STREAM)?;
        for (stream, head) in heads.iter_mut().enumerate() {
            let prefix = keys::stream_prefix(app, user, stream as u8);
            let last = keys::stream_entry(app, user, stream as u8, u64::MAX);
            if let Some(kv) = self.db.iterator_cf(cf, IteratorMode::From(&last, Direction::Reverse)).next() {
                let (k, _) = kv.map_err(rocks)?;
                if k.starts_with(&prefix) {
                    *head = keys::decode_stream_seq(&k, prefix.len())
                        .ok_or_else(|| StoreError::Corrupt("stream key".into()))?;
                }
            }
        }
        Ok(heads)
    }

    /// The status subscriptions of one target: (subscriber, expiry ms), expired ones too.
    pub fn subscriptions_of(&self, app: AppId, target: &UserId) -> Result<Vec<(UserId, u64)>, StoreError> {
        let corrupt = || StoreError::Corrupt("sub key".into());
        self.user_entries(keys::CF_SUBS, app, target)?
            .into_iter()
            .map(|(sub, until)| {
                let sub = std::str::from_utf8(&sub).ok().and_then(UserId::new).ok_or_else(corrupt)?;
                Ok((sub, be_u64(&until)?))
            })
            .collect()
    }

    /// One status subscription's expiry (ms), if stored.
    pub fn subscription(&self, app: AppId, target: &UserId, sub: &UserId) -> Result<Option<u64>, StoreError> {
        match self.db.get_cf(cf(&self.db, keys::CF_SUBS)?, keys::sub(app, target, sub)).map_err(rocks)? {
            Some(v) => Ok(Some(be_u64(&v)?)),
            None => Ok(None),
        }
    }

    /// Entries of a user's stream with seq > `after`, at most `limit`, oldest first; and
    /// whether more remain.
    pub fn read_stream(
        &self,
        app: AppId,
        user: &UserId,
        stream: Stream,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StreamEntry>, bool), StoreError> {
        let prefix = keys::stream_prefix(app, user, stream as u8);
        let start = keys::stream_entry(app, user, stream as u8, after.saturating_add(1));
        let it = self.db.iterator_cf(cf(&self.db, keys::CF_STREAM)?, IteratorMode::From(&start, Direction::Forward));
        let mut out = Vec::with_capacity(limit.min(256));
        for kv in it {
            let (k, v) = kv.map_err(rocks)?;
            if !k.starts_with(&prefix) || after == u64::MAX {
                break;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            let seq =
                keys::decode_stream_seq(&k, prefix.len()).ok_or_else(|| StoreError::Corrupt("stream key".into()))?;
            let mut r = codec::Reader::new(&v);
            let item = ItemId::decode(stream, r.bytes()?).ok_or_else(|| StoreError::Corrupt("stream item".into()))?;
            let deleted = r.bool()?;
            let payload = r.bytes()?;
            out.push(StreamEntry { seq, item, payload: (!deleted).then(|| payload.to_vec()) });
        }
        Ok((out, false))
    }

    /// Every conversation entry of one user.
    pub fn user_convs(&self, app: AppId, user: &UserId) -> Result<Vec<Vec<u8>>, StoreError> {
        self.user_values(keys::CF_USER_CONVS, app, user)
    }

    /// One user's friendship state: (friends, blacklist, received requests).
    pub fn user_social(&self, app: AppId, user: &UserId) -> Result<SocialRaw, StoreError> {
        Ok((
            self.user_values(keys::CF_FRIENDS, app, user)?,
            self.user_values(keys::CF_BLACKS, app, user)?,
            self.user_values(keys::CF_FREQS, app, user)?,
            self.user_entries(keys::CF_FRIEND_TAGS, app, user)?,
        ))
    }

    /// (key suffix after the user prefix, value) under one user's prefix.
    fn user_entries(&self, cf_name: &'static str, app: AppId, user: &UserId) -> Result<Vec<Entry>, StoreError> {
        let prefix = keys::user_conv_prefix(app, user);
        let mut out = Vec::new();
        for kv in self.db.iterator_cf(cf(&self.db, cf_name)?, IteratorMode::From(&prefix, Direction::Forward)) {
            let (k, v) = kv.map_err(rocks)?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((k[prefix.len()..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// The values under one user's prefix in a per-user column.
    fn user_values(&self, cf_name: &'static str, app: AppId, user: &UserId) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.user_entries(cf_name, app, user)?.into_iter().map(|(_, v)| v).collect())
    }

    /// Whether `user` has `peer` as a friend, and in the blacklist (two point reads).
    pub fn relation(&self, app: AppId, user: &UserId, peer: &UserId) -> Result<(bool, bool), StoreError> {
        let k = keys::user_peer(app, user, peer);
        let friend = self.db.get_cf(cf(&self.db, keys::CF_FRIENDS)?, &k).map_err(rocks)?.is_some();
        let black = self.db.get_cf(cf(&self.db, keys::CF_BLACKS)?, &k).map_err(rocks)?.is_some();
        Ok((friend, black))
    }

    /// The delivery floor and shard count (`keys::META_DELIVERY_FLOOR`) and every delivery
    /// mark ((user shard, source shard) -> server id).
    #[allow(clippy::type_complexity)]
    pub fn delivery_marks(&self) -> Result<(Option<(u64, u8)>, Vec<((u8, u8), u64)>), StoreError> {
        let meta = cf(&self.db, keys::CF_META)?;
        let floor = match self.db.get_cf(meta, keys::META_DELIVERY_FLOOR).map_err(rocks)? {
            Some(v) if v.len() == 9 => Some((u64::from_be_bytes(v[..8].try_into().unwrap_or_default()), v[8])),
            Some(_) => return Err(StoreError::Corrupt("delivery floor".into())),
            None => None,
        };
        let mut marks = Vec::new();
        let it = self.db.iterator_cf(meta, IteratorMode::From(keys::DELIVERY_MARK_PREFIX, Direction::Forward));
        for kv in it {
            let (k, v) = kv.map_err(rocks)?;
            if !k.starts_with(keys::DELIVERY_MARK_PREFIX) {
                break;
            }
            let ts = keys::decode_delivery_mark(&k).ok_or_else(|| StoreError::Corrupt("delivery mark key".into()))?;
            let id: [u8; 8] = v[..].try_into().map_err(|_| StoreError::Corrupt("delivery mark".into()))?;
            marks.push((ts, u64::from_be_bytes(id)));
        }
        Ok((floor, marks))
    }

    /// The number of keys in each column family, by name (a full scan: for tests and
    /// operators looking at what a workload stores, never for the serving path).
    pub fn key_counts(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        keys::ALL_CFS
            .iter()
            .map(|name| {
                let mut it = self.db.raw_iterator_cf(cf(&self.db, name)?);
                it.seek_to_first();
                let mut n = 0u64;
                while it.valid() {
                    n += 1;
                    it.next();
                }
                it.status().map_err(rocks)?;
                Ok((*name, n))
            })
            .collect()
    }

    /// Writes `batch` now, fdatasync'ed, bypassing the writer (start-up, before any shard runs).
    pub fn write_now(&self, batch: Batch) -> Result<(), StoreError> {
        let events = self.events.assign(batch.ops.iter());
        let wb = write_batch(&self.db, batch.ops.iter().chain(&events))?;
        let mut o = rocksdb::WriteOptions::default();
        o.set_sync(true);
        self.db.write_opt(wb, &o).map_err(rocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use std::sync::mpsc as std_mpsc;

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn commit_and_wait(c: &Committer, batch: Batch) -> Result<(), StoreError> {
        let (tx, rx) = std_mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(c.commit(batch, Box::new(move |r| tx.send(r).unwrap())));
        rx.recv().unwrap()
    }

    #[test]
    fn stream_keeps_each_item_once_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (c, w) = store.start_writer(WriterOptions {
            durability: Durability::Wal,
            wal_sync_ms: 10,
            queue: 16,
            max_group: 16,
            direct: false,
        });
        let (app, me) = (AppId(1), u("me"));
        let (bob, carol) = (ItemId::User(u("bob")), ItemId::User(u("carol")));
        fn put<'a>(item: &'a ItemId, seq: u64, payload: Option<&'a [u8]>, replaced: Option<u64>) -> StreamPut<'a> {
            StreamPut { stream: Stream::Friends, seq, item, payload, replaced }
        }
        let mut b = Batch::default();
        b.put_stream_item(app, &me, put(&bob, 1, Some(&b"v1"[..]), None));
        b.put_stream_item(app, &me, put(&carol, 2, Some(&b"c1"[..]), None));
        commit_and_wait(&c, b).unwrap();
        let mut b = Batch::default();
        b.put_stream_item(app, &me, put(&bob, 3, None, Some(1))); // bob deleted: tombstone
        commit_and_wait(&c, b).unwrap();

        let friends = Stream::Friends;
        let (all, more) = store.read_stream(app, &me, friends, 0, 10).unwrap();
        assert!(!more);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].seq, &all[0].item, all[0].payload.as_deref()), (2, &carol, Some(&b"c1"[..])));
        assert_eq!((all[1].seq, &all[1].item, all[1].payload.as_deref()), (3, &bob, None));
        let (page, more) = store.read_stream(app, &me, friends, 0, 1).unwrap();
        assert_eq!((page.len(), more), (1, true));
        let (rest, more) = store.read_stream(app, &me, friends, 2, 1).unwrap();
        assert_eq!((rest[0].seq, more), (3, false));
        assert!(store.read_stream(app, &me, Stream::FriendRequests, 0, 10).unwrap().0.is_empty());
        assert!(store.read_stream(app, &u("other"), friends, 0, 10).unwrap().0.is_empty());
        // An entry whose item is not of its stream's kind is reported, never trusted.
        assert!(matches!(store.read_stream(app, &me, Stream::Messages, 0, 10), Ok((ref e, false)) if e.is_empty()));
        let mut b = Batch::default();
        b.put_stream_item(app, &me, StreamPut { stream: Stream::Messages, ..put(&bob, 1, Some(&b""[..]), None) });
        commit_and_wait(&c, b).unwrap();
        assert!(matches!(store.read_stream(app, &me, Stream::Messages, 0, 10), Err(StoreError::Corrupt(_))));
        drop(c);
        w.join().unwrap();
        // Heads are the streams' last entries: stream 0 ends at 3 (the tombstone), others at 0;
        // another user's streams (sharing the key prefix "me") do not leak in.
        assert_eq!(store.stream_heads(app, &me, 3).unwrap(), vec![3, 0, 0]);
        assert_eq!(store.stream_heads(app, &me, 6).unwrap()[5], 1);
        assert_eq!(store.stream_heads(app, &u("m"), 3).unwrap(), vec![0, 0, 0]);
        assert_eq!(store.stream_heads(app, &u("mee"), 3).unwrap(), vec![0, 0, 0]);
    }

    #[test]
    fn older_directories_are_upgraded_and_an_unknown_format_refused() {
        let dir = tempfile::tempdir().unwrap();
        let set = |v: u32| {
            let store = Store::open(dir.path()).unwrap();
            let meta = cf(&store.db, keys::CF_META).unwrap();
            store.db.put_cf(meta, keys::META_FORMAT, v.to_be_bytes()).unwrap();
        };
        for old in [2, 3, 4] {
            set(old);
            let store = Store::open(dir.path()).unwrap();
            let meta = cf(&store.db, keys::CF_META).unwrap();
            assert_eq!(store.db.get_cf(meta, keys::META_FORMAT).unwrap().unwrap(), keys::FORMAT_VERSION.to_be_bytes());
        }
        set(keys::FORMAT_VERSION + 1);
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn messages_after_an_id_are_found_in_every_app_and_marks_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.max_message_id().unwrap(), 0);
        let ab = crate::domain::ids::ConvId::P2p(crate::domain::ids::Pair::new(&u("a"), &u("b")).unwrap());
        let mut b = Batch::default();
        for (app, id) in [(1, 5), (1, 9), (1, 20), (2, 3), (2, 30), (7, 10)] {
            b.put_message(AppId(app), &ab, id, id, vec![1]);
        }
        b.put_delivery_mark(1, 0, 42);
        b.put_delivery_mark(0, 1, 7);
        b.put_delivery_floor(8, 2);
        store.write_now(b).unwrap();
        let mut seen = Vec::new();
        let newest = store.for_each_message_after(8, |app, id, (conv, seq)| seen.push((app.0, id, conv, seq))).unwrap();
        let ids: Vec<(u32, u64)> = seen.iter().map(|s| (s.0, s.1)).collect();
        assert_eq!(ids, vec![(1, 9), (1, 20), (2, 30), (7, 10)]);
        assert_eq!((&seen[0].2, seen[0].3), (&ab, 9));
        assert_eq!(newest, 30);
        assert_eq!(store.for_each_message_after(30, |_, _, _| panic!("nothing is above 30")).unwrap(), 30);
        assert_eq!(store.max_message_id().unwrap(), 30);
        let (floor, mut marks) = store.delivery_marks().unwrap();
        marks.sort();
        assert_eq!((floor, marks), (Some((8, 2)), vec![((0, 1), 7), ((1, 0), 42)]));
    }

    #[test]
    fn table_files_index_and_filter_in_partitions() {
        // A whole filter of a big file did not fit a block-cache shard and was read again for
        // every lookup; partitions are cached one by one.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Batch::default();
        let peer = crate::domain::ids::ConvRef::P2p(u("peer"));
        for i in 0..50_000u32 {
            b.put_idem(AppId(1), &u("sender"), &peer, &format!("client-id-{i}"), vec![7; 24]);
        }
        store.write_now(b).unwrap();
        let idem = cf(&store.db, keys::CF_IDEM).unwrap();
        store.db.flush_cf(idem).unwrap();
        let props = store.db.property_value_cf(idem, "rocksdb.aggregated-table-properties").unwrap().unwrap();
        let partitions: u64 = props
            .split(';')
            .find_map(|p| p.trim().strip_prefix("# index partitions="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(partitions > 1, "a partitioned index: {props}");
        assert!(store.idem(AppId(1), &u("sender"), &peer, "client-id-49999").unwrap().is_some());
        assert!(store.idem(AppId(1), &u("sender"), &peer, "client-id-50000").unwrap().is_none());
    }

    #[test]
    fn barrier_commit_runs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (c, w) = store.start_writer(WriterOptions {
            durability: Durability::Sync,
            wal_sync_ms: 0,
            queue: 16,
            max_group: 16,
            direct: false,
        });
        let (tx, rx) = std_mpsc::channel();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for i in 0..50u32 {
            let tx = tx.clone();
            let mut b = Batch::default();
            if i % 2 == 0 {
                b.put_user(AppId(1), &u(&format!("u{i}")), vec![1]);
            }
            rt.block_on(c.commit(b, Box::new(move |r| tx.send((i, r.is_ok())).unwrap())));
        }
        drop(c);
        w.join().unwrap();
        let got: Vec<(u32, bool)> = rx.try_iter().collect();
        assert_eq!(got, (0..50).map(|i| (i, true)).collect::<Vec<_>>());
        let stored = (0..50u32).filter(|i| store.user(AppId(1), &u(&format!("u{i}"))).unwrap().is_some()).count();
        assert_eq!(stored, 25);
    }
}
