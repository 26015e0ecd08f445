//! Owned values the SDK hands to applications.

use crate::protocol::wire;

/// A user profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Profile {
    pub user_id: String,
    pub nickname: String,
    pub avatar: String,
    pub gender: u8,
    pub birthday: String,
    pub location: String,
    pub signature: String,
    pub friend_add_policy: u8,
    pub silent: bool,
    pub forbidden: bool,
    pub extra: String,
    pub create_time_ms: u64,
    pub update_time_ms: u64,
    pub deleted: bool,
}

impl Profile {
    pub fn new(user_id: &str) -> Profile {
        Profile { user_id: user_id.to_owned(), ..Default::default() }
    }

    pub fn from_wire(p: &wire::UserProfile<'_>) -> Profile {
        let s = |v: Option<&str>| v.unwrap_or_default().to_owned();
        Profile {
            user_id: s(p.user_id()),
            nickname: s(p.nickname()),
            avatar: s(p.avatar()),
            gender: p.gender().0,
            birthday: s(p.birthday()),
            location: s(p.location()),
            signature: s(p.signature()),
            friend_add_policy: p.friend_add_policy().0,
            silent: p.silent(),
            forbidden: p.forbidden(),
            extra: s(p.extra()),
            create_time_ms: p.create_time_ms(),
            update_time_ms: p.update_time_ms(),
            deleted: p.deleted(),
        }
    }
}

/// A modifyUserInfo request: `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// Empty = me; another user needs an administrator.
    pub user_id: Option<String>,
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<u8>,
    pub birthday: Option<String>,
    pub location: Option<String>,
    pub signature: Option<String>,
    pub friend_add_policy: Option<u8>,
    pub extra: Option<String>,
    pub silent: Option<bool>,
    pub forbidden: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    #[serde(serialize_with = "client_type_name")]
    pub client_type: wire::ClientType,
    pub device_id: String,
    pub login_time_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub user_id: String,
    pub online: bool,
    pub devices: Vec<Device>,
}

impl Status {
    pub fn from_wire(s: &wire::UserStatus<'_>) -> Status {
        Status {
            user_id: s.user_id().unwrap_or_default().to_owned(),
            online: s.online(),
            devices: s
                .devices()
                .map(|v| {
                    v.iter()
                        .map(|d| Device {
                            client_type: d.client_type(),
                            device_id: d.device_id().unwrap_or_default().to_owned(),
                            login_time_ms: d.login_time_ms(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// What a login answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoginInfo {
    pub session_id: u64,
    pub server_addr: String,
    pub server_time_ms: u64,
    pub heartbeat_secs: u32,
    pub idle_timeout_secs: u32,
    pub is_admin: bool,
}

/// One entry of a sync answer, with its stream's payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncEntry {
    pub seq: u64,
    pub id: String,
    pub deleted: bool,
    pub message: Option<Message>,
    pub conversation: Option<Conversation>,
    pub group: Option<super::GroupInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncAnswer {
    pub items: Vec<SyncEntry>,
    pub head_seq: u64,
    pub more: bool,
}

/// The outcome of one item of a batch call: `ErrorCode::None` is success.
pub type ItemOutcome = (String, wire::ErrorCode);

fn client_type_name<S: serde::Serializer>(t: &wire::ClientType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.variant_name().unwrap_or("Unknown"))
}

/// A message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    pub server_id: u64,
    pub client_id: String,
    /// The other user of the conversation, seen from the receiving client.
    pub peer: String,
    pub seq: u64,
    pub from: String,
    pub to: String,
    pub msg_type: u32,
    pub body: Vec<u8>,
    pub timestamp_ms: u64,
    pub recalled: bool,
    /// Position in my Messages stream (0 outside sync and pushes).
    pub sync_seq: u64,
}

impl Message {
    pub fn from_wire(m: &wire::Message<'_>) -> Message {
        Message {
            server_id: m.server_id(),
            client_id: m.client_id().unwrap_or_default().to_owned(),
            peer: m.conv().and_then(|c| c.peer()).unwrap_or_default().to_owned(),
            seq: m.seq(),
            from: m.from_user().unwrap_or_default().to_owned(),
            to: m.to().unwrap_or_default().to_owned(),
            msg_type: m.msg_type(),
            body: m.body().map(|b| b.bytes().to_vec()).unwrap_or_default(),
            timestamp_ms: m.timestamp_ms(),
            recalled: m.recalled(),
            sync_seq: m.sync_seq(),
        }
    }
}

/// My entry for a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conversation {
    pub peer: String,
    pub last_message: Option<Message>,
    pub unread: u64,
    pub read_seq: u64,
    pub pinned: bool,
    pub muted: bool,
    pub seq: u64,
}

impl Conversation {
    pub fn from_wire(c: &wire::Conversation<'_>) -> Conversation {
        Conversation {
            peer: c.conv().and_then(|c| c.peer()).unwrap_or_default().to_owned(),
            last_message: c.last_message().map(|m| Message::from_wire(&m)),
            unread: c.unread(),
            read_seq: c.read_seq(),
            pinned: c.pinned(),
            muted: c.muted(),
            seq: c.seq(),
        }
    }
}

/// The ack of a send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SendAck {
    pub client_id: String,
    pub server_id: u64,
    pub seq: u64,
    pub timestamp_ms: u64,
    /// This was a retry: the original ack, nothing new stored.
    pub duplicate: bool,
    /// The app's backend replaced the body (a before-send callback).
    pub rewritten: bool,
}

impl SendAck {
    /// The ack a send was answered with.
    pub fn from_frame(f: &super::Frame) -> Result<SendAck, super::ClientError> {
        let a = f.get().response_as_send_ack().ok_or(super::ClientError::Unexpected("SendAck"))?;
        Ok(SendAck {
            client_id: a.client_id().unwrap_or_default().to_owned(),
            server_id: a.server_id(),
            seq: a.seq(),
            timestamp_ms: a.timestamp_ms(),
            duplicate: a.duplicate(),
            rewritten: a.rewritten(),
        })
    }
}

/// A finished online backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backup {
    pub name: String,
    /// The backup's directory as the server sees it: a data directory to start a server on.
    pub path: String,
    pub files: u64,
    pub bytes: u64,
    pub took_ms: u64,
}
