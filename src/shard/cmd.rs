//! The commands a shard accepts. Each names the entity whose shard must run it; replies go
//! back on a oneshot, sent only once the change they report is durable.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::sync::{Stream, SyncPage};
use crate::domain::user::{UserChange, UserRecord};
use crate::domain::wire::UserStatus;
use crate::domain::DomainError;
use crate::protocol::wire::ClientType;
use crate::shard::outbox::Outbox;

pub type Reply<T> = oneshot::Sender<T>;
/// Per-item outcomes of a batch, in request order within this shard's share.
pub type ItemOutcomes = Vec<(UserId, Result<(), DomainError>)>;

pub struct DeviceLogin {
    pub client_type: ClientType,
    pub device_id: String,
    pub outbox: Outbox,
}

pub enum ShardCmd {
    /// Registers a device of an existing user, applying the app's multi-device policy.
    Login {
        app: AppId,
        user: UserId,
        device: DeviceLogin,
        reply: Reply<Result<(), DomainError>>,
    },
    /// A connection ended (or logged out).
    Disconnect {
        app: AppId,
        user: UserId,
        conn: ConnId,
    },
    ImportUsers {
        app: AppId,
        users: Vec<UserRecord>,
        reply: Reply<ItemOutcomes>,
    },
    DeleteUsers {
        app: AppId,
        users: Vec<UserId>,
        reply: Reply<ItemOutcomes>,
    },
    /// `admin` readers also see deleted users.
    GetUsers {
        app: AppId,
        users: Vec<UserId>,
        admin: bool,
        reply: Reply<Vec<(UserId, Result<UserRecord, DomainError>)>>,
    },
    ModifyUser {
        app: AppId,
        user: UserId,
        change: UserChange,
        by_admin: bool,
        /// The connection that asked: it gets the answer, not the push.
        origin: Option<ConnId>,
        reply: Reply<Result<UserRecord, DomainError>>,
    },
    QueryStatus {
        app: AppId,
        users: Vec<UserId>,
        reply: Reply<Vec<UserStatus>>,
    },
    /// `subscriber` follows `targets` (all on this shard) until `until_ms`.
    Subscribe {
        app: AppId,
        subscriber: UserId,
        targets: Vec<UserId>,
        until_ms: u64,
        reply: Reply<ItemOutcomes>,
    },
    Unsubscribe {
        app: AppId,
        subscriber: UserId,
        targets: Vec<UserId>,
        reply: Reply<ItemOutcomes>,
    },
    /// Hands an encoded push to every online device of `user`.
    Push {
        app: AppId,
        user: UserId,
        frame: Bytes,
    },
    Sync {
        app: AppId,
        user: UserId,
        stream: Stream,
        after: u64,
        limit: usize,
        reply: Reply<Result<SyncPage, DomainError>>,
    },
}
