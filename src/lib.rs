//! imserver: an instant-messaging server. One TCP port, length-prefixed FlatBuffers frames,
//! a sharded reactor over embedded RocksDB.
//!
//! Map of the crate (dependencies point down: net -> flows -> shard -> domain -> store; all ->
//! protocol):
//! - `config`: every limit and knob, with defaults; TOML file + flags.
//! - `protocol`: bytes <-> frames: the flatc-generated schema (`protocol/im.fbs`), framing,
//!   verification and frame builders.
//! - `auth`: login tickets (TLSSigAPIv2 / UserSig format), verified in constant time.
//! - `callbacks`: hooks to an app's backend over HTTP (signed JSON requests, their answers,
//!   fail-open/closed), called on the server's runtime; `shard::hooks` parks what waits.
//! - `metrics`: what the server counts (`GET /metrics`): one `Metrics` per server, counters
//!   by wire enum value, the writer's histograms, scrape-time levels.
//! - `net`: sockets only: `listener` (accept, connection limit, shutdown), `session` (login
//!   handshake, heartbeats, idle timeout, writer), `linger` (the end of a connection),
//!   `dispatch` (the one exhaustive match over requests: parse, route, answer).
//! - `flows`: multi-shard sequences (friend add/approve/delete, blacklist, admin user changes
//!   followed by every shard dropping its cached facts of those users) as detached tasks of
//!   idempotent shard steps.
//! - `shard`: the reactor. `router` (who owns an entity; bounded inboxes), `cmd/` (commands by
//!   area, one struct each), `state/` (a shard's memory; `load`, `run`, `resident` (users and
//!   their facts read on first use), `evict`, `commit`, `route`), handlers by area (`users`,
//!   `friends/` (`mod.rs` loading and the pair relations, `sides` the two sides of a
//!   friendship, `requests`, `blacklist`, `tags`), `messages/` (the conversation's side in
//!   `mod.rs`, the users' side in `delivered`), `conversations`), `common` (shared handler
//!   helpers), `gather` (ask shards and wait), `recent` (bounded memories), `kept` (receipts
//!   handed back by commit completions, never dropped), `outbox` (a connection as shards see
//!   it); `crash_tests` (tests only) plays the shards by hand.
//! - `domain`: the product rules, one file per area (`user`, `presence`, `friend`, `message`,
//!   `conversation`, `sync`, `page`, `ratelimit`), synchronous and I/O-free; `ids` (user,
//!   group and conversation ids: `ConvId`, `ConvRef`, `Pair`), `error`, `wire` (domain <-> wire
//!   tables).
//! - `store`: the only code that touches RocksDB: `keys` (layouts), `codec` (values),
//!   `batch` (what a change writes), `writer` (group commit), `messages` (message reads and
//!   start-up scans), `upgrade` (the format check and in-place upgrades), other reads in
//!   `mod.rs`.
//! - `client`: the async Rust SDK used by tests and `imctl` (`mod.rs` the connection and its
//!   pushes, `calls` and `friends` the typed calls, `types` what they return). (`imload`, in
//!   `loadtest/`, speaks raw frames to spend less of the machine on itself.)
//! - `fuzzing`: the entry points the fuzz targets and their corpus replay call.
//! - `bin/`: `imserver.rs` (flags, logging, bind, run) and `imctl/` (`main.rs` parses and logs
//!   in, `cli.rs` the flags, `run/` one file per command area, `show.rs` the output).
//!
//! `run` is the whole server: give it a bound listener, a config and a shutdown future.

pub mod auth;
pub mod callbacks;
pub mod client;
pub mod config;
pub mod domain;
pub mod flows;
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod shard;
pub mod store;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::config::Config;
use crate::shard::Shards;
use crate::store::{Store, StoreError};

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the server on `listener` (and on `cfg.http_listen`, if set) until `shutdown`
/// completes; see `run_with`.
pub async fn run(listener: TcpListener, cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    cfg.validate().map_err(ServerError::Config)?;
    let http = match cfg.http_listen.as_str() {
        "" => None,
        a => Some(TcpListener::bind(a).await?),
    };
    run_with(listener, http, cfg, shutdown, Default::default()).await
}

/// Runs the server on `listener` and the HTTP API on `http` until `shutdown` completes, then
/// stops accepting, closes every connection with a reason, lets the shards finish what they
/// have queued, and syncs the WAL. Returns once everything acknowledged is durable. While it
/// drains, `/readyz` says so. Each `reload_tls` notification re-reads the TLS certificate and
/// key (`imserver` notifies it on SIGHUP); connections already open keep theirs.
pub async fn run_with(
    listener: TcpListener,
    http: Option<TcpListener>,
    cfg: Config,
    shutdown: impl Future<Output = ()>,
    reload_tls: Arc<tokio::sync::Notify>,
) -> Result<(), ServerError> {
    cfg.validate().map_err(ServerError::Config)?;
    let tls = net::tls::Tls::load(&cfg.tls).map_err(ServerError::Config)?;
    let cfg = Arc::new(cfg);
    let local = listener.local_addr()?;
    // Callbacks run on this runtime, never on a shard thread.
    let hooks = callbacks::Hooks::new(&cfg, tokio::runtime::Handle::current());
    let metrics = metrics::Metrics::new(cfg.shard_count());
    let (store, writer, router, shards, after) = {
        let cfg = cfg.clone();
        let hooks = hooks.clone();
        let metrics = metrics.clone();
        tokio::task::spawn_blocking(move || -> Result<_, ServerError> {
            let store = Store::open(&cfg.data_dir)?;
            let (committer, writer) = store.start_measured_writer(
                store::WriterOptions {
                    durability: cfg.durability,
                    wal_sync_ms: cfg.wal_sync_ms,
                    queue: cfg.limits.commit_queue,
                    max_group: cfg.limits.max_commit_group,
                    direct: cfg.write_path == config::WritePath::Shards,
                },
                metrics.writer.clone(),
            );
            // After-hook events reach the backends from their durable queue.
            let after = hooks.as_ref().map(|h| callbacks::AfterHooks::start(h, &store, &committer));
            let (router, shards) = Shards::start(cfg.clone(), store.clone(), committer, hooks, metrics)?;
            Ok((store, writer, router, shards, after))
        })
        .await
        .map_err(|e| ServerError::Io(std::io::Error::other(e)))??
    };
    tracing::info!(addr = %local, shards = router.len(), durability = ?cfg.durability, tls = tls.is_some(), "listening");
    if let Some(tls) = tls.clone() {
        tokio::spawn(async move {
            loop {
                reload_tls.notified().await;
                // It reads files: on a blocking thread, not an async worker.
                let t = tls.clone();
                match tokio::task::spawn_blocking(move || t.reload()).await {
                    Ok(Ok(())) => tracing::info!("tls: certificate and key reloaded"),
                    Ok(Err(e)) => tracing::error!(error = %e, "tls: reload failed; the old certificate stays in use"),
                    Err(e) => tracing::error!(error = %e, "tls: the reload did not run"),
                }
            }
        });
    }
    let (edge, handoffs) = net::Edge::new(&cfg, tls, shards.handles());
    let ctx = Arc::new(net::Ctx {
        edge,
        cfg: cfg.clone(),
        router,
        next_conn: AtomicU64::new(1),
        advertise: cfg.advertise.clone().unwrap_or_else(|| local.to_string()),
        hooks,
        draining: Default::default(),
        metrics,
        store: Some(store.clone()),
        backing_up: Default::default(),
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = http.map(|l| {
        tracing::info!(addr = ?l.local_addr().ok(), "http listening");
        tokio::spawn(http::serve(l, ctx.clone(), async move {
            let _ = http_stopped.await;
        }))
    });
    let draining = {
        let ctx = ctx.clone();
        async move {
            shutdown.await;
            ctx.draining.store(true, std::sync::atomic::Ordering::Release);
        }
    };
    net::listener::serve(listener, ctx.clone(), handoffs, draining).await;
    let _ = stop_http.send(());
    if let Some(h) = http {
        let _ = h.await;
    }
    drop(ctx);
    // Their committers must go before the writer can finish.
    if let Some(after) = after {
        after.stop().await;
    }
    let stored = tokio::task::spawn_blocking(move || {
        shards.stop();
        let r = writer.join();
        drop(store);
        r
    })
    .await
    .map_err(|e| ServerError::Io(std::io::Error::other(e)))?;
    // A failed write or sync means some acknowledged change may not be durable: say so in the
    // exit status.
    stored?;
    tracing::info!("stopped");
    Ok(())
}
