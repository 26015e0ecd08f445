//! Groups: a group's record, its members, and the rules of every group operation (who may do
//! what, the limits, mutes), pure and with `now` passed in. The group's shard calls these,
//! then stores and pushes what they decided.
//!
//! Roles rank owner > admin > member. An actor may act on a member only when it outranks
//! them (an admin kicks or mutes members, not other admins; nobody kicks or mutes the owner).
//! An app administrator acts as above every role, but is not the owner: the owner is still
//! never kicked or muted.

use crate::domain::ids::{GroupId, UserId};
use crate::domain::DomainError;
use crate::protocol::wire::{GroupRole, GroupType, JoinPolicy};
use crate::store::codec::{Corrupt, Reader, Writer};

/// Longest name; longest avatar, introduction, notification, alias, join message; longest extra.
pub const MAX_NAME: usize = 128;
pub const MAX_TEXT: usize = 1024;
pub const MAX_EXTRA: usize = 4096;

/// A group as stored (`groups` column) and kept by its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub kind: GroupType,
    pub owner: UserId,
    pub name: String,
    pub avatar: String,
    pub introduction: String,
    pub notification: String,
    pub max_members: u32,
    pub join_policy: JoinPolicy,
    pub mute_all: bool,
    pub extra: String,
    pub create_ms: u64,
    pub destroyed: bool,
    /// New members see the messages from before they joined.
    pub history_visible: bool,
    pub member_count: u32,
    /// Bumped by every change of the record or the membership: members' shards reconcile
    /// their view of the group up to a version (see `shard::groups`).
    pub version: u64,
    /// The last join request id handed out.
    pub last_request: u64,
}

impl GroupRecord {
    const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(96 + self.name.len() + self.extra.len());
        w.u8(Self::VERSION)
            .str(self.id.as_str())
            .u8(self.kind.0)
            .str(self.owner.as_str())
            .str(&self.name)
            .str(&self.avatar)
            .str(&self.introduction)
            .str(&self.notification)
            .u32(self.max_members)
            .u8(self.join_policy.0)
            .bool(self.mute_all)
            .str(&self.extra)
            .u64(self.create_ms)
            .bool(self.destroyed)
            .bool(self.history_visible)
            .u32(self.member_count)
            .u64(self.version)
            .u64(self.last_request);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupRecord, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != Self::VERSION {
            return Err(Corrupt);
        }
        Ok(GroupRecord {
            id: GroupId::new(r.str()?).ok_or(Corrupt)?,
            kind: GroupType(r.u8()?),
            owner: UserId::new(r.str()?).ok_or(Corrupt)?,
            name: r.str()?.to_owned(),
            avatar: r.str()?.to_owned(),
            introduction: r.str()?.to_owned(),
            notification: r.str()?.to_owned(),
            max_members: r.u32()?,
            join_policy: JoinPolicy(r.u8()?),
            mute_all: r.bool()?,
            extra: r.str()?.to_owned(),
            create_ms: r.u64()?,
            destroyed: r.bool()?,
            history_visible: r.bool()?,
            member_count: r.u32()?,
            version: r.u64()?,
            last_request: r.u64()?,
        })
    }
}

/// One member of a group, as stored (`group_members`) and kept by the group's shard. All of a
/// member's own state lives here and changes only when the member (or someone acting on
/// them) acts: never per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub user: UserId,
    pub role: GroupRole,
    pub alias: String,
    pub extra: String,
    pub join_ms: u64,
    /// The group's last seq when the member joined: their history starts after it (unless
    /// the group's history is visible to new members).
    pub join_seq: u64,
    /// Muted until (ms); 0 = not muted.
    pub mute_end_ms: u64,
    /// "Read up to" in this group (only forward).
    pub read_seq: u64,
}

impl MemberRecord {
    const VERSION: u8 = 1;

    pub fn new(user: UserId, role: GroupRole, join_ms: u64, join_seq: u64) -> MemberRecord {
        MemberRecord {
            user,
            role,
            alias: String::new(),
            extra: String::new(),
            join_ms,
            join_seq,
            mute_end_ms: 0,
            read_seq: join_seq,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48 + self.alias.len() + self.extra.len());
        w.u8(Self::VERSION)
            .u8(self.role.0)
            .str(&self.alias)
            .str(&self.extra)
            .u64(self.join_ms)
            .u64(self.join_seq)
            .u64(self.mute_end_ms)
            .u64(self.read_seq);
        w.finish()
    }

    pub fn decode(user: UserId, bytes: &[u8]) -> Result<MemberRecord, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != Self::VERSION {
            return Err(Corrupt);
        }
        Ok(MemberRecord {
            user,
            role: GroupRole(r.u8()?),
            alias: r.str()?.to_owned(),
            extra: r.str()?.to_owned(),
            join_ms: r.u64()?,
            join_seq: r.u64()?,
            mute_end_ms: r.u64()?,
            read_seq: r.u64()?,
        })
    }

    pub fn muted(&self, now_ms: u64) -> bool {
        self.mute_end_ms > now_ms
    }

    /// The first seq this member may read.
    pub fn visible_from(&self, g: &GroupRecord) -> u64 {
        visible_from(self.join_seq, g)
    }
}

/// The first seq a member who joined at `join_seq` may read.
pub fn visible_from(join_seq: u64, g: &GroupRecord) -> u64 {
    if g.history_visible {
        1
    } else {
        join_seq + 1
    }
}

/// A user's side of one membership, kept by the user's shard (`user_groups`): their
/// joined-groups list. A group they left stays, not a member, so its tombstone in the
/// JoinedGroups stream is replaced when they join again (a stream holds each item once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub member: bool,
    pub kind: GroupType,
    /// The group's version this entry reflects.
    pub version: u64,
    /// Where the group sits in the user's JoinedGroups stream.
    pub stream_seq: u64,
    /// The first message seq the user may read.
    pub visible_from: u64,
}

impl Joined {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32);
        w.u8(1).bool(self.member).u8(self.kind.0).u64(self.version).u64(self.stream_seq).u64(self.visible_from);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Joined, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != 1 {
            return Err(Corrupt);
        }
        Ok(Joined {
            member: r.bool()?,
            kind: GroupType(r.u8()?),
            version: r.u64()?,
            stream_seq: r.u64()?,
            visible_from: r.u64()?,
        })
    }
}

/// A join request to a public group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub id: u64,
    pub group: GroupId,
    pub user: UserId,
    pub message: String,
    /// Pending, approved or rejected (`RequestState` on the wire).
    pub state: u8,
    pub create_ms: u64,
}

impl JoinRequest {
    pub const PENDING: u8 = 0;
    pub const APPROVED: u8 = 1;
    pub const REJECTED: u8 = 2;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48 + self.message.len());
        w.u8(1).u64(self.id).str(self.user.as_str()).str(&self.message).u8(self.state).u64(self.create_ms);
        w.finish()
    }

    pub fn decode(group: GroupId, bytes: &[u8]) -> Result<JoinRequest, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != 1 {
            return Err(Corrupt);
        }
        Ok(JoinRequest {
            id: r.u64()?,
            group,
            user: UserId::new(r.str()?).ok_or(Corrupt)?,
            message: r.str()?.to_owned(),
            state: r.u8()?,
            create_ms: r.u64()?,
        })
    }
}

/// Who is acting on a group: their role in it (`None`: not a member) and whether they are an
/// app administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acting {
    pub role: Option<GroupRole>,
    pub app_admin: bool,
}

impl Acting {
    pub fn member(&self) -> bool {
        self.role.is_some() || self.app_admin
    }

    /// Owner or admin of the group, or an app administrator.
    pub fn manager(&self) -> bool {
        self.app_admin || self.role.is_some_and(|r| r.0 >= GroupRole::Admin.0)
    }

    pub fn owner(&self) -> bool {
        self.app_admin || self.role == Some(GroupRole::Owner)
    }

    /// May act on a member with role `target` (kick, mute, change their alias).
    pub fn outranks(&self, target: GroupRole) -> bool {
        if target == GroupRole::Owner {
            return false;
        }
        self.app_admin || self.role.is_some_and(|r| r.0 > target.0)
    }

    /// Membership first: a non-member is `NotGroupMember`, a member without the rank
    /// `GroupRoleDenied`.
    fn need(&self, ok: bool) -> Result<(), DomainError> {
        if !self.member() {
            Err(DomainError::NotGroupMember)
        } else if !ok {
            Err(DomainError::GroupRoleDenied)
        } else {
            Ok(())
        }
    }
}

/// The group, if it exists and is not destroyed.
pub fn live(g: Option<&GroupRecord>) -> Result<&GroupRecord, DomainError> {
    match g {
        None => Err(DomainError::GroupNotFound),
        Some(g) if g.destroyed => Err(DomainError::GroupDestroyed),
        Some(g) => Ok(g),
    }
}

fn bounded(v: &str, max: usize, what: &'static str) -> Result<(), DomainError> {
    if v.len() > max {
        Err(DomainError::InvalidArgument(what))
    } else {
        Ok(())
    }
}

fn known_type(t: GroupType) -> Result<GroupType, DomainError> {
    match t {
        GroupType::Private | GroupType::Public => Ok(t),
        _ => Err(DomainError::InvalidArgument("group.type")),
    }
}

fn known_policy(p: JoinPolicy) -> Result<JoinPolicy, DomainError> {
    match p {
        JoinPolicy::NeedApproval | JoinPolicy::FreeJoin | JoinPolicy::Forbidden => Ok(p),
        _ => Err(DomainError::InvalidArgument("group.join_policy")),
    }
}

/// The member limits: the app's default for a group that names none, the configured ceiling
/// above every group.
#[derive(Debug, Clone, Copy)]
pub struct MemberLimits {
    pub default: u32,
    pub ceiling: u32,
}

impl MemberLimits {
    fn check(&self, asked: u32) -> Result<u32, DomainError> {
        match asked {
            0 => Ok(self.default.min(self.ceiling)),
            n if n > self.ceiling => Err(DomainError::InvalidArgument("group.max_members")),
            n => Ok(n),
        }
    }
}

/// A new group from what the creator offered (the id, owner and times are the server's).
pub fn create(
    mut offered: GroupRecord,
    owner: UserId,
    limits: MemberLimits,
    now_ms: u64,
) -> Result<GroupRecord, DomainError> {
    offered.kind = known_type(offered.kind)?;
    offered.join_policy = known_policy(offered.join_policy)?;
    validate_texts(&offered)?;
    offered.max_members = limits.check(offered.max_members)?;
    offered.owner = owner;
    offered.create_ms = now_ms;
    offered.destroyed = false;
    offered.member_count = 0;
    offered.version = 1;
    offered.last_request = 0;
    if offered.kind == GroupType::Private {
        // Private groups are invite-only whatever was asked.
        offered.join_policy = JoinPolicy::Forbidden;
    }
    Ok(offered)
}

fn validate_texts(g: &GroupRecord) -> Result<(), DomainError> {
    bounded(&g.name, MAX_NAME, "group.name")?;
    bounded(&g.avatar, MAX_TEXT, "group.avatar")?;
    bounded(&g.introduction, MAX_TEXT, "group.introduction")?;
    bounded(&g.notification, MAX_TEXT, "group.notification")?;
    bounded(&g.extra, MAX_EXTRA, "group.extra")
}

/// The fields an update changes (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChange {
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub introduction: Option<String>,
    pub notification: Option<String>,
    pub extra: Option<String>,
    pub mute_all: Option<bool>,
    /// Owner only, like the two below.
    pub max_members: Option<u32>,
    pub join_policy: Option<JoinPolicy>,
    pub history_visible: Option<bool>,
}

impl GroupChange {
    pub fn is_empty(&self) -> bool {
        *self == GroupChange::default()
    }

    fn owner_only(&self) -> bool {
        self.max_members.is_some() || self.join_policy.is_some() || self.history_visible.is_some()
    }
}

/// An update by `who`: owner and admins change the texts and mute-all; only the owner the
/// member limit, the join policy and history visibility. `None`: nothing changes.
pub fn update(
    g: &GroupRecord,
    c: &GroupChange,
    who: Acting,
    limits: MemberLimits,
) -> Result<Option<GroupRecord>, DomainError> {
    who.need(who.manager())?;
    if c.owner_only() {
        who.need(who.owner())?;
    }
    let mut n = g.clone();
    let set = |field: &mut String, v: &Option<String>| {
        if let Some(v) = v {
            field.clone_from(v);
        }
    };
    set(&mut n.name, &c.name);
    set(&mut n.avatar, &c.avatar);
    set(&mut n.introduction, &c.introduction);
    set(&mut n.notification, &c.notification);
    set(&mut n.extra, &c.extra);
    validate_texts(&n)?;
    if let Some(m) = c.mute_all {
        n.mute_all = m;
    }
    if let Some(h) = c.history_visible {
        n.history_visible = h;
    }
    if let Some(p) = c.join_policy {
        let p = known_policy(p)?;
        if g.kind == GroupType::Private && p != JoinPolicy::Forbidden {
            return Err(DomainError::GroupPrivateJoin);
        }
        n.join_policy = p;
    }
    if let Some(m) = c.max_members {
        let m = limits.check(m)?;
        if m < g.member_count {
            return Err(DomainError::InvalidArgument("group.max_members: below the member count"));
        }
        n.max_members = m;
    }
    if n == *g {
        return Ok(None);
    }
    n.version += 1;
    Ok(Some(n))
}

/// Inviting `adding` users: any member of a private group, owner and admins of a public one;
/// the group must have room for all of them.
pub fn invite(g: &GroupRecord, who: Acting, adding: usize) -> Result<(), DomainError> {
    who.need(g.kind == GroupType::Private || who.manager())?;
    room(g, adding)
}

/// Room for `adding` more members.
pub fn room(g: &GroupRecord, adding: usize) -> Result<(), DomainError> {
    if g.member_count as usize + adding > g.max_members as usize {
        Err(DomainError::GroupFull)
    } else {
        Ok(())
    }
}

/// Kicking (or muting) a member whose role is `target`.
pub fn act_on(who: Acting, target: GroupRole) -> Result<(), DomainError> {
    who.need(who.outranks(target))
}

/// Leaving: anyone but the owner, who must hand the group over or destroy it first.
pub fn exit(role: Option<GroupRole>) -> Result<(), DomainError> {
    match role {
        None => Err(DomainError::NotGroupMember),
        Some(GroupRole::Owner) => Err(DomainError::OwnerCannotExit),
        Some(_) => Ok(()),
    }
}

/// A change of one member's alias, extra or role (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberChange {
    pub alias: Option<String>,
    pub extra: Option<String>,
    pub role: Option<GroupRole>,
}

/// `who` (who is `target` when `is_self`) changes `target`: one's own alias and extra, or
/// those of a member one outranks; roles only the owner, between member and admin (the owner
/// changes by `change_owner`). `None`: nothing changes.
pub fn update_member(
    target: &MemberRecord,
    c: &MemberChange,
    who: Acting,
    is_self: bool,
) -> Result<Option<MemberRecord>, DomainError> {
    if c.alias.is_some() || c.extra.is_some() {
        who.need(is_self || who.outranks(target.role))?;
    }
    if let Some(role) = c.role {
        who.need(who.owner())?;
        if role != GroupRole::Member && role != GroupRole::Admin {
            return Err(DomainError::InvalidArgument("member.role: member or admin"));
        }
        if target.role == GroupRole::Owner {
            return Err(DomainError::GroupRoleDenied);
        }
    }
    let mut n = target.clone();
    if let Some(a) = &c.alias {
        bounded(a, MAX_NAME, "member.alias")?;
        n.alias.clone_from(a);
    }
    if let Some(e) = &c.extra {
        bounded(e, MAX_EXTRA, "member.extra")?;
        n.extra.clone_from(e);
    }
    if let Some(r) = c.role {
        n.role = r;
    }
    Ok((n != *target).then_some(n))
}

/// Destroying: the owner (or an app administrator).
pub fn destroy(who: Acting) -> Result<(), DomainError> {
    who.need(who.owner())
}

/// What owner and admins (and app administrators) do: answer join requests, read them.
pub fn manage(who: Acting) -> Result<(), DomainError> {
    who.need(who.manager())
}

/// Muting every member but owner and admins, or lifting it.
pub fn mute_all(who: Acting) -> Result<(), DomainError> {
    manage(who)
}

/// Handing the group to `new_owner` (a member, not the owner already).
pub fn change_owner(who: Acting, new_owner: Option<GroupRole>) -> Result<(), DomainError> {
    who.need(who.owner())?;
    match new_owner {
        None => Err(DomainError::NotGroupMember),
        Some(GroupRole::Owner) => Err(DomainError::InvalidArgument("new_owner: already the owner")),
        Some(_) => Ok(()),
    }
}

/// What applying to join does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// The policy lets anyone in: a member now.
    Join,
    /// An owner or admin must approve.
    Request,
}

/// Applying to join (by a non-member).
pub fn apply(g: &GroupRecord, is_member: bool) -> Result<Apply, DomainError> {
    if is_member {
        return Err(DomainError::AlreadyGroupMember);
    }
    if g.kind == GroupType::Private || g.join_policy == JoinPolicy::Forbidden {
        return Err(DomainError::GroupPrivateJoin);
    }
    room(g, 1)?;
    Ok(if g.join_policy == JoinPolicy::FreeJoin { Apply::Join } else { Apply::Request })
}

/// Reading the group's info: anyone for a public group, members for a private one.
pub fn view_info(g: &GroupRecord, who: Acting) -> Result<(), DomainError> {
    if g.kind == GroupType::Public || who.member() {
        Ok(())
    } else {
        Err(DomainError::NotGroupMember)
    }
}

/// Reading the members, roles, mutes, or the message receipts: members only.
pub fn view_members(who: Acting) -> Result<(), DomainError> {
    who.need(true)
}

/// Whether `member` may send to `g` now (the sender's own account is checked apart).
pub fn check_send(g: &GroupRecord, member: Option<&MemberRecord>, now_ms: u64) -> Result<(), DomainError> {
    let m = member.ok_or(DomainError::NotGroupMember)?;
    if m.muted(now_ms) {
        return Err(DomainError::MemberMuted);
    }
    if g.mute_all && m.role == GroupRole::Member {
        return Err(DomainError::GroupMuted);
    }
    Ok(())
}

/// The mute end for "mute for `secs` seconds" (0 lifts it).
pub fn mute_end(now_ms: u64, secs: u32) -> u64 {
    if secs == 0 {
        0
    } else {
        now_ms.saturating_add(secs as u64 * 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn group(kind: GroupType) -> GroupRecord {
        let offered = GroupRecord {
            id: GroupId::new("g").unwrap(),
            kind,
            owner: u("x"),
            name: "team".into(),
            avatar: String::new(),
            introduction: String::new(),
            notification: String::new(),
            max_members: 0,
            join_policy: JoinPolicy::NeedApproval,
            mute_all: false,
            extra: String::new(),
            create_ms: 0,
            destroyed: false,
            history_visible: false,
            member_count: 0,
            version: 0,
            last_request: 0,
        };
        let mut g = create(offered, u("owner"), LIMITS, 5).unwrap();
        g.member_count = 3;
        g
    }

    const LIMITS: MemberLimits = MemberLimits { default: 200, ceiling: 10_000 };
    const OWNER: Acting = Acting { role: Some(GroupRole::Owner), app_admin: false };
    const ADMIN: Acting = Acting { role: Some(GroupRole::Admin), app_admin: false };
    const MEMBER: Acting = Acting { role: Some(GroupRole::Member), app_admin: false };
    const OUTSIDER: Acting = Acting { role: None, app_admin: false };
    const APP_ADMIN: Acting = Acting { role: None, app_admin: true };
    const ACTORS: [(&str, Acting); 5] =
        [("owner", OWNER), ("admin", ADMIN), ("member", MEMBER), ("outsider", OUTSIDER), ("app admin", APP_ADMIN)];

    use DomainError::{GroupRoleDenied as Denied, NotGroupMember as NotMember};

    /// Every operation against every actor: the expected outcome per column (owner, admin,
    /// member, non-member, app admin).
    #[test]
    fn the_permission_matrix() {
        let private = group(GroupType::Private);
        let public = group(GroupType::Public);
        type Op<'a> = Box<dyn Fn(Acting) -> Result<(), DomainError> + 'a>;
        type Row<'a> = (&'static str, Op<'a>, [Result<(), DomainError>; 5]);
        let texts = GroupChange { name: Some("n".into()), ..Default::default() };
        let policy = GroupChange { join_policy: Some(JoinPolicy::FreeJoin), ..Default::default() };
        let m = |role| MemberRecord::new(u("t"), role, 0, 0);
        let alias = MemberChange { alias: Some("a".into()), ..Default::default() };
        let role = MemberChange { role: Some(GroupRole::Admin), ..Default::default() };
        let ok = Ok(());
        let rows: Vec<Row> = vec![
            (
                "update texts",
                Box::new(|a| update(&public, &texts, a, LIMITS).map(|_| ())),
                [ok.clone(), ok.clone(), Err(Denied), Err(NotMember), ok.clone()],
            ),
            (
                "update policy",
                Box::new(|a| update(&public, &policy, a, LIMITS).map(|_| ())),
                [ok.clone(), Err(Denied), Err(Denied), Err(NotMember), ok.clone()],
            ),
            (
                "invite private",
                Box::new(|a| invite(&private, a, 1)),
                [ok.clone(), ok.clone(), ok.clone(), Err(NotMember), ok.clone()],
            ),
            (
                "invite public",
                Box::new(|a| invite(&public, a, 1)),
                [ok.clone(), ok.clone(), Err(Denied), Err(NotMember), ok.clone()],
            ),
            (
                "kick a member",
                Box::new(|a| act_on(a, GroupRole::Member)),
                [ok.clone(), ok.clone(), Err(Denied), Err(NotMember), ok.clone()],
            ),
            (
                "kick an admin",
                Box::new(|a| act_on(a, GroupRole::Admin)),
                [ok.clone(), Err(Denied), Err(Denied), Err(NotMember), ok.clone()],
            ),
            (
                "kick the owner",
                Box::new(|a| act_on(a, GroupRole::Owner)),
                [Err(Denied), Err(Denied), Err(Denied), Err(NotMember), Err(Denied)],
            ),
            (
                "alias of a member",
                Box::new(|a| update_member(&m(GroupRole::Member), &alias, a, false).map(|_| ())),
                [ok.clone(), ok.clone(), Err(Denied), Err(NotMember), ok.clone()],
            ),
            (
                "role of a member",
                Box::new(|a| update_member(&m(GroupRole::Member), &role, a, false).map(|_| ())),
                [ok.clone(), Err(Denied), Err(Denied), Err(NotMember), ok.clone()],
            ),
            ("destroy", Box::new(destroy), [ok.clone(), Err(Denied), Err(Denied), Err(NotMember), ok.clone()]),
            ("mute all", Box::new(mute_all), [ok.clone(), ok.clone(), Err(Denied), Err(NotMember), ok.clone()]),
            (
                "change owner",
                Box::new(|a| change_owner(a, Some(GroupRole::Member))),
                [ok.clone(), Err(Denied), Err(Denied), Err(NotMember), ok.clone()],
            ),
            (
                "view private info",
                Box::new(|a| view_info(&private, a)),
                [ok.clone(), ok.clone(), ok.clone(), Err(NotMember), ok.clone()],
            ),
            (
                "view public info",
                Box::new(|a| view_info(&public, a)),
                [ok.clone(), ok.clone(), ok.clone(), ok.clone(), ok.clone()],
            ),
            ("view members", Box::new(view_members), [ok.clone(), ok.clone(), ok.clone(), Err(NotMember), ok.clone()]),
        ];
        for (name, op, expected) in &rows {
            for ((who, actor), want) in ACTORS.iter().zip(expected) {
                assert_eq!(&op(*actor), want, "{name} by {who}");
            }
        }
    }

    #[test]
    fn own_alias_exit_and_owner_rules() {
        let me = MemberRecord::new(u("me"), GroupRole::Member, 0, 0);
        let alias = MemberChange { alias: Some("me!".into()), ..Default::default() };
        assert_eq!(update_member(&me, &alias, MEMBER, true).unwrap().unwrap().alias, "me!");
        assert_eq!(update_member(&me, &MemberChange::default(), MEMBER, true), Ok(None));
        let to_owner = MemberChange { role: Some(GroupRole::Owner), ..Default::default() };
        assert!(matches!(update_member(&me, &to_owner, OWNER, false), Err(DomainError::InvalidArgument(_))));
        let owner = MemberRecord::new(u("o"), GroupRole::Owner, 0, 0);
        let demote = MemberChange { role: Some(GroupRole::Member), ..Default::default() };
        assert_eq!(update_member(&owner, &demote, APP_ADMIN, false), Err(Denied));
        assert_eq!(exit(Some(GroupRole::Owner)), Err(DomainError::OwnerCannotExit));
        assert_eq!(exit(Some(GroupRole::Admin)), Ok(()));
        assert_eq!(exit(None), Err(NotMember));
        assert_eq!(change_owner(OWNER, None), Err(NotMember));
        assert!(change_owner(OWNER, Some(GroupRole::Owner)).is_err());
    }

    #[test]
    fn create_update_and_limits() {
        let g = group(GroupType::Private);
        assert_eq!((g.max_members, g.version, g.owner.as_str()), (200, 1, "owner"));
        assert_eq!(g.join_policy, JoinPolicy::Forbidden, "private groups are invite-only");
        let bad = GroupRecord { kind: GroupType::Any, ..g.clone() };
        assert!(create(bad, u("o"), LIMITS, 0).is_err());
        let huge = GroupRecord { max_members: 10_001, ..g.clone() };
        assert!(create(huge, u("o"), LIMITS, 0).is_err());
        let long = GroupRecord { name: "x".repeat(MAX_NAME + 1), ..g.clone() };
        assert!(create(long, u("o"), LIMITS, 0).is_err());
        // An update that changes nothing is no change; one that does bumps the version.
        let same = GroupChange { name: Some("team".into()), ..Default::default() };
        assert_eq!(update(&g, &same, OWNER, LIMITS), Ok(None));
        let n = update(&g, &GroupChange { mute_all: Some(true), ..Default::default() }, ADMIN, LIMITS).unwrap();
        assert_eq!(n.map(|n| (n.mute_all, n.version)), Some((true, 2)));
        let open = GroupChange { join_policy: Some(JoinPolicy::FreeJoin), ..Default::default() };
        assert_eq!(update(&g, &open, OWNER, LIMITS), Err(DomainError::GroupPrivateJoin));
        let shrink = GroupChange { max_members: Some(2), ..Default::default() };
        assert!(update(&g, &shrink, OWNER, LIMITS).is_err(), "below the 3 members");
        assert_eq!(room(&GroupRecord { max_members: 4, ..g.clone() }, 2), Err(DomainError::GroupFull));
        assert_eq!(GroupRecord::decode(&g.encode()), Ok(g));
    }

    #[test]
    fn apply_send_and_mutes() {
        let mut public = group(GroupType::Public);
        assert_eq!(apply(&public, false), Ok(Apply::Request));
        assert_eq!(apply(&public, true), Err(DomainError::AlreadyGroupMember));
        public.join_policy = JoinPolicy::FreeJoin;
        assert_eq!(apply(&public, false), Ok(Apply::Join));
        public.join_policy = JoinPolicy::Forbidden;
        assert_eq!(apply(&public, false), Err(DomainError::GroupPrivateJoin));
        assert_eq!(apply(&group(GroupType::Private), false), Err(DomainError::GroupPrivateJoin));

        let mut g = group(GroupType::Private);
        let mut m = MemberRecord::new(u("m"), GroupRole::Member, 0, 7);
        assert_eq!((m.read_seq, m.visible_from(&g)), (7, 8));
        assert_eq!(check_send(&g, None, 0), Err(NotMember));
        assert_eq!(check_send(&g, Some(&m), 0), Ok(()));
        m.mute_end_ms = mute_end(1_000, 60);
        assert_eq!(m.mute_end_ms, 61_000);
        assert_eq!(check_send(&g, Some(&m), 60_999), Err(DomainError::MemberMuted));
        assert_eq!(check_send(&g, Some(&m), 61_000), Ok(()), "a mute ends by itself");
        assert_eq!(mute_end(5, 0), 0);
        g.mute_all = true;
        assert_eq!(check_send(&g, Some(&m), 61_000), Err(DomainError::GroupMuted));
        let admin = MemberRecord::new(u("a"), GroupRole::Admin, 0, 0);
        assert_eq!(check_send(&g, Some(&admin), 0), Ok(()), "admins are exempt from mute-all");
        g.history_visible = true;
        assert_eq!(m.visible_from(&g), 1);
        assert_eq!(MemberRecord::decode(u("m"), &m.encode()), Ok(m));
        let r = JoinRequest {
            id: 3,
            group: g.id.clone(),
            user: u("j"),
            message: "hi".into(),
            state: JoinRequest::PENDING,
            create_ms: 9,
        };
        assert_eq!(JoinRequest::decode(g.id.clone(), &r.encode()), Ok(r));
        let j = Joined { member: true, kind: GroupType::Public, version: 4, stream_seq: 9, visible_from: 3 };
        assert_eq!(Joined::decode(&j.encode()), Ok(j));
        assert_eq!(live(None), Err(DomainError::GroupNotFound));
        let gone = GroupRecord { destroyed: true, ..g };
        assert_eq!(live(Some(&gone)), Err(DomainError::GroupDestroyed));
    }
}
