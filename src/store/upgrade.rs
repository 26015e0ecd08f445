//! The on-disk format check at open, and the in-place upgrade of older directories.
//!
//! Format 5 tags every conversation in keys and values (`keys::conv_bytes`), so that groups
//! share the message layouts with P2P pairs. Formats 2 to 4 had an untagged pair
//! (`[len][lo][len][hi]`) there; the upgrade inserts `keys::CONV_P2P` before it in message
//! keys, message locations (id index, fan-out records, Messages-stream payloads) and
//! idempotency keys. It runs in chunks, each atomic; a format 4 pair starts with a user id's
//! length (1..=64) where format 5 has its tag (above 64), so an upgrade cut by a crash is
//! simply run again over what is left. The format is marked 5 only at the end.

use rocksdb::{IteratorMode, WriteBatch, WriteOptions};

use super::{cf, codec, keys, rocks, Store, StoreError};
use crate::domain::sync::Stream;

/// Operations per atomic chunk of the upgrade.
const CHUNK: usize = 4096;

/// What sits at a conversation's place in a key or value.
enum At {
    /// Format 5 already (a part done before a crash).
    Tagged,
    /// Format 4: the pair, untagged.
    Untagged,
}

fn at(b: &[u8], i: usize, what: &str) -> Result<At, StoreError> {
    match b.get(i) {
        Some(&keys::CONV_P2P) | Some(&keys::CONV_GROUP) => Ok(At::Tagged),
        Some(1..=64) => Ok(At::Untagged),
        _ => Err(StoreError::Corrupt(format!("{what} in a format 4 directory"))),
    }
}

fn tagged(b: &[u8], i: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + 1);
    v.extend_from_slice(&b[..i]);
    v.push(keys::CONV_P2P);
    v.extend_from_slice(&b[i..]);
    v
}

/// An entry's new key and value, if it changes.
type Rewritten = Result<Option<(Vec<u8>, Vec<u8>)>, StoreError>;

/// How one column family changes.
type Rewrite = fn(&[u8], &[u8]) -> Rewritten;

fn msg_key(k: &[u8], v: &[u8]) -> Rewritten {
    Ok(match at(k, 4, "message key")? {
        At::Tagged => None,
        At::Untagged => Some((tagged(k, 4), v.to_vec())),
    })
}

fn location_value(k: &[u8], v: &[u8]) -> Rewritten {
    Ok(match at(v, 0, "message location")? {
        At::Tagged => None,
        At::Untagged => Some((k.to_vec(), tagged(v, 0))),
    })
}

fn idem_key(k: &[u8], v: &[u8]) -> Rewritten {
    let sender_len = *k.get(4).ok_or_else(|| StoreError::Corrupt("idempotency key".into()))? as usize;
    Ok(match at(k, 5 + sender_len, "idempotency key")? {
        At::Tagged => None,
        At::Untagged => Some((tagged(k, 5 + sender_len), v.to_vec())),
    })
}

/// A Messages-stream entry: its payload is a message location (a tombstone has none).
fn stream_entry(k: &[u8], v: &[u8]) -> Rewritten {
    let user_len = *k.get(4).ok_or_else(|| StoreError::Corrupt("stream key".into()))? as usize;
    if k.get(5 + user_len) != Some(&(Stream::Messages as u8)) {
        return Ok(None);
    }
    let mut r = codec::Reader::new(v);
    let (item, deleted, payload) = (r.bytes()?, r.bool()?, r.bytes()?);
    if deleted {
        return Ok(None);
    }
    Ok(match at(payload, 0, "message reference")? {
        At::Tagged => None,
        At::Untagged => {
            let mut w = codec::Writer::with_capacity(v.len() + 1);
            w.bytes(item).bool(false).bytes(&tagged(payload, 0));
            Some((k.to_vec(), w.finish()))
        }
    })
}

impl Store {
    pub(super) fn check_format(&self) -> Result<(), StoreError> {
        let meta = cf(&self.db, keys::CF_META)?;
        let mark = || {
            let mut o = WriteOptions::default();
            o.set_sync(true);
            self.db.put_cf_opt(meta, keys::META_FORMAT, keys::FORMAT_VERSION.to_be_bytes(), &o).map_err(rocks)
        };
        match self.db.get_cf(meta, keys::META_FORMAT).map_err(rocks)? {
            None => mark(),
            Some(v) if v[..] == keys::FORMAT_VERSION.to_be_bytes() => Ok(()),
            // Version 2 also kept each stream's head in CF_HEADS; version 3 reads heads from
            // the streams themselves, so the heads need nothing. Version 3 had no delivery
            // marks: every delivery not yet recorded had a fan-out record, which later versions
            // still honour (a missing floor is the newest message). Version 4 had untagged
            // pairs: see the module's doc.
            Some(v) if [2u32, 3, 4].iter().any(|old| v[..] == old.to_be_bytes()) => {
                self.tag_conversations()?;
                mark()
            }
            Some(v) => Err(StoreError::Corrupt(format!("unknown on-disk format {v:?}"))),
        }
    }

    /// The format 4 -> 5 upgrade (see the module's doc).
    fn tag_conversations(&self) -> Result<(), StoreError> {
        let steps: [(&'static str, Rewrite); 5] = [
            (keys::CF_MSGS, msg_key),
            (keys::CF_MSG_IDS, location_value),
            (keys::CF_FANOUT, location_value),
            (keys::CF_IDEM, idem_key),
            (keys::CF_STREAM, stream_entry),
        ];
        let mut changed = 0u64;
        for (name, rewrite) in steps {
            let family = cf(&self.db, name)?;
            let mut wb = WriteBatch::default();
            // The iterator reads a snapshot: the keys it writes are not seen again.
            for kv in self.db.iterator_cf(family, IteratorMode::Start) {
                let (k, v) = kv.map_err(rocks)?;
                let Some((nk, nv)) = rewrite(&k, &v)? else { continue };
                if nk != k[..] {
                    wb.delete_cf(family, &k);
                }
                wb.put_cf(family, nk, nv);
                changed += 1;
                if wb.len() >= CHUNK {
                    self.db.write(std::mem::take(&mut wb)).map_err(rocks)?;
                }
            }
            self.db.write(wb).map_err(rocks)?;
        }
        tracing::info!(entries = changed, "upgraded the store to format 5 (tagged conversations)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{AppId, ConvId, ConvRef, Pair, UserId};
    use crate::domain::sync::ItemId;
    use crate::store::{Batch, StreamPut};

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn untag(mut k: Vec<u8>, i: usize) -> Vec<u8> {
        assert_eq!(k.remove(i), keys::CONV_P2P);
        k
    }

    #[test]
    fn a_format_4_directory_is_upgraded_in_place_even_after_a_cut_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let (app, a, b) = (AppId(3), u("alice"), u("bob"));
        let conv = ConvId::P2p(Pair::new(&a, &b).unwrap());
        let other = ConvId::P2p(Pair::new(&a, &u("carol")).unwrap());
        {
            // Format 4 as it was written: the same entries, without the tags. One message of
            // `other` was already upgraded before a crash.
            let store = Store::open(dir.path()).unwrap();
            let db = &store.db;
            let put = |name, k: Vec<u8>, v: Vec<u8>| db.put_cf(cf(db, name).unwrap(), k, v).unwrap();
            for seq in 1..=3u64 {
                put(keys::CF_MSGS, untag(keys::msg(app, &conv, seq), 4), vec![seq as u8]);
                put(keys::CF_MSG_IDS, keys::msg_id(app, 100 + seq), untag(keys::msg_location(&conv, seq), 0));
            }
            put(keys::CF_MSGS, keys::msg(app, &other, 1), vec![9]);
            put(keys::CF_MSG_IDS, keys::msg_id(app, 200), keys::msg_location(&other, 1));
            put(keys::CF_FANOUT, keys::fanout(app, &b, 103, 1), untag(keys::msg_location(&conv, 3), 0));
            let sender = 5 + a.as_str().len();
            put(keys::CF_IDEM, untag(keys::idem(app, &a, &ConvRef::P2p(b.clone()), "c1"), sender), vec![7]);
            let mut batch = Batch::default();
            let item = ItemId::Message(102);
            let payload = untag(keys::msg_location(&conv, 2), 0);
            let at = |seq| StreamPut { stream: Stream::Messages, seq, item: &item, payload: None, replaced: None };
            batch.put_stream_item(app, &b, StreamPut { payload: Some(&payload), ..at(1) });
            batch.put_stream_item(app, &b, at(2)); // a tombstone: nothing to rewrite
            let friend = ItemId::User(a.clone());
            let f = StreamPut { stream: Stream::Friends, seq: 1, item: &friend, payload: Some(&[1]), replaced: None };
            batch.put_stream_item(app, &b, f);
            store.write_now(batch).unwrap();
            db.put_cf(cf(db, keys::CF_META).unwrap(), keys::META_FORMAT, 4u32.to_be_bytes()).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let meta = cf(&store.db, keys::CF_META).unwrap();
        assert_eq!(store.db.get_cf(meta, keys::META_FORMAT).unwrap().unwrap(), keys::FORMAT_VERSION.to_be_bytes());
        assert_eq!(store.conv_head(app, &conv).unwrap(), 3);
        assert_eq!(store.messages(app, &conv, (1, 3), false, 10).unwrap(), (vec![vec![1], vec![2], vec![3]], false));
        assert_eq!(store.message(app, &other, 1).unwrap(), Some(vec![9]));
        assert_eq!(store.message_location(app, 102).unwrap(), Some((conv.clone(), 2)));
        assert_eq!(store.message_location(app, 200).unwrap(), Some((other.clone(), 1)));
        assert_eq!(store.idem(app, &a, &ConvRef::P2p(b.clone()), "c1").unwrap(), Some(vec![7]));
        let mut fanouts = Vec::new();
        store.for_each_fanout(|_, user, id, kind, loc| fanouts.push((user, id, kind, loc))).unwrap();
        assert_eq!(fanouts, vec![(b.clone(), 103, 1, (conv.clone(), 3))]);
        let (entries, _) = store.read_stream(app, &b, Stream::Messages, 0, 10).unwrap();
        let refs: Vec<_> = entries.iter().map(|e| e.payload.as_deref().map(crate::store::decode_message_ref)).collect();
        assert_eq!(refs, vec![Some(Some((conv.clone(), 2))), None]);
        let (friends, _) = store.read_stream(app, &b, Stream::Friends, 0, 10).unwrap();
        assert_eq!(friends[0].payload.as_deref(), Some(&[1u8][..]), "other streams are left alone");
        // Nothing of format 4 is left behind: every key decodes under format 5.
        let msgs = cf(&store.db, keys::CF_MSGS).unwrap();
        assert_eq!(store.db.iterator_cf(msgs, IteratorMode::Start).count(), 4);
        drop(store);
        // Opening again changes nothing.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.conv_head(app, &conv).unwrap(), 3);
    }

    #[test]
    fn a_directory_of_format_4_with_garbage_where_a_pair_belongs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let db = &store.db;
            db.put_cf(cf(db, keys::CF_MSG_IDS).unwrap(), keys::msg_id(AppId(1), 5), vec![0, 1, 2]).unwrap();
            db.put_cf(cf(db, keys::CF_META).unwrap(), keys::META_FORMAT, 4u32.to_be_bytes()).unwrap();
        }
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Corrupt(_))));
    }
}
