//! Shard handlers for groups, by the side that runs them.
//!
//! The group's shard (`Router::conv_shard` of `ConvId::Group`) owns the record, the members
//! and the message seq (`state::GroupState`), and runs every operation on them: `create`
//! (create, import), `manage` (update, add, remove, member changes, destroy, mutes,
//! ownership), `requests` (join requests), `reads`. Each change is one batch: the record,
//! the members it touched, and an intent record (`group_sync`) per member whose own side
//! changes; once that batch is handed to the writer, the group's shard sends each member
//! shard one `GroupSync` with that shard's members (`route_sync`).
//!
//! The members' shards run `side`: they bring each member's joined-groups list and
//! conversation entry to the group's state, delete the intents in the same batch, and push
//! the event once it is durable. A crash in between leaves the intents, replayed at
//! start-up from the stored state, so an acknowledged change always reaches every member's
//! side, exactly once (a side already at the group's version is left as it is).
//! Group messages are in `shard::messages::group`.

mod create;
mod manage;
mod reads;
mod requests;
mod side;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::domain::group::GroupRecord;
use crate::domain::ids::{AppId, GroupId, UserId};
use crate::domain::user;
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::{GroupSync, Reply, Side, SyncUser};
use crate::shard::state::Shard;
use crate::store::Batch;

/// A `GroupEventPush`: `kind` happened to `users` by `actor`; `rec` is the group after it.
pub(in crate::shard) fn event_push(kind: &str, actor: Option<&UserId>, users: &[UserId], rec: &GroupRecord) -> Bytes {
    protocol::push(|fbb| {
        let group_id = Some(fbb.create_string(rec.id.as_str()));
        let kind = Some(fbb.create_string(kind));
        let actor = actor.map(|a| fbb.create_string(a.as_str()));
        let list: Vec<_> = users.iter().map(|u| fbb.create_string(u.as_str())).collect();
        let users = Some(fbb.create_vector(&list));
        let group = Some(dw::group_info(fbb, rec, 0));
        let p = wire::GroupEventPush::create(fbb, &wire::GroupEventPushArgs { group_id, kind, actor, users, group });
        (wire::Push::GroupEventPush, p.as_union_value())
    })
}

/// A change's effect on members: whose side changes (with their intent records), who only
/// hears of it.
pub(in crate::shard) struct Effect {
    pub changed: Vec<(UserId, Side)>,
    pub told: Vec<UserId>,
    pub event: Option<Bytes>,
}

impl Effect {
    /// Only a push to `told`.
    pub fn push(told: Vec<UserId>, event: Bytes) -> Effect {
        Effect { changed: Vec::new(), told, event: Some(event) }
    }

    /// Writes the intent records of the changed members (at the group's new version).
    pub fn intents(&self, batch: &mut Batch, app: AppId, g: &GroupId, version: u64) {
        for (u, _) in &self.changed {
            batch.put_group_sync(app, u, g, version);
        }
    }
}

impl Shard {
    /// Commits a group change, answers `reply` with `value` once it is durable, and hands its
    /// effect to the members' shards (`snapshot`: the group after it, and its head).
    pub(in crate::shard) async fn commit_change<T: Send + 'static>(
        &mut self,
        app: AppId,
        snapshot: (Arc<GroupRecord>, u64),
        batch: Batch,
        effect: Effect,
        reply: Reply<Result<T, DomainError>>,
        value: T,
    ) {
        self.commit(batch, move |r| {
            let _ = reply.send(r.map(|()| value));
        })
        .await;
        self.route_sync(app, snapshot.0, snapshot.1, effect);
    }

    /// Hands a change's effect to the members' shards: one `GroupSync` per shard (held behind
    /// the commit just made, so it can never be carried out before the change is durable).
    pub(in crate::shard) fn route_sync(&mut self, app: AppId, rec: Arc<GroupRecord>, head: u64, e: Effect) {
        let Effect { changed, told, event } = e;
        let version = rec.version;
        let mut by: BTreeMap<usize, Vec<SyncUser>> = BTreeMap::new();
        for (user, side) in changed {
            by.entry(self.router.user_shard(app, &user)).or_default().push(SyncUser {
                user,
                side,
                intents: vec![version],
            });
        }
        if event.is_some() {
            for user in told {
                let shard = self.router.user_shard(app, &user);
                by.entry(shard).or_default().push(SyncUser { user, side: Side::Unchanged, intents: Vec::new() });
            }
        }
        for (shard, users) in by {
            let cmd = GroupSync { app, group: rec.clone(), head, users, event: event.clone() };
            self.send_to(shard, cmd.into());
        }
    }

    /// Users who may become members: each exists and is not deleted.
    pub(in crate::shard) fn check_joiners(
        &mut self,
        app: AppId,
        users: &[UserId],
    ) -> Result<Vec<Result<(), DomainError>>, DomainError> {
        users
            .iter()
            .map(|u| match self.facts_of(app, u) {
                Ok(f) => Ok(user::check_receiver(f.as_ref())),
                Err(e) => Err(e),
            })
            .collect()
    }
}
