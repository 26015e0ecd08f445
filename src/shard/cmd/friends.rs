//! Friendship, blacklist, friend requests and friend tags; run by the shard of the user whose
//! side changes.

use super::{Caller, Reply};
use crate::domain::friend::{AddInfo, FriendEntry, FriendRequest, Inbound};
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::DomainError;

/// An incoming add's outcome, the request it created, and whether the target already had the
/// adder as a friend (nothing was written).
pub type InboundAnswer = (Inbound, Option<FriendRequest>, bool);

/// What to do to a friend tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagOp {
    Create,
    Delete,
    Add,
    Remove,
}

/// A user's friend tags: (name, members).
pub type FriendTags = Vec<(String, Vec<UserId>)>;

/// A page of friends: entries, the newest change seq among them, more remain.
pub type FriendPage = (Vec<FriendEntry>, u64, bool);

/// One user's relation to another: (owner, peer) -> (friend, blacklisted).
pub type RelationAnswers = Vec<((UserId, UserId), (bool, bool))>;

/// Does `user` already have `peer` as a friend? (`AlreadyFriends` if so.)
pub struct FriendPrecheck {
    pub app: AppId,
    pub user: UserId,
    pub peer: UserId,
    pub reply: Reply<Result<bool, DomainError>>,
}

/// `from` asks to add `user`: `user`'s blacklist and policy decide (admins bypass the
/// policy); writes `user`'s side or a request.
pub struct FriendInbound {
    pub app: AppId,
    pub user: UserId,
    pub from: UserId,
    pub info: AddInfo,
    pub by_admin: bool,
    pub reply: Reply<Result<InboundAnswer, DomainError>>,
}

/// Writes `user`'s side of a friendship with `peer` (no change if it exists).
pub struct FriendAddSide {
    pub app: AppId,
    pub user: UserId,
    pub peer: UserId,
    pub info: AddInfo,
    pub origin: Option<ConnId>,
    /// This side completes the friendship: its after-hook event goes in this side's batch.
    pub report: Option<Befriended>,
    pub reply: Reply<Result<FriendEntry, DomainError>>,
}

/// What a friendship's after-hook event says, and when it is written.
pub struct Befriended {
    /// Who asked to be friends.
    pub initiator: UserId,
    pub by: Caller,
    /// Tencent's `ClientCmd`: `friend_add` (an add) or `friend_response` (an approval).
    pub client_cmd: &'static str,
    /// Report even when this side existed already (the other side was new in this flow).
    pub always: bool,
}

/// Removes `user`'s side of one friendship (`peer`) or of all (`None`).
pub struct FriendDelete {
    pub app: AppId,
    pub user: UserId,
    pub peer: Option<UserId>,
    pub origin: Option<ConnId>,
    pub by: Caller,
    pub reply: Reply<Result<Vec<UserId>, DomainError>>,
}

pub struct FriendUpdate {
    pub app: AppId,
    pub user: UserId,
    pub peer: UserId,
    pub remark: Option<String>,
    pub extra: Option<String>,
    pub origin: Option<ConnId>,
    pub reply: Reply<Result<FriendEntry, DomainError>>,
}

/// Owners' relations to peers (every owner belongs to this shard).
pub struct Relations {
    pub app: AppId,
    pub pairs: Vec<(UserId, UserId)>,
    pub reply: Reply<Result<RelationAnswers, DomainError>>,
}

/// One owner's friend entry for a peer, and whether the owner blacklisted it.
pub struct Relation {
    pub app: AppId,
    pub user: UserId,
    pub peer: UserId,
    pub reply: Reply<Result<(Option<FriendEntry>, bool), DomainError>>,
}

pub struct GetFriends {
    pub app: AppId,
    pub user: UserId,
    pub after: u64,
    pub limit: usize,
    pub reply: Reply<Result<FriendPage, DomainError>>,
}

pub struct BlackAdd {
    pub app: AppId,
    pub user: UserId,
    pub peer: UserId,
    pub origin: Option<ConnId>,
    pub by: Caller,
    pub reply: Reply<Result<(), DomainError>>,
}

pub struct BlackDelete {
    pub app: AppId,
    pub user: UserId,
    pub peer: UserId,
    pub origin: Option<ConnId>,
    pub by: Caller,
    pub reply: Reply<Result<(), DomainError>>,
}

pub struct GetFriendRequests {
    pub app: AppId,
    pub user: UserId,
    pub reply: Reply<Result<Vec<FriendRequest>, DomainError>>,
}

/// Approve or reject a request `user` received; approving writes `user`'s side.
pub struct AnswerFriendRequest {
    pub app: AppId,
    pub user: UserId,
    pub id: u64,
    pub approve: bool,
    pub remark: String,
    pub origin: Option<ConnId>,
    pub reply: Reply<Result<FriendRequest, DomainError>>,
}

pub struct ReadAllFriendRequests {
    pub app: AppId,
    pub user: UserId,
    pub origin: Option<ConnId>,
    pub reply: Reply<Result<(), DomainError>>,
}

pub struct FriendTag {
    pub app: AppId,
    pub user: UserId,
    pub name: String,
    pub op: TagOp,
    pub members: Vec<UserId>,
    pub origin: Option<ConnId>,
    pub reply: Reply<Result<(), DomainError>>,
}

pub struct GetFriendTags {
    pub app: AppId,
    pub user: UserId,
    pub reply: Reply<Result<FriendTags, DomainError>>,
}

super::area!(
    Friend,
    FriendCmd {
        FriendPrecheck,
        FriendInbound,
        FriendAddSide,
        FriendDelete,
        FriendUpdate,
        Relations,
        Relation,
        GetFriends,
        BlackAdd,
        BlackDelete,
        GetFriendRequests,
        AnswerFriendRequest,
        ReadAllFriendRequests,
        FriendTag,
        GetFriendTags
    }
);
