//! A group's members in memory, kept small: a group of N members costs its ids once, 32 bytes
//! of state per member, and an entry in a side map only for the few members with an alias,
//! extra data or a mute. The ids are sorted by (owning shard, id), so each shard's members are
//! one run of the shared id array: a message hands a shard its run (`Run`, an `Arc` clone and
//! two offsets), not a copy of its members, and no fan-out list is kept beside the members.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domain::group::{self, GroupRecord, MemberRecord};
use crate::domain::ids::{AppId, UserId};
use crate::protocol::wire::GroupRole;
use crate::shard::router::shard_of;

/// What every member has besides their id (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    join_ms: u64,
    join_seq: u64,
    read_seq: u64,
    /// Received beyond the read seq (cumulative receive-acks; memory only), saturating.
    ahead: u32,
    role: u8,
}

impl Slot {
    fn received(&self) -> u64 {
        self.read_seq + self.ahead as u64
    }

    /// Moves the received position to at least `seq`.
    fn receive(&mut self, seq: u64) {
        let to = self.received().max(seq);
        self.ahead = u32::try_from(to - self.read_seq).unwrap_or(u32::MAX);
    }

    /// Moves the read seq forward to `seq` (what was received stays received).
    fn read(&mut self, seq: u64) {
        let received = self.received().max(seq);
        self.read_seq = seq;
        self.ahead = u32::try_from(received - seq).unwrap_or(u32::MAX);
    }
}

/// What few members have: an alias, extra data, a mute.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct More {
    alias: String,
    extra: String,
    mute_end_ms: u64,
}

impl More {
    fn of(m: &mut MemberRecord) -> Option<More> {
        let more = More {
            alias: std::mem::take(&mut m.alias),
            extra: std::mem::take(&mut m.extra),
            mute_end_ms: m.mute_end_ms,
        };
        (more != More::default()).then_some(more)
    }
}

fn split(mut m: MemberRecord) -> (UserId, Slot, Option<More>) {
    let more = More::of(&mut m);
    let slot = Slot { join_ms: m.join_ms, join_seq: m.join_seq, read_seq: m.read_seq, ahead: 0, role: m.role.0 };
    (m.user, slot, more)
}

/// One shard's members of a group: a window on the group's shared id array.
#[derive(Clone)]
pub(in crate::shard) struct Run {
    ids: Arc<Vec<UserId>>,
    from: u32,
    to: u32,
}

impl Run {
    pub fn iter(&self) -> std::slice::Iter<'_, UserId> {
        self.ids[self.from as usize..self.to as usize].iter()
    }
}

/// A member, borrowed from the roster.
pub(in crate::shard) struct Member<'a> {
    pub user: &'a UserId,
    slot: &'a Slot,
    more: Option<&'a More>,
}

impl Member<'_> {
    pub fn role(&self) -> GroupRole {
        GroupRole(self.slot.role)
    }

    pub fn join_seq(&self) -> u64 {
        self.slot.join_seq
    }

    pub fn read_seq(&self) -> u64 {
        self.slot.read_seq
    }

    /// The first seq this member may read.
    pub fn visible_from(&self, g: &GroupRecord) -> u64 {
        group::visible_from(self.slot.join_seq, g)
    }

    /// Received up to (never below the read seq).
    pub fn received(&self) -> u64 {
        self.slot.received()
    }

    /// The member as the store and the wire have it.
    pub fn record(&self) -> MemberRecord {
        let s = self.slot;
        let (alias, extra, mute_end_ms) =
            self.more.map_or((String::new(), String::new(), 0), |m| (m.alias.clone(), m.extra.clone(), m.mute_end_ms));
        MemberRecord {
            user: self.user.clone(),
            role: GroupRole(s.role),
            alias,
            extra,
            join_ms: s.join_ms,
            join_seq: s.join_seq,
            mute_end_ms,
            read_seq: s.read_seq,
        }
    }
}

/// A group's members (see the module's comment).
pub(in crate::shard) struct Roster {
    app: AppId,
    shards: usize,
    /// Sorted by (owning shard, id).
    ids: Arc<Vec<UserId>>,
    /// Parallel to `ids`.
    slots: Vec<Slot>,
    /// Shard `s`'s run is `starts[s]..starts[s + 1]`.
    starts: Box<[u32]>,
    more: HashMap<UserId, More>,
}

impl Roster {
    /// The members of a group of `app` on a server of `shards` shards.
    pub fn new(app: AppId, shards: usize, members: impl IntoIterator<Item = MemberRecord>) -> Roster {
        let mut more = HashMap::new();
        let parts = members
            .into_iter()
            .map(|m| {
                let (u, slot, m) = split(m);
                if let Some(m) = m {
                    more.insert(u.clone(), m);
                }
                (shard_of(app, &u, shards.max(1)), u, slot)
            })
            .collect();
        Roster::build(app, shards.max(1), parts, more)
    }

    fn build(app: AppId, shards: usize, mut parts: Vec<(usize, UserId, Slot)>, more: HashMap<UserId, More>) -> Roster {
        parts.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        parts.dedup_by(|b, a| a.1 == b.1);
        let mut starts = vec![0u32; shards + 1].into_boxed_slice();
        for (s, _, _) in &parts {
            starts[s + 1] += 1;
        }
        for s in 0..shards {
            starts[s + 1] += starts[s];
        }
        let mut ids = Vec::with_capacity(parts.len());
        let mut slots = Vec::with_capacity(parts.len());
        for (_, u, slot) in parts {
            ids.push(u);
            slots.push(slot);
        }
        Roster { app, shards, ids: Arc::new(ids), slots, starts, more }
    }

    fn shard(&self, u: &UserId) -> usize {
        shard_of(self.app, u, self.shards)
    }

    fn find(&self, u: &UserId) -> Option<usize> {
        let s = self.shard(u);
        let (a, b) = (self.starts[s] as usize, self.starts[s + 1] as usize);
        self.ids[a..b].binary_search(u).ok().map(|i| a + i)
    }

    fn at(&self, i: usize) -> Member<'_> {
        let user = &self.ids[i];
        Member { user, slot: &self.slots[i], more: self.more.get(user) }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn contains(&self, u: &UserId) -> bool {
        self.find(u).is_some()
    }

    pub fn get(&self, u: &UserId) -> Option<Member<'_>> {
        self.find(u).map(|i| self.at(i))
    }

    pub fn role(&self, u: &UserId) -> Option<GroupRole> {
        self.get(u).map(|m| m.role())
    }

    /// Every member, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Member<'_>> {
        (0..self.ids.len()).map(|i| self.at(i))
    }

    /// Every member's id, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &UserId> {
        self.ids.iter()
    }

    /// The owner and admins.
    pub fn managers(&self) -> Vec<UserId> {
        self.iter().filter(|m| m.role() != GroupRole::Member).map(|m| m.user.clone()).collect()
    }

    /// Members muted at `now_ms`, in id order.
    pub fn muted(&self, now_ms: u64) -> Vec<MemberRecord> {
        let mut out: Vec<MemberRecord> = self
            .more
            .iter()
            .filter(|(_, m)| m.mute_end_ms > now_ms)
            .filter_map(|(u, _)| self.get(u).map(|m| m.record()))
            .collect();
        out.sort_unstable_by(|a, b| a.user.cmp(&b.user));
        out
    }

    /// Each shard's members (shards with none left out).
    pub fn fanout(&self) -> Vec<(usize, Run)> {
        (0..self.shards)
            .filter(|&s| self.starts[s] < self.starts[s + 1])
            .map(|s| (s, Run { ids: self.ids.clone(), from: self.starts[s], to: self.starts[s + 1] }))
            .collect()
    }

    /// Up to `limit` members after `after`, in id order, and whether more follow.
    pub fn page(&self, after: Option<&UserId>, limit: usize) -> (Vec<MemberRecord>, bool) {
        // Each shard's run is in id order: merge them from where `after` falls in each.
        let mut at: Vec<(usize, usize)> = (0..self.shards)
            .map(|s| {
                let (a, b) = (self.starts[s] as usize, self.starts[s + 1] as usize);
                let skip = after.map_or(0, |x| self.ids[a..b].partition_point(|u| u <= x));
                (a + skip, b)
            })
            .collect();
        let mut out = Vec::with_capacity(limit.min(self.len()));
        loop {
            let next = at.iter_mut().filter(|(i, end)| i < end).min_by(|x, y| self.ids[x.0].cmp(&self.ids[y.0]));
            let Some(cursor) = next else { return (out, false) };
            if out.len() == limit {
                return (out, true);
            }
            out.push(self.at(cursor.0).record());
            cursor.0 += 1;
        }
    }

    /// Adds or replaces a member (a replaced member keeps their received position).
    pub fn put(&mut self, m: MemberRecord) {
        let (u, mut slot, more) = split(m);
        match more {
            Some(more) => self.more.insert(u.clone(), more),
            None => self.more.remove(&u),
        };
        if let Some(i) = self.find(&u) {
            slot.receive(self.slots[i].received());
            self.slots[i] = slot;
            return;
        }
        let s = self.shard(&u);
        let (a, b) = (self.starts[s] as usize, self.starts[s + 1] as usize);
        let i = a + self.ids[a..b].partition_point(|x| *x < u);
        let ids = Arc::make_mut(&mut self.ids);
        ids.reserve_exact(1);
        ids.insert(i, u);
        self.slots.reserve_exact(1);
        self.slots.insert(i, slot);
        for start in &mut self.starts[s + 1..] {
            *start += 1;
        }
    }

    /// Adds members who are not members yet.
    pub fn add(&mut self, members: Vec<MemberRecord>) {
        if members.len() <= 1 {
            members.into_iter().for_each(|m| self.put(m));
            return;
        }
        let mut parts: Vec<(usize, UserId, Slot)> = Vec::with_capacity(self.len() + members.len());
        for s in 0..self.shards {
            for i in self.starts[s] as usize..self.starts[s + 1] as usize {
                parts.push((s, self.ids[i].clone(), self.slots[i]));
            }
        }
        let mut more = std::mem::take(&mut self.more);
        for m in members {
            let (u, slot, m) = split(m);
            if let Some(m) = m {
                more.insert(u.clone(), m);
            }
            parts.push((self.shard(&u), u, slot));
        }
        *self = Roster::build(self.app, self.shards, parts, more);
    }

    /// Removes these members (those who are not are ignored).
    pub fn remove(&mut self, users: &[UserId]) {
        let mut gone: Vec<usize> = users.iter().filter_map(|u| self.find(u)).collect();
        if gone.is_empty() {
            return;
        }
        gone.sort_unstable();
        gone.dedup();
        for u in users {
            self.more.remove(u);
        }
        let mut drop = gone.iter().peekable();
        let (mut ids, mut slots) =
            (Vec::with_capacity(self.len() - gone.len()), Vec::with_capacity(self.len() - gone.len()));
        for (i, (u, slot)) in self.ids.iter().zip(&self.slots).enumerate() {
            if drop.peek() == Some(&&i) {
                drop.next();
                continue;
            }
            ids.push(u.clone());
            slots.push(*slot);
        }
        for start in self.starts.iter_mut() {
            *start -= gone.partition_point(|&g| g < *start as usize) as u32;
        }
        (self.ids, self.slots) = (Arc::new(ids), slots);
    }

    /// Everyone leaves; their ids.
    pub fn take_all(&mut self) -> Vec<UserId> {
        let ids = std::mem::take(&mut self.ids);
        self.slots = Vec::new();
        self.more = HashMap::new();
        self.starts.iter_mut().for_each(|s| *s = 0);
        Arc::try_unwrap(ids).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Moves a member's read seq forward to `seq`; the member as now, if it moved.
    pub fn read_to(&mut self, u: &UserId, seq: u64) -> Option<MemberRecord> {
        let i = self.find(u)?;
        if seq <= self.slots[i].read_seq {
            return None;
        }
        self.slots[i].read(seq);
        Some(self.at(i).record())
    }

    /// A member's cumulative receive-ack; false if `u` is not a member.
    pub fn received_to(&mut self, u: &UserId, seq: u64) -> bool {
        let Some(i) = self.find(u) else { return false };
        self.slots[i].receive(seq);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn m(s: &str) -> MemberRecord {
        MemberRecord::new(u(s), GroupRole::Member, 5, 0)
    }

    fn names(v: &[MemberRecord]) -> Vec<&str> {
        v.iter().map(|m| m.user.as_str()).collect()
    }

    #[test]
    fn runs_cover_every_member_once_on_its_shard() {
        let r = Roster::new(AppId(1), 4, (0..100).map(|i| m(&format!("u{i}"))));
        let mut seen = Vec::new();
        for (s, run) in r.fanout() {
            for x in run.iter() {
                assert_eq!(shard_of(AppId(1), x, 4), s);
                seen.push(x.clone());
            }
        }
        seen.sort();
        let mut want: Vec<UserId> = (0..100).map(|i| u(&format!("u{i}"))).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn pages_are_in_id_order_across_shards() {
        let mut r = Roster::new(AppId(1), 3, (0..25).map(|i| m(&format!("u{i:02}"))));
        r.add((25..40).map(|i| m(&format!("u{i:02}"))).collect());
        let (first, more) = r.page(None, 10);
        assert!(more);
        assert_eq!(names(&first), (0..10).map(|i| format!("u{i:02}")).collect::<Vec<_>>());
        let (rest, more) = r.page(Some(&first[9].user), 100);
        assert!(!more);
        assert_eq!(names(&rest), (10..40).map(|i| format!("u{i:02}")).collect::<Vec<_>>());
        // Exactly a page left: no "more".
        let (last, more) = r.page(Some(&u("u29")), 10);
        assert_eq!((last.len(), more), (10, false));
    }

    #[test]
    fn put_add_remove_keep_lookups_and_runs_right() {
        let mut r = Roster::new(AppId(7), 2, ["a", "b", "c"].map(m));
        r.put(m("d"));
        r.add(vec![m("e"), m("f")]);
        r.remove(&[u("b"), u("zz"), u("e")]);
        assert_eq!(r.len(), 4);
        for x in ["a", "c", "d", "f"] {
            assert!(r.contains(&u(x)), "{x}");
        }
        assert!(!r.contains(&u("b")) && !r.contains(&u("e")));
        let in_runs: usize = r.fanout().iter().map(|(_, run)| run.iter().count()).sum();
        assert_eq!(in_runs, 4);
        assert_eq!(names(&r.page(None, 10).0), ["a", "c", "d", "f"]);
        assert_eq!(r.take_all().len(), 4);
        assert_eq!(r.len(), 0);
        assert!(r.fanout().is_empty());
    }

    #[test]
    fn a_run_handed_out_is_unchanged_by_later_changes() {
        let mut r = Roster::new(AppId(1), 1, ["a", "b"].map(m));
        let (_, run) = r.fanout().pop().unwrap();
        r.put(m("c"));
        r.remove(&[u("a")]);
        assert_eq!(run.iter().map(UserId::as_str).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn alias_extra_and_mutes_round_trip_and_are_listed() {
        let mut r = Roster::new(AppId(1), 2, ["a", "b"].map(m));
        let mut x = m("a");
        (x.alias, x.extra, x.mute_end_ms) = ("Al".into(), "{}".into(), 900);
        r.put(x.clone());
        assert_eq!(r.get(&u("a")).unwrap().record(), x);
        assert_eq!(names(&r.muted(899)), ["a"]);
        assert!(r.muted(900).is_empty());
        r.put(m("a"));
        assert_eq!(r.get(&u("a")).unwrap().record(), m("a"));
        assert!(r.more.is_empty());
    }

    #[test]
    fn received_never_falls_below_read_and_survives_a_put() {
        let mut r = Roster::new(AppId(1), 1, [m("a")]);
        assert!(r.received_to(&u("a"), 10));
        assert_eq!(r.get(&u("a")).unwrap().received(), 10);
        assert!(r.read_to(&u("a"), 4).is_some());
        assert_eq!((r.get(&u("a")).unwrap().read_seq(), r.get(&u("a")).unwrap().received()), (4, 10));
        assert!(r.read_to(&u("a"), 3).is_none(), "read seqs only move forward");
        r.read_to(&u("a"), 12);
        assert_eq!(r.get(&u("a")).unwrap().received(), 12);
        let mut x = m("a");
        x.read_seq = 12;
        x.role = GroupRole::Admin;
        r.put(x);
        assert_eq!(r.get(&u("a")).unwrap().received(), 12);
        assert_eq!(r.role(&u("a")), Some(GroupRole::Admin));
        assert!(!r.received_to(&u("nobody"), 1));
    }

    #[test]
    fn a_member_state_is_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }
}
