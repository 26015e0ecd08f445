//! Groups: operations run by the group's shard (`Router::conv_shard` of the group), and the
//! members' side of them run by each member's shard (`GroupSync`, `GroupDeliver`).

use std::sync::Arc;

use bytes::Bytes;

use super::{Origin, Reply};
use crate::domain::group::{GroupChange, GroupRecord, JoinRequest, MemberChange, MemberRecord};
use crate::domain::ids::{AppId, ConnId, GroupId, UserId};
use crate::domain::message::MessageRecord;
use crate::domain::DomainError;
use crate::protocol::wire::GroupType;

/// Per-user outcomes of a batch group operation, in request order.
pub type UserOutcomes = Vec<(UserId, Result<(), DomainError>)>;

/// Who acts on a group: a user (their role decides) and/or an app administrator.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: Option<UserId>,
    pub app_admin: bool,
    /// The connection that asked (it gets the answer; pushes go to the others).
    pub origin: Option<ConnId>,
    /// Who asked, for after-hook events (`None`: the server itself).
    pub caller: Option<super::Caller>,
}

/// A group, a page of its members, and whether more members remain.
pub type GroupView = (GroupRecord, Vec<MemberRecord>, bool);

/// Create a group (`import`: with the members' given roles and join times, and no pushes).
pub struct CreateGroup {
    pub app: AppId,
    pub rec: GroupRecord,
    pub by: Actor,
    /// The members besides the owner (the owner is `rec.owner`).
    pub members: Vec<MemberRecord>,
    pub import: bool,
    pub reply: Reply<Result<UserOutcomes, DomainError>>,
}

pub struct GetGroup {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    /// Members after this id (`None`: from the first), at most `limit`; 0 = none wanted.
    pub after: Option<UserId>,
    pub limit: usize,
    /// The members are what is asked for (a non-member gets `NotGroupMember`); else they
    /// come with the info only for members.
    pub members_only: bool,
    pub reply: Reply<Result<GroupView, DomainError>>,
}

/// The roles of `users` (absent ones are not members).
pub struct GetRoles {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub users: Vec<UserId>,
    pub reply: Reply<Result<Vec<MemberRecord>, DomainError>>,
}

pub struct GetMuted {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub reply: Reply<Result<Vec<MemberRecord>, DomainError>>,
}

/// An app's groups in id order, read from the store by any shard.
pub struct GetAllGroups {
    pub app: AppId,
    pub kind: GroupType,
    pub after: Option<GroupId>,
    pub limit: usize,
    pub reply: Reply<Result<(Vec<GroupRecord>, bool), DomainError>>,
}

/// Change the group's fields; `event` names the push ("updated", "mute_all").
pub struct UpdateGroup {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub change: GroupChange,
    pub event: &'static str,
    pub reply: Reply<Result<GroupRecord, DomainError>>,
}

/// Add members: invited (`silent`: nobody is told), or imported (`import`: given roles and
/// join times, no pushes).
pub struct AddMembers {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub members: Vec<MemberRecord>,
    pub silent: bool,
    pub import: bool,
    pub reply: Reply<Result<UserOutcomes, DomainError>>,
}

/// Kick `users`, or (`exit`) the actor leaves.
pub struct RemoveMembers {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub users: Vec<UserId>,
    pub exit: bool,
    pub reply: Reply<Result<UserOutcomes, DomainError>>,
}

pub struct UpdateMember {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub target: UserId,
    pub change: MemberChange,
    pub reply: Reply<Result<MemberRecord, DomainError>>,
}

pub struct DestroyGroup {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub reply: Reply<Result<(), DomainError>>,
}

/// Mute `users` for `secs` seconds (0 lifts it).
pub struct MuteMembers {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub users: Vec<UserId>,
    pub secs: u32,
    pub reply: Reply<Result<UserOutcomes, DomainError>>,
}

pub struct ChangeOwner {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub new_owner: UserId,
    pub reply: Reply<Result<(), DomainError>>,
}

/// `by.user` applies to join: a member at once (`true`) or a pending request.
pub struct ApplyJoin {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub message: String,
    pub reply: Reply<Result<(bool, Option<JoinRequest>), DomainError>>,
}

pub struct HandleJoinRequest {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub request: u64,
    pub approve: bool,
    pub reply: Reply<Result<JoinRequest, DomainError>>,
}

pub struct GetJoinRequests {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub reply: Reply<Result<Vec<JoinRequest>, DomainError>>,
}

/// A member's cumulative receive-ack: received everything up to `seq`.
pub struct GroupReceived {
    pub app: AppId,
    pub group: GroupId,
    pub user: UserId,
    pub seq: u64,
    pub origin: Origin,
}

/// A member read the group up to `seq` (their shard has stored it in their conversation
/// entry): the group's copy, for read receipts, follows.
pub struct GroupMemberRead {
    pub app: AppId,
    pub group: GroupId,
    pub user: UserId,
    pub seq: u64,
}

/// Who of the members (other than the sender) received and read message `seq`.
pub struct GetGroupReceipts {
    pub app: AppId,
    pub group: GroupId,
    pub by: Actor,
    pub seq: u64,
    pub reply: Reply<Result<GroupReceipts, DomainError>>,
}

/// Counts for any group; the lists only up to `limits.receipt_list_members` members.
#[derive(Debug, Clone, Default)]
pub struct GroupReceipts {
    pub members: u32,
    pub received: u32,
    pub read: u32,
    pub received_by: Option<Vec<UserId>>,
    pub read_by: Option<Vec<UserId>>,
}

/// A member's side of the group after a change (run by the member's shard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A member, who may read from this seq on.
    Member { visible_from: u64 },
    /// Not a member (left, kicked, or the group is gone).
    Gone,
    /// Their side did not change: they only get the push.
    Unchanged,
}

pub struct SyncUser {
    pub user: UserId,
    pub side: Side,
    /// The intent records (versions) this carries out, deleted with the change.
    pub intents: Vec<u64>,
}

/// Bring these users' side of a group (their joined-groups list and conversation entry) to
/// the group's state `group` (at its `version`, with its last message seq `head`), then push
/// `event` to their devices. One command per member shard.
pub struct GroupSync {
    pub app: AppId,
    pub group: Arc<GroupRecord>,
    pub head: u64,
    pub users: Vec<SyncUser>,
    pub event: Option<Bytes>,
}

/// A group message (or, `msg.recalled`, its recall) for the members one shard owns: their
/// conversation entries move in memory and their devices get `frame` (encoded once for all)
/// once the message is durable. Nothing is written per member.
pub struct GroupDeliver {
    pub app: AppId,
    pub msg: Arc<MessageRecord>,
    pub frame: Bytes,
    /// This shard's members: a window on the group's member array (no copy per message).
    pub(in crate::shard) users: crate::shard::state::Run,
    /// The sending connection (it has the ack instead).
    pub exclude: Option<ConnId>,
}

/// A user's groups (`kind` Any: all), in id order after `after`, at most `limit`.
pub struct GetJoinedGroups {
    pub app: AppId,
    pub user: UserId,
    pub kind: GroupType,
    pub after: Option<GroupId>,
    pub limit: usize,
    pub reply: Reply<Result<(Vec<GroupRecord>, bool), DomainError>>,
}

/// Drop these loaded groups, each unless used since its stamp (sent by the shard to itself
/// once the writes before it are durable: see `evict_groups`).
pub struct EvictGroups {
    pub groups: Vec<((AppId, GroupId), u64)>,
}

super::area!(
    Group,
    GroupCmd {
        EvictGroups,
        CreateGroup,
        GetGroup,
        GetRoles,
        GetMuted,
        GetAllGroups,
        UpdateGroup,
        AddMembers,
        RemoveMembers,
        UpdateMember,
        DestroyGroup,
        MuteMembers,
        ChangeOwner,
        ApplyJoin,
        HandleJoinRequest,
        GetJoinRequests,
        GroupReceived,
        GroupMemberRead,
        GetGroupReceipts,
        GroupSync,
        GroupDeliver,
        GetJoinedGroups
    }
);
