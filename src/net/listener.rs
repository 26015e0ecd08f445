//! Accepts connections up to the configured limit (beyond it: an error frame, then close),
//! and on shutdown stops accepting, tells every session to close, and waits for them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{linger, session, Ctx};
use crate::metrics::Refusal;
use crate::protocol::{self, wire::ErrorCode};

pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(ctx.cfg.limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        ctx.metrics.accepted.inc();
                        sessions.spawn(session::run(stream, ctx.clone(), permit, closing_rx.clone()));
                    }
                    Err(_) => {
                        ctx.metrics.refused(Refusal::Limit);
                        tokio::spawn(refuse(stream));
                    }
                },
                Err(e) => {
                    ctx.metrics.refused(Refusal::AcceptError);
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let grace = Duration::from_secs(ctx.cfg.timeouts.shutdown_secs);
    if tokio::time::timeout(grace, async { while sessions.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(left = sessions.len(), "sessions did not close in time; aborting them");
        sessions.shutdown().await;
    }
}

/// Answers a connection over the limit with an error frame and closes it.
async fn refuse(stream: TcpStream) {
    let frame = protocol::error(0, ErrorCode::TooManyConnections, "too many connections");
    linger::close_with(stream, &frame, Duration::from_secs(2)).await;
}
