//! Typed group calls: every group operation, group messages (send, receive-ack, read,
//! recall, history, receipts), and the values they return.

use super::{Client, ClientError, Frame, ItemOutcome, Message, SendAck};
use crate::protocol::{self, wire};

type Fbb = flatbuffers::FlatBufferBuilder<'static>;

/// A group.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupInfo {
    pub group_id: String,
    /// 1 private, 2 public (`GroupType`).
    pub kind: u8,
    pub owner: String,
    pub name: String,
    pub avatar: String,
    pub introduction: String,
    pub notification: String,
    pub max_members: u32,
    /// 0 needs approval, 1 free join, 2 forbidden (`JoinPolicy`).
    pub join_policy: u8,
    pub mute_all: bool,
    pub extra: String,
    pub member_count: u32,
    pub create_time_ms: u64,
    pub destroyed: bool,
    pub history_visible: bool,
    /// Where it sits in my JoinedGroups stream (sync answers only).
    pub seq: u64,
}

impl GroupInfo {
    pub fn from_wire(g: &wire::GroupInfo<'_>) -> GroupInfo {
        let s = |v: Option<&str>| v.unwrap_or_default().to_owned();
        GroupInfo {
            group_id: s(g.group_id()),
            kind: g.type_().0,
            owner: s(g.owner()),
            name: s(g.name()),
            avatar: s(g.avatar()),
            introduction: s(g.introduction()),
            notification: s(g.notification()),
            max_members: g.max_members(),
            join_policy: g.join_policy().0,
            mute_all: g.mute_all(),
            extra: s(g.extra()),
            member_count: g.member_count(),
            create_time_ms: g.create_time_ms(),
            destroyed: g.destroyed(),
            history_visible: g.history_visible(),
            seq: g.seq(),
        }
    }

    fn to_wire<'a>(&self, fbb: &mut flatbuffers::FlatBufferBuilder<'a>) -> flatbuffers::WIPOffset<wire::GroupInfo<'a>> {
        let mut s = |v: &str| (!v.is_empty()).then(|| fbb.create_string(v));
        let (group_id, owner, name, avatar) = (s(&self.group_id), s(&self.owner), s(&self.name), s(&self.avatar));
        let (introduction, notification, extra) = (s(&self.introduction), s(&self.notification), s(&self.extra));
        wire::GroupInfo::create(
            fbb,
            &wire::GroupInfoArgs {
                group_id,
                type_: wire::GroupType(self.kind),
                owner,
                name,
                avatar,
                introduction,
                notification,
                max_members: self.max_members,
                join_policy: wire::JoinPolicy(self.join_policy),
                mute_all: self.mute_all,
                extra,
                create_time_ms: self.create_time_ms,
                history_visible: self.history_visible,
                ..Default::default()
            },
        )
    }
}

/// One member of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupMember {
    pub user_id: String,
    /// 0 member, 1 admin, 2 owner (`GroupRole`).
    pub role: u8,
    pub alias: String,
    pub extra: String,
    pub join_time_ms: u64,
    pub mute_end_ms: u64,
}

impl GroupMember {
    pub fn new(user_id: &str, role: u8) -> GroupMember {
        GroupMember { user_id: user_id.to_owned(), role, ..Default::default() }
    }

    pub fn from_wire(m: &wire::GroupMember<'_>) -> GroupMember {
        GroupMember {
            user_id: m.user_id().unwrap_or_default().to_owned(),
            role: m.role().0,
            alias: m.alias().unwrap_or_default().to_owned(),
            extra: m.extra().unwrap_or_default().to_owned(),
            join_time_ms: m.join_time_ms(),
            mute_end_ms: m.mute_end_ms(),
        }
    }

    fn to_wire<'a>(
        &self,
        fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
    ) -> flatbuffers::WIPOffset<wire::GroupMember<'a>> {
        let user_id = Some(fbb.create_string(&self.user_id));
        let alias = Some(fbb.create_string(&self.alias));
        let extra = Some(fbb.create_string(&self.extra));
        wire::GroupMember::create(
            fbb,
            &wire::GroupMemberArgs {
                user_id,
                role: wire::GroupRole(self.role),
                alias,
                extra,
                join_time_ms: self.join_time_ms,
                mute_end_ms: self.mute_end_ms,
            },
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JoinRequestInfo {
    pub id: u64,
    pub group_id: String,
    pub user_id: String,
    pub message: String,
    /// 0 pending, 1 approved, 2 rejected.
    pub state: u8,
    pub create_time_ms: u64,
}

impl JoinRequestInfo {
    pub fn from_wire(r: &wire::JoinRequest<'_>) -> JoinRequestInfo {
        JoinRequestInfo {
            id: r.id(),
            group_id: r.group_id().unwrap_or_default().to_owned(),
            user_id: r.user_id().unwrap_or_default().to_owned(),
            message: r.message().unwrap_or_default().to_owned(),
            state: r.state().0,
            create_time_ms: r.create_time_ms(),
        }
    }
}

/// Who received and read a group message (the lists only for small groups).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupReceipts {
    pub members: u32,
    pub received: u32,
    pub read: u32,
    pub received_by: Option<Vec<String>>,
    pub read_by: Option<Vec<String>>,
}

/// A group's fields to change: `None` stays.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub introduction: Option<String>,
    pub notification: Option<String>,
    pub extra: Option<String>,
    pub max_members: Option<u32>,
    pub join_policy: Option<u8>,
    pub mute_all: Option<bool>,
    pub history_visible: Option<bool>,
}

/// A page of groups or members: the items, the cursor for the next page, more remain.
pub type Page<T> = (Vec<T>, String, bool);

fn strings<'a>(
    fbb: &mut flatbuffers::FlatBufferBuilder<'a>,
    v: &[&str],
) -> flatbuffers::WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<&'a str>>> {
    let v: Vec<_> = v.iter().map(|s| fbb.create_string(s)).collect();
    fbb.create_vector(&v)
}

fn opt<'a>(fbb: &mut flatbuffers::FlatBufferBuilder<'a>, s: Option<&str>) -> Option<flatbuffers::WIPOffset<&'a str>> {
    s.map(|s| fbb.create_string(s))
}

fn group_conv<'a>(fbb: &mut flatbuffers::FlatBufferBuilder<'a>, g: &str) -> flatbuffers::WIPOffset<wire::ConvId<'a>> {
    let p = fbb.create_string(g);
    wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: wire::ConvType::Group, peer: Some(p) })
}

fn outcomes(f: &Frame) -> Result<Vec<ItemOutcome>, ClientError> {
    let r = f.get().response_as_batch_resp().ok_or(ClientError::Unexpected("BatchResp"))?;
    Ok(r.results()
        .map(|v| v.iter().map(|i| (i.id().unwrap_or_default().to_owned(), i.code())).collect())
        .unwrap_or_default())
}

fn group_of(f: &Frame) -> Result<(GroupInfo, Vec<GroupMember>), ClientError> {
    let r = f.get().response_as_group_resp().ok_or(ClientError::Unexpected("GroupResp"))?;
    let g = r.group().map(|g| GroupInfo::from_wire(&g)).ok_or(ClientError::Unexpected("GroupResp.group"))?;
    Ok((g, r.members().map(|v| v.iter().map(|m| GroupMember::from_wire(&m)).collect()).unwrap_or_default()))
}

fn groups_of(f: &Frame) -> Result<Page<GroupInfo>, ClientError> {
    let r = f.get().response_as_groups_resp().ok_or(ClientError::Unexpected("GroupsResp"))?;
    let v = r.groups().map(|v| v.iter().map(|g| GroupInfo::from_wire(&g)).collect()).unwrap_or_default();
    Ok((v, r.next().unwrap_or_default().to_owned(), r.more()))
}

fn members_of(f: &Frame) -> Result<Page<GroupMember>, ClientError> {
    let r = f.get().response_as_group_members_resp().ok_or(ClientError::Unexpected("GroupMembersResp"))?;
    let v = r.members().map(|v| v.iter().map(|m| GroupMember::from_wire(&m)).collect()).unwrap_or_default();
    Ok((v, r.next().unwrap_or_default().to_owned(), r.more()))
}

fn roles_of(f: &Frame) -> Result<Vec<GroupMember>, ClientError> {
    let r = f.get().response_as_roles_resp().ok_or(ClientError::Unexpected("RolesResp"))?;
    Ok(r.members().map(|v| v.iter().map(|m| GroupMember::from_wire(&m)).collect()).unwrap_or_default())
}

fn requests_of(f: &Frame) -> Result<Vec<JoinRequestInfo>, ClientError> {
    let r = f.get().response_as_join_requests_resp().ok_or(ClientError::Unexpected("JoinRequestsResp"))?;
    Ok(r.requests().map(|v| v.iter().map(|r| JoinRequestInfo::from_wire(&r)).collect()).unwrap_or_default())
}

macro_rules! req {
    ($fbb:ident, $t:ident, $args:expr) => {{
        let r = wire::$t::create($fbb, &$args);
        (wire::Request::$t, r.as_union_value())
    }};
}

impl Client {
    /// Creates a group (`group.group_id` empty: the server assigns one) with `members`
    /// besides me (or, for an administrator, `as_user`), who owns it. Returns the id and one
    /// outcome per member.
    pub async fn create_group(
        &self,
        group: &GroupInfo,
        members: &[&str],
        as_user: Option<&str>,
    ) -> Result<(String, Vec<ItemOutcome>), ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let user_id = opt(fbb, as_user);
                let g = group.to_wire(fbb);
                let members = Some(strings(fbb, members));
                req!(fbb, CreateGroupReq, wire::CreateGroupReqArgs { user_id, group: Some(g), members })
            })
            .await?;
        let r = f.get().response_as_create_group_resp().ok_or(ClientError::Unexpected("CreateGroupResp"))?;
        let results =
            r.results().map(|v| v.iter().map(|i| (i.id().unwrap_or_default().to_owned(), i.code())).collect());
        Ok((r.group_id().unwrap_or_default().to_owned(), results.unwrap_or_default()))
    }

    /// [admin] Imports a group (owner `group.owner`) with members of given roles and join times.
    pub async fn import_group(
        &self,
        group: &GroupInfo,
        members: &[GroupMember],
    ) -> Result<(String, Vec<ItemOutcome>), ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let g = group.to_wire(fbb);
                let v: Vec<_> = members.iter().map(|m| m.to_wire(fbb)).collect();
                let members = Some(fbb.create_vector(&v));
                req!(fbb, ImportGroupReq, wire::ImportGroupReqArgs { group: Some(g), members })
            })
            .await?;
        let r = f.get().response_as_create_group_resp().ok_or(ClientError::Unexpected("CreateGroupResp"))?;
        let results =
            r.results().map(|v| v.iter().map(|i| (i.id().unwrap_or_default().to_owned(), i.code())).collect());
        Ok((r.group_id().unwrap_or_default().to_owned(), results.unwrap_or_default()))
    }

    /// [admin] Imports members into a group (given roles and join times, nobody told).
    pub async fn import_group_members(
        &self,
        group: &str,
        members: &[GroupMember],
    ) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let v: Vec<_> = members.iter().map(|m| m.to_wire(fbb)).collect();
                let members = Some(fbb.create_vector(&v));
                req!(fbb, ImportGroupMembersReq, wire::ImportGroupMembersReqArgs { group_id, members })
            })
            .await?;
        outcomes(&f)
    }

    /// A group's info and (for members) its first page of members.
    pub async fn get_group(&self, group: &str) -> Result<(GroupInfo, Vec<GroupMember>), ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                req!(fbb, GetGroupReq, wire::GetGroupReqArgs { group_id })
            })
            .await?;
        group_of(&f)
    }

    /// A page of a group's members after `after` (empty: from the first).
    pub async fn group_members(&self, group: &str, after: &str, limit: u32) -> Result<Page<GroupMember>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let after = opt(fbb, Some(after));
                req!(fbb, GetGroupMembersReq, wire::GetGroupMembersReqArgs { group_id, after, limit })
            })
            .await?;
        members_of(&f)
    }

    /// [admin] A page of the app's groups of `kind` (0 = all) after `after`.
    pub async fn all_groups(&self, kind: u8, after: &str, limit: u32) -> Result<Page<GroupInfo>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let after = opt(fbb, Some(after));
                req!(fbb, GetAllGroupsReq, wire::GetAllGroupsReqArgs { type_: wire::GroupType(kind), after, limit })
            })
            .await?;
        groups_of(&f)
    }

    /// A page of my groups of `kind` (0 = all) after `after` (`as_user`: an administrator asking for a user).
    pub async fn joined_groups(
        &self,
        kind: u8,
        after: &str,
        limit: u32,
        as_user: Option<&str>,
    ) -> Result<Page<GroupInfo>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let user_id = opt(fbb, as_user);
                let after = opt(fbb, Some(after));
                let args = wire::GetJoinedGroupsReqArgs { user_id, type_: wire::GroupType(kind), after, limit };
                req!(fbb, GetJoinedGroupsReq, args)
            })
            .await?;
        groups_of(&f)
    }

    pub async fn update_group(&self, group: &str, c: &GroupChange) -> Result<GroupInfo, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let mut s = |v: &Option<String>| v.as_ref().map(|v| fbb.create_string(v));
                let (name, avatar, introduction) = (s(&c.name), s(&c.avatar), s(&c.introduction));
                let (notification, extra) = (s(&c.notification), s(&c.extra));
                let g = wire::GroupInfo::create(
                    fbb,
                    &wire::GroupInfoArgs {
                        group_id,
                        name,
                        avatar,
                        introduction,
                        notification,
                        extra,
                        max_members: c.max_members.unwrap_or(0),
                        join_policy: wire::JoinPolicy(c.join_policy.unwrap_or(0)),
                        mute_all: c.mute_all.unwrap_or(false),
                        history_visible: c.history_visible.unwrap_or(false),
                        ..Default::default()
                    },
                );
                let args = wire::UpdateGroupReqArgs {
                    user_id: None,
                    group: Some(g),
                    set_max_members: c.max_members.is_some(),
                    set_join_policy: c.join_policy.is_some(),
                    set_mute_all: c.mute_all.is_some(),
                    set_history_visible: c.history_visible.is_some(),
                };
                req!(fbb, UpdateGroupReq, args)
            })
            .await?;
        Ok(group_of(&f)?.0)
    }

    /// Invites `members` (`silent`: nobody is told).
    pub async fn add_group_members(
        &self,
        group: &str,
        members: &[&str],
        silent: bool,
    ) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let members = Some(strings(fbb, members));
                req!(fbb, AddGroupMembersReq, wire::AddGroupMembersReqArgs { user_id: None, group_id, members, silent })
            })
            .await?;
        outcomes(&f)
    }

    /// Kicks `members`.
    pub async fn delete_group_members(&self, group: &str, members: &[&str]) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let members = Some(strings(fbb, members));
                req!(fbb, DeleteGroupMembersReq, wire::DeleteGroupMembersReqArgs { user_id: None, group_id, members })
            })
            .await?;
        outcomes(&f)
    }

    pub async fn exit_group(&self, group: &str) -> Result<(), ClientError> {
        self.call(|fbb: &mut Fbb| {
            let group_id = Some(fbb.create_string(group));
            req!(fbb, ExitGroupReq, wire::ExitGroupReqArgs { user_id: None, group_id })
        })
        .await
        .map(|_| ())
    }

    /// Changes a member's alias / extra (`None` stays) and, with `role`, their role.
    pub async fn update_group_member(
        &self,
        group: &str,
        user: &str,
        alias: Option<&str>,
        extra: Option<&str>,
        role: Option<u8>,
    ) -> Result<GroupMember, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let user_id = Some(fbb.create_string(user));
                let (alias, extra) = (opt(fbb, alias), opt(fbb, extra));
                let m = wire::GroupMember::create(
                    fbb,
                    &wire::GroupMemberArgs {
                        user_id,
                        role: wire::GroupRole(role.unwrap_or(0)),
                        alias,
                        extra,
                        ..Default::default()
                    },
                );
                let args = wire::UpdateGroupMemberReqArgs {
                    user_id: None,
                    group_id,
                    member: Some(m),
                    set_role: role.is_some(),
                };
                req!(fbb, UpdateGroupMemberReq, args)
            })
            .await?;
        roles_of(&f)?.pop().ok_or(ClientError::Unexpected("RolesResp: empty"))
    }

    pub async fn destroy_group(&self, group: &str) -> Result<(), ClientError> {
        self.call(|fbb: &mut Fbb| {
            let group_id = Some(fbb.create_string(group));
            req!(fbb, DestroyGroupReq, wire::DestroyGroupReqArgs { user_id: None, group_id })
        })
        .await
        .map(|_| ())
    }

    /// The roles of `users` in a group (those who are members).
    pub async fn group_roles(&self, group: &str, users: &[&str]) -> Result<Vec<GroupMember>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let user_ids = Some(strings(fbb, users));
                req!(fbb, GetRoleInGroupReq, wire::GetRoleInGroupReqArgs { group_id, user_ids })
            })
            .await?;
        roles_of(&f)
    }

    /// Mutes `members` for `secs` seconds (0 lifts it).
    pub async fn mute_group_members(
        &self,
        group: &str,
        members: &[&str],
        secs: u32,
    ) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let members = Some(strings(fbb, members));
                let args = wire::ForbidSendMsgReqArgs { user_id: None, group_id, members, duration_secs: secs };
                req!(fbb, ForbidSendMsgReq, args)
            })
            .await?;
        outcomes(&f)
    }

    pub async fn mute_all(&self, group: &str, mute: bool) -> Result<(), ClientError> {
        self.call(|fbb: &mut Fbb| {
            let group_id = Some(fbb.create_string(group));
            req!(fbb, MuteAllReq, wire::MuteAllReqArgs { user_id: None, group_id, mute })
        })
        .await
        .map(|_| ())
    }

    /// The members muted now, with their mute ends.
    pub async fn muted_members(&self, group: &str) -> Result<Vec<GroupMember>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                req!(fbb, GetMutedMembersReq, wire::GetMutedMembersReqArgs { group_id })
            })
            .await?;
        Ok(members_of(&f)?.0)
    }

    pub async fn change_group_owner(&self, group: &str, new_owner: &str) -> Result<(), ClientError> {
        self.call(|fbb: &mut Fbb| {
            let group_id = Some(fbb.create_string(group));
            let new_owner = Some(fbb.create_string(new_owner));
            req!(fbb, ChangeGroupOwnerReq, wire::ChangeGroupOwnerReqArgs { user_id: None, group_id, new_owner })
        })
        .await
        .map(|_| ())
    }

    /// Applies to join: `true` when joined at once, else the pending request.
    pub async fn apply_join_group(
        &self,
        group: &str,
        message: &str,
    ) -> Result<(bool, Option<JoinRequestInfo>), ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let message = Some(fbb.create_string(message));
                req!(fbb, ApplyJoinGroupReq, wire::ApplyJoinGroupReqArgs { user_id: None, group_id, message })
            })
            .await?;
        let r = f.get().response_as_apply_join_resp().ok_or(ClientError::Unexpected("ApplyJoinResp"))?;
        Ok((r.joined(), r.request().map(|q| JoinRequestInfo::from_wire(&q))))
    }

    pub async fn handle_join_request(
        &self,
        group: &str,
        request_id: u64,
        approve: bool,
    ) -> Result<JoinRequestInfo, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                let args = wire::HandleJoinRequestReqArgs { user_id: None, group_id, request_id, approve };
                req!(fbb, HandleJoinRequestReq, args)
            })
            .await?;
        requests_of(&f)?.pop().ok_or(ClientError::Unexpected("JoinRequestsResp: empty"))
    }

    pub async fn join_requests(&self, group: &str) -> Result<Vec<JoinRequestInfo>, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                req!(fbb, GetJoinRequestsReq, wire::GetJoinRequestsReqArgs { user_id: None, group_id })
            })
            .await?;
        requests_of(&f)
    }

    /// Sends to a group (`as_user`: an administrator sending for a member).
    pub async fn send_group_message(
        &self,
        group: &str,
        client_id: &str,
        msg_type: u32,
        body: &[u8],
        as_user: Option<&str>,
    ) -> Result<SendAck, ClientError> {
        let f = self
            .call(|fbb| {
                protocol::send_conv_req(fbb, (wire::ConvType::Group, group), client_id, msg_type, body, as_user)
            })
            .await?;
        SendAck::from_frame(&f)
    }

    /// "I have received everything of this group up to `seq`" (cumulative).
    pub async fn group_receive_ack(&self, group: &str, seq: u64) -> Result<(), ClientError> {
        self.call(|fbb: &mut Fbb| {
            let conv = Some(group_conv(fbb, group));
            req!(fbb, ReceiveAckReq, wire::ReceiveAckReqArgs { conv, server_id: 0, seq })
        })
        .await
        .map(|_| ())
    }

    /// "I have read this group up to `seq`."
    pub async fn group_read(&self, group: &str, seq: u64) -> Result<(), ClientError> {
        self.call(|fbb: &mut Fbb| {
            let conv = Some(group_conv(fbb, group));
            req!(fbb, ReadReq, wire::ReadReqArgs { user_id: None, conv, seq })
        })
        .await
        .map(|_| ())
    }

    pub async fn group_recall(&self, group: &str, server_id: u64) -> Result<(), ClientError> {
        self.call(|fbb: &mut Fbb| {
            let conv = Some(group_conv(fbb, group));
            req!(fbb, RecallReq, wire::RecallReqArgs { user_id: None, conv, server_id })
        })
        .await
        .map(|_| ())
    }

    /// A page of a group's messages: oldest first after `after_seq` (`oldest_first`), or
    /// newest first before `before_seq` (0 = from the newest).
    pub async fn group_history(
        &self,
        group: &str,
        before_seq: u64,
        after_seq: u64,
        oldest_first: bool,
        limit: u32,
    ) -> Result<(Vec<Message>, bool), ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let conv = Some(group_conv(fbb, group));
                let args = wire::GetHistoryReqArgs { user_id: None, conv, before_seq, after_seq, limit, oldest_first };
                req!(fbb, GetHistoryReq, args)
            })
            .await?;
        let r = f.get().response_as_messages_resp().ok_or(ClientError::Unexpected("MessagesResp"))?;
        Ok((r.messages().map(|v| v.iter().map(|m| Message::from_wire(&m)).collect()).unwrap_or_default(), r.more()))
    }

    /// Every message of a group after `after_seq`, oldest first, paging until the end: how
    /// a device catches up on a group (protocol/README.md, "Syncing groups").
    pub async fn group_catch_up(&self, group: &str, after_seq: u64) -> Result<Vec<Message>, ClientError> {
        let mut all: Vec<Message> = Vec::new();
        let mut after = after_seq;
        loop {
            let (page, more) = self.group_history(group, 0, after, true, 0).await?;
            after = page.last().map_or(after, |m| m.seq);
            let empty = page.is_empty();
            all.extend(page);
            if !more || empty {
                return Ok(all);
            }
        }
    }

    pub async fn group_receipts(&self, group: &str, seq: u64) -> Result<GroupReceipts, ClientError> {
        let f = self
            .call(|fbb: &mut Fbb| {
                let group_id = Some(fbb.create_string(group));
                req!(fbb, GetGroupReceiptsReq, wire::GetGroupReceiptsReqArgs { user_id: None, group_id, seq })
            })
            .await?;
        let r = f.get().response_as_group_receipts_resp().ok_or(ClientError::Unexpected("GroupReceiptsResp"))?;
        let list = |v: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<&str>>>| {
            v.map(|v| v.iter().map(str::to_owned).collect())
        };
        Ok(GroupReceipts {
            members: r.members(),
            received: r.received(),
            read: r.read(),
            received_by: list(r.received_by()),
            read_by: list(r.read_by()),
        })
    }
}
