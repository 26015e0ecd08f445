//! The sharded reactor.
//!
//! `n` shard threads each own a partition of the state (users by `hash(app, user)`, P2P
//! conversations by their pair; groups later by their own key) and run the commands routed to
//! them one at a time, so no lock guards the state. Each shard has two bounded inboxes drained
//! in batches: one for sessions (who wait when it is full) and one for other shards (always
//! drained). A shard never waits on another shard: cross-shard sends are `try_send` with a FIFO
//! deferred queue, and while that queue is over its bound the shard stops taking session
//! commands (see `state::run`).

pub mod cmd;
mod common;
mod conversations;
#[cfg(test)]
mod crash_tests;
mod friends;
pub mod gather;
mod groups;
mod hooks;
mod kept;
/// Wire encoders of friendship records (shared with the dispatch layer).
pub mod wire_friends {
    pub use super::friends::{black_wire, friend_wire, request_wire};
}
mod messages;
pub mod outbox;
mod recent;
mod reports;
pub mod router;
mod state;
mod users;

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Config;
use crate::store::{Committer, Store, StoreError};
pub use cmd::ShardCmd;
pub use router::{shard_of, Inboxes, Rejected, RouteError, Router};

/// The running shard threads.
pub struct Shards {
    threads: Vec<JoinHandle<()>>,
    /// Each shard thread's runtime (timers and sockets), for sessions moved onto it.
    handles: Vec<tokio::runtime::Handle>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Shards {
    /// Loads every shard's state from the store and starts the threads.
    /// `hooks`: the apps' backends, if any app has callbacks.
    pub fn start(
        cfg: Arc<Config>,
        store: Store,
        committer: Committer,
        hooks: Option<Arc<crate::callbacks::Hooks>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<(Router, Shards), StoreError> {
        let n = cfg.shard_count();
        let (router, Inboxes { sessions: rxs, peers: peer_rxs }) = Router::new(n, cfg.limits.shard_queue);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut states = state::load(&cfg, &store, &router, committer, (hooks, metrics))?;
        let mut threads = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for (i, (rx, peer_rx)) in rxs.into_iter().zip(peer_rxs).enumerate().rev() {
            let st = states.pop().expect("one state per shard");
            let stop_rx = stop_rx.clone();
            // A single-threaded runtime per shard, built here so its handle is known before
            // the thread runs; sockets too, for the sessions that move onto it.
            // Tasks woken from other threads (a session's writer woken by another shard's or
            // the writer thread's completion) wait in the runtime's remote queue, which a
            // current-thread runtime checks first only every 31st task by default: with the
            // thread's own sessions always runnable, those writers starved for seconds and
            // their outboxes overflowed. Every other task now comes from the remote queue.
            // And the shard loop (the `block_on` future, polled again after at most
            // `event_interval` tasks, each poll a batch of commands) must not outrun the
            // sessions' readers and writers: with the default 61, two shards with their
            // sessions under a closed-loop load kicked receivers as slow consumers.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .global_queue_interval(2)
                .event_interval(512)
                .build()
                .map_err(|e| StoreError::Rocks(format!("building shard runtime: {e}")))?;
            handles.push(rt.handle().clone());
            let thread = std::thread::Builder::new()
                .name(format!("shard-{i}"))
                .spawn(move || state::run(rt, st, rx, peer_rx, stop_rx))
                .map_err(|e| StoreError::Rocks(format!("spawning shard thread: {e}")))?;
            threads.push(thread);
        }
        threads.reverse();
        handles.reverse();
        Ok((router, Shards { threads, handles, stop }))
    }

    /// The shard threads' runtimes, in shard order.
    pub fn handles(&self) -> Vec<tokio::runtime::Handle> {
        self.handles.clone()
    }

    /// Stops every shard after it has run the commands already queued, and waits for them.
    /// Their `Committer`s drop with them, so the writer can then drain and exit.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a shard thread panicked");
            }
        }
    }
}
