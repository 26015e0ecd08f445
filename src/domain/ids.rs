//! Typed identifiers. Ids are parsed once at the edge (`UserId::new`, `GroupId::new`) and
//! trusted after.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

/// A tenant. Matches TLSSigAPIv2's numeric `sdkappid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(transparent)]
pub struct AppId(pub u32);

/// Longest user or group id, in bytes.
pub const MAX_USER_ID: usize = 64;

/// The rule both user and group ids follow: 1..=64 bytes of printable ASCII without spaces.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_USER_ID && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A string id type: checked at construction, cheap to clone, printed as its text.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses an id from the wire or a file; `None` if it breaks the id rule.
            pub fn new(s: &str) -> Option<$name> {
                valid_id(s).then(|| $name(Arc::from(s)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::new(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid id {s:?}")))
            }
        }
    };
}

string_id!(
    /// A user id: 1..=64 bytes of printable ASCII without spaces.
    UserId
);
string_id!(
    /// A chat group id, under the same rule as user ids (its own namespace: a group and a
    /// user may share a name).
    GroupId
);

/// The two users of a P2P conversation, in a canonical order (lo < hi).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub lo: UserId,
    pub hi: UserId,
}

impl Pair {
    /// `None` for a conversation with oneself.
    pub fn new(a: &UserId, b: &UserId) -> Option<Pair> {
        match a.cmp(b) {
            std::cmp::Ordering::Less => Some(Pair { lo: a.clone(), hi: b.clone() }),
            std::cmp::Ordering::Greater => Some(Pair { lo: b.clone(), hi: a.clone() }),
            std::cmp::Ordering::Equal => None,
        }
    }

    pub fn has(&self, u: &UserId) -> bool {
        &self.lo == u || &self.hi == u
    }

    /// The other user of the pair, seen from `me` (who must be one of them).
    pub fn peer_of(&self, me: &UserId) -> &UserId {
        if &self.lo == me {
            &self.hi
        } else {
            &self.lo
        }
    }
}

/// A conversation, the same from every side: a P2P pair or a group. It chooses the shard that
/// owns the conversation (`Router::conv_shard`) and keys its messages in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConvId {
    P2p(Pair),
    Group(GroupId),
}

impl ConvId {
    /// The conversation as `me` sees it (for a pair, `me` must be one of its users).
    pub fn seen_by(&self, me: &UserId) -> ConvRef {
        match self {
            ConvId::P2p(p) => ConvRef::P2p(p.peer_of(me).clone()),
            ConvId::Group(g) => ConvRef::Group(g.clone()),
        }
    }
}

/// The kind of a conversation, as on the wire (`ConvType`) and in stored conversation
/// entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvKind {
    P2P = 1,
    Group = 2,
}

/// A conversation seen from one user: the other user, or the group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConvRef {
    P2p(UserId),
    Group(GroupId),
}

impl ConvRef {
    pub fn kind(&self) -> ConvKind {
        match self {
            ConvRef::P2p(_) => ConvKind::P2P,
            ConvRef::Group(_) => ConvKind::Group,
        }
    }

    /// The peer's user id or the group id.
    pub fn id_str(&self) -> &str {
        match self {
            ConvRef::P2p(u) => u.as_str(),
            ConvRef::Group(g) => g.as_str(),
        }
    }

    /// Parses a kind and an id (as stored or from the wire).
    pub fn parse(kind: ConvKind, id: &str) -> Option<ConvRef> {
        match kind {
            ConvKind::P2P => UserId::new(id).map(ConvRef::P2p),
            ConvKind::Group => GroupId::new(id).map(ConvRef::Group),
        }
    }

    /// The conversation itself, `me` being the one who sees it this way (`None` for a
    /// conversation with oneself).
    pub fn conv_id(&self, me: &UserId) -> Option<ConvId> {
        match self {
            ConvRef::P2p(peer) => Pair::new(me, peer).map(ConvId::P2p),
            ConvRef::Group(g) => Some(ConvId::Group(g.clone())),
        }
    }

    /// `[kind u8][id]`: the conversation's key in its user's list and its item id in the
    /// Conversations stream.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.id_str().len());
        v.push(self.kind() as u8);
        v.extend_from_slice(self.id_str().as_bytes());
        v
    }

    pub fn decode(b: &[u8]) -> Option<ConvRef> {
        let (&k, rest) = b.split_first()?;
        ConvRef::parse(ConvKind::from_u8(k)?, std::str::from_utf8(rest).ok()?)
    }

    /// The other user of a P2P conversation.
    pub fn peer_user(&self) -> Option<&UserId> {
        match self {
            ConvRef::P2p(u) => Some(u),
            ConvRef::Group(_) => None,
        }
    }
}

impl ConvKind {
    pub fn from_u8(v: u8) -> Option<ConvKind> {
        match v {
            1 => Some(ConvKind::P2P),
            2 => Some(ConvKind::Group),
            _ => None,
        }
    }
}

/// A server-wide connection number, unique for the life of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A position in a per-user change stream or a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Seq(pub u64);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rules() {
        assert!(UserId::new("alice").is_some());
        assert!(UserId::new("a_b-c.d@e").is_some());
        assert!(UserId::new("").is_none());
        assert!(UserId::new("has space").is_none());
        assert!(UserId::new("naïve").is_none());
        assert!(UserId::new(&"x".repeat(64)).is_some());
        assert!(UserId::new(&"x".repeat(65)).is_none());
        assert!(GroupId::new("team-1").is_some());
        assert!(GroupId::new("has space").is_none());
    }

    #[test]
    fn a_conversation_seen_from_each_side() {
        let (a, b) = (UserId::new("a").unwrap(), UserId::new("b").unwrap());
        let c = ConvRef::P2p(b.clone()).conv_id(&a).unwrap();
        assert_eq!(c, ConvId::P2p(Pair::new(&b, &a).unwrap()));
        assert_eq!(c.seen_by(&a), ConvRef::P2p(b.clone()));
        assert_eq!(c.seen_by(&b), ConvRef::P2p(a.clone()));
        assert_eq!(ConvRef::P2p(a.clone()).conv_id(&a), None, "not with oneself");
        let g = ConvRef::parse(ConvKind::Group, "g1").unwrap();
        assert_eq!(g.conv_id(&a).unwrap().seen_by(&b), g);
        assert_eq!((g.kind(), g.id_str(), g.peer_user()), (ConvKind::Group, "g1", None));
        assert_eq!(ConvRef::parse(ConvKind::P2P, ""), None);
        assert_eq!(ConvKind::from_u8(2), Some(ConvKind::Group));
        assert_eq!(ConvKind::from_u8(3), None);
        assert_eq!(ConvRef::decode(&g.encode()), Some(g));
        assert_eq!(ConvRef::decode(&[9, b'a']), None);
        assert_eq!(ConvRef::decode(&[1]), None);
    }
}
