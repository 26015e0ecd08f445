//! Friendship: my directed relations (friends, blacklist) and the friend requests I received,
//! and the rules that change them. A friendship is two directed relations, each owned by its
//! user; deleting is one-way (my side only).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::domain::ids::UserId;
use crate::domain::DomainError;
use crate::protocol::wire::{FriendAddPolicy, RequestState};
use crate::store::codec::{Corrupt, Reader, Writer};

/// One user's friendship state.
#[derive(Default)]
pub struct Social {
    pub friends: HashMap<UserId, FriendEntry>,
    pub blacks: HashMap<UserId, BlackEntry>,
    pub requests: BTreeMap<u64, FriendRequest>,
    /// Friend tags (the wire calls them friend groups): name -> members.
    pub tags: BTreeMap<String, BTreeSet<UserId>>,
    /// Where the tombstones of deleted friends / blacklist entries sit in their streams, so
    /// that adding one again moves its entry (a stream holds each item once).
    pub friend_tombs: HashMap<UserId, u64>,
    pub black_tombs: HashMap<UserId, u64>,
}

/// What the conversation's shard knows of a pair for the send checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct PairRelation {
    pub lo_friend_hi: bool,
    pub hi_friend_lo: bool,
    pub lo_black_hi: bool,
    pub hi_black_lo: bool,
}

/// Longest remark, source, wording; longest extra.
pub const MAX_FIELD: usize = 256;
pub const MAX_EXTRA: usize = 4096;

/// What a requester says when adding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddInfo {
    pub remark: String,
    pub add_source: String,
    pub add_wording: String,
    pub extra: String,
}

impl AddInfo {
    pub fn validate(&self) -> Result<(), DomainError> {
        for (v, what) in
            [(&self.remark, "remark"), (&self.add_source, "add_source"), (&self.add_wording, "add_wording")]
        {
            if v.len() > MAX_FIELD {
                return Err(DomainError::InvalidArgument(what));
            }
        }
        if self.extra.len() > MAX_EXTRA {
            return Err(DomainError::InvalidArgument("extra"));
        }
        Ok(())
    }
}

/// My side of a friendship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendEntry {
    pub peer: UserId,
    pub info: AddInfo,
    pub create_ms: u64,
    /// Where this entry sits in my Friends stream.
    pub stream_seq: u64,
}

/// A user I blacklisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackEntry {
    pub peer: UserId,
    pub create_ms: u64,
    pub stream_seq: u64,
}

/// A friend request I received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendRequest {
    pub id: u64,
    pub from: UserId,
    pub to: UserId,
    pub info: AddInfo,
    pub state: RequestState,
    pub read: bool,
    pub create_ms: u64,
    pub update_ms: u64,
    pub stream_seq: u64,
}

fn put_info(w: &mut Writer, i: &AddInfo) {
    w.str(&i.remark).str(&i.add_source).str(&i.add_wording).str(&i.extra);
}

fn get_info(r: &mut Reader<'_>) -> Result<AddInfo, Corrupt> {
    Ok(AddInfo {
        remark: r.str()?.to_owned(),
        add_source: r.str()?.to_owned(),
        add_wording: r.str()?.to_owned(),
        extra: r.str()?.to_owned(),
    })
}

fn uid(s: &str) -> Result<UserId, Corrupt> {
    UserId::new(s).ok_or(Corrupt)
}

impl FriendEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        w.u8(1).str(self.peer.as_str());
        put_info(&mut w, &self.info);
        w.u64(self.create_ms).u64(self.stream_seq);
        w.finish()
    }

    pub fn decode(b: &[u8]) -> Result<FriendEntry, Corrupt> {
        let mut r = Reader::new(b);
        if r.u8()? != 1 {
            return Err(Corrupt);
        }
        Ok(FriendEntry { peer: uid(r.str()?)?, info: get_info(&mut r)?, create_ms: r.u64()?, stream_seq: r.u64()? })
    }
}

impl BlackEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        w.u8(1).str(self.peer.as_str()).u64(self.create_ms).u64(self.stream_seq);
        w.finish()
    }

    pub fn decode(b: &[u8]) -> Result<BlackEntry, Corrupt> {
        let mut r = Reader::new(b);
        if r.u8()? != 1 {
            return Err(Corrupt);
        }
        Ok(BlackEntry { peer: uid(r.str()?)?, create_ms: r.u64()?, stream_seq: r.u64()? })
    }
}

impl FriendRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96);
        w.u8(1).u64(self.id).str(self.from.as_str()).str(self.to.as_str());
        put_info(&mut w, &self.info);
        w.u8(self.state.0).bool(self.read).u64(self.create_ms).u64(self.update_ms).u64(self.stream_seq);
        w.finish()
    }

    pub fn decode(b: &[u8]) -> Result<FriendRequest, Corrupt> {
        let mut r = Reader::new(b);
        if r.u8()? != 1 {
            return Err(Corrupt);
        }
        Ok(FriendRequest {
            id: r.u64()?,
            from: uid(r.str()?)?,
            to: uid(r.str()?)?,
            info: get_info(&mut r)?,
            state: RequestState(r.u8()?),
            read: r.bool()?,
            create_ms: r.u64()?,
            update_ms: r.u64()?,
            stream_seq: r.u64()?,
        })
    }
}

/// Longest friend tag name (how many tags a user may have is `limits.max_friend_groups`).
pub const MAX_TAG_NAME: usize = 64;

/// The stored form of a friend tag's members.
pub fn encode_members<'a>(members: impl Iterator<Item = &'a UserId>) -> Vec<u8> {
    let mut w = Writer::with_capacity(64);
    w.u8(1);
    let list: Vec<&UserId> = members.collect();
    w.u32(list.len() as u32);
    for m in list {
        w.str(m.as_str());
    }
    w.finish()
}

pub fn decode_members(b: &[u8]) -> Result<Vec<UserId>, Corrupt> {
    let mut r = Reader::new(b);
    if r.u8()? != 1 {
        return Err(Corrupt);
    }
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(uid(r.str()?)?);
    }
    Ok(out)
}

pub fn valid_tag_name(name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::MissingField("name"));
    }
    if name.len() > MAX_TAG_NAME {
        return Err(DomainError::InvalidArgument("name"));
    }
    Ok(())
}

/// What happens when `from` asks to add me.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// We are friends now (my side is written).
    Added,
    /// A request waits for my approval.
    Requested,
}

/// The rules of an incoming add: my blacklist, then my policy (an administrator's add
/// bypasses the policy: app backends import relationships).
pub fn inbound(policy: FriendAddPolicy, blacklisted_them: bool, by_admin: bool) -> Result<Inbound, DomainError> {
    if blacklisted_them {
        return Err(DomainError::InBlacklist);
    }
    if by_admin {
        return Ok(Inbound::Added);
    }
    match policy {
        FriendAddPolicy::NeedApproval => Ok(Inbound::Requested),
        FriendAddPolicy::Nobody => Err(DomainError::FriendAddRefused),
        _ => Ok(Inbound::Added),
    }
}

/// A request I may still answer.
pub fn answerable(r: Option<&FriendRequest>) -> Result<&FriendRequest, DomainError> {
    match r {
        Some(r) if r.state == RequestState::Pending => Ok(r),
        _ => Err(DomainError::FriendRequestNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn records_round_trip() {
        let info = AddInfo { remark: "r".into(), add_source: "s".into(), add_wording: "hi".into(), extra: "{}".into() };
        let f = FriendEntry { peer: u("bob"), info: info.clone(), create_ms: 5, stream_seq: 9 };
        assert_eq!(FriendEntry::decode(&f.encode()), Ok(f));
        let b = BlackEntry { peer: u("eve"), create_ms: 1, stream_seq: 2 };
        assert_eq!(BlackEntry::decode(&b.encode()), Ok(b));
        let r = FriendRequest {
            id: 7,
            from: u("a"),
            to: u("b"),
            info,
            state: RequestState::Pending,
            read: false,
            create_ms: 1,
            update_ms: 2,
            stream_seq: 3,
        };
        assert_eq!(FriendRequest::decode(&r.encode()), Ok(r.clone()));
        assert!(FriendRequest::decode(&r.encode()[..5]).is_err());
    }

    #[test]
    fn inbound_rules() {
        assert_eq!(inbound(FriendAddPolicy::Anyone, false, false), Ok(Inbound::Added));
        assert_eq!(inbound(FriendAddPolicy::NeedApproval, false, false), Ok(Inbound::Requested));
        assert_eq!(inbound(FriendAddPolicy::Nobody, false, false), Err(DomainError::FriendAddRefused));
        assert_eq!(inbound(FriendAddPolicy::Nobody, false, true), Ok(Inbound::Added));
        assert_eq!(inbound(FriendAddPolicy::Anyone, true, true), Err(DomainError::InBlacklist));
        let info = AddInfo { remark: "x".repeat(MAX_FIELD + 1), ..Default::default() };
        assert_eq!(info.validate(), Err(DomainError::InvalidArgument("remark")));
    }
}
