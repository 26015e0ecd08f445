//! Asking shards: one (`ask`), several by user (`scatter`), or all (`broadcast_facts`).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::domain::ids::{AppId, UserId};
use crate::domain::DomainError;
use crate::shard::cmd::{FactsList, Reply};
use crate::shard::{Router, ShardCmd};

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

/// Replicates changed user facts to every shard and waits until all have applied them, so
/// that once the change is acknowledged no shard decides on the old facts.
pub async fn broadcast_facts(router: &Router, app: AppId, facts: FactsList) {
    if facts.is_empty() {
        return;
    }
    let facts = Arc::new(facts);
    let mut waits = Vec::with_capacity(router.len());
    for shard in 0..router.len() {
        let (tx, rx) = oneshot::channel();
        if router.send(shard, ShardCmd::SetFacts { app, facts: facts.clone(), done: tx }).await.is_ok() {
            waits.push(rx);
        }
    }
    for rx in waits {
        let _ = rx.await;
    }
}
