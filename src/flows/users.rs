//! Admin changes to users that other shards must hear of before the change is answered:
//! shards cache the send-relevant facts of the users they check sends for (deleted,
//! forbidden, silenced), so once the owner's write is durable every shard is told to drop its
//! copy (the next check reads the store). Both steps are idempotent (dropping a copy twice
//! changes nothing; a re-import or re-delete of the same user writes the same state), so a
//! retry after a cut completes the change.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::user::{UserChange, UserRecord};
use crate::domain::DomainError;
use crate::shard::cmd::{Caller, ChangedUsers, DeleteUsers, FactsChanged, ImportUsers, ModifyUser};
use crate::shard::gather::{ask, by_user, scatter};
use crate::shard::Router;

/// Each user's outcome, by user (a user whose shard stopped is absent).
pub type Outcomes = HashMap<UserId, Result<(), DomainError>>;

/// Imports `users` on their shards, then tells every shard their facts changed.
pub async fn import(router: Router, app: AppId, users: Vec<UserRecord>) -> Outcomes {
    let keyed = users.into_iter().map(|u| (u.id.clone(), u)).collect();
    let answers = scatter(&router, app, keyed, |users, reply| ImportUsers { app, users, reply }.into()).await;
    let (outcomes, facts): (Vec<_>, Vec<_>) = answers.into_iter().unzip();
    facts_changed(&router, app, facts.into_iter().flatten().collect()).await;
    by_user(outcomes)
}

/// Soft-deletes `users` on their shards, then tells every shard their facts changed.
pub async fn delete(router: Router, app: AppId, users: Vec<UserId>) -> Outcomes {
    let keyed = users.into_iter().map(|u| (u.clone(), u)).collect();
    let answers = scatter(&router, app, keyed, |users, reply| DeleteUsers { app, users, reply }.into()).await;
    let (outcomes, facts): (Vec<_>, Vec<_>) = answers.into_iter().unzip();
    facts_changed(&router, app, facts.into_iter().flatten().collect()).await;
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
    /// Who asked (after-hook events name them).
    pub by: Caller,
}

/// Changes a profile on its shard, then tells every shard if the user's facts moved.
pub async fn modify(router: Router, m: Modify) -> Result<UserRecord, DomainError> {
    let Modify { app, user, change, by_admin, origin, by } = m;
    let shard = router.user_shard(app, &user);
    let (rec, facts) =
        ask(&router, shard, |reply| ModifyUser { app, user, change, by_admin, origin, by, reply }.into()).await??;
    facts_changed(&router, app, facts).await;
    Ok(rec)
}

/// Tells every shard that `users`' facts changed (durably, since the owner answers only
/// then) and waits until all have dropped their copies, so that once the change is
/// acknowledged no shard decides on the old facts: a shard's next check reads the store.
async fn facts_changed(router: &Router, app: AppId, users: ChangedUsers) {
    if users.is_empty() {
        return;
    }
    let users = Arc::new(users);
    let mut waits = Vec::with_capacity(router.len());
    for shard in 0..router.len() {
        let (tx, rx) = oneshot::channel();
        if router.send(shard, FactsChanged { app, users: users.clone(), done: tx }.into()).await.is_ok() {
            waits.push(rx);
        }
    }
    for rx in waits {
        let _ = rx.await;
    }
}
