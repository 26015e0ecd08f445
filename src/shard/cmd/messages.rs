//! Messages: sends, recalls and history run by the conversation's shard (by `ConvId`);
//! deliveries, receipts and recall records by a user's shard.

use std::sync::Arc;

use super::{Origin, Reply};
use crate::domain::ids::{AppId, ConnId, ConvId, ConvRef, Pair, UserId};
use crate::domain::message::{HistoryRange, MessageRecord};
use crate::domain::DomainError;

/// A page of messages, and whether more remain.
pub type MessagePage = (Vec<MessageRecord>, bool);

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

/// The relations of a pair changed: the conversation's shard drops what it cached.
pub struct PairChanged {
    pub app: AppId,
    pub pair: Pair,
    pub done: Reply<()>,
}

/// Drop these conversations' cached last seqs, each unless used since its stamp (sent by
/// the shard to itself once the writes before it are durable: see `evict_conversations`).
pub struct EvictHeads {
    pub convs: Vec<((AppId, ConvId), u64)>,
}

/// Send `from` -> `to` (as `from` sees the conversation); the ack (or error) goes to
/// `origin` directly.
pub struct SendMessage {
    pub app: AppId,
    pub from: UserId,
    pub to: ConvRef,
    pub client_id: String,
    pub msg_type: u32,
    pub body: Vec<u8>,
    pub origin: Origin,
    /// Where the send stands with the app's before-send hook.
    pub hook: HookPass,
}

/// The answer to a send's before-hook (`ticket`: the parked send), back from the runtime.
pub struct HookAnswered {
    pub ticket: u64,
    pub outcome: crate::callbacks::Outcome,
}

/// A send and the app's before-send hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HookPass {
    /// Not asked yet (or the app has no such hook).
    #[default]
    Ahead,
    /// The backend let it through; `hash` is the content hash of what the client sent (the
    /// idempotency record keeps it, so a retry of the same send is recognised), and
    /// `rewritten` says the body is now the backend's.
    Passed { hash: u64, rewritten: bool },
}

impl HookPass {
    /// The content hash the idempotency record keeps (`compute` it unless the hook passed
    /// it on) and whether the body was rewritten.
    pub fn hash(self, compute: impl FnOnce() -> u64) -> (u64, bool) {
        match self {
            HookPass::Ahead => (compute(), false),
            HookPass::Passed { hash, rewritten } => (hash, rewritten),
        }
    }
}

pub struct RecallMessage {
    pub app: AppId,
    pub conv: ConvId,
    pub by: UserId,
    pub by_admin: bool,
    pub server_id: u64,
    pub reply: Reply<Result<(), DomainError>>,
}

pub struct GetHistory {
    pub app: AppId,
    pub conv: ConvId,
    /// Who reads (a group's history is for its members, from when they may see it).
    pub viewer: UserId,
    pub admin: bool,
    /// The seqs and their order (`domain::message::history_range`).
    pub range: HistoryRange,
    pub limit: usize,
    pub reply: Reply<Result<MessagePage, DomainError>>,
}

/// Shard `source` has sent this shard every delivery of a message with a server id up to
/// `upto` (sent once a second, behind those deliveries): the delivery mark may move there.
pub struct DeliveredUpTo {
    pub source: u8,
    pub upto: u64,
}

/// Record a recall in `user`'s streams and push it.
pub struct Recalled {
    pub app: AppId,
    pub user: UserId,
    pub msg: Arc<MessageRecord>,
    pub by: UserId,
}

/// Tell `user` (a sender) that `by` received message `server_id`.
pub struct Receipt {
    pub app: AppId,
    pub user: UserId,
    pub by: UserId,
    pub server_id: u64,
    pub seq: u64,
    /// The acker's connection, answered directly.
    pub origin: Origin,
}

pub struct GetMessages {
    pub app: AppId,
    pub viewer: UserId,
    pub admin: bool,
    pub ids: Vec<u64>,
    pub reply: Reply<Result<MessagePage, DomainError>>,
}

super::area!(
    Message,
    MessageCmd {
        PairChanged,
        EvictHeads,
        SendMessage,
        RecallMessage,
        Deliver,
        GetHistory,
        DeliveredUpTo,
        Recalled,
        Receipt,
        GetMessages,
        HookAnswered
    }
);
