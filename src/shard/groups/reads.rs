//! Reading groups: one group with a page of its members, roles of given users, the muted
//! members, and (from the store, on any shard) an app's groups. Answers wait behind the
//! shard's writes in flight (`after_pending`), so nobody reads a change that could be lost.

use crate::domain::group::{self, GroupRecord, MemberRecord};
use crate::domain::page::{self, WireSize};
use crate::domain::DomainError;
use crate::protocol::wire::GroupType;
use crate::shard::cmd::{GetAllGroups, GetGroup, GetMuted, GetRoles};
use crate::shard::common::{or_reply, stored};
use crate::shard::state::Shard;

impl WireSize for MemberRecord {
    fn wire_size(&self) -> usize {
        page::TABLE + self.user.as_str().len() + self.alias.len() + self.extra.len()
    }
}

impl WireSize for crate::domain::group::JoinRequest {
    fn wire_size(&self) -> usize {
        page::TABLE + self.group.as_str().len() + self.user.as_str().len() + self.message.len()
    }
}

impl WireSize for GroupRecord {
    fn wire_size(&self) -> usize {
        page::TABLE * 2
            + self.id.as_str().len()
            + self.owner.as_str().len()
            + self.name.len()
            + self.avatar.len()
            + self.introduction.len()
            + self.notification.len()
            + self.extra.len()
    }
}

impl Shard {
    pub(in crate::shard) async fn get_group(&mut self, c: GetGroup) {
        let GetGroup { app, group, by, after, limit, members_only, reply } = c;
        let st = match self.group_state(app, &group) {
            Ok(Some(st)) => st,
            Ok(None) => {
                let _ = reply.send(Err(DomainError::GroupNotFound));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let who = st.acting(&by);
        // A destroyed group has no members left to show it to: app administrators still
        // read its record (destroyed = true); everyone else learns only that it is gone.
        if st.rec.destroyed && !who.app_admin {
            let _ = reply.send(Err(DomainError::GroupDestroyed));
            return;
        }
        or_reply!(reply, group::view_info(&st.rec, who));
        let mut members = Vec::new();
        let mut more = false;
        if members_only {
            or_reply!(reply, group::view_members(who));
        }
        if limit > 0 && !st.rec.destroyed && who.member() {
            (members, more) = st.members.page(after.as_ref(), limit);
            more |= page::cut(&mut members, page::PAGE_BYTES - st.rec.wire_size());
        }
        let rec = st.rec.clone();
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| (rec, members, more)));
        })
        .await;
    }

    pub(in crate::shard) async fn get_roles(&mut self, c: GetRoles) {
        let GetRoles { app, group, by, users, reply } = c;
        let st = or_reply!(reply, self.live_group(app, &group));
        or_reply!(reply, group::view_members(st.acting(&by)));
        let found: Vec<MemberRecord> = users.iter().filter_map(|u| st.members.get(u).map(|m| m.record())).collect();
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| found));
        })
        .await;
    }

    pub(in crate::shard) async fn get_muted(&mut self, c: GetMuted) {
        let GetMuted { app, group, by, reply } = c;
        let now = crate::now_ms();
        let st = or_reply!(reply, self.live_group(app, &group));
        or_reply!(reply, group::view_members(st.acting(&by)));
        let mut muted: Vec<MemberRecord> = st.members.muted(now);
        page::cut(&mut muted, page::PAGE_BYTES);
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| muted));
        })
        .await;
    }

    /// An app's groups from the store (any shard may answer: a group's record is written by
    /// its own shard, and what is read here is what the store has).
    pub(in crate::shard) fn get_all_groups(&mut self, c: GetAllGroups) {
        let GetAllGroups { app, kind, after, limit, reply } = c;
        let mut out = Vec::new();
        let mut cursor = after;
        // Filtering by type skips records; read on in pages until the page is full.
        loop {
            let (raw, more) =
                or_reply!(reply, self.store.app_groups(app, cursor.as_ref(), limit).map_err(stored("listing groups")));
            for v in &raw {
                let g = or_reply!(reply, GroupRecord::decode(v).map_err(|_| DomainError::StorageUnavailable));
                cursor = Some(g.id.clone());
                if kind == GroupType::Any || g.kind == kind {
                    out.push(g);
                    if out.len() == limit {
                        let more = more || raw.last().map(|l| l != v).unwrap_or(false);
                        let cut = page::cut(&mut out, page::PAGE_BYTES);
                        let _ = reply.send(Ok((out, more || cut)));
                        return;
                    }
                }
            }
            if !more {
                let cut = page::cut(&mut out, page::PAGE_BYTES);
                let _ = reply.send(Ok((out, cut)));
                return;
            }
        }
    }
}
