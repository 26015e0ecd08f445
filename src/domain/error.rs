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
    #[error("server overloaded")]
    Overloaded,
    #[error("storage unavailable")]
    StorageUnavailable,
    #[error("shutting down")]
    ShuttingDown,
    #[error("not implemented yet")]
    NotImplemented,
}

impl DomainError {
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
            DomainError::Overloaded => ErrorCode::Overloaded,
            DomainError::StorageUnavailable => ErrorCode::StorageUnavailable,
            DomainError::ShuttingDown => ErrorCode::ShuttingDown,
            DomainError::NotImplemented => ErrorCode::NotImplemented,
        }
    }

    /// The text sent with the code: never internal details.
    pub fn message(&self) -> String {
        self.to_string()
    }
}
