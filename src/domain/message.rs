//! Messages: the stored record, idempotency records, and the rules of send and
//! recall.

use crate::domain::ids::{ConvId, ConvKind, ConvRef, UserId};
use crate::domain::DomainError;
use crate::store::codec::{Corrupt, Reader, Writer};

/// Longest client message id, in bytes.
pub const MAX_CLIENT_ID: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub server_id: u64,
    pub client_id: String,
    pub from: UserId,
    /// What the sender addressed: the receiving user, or the group.
    pub to: ConvRef,
    /// Gap-free per conversation, from 1.
    pub seq: u64,
    pub msg_type: u32,
    pub body: Vec<u8>,
    pub ts_ms: u64,
    /// A tombstone: the body is gone.
    pub recalled: bool,
}

impl MessageRecord {
    /// Version 1: a one-to-one message (`to` is a user id). Version 2 adds the kind of `to`.
    /// One-to-one messages are still written as version 1, byte for byte as before.
    const P2P_VERSION: u8 = 1;
    const VERSION: u8 = 2;

    /// The conversation the message belongs to (`None` for one sent to oneself, which a
    /// send refuses).
    pub fn conv(&self) -> Option<ConvId> {
        self.to.conv_id(&self.from)
    }

    /// The conversation as `viewer` (its sender, its receiver or a group member) sees it.
    pub fn seen_by(&self, viewer: &UserId) -> ConvRef {
        match &self.to {
            ConvRef::P2p(to) if to == viewer => ConvRef::P2p(self.from.clone()),
            to => to.clone(),
        }
    }

    /// The receiver of a one-to-one message.
    pub fn receiver(&self) -> Option<&UserId> {
        self.to.peer_user()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.body.len() + self.client_id.len());
        match &self.to {
            ConvRef::P2p(_) => w.u8(Self::P2P_VERSION),
            to => w.u8(Self::VERSION).u8(to.kind() as u8),
        };
        w.u64(self.server_id)
            .str(&self.client_id)
            .str(self.from.as_str())
            .str(self.to.id_str())
            .u64(self.seq)
            .u32(self.msg_type)
            .bytes(&self.body)
            .u64(self.ts_ms)
            .bool(self.recalled);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<MessageRecord, Corrupt> {
        let mut r = Reader::new(bytes);
        let kind = match r.u8()? {
            Self::P2P_VERSION => ConvKind::P2P,
            Self::VERSION => ConvKind::from_u8(r.u8()?).ok_or(Corrupt)?,
            _ => return Err(Corrupt),
        };
        let server_id = r.u64()?;
        let client_id = r.str()?.to_owned();
        let from = UserId::new(r.str()?).ok_or(Corrupt)?;
        let to = ConvRef::parse(kind, r.str()?).ok_or(Corrupt)?;
        Ok(MessageRecord {
            server_id,
            client_id,
            from,
            to,
            seq: r.u64()?,
            msg_type: r.u32()?,
            body: r.bytes()?.to_vec(),
            ts_ms: r.u64()?,
            recalled: r.bool()?,
        })
    }
}

/// What a client message id was used for: enough to answer a retry with the original ack and
/// to tell a retry from a different message that reuses the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdemRecord {
    pub server_id: u64,
    pub seq: u64,
    pub ts_ms: u64,
    pub content_hash: u64,
}

impl IdemRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(33);
        w.u8(1).u64(self.server_id).u64(self.seq).u64(self.ts_ms).u64(self.content_hash);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<IdemRecord, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != 1 {
            return Err(Corrupt);
        }
        Ok(IdemRecord { server_id: r.u64()?, seq: r.u64()?, ts_ms: r.u64()?, content_hash: r.u64()? })
    }
}

/// A hash of what makes two sends "the same message". It is stored (idempotency records), so
/// it is FNV-1a, fixed forever, not std's unspecified `DefaultHasher`. (Over the addressee's
/// id only: an idempotency record is kept per conversation already.)
pub fn content_hash(to: &ConvRef, msg_type: u32, body: &[u8]) -> u64 {
    let to = to.id_str();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&(to.len() as u32).to_le_bytes());
    eat(to.as_bytes());
    eat(&msg_type.to_le_bytes());
    eat(body);
    h
}

/// Checks a send's own fields.
pub fn validate_send(client_id: &str, body: &[u8], max_body: usize) -> Result<(), DomainError> {
    if client_id.is_empty() {
        return Err(DomainError::MissingField("client_id"));
    }
    if client_id.len() > MAX_CLIENT_ID {
        return Err(DomainError::InvalidArgument("client_id"));
    }
    if body.len() > max_body {
        return Err(DomainError::MessageTooLarge);
    }
    Ok(())
}

/// A retry of a known client id: the same content gets the original ack, other content a
/// conflict.
pub fn retry(known: &IdemRecord, content_hash: u64) -> Result<IdemRecord, DomainError> {
    if known.content_hash == content_hash {
        Ok(known.clone())
    } else {
        Err(DomainError::ClientIdConflict)
    }
}

/// Recall: the sender (or an administrator) within the window; the result is the tombstone.
pub fn recall(
    msg: &MessageRecord,
    by: &UserId,
    by_admin: bool,
    now_ms: u64,
    window_secs: u64,
) -> Result<MessageRecord, DomainError> {
    if msg.recalled {
        return Err(DomainError::AlreadyRecalled);
    }
    if !by_admin && &msg.from != by {
        return Err(DomainError::RecallDenied);
    }
    if !by_admin && now_ms > msg.ts_ms.saturating_add(window_secs.saturating_mul(1000)) {
        return Err(DomainError::RecallWindowPassed);
    }
    let mut t = msg.clone();
    t.recalled = true;
    t.body.clear();
    Ok(t)
}

/// Which seqs of a conversation one history page reads, and in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    /// Lowest seq (inclusive).
    pub from: u64,
    /// Highest seq (inclusive).
    pub to: u64,
    /// Newest first.
    pub descending: bool,
}

/// The rule of `GetHistoryReq`: oldest first after `after_seq` (exclusive) when it is non-zero
/// or `oldest_first` is set, `before_seq` then ignored; otherwise newest first before
/// `before_seq` (0 = from the newest). Both bounds are exclusive from protocol version 2 on;
/// version 1 clients keep their inclusive `before_seq`. Old clients never set `oldest_first`,
/// so for them `after_seq = 0` keeps meaning newest first.
pub fn history_range(before_seq: u64, after_seq: u64, oldest_first: bool, protocol_version: u32) -> HistoryRange {
    if oldest_first || after_seq > 0 {
        HistoryRange { from: after_seq.saturating_add(1), to: u64::MAX, descending: false }
    } else {
        let to = match before_seq {
            0 => u64::MAX,
            b if protocol_version >= 2 => b - 1,
            b => b,
        };
        HistoryRange { from: 1, to, descending: true }
    }
}

/// The shard that issued a server message id.
pub fn id_shard(server_id: u64) -> u8 {
    ((server_id >> 16) & 0x3f) as u8
}

/// Server message ids: milliseconds (42 bits) · shard (6 bits) · counter (16 bits), and never
/// below the last one issued, so they grow per shard and differ across shards.
#[derive(Debug, Clone)]
pub struct IdGen {
    shard: u64,
    last: u64,
}

impl IdGen {
    pub fn new(shard: usize) -> IdGen {
        IdGen { shard: (shard as u64) & 0x3f, last: 0 }
    }

    /// An id generator whose ids are all above `max` (the highest id already stored), even if
    /// the clock went back since it was issued.
    pub fn after(shard: usize, max: u64) -> IdGen {
        let mut g = IdGen::new(shard);
        if max > 0 {
            // The millisecond after `max`'s, counter 0: `next` issues ids above this.
            g.last = (((max >> 22) + 1) << 22) | (g.shard << 16);
        }
        g
    }

    /// The generator a shard starts with: ids above `newest` (the highest stored) and from
    /// `now_ms` on. Its `last()` is above zero even before it issues anything, so a shard
    /// that never sends still moves the other shards' delivery marks for it (an empty store
    /// would otherwise leave them unwritten, and the next start would scan every message).
    pub fn starting(shard: usize, newest: u64, now_ms: u64) -> IdGen {
        let now = (now_ms & ((1 << 42) - 1)).saturating_sub(1) << 22;
        IdGen::after(shard, newest.max(now).max(1))
    }

    /// The last id issued (or the floor it started after).
    pub fn last(&self) -> u64 {
        self.last
    }

    pub fn next(&mut self, now_ms: u64) -> u64 {
        let now = now_ms & ((1 << 42) - 1);
        let (last_ms, last_ctr) = (self.last >> 22, self.last & 0xffff);
        // A clock that went back keeps counting from the last id; a full millisecond moves on
        // to the next one. Either way the shard bits stay this shard's.
        let (ms, ctr) = if self.last == 0 || now > last_ms {
            (now, 0)
        } else if last_ctr < 0xffff {
            (last_ms, last_ctr + 1)
        } else {
            (last_ms + 1, 0)
        };
        self.last = (ms << 22) | (self.shard << 16) | ctr;
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Pair;

    #[test]
    fn history_ranges() {
        let r = |from, to, descending| HistoryRange { from, to, descending };
        for v in [1, 2] {
            assert_eq!(history_range(0, 0, false, v), r(1, u64::MAX, true), "newest first from the newest");
            assert_eq!(history_range(15, 20, false, v), r(21, u64::MAX, false), "after_seq wins, exclusive");
            assert_eq!(history_range(0, 0, true, v), r(1, u64::MAX, false), "oldest first from the first message");
            assert_eq!(history_range(99, 5, true, v), r(6, u64::MAX, false), "before_seq ignored");
            assert_eq!(history_range(0, u64::MAX, false, v).from, u64::MAX, "no overflow");
        }
        assert_eq!(history_range(15, 0, false, 2), r(1, 14, true), "before_seq is exclusive");
        assert_eq!(history_range(1, 0, false, 2), r(1, 0, true), "before the first: nothing");
        assert_eq!(history_range(15, 0, false, 1), r(1, 15, true), "version 1: before_seq is inclusive");
    }

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn msg() -> MessageRecord {
        MessageRecord {
            server_id: 9,
            client_id: "c1".into(),
            from: u("alice"),
            to: ConvRef::P2p(u("bob")),
            seq: 3,
            msg_type: 1,
            body: b"hello".to_vec(),
            ts_ms: 1000,
            recalled: false,
        }
    }

    #[test]
    fn records_round_trip() {
        let m = msg();
        assert_eq!(MessageRecord::decode(&m.encode()), Ok(m.clone()));
        assert!(MessageRecord::decode(&m.encode()[..10]).is_err());
        assert_eq!(m.encode()[0], 1, "one-to-one records keep version 1");
        assert_eq!(
            (m.conv(), m.receiver()),
            (Some(ConvId::P2p(Pair::new(&u("alice"), &u("bob")).unwrap())), Some(&u("bob")))
        );
        assert_eq!(m.seen_by(&u("bob")), ConvRef::P2p(u("alice")));
        assert_eq!(m.seen_by(&u("alice")), ConvRef::P2p(u("bob")));
        let g = MessageRecord { to: ConvRef::parse(ConvKind::Group, "g1").unwrap(), ..m.clone() };
        assert_eq!(MessageRecord::decode(&g.encode()), Ok(g.clone()));
        assert_eq!((g.encode()[0], g.receiver(), g.seen_by(&u("carol"))), (2, None, g.to.clone()));
        let i = IdemRecord { server_id: 1, seq: 2, ts_ms: 3, content_hash: 4 };
        assert_eq!(IdemRecord::decode(&i.encode()), Ok(i));
    }

    #[test]
    fn pairs_are_canonical() {
        let p = Pair::new(&u("bob"), &u("alice")).unwrap();
        assert_eq!(p, Pair::new(&u("alice"), &u("bob")).unwrap());
        assert_eq!(p.peer_of(&u("alice")), &u("bob"));
        assert_eq!(p.peer_of(&u("bob")), &u("alice"));
        assert!(Pair::new(&u("a"), &u("a")).is_none());
    }

    #[test]
    fn retries_and_conflicts() {
        let bob = ConvRef::P2p(u("bob"));
        let h = content_hash(&bob, 1, b"x");
        let known = IdemRecord { server_id: 1, seq: 1, ts_ms: 1, content_hash: h };
        assert_eq!(retry(&known, h), Ok(known.clone()));
        assert_eq!(retry(&known, content_hash(&bob, 1, b"y")), Err(DomainError::ClientIdConflict));
        assert_ne!(h, content_hash(&ConvRef::P2p(u("carol")), 1, b"x"));
        assert_ne!(h, content_hash(&bob, 2, b"x"));
        // Stored on disk: the value must never change.
        assert_eq!(content_hash(&bob, 1, b"x"), 0x1fcf_8e65_8519_9ce8_u64, "{:#x}", content_hash(&bob, 1, b"x"));
    }

    #[test]
    fn recall_rules() {
        let m = msg();
        let t = recall(&m, &u("alice"), false, 1000 + 120_000, 120).unwrap();
        assert!(t.recalled && t.body.is_empty());
        assert_eq!(recall(&m, &u("alice"), false, 1000 + 120_001, 120), Err(DomainError::RecallWindowPassed));
        assert_eq!(recall(&m, &u("bob"), false, 1000, 120), Err(DomainError::RecallDenied));
        assert!(recall(&m, &u("admin"), true, 10_000_000, 120).is_ok());
        assert_eq!(recall(&t, &u("alice"), false, 1000, 120), Err(DomainError::AlreadyRecalled));
    }

    #[test]
    fn ids_grow_and_do_not_collide_across_shards() {
        let mut a = IdGen::new(1);
        let mut b = IdGen::new(2);
        let mut seen = std::collections::HashSet::new();
        let mut last = 0;
        for i in 0..200_000u64 {
            let now = 5_000 + i / 1000;
            let x = a.next(now);
            assert!(x > last);
            last = x;
            assert!(seen.insert(x));
            assert!(seen.insert(b.next(now)));
        }
        // The clock going back does not repeat ids, nor does a full millisecond.
        let before = a.next(10_000);
        assert!(a.next(1) > before);
        let mut c = IdGen::new(3);
        let mut prev = 0;
        for _ in 0..70_000 {
            let x = c.next(7);
            assert!(x > prev);
            assert_eq!((x >> 16) & 0x3f, 3, "shard bits stay");
            assert_eq!(id_shard(x), 3);
            prev = x;
        }
    }

    #[test]
    fn a_generator_started_after_the_newest_id_issues_only_ids_above_it() {
        // The newest stored id came from shard 5, in a later millisecond than the clock now says.
        let newest = IdGen::new(5).next(9_000);
        for shard in [0, 5, 9] {
            let mut g = IdGen::after(shard, newest);
            assert!(g.last() > newest, "marks taken before the first send cover nothing stored");
            let first = g.next(1_000);
            assert!(first > newest);
            assert_eq!(id_shard(first), shard as u8);
            assert!(g.next(20_000) > first, "a clock that catches up moves on");
        }
        assert_eq!(IdGen::after(2, 0).last(), 0);
        // A shard's starting generator: above the newest stored id, and never at zero.
        let g = IdGen::starting(2, 0, 5_000);
        assert!(g.last() > 0, "an empty store still gives marks something to move to");
        let mut g = IdGen::starting(2, newest, 1_000);
        assert!(g.last() > newest && g.next(1_000) > newest, "a clock behind the store");
        let mut g = IdGen::starting(2, 1 << 22, 50_000);
        assert!(g.next(50_000) >> 22 >= 49_999, "a store behind the clock");
    }
}
