//! Users: accounts, devices, presence, pushes to a user's devices, sync reads, eviction; run by
//! the user's shard.

use std::sync::Arc;

use bytes::Bytes;

use super::{ChangedUsers, ItemOutcomes, Reply};
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::sync::{Stream, SyncPage};
use crate::domain::user::{UserChange, UserRecord};
use crate::domain::wire::UserStatus;
use crate::domain::DomainError;
use crate::protocol::wire::ClientType;
use crate::shard::outbox::Outbox;

/// The device a login registers.
pub struct DeviceLogin {
    pub client_type: ClientType,
    pub device_id: String,
    pub outbox: Outbox,
}

/// Drop the loaded conversation lists and friendship state of these users (sent by the
/// shard to itself once the writes before it are durable): each goes only if it was not
/// used since it was picked (same use stamp) and has no device online.
pub struct EvictIdle {
    pub users: Vec<((AppId, UserId), u64)>,
}

/// Registers a device of an existing user, applying the app's multi-device policy.
pub struct Login {
    pub app: AppId,
    pub user: UserId,
    pub device: DeviceLogin,
    pub reply: Reply<Result<(), DomainError>>,
}

/// A connection ended (or logged out).
pub struct Disconnect {
    pub app: AppId,
    pub user: UserId,
    pub conn: ConnId,
    /// Why it ended (`Logout`: the client logged out).
    pub reason: crate::protocol::wire::KickReason,
}

pub struct ImportUsers {
    pub app: AppId,
    pub users: Vec<UserRecord>,
    pub reply: Reply<(ItemOutcomes, ChangedUsers)>,
}

pub struct DeleteUsers {
    pub app: AppId,
    pub users: Vec<UserId>,
    pub reply: Reply<(ItemOutcomes, ChangedUsers)>,
}

/// `admin` readers also see deleted users.
pub struct GetUsers {
    pub app: AppId,
    pub users: Vec<UserId>,
    pub admin: bool,
    pub reply: Reply<Vec<(UserId, Result<UserRecord, DomainError>)>>,
}

pub struct ModifyUser {
    pub app: AppId,
    pub user: UserId,
    pub change: UserChange,
    pub by_admin: bool,
    /// The connection that asked: it gets the answer, not the push.
    pub origin: Option<ConnId>,
    /// Who asked (after-hook events name them).
    pub by: super::Caller,
    pub reply: Reply<Result<(UserRecord, ChangedUsers), DomainError>>,
}

/// These users' facts changed and the change is durable: a shard drops its cached copy (the
/// next check reads the store). Sent to every shard before the change is answered.
pub struct FactsChanged {
    pub app: AppId,
    pub users: Arc<ChangedUsers>,
    pub done: Reply<()>,
}

pub struct QueryStatus {
    pub app: AppId,
    pub users: Vec<UserId>,
    pub reply: Reply<Vec<UserStatus>>,
}

/// `subscriber` follows `targets` (all on this shard) until `until_ms`.
pub struct Subscribe {
    pub app: AppId,
    pub subscriber: UserId,
    pub targets: Vec<UserId>,
    pub until_ms: u64,
    pub reply: Reply<ItemOutcomes>,
}

pub struct Unsubscribe {
    pub app: AppId,
    pub subscriber: UserId,
    pub targets: Vec<UserId>,
    pub reply: Reply<ItemOutcomes>,
}

/// Hands an encoded push to every online device of `user`.
pub struct PushToUser {
    pub app: AppId,
    pub user: UserId,
    pub frame: Bytes,
    /// A push the client cannot read again (a receipt): never dropped on the way. Others
    /// (status, profile and friendship changes, all re-readable) may be, past the bounds.
    pub kept: bool,
}

/// Hands one encoded push to every online device of each of `users` (all of this shard):
/// a push to many users costs one command per shard, not one per user.
pub struct PushToUsers {
    pub app: AppId,
    pub users: Vec<UserId>,
    pub frame: Bytes,
}

pub struct ReadStream {
    pub app: AppId,
    pub user: UserId,
    pub stream: Stream,
    pub after: u64,
    pub limit: usize,
    pub reply: Reply<Result<SyncPage, DomainError>>,
}

super::area!(
    User,
    UserCmd {
        EvictIdle,
        Login,
        Disconnect,
        ImportUsers,
        DeleteUsers,
        GetUsers,
        ModifyUser,
        FactsChanged,
        QueryStatus,
        Subscribe,
        Unsubscribe,
        PushToUser,
        PushToUsers,
        ReadStream
    }
);
