//! Sockets only: the listener (accept, connection limit, shutdown) and one session per
//! connection (framing, login, heartbeats, dispatch of requests to shards).

pub mod dispatch;
pub mod linger;
pub mod listener;
pub mod login;
pub mod session;
pub mod tls;
pub mod transport;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::shard::Router;

/// Where connections come in: the TLS setup, the connection limit every transport counts
/// against, the way a session started elsewhere joins the listener's sessions (so that
/// shutdown closes and waits for it like any other), and the shard threads' runtimes plain
/// TCP sessions move to.
pub struct Edge {
    pub tls: Option<Arc<tls::Tls>>,
    pub permits: Arc<Semaphore>,
    pub handoff: mpsc::Sender<Handoff>,
    /// The shard threads' runtimes, in shard order, when `sessions_on_shards` is on (else
    /// empty: every session stays on the connection threads).
    pub shard_rt: Vec<tokio::runtime::Handle>,
}

/// A session handed to the listener.
pub enum Handoff {
    /// A WebSocket session upgraded on the HTTP listener.
    Upgraded(transport::Conn, OwnedSemaphorePermit),
    /// A plain TCP session whose login ticket checked out, to run on its user's shard thread.
    Moved(Box<session::Moved>),
}

/// Sessions handed to the listener from elsewhere.
pub type Handoffs = mpsc::Receiver<Handoff>;

impl Edge {
    pub fn new(cfg: &Config, tls: Option<Arc<tls::Tls>>, shard_rt: Vec<tokio::runtime::Handle>) -> (Edge, Handoffs) {
        // Bounded: an upgrade that finds it full is answered 503; a moved session waits.
        let (handoff, rx) = mpsc::channel(256);
        let shard_rt = if cfg.sessions_on_shards { shard_rt } else { Vec::new() };
        (Edge { tls, permits: Arc::new(Semaphore::new(cfg.limits.max_connections)), handoff, shard_rt }, rx)
    }
}

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
    pub edge: Edge,
}
