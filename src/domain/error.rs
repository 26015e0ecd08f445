//! The domain error enum. Each variant maps to one stable wire `ErrorCode`.

use crate::protocol::wire::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    #[error("missing field: {0}")]
    MissingField(&'static str),
    #[error("permission denied")]
    PermissionDenied,
    #[error("batch too large")]
    BatchTooLarge,
    #[error("limit exceeded: {0}")]
    LimitExceeded(&'static str),
    #[error("user not found")]
    UserNotFound,
    #[error("user deleted")]
    UserDeleted,
    #[error("user already exists")]
    UserAlreadyExists,
    #[error("user forbidden")]
    UserForbidden,
    #[error("user silenced")]
    UserSilenced,
    #[error("message not found")]
    MessageNotFound,
    #[error("client message id already used for a different message")]
    ClientIdConflict,
    #[error("the recall window has passed")]
    RecallWindowPassed,
    #[error("only the sender or an administrator may recall")]
    RecallDenied,
    #[error("message too large")]
    MessageTooLarge,
    #[error("message already recalled")]
    AlreadyRecalled,
    #[error("conversation not found")]
    ConversationNotFound,
    #[error("you cannot befriend or blacklist yourself")]
    FriendSelf,
    #[error("already friends")]
    AlreadyFriends,
    #[error("not friends")]
    NotFriends,
    #[error("the user does not accept friend requests")]
    FriendAddRefused,
    #[error("blacklisted")]
    InBlacklist,
    #[error("friend request not found")]
    FriendRequestNotFound,
    #[error("already in the blacklist")]
    AlreadyInBlacklist,
    #[error("not in the blacklist")]
    NotInBlacklist,
    #[error("this app requires friendship to message")]
    FriendRequired,
    #[error("friend group not found")]
    FriendTagNotFound,
    #[error("friend group exists")]
    FriendTagExists,
    #[error("group not found")]
    GroupNotFound,
    #[error("the group was destroyed")]
    GroupDestroyed,
    #[error("group exists")]
    GroupExists,
    #[error("not a member of the group")]
    NotGroupMember,
    #[error("already a member of the group")]
    AlreadyGroupMember,
    #[error("the group is full")]
    GroupFull,
    #[error("your role in the group may not do this")]
    GroupRoleDenied,
    #[error("the group is muted")]
    GroupMuted,
    #[error("you are muted in this group")]
    MemberMuted,
    #[error("join request not found")]
    JoinRequestNotFound,
    #[error("the group is invite-only")]
    GroupPrivateJoin,
    #[error("the owner cannot leave: transfer ownership or destroy the group")]
    OwnerCannotExit,
    #[error("server overloaded")]
    Overloaded,
    #[error("storage unavailable")]
    StorageUnavailable,
    #[error("shutting down")]
    ShuttingDown,
    #[error("not implemented yet")]
    NotImplemented,
    #[error("rate limited")]
    RateLimited,
    /// The app's backend refused it in a before-hook: its code and reason.
    #[error("refused by the app's backend: {reason}")]
    CallbackRefused { code: i64, reason: String },
    #[error("the app's backend gave no usable answer: {0}")]
    CallbackUnavailable(&'static str),
}

impl DomainError {
    /// The error answer to request `id`: the one place a domain error becomes a frame.
    pub fn frame(&self, id: u64) -> bytes::Bytes {
        let backend_code = match self {
            DomainError::CallbackRefused { code, .. } => *code,
            _ => 0,
        };
        crate::protocol::error_from_backend(id, self.code(), &self.message(), backend_code)
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            DomainError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            DomainError::MissingField(_) => ErrorCode::MissingField,
            DomainError::PermissionDenied => ErrorCode::PermissionDenied,
            DomainError::BatchTooLarge => ErrorCode::BatchTooLarge,
            DomainError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            DomainError::UserNotFound => ErrorCode::UserNotFound,
            DomainError::UserDeleted => ErrorCode::UserDeleted,
            DomainError::UserAlreadyExists => ErrorCode::UserAlreadyExists,
            DomainError::UserForbidden => ErrorCode::UserForbidden,
            DomainError::UserSilenced => ErrorCode::UserSilenced,
            DomainError::MessageNotFound => ErrorCode::MessageNotFound,
            DomainError::ClientIdConflict => ErrorCode::ClientIdConflict,
            DomainError::RecallWindowPassed => ErrorCode::RecallWindowPassed,
            DomainError::RecallDenied => ErrorCode::RecallDenied,
            DomainError::MessageTooLarge => ErrorCode::MessageTooLarge,
            DomainError::AlreadyRecalled => ErrorCode::AlreadyRecalled,
            DomainError::ConversationNotFound => ErrorCode::ConversationNotFound,
            DomainError::FriendSelf => ErrorCode::FriendSelf,
            DomainError::AlreadyFriends => ErrorCode::AlreadyFriends,
            DomainError::NotFriends => ErrorCode::NotFriends,
            DomainError::FriendAddRefused => ErrorCode::FriendAddRefused,
            DomainError::InBlacklist => ErrorCode::InBlacklist,
            DomainError::FriendRequestNotFound => ErrorCode::FriendRequestNotFound,
            DomainError::AlreadyInBlacklist => ErrorCode::AlreadyInBlacklist,
            DomainError::NotInBlacklist => ErrorCode::NotInBlacklist,
            DomainError::FriendRequired => ErrorCode::FriendRequired,
            DomainError::FriendTagNotFound => ErrorCode::FriendGroupNotFound,
            DomainError::FriendTagExists => ErrorCode::FriendGroupExists,
            DomainError::GroupNotFound => ErrorCode::GroupNotFound,
            DomainError::GroupDestroyed => ErrorCode::GroupDestroyed,
            DomainError::GroupExists => ErrorCode::GroupExists,
            DomainError::NotGroupMember => ErrorCode::NotGroupMember,
            DomainError::AlreadyGroupMember => ErrorCode::AlreadyGroupMember,
            DomainError::GroupFull => ErrorCode::GroupFull,
            DomainError::GroupRoleDenied => ErrorCode::GroupRoleDenied,
            DomainError::GroupMuted => ErrorCode::GroupMuted,
            DomainError::MemberMuted => ErrorCode::MemberMuted,
            DomainError::JoinRequestNotFound => ErrorCode::JoinRequestNotFound,
            DomainError::GroupPrivateJoin => ErrorCode::GroupPrivateJoin,
            DomainError::OwnerCannotExit => ErrorCode::OwnerCannotExit,
            DomainError::Overloaded => ErrorCode::Overloaded,
            DomainError::StorageUnavailable => ErrorCode::StorageUnavailable,
            DomainError::ShuttingDown => ErrorCode::ShuttingDown,
            DomainError::NotImplemented => ErrorCode::NotImplemented,
            DomainError::RateLimited => ErrorCode::RateLimited,
            DomainError::CallbackRefused { .. } => ErrorCode::CallbackRefused,
            DomainError::CallbackUnavailable(_) => ErrorCode::CallbackUnavailable,
        }
    }

    /// The text sent with the code: never internal details.
    pub fn message(&self) -> String {
        self.to_string()
    }
}
