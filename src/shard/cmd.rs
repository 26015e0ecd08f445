//! The commands a shard accepts. Each names the entity whose shard must run it; replies go
//! back on a oneshot (or straight to the requesting connection's outbox, for sends), sent only
//! once the change they report is durable.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::domain::conversation::{ConvRef, ConvView};
use crate::domain::friend::{AddInfo, FriendEntry, FriendRequest, Inbound};
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::message::{HistoryRange, MessageRecord, Pair};
use crate::domain::sync::{Stream, SyncPage};
use crate::domain::user::{UserChange, UserFacts, UserRecord};
use crate::domain::wire::UserStatus;
use crate::domain::DomainError;
use crate::protocol::wire::ClientType;
use crate::shard::outbox::Outbox;

pub type Reply<T> = oneshot::Sender<T>;
/// Per-item outcomes of a batch, in request order within this shard's share.
pub type ItemOutcomes = Vec<(UserId, Result<(), DomainError>)>;
/// Users whose send-relevant facts changed, to replicate to every shard before answering.
pub type FactsList = Vec<(UserId, UserFacts)>;

pub struct DeviceLogin {
    pub client_type: ClientType,
    pub device_id: String,
    pub outbox: Outbox,
}

/// Where the answer to a request goes when the shard answers the connection directly.
pub struct Origin {
    pub outbox: Outbox,
    pub req_id: u64,
    /// Dropped once the answer is queued: the session counts the request in flight until then.
    pub answered: crate::shard::outbox::Unanswered,
}

/// A message's deliveries to the users one shard owns (for a one-to-one message: its sender
/// and receiver when they share a shard, else one of them), recorded in one batch.
///
/// One command per (message, user shard) is what makes the delivery marks sound: a live
/// delivery moves the shard's mark for the message's source shard to the message's id in the
/// same atomic write as the stream entries, so a durable mark covers every delivery of that
/// message to that shard. (Sent as two commands, the first could be recorded, with the mark,
/// and the process killed before the second: start-up then took the second as recorded, and
/// the message was missing from that user's Messages stream.)
pub struct Deliver {
    pub app: AppId,
    pub msg: Arc<MessageRecord>,
    /// Each user to record it for, with the connection that sent it, if any (not pushed to).
    pub to: Vec<(UserId, Option<ConnId>)>,
    /// Re-driven at start-up from fan-out records (one user each): each delivery deletes its
    /// record instead of moving the mark.
    pub from_record: bool,
}

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

/// A page of messages, and whether more remain.
pub type MessagePage = (Vec<MessageRecord>, bool);
/// A page of a conversation list: entries, the newest change seq among them, more remain.
pub type ConvPage = (Vec<ConvView>, u64, bool);

/// One user's relation to another: (owner, peer) -> (friend, blacklisted).
pub type RelationAnswers = Vec<((UserId, UserId), (bool, bool))>;

pub enum ShardCmd {
    // ---- friendship: run by the shard of the user whose side changes ----
    /// Does `user` already have `peer` as a friend? (`AlreadyFriends` if so.)
    FriendPrecheck {
        app: AppId,
        user: UserId,
        peer: UserId,
        reply: Reply<Result<bool, DomainError>>,
    },
    /// `from` asks to add `user`: `user`'s blacklist and policy decide (admins bypass the
    /// policy); writes `user`'s side or a request.
    FriendInbound {
        app: AppId,
        user: UserId,
        from: UserId,
        info: AddInfo,
        by_admin: bool,
        reply: Reply<Result<InboundAnswer, DomainError>>,
    },
    /// Writes `user`'s side of a friendship with `peer` (no change if it exists).
    FriendAddSide {
        app: AppId,
        user: UserId,
        peer: UserId,
        info: AddInfo,
        origin: Option<ConnId>,
        reply: Reply<Result<FriendEntry, DomainError>>,
    },
    /// Removes `user`'s side of one friendship (`peer`) or of all (`None`).
    FriendDelete {
        app: AppId,
        user: UserId,
        peer: Option<UserId>,
        origin: Option<ConnId>,
        reply: Reply<Result<Vec<UserId>, DomainError>>,
    },
    FriendUpdate {
        app: AppId,
        user: UserId,
        peer: UserId,
        remark: Option<String>,
        extra: Option<String>,
        origin: Option<ConnId>,
        reply: Reply<Result<FriendEntry, DomainError>>,
    },
    /// Owners' relations to peers (every owner belongs to this shard).
    Relations {
        app: AppId,
        pairs: Vec<(UserId, UserId)>,
        reply: Reply<Result<RelationAnswers, DomainError>>,
    },
    /// One owner's friend entry for a peer, and whether the owner blacklisted it.
    Relation {
        app: AppId,
        user: UserId,
        peer: UserId,
        reply: Reply<Result<(Option<FriendEntry>, bool), DomainError>>,
    },
    GetFriends {
        app: AppId,
        user: UserId,
        after: u64,
        limit: usize,
        reply: Reply<Result<FriendPage, DomainError>>,
    },
    BlackAdd {
        app: AppId,
        user: UserId,
        peer: UserId,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    },
    BlackDelete {
        app: AppId,
        user: UserId,
        peer: UserId,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    },
    GetFriendRequests {
        app: AppId,
        user: UserId,
        reply: Reply<Result<Vec<FriendRequest>, DomainError>>,
    },
    /// Approve or reject a request `user` received; approving writes `user`'s side.
    AnswerFriendRequest {
        app: AppId,
        user: UserId,
        id: u64,
        approve: bool,
        remark: String,
        origin: Option<ConnId>,
        reply: Reply<Result<FriendRequest, DomainError>>,
    },
    ReadAllFriendRequests {
        app: AppId,
        user: UserId,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    },
    FriendTag {
        app: AppId,
        user: UserId,
        name: String,
        op: TagOp,
        members: Vec<UserId>,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    },
    GetFriendTags {
        app: AppId,
        user: UserId,
        reply: Reply<Result<FriendTags, DomainError>>,
    },
    /// Drop the loaded conversation lists and friendship state of these users (sent by the
    /// shard to itself once the writes before it are durable): each goes only if it was not
    /// used since it was picked (same use stamp) and has no device online.
    Evict {
        users: Vec<((AppId, UserId), u64)>,
    },
    /// The relations of a pair changed: the conversation's shard drops what it cached.
    PairChanged {
        app: AppId,
        pair: Pair,
        done: Reply<()>,
    },

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
        reply: Reply<(ItemOutcomes, FactsList)>,
    },
    DeleteUsers {
        app: AppId,
        users: Vec<UserId>,
        reply: Reply<(ItemOutcomes, FactsList)>,
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
        reply: Reply<Result<(UserRecord, FactsList), DomainError>>,
    },
    /// Every shard keeps a copy of every user's send-relevant facts; the owner replicates
    /// changes with this before it answers the change.
    SetFacts {
        app: AppId,
        facts: Arc<FactsList>,
        done: Reply<()>,
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
    /// Hands one encoded push to every online device of each of `users` (all of this shard):
    /// a push to many users costs one command per shard, not one per user.
    PushEach {
        app: AppId,
        users: Vec<UserId>,
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

    // ---- one-to-one messages: run by the conversation's shard (by `Pair`) ----
    /// Send `from` -> `to`; the ack (or error) goes to `origin` directly.
    Send {
        app: AppId,
        from: UserId,
        to: UserId,
        client_id: String,
        msg_type: u32,
        body: Vec<u8>,
        origin: Origin,
    },
    Recall {
        app: AppId,
        pair: Pair,
        by: UserId,
        by_admin: bool,
        server_id: u64,
        reply: Reply<Result<(), DomainError>>,
    },
    History {
        app: AppId,
        pair: Pair,
        /// The seqs and their order (`domain::message::history_range`).
        range: HistoryRange,
        limit: usize,
        reply: Reply<Result<MessagePage, DomainError>>,
    },

    // ---- one-to-one messages: run by a user's shard ----
    /// Record a message in the streams and conversation lists of the users of this shard it
    /// is for, then push it to their devices. See `Deliver`.
    Deliver(Deliver),
    /// Shard `source` has sent this shard every delivery of a message with a server id up to
    /// `upto` (sent once a second, behind those deliveries): the delivery mark may move there.
    DeliveredUpTo {
        source: u8,
        upto: u64,
    },
    /// Record a recall in `user`'s streams and push it.
    Recalled {
        app: AppId,
        user: UserId,
        msg: Arc<MessageRecord>,
        by: UserId,
    },
    /// Tell `user` (a sender) that `by` received message `server_id`.
    Receipt {
        app: AppId,
        user: UserId,
        by: UserId,
        server_id: u64,
        seq: u64,
        /// The acker's connection, answered directly.
        origin: Origin,
    },
    /// `user` has read the conversation with `peer` up to `seq`.
    Read {
        app: AppId,
        user: UserId,
        conv: ConvRef,
        seq: u64,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    },
    /// Tell `user` that `reader` read their conversation up to `read_seq`.
    ReadReceipt {
        app: AppId,
        user: UserId,
        reader: UserId,
        read_seq: u64,
    },
    GetMessages {
        app: AppId,
        viewer: UserId,
        admin: bool,
        ids: Vec<u64>,
        reply: Reply<Result<MessagePage, DomainError>>,
    },
    GetConversations {
        app: AppId,
        user: UserId,
        after: u64,
        limit: usize,
        reply: Reply<Result<ConvPage, DomainError>>,
    },
    UpdateConversation {
        app: AppId,
        user: UserId,
        conv: ConvRef,
        pinned: Option<bool>,
        muted: Option<bool>,
        origin: Option<ConnId>,
        reply: Reply<Result<ConvView, DomainError>>,
    },
    DeleteConversation {
        app: AppId,
        user: UserId,
        conv: ConvRef,
        client_only: bool,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    },
}
