//! Creating a group (with its first members), or importing one (given roles and join times,
//! nobody told).

use std::sync::Arc;

use crate::callbacks::Event;
use crate::domain::group::{GroupRecord, MemberRecord};
use crate::domain::DomainError;
use crate::protocol::wire::GroupRole;
use crate::shard::cmd::{CreateGroup, Side};
use crate::shard::common::or_reply;
use crate::shard::state::{GroupState, Shard};
use crate::store::Batch;

use super::{event_push, Effect};

impl Shard {
    pub(in crate::shard) async fn create_group(&mut self, c: CreateGroup) {
        let CreateGroup { app, mut rec, by, members, import, reply } = c;
        if or_reply!(reply, self.group_state(app, &rec.id)).is_some() {
            let _ = reply.send(Err(DomainError::GroupExists));
            return;
        }
        let owner = rec.owner.clone();
        if let Some(Err(e)) = or_reply!(reply, self.check_joiners(app, std::slice::from_ref(&owner))).pop() {
            let _ = reply.send(Err(e));
            return;
        }
        let ids: Vec<_> = members.iter().map(|m| m.user.clone()).collect();
        let checks = or_reply!(reply, self.check_joiners(app, &ids));
        let now = crate::now_ms();
        let mut joined = std::collections::BTreeMap::new();
        let own = MemberRecord::new(owner.clone(), GroupRole::Owner, if import { rec.create_ms } else { now }, 0);
        let mut outcomes = Vec::with_capacity(members.len());
        for (mut m, check) in members.into_iter().zip(checks) {
            let user = m.user.clone();
            let r = match check {
                Err(e) => Err(e),
                Ok(()) if m.user == owner || joined.contains_key(&m.user) => Err(DomainError::AlreadyGroupMember),
                Ok(()) => Ok(()),
            };
            if r.is_ok() {
                if !import {
                    m = MemberRecord::new(m.user, GroupRole::Member, now, 0);
                } else if m.role == GroupRole::Owner {
                    m.role = GroupRole::Admin;
                }
                joined.insert(m.user.clone(), m);
            }
            outcomes.push((user, r));
        }
        joined.insert(owner.clone(), own);
        if joined.len() > rec.max_members as usize {
            let _ = reply.send(Err(DomainError::GroupFull));
            return;
        }
        rec.member_count = joined.len() as u32;
        let mut batch = Batch::default();
        batch.put_group(app, &rec.id, rec.encode());
        for m in joined.values() {
            batch.put_group_member(app, &rec.id, &m.user, m.encode());
        }
        let added: Vec<_> = joined.keys().cloned().collect();
        let event = (!import).then(|| event_push("created", by.user.as_ref(), &added, &rec));
        if !import {
            let hook = (app, Event::GroupAfterCreateGroup, &by);
            Shard::report_group(&self.hooks(), &mut batch, hook, (&rec, &added), &[]);
        }
        let changed = added.iter().map(|u| (u.clone(), Side::Member { visible_from: 1 })).collect();
        let effect = Effect { changed, told: Vec::new(), event };
        effect.intents(&mut batch, app, &rec.id, rec.version);
        let shared = Arc::new(rec.clone());
        let members = crate::shard::state::Roster::new(app, self.router.len(), joined.into_values());
        let mut st = GroupState::new(rec, members);
        self.uses += 1;
        st.used = self.uses;
        self.groups.insert((app, shared.id.clone()), st);
        self.commit_change(app, (shared, 0), batch, effect, reply, outcomes).await;
    }
}

impl GroupState {
    /// A group just created: every member known, no message yet.
    pub(in crate::shard) fn new(rec: GroupRecord, members: crate::shard::state::Roster) -> GroupState {
        GroupState { rec, members, head: 0, requests: Some(Default::default()), rate: (0, 0), used: 0 }
    }
}
