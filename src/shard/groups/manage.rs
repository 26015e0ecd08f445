//! Changing a group: its fields, its members (add, kick, leave, alias/role, mutes), its
//! owner, its end. Each handler checks the rule (`domain::group`), changes memory, writes one
//! batch, answers once it is durable and hands the effect to the members' shards.

use std::sync::Arc;

use crate::callbacks::Event;
use crate::domain::group::{self, MemberLimits};
use crate::domain::ids::{AppId, UserId};
use crate::domain::DomainError;
use crate::protocol::wire::GroupRole;
use crate::shard::cmd::{
    AddMembers, ChangeOwner, DestroyGroup, MuteMembers, RemoveMembers, Side, UpdateGroup, UpdateMember,
};
use crate::shard::common::or_reply;
use crate::shard::state::Shard;
use crate::store::Batch;

use super::{event_push, Effect};

impl Shard {
    /// The member limits of `app` (its default, the server's ceiling).
    pub(in crate::shard) fn member_limits(&self, app: AppId) -> MemberLimits {
        let default = self.cfg.app(app).map_or(self.cfg.limits.group_default_members, |a| a.group_max_members);
        MemberLimits { default, ceiling: self.cfg.limits.group_max_members }
    }

    pub(in crate::shard) async fn update_group(&mut self, c: UpdateGroup) {
        let hooks = self.hooks();
        let UpdateGroup { app, group, by, change, event, reply } = c;
        let limits = self.member_limits(app);
        let st = or_reply!(reply, self.live_group(app, &group));
        let who = st.acting(&by);
        let rec = match or_reply!(reply, group::update(&st.rec, &change, who, limits)) {
            Some(r) => r,
            None => {
                let same = st.rec.clone();
                self.after_pending(move |r| {
                    let _ = reply.send(r.map(|()| same));
                })
                .await;
                return;
            }
        };
        st.rec = rec.clone();
        let head = st.head;
        // Every member's JoinedGroups entry moves, so an offline device learns the change.
        let changed =
            st.members.iter().map(|m| (m.user.clone(), Side::Member { visible_from: m.visible_from(&rec) })).collect();
        let effect = Effect { changed, told: Vec::new(), event: Some(event_push(event, by.user.as_ref(), &[], &rec)) };
        let mut batch = Batch::default();
        batch.put_group(app, &group, rec.encode());
        effect.intents(&mut batch, app, &group, rec.version);
        let hook = (app, Event::GroupAfterGroupInfoChanged, &by);
        Shard::report_group(&hooks, &mut batch, hook, (&rec, &[]), &[]);
        let snapshot = (Arc::new(rec.clone()), head);
        self.commit_change(app, snapshot, batch, effect, reply, rec).await;
    }

    pub(in crate::shard) async fn add_members(&mut self, c: AddMembers) {
        let hooks = self.hooks();
        let AddMembers { app, group, by, members, silent, import, reply } = c;
        let ids: Vec<UserId> = members.iter().map(|m| m.user.clone()).collect();
        let checks = or_reply!(reply, self.check_joiners(app, &ids));
        let now = crate::now_ms();
        let st = or_reply!(reply, self.live_group(app, &group));
        let who = st.acting(&by);
        if import {
            or_reply!(reply, if who.app_admin { Ok(()) } else { Err(DomainError::PermissionDenied) });
        } else {
            or_reply!(reply, group::invite(&st.rec, who, 0));
        }
        let mut outcomes = Vec::with_capacity(members.len());
        let mut fresh = Vec::new();
        for (mut m, check) in members.into_iter().zip(checks) {
            let r = match check {
                Ok(())
                    if st.members.contains(&m.user) || fresh.iter().any(|f: &group::MemberRecord| f.user == m.user) =>
                {
                    Err(DomainError::AlreadyGroupMember)
                }
                r => r,
            };
            if r.is_ok() {
                let (join_ms, role) = if import { (m.join_ms, m.role) } else { (now, GroupRole::Member) };
                let role = if role == GroupRole::Owner { GroupRole::Admin } else { role };
                let (alias, extra, mute) = (std::mem::take(&mut m.alias), std::mem::take(&mut m.extra), m.mute_end_ms);
                m = group::MemberRecord::new(m.user, role, join_ms, st.head);
                (m.alias, m.extra, m.mute_end_ms) = (alias, extra, if import { mute } else { 0 });
                fresh.push(m.clone());
            }
            outcomes.push((m.user, r));
        }
        if fresh.is_empty() {
            let _ = reply.send(Ok(outcomes));
            return;
        }
        or_reply!(reply, group::room(&st.rec, fresh.len()));
        let told: Vec<UserId> = if silent || import { Vec::new() } else { st.members.ids().cloned().collect() };
        let mut batch = Batch::default();
        let added: Vec<UserId> = fresh.iter().map(|m| m.user.clone()).collect();
        let mut changed = Vec::with_capacity(fresh.len());
        for m in &fresh {
            batch.put_group_member(app, &group, &m.user, m.encode());
            changed.push((m.user.clone(), Side::Member { visible_from: m.visible_from(&st.rec) }));
        }
        st.members.add(fresh);
        st.members_changed();
        st.rec.version += 1;
        batch.put_group(app, &group, st.rec.encode());
        let event = (!silent && !import).then(|| event_push("members_added", by.user.as_ref(), &added, &st.rec));
        let effect = Effect { changed, told, event };
        effect.intents(&mut batch, app, &group, st.rec.version);
        let snapshot = st.snapshot();
        if !import {
            let hook = (app, Event::GroupAfterNewMemberJoin, &by);
            Shard::report_group(&hooks, &mut batch, hook, (&snapshot.0, &added), &[("JoinType", "Invited".into())]);
        }
        self.commit_change(app, snapshot, batch, effect, reply, outcomes).await;
    }

    /// Kicks `users`, or the actor leaves (`exit`).
    pub(in crate::shard) async fn remove_members(&mut self, c: RemoveMembers) {
        let hooks = self.hooks();
        let RemoveMembers { app, group, by, users, exit, reply } = c;
        let st = or_reply!(reply, self.live_group(app, &group));
        let who = st.acting(&by);
        let mut outcomes = Vec::with_capacity(users.len());
        if exit {
            or_reply!(reply, group::exit(who.role));
        } else {
            // Only those who outrank a plain member kick at all.
            or_reply!(reply, group::act_on(who, GroupRole::Member));
        }
        let mut gone = Vec::new();
        for u in users {
            let r = match st.members.role(&u) {
                None => Err(DomainError::NotGroupMember),
                Some(_) if gone.contains(&u) => Err(DomainError::NotGroupMember),
                Some(role) if exit => group::exit(Some(role)),
                Some(_) if by.user.as_ref() == Some(&u) => {
                    Err(DomainError::InvalidArgument("kicking oneself: exit the group"))
                }
                Some(role) => group::act_on(who, role),
            };
            if r.is_ok() {
                gone.push(u.clone());
            }
            outcomes.push((u, r));
        }
        if gone.is_empty() {
            let _ = reply.send(Ok(outcomes));
            return;
        }
        let mut batch = Batch::default();
        for u in &gone {
            batch.delete_group_member(app, &group, u);
        }
        st.members.remove(&gone);
        st.members_changed();
        st.rec.version += 1;
        batch.put_group(app, &group, st.rec.encode());
        let kind = if exit { "exited" } else { "members_removed" };
        let event = event_push(kind, by.user.as_ref(), &gone, &st.rec);
        let told = st.members.ids().cloned().collect();
        let exit_type = [("ExitType", if exit { "Quit" } else { "Kicked" }.into())];
        let hook = (app, Event::GroupAfterMemberExit, &by);
        Shard::report_group(&hooks, &mut batch, hook, (&st.rec, &gone), &exit_type);
        let effect = Effect { changed: gone.into_iter().map(|u| (u, Side::Gone)).collect(), told, event: Some(event) };
        effect.intents(&mut batch, app, &group, st.rec.version);
        let snapshot = st.snapshot();
        self.commit_change(app, snapshot, batch, effect, reply, outcomes).await;
    }

    pub(in crate::shard) async fn update_member(&mut self, c: UpdateMember) {
        let UpdateMember { app, group, by, target, change, reply } = c;
        let st = or_reply!(reply, self.live_group(app, &group));
        let who = st.acting(&by);
        let Some(current) = st.members.get(&target).map(|m| m.record()) else {
            let _ = reply.send(Err(DomainError::NotGroupMember));
            return;
        };
        let is_self = by.user.as_ref() == Some(&target);
        let Some(m) = or_reply!(reply, group::update_member(&current, &change, who, is_self)) else {
            let same = current;
            self.after_pending(move |r| {
                let _ = reply.send(r.map(|()| same));
            })
            .await;
            return;
        };
        st.members.put(m.clone());
        let mut batch = Batch::default();
        batch.put_group_member(app, &group, &target, m.encode());
        let told = st.members.ids().cloned().collect();
        let effect = Effect::push(told, event_push("member_updated", by.user.as_ref(), &[target], &st.rec));
        let snapshot = st.snapshot();
        self.commit_change(app, snapshot, batch, effect, reply, m).await;
    }

    /// The group ends: no member is left, no message is taken; the record stays (destroyed),
    /// so its id is never reused.
    pub(in crate::shard) async fn destroy_group(&mut self, c: DestroyGroup) {
        let hooks = self.hooks();
        let DestroyGroup { app, group, by, reply } = c;
        let st = or_reply!(reply, self.live_group(app, &group));
        or_reply!(reply, group::destroy(st.acting(&by)));
        let mut batch = Batch::default();
        let gone: Vec<UserId> = st.members.take_all();
        for u in &gone {
            batch.delete_group_member(app, &group, u);
        }
        st.members_changed();
        st.rec.destroyed = true;
        st.rec.version += 1;
        batch.put_group(app, &group, st.rec.encode());
        let event = event_push("destroyed", by.user.as_ref(), &[], &st.rec);
        let hook = (app, Event::GroupAfterGroupDestroyed, &by);
        Shard::report_group(&hooks, &mut batch, hook, (&st.rec, &[]), &[]);
        let effect = Effect {
            changed: gone.into_iter().map(|u| (u, Side::Gone)).collect(),
            told: Vec::new(),
            event: Some(event),
        };
        effect.intents(&mut batch, app, &group, st.rec.version);
        let snapshot = st.snapshot();
        self.commit_change(app, snapshot, batch, effect, reply, ()).await;
    }

    pub(in crate::shard) async fn mute_members(&mut self, c: MuteMembers) {
        let MuteMembers { app, group, by, users, secs, reply } = c;
        let end = group::mute_end(crate::now_ms(), secs);
        let st = or_reply!(reply, self.live_group(app, &group));
        let who = st.acting(&by);
        or_reply!(reply, group::act_on(who, GroupRole::Member));
        let mut batch = Batch::default();
        let mut outcomes = Vec::with_capacity(users.len());
        let mut muted = Vec::new();
        for u in users {
            let r = match st.members.get(&u).map(|m| m.record()) {
                None => Err(DomainError::NotGroupMember),
                Some(mut m) => group::act_on(who, m.role).map(|()| {
                    m.mute_end_ms = end;
                    batch.put_group_member(app, &group, &u, m.encode());
                    st.members.put(m);
                    muted.push(u.clone());
                }),
            };
            outcomes.push((u, r));
        }
        if muted.is_empty() {
            let _ = reply.send(Ok(outcomes));
            return;
        }
        let told = st.members.ids().cloned().collect();
        let kind = if secs == 0 { "unmuted" } else { "muted" };
        let effect = Effect::push(told, event_push(kind, by.user.as_ref(), &muted, &st.rec));
        let snapshot = st.snapshot();
        self.commit_change(app, snapshot, batch, effect, reply, outcomes).await;
    }

    pub(in crate::shard) async fn change_owner(&mut self, c: ChangeOwner) {
        let hooks = self.hooks();
        let ChangeOwner { app, group, by, new_owner, reply } = c;
        let st = or_reply!(reply, self.live_group(app, &group));
        let who = st.acting(&by);
        or_reply!(reply, group::change_owner(who, st.members.role(&new_owner)));
        let old = st.rec.owner.clone();
        let mut batch = Batch::default();
        for (u, role) in [(&old, GroupRole::Member), (&new_owner, GroupRole::Owner)] {
            if let Some(mut m) = st.members.get(u).map(|m| m.record()) {
                m.role = role;
                batch.put_group_member(app, &group, u, m.encode());
                st.members.put(m);
            }
        }
        st.rec.owner = new_owner.clone();
        st.rec.version += 1;
        batch.put_group(app, &group, st.rec.encode());
        let rec = &st.rec;
        let changed =
            st.members.iter().map(|m| (m.user.clone(), Side::Member { visible_from: m.visible_from(rec) })).collect();
        let owners = [old, new_owner];
        let event = event_push("owner_changed", by.user.as_ref(), &owners, rec);
        let hook = (app, Event::GroupAfterChangeGroupOwner, &by);
        Shard::report_group(&hooks, &mut batch, hook, (rec, &owners), &[]);
        let effect = Effect { changed, told: Vec::new(), event: Some(event) };
        effect.intents(&mut batch, app, &group, st.rec.version);
        let snapshot = st.snapshot();
        self.commit_change(app, snapshot, batch, effect, reply, ()).await;
    }
}
