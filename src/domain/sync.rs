//! Incremental sync, the part every stream shares: a per-user, per-stream change seq, and
//! "changes after seq S, at most N, with tombstones".
//!
//! Each stream holds every item at most once, at the seq of its latest change; a deleted item
//! stays as a tombstone so that a device that was offline learns to remove it. The shard keeps
//! each stream's head seq in memory, read on a user's first use with one reverse seek per
//! stream (`Store::stream_heads`; a stream's last key is its head).

use crate::domain::ids::Seq;
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

/// One change as returned by a sync read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: Seq,
    pub item: Vec<u8>,
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
}
