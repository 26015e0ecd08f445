//! Message reads: a conversation's head and history, a message by seq or by server id, the
//! idempotency records, and the start-up scans (messages above an id, fan-out records).
//! Conversations are `ConvId`s: P2P pairs and groups share every layout here.

use rocksdb::{Direction, IteratorMode};

use super::{cf, keys, rocks, Store, StoreError};
use crate::domain::ids::{AppId, ConvId, ConvRef, UserId};

/// Where a message lives: its conversation and seq.
pub type Location = (ConvId, u64);

/// A reference to a stored message, as kept in Messages-stream entries: the body is stored
/// once, in the conversation.
pub fn message_ref(conv: &ConvId, seq: u64) -> Vec<u8> {
    keys::msg_location(conv, seq)
}

pub fn decode_message_ref(b: &[u8]) -> Option<Location> {
    keys::decode_msg_location(b)
}

fn location(v: &[u8], what: &str) -> Result<Location, StoreError> {
    keys::decode_msg_location(v).ok_or_else(|| StoreError::Corrupt(what.into()))
}

impl Store {
    /// A conversation's last seq (0 when it has no message): one seek to the end of its
    /// messages, never a scan.
    pub fn conv_head(&self, app: AppId, conv: &ConvId) -> Result<u64, StoreError> {
        let prefix = keys::conv(app, conv);
        let last = keys::msg(app, conv, u64::MAX);
        let mut it = self.db.iterator_cf(cf(&self.db, keys::CF_MSGS)?, IteratorMode::From(&last, Direction::Reverse));
        match it.next() {
            Some(kv) => {
                let (k, _) = kv.map_err(rocks)?;
                if !k.starts_with(&prefix) {
                    return Ok(0);
                }
                keys::decode_stream_seq(&k, prefix.len()).ok_or_else(|| StoreError::Corrupt("message key".into()))
            }
            None => Ok(0),
        }
    }

    pub fn message(&self, app: AppId, conv: &ConvId, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(cf(&self.db, keys::CF_MSGS)?, keys::msg(app, conv, seq)).map_err(rocks)
    }

    /// Where message `server_id` lives.
    pub fn message_location(&self, app: AppId, server_id: u64) -> Result<Option<Location>, StoreError> {
        match self.db.get_cf(cf(&self.db, keys::CF_MSG_IDS)?, keys::msg_id(app, server_id)).map_err(rocks)? {
            Some(v) => location(&v, "message location").map(Some),
            None => Ok(None),
        }
    }

    /// Messages of a conversation with `from <= seq <= to`, ascending or descending, at most
    /// `limit`; and whether more remain in that direction.
    pub fn messages(
        &self,
        app: AppId,
        conv: &ConvId,
        (from, to): (u64, u64),
        descending: bool,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let prefix = keys::conv(app, conv);
        let (start, dir) = if descending {
            (keys::msg(app, conv, to), Direction::Reverse)
        } else {
            (keys::msg(app, conv, from), Direction::Forward)
        };
        let mut out = Vec::with_capacity(limit.min(256));
        for kv in self.db.iterator_cf(cf(&self.db, keys::CF_MSGS)?, IteratorMode::From(&start, dir)) {
            let (k, v) = kv.map_err(rocks)?;
            if !k.starts_with(&prefix) {
                break;
            }
            let seq =
                keys::decode_stream_seq(&k, prefix.len()).ok_or_else(|| StoreError::Corrupt("message key".into()))?;
            if seq < from || seq > to {
                break;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(v.to_vec());
        }
        Ok((out, false))
    }

    /// The idempotency record of `sender`'s `client_id` in the conversation `to`.
    pub fn idem(
        &self,
        app: AppId,
        sender: &UserId,
        to: &ConvRef,
        client_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(cf(&self.db, keys::CF_IDEM)?, keys::idem(app, sender, to, client_id)).map_err(rocks)
    }

    /// Calls `f(app, server id, location)` for every message whose server id is above
    /// `after` (for every app: one seek per app), and returns the highest server id stored
    /// (`after` when none is above it).
    pub fn for_each_message_after(
        &self,
        after: u64,
        mut f: impl FnMut(AppId, u64, Location),
    ) -> Result<u64, StoreError> {
        let Some(from) = after.checked_add(1) else { return Ok(after) };
        let mut it = self.db.raw_iterator_cf(cf(&self.db, keys::CF_MSG_IDS)?);
        let mut max = after;
        it.seek(keys::msg_id(AppId(0), from));
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (app, id) = keys::decode_msg_id(k).ok_or_else(|| StoreError::Corrupt("message id key".into()))?;
            if id < from {
                // The next app's first ids: skip to the ones above `after`.
                it.seek(keys::msg_id(app, from));
                continue;
            }
            let loc = location(v, "message location")?;
            max = max.max(id);
            f(app, id, loc);
            it.next();
        }
        it.status().map_err(rocks)?;
        Ok(max)
    }

    /// The highest server id of any stored message (0 when there is none): one reverse seek
    /// per app.
    pub fn max_message_id(&self) -> Result<u64, StoreError> {
        let mut it = self.db.raw_iterator_cf(cf(&self.db, keys::CF_MSG_IDS)?);
        let mut max = 0;
        it.seek_to_first();
        while let Some(k) = it.key() {
            let (app, _) = keys::decode_msg_id(k).ok_or_else(|| StoreError::Corrupt("message id key".into()))?;
            it.seek_for_prev(keys::msg_id(app, u64::MAX));
            let (_, id) =
                it.key().and_then(keys::decode_msg_id).ok_or_else(|| StoreError::Corrupt("message id".into()))?;
            max = max.max(id);
            match app.0.checked_add(1) {
                Some(next) => it.seek(keys::msg_id(AppId(next), 0)),
                None => break,
            }
        }
        it.status().map_err(rocks)?;
        Ok(max)
    }

    /// Calls `f(app, user, server_id, kind, location)` for every fan-out record: a delivery
    /// or recall not yet recorded by its user's shard.
    pub fn for_each_fanout(&self, mut f: impl FnMut(AppId, UserId, u64, u8, Location)) -> Result<(), StoreError> {
        for kv in self.db.iterator_cf(cf(&self.db, keys::CF_FANOUT)?, IteratorMode::Start) {
            let (k, v) = kv.map_err(rocks)?;
            let (app, user, id, kind) =
                keys::decode_fanout(&k).ok_or_else(|| StoreError::Corrupt("fanout key".into()))?;
            f(app, user, id, kind, location(&v, "fanout value")?);
        }
        Ok(())
    }
}
