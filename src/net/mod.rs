//! Sockets only: the listener (accept, connection limit, shutdown) and one session per
//! connection (framing, login, heartbeats, dispatch of requests to shards).

pub mod dispatch;
pub mod linger;
pub mod listener;
pub mod session;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use crate::config::Config;
use crate::shard::Router;

/// What every session shares.
pub struct Ctx {
    pub cfg: Arc<Config>,
    pub router: Router,
    pub next_conn: AtomicU64,
    /// The address told to clients in the login answer.
    pub advertise: String,
    /// The apps' backends, for before-hooks that wait in a request's future.
    pub hooks: Option<Arc<crate::callbacks::Hooks>>,
    /// The server is stopping: not ready, no new HTTP API calls.
    pub draining: AtomicBool,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// For what operators ask of the store itself (backups, its levels); `None` only in the
    /// fuzzing harness, which runs the dispatch without a store.
    pub store: Option<crate::store::Store>,
    /// A backup is being written (one at a time).
    pub backing_up: Arc<AtomicBool>,
}
