//! Asking shards and waiting for their answers: one (`ask`) or several by user (`scatter`).
//! Used by `net::dispatch` for one-step requests and by `flows` for each step of a sequence.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::domain::ids::{AppId, UserId};
use crate::domain::DomainError;
use crate::shard::cmd::Reply;
use crate::shard::cmd::ShardCmd;
use crate::shard::router::Router;

/// Asks one shard and waits for its answer.
pub async fn ask<T>(router: &Router, shard: usize, make: impl FnOnce(Reply<T>) -> ShardCmd) -> Result<T, DomainError> {
    let (tx, rx) = oneshot::channel();
    router.send(shard, make(tx)).await.map_err(|_| DomainError::ShuttingDown)?;
    rx.await.map_err(|_| DomainError::ShuttingDown)
}

/// Splits `items` (keyed by user) by owning shard, asks each shard with `make`, and returns
/// every shard's answer. A shard that stopped answers nothing (callers report `ShuttingDown`).
pub async fn scatter<T, R>(
    router: &Router,
    app: AppId,
    items: Vec<(UserId, T)>,
    make: impl Fn(Vec<T>, Reply<R>) -> ShardCmd,
) -> Vec<R> {
    let mut by_shard: HashMap<usize, Vec<T>> = HashMap::new();
    for (u, t) in items {
        by_shard.entry(router.user_shard(app, &u)).or_default().push(t);
    }
    let mut waits = Vec::with_capacity(by_shard.len());
    for (shard, part) in by_shard {
        let (tx, rx) = oneshot::channel();
        if router.send(shard, make(part, tx)).await.is_ok() {
            waits.push(rx);
        }
    }
    let mut out = Vec::with_capacity(waits.len());
    for rx in waits {
        if let Ok(r) = rx.await {
            out.push(r);
        }
    }
    out
}

/// Per-user answers gathered from several shards, by user.
pub fn by_user<T>(answers: impl IntoIterator<Item = Vec<(UserId, T)>>) -> HashMap<UserId, T> {
    answers.into_iter().flatten().collect()
}
