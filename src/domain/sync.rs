//! Incremental sync, the part every stream shares: a per-user, per-stream change seq, and
//! "changes after seq S, at most N, with tombstones".
//!
//! Each stream holds every item at most once, at the seq of its latest change; a deleted item
//! stays as a tombstone so that a device that was offline learns to remove it. The shard keeps
//! each stream's head seq in memory, read on a user's first use with one reverse seek per
//! stream (`Store::stream_heads`; a stream's last key is its head).

use crate::domain::ids::{ConvRef, GroupId, Seq, UserId};
use crate::protocol::wire::SyncStream;

/// The streams of the mission, in the order of `SyncStream` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Friends = 0,
    FriendRequests = 1,
    Blacklist = 2,
    Conversations = 3,
    JoinedGroups = 4,
    Messages = 5,
}

pub const STREAM_COUNT: usize = 6;

impl Stream {
    pub fn from_wire(s: SyncStream) -> Option<Stream> {
        Some(match s {
            SyncStream::Friends => Stream::Friends,
            SyncStream::FriendRequests => Stream::FriendRequests,
            SyncStream::Blacklist => Stream::Blacklist,
            SyncStream::Conversations => Stream::Conversations,
            SyncStream::JoinedGroups => Stream::JoinedGroups,
            SyncStream::Messages => Stream::Messages,
            _ => return None,
        })
    }

    pub fn to_wire(self) -> SyncStream {
        SyncStream(self as u8)
    }

    pub fn from_u8(v: u8) -> Option<Stream> {
        Stream::from_wire(SyncStream(v))
    }
}

/// The heads of one user's streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heads([Seq; STREAM_COUNT]);

impl Heads {
    pub fn get(&self, s: Stream) -> Seq {
        self.0[s as usize]
    }

    pub fn set(&mut self, s: Stream, seq: Seq) {
        self.0[s as usize] = seq;
    }

    /// Takes the next seq of a stream for a new change.
    pub fn bump(&mut self, s: Stream) -> Seq {
        let next = self.0[s as usize].next();
        self.0[s as usize] = next;
        next
    }
}

/// What a stream entry is about: its key within the stream. Each stream holds one kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemId {
    /// Friends and Blacklist: the other user.
    User(UserId),
    /// FriendRequests: the request's id.
    Request(u64),
    /// Conversations: the conversation as the stream's user sees it.
    Conversation(ConvRef),
    /// JoinedGroups: the group.
    Group(GroupId),
    /// Messages: the message's server id.
    Message(u64),
}

impl ItemId {
    /// The stored form: an id's bytes, a big-endian u64, or `ConvRef::encode`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ItemId::User(u) => u.as_str().as_bytes().to_vec(),
            ItemId::Group(g) => g.as_str().as_bytes().to_vec(),
            ItemId::Request(n) | ItemId::Message(n) => n.to_be_bytes().to_vec(),
            ItemId::Conversation(c) => c.encode(),
        }
    }

    /// An item of `stream` from its stored form; `None` if it is not one.
    pub fn decode(stream: Stream, b: &[u8]) -> Option<ItemId> {
        let text = || std::str::from_utf8(b).ok();
        let number = || <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes);
        match stream {
            Stream::Friends | Stream::Blacklist => text().and_then(UserId::new).map(ItemId::User),
            Stream::FriendRequests => number().map(ItemId::Request),
            Stream::Conversations => ConvRef::decode(b).map(ItemId::Conversation),
            Stream::JoinedGroups => text().and_then(GroupId::new).map(ItemId::Group),
            Stream::Messages => number().map(ItemId::Message),
        }
    }

    /// The length of `wire_id`, without building it (page sizing runs for every change).
    pub fn wire_len(&self) -> usize {
        match self {
            ItemId::User(u) => u.as_str().len(),
            ItemId::Group(g) => g.as_str().len(),
            ItemId::Request(n) | ItemId::Message(n) => n.checked_ilog10().map_or(1, |d| d as usize + 1),
            ItemId::Conversation(c) => c.id_str().len(),
        }
    }

    /// The id as `SyncItem.id` carries it: a user or group id, a conversation's peer or
    /// group id, a request's or message's id in decimal.
    pub fn wire_id(&self) -> String {
        match self {
            ItemId::User(u) => u.to_string(),
            ItemId::Group(g) => g.to_string(),
            ItemId::Request(n) | ItemId::Message(n) => n.to_string(),
            ItemId::Conversation(c) => c.id_str().to_owned(),
        }
    }
}

/// One change as returned by a sync read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: Seq,
    pub item: ItemId,
    pub payload: Option<Vec<u8>>,
}

/// The answer to "changes after S".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    pub stream: Stream,
    pub changes: Vec<Change>,
    pub head: Seq,
    pub more: bool,
}

/// Clamps a requested page size to the configured maximum (0 asks for the maximum).
pub fn page_size(requested: u32, max: usize) -> usize {
    match requested as usize {
        0 => max,
        n => n.min(max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_bump_per_stream() {
        let mut h = Heads::default();
        assert_eq!(h.bump(Stream::Friends), Seq(1));
        assert_eq!(h.bump(Stream::Friends), Seq(2));
        assert_eq!(h.bump(Stream::Messages), Seq(1));
        assert_eq!(h.get(Stream::Blacklist), Seq(0));
        for v in 0..STREAM_COUNT as u8 {
            assert_eq!(Stream::from_u8(v).unwrap() as u8, v);
        }
        assert_eq!(Stream::from_u8(6), None);
        assert_eq!(page_size(0, 100), 100);
        assert_eq!(page_size(5, 100), 5);
        assert_eq!(page_size(500, 100), 100);
    }

    #[test]
    fn item_ids_round_trip_per_stream_and_refuse_the_wrong_kind() {
        let bob = UserId::new("bob").unwrap();
        let items = [
            (Stream::Friends, ItemId::User(bob.clone()), "bob"),
            (Stream::Blacklist, ItemId::User(bob.clone()), "bob"),
            (Stream::FriendRequests, ItemId::Request(258), "258"),
            (Stream::Conversations, ItemId::Conversation(ConvRef::P2p(bob.clone())), "bob"),
            (Stream::JoinedGroups, ItemId::Group(GroupId::new("g1").unwrap()), "g1"),
            (Stream::Messages, ItemId::Message(u64::MAX), "18446744073709551615"),
        ];
        for (stream, item, wire) in items {
            assert_eq!(ItemId::decode(stream, &item.encode()), Some(item.clone()), "{stream:?}");
            assert_eq!(item.wire_id(), wire);
            assert_eq!(item.wire_len(), wire.len());
        }
        assert_eq!((ItemId::Request(0).wire_len(), ItemId::Message(10).wire_len()), (1, 2));
        // A Messages item is exactly 8 bytes, a friend's a valid user id.
        assert_eq!(ItemId::decode(Stream::Messages, b"bob"), None);
        assert_eq!(ItemId::decode(Stream::Friends, b"has space"), None);
        assert_eq!(ItemId::decode(Stream::Conversations, &[7, b'x']), None);
    }
}
