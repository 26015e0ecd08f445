//! Shard handlers for a user's conversation list: load on first use, get, update (pin, mute),
//! delete (server-side, or only tell my other devices).

use bytes::Bytes;

use crate::domain::conversation::{self, ConvView};
use crate::domain::ids::{AppId, ConvId, ConvRef, UserId};
use crate::domain::message::MessageRecord;
use crate::domain::page;
use crate::domain::sync::{ItemId, Stream};
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::{DeleteConversation, GetConversations, UpdateConversation};
use crate::shard::common::{conversation_changed_push, put_conv_change, stored};
use crate::shard::state::{devices_but, Shard};
use crate::store::{Batch, StreamPut};

fn deleted_push(conv: &ConvRef) -> Bytes {
    protocol::push(|fbb| {
        let c = dw::conv_id(fbb, conv);
        let p = wire::ConversationDeletedPush::create(fbb, &wire::ConversationDeletedPushArgs { conv: Some(c) });
        (wire::Push::ConversationDeletedPush, p.as_union_value())
    })
}

impl Shard {
    /// Loads `user`'s conversation list from the store the first time it is needed.
    pub(super) fn ensure_convs(&mut self, app: AppId, user: &UserId) -> Result<(), DomainError> {
        let e = self.touch(app, user)?;
        if e.convs.is_some() {
            return Ok(());
        }
        let raw = self.store.user_convs(app, user).map_err(stored("loading a conversation list"))?;
        let mut map = crate::shard::state::FastMap::with_capacity_and_hasher(raw.len(), Default::default());
        for v in raw {
            // One bad entry must not block the user's every delivery: skip it, loudly.
            match ConvView::decode(&v) {
                Ok(mut view) => {
                    // Entries are written behind for new messages: the conversation itself
                    // knows its last seq.
                    if let Some(c) = view.conv.conv_id(user) {
                        if let Ok(head) = self.store.conv_head(app, &c) {
                            view.last_seq = view.last_seq.max(head);
                        }
                        if let ConvId::Group(g) = &c {
                            // A message delivered moments ago may not be readable yet.
                            let recent = self.group_heads.get(&(app, g.clone())).copied().unwrap_or(0);
                            view.last_seq = view.last_seq.max(recent);
                        }
                        (view.read_seq, view.skipped) = self.own_read_seq(app, user, &c, &view);
                    }
                    view.last = self.last_message(app, user, &view).map(std::sync::Arc::new);
                    map.insert(view.conv.clone(), view);
                }
                Err(_) => tracing::error!(user = %user, "skipping a conversation entry that does not decode"),
            }
        }
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else {
            return Err(DomainError::UserNotFound);
        };
        entry.convs = Some(map);
        Ok(())
    }

    /// My read seq including my own sends after the stored one (written behind): the newest
    /// message I sent after it, found walking back from the last message (at most
    /// `limits.max_page` messages; past that the stored read seq stands). For a group, also
    /// how many of the others' messages after it were recalled (not unread).
    fn own_read_seq(&self, app: AppId, user: &UserId, c: &ConvId, v: &ConvView) -> (u64, Vec<u64>) {
        if v.last_seq <= v.read_seq {
            return (v.read_seq, Vec::new());
        }
        let page = self.store.messages(app, c, (v.read_seq + 1, v.last_seq), true, self.cfg.limits.max_page);
        let Ok((raw, _)) = page else { return (v.read_seq, Vec::new()) };
        let (mut read, mut skipped) = (v.read_seq, Vec::new());
        for m in raw.iter().filter_map(|b| MessageRecord::decode(b).ok()) {
            if &m.from == user {
                read = m.seq;
                break;
            }
            if m.recalled && matches!(c, ConvId::Group(_)) && skipped.len() < crate::domain::conversation::MAX_SKIPPED {
                skipped.push(m.seq);
            }
        }
        (read, skipped)
    }

    /// Writes the conversation entries that only new messages changed (see `dirty_convs`).
    pub(super) async fn flush_convs(&mut self) {
        if self.dirty_convs.is_empty() {
            return;
        }
        let mut batch = Batch::default();
        for (app, user, conv) in std::mem::take(&mut self.dirty_convs) {
            let view = self.users.get(&(app, user.clone())).and_then(|e| e.convs.as_ref()?.get(&conv));
            if let Some(v) = view {
                batch.put_user_conv(app, &user, &conv, v.encode());
            }
        }
        self.commit(batch, |_| {}).await;
    }

    /// The last message of a conversation entry: the conversation's message at `last_seq`
    /// (for a group, only one the user may see: from their join on).
    fn last_message(&self, app: AppId, user: &UserId, v: &ConvView) -> Option<MessageRecord> {
        if v.last_seq == 0 {
            return None;
        }
        if let ConvRef::Group(g) = &v.conv {
            let raw = self.store.user_group(app, user, g).ok()??;
            let j = crate::domain::group::Joined::decode(&raw).ok()?;
            if !j.member || v.last_seq < j.visible_from {
                return None;
            }
        }
        let raw = self.store.message(app, &v.conv.conv_id(user)?, v.last_seq).ok()??;
        MessageRecord::decode(&raw).ok()
    }

    /// My visible conversations with a change seq after `after`, oldest change first.
    pub(super) async fn get_conversations(&mut self, c: GetConversations) {
        let GetConversations { app, user, after, limit, reply } = c;
        if let Err(e) = self.ensure_convs(app, &user) {
            let _ = reply.send(Err(e));
            return;
        }
        let Some(entry) = self.users.get(&(app, user)) else { return };
        let mut list: Vec<ConvView> = entry
            .convs
            .as_ref()
            .map(|m| m.values().filter(|v| !v.hidden && v.stream_seq > after).cloned().collect())
            .unwrap_or_default();
        list.sort_by_key(|v| v.stream_seq);
        let more = list.len() > limit;
        list.truncate(limit);
        let more = page::cut(&mut list, page::PAGE_BYTES) || more;
        let head = list.last().map_or(after, |v| v.stream_seq);
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| (list, head, more)));
        })
        .await;
    }

    pub(super) async fn update_conversation(&mut self, c: UpdateConversation) {
        let UpdateConversation { app, user, conv, pinned, muted, origin, reply } = c;
        if let Err(e) = self.ensure_convs(app, &user) {
            let _ = reply.send(Err(e));
            return;
        }
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else { return };
        let convs = entry.convs.get_or_insert_with(Default::default);
        let Some(current) = convs.get(&conv).filter(|v| !v.hidden) else {
            let _ = reply.send(Err(DomainError::ConversationNotFound));
            return;
        };
        let Some(mut v) = conversation::update(current, pinned, muted) else {
            let same = current.clone();
            self.after_pending(move |r| {
                let _ = reply.send(r.map(|()| same));
            })
            .await;
            return;
        };
        let mut batch = Batch::default();
        put_conv_change(&mut batch, app, &user, &mut entry.heads, &mut v);
        let targets = devices_but(&entry.devices, origin);
        convs.insert(conv, v.clone());
        let push = conversation_changed_push(&user, &v);
        self.commit_then(batch, targets, vec![push], reply, v).await;
    }

    /// Removes a conversation from my list (a tombstone in my Conversations stream; a later
    /// message brings it back), or with `client_only` only tells my other devices.
    pub(super) async fn delete_conversation(&mut self, c: DeleteConversation) {
        let DeleteConversation { app, user, conv, client_only, origin, reply } = c;
        if let Err(e) = self.ensure_convs(app, &user) {
            let _ = reply.send(Err(e));
            return;
        }
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else { return };
        let targets = devices_but(&entry.devices, origin);
        let push = deleted_push(&conv);
        if client_only {
            for t in &targets {
                t.send(push.clone());
            }
            let _ = reply.send(Ok(()));
            return;
        }
        let convs = entry.convs.get_or_insert_with(Default::default);
        let Some(current) = convs.get(&conv).filter(|v| !v.hidden) else {
            let _ = reply.send(Err(DomainError::ConversationNotFound));
            return;
        };
        let mut v = current.clone();
        v.hidden = true;
        let old = v.stream_seq;
        v.stream_seq = entry.heads.bump(Stream::Conversations).0;
        let mut batch = Batch::default();
        let item = ItemId::Conversation(conv.clone());
        batch.put_stream_item(app, &user, StreamPut::tombstone(Stream::Conversations, v.stream_seq, &item, Some(old)));
        batch.put_user_conv(app, &user, &conv, v.encode());
        convs.insert(conv, v);
        self.commit(batch, move |r| {
            if r.is_ok() {
                for t in &targets {
                    t.send(push.clone());
                }
            }
            let _ = reply.send(r);
        })
        .await;
    }
}
