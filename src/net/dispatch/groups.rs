//! Group requests: parsed here and run by the group's shard (one step: the group's shard
//! carries each change to the members' shards itself, backed by intent records), or by the
//! caller's shard for their own list of groups.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use serde_json::Map;

use super::gate::{member_list, Gate};
use super::{admin_only, batch_resp, err_frame, ok_or_err, pending, subject, Cx, Immediate, Outcome};
use crate::callbacks::Event;
use crate::domain::group::{self, GroupRecord, JoinRequest, MemberChange, MemberRecord};
use crate::domain::ids::{ConvId, GroupId, UserId};
use crate::domain::sync::page_size;
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::protocol;
use crate::protocol::wire::{self, GroupRole};
use crate::shard::cmd::{
    Actor, AddMembers, ApplyJoin, ChangeOwner, CreateGroup, DestroyGroup, GetAllGroups, GetGroup, GetGroupReceipts,
    GetJoinRequests, GetJoinedGroups, GetMuted, GetRoles, HandleJoinRequest, MuteMembers, RemoveMembers, Reply,
    UpdateGroup, UpdateMember, UserOutcomes,
};
use crate::shard::gather::ask;
use crate::shard::ShardCmd;

type R = Result<Outcome, Immediate>;

/// Who acts: an app administrator (for the user named, if any), or the caller.
fn actor(cx: Cx<'_>, named: Option<&str>) -> Result<Actor, DomainError> {
    let origin = Some(cx.s.conn);
    if cx.s.admin {
        let user = dw::opt_user_id(named, "user_id")?;
        return Ok(Actor { user, app_admin: true, origin, caller: Some(cx.caller()) });
    }
    Ok(Actor { user: Some(subject(cx.s, named)?), app_admin: false, origin, caller: Some(cx.caller()) })
}

/// Asks the group's shard and encodes its answer with `ok`.
fn on_group<T: Send + 'static>(
    cx: Cx<'_>,
    g: &GroupId,
    make: impl FnOnce(Reply<Result<T, DomainError>>) -> ShardCmd + Send + 'static,
    ok: impl FnOnce(u64, T) -> Bytes + Send + 'static,
) -> R {
    gated(cx, Gate::open(), g, make, ok)
}

/// `on_group` once the operation's before-hook let it through.
fn gated<T: Send + 'static>(
    cx: Cx<'_>,
    gate: Gate,
    g: &GroupId,
    make: impl FnOnce(Reply<Result<T, DomainError>>) -> ShardCmd + Send + 'static,
    ok: impl FnOnce(u64, T) -> Bytes + Send + 'static,
) -> R {
    let (router, id) = (cx.router(), cx.id);
    let shard = router.conv_shard(cx.s.app, &ConvId::Group(g.clone()));
    pending(async move {
        if let Err(e) = gate.passed().await {
            return err_frame(id, &e);
        }
        match ask(&router, shard, make).await.and_then(|r| r) {
            Ok(v) => ok(id, v),
            Err(e) => err_frame(id, &e),
        }
    })
}

fn outcomes_resp(id: u64, o: UserOutcomes) -> Bytes {
    let items: Vec<(String, Result<(), DomainError>)> = o.into_iter().map(|(u, r)| (u.to_string(), r)).collect();
    batch_resp(id, &items)
}

/// A list of user ids (the members of a batch), bounded by the batch limit.
fn users(
    cx: Cx<'_>,
    v: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<&str>>>,
) -> Result<Vec<UserId>, DomainError> {
    dw::user_ids(v, cx.lim().max_batch)
}

/// A server-assigned group id: `@g` and the time and a counter in hex, unique in a process
/// and across restarts while the clock moves forward (the shard refuses a taken id anyway).
fn new_group_id() -> GroupId {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    GroupId::new(&format!("@g{:x}{:06x}", crate::now_ms(), n & 0xff_ffff)).expect("hex digits make a valid id")
}

pub fn create(cx: Cx<'_>, r: wire::CreateGroupReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let owner = by.user.clone().ok_or(DomainError::MissingField("user_id"))?;
    let info = r.group().ok_or(DomainError::MissingField("group"))?;
    let id = match dw::opt_group_id(info.group_id(), "group.group_id")? {
        Some(g) => g,
        None => new_group_id(),
    };
    let members = match r.members() {
        Some(v) if !v.is_empty() => users(cx, Some(v))?,
        _ => Vec::new(),
    };
    let limits = member_limits(cx);
    let rec = group::create(dw::parse_group(&info, id, owner.clone()), owner, limits, crate::now_ms())?;
    let gate = cx.gate(Event::GroupBeforeCreateGroup, || {
        let mut f = Map::new();
        f.insert("GroupId".into(), rec.id.as_str().into());
        f.insert("Owner_Account".into(), rec.owner.as_str().into());
        f.insert("Type".into(), rec.kind.0.into());
        f.insert("Name".into(), rec.name.clone().into());
        f.insert("MemberList".into(), member_list(&members));
        f
    });
    let now = rec.create_ms;
    let members = members.into_iter().map(|u| MemberRecord::new(u, GroupRole::Member, now, 0)).collect();
    let (app, g) = (cx.s.app, rec.id.clone());
    let gid = g.clone();
    gated(
        cx,
        gate,
        &g,
        move |reply| CreateGroup { app, rec, by, members, import: false, reply }.into(),
        move |id, o| create_resp(id, &gid, o),
    )
}

fn member_limits(cx: Cx<'_>) -> group::MemberLimits {
    let cfg = &cx.ctx.cfg;
    let default = cfg.app(cx.s.app).map_or(cfg.limits.group_default_members, |a| a.group_max_members);
    group::MemberLimits { default, ceiling: cfg.limits.group_max_members }
}

fn create_resp(id: u64, g: &GroupId, o: UserOutcomes) -> Bytes {
    let items: Vec<(String, Result<(), DomainError>)> = o.into_iter().map(|(u, r)| (u.to_string(), r)).collect();
    protocol::response(id, |fbb| {
        let results = dw::item_results(fbb, &items);
        let group_id = fbb.create_string(g.as_str());
        let r = wire::CreateGroupResp::create(
            fbb,
            &wire::CreateGroupRespArgs { group_id: Some(group_id), results: Some(results) },
        );
        (wire::Response::CreateGroupResp, r.as_union_value())
    })
}

/// An app administrator imports a group with its members (given roles and join times; the
/// owner is `group.owner`); nobody is told.
pub fn import(cx: Cx<'_>, r: wire::ImportGroupReq<'_>) -> R {
    admin_only(cx.s)?;
    let info = r.group().ok_or(DomainError::MissingField("group"))?;
    let g = dw::opt_group_id(info.group_id(), "group.group_id")?.unwrap_or_else(new_group_id);
    let owner = dw::user_id(info.owner(), "group.owner")?;
    let members = parse_members(cx, r.members())?;
    let mut rec =
        group::create(dw::parse_group(&info, g.clone(), owner.clone()), owner, member_limits(cx), crate::now_ms())?;
    if info.create_time_ms() > 0 {
        rec.create_ms = info.create_time_ms();
    }
    let by = Actor { user: None, app_admin: true, origin: Some(cx.s.conn), caller: Some(cx.caller()) };
    let (app, gid) = (cx.s.app, g.clone());
    on_group(
        cx,
        &g,
        move |reply| CreateGroup { app, rec, by, members, import: true, reply }.into(),
        move |id, o| create_resp(id, &gid, o),
    )
}

fn parse_members(
    cx: Cx<'_>,
    v: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<wire::GroupMember<'_>>>>,
) -> Result<Vec<MemberRecord>, DomainError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    if v.len() > cx.lim().max_batch {
        return Err(DomainError::BatchTooLarge);
    }
    v.iter().map(|m| dw::parse_member(&m)).collect()
}

pub fn import_members(cx: Cx<'_>, r: wire::ImportGroupMembersReq<'_>) -> R {
    admin_only(cx.s)?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let members = parse_members(cx, r.members())?;
    if members.is_empty() {
        return Err(DomainError::MissingField("members").into());
    }
    let by = Actor { user: None, app_admin: true, origin: Some(cx.s.conn), caller: Some(cx.caller()) };
    let (app, group) = (cx.s.app, g.clone());
    on_group(
        cx,
        &g,
        move |reply| AddMembers { app, group, by, members, silent: true, import: true, reply }.into(),
        outcomes_resp,
    )
}

pub fn get(cx: Cx<'_>, r: wire::GetGroupReq<'_>) -> R {
    let g = dw::group_id(r.group_id(), "group_id")?;
    let by = actor(cx, None)?;
    let (app, group, limit) = (cx.s.app, g.clone(), cx.lim().max_page);
    on_group(
        cx,
        &g,
        move |reply| GetGroup { app, group, by, after: None, limit, members_only: false, reply }.into(),
        |id, (g, m, _)| group_resp(id, &g, Some(&m)),
    )
}

pub fn members(cx: Cx<'_>, r: wire::GetGroupMembersReq<'_>) -> R {
    let g = dw::group_id(r.group_id(), "group_id")?;
    let by = actor(cx, None)?;
    let after = dw::opt_user_id(r.after(), "after")?;
    let (app, group, limit) = (cx.s.app, g.clone(), page_size(r.limit(), cx.lim().max_page));
    on_group(
        cx,
        &g,
        move |reply| GetGroup { app, group, by, after, limit, members_only: true, reply }.into(),
        |id, (_, m, more)| members_resp(id, &m, more),
    )
}

pub fn roles(cx: Cx<'_>, r: wire::GetRoleInGroupReq<'_>) -> R {
    let g = dw::group_id(r.group_id(), "group_id")?;
    let by = actor(cx, None)?;
    let users = users(cx, r.user_ids())?;
    let (app, group) = (cx.s.app, g.clone());
    on_group(cx, &g, move |reply| GetRoles { app, group, by, users, reply }.into(), |id, m| roles_resp(id, &m))
}

pub fn muted(cx: Cx<'_>, r: wire::GetMutedMembersReq<'_>) -> R {
    let g = dw::group_id(r.group_id(), "group_id")?;
    let by = actor(cx, None)?;
    let (app, group) = (cx.s.app, g.clone());
    on_group(cx, &g, move |reply| GetMuted { app, group, by, reply }.into(), |id, m| members_resp(id, &m, false))
}

pub fn get_all(cx: Cx<'_>, r: wire::GetAllGroupsReq<'_>) -> R {
    admin_only(cx.s)?;
    let kind = dw::known(r.type_(), "type")?;
    let after = dw::opt_group_id(r.after(), "after")?;
    let (app, limit, router, id) = (cx.s.app, page_size(r.limit(), cx.lim().max_page), cx.router(), cx.id);
    pending(async move {
        match ask(&router, 0, |reply| GetAllGroups { app, kind, after, limit, reply }.into()).await.and_then(|r| r) {
            Ok((groups, more)) => groups_resp(id, &groups, more),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn joined(cx: Cx<'_>, r: wire::GetJoinedGroupsReq<'_>) -> R {
    let user = subject(cx.s, r.user_id())?;
    let kind = dw::known(r.type_(), "type")?;
    let after = dw::opt_group_id(r.after(), "after")?;
    let (app, limit, router, id) = (cx.s.app, page_size(r.limit(), cx.lim().max_page), cx.router(), cx.id);
    pending(async move {
        let shard = router.user_shard(app, &user);
        match ask(&router, shard, |reply| GetJoinedGroups { app, user, kind, after, limit, reply }.into())
            .await
            .and_then(|r| r)
        {
            Ok((groups, more)) => groups_resp(id, &groups, more),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn update(cx: Cx<'_>, r: wire::UpdateGroupReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group().and_then(|g| g.group_id()), "group.group_id")?;
    let change = dw::parse_group_change(&r)?;
    if change.is_empty() {
        return Err(DomainError::MissingField("a field to change").into());
    }
    let (app, group) = (cx.s.app, g.clone());
    on_group(
        cx,
        &g,
        move |reply| UpdateGroup { app, group, by, change, event: "updated", reply }.into(),
        |id, g| group_resp(id, &g, None),
    )
}

pub fn mute_all(cx: Cx<'_>, r: wire::MuteAllReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let change = group::GroupChange { mute_all: Some(r.mute()), ..Default::default() };
    let (app, group) = (cx.s.app, g.clone());
    on_group(
        cx,
        &g,
        move |reply| UpdateGroup { app, group, by, change, event: "mute_all", reply }.into(),
        |id, _| protocol::ok(id),
    )
}

pub fn add(cx: Cx<'_>, r: wire::AddGroupMembersReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let invited = users(cx, r.members())?;
    let gate = cx.gate(Event::GroupBeforeInviteJoinGroup, || {
        let mut f = Map::new();
        f.insert("GroupId".into(), g.as_str().into());
        f.insert("DestinationMembers".into(), member_list(&invited));
        f
    });
    let (router, app, id, silent) = (cx.router(), cx.s.app, cx.id, r.silent());
    let shard = router.conv_shard(app, &ConvId::Group(g.clone()));
    pending(async move {
        // The backend may refuse some of the invited: the others go ahead.
        let refused = match gate.passed().await {
            Ok(r) => r,
            Err(e) => return err_frame(id, &e),
        };
        let (out, members): (Vec<_>, Vec<_>) =
            invited.iter().cloned().partition(|u| refused.iter().any(|r| r == u.as_str()));
        let mut outcomes: UserOutcomes = Vec::new();
        if !members.is_empty() {
            let members = members.into_iter().map(|u| MemberRecord::new(u, GroupRole::Member, 0, 0)).collect();
            let make = |reply| AddMembers { app, group: g, by, members, silent, import: false, reply }.into();
            match ask(&router, shard, make).await.and_then(|r| r) {
                Ok(o) => outcomes = o,
                Err(e) => return err_frame(id, &e),
            }
        }
        let refusal =
            || DomainError::CallbackRefused { code: 0, reason: "the app's backend refused this member".into() };
        outcomes.extend(out.into_iter().map(|u| (u, Err(refusal()))));
        // In request order.
        outcomes.sort_by_key(|(u, _)| invited.iter().position(|i| i == u));
        outcomes_resp(id, outcomes)
    })
}

pub fn remove(cx: Cx<'_>, r: wire::DeleteGroupMembersReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let users = users(cx, r.members())?;
    let (app, group) = (cx.s.app, g.clone());
    on_group(cx, &g, move |reply| RemoveMembers { app, group, by, users, exit: false, reply }.into(), outcomes_resp)
}

pub fn exit(cx: Cx<'_>, r: wire::ExitGroupReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let me = by.user.clone().ok_or(DomainError::MissingField("user_id"))?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let (app, group) = (cx.s.app, g.clone());
    on_group(
        cx,
        &g,
        move |reply| RemoveMembers { app, group, by, users: vec![me], exit: true, reply }.into(),
        |id, mut o: UserOutcomes| ok_or_err(id, o.pop().map_or(Ok(()), |(_, r)| r)),
    )
}

pub fn update_member(cx: Cx<'_>, r: wire::UpdateGroupMemberReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let m = r.member().ok_or(DomainError::MissingField("member"))?;
    let target = dw::user_id(m.user_id(), "member.user_id")?;
    let role = if r.set_role() { Some(dw::known(m.role(), "member.role")?) } else { None };
    let change = MemberChange { alias: m.alias().map(str::to_owned), extra: m.extra().map(str::to_owned), role };
    if change == MemberChange::default() {
        return Err(DomainError::MissingField("alias, extra or set_role").into());
    }
    let (app, group) = (cx.s.app, g.clone());
    on_group(
        cx,
        &g,
        move |reply| UpdateMember { app, group, by, target, change, reply }.into(),
        |id, m| roles_resp(id, std::slice::from_ref(&m)),
    )
}

pub fn destroy(cx: Cx<'_>, r: wire::DestroyGroupReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let (app, group) = (cx.s.app, g.clone());
    on_group(cx, &g, move |reply| DestroyGroup { app, group, by, reply }.into(), |id, ()| protocol::ok(id))
}

pub fn forbid(cx: Cx<'_>, r: wire::ForbidSendMsgReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let users = users(cx, r.members())?;
    let secs = r.duration_secs();
    let (app, group) = (cx.s.app, g.clone());
    on_group(cx, &g, move |reply| MuteMembers { app, group, by, users, secs, reply }.into(), outcomes_resp)
}

pub fn change_owner(cx: Cx<'_>, r: wire::ChangeGroupOwnerReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let new_owner = dw::user_id(r.new_owner(), "new_owner")?;
    let (app, group) = (cx.s.app, g.clone());
    on_group(cx, &g, move |reply| ChangeOwner { app, group, by, new_owner, reply }.into(), |id, ()| protocol::ok(id))
}

pub fn apply(cx: Cx<'_>, r: wire::ApplyJoinGroupReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let message = r.message().unwrap_or_default().to_owned();
    let gate = cx.gate(Event::GroupBeforeApplyJoinGroup, || {
        let mut f = Map::new();
        f.insert("GroupId".into(), g.as_str().into());
        f.insert("Requestor_Account".into(), by.user.as_ref().map_or("", UserId::as_str).into());
        f.insert("ApplyMsg".into(), message.clone().into());
        f
    });
    let (app, group) = (cx.s.app, g.clone());
    gated(
        cx,
        gate,
        &g,
        move |reply| ApplyJoin { app, group, by, message, reply }.into(),
        |id, (joined, req)| {
            protocol::response(id, |fbb| {
                let request = req.as_ref().map(|r| dw::join_request(fbb, r));
                let r = wire::ApplyJoinResp::create(fbb, &wire::ApplyJoinRespArgs { joined, request });
                (wire::Response::ApplyJoinResp, r.as_union_value())
            })
        },
    )
}

pub fn handle_request(cx: Cx<'_>, r: wire::HandleJoinRequestReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let (app, group, request, approve) = (cx.s.app, g.clone(), r.request_id(), r.approve());
    on_group(
        cx,
        &g,
        move |reply| HandleJoinRequest { app, group, by, request, approve, reply }.into(),
        |id, r| requests_resp(id, std::slice::from_ref(&r)),
    )
}

pub fn requests(cx: Cx<'_>, r: wire::GetJoinRequestsReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let (app, group) = (cx.s.app, g.clone());
    on_group(cx, &g, move |reply| GetJoinRequests { app, group, by, reply }.into(), |id, list| requests_resp(id, &list))
}

pub fn receipts(cx: Cx<'_>, r: wire::GetGroupReceiptsReq<'_>) -> R {
    let by = actor(cx, r.user_id())?;
    let g = dw::group_id(r.group_id(), "group_id")?;
    let (app, group, seq) = (cx.s.app, g.clone(), r.seq());
    on_group(
        cx,
        &g,
        move |reply| GetGroupReceipts { app, group, by, seq, reply }.into(),
        |id, rc| {
            protocol::response(id, |fbb| {
                let mut list = |v: &Option<Vec<UserId>>| {
                    v.as_ref().map(|v| {
                        let s: Vec<_> = v.iter().map(|u| fbb.create_string(u.as_str())).collect();
                        fbb.create_vector(&s)
                    })
                };
                let (received_by, read_by) = (list(&rc.received_by), list(&rc.read_by));
                let r = wire::GroupReceiptsResp::create(
                    fbb,
                    &wire::GroupReceiptsRespArgs {
                        members: rc.members,
                        received: rc.received,
                        read: rc.read,
                        received_by,
                        read_by,
                    },
                );
                (wire::Response::GroupReceiptsResp, r.as_union_value())
            })
        },
    )
}

fn group_resp(id: u64, g: &GroupRecord, members: Option<&[MemberRecord]>) -> Bytes {
    protocol::response(id, |fbb| {
        let group = Some(dw::group_info(fbb, g, 0));
        let members = members.map(|ms| {
            let v: Vec<_> = ms.iter().map(|m| dw::group_member(fbb, m)).collect();
            fbb.create_vector(&v)
        });
        let r = wire::GroupResp::create(fbb, &wire::GroupRespArgs { group, members });
        (wire::Response::GroupResp, r.as_union_value())
    })
}

fn members_resp(id: u64, ms: &[MemberRecord], more: bool) -> Bytes {
    protocol::response(id, |fbb| {
        let v: Vec<_> = ms.iter().map(|m| dw::group_member(fbb, m)).collect();
        let members = Some(fbb.create_vector(&v));
        let next = ms.last().map(|m| fbb.create_string(m.user.as_str()));
        let r = wire::GroupMembersResp::create(fbb, &wire::GroupMembersRespArgs { members, next, more });
        (wire::Response::GroupMembersResp, r.as_union_value())
    })
}

fn roles_resp(id: u64, ms: &[MemberRecord]) -> Bytes {
    protocol::response(id, |fbb| {
        let v: Vec<_> = ms.iter().map(|m| dw::group_member(fbb, m)).collect();
        let members = Some(fbb.create_vector(&v));
        let r = wire::RolesResp::create(fbb, &wire::RolesRespArgs { members });
        (wire::Response::RolesResp, r.as_union_value())
    })
}

fn groups_resp(id: u64, groups: &[GroupRecord], more: bool) -> Bytes {
    protocol::response(id, |fbb| {
        let v: Vec<_> = groups.iter().map(|g| dw::group_info(fbb, g, 0)).collect();
        let groups_v = Some(fbb.create_vector(&v));
        let next = groups.last().map(|g| fbb.create_string(g.id.as_str()));
        let r = wire::GroupsResp::create(fbb, &wire::GroupsRespArgs { groups: groups_v, next, more });
        (wire::Response::GroupsResp, r.as_union_value())
    })
}

fn requests_resp(id: u64, list: &[JoinRequest]) -> Bytes {
    protocol::response(id, |fbb| {
        let v: Vec<_> = list.iter().map(|r| dw::join_request(fbb, r)).collect();
        let requests = Some(fbb.create_vector(&v));
        let r = wire::JoinRequestsResp::create(fbb, &wire::JoinRequestsRespArgs { requests });
        (wire::Response::JoinRequestsResp, r.as_union_value())
    })
}
