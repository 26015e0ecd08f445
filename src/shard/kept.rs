//! Pushes a client cannot read again (receipts), made where no shard can send them: commit
//! completions, on the writer thread. Sending from there can only `try_send`, and a full inbox
//! would drop them; instead the completion hands them back to the shard that made the commit,
//! which sends them like the rest of its cross-shard output (in order, deferred when an inbox
//! is full, never dropped; see `state::route`).
//!
//! Bounded by backpressure: each completion adds at most one push, and the commits in flight
//! are bounded (`limits.commit_queue`); the shard takes the pushes at its next wake-up.

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::domain::ids::{AppId, UserId};

/// One push for every online device of a user, on whichever shard owns them.
pub type KeptPush = (AppId, UserId, Bytes);

#[derive(Default)]
pub struct KeptPushes {
    queue: Mutex<Vec<KeptPush>>,
    ready: Notify,
}

impl KeptPushes {
    /// Queues a push for the shard to send (from any thread, without waiting).
    pub fn push(&self, app: AppId, user: &UserId, frame: Bytes) {
        self.queue.lock().push((app, user.clone(), frame));
        // Stores a permit when the shard is not waiting: no wake-up is lost.
        self.ready.notify_one();
    }

    /// Resolves once pushes are queued (or were since the last `take`).
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    pub fn take(&self) -> Vec<KeptPush> {
        std::mem::take(&mut *self.queue.lock())
    }
}
