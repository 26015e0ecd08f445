//! Admin changes to users that other shards must hear of before the change is answered:
//! every shard keeps the send-relevant facts of every user (deleted, forbidden, silenced,
//! friend policy), so the owner's write is followed by replicating the facts to all shards.
//! Both steps are idempotent (facts carry a version; a re-import or re-delete of the same user
//! writes the same state), so a retry after a cut completes the change.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::user::{UserChange, UserRecord};
use crate::domain::DomainError;
use crate::shard::cmd::{DeleteUsers, FactsList, ImportUsers, ModifyUser, SetFacts};
use crate::shard::gather::{ask, by_user, scatter};
use crate::shard::Router;

/// Each user's outcome, by user (a user whose shard stopped is absent).
pub type Outcomes = HashMap<UserId, Result<(), DomainError>>;

/// Imports `users` on their shards, then replicates their facts.
pub async fn import(router: Router, app: AppId, users: Vec<UserRecord>) -> Outcomes {
    let keyed = users.into_iter().map(|u| (u.id.clone(), u)).collect();
    let answers = scatter(&router, app, keyed, |users, reply| ImportUsers { app, users, reply }.into()).await;
    let (outcomes, facts): (Vec<_>, Vec<_>) = answers.into_iter().unzip();
    replicate_facts(&router, app, facts.into_iter().flatten().collect()).await;
    by_user(outcomes)
}

/// Soft-deletes `users` on their shards, then replicates their facts.
pub async fn delete(router: Router, app: AppId, users: Vec<UserId>) -> Outcomes {
    let keyed = users.into_iter().map(|u| (u.clone(), u)).collect();
    let answers = scatter(&router, app, keyed, |users, reply| DeleteUsers { app, users, reply }.into()).await;
    let (outcomes, facts): (Vec<_>, Vec<_>) = answers.into_iter().unzip();
    replicate_facts(&router, app, facts.into_iter().flatten().collect()).await;
    by_user(outcomes)
}

/// A profile change: `by_admin` may change the admin-only flags; `origin` gets the answer,
/// not the push.
pub struct Modify {
    pub app: AppId,
    pub user: UserId,
    pub change: UserChange,
    pub by_admin: bool,
    pub origin: Option<ConnId>,
}

/// Changes a profile on its shard, then replicates the user's facts if they moved.
pub async fn modify(router: Router, m: Modify) -> Result<UserRecord, DomainError> {
    let Modify { app, user, change, by_admin, origin } = m;
    let shard = router.user_shard(app, &user);
    let (rec, facts) =
        ask(&router, shard, |reply| ModifyUser { app, user, change, by_admin, origin, reply }.into()).await??;
    replicate_facts(&router, app, facts).await;
    Ok(rec)
}

/// Replicates changed user facts to every shard and waits until all have applied them, so
/// that once the change is acknowledged no shard decides on the old facts.
async fn replicate_facts(router: &Router, app: AppId, facts: FactsList) {
    if facts.is_empty() {
        return;
    }
    let facts = Arc::new(facts);
    let mut waits = Vec::with_capacity(router.len());
    for shard in 0..router.len() {
        let (tx, rx) = oneshot::channel();
        if router.send(shard, SetFacts { app, facts: facts.clone(), done: tx }.into()).await.is_ok() {
            waits.push(rx);
        }
    }
    for rx in waits {
        let _ = rx.await;
    }
}
