//! Domain values to and from wire tables: parse once at the edge, encode on the way out.

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::domain::conversation::ConvView;
use crate::domain::group::{GroupChange, GroupRecord, JoinRequest, MemberRecord};
use crate::domain::ids::{ConvRef, GroupId, UserId};
use crate::domain::message::MessageRecord;
use crate::domain::user::{FieldMask, UserChange, UserRecord};
use crate::domain::DomainError;
use crate::protocol::wire::{self, UserField};

type Fbb<'a> = FlatBufferBuilder<'a>;

/// A generated FlatBuffers enum. The generated types are open (any byte decodes), so every
/// enum field a request carries passes through [`known`] before it is used.
pub trait WireEnum: Copy {
    /// Whether the value is one of the schema's variants.
    fn is_known(self) -> bool;
}

macro_rules! wire_enums {
    ($($t:ident),* $(,)?) => {
        $(impl WireEnum for wire::$t {
            fn is_known(self) -> bool {
                self.variant_name().is_some()
            }
        })*
    };
}

wire_enums!(
    ClientType,
    Gender,
    FriendAddPolicy,
    UserField,
    SyncStream,
    ConvType,
    CheckDirection,
    GroupType,
    GroupRole,
    JoinPolicy,
    RequestState,
);

/// A request's enum field as sent, or `InvalidArgument(what)` when it is out of range.
pub fn known<E: WireEnum>(v: E, what: &'static str) -> Result<E, DomainError> {
    if v.is_known() {
        Ok(v)
    } else {
        Err(DomainError::InvalidArgument(what))
    }
}

/// checkFriend / checkBlack: whether both directions are asked for.
pub fn both_directions(d: wire::CheckDirection) -> Result<bool, DomainError> {
    Ok(known(d, "direction")? == wire::CheckDirection::Both)
}

pub fn user_id(s: Option<&str>, what: &'static str) -> Result<UserId, DomainError> {
    let s = s.ok_or(DomainError::MissingField(what))?;
    UserId::new(s).ok_or(DomainError::InvalidArgument(what))
}

/// An optional user id: absent or empty means "not given".
pub fn opt_user_id(s: Option<&str>, what: &'static str) -> Result<Option<UserId>, DomainError> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => UserId::new(s).map(Some).ok_or(DomainError::InvalidArgument(what)),
    }
}

/// A list of user ids, bounded by `max`.
pub fn user_ids(
    v: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<&str>>>,
    max: usize,
) -> Result<Vec<UserId>, DomainError> {
    let v = v.ok_or(DomainError::MissingField("user_ids"))?;
    if v.len() > max {
        return Err(DomainError::BatchTooLarge);
    }
    if v.is_empty() {
        return Err(DomainError::MissingField("user_ids"));
    }
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    v.iter()
        .map(|s| {
            let u = UserId::new(s).ok_or(DomainError::InvalidArgument("user_ids"))?;
            if !seen.insert(u.clone()) {
                return Err(DomainError::InvalidArgument("user_ids: an id appears twice"));
            }
            Ok(u)
        })
        .collect()
}

/// A profile offered for import (`create/update` times and `deleted` are the server's).
pub fn parse_profile(p: &wire::UserProfile<'_>) -> Result<UserRecord, DomainError> {
    let mut u = UserRecord::new(user_id(p.user_id(), "user_id")?);
    u.nickname = p.nickname().unwrap_or_default().to_owned();
    u.avatar = p.avatar().unwrap_or_default().to_owned();
    u.gender = p.gender();
    u.birthday = p.birthday().unwrap_or_default().to_owned();
    u.location = p.location().unwrap_or_default().to_owned();
    u.signature = p.signature().unwrap_or_default().to_owned();
    u.friend_add_policy = p.friend_add_policy();
    u.silent = p.silent();
    u.forbidden = p.forbidden();
    u.extra = p.extra().unwrap_or_default().to_owned();
    Ok(u)
}

pub fn parse_change(r: &wire::ModifyUserInfoReq<'_>) -> UserChange {
    UserChange {
        nickname: r.nickname().map(str::to_owned),
        avatar: r.avatar().map(str::to_owned),
        gender: r.set_gender().then(|| r.gender()),
        birthday: r.birthday().map(str::to_owned),
        location: r.location().map(str::to_owned),
        signature: r.signature().map(str::to_owned),
        friend_add_policy: r.set_friend_add_policy().then(|| r.friend_add_policy()),
        extra: r.extra().map(str::to_owned),
        silent: r.set_silent().then(|| r.silent()),
        forbidden: r.set_forbidden().then(|| r.forbidden()),
    }
}

/// Encodes a profile with only the selected fields (the id always).
pub fn profile<'a>(fbb: &mut Fbb<'a>, u: &UserRecord, mask: FieldMask) -> WIPOffset<wire::UserProfile<'a>> {
    let s = |fbb: &mut Fbb<'a>, f: UserField, v: &str| mask.has(f).then(|| fbb.create_string(v));
    let user_id = Some(fbb.create_string(u.id.as_str()));
    let nickname = s(fbb, UserField::Nickname, &u.nickname);
    let avatar = s(fbb, UserField::Avatar, &u.avatar);
    let birthday = s(fbb, UserField::Birthday, &u.birthday);
    let location = s(fbb, UserField::Location, &u.location);
    let signature = s(fbb, UserField::Signature, &u.signature);
    let extra = s(fbb, UserField::Extra, &u.extra);
    let times = mask.has(UserField::Times);
    wire::UserProfile::create(
        fbb,
        &wire::UserProfileArgs {
            user_id,
            nickname,
            avatar,
            gender: if mask.has(UserField::Gender) { u.gender } else { wire::Gender::Unknown },
            birthday,
            location,
            signature,
            friend_add_policy: if mask.has(UserField::FriendAddPolicy) {
                u.friend_add_policy
            } else {
                wire::FriendAddPolicy::Anyone
            },
            silent: mask.has(UserField::Silent) && u.silent,
            forbidden: mask.has(UserField::Forbidden) && u.forbidden,
            extra,
            create_time_ms: if times { u.create_ms } else { 0 },
            update_time_ms: if times { u.update_ms } else { 0 },
            deleted: u.deleted,
        },
    )
}

/// One online device, for status answers and pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    pub client_type: wire::ClientType,
    pub device_id: String,
    pub login_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStatus {
    pub user: UserId,
    pub devices: Vec<DeviceStatus>,
}

pub fn user_status<'a>(fbb: &mut Fbb<'a>, s: &UserStatus) -> WIPOffset<wire::UserStatus<'a>> {
    let devs: Vec<_> = s
        .devices
        .iter()
        .map(|d| {
            let id = fbb.create_string(&d.device_id);
            wire::DeviceStatus::create(
                fbb,
                &wire::DeviceStatusArgs { client_type: d.client_type, device_id: Some(id), login_time_ms: d.login_ms },
            )
        })
        .collect();
    let devices = fbb.create_vector(&devs);
    let user_id = fbb.create_string(s.user.as_str());
    wire::UserStatus::create(
        fbb,
        &wire::UserStatusArgs { user_id: Some(user_id), online: !s.devices.is_empty(), devices: Some(devices) },
    )
}

/// A per-item result of a batch operation.
pub fn item_results<'a>(
    fbb: &mut Fbb<'a>,
    items: &[(String, Result<(), DomainError>)],
) -> WIPOffset<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<wire::ItemResult<'a>>>> {
    let v: Vec<_> = items
        .iter()
        .map(|(id, r)| {
            let id = fbb.create_string(id);
            let code = match r {
                Ok(()) => wire::ErrorCode::None,
                Err(e) => e.code(),
            };
            wire::ItemResult::create(fbb, &wire::ItemResultArgs { id: Some(id), code })
        })
        .collect();
    fbb.create_vector(&v)
}

/// A conversation id as `viewer` sees it.
pub fn conv_id<'a>(fbb: &mut Fbb<'a>, conv: &ConvRef) -> WIPOffset<wire::ConvId<'a>> {
    let peer = fbb.create_string(conv.id_str());
    wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: wire::ConvType(conv.kind() as u8), peer: Some(peer) })
}

/// A conversation reference from the wire: the peer user, or the group.
pub fn parse_conv(c: Option<wire::ConvId<'_>>) -> Result<ConvRef, DomainError> {
    let c = c.ok_or(DomainError::MissingField("conv"))?;
    match known(c.type_(), "conv.type")? {
        wire::ConvType::P2P => Ok(ConvRef::P2p(user_id(c.peer(), "conv.peer")?)),
        wire::ConvType::Group => Ok(ConvRef::Group(group_id(c.peer(), "conv.peer")?)),
        _ => Err(DomainError::InvalidArgument("conv.type")),
    }
}

pub fn group_id(s: Option<&str>, what: &'static str) -> Result<GroupId, DomainError> {
    let s = s.ok_or(DomainError::MissingField(what))?;
    GroupId::new(s).ok_or(DomainError::InvalidArgument(what))
}

/// An optional group id: absent or empty means "not given".
pub fn opt_group_id(s: Option<&str>, what: &'static str) -> Result<Option<GroupId>, DomainError> {
    match s {
        None | Some("") => Ok(None),
        Some(s) => GroupId::new(s).map(Some).ok_or(DomainError::InvalidArgument(what)),
    }
}

/// A group as offered by a creator or importer (`id` may be absent: the server assigns one).
/// The owner, times and counts are the server's (`domain::group::create`).
pub fn parse_group(g: &wire::GroupInfo<'_>, id: GroupId, owner: UserId) -> GroupRecord {
    GroupRecord {
        id,
        kind: g.type_(),
        owner,
        name: g.name().unwrap_or_default().to_owned(),
        avatar: g.avatar().unwrap_or_default().to_owned(),
        introduction: g.introduction().unwrap_or_default().to_owned(),
        notification: g.notification().unwrap_or_default().to_owned(),
        max_members: g.max_members(),
        join_policy: g.join_policy(),
        mute_all: g.mute_all(),
        extra: g.extra().unwrap_or_default().to_owned(),
        create_ms: g.create_time_ms(),
        destroyed: false,
        history_visible: g.history_visible(),
        member_count: 0,
        version: 0,
        last_request: 0,
    }
}

/// The change an update asks for: present strings, and the scalars its `set_*` flags name.
pub fn parse_group_change(r: &wire::UpdateGroupReq<'_>) -> Result<GroupChange, DomainError> {
    let g = r.group().ok_or(DomainError::MissingField("group"))?;
    let s = |v: Option<&str>| v.map(str::to_owned);
    Ok(GroupChange {
        name: s(g.name()),
        avatar: s(g.avatar()),
        introduction: s(g.introduction()),
        notification: s(g.notification()),
        extra: s(g.extra()),
        mute_all: r.set_mute_all().then(|| g.mute_all()),
        max_members: r.set_max_members().then(|| g.max_members()),
        join_policy: r.set_join_policy().then(|| g.join_policy()),
        history_visible: r.set_history_visible().then(|| g.history_visible()),
    })
}

/// A member as imported: given role and join time (`join_seq` is the server's).
pub fn parse_member(m: &wire::GroupMember<'_>) -> Result<MemberRecord, DomainError> {
    let user = user_id(m.user_id(), "member.user_id")?;
    let role = known(m.role(), "member.role")?;
    let mut rec = MemberRecord::new(user, role, m.join_time_ms(), 0);
    rec.alias = m.alias().unwrap_or_default().to_owned();
    rec.extra = m.extra().unwrap_or_default().to_owned();
    rec.mute_end_ms = m.mute_end_ms();
    Ok(rec)
}

pub fn group_info<'a>(fbb: &mut Fbb<'a>, g: &GroupRecord, seq: u64) -> WIPOffset<wire::GroupInfo<'a>> {
    let group_id = Some(fbb.create_string(g.id.as_str()));
    let owner = Some(fbb.create_string(g.owner.as_str()));
    let name = Some(fbb.create_string(&g.name));
    let avatar = Some(fbb.create_string(&g.avatar));
    let introduction = Some(fbb.create_string(&g.introduction));
    let notification = Some(fbb.create_string(&g.notification));
    let extra = Some(fbb.create_string(&g.extra));
    wire::GroupInfo::create(
        fbb,
        &wire::GroupInfoArgs {
            group_id,
            type_: g.kind,
            owner,
            name,
            avatar,
            introduction,
            notification,
            max_members: g.max_members,
            join_policy: g.join_policy,
            mute_all: g.mute_all,
            extra,
            member_count: g.member_count,
            create_time_ms: g.create_ms,
            destroyed: g.destroyed,
            seq,
            history_visible: g.history_visible,
        },
    )
}

pub fn group_member<'a>(fbb: &mut Fbb<'a>, m: &MemberRecord) -> WIPOffset<wire::GroupMember<'a>> {
    let user_id = Some(fbb.create_string(m.user.as_str()));
    let alias = Some(fbb.create_string(&m.alias));
    let extra = Some(fbb.create_string(&m.extra));
    wire::GroupMember::create(
        fbb,
        &wire::GroupMemberArgs {
            user_id,
            role: m.role,
            alias,
            extra,
            join_time_ms: m.join_ms,
            mute_end_ms: m.mute_end_ms,
        },
    )
}

pub fn join_request<'a>(fbb: &mut Fbb<'a>, r: &JoinRequest) -> WIPOffset<wire::JoinRequest<'a>> {
    let group_id = Some(fbb.create_string(r.group.as_str()));
    let user_id = Some(fbb.create_string(r.user.as_str()));
    let message = Some(fbb.create_string(&r.message));
    wire::JoinRequest::create(
        fbb,
        &wire::JoinRequestArgs {
            id: r.id,
            group_id,
            user_id,
            message,
            state: wire::RequestState(r.state),
            create_time_ms: r.create_ms,
        },
    )
}

/// A message as `viewer` sees it (the conversation's peer is the other user).
pub fn message<'a>(
    fbb: &mut Fbb<'a>,
    m: &MessageRecord,
    viewer: &UserId,
    sync_seq: u64,
) -> WIPOffset<wire::Message<'a>> {
    let conv = conv_id(fbb, &m.seen_by(viewer));
    let client_id = fbb.create_string(&m.client_id);
    let from_user = fbb.create_string(m.from.as_str());
    let to = fbb.create_string(m.to.id_str());
    let body = fbb.create_vector(&m.body);
    wire::Message::create(
        fbb,
        &wire::MessageArgs {
            server_id: m.server_id,
            client_id: Some(client_id),
            conv: Some(conv),
            seq: m.seq,
            from_user: Some(from_user),
            to: Some(to),
            msg_type: m.msg_type,
            body: Some(body),
            timestamp_ms: m.ts_ms,
            recalled: m.recalled,
            sync_seq,
        },
    )
}

/// My entry for a conversation.
pub fn conversation<'a>(fbb: &mut Fbb<'a>, v: &ConvView, viewer: &UserId) -> WIPOffset<wire::Conversation<'a>> {
    let conv = conv_id(fbb, &v.conv);
    let last_message = v.last.as_ref().map(|m| message(fbb, m, viewer, 0));
    wire::Conversation::create(
        fbb,
        &wire::ConversationArgs {
            conv: Some(conv),
            last_message,
            unread: v.unread(),
            read_seq: v.read_seq,
            pinned: v.pinned,
            muted: v.muted,
            seq: v.stream_seq,
        },
    )
}
