//! Groups this shard owns, read on first use (`group_state`): the record, every member (a
//! compact `Roster`, with what lives only in memory: members' receive positions), the last
//! message seq, join requests once asked for. A group's writes all come from its shard, so
//! once read, memory is the group's truth.

use std::collections::BTreeMap;

use crate::domain::group::{self, GroupRecord, JoinRequest, MemberRecord};
use crate::domain::ids::{AppId, ConvId, GroupId};
use crate::domain::DomainError;
use crate::shard::cmd::Actor;
use crate::shard::common::stored;

use super::roster::{Roster, Run};
use super::*;

/// The members of a group by the shard that owns them: one command per shard per message.
pub(in crate::shard) type Fanout = Vec<(usize, Run)>;

pub(in crate::shard) struct GroupState {
    pub rec: GroupRecord,
    /// The members, with their cumulative receive-acks ("received up to"): those only speed
    /// up the receipts answer, so they live in memory (a restart starts them at each
    /// member's read seq).
    pub members: Roster,
    /// The last message seq.
    pub head: u64,
    /// Join requests, read on first use.
    pub requests: Option<BTreeMap<u64, JoinRequest>>,
    /// Sends in the current second (for the app's per-group rate limit): (second, count).
    pub rate: (u64, u32),
    /// The shard's use stamp (`Shard::uses`) when the group was last used (see `evict_groups`).
    pub used: u64,
}

impl GroupState {
    /// What `by` may do here.
    pub fn acting(&self, by: &Actor) -> group::Acting {
        group::Acting { role: by.user.as_ref().and_then(|u| self.members.role(u)), app_admin: by.app_admin }
    }

    /// The group as it is now, shared, and its head: what a change hands to members' shards.
    pub fn snapshot(&self) -> (Arc<GroupRecord>, u64) {
        (Arc::new(self.rec.clone()), self.head)
    }

    /// The membership changed: the record's count follows.
    pub fn members_changed(&mut self) {
        self.rec.member_count = self.members.len() as u32;
    }
}

impl Shard {
    /// Over `limits.group_members_per_shard` members of loaded groups: like `evict_idle`, asks
    /// this shard to drop the least recently used groups (down to 90 %) once every write
    /// submitted so far is durable, so a group read again is the one memory had. What only
    /// memory held (receive positions) starts again from the members' read seqs.
    pub(in crate::shard) async fn evict_groups(&mut self) {
        let cap = self.cfg.limits.group_members_per_shard.max(1);
        let weight = |st: &GroupState| st.members.len() + 1;
        let total: usize = self.groups.values().map(weight).sum();
        if total <= cap {
            return;
        }
        let mut all: Vec<((AppId, GroupId), u64, usize)> =
            self.groups.iter().map(|(k, st)| (k.clone(), st.used, weight(st))).collect();
        all.sort_unstable_by_key(|(_, used, _)| *used);
        let mut excess = total - cap * 9 / 10;
        let mut groups = Vec::new();
        for (k, used, w) in all {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(w);
            groups.push((k, used));
        }
        let (router, me) = (self.router.clone(), self.id);
        self.after_pending(move |r| {
            if r.is_ok() {
                // A full inbox drops it; the next tick picks again.
                let _ = router.try_send(me, crate::shard::cmd::EvictGroups { groups }.into());
            }
        })
        .await;
    }

    /// Drops these groups, each unless used since it was picked.
    pub(in crate::shard) fn drop_groups(&mut self, c: crate::shard::cmd::EvictGroups) {
        let mut dropped = 0;
        for (key, stamp) in c.groups {
            if self.groups.get(&key).is_some_and(|st| st.used == stamp) {
                self.groups.remove(&key);
                dropped += 1;
            }
        }
        tracing::debug!(shard = self.id, dropped, loaded = self.groups.len(), "evicted groups");
    }

    /// A group this shard owns (`None`: never created), read from the store on first use.
    pub(in crate::shard) fn group_state(
        &mut self,
        app: AppId,
        g: &GroupId,
    ) -> Result<Option<&mut GroupState>, DomainError> {
        let key = (app, g.clone());
        self.uses += 1;
        if !self.groups.contains_key(&key) {
            let fail = stored("reading a group");
            let Some(raw) = self.store.group(app, g).map_err(fail)? else { return Ok(None) };
            let rec = GroupRecord::decode(&raw).map_err(|_| DomainError::StorageUnavailable)?;
            let mut members = Vec::new();
            for (u, v) in self.store.group_members(app, g).map_err(fail)? {
                members.push(MemberRecord::decode(u, &v).map_err(|_| DomainError::StorageUnavailable)?);
            }
            let members = Roster::new(app, self.router.len(), members);
            let head = self.store.conv_head(app, &ConvId::Group(g.clone())).map_err(fail)?;
            let st = GroupState { rec, members, head, requests: None, rate: (0, 0), used: 0 };
            self.groups.insert(key.clone(), st);
        }
        let uses = self.uses;
        // The stamp eviction checks: a group used after it was picked is kept.
        let st = self.groups.get_mut(&key);
        if let Some(st) = st {
            st.used = uses;
            return Ok(Some(st));
        }
        Ok(None)
    }

    /// A group that exists and is not destroyed.
    pub(in crate::shard) fn live_group(&mut self, app: AppId, g: &GroupId) -> Result<&mut GroupState, DomainError> {
        match self.group_state(app, g)? {
            None => Err(DomainError::GroupNotFound),
            Some(st) if st.rec.destroyed => Err(DomainError::GroupDestroyed),
            Some(st) => Ok(st),
        }
    }

    /// The members of a loaded group by shard (`GroupState::fanout`).
    pub(in crate::shard) fn group_fanout(&mut self, app: AppId, g: &GroupId) -> Option<Fanout> {
        let uses = self.uses;
        self.groups.get_mut(&(app, g.clone())).map(|st| {
            st.used = uses;
            st.members.fanout()
        })
    }

    /// A group's join requests, read on first use.
    pub(in crate::shard) fn group_requests(
        &mut self,
        app: AppId,
        g: &GroupId,
    ) -> Result<&mut BTreeMap<u64, JoinRequest>, DomainError> {
        let store = self.store.clone();
        let st = self.live_group(app, g)?;
        if st.requests.is_none() {
            let mut map = BTreeMap::new();
            for v in store.join_requests(app, g).map_err(stored("reading join requests"))? {
                let r = JoinRequest::decode(g.clone(), &v).map_err(|_| DomainError::StorageUnavailable)?;
                map.insert(r.id, r);
            }
            st.requests = Some(map);
        }
        Ok(st.requests.get_or_insert_with(BTreeMap::new))
    }
}
