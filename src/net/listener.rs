//! Accepts connections up to the configured limit (beyond it: an error frame, then close),
//! runs the TLS handshake where the port speaks TLS, takes in the WebSocket sessions the HTTP
//! listener upgrades and starts the plain TCP sessions that move to their user's shard
//! thread after login, and on shutdown stops accepting, tells every session to close, and
//! waits for them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use super::tls::Refused;
use super::transport::Conn;
use super::{linger, session, Ctx, Handoff, Handoffs};
use crate::metrics::Refusal;
use crate::protocol::{self, wire::ErrorCode};

pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>, mut handoffs: Handoffs, shutdown: impl Future<Output = ()>) {
    let permits = ctx.edge.permits.clone();
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            Some(h) = handoffs.recv() => match h {
                Handoff::Upgraded(conn, permit) => {
                    sessions.spawn(session::run(conn, ctx.clone(), permit, closing_rx.clone()));
                }
                // Spawned here, not by the session itself, so the set tracks it (shutdown
                // waits for it, or aborts it) wherever it runs.
                Handoff::Moved(m) => match ctx.edge.shard_rt.get(m.shard) {
                    Some(rt) => {
                        sessions.spawn_on(session::resume(*m, ctx.clone(), closing_rx.clone()), rt);
                    }
                    None => drop(m),
                },
            },
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        ctx.metrics.accepted.inc();
                        sessions.spawn(start(stream, ctx.clone(), permit, closing_rx.clone()));
                    }
                    Err(_) => {
                        ctx.metrics.refused(Refusal::Limit);
                        tokio::spawn(refuse(stream, ctx.clone()));
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
    // No more hand-offs: an upgrade finishing now is dropped (its permit with it).
    drop(handoffs);
    let _ = closing_tx.send(true);
    let grace = Duration::from_secs(ctx.cfg.timeouts.shutdown_secs);
    if tokio::time::timeout(grace, async { while sessions.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(left = sessions.len(), "sessions did not close in time; aborting them");
        sessions.shutdown().await;
    }
}

/// A new TCP connection: the TLS handshake first where the port speaks TLS (within the
/// login timeout), then the session.
///
/// The handshake and the session are boxed: a future holds room for the largest state of
/// whatever it awaits inline for its whole life, so inline a plain session would carry the
/// room of a rustls handshake (and a refusal's linger buffer) for as long as it is open.
async fn start(stream: TcpStream, ctx: Arc<Ctx>, permit: OwnedSemaphorePermit, closing: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let conn = match ctx.edge.tls.clone().filter(|t| t.applies_to_tcp()) {
        None => Conn::Tcp(stream),
        Some(tls) => {
            let handshake = Box::pin(handshake(&tls, stream, &ctx));
            let Some(conn) = handshake.await else { return };
            conn
        }
    };
    let run = Box::pin(session::run(conn, ctx, permit, closing));
    run.await
}

/// The TLS handshake of a TLS-only port; `None` when it failed or the client spoke plain
/// bytes (answered with `TlsRequired`).
async fn handshake(tls: &super::tls::Tls, stream: TcpStream, ctx: &Ctx) -> Option<Conn> {
    match tls.accept(stream, ctx.cfg.login_timeout()).await {
        Ok(s) => Some(Conn::Tls(Box::new(s))),
        Err(Refused::Plain(stream)) => {
            ctx.metrics.refused(Refusal::TlsRequired);
            let frame = protocol::error(0, ErrorCode::TlsRequired, "this port speaks TLS only: connect with TLS");
            linger::close_with(stream, &frame, Duration::from_secs(2)).await;
            None
        }
        Err(Refused::Failed(e)) => {
            ctx.metrics.refused(Refusal::TlsHandshake);
            tracing::debug!(error = %e, "tls handshake failed");
            None
        }
    }
}

/// Answers a connection over the limit with an error frame and closes it (inside TLS where
/// the port speaks it, so the client can read why).
async fn refuse(stream: TcpStream, ctx: Arc<Ctx>) {
    let frame = protocol::error(0, ErrorCode::TooManyConnections, "too many connections");
    let within = Duration::from_secs(2);
    match ctx.edge.tls.as_ref().filter(|t| t.applies_to_tcp()) {
        None => linger::close_with(stream, &frame, within).await,
        Some(tls) => {
            if let Ok(mut s) = tls.accept(stream, within).await {
                let _ = tokio::time::timeout(within, async {
                    s.write_all(&frame).await?;
                    s.shutdown().await
                })
                .await;
                linger::until_acknowledged(s.get_ref().0, tokio::time::Instant::now() + within).await;
            }
        }
    }
}
