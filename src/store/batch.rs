//! `Batch`: the puts and deletes of one change, by what they store (users, streams, messages,
//! conversations, friendship, idempotency, deliveries, subscriptions), made durable together
//! by the writer in one WAL write. Every key comes from `keys`.

use crate::domain::ids::{AppId, ConvId, ConvRef, GroupId, UserId};
use crate::domain::sync::{ItemId, Stream};
use crate::store::{codec, keys};

/// One stream entry to write: `item` at `seq` of `stream` (a tombstone when `payload` is
/// `None`), replacing the item's previous entry at `replaced`.
#[derive(Clone, Copy)]
pub struct StreamPut<'a> {
    pub stream: Stream,
    pub seq: u64,
    pub item: &'a ItemId,
    pub payload: Option<&'a [u8]>,
    pub replaced: Option<u64>,
}

impl<'a> StreamPut<'a> {
    /// An entry whose payload a sync read takes from the owner's memory (an empty marker).
    pub fn marker(stream: Stream, seq: u64, item: &'a ItemId, replaced: Option<u64>) -> StreamPut<'a> {
        StreamPut { stream, seq, item, payload: Some(&[]), replaced }
    }

    /// A tombstone: the item was deleted.
    pub fn tombstone(stream: Stream, seq: u64, item: &'a ItemId, replaced: Option<u64>) -> StreamPut<'a> {
        StreamPut { stream, seq, item, payload: None, replaced }
    }
}

pub(crate) enum Op {
    Put(&'static str, Vec<u8>, Vec<u8>),
    Delete(&'static str, Vec<u8>),
    /// An after-hook event of an app: the writer gives it its key (`store::events`).
    Event(AppId, Vec<u8>),
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

    /// Puts a user's stream entry (`StreamPut`), removing the item's previous entry so a
    /// stream holds each item once; the stream's head moves to its seq. The caller knows where
    /// the item was (it keeps each item's stream seq in memory), so no index is written.
    pub fn put_stream_item(&mut self, app: AppId, user: &UserId, e: StreamPut<'_>) {
        let stream = e.stream as u8;
        if let Some(old) = e.replaced {
            self.ops.push(Op::Delete(keys::CF_STREAM, keys::stream_entry(app, user, stream, old)));
        }
        let item = e.item.encode();
        let mut w = codec::Writer::with_capacity(item.len() + e.payload.map_or(0, |p| p.len()) + 16);
        w.bytes(&item).bool(e.payload.is_none()).bytes(e.payload.unwrap_or_default());
        self.ops.push(Op::Put(keys::CF_STREAM, keys::stream_entry(app, user, stream, e.seq), w.finish()));
    }

    /// A new or changed message, with its id index.
    pub fn put_message(&mut self, app: AppId, conv: &ConvId, seq: u64, server_id: u64, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_MSGS, keys::msg(app, conv, seq), record));
        self.ops.push(Op::Put(keys::CF_MSG_IDS, keys::msg_id(app, server_id), keys::msg_location(conv, seq)));
    }

    /// Replaces a stored message in place (a recall's tombstone).
    pub fn replace_message(&mut self, app: AppId, conv: &ConvId, seq: u64, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_MSGS, keys::msg(app, conv, seq), record));
    }

    pub fn put_user_conv(&mut self, app: AppId, user: &UserId, conv: &ConvRef, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_USER_CONVS, keys::user_conv(app, user, &conv.encode()), record));
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

    pub fn put_idem(&mut self, app: AppId, sender: &UserId, to: &ConvRef, client_id: &str, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_IDEM, keys::idem(app, sender, to, client_id), record));
    }

    /// Records that `user`'s shard still has to record message `server_id` in its streams
    /// (`kind` 0: the delivery; 1: its recall).
    pub fn put_fanout(&mut self, app: AppId, user: &UserId, (server_id, kind): (u64, u8), at: &(ConvId, u64)) {
        self.ops.push(Op::Put(
            keys::CF_FANOUT,
            keys::fanout(app, user, server_id, kind),
            keys::msg_location(&at.0, at.1),
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

    pub fn put_group(&mut self, app: AppId, g: &GroupId, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_GROUPS, keys::group(app, g), record));
    }

    pub fn put_group_member(&mut self, app: AppId, g: &GroupId, user: &UserId, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_GROUP_MEMBERS, keys::group_member(app, g, user), record));
    }

    pub fn delete_group_member(&mut self, app: AppId, g: &GroupId, user: &UserId) {
        self.ops.push(Op::Delete(keys::CF_GROUP_MEMBERS, keys::group_member(app, g, user)));
    }

    pub fn put_join_request(&mut self, app: AppId, g: &GroupId, id: u64, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_JOIN_REQS, keys::join_request(app, g, id), record));
    }

    pub fn delete_join_request(&mut self, app: AppId, g: &GroupId, id: u64) {
        self.ops.push(Op::Delete(keys::CF_JOIN_REQS, keys::join_request(app, g, id)));
    }

    /// The user's side of a membership: their entry for the group.
    pub fn put_user_group(&mut self, app: AppId, user: &UserId, g: &GroupId, record: Vec<u8>) {
        self.ops.push(Op::Put(keys::CF_USER_GROUPS, keys::user_group(app, user, g), record));
    }

    pub fn delete_user_group(&mut self, app: AppId, user: &UserId, g: &GroupId) {
        self.ops.push(Op::Delete(keys::CF_USER_GROUPS, keys::user_group(app, user, g)));
    }

    /// Records that `user`'s shard has yet to bring its side of the membership in `g` up to
    /// `version` (written with the group's change, deleted with the user's).
    /// An after-hook event reporting this batch's change, delivered once the batch is durable.
    pub fn put_hook_event(&mut self, app: AppId, event: Vec<u8>) {
        self.ops.push(Op::Event(app, event));
    }

    /// An after-hook event delivered to the backend.
    pub fn delete_hook_event(&mut self, app: AppId, seq: u64) {
        self.ops.push(Op::Delete(keys::CF_HOOK_EVENTS, keys::hook_event(app, seq)));
    }

    pub fn put_group_sync(&mut self, app: AppId, user: &UserId, g: &GroupId, version: u64) {
        self.ops.push(Op::Put(keys::CF_GROUP_SYNC, keys::group_sync(app, user, g, version), Vec::new()));
    }

    pub fn delete_group_sync(&mut self, app: AppId, user: &UserId, g: &GroupId, version: u64) {
        self.ops.push(Op::Delete(keys::CF_GROUP_SYNC, keys::group_sync(app, user, g, version)));
    }

    pub fn delete_user_conv(&mut self, app: AppId, user: &UserId, conv: &ConvRef) {
        self.ops.push(Op::Delete(keys::CF_USER_CONVS, keys::user_conv(app, user, &conv.encode())));
    }
}
