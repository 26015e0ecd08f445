//! `Batch`: the puts and deletes of one change, by what they store (users, streams, messages,
//! conversations, friendship, idempotency, deliveries, subscriptions), made durable together
//! by the writer in one WAL write. Every key comes from `keys`.

use crate::domain::ids::{AppId, UserId};
use crate::store::{codec, keys};

pub(crate) enum Op {
    Put(&'static str, Vec<u8>, Vec<u8>),
    Delete(&'static str, Vec<u8>),
}

/// Mutations that become durable together, in one WAL write.
#[derive(Default)]
pub struct Batch {
    pub(crate) ops: Vec<Op>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Adds `other`'s operations after this batch's.
    pub fn append(&mut self, mut other: Batch) {
        if self.ops.is_empty() {
            std::mem::swap(&mut self.ops, &mut other.ops);
        } else {
            self.ops.append(&mut other.ops);
        }
    }

    pub fn put_user(&mut self, app: AppId, user: &UserId, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_USERS, keys::user(app, user), record));
    }

    /// Puts `item` at `seq` of a user's stream (a tombstone when `payload` is `None`),
    /// removing its previous entry at `replaced` so a stream holds each item once, and
    /// moves the stream's head to `seq`. The caller knows where the item was (it keeps each
    /// item's stream seq in memory), so no index is written.
    #[allow(clippy::too_many_arguments)]
    pub fn put_stream_item(
        &mut self,
        app: AppId,
        user: &UserId,
        stream: u8,
        seq: u64,
        item: &[u8],
        payload: Option<&[u8]>,
        replaced: Option<u64>,
    ) {
        if let Some(old) = replaced {
            self.ops.push(Op::Delete(keys::CF_STREAM, keys::stream_entry(app, user, stream, old)));
        }
        let mut w = codec::Writer::with_capacity(item.len() + payload.map_or(0, |p| p.len()) + 16);
        w.bytes(item).bool(payload.is_none()).bytes(payload.unwrap_or_default());
        self.ops.push(Op::Put(keys::CF_STREAM, keys::stream_entry(app, user, stream, seq), w.finish()));
    }

    /// A new or changed message, with its id index.
    pub fn put_message(&mut self, app: AppId, lo: &UserId, hi: &UserId, seq: u64, server_id: u64, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_MSGS, keys::msg(app, lo, hi, seq), record));
        self.ops.push(Op::Put(keys::CF_MSG_IDS, keys::msg_id(app, server_id), keys::msg_location(lo, hi, seq)));
    }

    /// Replaces a stored message in place (a recall's tombstone).
    pub fn replace_message(&mut self, app: AppId, lo: &UserId, hi: &UserId, seq: u64, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_MSGS, keys::msg(app, lo, hi, seq), record));
    }

    pub fn put_user_conv(&mut self, app: AppId, user: &UserId, item: &[u8], record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_USER_CONVS, keys::user_conv(app, user, item), record));
    }

    pub fn put_friend(&mut self, app: AppId, user: &UserId, peer: &UserId, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_FRIENDS, keys::user_peer(app, user, peer), record));
    }

    pub fn delete_friend(&mut self, app: AppId, user: &UserId, peer: &UserId) {
        self.ops.push(Op::Delete(keys::CF_FRIENDS, keys::user_peer(app, user, peer)));
    }

    pub fn put_black(&mut self, app: AppId, user: &UserId, peer: &UserId, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_BLACKS, keys::user_peer(app, user, peer), record));
    }

    pub fn delete_black(&mut self, app: AppId, user: &UserId, peer: &UserId) {
        self.ops.push(Op::Delete(keys::CF_BLACKS, keys::user_peer(app, user, peer)));
    }

    pub fn put_friend_tag(&mut self, app: AppId, user: &UserId, name: &str, members: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_FRIEND_TAGS, keys::user_named(app, user, name), members));
    }

    pub fn delete_friend_tag(&mut self, app: AppId, user: &UserId, name: &str) {
        self.ops.push(Op::Delete(keys::CF_FRIEND_TAGS, keys::user_named(app, user, name)));
    }

    pub fn delete_friend_request(&mut self, app: AppId, user: &UserId, id: u64) {
        self.ops.push(Op::Delete(keys::CF_FREQS, keys::user_request(app, user, id)));
    }

    pub fn put_friend_request(&mut self, app: AppId, user: &UserId, id: u64, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_FREQS, keys::user_request(app, user, id), record));
    }

    pub fn put_idem(&mut self, app: AppId, sender: &UserId, peer: &UserId, client_id: &str, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_IDEM, keys::idem(app, sender, peer, client_id), record));
    }

    /// Records that `user`'s shard still has to record message `server_id` in its streams
    /// (`kind` 0: the delivery; 1: its recall).
    #[allow(clippy::too_many_arguments)]
    pub fn put_fanout(
        &mut self,
        app: AppId,
        user: &UserId,
        server_id: u64,
        kind: u8,
        lo: &UserId,
        hi: &UserId,
        seq: u64,
    ) {
        self.ops.push(Op::Put(
            keys::CF_FANOUT,
            keys::fanout(app, user, server_id, kind),
            keys::msg_location(lo, hi, seq),
        ));
    }

    /// Shard `user_shard` has recorded every delivery from `source_shard` up to `server_id`.
    pub fn put_delivery_mark(&mut self, user_shard: u8, source_shard: u8, server_id: u64) {
        self.ops.push(Op::Put(
            keys::CF_META,
            keys::delivery_mark(user_shard, source_shard),
            server_id.to_be_bytes().to_vec(),
        ));
    }

    pub fn delete_delivery_mark(&mut self, user_shard: u8, source_shard: u8) {
        self.ops.push(Op::Delete(keys::CF_META, keys::delivery_mark(user_shard, source_shard)));
    }

    pub fn put_delivery_floor(&mut self, floor: u64, shards: u8) {
        let mut v = floor.to_be_bytes().to_vec();
        v.push(shards);
        self.ops.push(Op::Put(keys::CF_META, keys::META_DELIVERY_FLOOR.to_vec(), v));
    }

    pub fn delete_fanout(&mut self, app: AppId, user: &UserId, server_id: u64, kind: u8) {
        self.ops.push(Op::Delete(keys::CF_FANOUT, keys::fanout(app, user, server_id, kind)));
    }

    pub fn put_subscription(&mut self, app: AppId, target: &UserId, subscriber: &UserId, expiry_ms: u64) {
        self.ops.push(Op::Put(keys::CF_SUBS, keys::sub(app, target, subscriber), expiry_ms.to_be_bytes().to_vec()));
    }

    pub fn delete_subscription(&mut self, app: AppId, target: &UserId, subscriber: &UserId) {
        self.ops.push(Op::Delete(keys::CF_SUBS, keys::sub(app, target, subscriber)));
    }
}
