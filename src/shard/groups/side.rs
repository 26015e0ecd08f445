//! A member's side of their groups, run by the member's shard: the joined-groups list (and
//! its JoinedGroups stream) and the group's entry in their conversation list, brought to the
//! group's state by `GroupSync` (with the intents it carries out deleted in the same batch),
//! and the list read back (`get_joined_groups`).

use crate::domain::conversation::ConvView;
use crate::domain::group::{GroupRecord, Joined};
use crate::domain::ids::{AppId, ConvRef, GroupId, UserId};
use crate::domain::sync::{ItemId, Stream};
use crate::domain::DomainError;
use crate::protocol::wire::GroupType;
use crate::shard::cmd::{GetJoinedGroups, GroupSync, Side, SyncUser};
use crate::shard::common::{or_reply, put_conv_change, stored};
use crate::shard::outbox::Outbox;
use crate::shard::state::Shard;
use crate::store::{Batch, StreamPut};

impl Shard {
    /// Loads `user`'s conversation list and their side of their groups on first use.
    pub(in crate::shard) fn ensure_groups(&mut self, app: AppId, user: &UserId) -> Result<(), DomainError> {
        self.ensure_convs(app, user)?;
        let store = self.store.clone();
        let e = self.touch(app, user)?;
        if e.groups.is_some() {
            return Ok(());
        }
        let mut map = crate::shard::state::FastMap::default();
        for (g, v) in store.user_groups(app, user).map_err(stored("reading a user's groups"))? {
            match Joined::decode(&v) {
                Ok(j) => {
                    map.insert(g, j);
                }
                Err(_) => {
                    tracing::error!(user = %user, group = %g, "skipping a joined-group entry that does not decode")
                }
            }
        }
        e.groups = Some(map);
        Ok(())
    }

    pub(in crate::shard) async fn group_sync(&mut self, c: GroupSync) {
        let GroupSync { app, group, head, users, event } = c;
        let mut batch = Batch::default();
        let mut targets: Vec<Outbox> = Vec::new();
        for SyncUser { user, side, intents } in users {
            if side != Side::Unchanged {
                match self.ensure_groups(app, &user) {
                    Ok(()) => self.apply_side(&mut batch, app, &user, &group, head, side),
                    // Gone: nothing to bring up to date.
                    Err(DomainError::UserNotFound) => {}
                    // The store failed: the intents stay, for the next start.
                    Err(_) => continue,
                }
                for v in intents {
                    batch.delete_group_sync(app, &user, &group.id, v);
                }
            }
            if let Some(e) = self.users.get(&(app, user)) {
                targets.extend(e.devices.iter().map(|d| d.outbox.clone()));
            }
        }
        match event {
            // Also when nothing is written here: the push waits behind the group's own write.
            Some(frame) if !(batch.is_empty() && targets.is_empty()) => self.commit_push(batch, targets, frame).await,
            None if !batch.is_empty() => self.commit(batch, |_| {}).await,
            _ => {}
        }
    }

    /// Brings one user's side of `group` to its `version`; a side already there (or newer)
    /// is left as it is, so a replay changes nothing.
    fn apply_side(&mut self, batch: &mut Batch, app: AppId, user: &UserId, group: &GroupRecord, head: u64, side: Side) {
        let Some(e) = self.users.get_mut(&(app, user.clone())) else { return };
        let Some(groups) = e.groups.as_mut() else { return };
        let current = groups.get(&group.id).copied();
        if current.is_some_and(|j| j.version >= group.version) {
            return;
        }
        let item = ItemId::Group(group.id.clone());
        let conv = ConvRef::Group(group.id.clone());
        let was_member = current.is_some_and(|j| j.member);
        let replaced = current.map(|j| j.stream_seq);
        let (member, visible_from) = match side {
            Side::Member { visible_from } => (true, visible_from),
            Side::Gone if was_member => (false, 0),
            // Not a member on either side; or only told.
            Side::Gone | Side::Unchanged => return,
        };
        let seq = e.heads.bump(Stream::JoinedGroups).0;
        let put = if member {
            StreamPut::marker(Stream::JoinedGroups, seq, &item, replaced)
        } else {
            StreamPut::tombstone(Stream::JoinedGroups, seq, &item, replaced)
        };
        batch.put_stream_item(app, user, put);
        let j = Joined { member, kind: group.kind, version: group.version, stream_seq: seq, visible_from };
        batch.put_user_group(app, user, &group.id, j.encode());
        groups.insert(group.id.clone(), j);
        let convs = e.convs.get_or_insert_with(Default::default);
        if member && !was_member {
            // Joined: the group enters my conversation list with nothing unread.
            let mut v = convs.get(&conv).cloned().unwrap_or_else(|| ConvView::new(conv.clone()));
            v.last_seq = v.last_seq.max(head);
            v.read_seq = v.last_seq;
            // What came before the join is not theirs to see (unless the group shows its
            // history, and then the next message sets it anyway).
            v.last = None;
            v.skipped.clear();
            v.hidden = false;
            put_conv_change(batch, app, user, &mut e.heads, &mut v);
            convs.insert(conv, v);
        } else if !member {
            // Left, kicked, or the group is gone: it leaves my list (a tombstone).
            if let Some(mut v) = convs.get(&conv).filter(|v| !v.hidden).cloned() {
                v.hidden = true;
                let old = v.stream_seq;
                v.stream_seq = e.heads.bump(Stream::Conversations).0;
                let item = ItemId::Conversation(conv.clone());
                batch.put_stream_item(
                    app,
                    user,
                    StreamPut::tombstone(Stream::Conversations, v.stream_seq, &item, Some(old)),
                );
                batch.put_user_conv(app, user, &conv, v.encode());
                convs.insert(conv, v);
            }
        }
    }

    /// The first seq of `group` that `user` may read, if they are a member (their side).
    pub(in crate::shard) fn visible_from(&self, app: AppId, user: &UserId, group: &GroupId) -> Option<u64> {
        let e = self.users.get(&(app, user.clone()))?;
        e.groups.as_ref()?.get(group).filter(|j| j.member).map(|j| j.visible_from)
    }

    pub(in crate::shard) async fn get_joined_groups(&mut self, c: GetJoinedGroups) {
        let GetJoinedGroups { app, user, kind, after, limit, reply } = c;
        or_reply!(reply, self.ensure_groups(app, &user));
        let Some(e) = self.users.get(&(app, user.clone())) else { return };
        let mut ids: Vec<&GroupId> = e
            .groups
            .iter()
            .flatten()
            .filter(|(g, j)| {
                j.member && (kind == GroupType::Any || j.kind == kind) && after.as_ref().is_none_or(|a| *g > a)
            })
            .map(|(g, _)| g)
            .collect();
        ids.sort();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let mut out = Vec::with_capacity(ids.len());
        for g in ids {
            match self.store.group(app, g) {
                Ok(Some(v)) => {
                    out.push(or_reply!(reply, GroupRecord::decode(&v).map_err(|_| DomainError::StorageUnavailable)))
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = reply.send(Err(stored("reading a group")(e)));
                    return;
                }
            }
        }
        let cut = crate::domain::page::cut(&mut out, crate::domain::page::PAGE_BYTES);
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| (out, more || cut)));
        })
        .await;
    }
}
