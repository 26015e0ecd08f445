//! A user's conversation list: reads, pins, mutes, deletes and pages; run by the user's shard.

use super::{Caller, Reply};
use crate::domain::conversation::ConvView;
use crate::domain::ids::{AppId, ConnId, ConvRef, UserId};
use crate::domain::DomainError;

/// A page of a conversation list: entries, the newest change seq among them, more remain.
pub type ConvPage = (Vec<ConvView>, u64, bool);

/// `user` has read the conversation with `peer` up to `seq`.
pub struct ReadConversation {
    pub app: AppId,
    pub user: UserId,
    pub conv: ConvRef,
    pub seq: u64,
    pub origin: Option<ConnId>,
    /// Who asked (after-hook events name them).
    pub by: Caller,
    pub reply: Reply<Result<(), DomainError>>,
}

pub struct GetConversations {
    pub app: AppId,
    pub user: UserId,
    pub after: u64,
    pub limit: usize,
    pub reply: Reply<Result<ConvPage, DomainError>>,
}

pub struct UpdateConversation {
    pub app: AppId,
    pub user: UserId,
    pub conv: ConvRef,
    pub pinned: Option<bool>,
    pub muted: Option<bool>,
    pub origin: Option<ConnId>,
    pub reply: Reply<Result<ConvView, DomainError>>,
}

pub struct DeleteConversation {
    pub app: AppId,
    pub user: UserId,
    pub conv: ConvRef,
    pub client_only: bool,
    pub origin: Option<ConnId>,
    pub reply: Reply<Result<(), DomainError>>,
}

super::area!(
    Conversation,
    ConversationCmd { ReadConversation, GetConversations, UpdateConversation, DeleteConversation }
);
