//! Multi-shard sequences, each run as a detached task of idempotent shard steps: once started
//! it runs to its end even if the connection that asked goes away (a session's future is
//! dropped when the server drains), so no sequence is ever cut half-way by a socket.
//!
//! `net::dispatch` parses a request, starts a flow here and encodes what it returns; it holds
//! no sequence itself. A flow returns domain values, never wire bytes, and must not touch
//! sockets or storage: each step is a shard command (`shard::gather`).

pub mod friends;
pub mod users;

use std::future::Future;

use crate::domain::DomainError;

/// Runs `flow` as its own task and waits for its result. `ShuttingDown` if the runtime drops
/// the task (the server is stopping).
pub async fn detached<T: Send + 'static>(
    flow: impl Future<Output = Result<T, DomainError>> + Send + 'static,
) -> Result<T, DomainError> {
    tokio::spawn(flow).await.unwrap_or(Err(DomainError::ShuttingDown))
}
