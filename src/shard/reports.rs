//! After-hook events: each change an app's backend wants to hear of is written as an event
//! into the batch that stores the change (`Batch::put_hook_event`), so the event is durable
//! exactly when the change is; `callbacks::AfterHooks` delivers them from there, in order.
//! Imports report nothing (their handlers skip these).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::callbacks::{Event, Hooks};
use crate::domain::group::GroupRecord;
use crate::domain::ids::{AppId, ConvRef, UserId};
use crate::domain::message::MessageRecord;
use crate::domain::user::UserChange;
use crate::protocol::wire::ClientType;
use crate::shard::cmd::{Actor, Caller};
use crate::shard::state::Shard;
use crate::store::Batch;

/// What the backend is told about a message: sender, receiver or group, client id, type, body.
pub(super) fn message_fields(
    from: &UserId,
    to: &ConvRef,
    client_id: &str,
    msg_type: u32,
    body: &[u8],
) -> Map<String, Value> {
    use base64::Engine;
    let mut f = Map::new();
    f.insert("From_Account".into(), from.as_str().into());
    match to {
        ConvRef::P2p(u) => f.insert("To_Account".into(), u.as_str().into()),
        ConvRef::Group(g) => f.insert("GroupId".into(), g.as_str().into()),
    };
    f.insert("MsgId".into(), client_id.into());
    f.insert("MsgType".into(), msg_type.into());
    f.insert("MsgBody".into(), base64::engine::general_purpose::STANDARD.encode(body).into());
    f
}

/// What the backend is told about a message sent (its seq, server id and time too).
fn sent_fields(m: &MessageRecord) -> Map<String, Value> {
    let mut f = message_fields(&m.from, &m.to, &m.client_id, m.msg_type, &m.body);
    f.insert("MsgSeq".into(), m.seq.into());
    f.insert("MsgKey".into(), m.server_id.to_string().into());
    f.insert("MsgTime".into(), m.ts_ms.into());
    f
}

/// `[{"From_Account": from, "To_Account": to}, ...]`, the way relation events list pairs.
pub(super) fn pair_list<'a>(from: &UserId, to: impl IntoIterator<Item = &'a UserId>) -> Value {
    let pairs = to.into_iter().map(|t| serde_json::json!({ "From_Account": from.as_str(), "To_Account": t.as_str() }));
    Value::Array(pairs.collect())
}

/// A profile change as Tencent's `ProfileItem` list: `[{"Tag": .., "Value": ..}]`, the fields
/// that were set (tags of Tencent's where one exists).
pub(super) fn profile_items(c: &UserChange) -> Value {
    let name = |v: Option<&'static str>| v.unwrap_or("Unknown");
    let items: [(&str, Option<Value>); 10] = [
        ("Tag_Profile_IM_Nick", c.nickname.clone().map(Value::from)),
        ("Tag_Profile_IM_Image", c.avatar.clone().map(Value::from)),
        ("Tag_Profile_IM_Gender", c.gender.map(|g| name(g.variant_name()).into())),
        ("Tag_Profile_IM_BirthDay", c.birthday.clone().map(Value::from)),
        ("Tag_Profile_IM_Location", c.location.clone().map(Value::from)),
        ("Tag_Profile_IM_SelfSignature", c.signature.clone().map(Value::from)),
        ("Tag_Profile_IM_AllowType", c.friend_add_policy.map(|p| name(p.variant_name()).into())),
        ("Tag_Profile_Custom_Extra", c.extra.clone().map(Value::from)),
        ("Tag_Profile_Admin_Silent", c.silent.map(Value::from)),
        ("Tag_Profile_Admin_Forbidden", c.forbidden.map(Value::from)),
    ];
    let set = items.into_iter().filter_map(|(tag, v)| v.map(|v| serde_json::json!({ "Tag": tag, "Value": v })));
    Value::Array(set.collect())
}

impl Shard {
    /// The after-send event of `m`, in the batch that stores it, if the app wants it.
    pub(in crate::shard) fn after_send(&self, batch: &mut Batch, app: AppId, m: &MessageRecord, platform: ClientType) {
        let event = match m.to {
            ConvRef::P2p(_) => Event::C2cAfterSendMsg,
            ConvRef::Group(_) => Event::GroupAfterSendMsg,
        };
        if self.hooks.as_ref().is_some_and(|h| h.after_on(app, event)) {
            let platform = platform.variant_name().unwrap_or("Unknown");
            batch.put_hook_event(app, Hooks::after_event(app, event, m.from.as_str(), platform, sent_fields(m)));
        }
    }

    /// The apps' backends, if any (a handler takes them before borrowing its group).
    pub(in crate::shard) fn hooks(&self) -> Option<Arc<Hooks>> {
        self.hooks.clone()
    }

    /// An after-hook event of a group change (`users`: the members it is about), in the
    /// change's batch, if the app wants it. Imports report nothing (their handlers skip this).
    pub(in crate::shard) fn report_group(
        hooks: &Option<Arc<Hooks>>,
        batch: &mut Batch,
        (app, event, by): (AppId, Event, &Actor),
        (rec, users): (&GroupRecord, &[UserId]),
        extra: &[(&str, Value)],
    ) {
        if !hooks.as_ref().is_some_and(|h| h.after_on(app, event)) {
            return;
        }
        let mut f = Map::new();
        f.insert("GroupId".into(), rec.id.as_str().into());
        f.insert("Type".into(), rec.kind.0.into());
        f.insert("Owner_Account".into(), rec.owner.as_str().into());
        f.insert("Name".into(), rec.name.clone().into());
        if !users.is_empty() {
            let list = users.iter().map(|u| serde_json::json!({ "Member_Account": u.as_str() })).collect();
            f.insert("MemberList".into(), Value::Array(list));
        }
        for (k, v) in extra {
            f.insert((*k).into(), v.clone());
        }
        let (operator, platform) = match &by.caller {
            Some(c) => c.names(),
            None => (by.user.as_ref().map_or("", UserId::as_str), ""),
        };
        batch.put_hook_event(app, Hooks::after_event(app, event, operator, platform, f));
    }

    /// The after-hook event of a recall, in its batch, if the app wants it.
    pub(in crate::shard) fn report_recall(&self, batch: &mut Batch, app: AppId, tomb: &MessageRecord, by: &UserId) {
        let event = match tomb.to {
            ConvRef::P2p(_) => Event::C2cAfterMsgWithDraw,
            ConvRef::Group(_) => Event::GroupAfterRecallMsg,
        };
        if self.hooks.as_ref().is_some_and(|h| h.after_on(app, event)) {
            let mut f = sent_fields(tomb);
            f.remove("MsgBody");
            batch.put_hook_event(app, Hooks::after_event(app, event, by.as_str(), "", f));
        }
    }

    /// An after-hook event of `app` into `batch`, if the app wants it; `fields` are built
    /// only then. `by`: who asked (`None`: the server itself).
    pub(in crate::shard) fn report(
        &self,
        batch: &mut Batch,
        (app, event, by): (AppId, Event, Option<&Caller>),
        fields: impl FnOnce() -> Map<String, Value>,
    ) {
        if self.hooks.as_ref().is_some_and(|h| h.after_on(app, event)) {
            let (operator, platform) = by.map_or(("", ""), Caller::names);
            batch.put_hook_event(app, Hooks::after_event(app, event, operator, platform, fields()));
        }
    }

    /// An online-status event (`State.StateChange`): `device` of `user` logged in (or out,
    /// or its connection ended), `online` devices remain, `kicked` went for the new one.
    pub(in crate::shard) fn report_state(
        &self,
        batch: &mut Batch,
        (app, user): (AppId, &UserId),
        (action, reason): (&str, &str),
        (platform, device_id): (ClientType, &str),
        (online, kicked): (usize, &[ClientType]),
    ) {
        let by = Caller { account: user.clone(), platform };
        self.report(batch, (app, Event::StateChange, Some(&by)), || {
            let mut f = Map::new();
            let info = serde_json::json!({ "Action": action, "To_Account": user.as_str(), "Reason": reason });
            f.insert("Info".into(), info);
            f.insert("DeviceId".into(), device_id.into());
            f.insert("OnlineDevices".into(), online.into());
            if !kicked.is_empty() {
                let list =
                    kicked.iter().map(|p| serde_json::json!({ "Platform": p.variant_name().unwrap_or("Unknown") }));
                f.insert("KickedDevice".into(), Value::Array(list.collect()));
            }
            f
        });
    }
}
