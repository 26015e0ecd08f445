//! Typed identifiers. Ids are parsed once at the edge (`UserId::new`) and trusted after.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

/// A tenant. Matches TLSSigAPIv2's numeric `sdkappid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(transparent)]
pub struct AppId(pub u32);

/// Longest user id, in bytes.
pub const MAX_USER_ID: usize = 64;

/// A user id: 1..=64 bytes of printable ASCII without spaces. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Parses an id from the wire or a file; `None` if it breaks the rules above.
    pub fn new(s: &str) -> Option<UserId> {
        let ok = !s.is_empty() && s.len() <= MAX_USER_ID && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| UserId(Arc::from(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        UserId::new(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid user id {s:?}")))
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
    }
}
