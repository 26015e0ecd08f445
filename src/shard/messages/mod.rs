//! Shard handlers for messages (one-to-one so far), by the side that runs them.
//!
//! The conversation's shard (chosen by its `ConvId`) runs `send`, `recall` and `history`
//! (this file): it alone assigns the conversation's seqs, so they are gap-free and ordered.
//! The users' shards run `deliver` and `recalled` (their streams, conversation lists and
//! devices), `receipt` and `read` (`delivered`), and `get_messages`. See docs/architecture.md,
//! "The message path".

mod delivered;
mod group;

use std::sync::Arc;

use bytes::Bytes;

use crate::domain::ids::{AppId, ConnId, ConvId, ConvRef, UserId};
use crate::domain::message::{self, IdemRecord, MessageRecord};
use crate::domain::page::{self, WireSize};
use crate::domain::user;
use crate::domain::DomainError;
use crate::metrics::Counter;
use crate::protocol::{self, wire};
use crate::shard::cmd::{
    Deliver, GetHistory, GetMessages, GroupDeliver, RecallMessage, Recalled, SendMessage, ShardCmd,
};
use crate::shard::common::stored;
use crate::shard::state::{now_ms, Shard, Stamped};
use crate::store::Batch;

/// The ack a sender gets.
pub(super) fn ack_frame(req_id: u64, client_id: &str, i: &IdemRecord, duplicate: bool) -> Bytes {
    ack_frame_with(req_id, client_id, i, duplicate, false)
}

/// The ack a sender gets; `rewritten`: the app's backend replaced the body.
fn ack_frame_with(req_id: u64, client_id: &str, i: &IdemRecord, duplicate: bool, rewritten: bool) -> Bytes {
    protocol::response(req_id, |fbb| {
        let c = fbb.create_string(client_id);
        let a = wire::SendAck::create(
            fbb,
            &wire::SendAckArgs {
                client_id: Some(c),
                server_id: i.server_id,
                seq: i.seq,
                timestamp_ms: i.ts_ms,
                duplicate,
                rewritten,
            },
        );
        (wire::Response::SendAck, a.as_union_value())
    })
}

impl Shard {
    /// The last seq of a conversation this shard owns (loaded from the store on first use).
    fn conv_head(&mut self, app: AppId, conv: &ConvId) -> Result<u64, DomainError> {
        if let Some(h) = self.conv_heads.get(&(app, conv.clone())) {
            return Ok(h.value);
        }
        let h = self.store.conv_head(app, conv).map_err(stored("reading a conversation head"))?;
        self.conv_heads.insert((app, conv.clone()), Stamped { value: h, used: self.uses });
        Ok(h)
    }

    /// The key of a client id in `recent_ids`.
    fn client_id_key(&self, app: AppId, from: &UserId, to: &ConvRef, client_id: &str) -> u128 {
        self.keyer.key((app.0, from.as_str(), to.kind() as u8, to.id_str(), client_id))
    }

    /// What a client id was used for, if anything: memory first, then the store.
    fn known_client_id(
        &self,
        app: AppId,
        from: &UserId,
        to: &ConvRef,
        client_id: &str,
    ) -> Result<Option<IdemRecord>, DomainError> {
        if let Some(r) = self.recent_ids.get(self.client_id_key(app, from, to, client_id)) {
            return Ok(Some(r.clone()));
        }
        match self.store.idem(app, from, to, client_id) {
            Ok(Some(v)) => IdemRecord::decode(&v).map(Some).map_err(|_| DomainError::StorageUnavailable),
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::error!(error = %e, "reading an idempotency record");
                Err(DomainError::StorageUnavailable)
            }
        }
    }

    /// Commits a new message's batch and acks the sender (`origin`) once it is durable.
    async fn commit_acked(
        &self,
        batch: Batch,
        (client_id, idem, rewritten): (&str, &IdemRecord, bool),
        origin: crate::shard::cmd::Origin,
        sent: &Counter,
    ) {
        let ack = ack_frame_with(origin.req_id, client_id, idem, false, rewritten);
        let (outbox, req_id, answered) = (origin.outbox, origin.req_id, origin.answered);
        let sent = sent.clone();
        self.commit(batch, move |r| {
            outbox.send(match r {
                Ok(()) => {
                    sent.inc();
                    ack
                }
                Err(e) => e.frame(req_id),
            });
            drop(answered);
        })
        .await;
    }

    /// `origin` back when the client id is new; a retry gets the original ack (once the
    /// original is durable; nothing is stored) or `ClientIdConflict`, a store failure its
    /// error, and `None` comes back.
    async fn fresh_client_id(
        &self,
        app: AppId,
        (from, to, client_id): (&UserId, &ConvRef, &str),
        hash: u64,
        origin: crate::shard::cmd::Origin,
    ) -> Option<crate::shard::cmd::Origin> {
        match self.known_client_id(app, from, to, client_id) {
            Err(e) => {
                origin.outbox.send(e.frame(origin.req_id));
                None
            }
            Ok(Some(known)) => {
                self.answer_retry(&known, hash, client_id, origin).await;
                None
            }
            Ok(None) => Some(origin),
        }
    }

    fn remember_client_id(&mut self, app: AppId, from: &UserId, to: &ConvRef, client_id: &str, rec: IdemRecord) {
        let key = self.client_id_key(app, from, to, client_id);
        self.recent_ids.insert(key, rec);
    }

    /// Send `from` -> `to` (this shard owns the conversation). Checks, assigns the next seq,
    /// stores message + its id index + idempotency record in one batch, acks the sender once
    /// that is durable, and hands the deliveries to the users' shards.
    pub(in crate::shard) async fn send(&mut self, c: SendMessage) {
        let Some(conv) = c.to.conv_id(&c.from) else {
            c.origin.outbox.send(DomainError::InvalidArgument("cannot message oneself").frame(c.origin.req_id));
            return;
        };
        // The app's before-send hook, if it has one: the send waits parked until it answers.
        let Some(c) = self.gate_send(&conv, c) else { return };
        let pair = match conv {
            ConvId::P2p(pair) => pair,
            ConvId::Group(g) => return self.send_group(c, g).await,
        };
        let SendMessage { app, from, to, client_id, msg_type, body, origin, hook } = c;
        let checks = self
            .facts_of(app, &from)
            .and_then(|f| user::check_sender(f.as_ref()))
            .and_then(|_| self.facts_of(app, pair.peer_of(&from)))
            .and_then(|f| user::check_receiver(f.as_ref()))
            .and_then(|_| self.check_pair(app, &from, &pair));
        if let Err(e) = checks {
            origin.outbox.send(e.frame(origin.req_id));
            return;
        }
        let (hash, rewritten) = hook.hash(|| message::content_hash(&to, msg_type, &body));
        let Some(origin) = self.fresh_client_id(app, (&from, &to, &client_id), hash, origin).await else { return };
        let conv = ConvId::P2p(pair);
        let head = match self.conv_head(app, &conv) {
            Ok(h) => h,
            Err(e) => {
                origin.outbox.send(e.frame(origin.req_id));
                return;
            }
        };
        let now = now_ms();
        let msg = Arc::new(MessageRecord {
            server_id: self.ids.next(now),
            client_id,
            from,
            to,
            seq: head + 1,
            msg_type,
            body,
            ts_ms: now,
            recalled: false,
        });
        let idem = IdemRecord { server_id: msg.server_id, seq: msg.seq, ts_ms: now, content_hash: hash };
        let mut batch = Batch::default();
        batch.put_message(app, &conv, msg.seq, msg.server_id, msg.encode());
        batch.put_idem(app, &msg.from, &msg.to, &msg.client_id, idem.encode());
        self.after_send(&mut batch, app, &msg, origin.platform);
        self.uses += 1;
        self.conv_heads.insert((app, conv), Stamped { value: msg.seq, used: self.uses });
        self.remember_client_id(app, &msg.from, &msg.to, &msg.client_id, idem.clone());
        let exclude = origin.outbox.conn();
        self.commit_acked(batch, (&msg.client_id, &idem, rewritten), origin, &self.metrics.sent_c2c).await;
        // The users' shards record and push the message. Their commits queue behind this one
        // in the single writer, so they can never be durable before the message is.
        self.route_deliveries(app, &msg, exclude);
    }

    /// Hands a new message to its users' shards: one `Deliver` per shard, so sender and
    /// receiver on one shard are recorded in one batch (see `cmd::Deliver`).
    fn route_deliveries(&mut self, app: AppId, msg: &Arc<MessageRecord>, exclude: ConnId) {
        let Some(to) = msg.receiver() else { return };
        let (from_shard, to_shard) = (self.router.user_shard(app, &msg.from), self.router.user_shard(app, to));
        let sender = (msg.from.clone(), Some(exclude));
        let receiver = (to.clone(), None);
        let deliver = |to| (Deliver { app, msg: msg.clone(), to, from_record: false }).into();
        if from_shard == to_shard {
            self.send_to(from_shard, deliver(vec![sender, receiver]));
        } else {
            self.send_to(from_shard, deliver(vec![sender]));
            self.send_to(to_shard, deliver(vec![receiver]));
        }
    }

    /// Sends a command to `user`'s shard (run here when that is this shard).
    pub(in crate::shard) fn route_user(&mut self, app: AppId, user: &UserId, make: impl FnOnce(UserId) -> ShardCmd) {
        let s = self.router.user_shard(app, user);
        self.send_to(s, make(user.clone()));
    }

    pub(in crate::shard) async fn recall(&mut self, c: RecallMessage) {
        let RecallMessage { app, conv, by, by_admin, server_id, reply } = c;
        let msg = match self.load_message(app, server_id) {
            Ok(Some(m)) if m.conv().as_ref() == Some(&conv) => m,
            Ok(_) => {
                let _ = reply.send(Err(DomainError::MessageNotFound));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let window = self.cfg.app(app).map_or(120, |a| a.recall_window_secs);
        // In a group, its owner and admins recall any message at any time.
        let mut fanout = None;
        let mut privileged = by_admin;
        if let ConvId::Group(g) = &conv {
            let st = match self.live_group(app, g) {
                Ok(st) => st,
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            };
            let who = st.acting(&crate::shard::cmd::Actor {
                user: Some(by.clone()),
                app_admin: by_admin,
                origin: None,
                caller: None,
            });
            if !who.member() {
                let _ = reply.send(Err(DomainError::NotGroupMember));
                return;
            }
            privileged |= who.manager();
            fanout = self.group_fanout(app, g);
        }
        let tomb = match message::recall(&msg, &by, privileged, now_ms(), window) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let mut batch = Batch::default();
        batch.replace_message(app, &conv, tomb.seq, tomb.encode());
        self.report_recall(&mut batch, app, &tomb, &by);
        if let Some(fanout) = fanout {
            // A group's recall, like its messages, is stored once: members' shards only
            // update their entries in memory and push it.
            self.commit(batch, move |r| {
                let _ = reply.send(r);
            })
            .await;
            // The same bytes for every member (a group is seen alike by all; no stream seq).
            let frame = delivered::recall_push(&tomb, &tomb.from, &by, 0);
            for (shard, users) in fanout.iter() {
                let d =
                    GroupDeliver { app, msg: tomb.clone(), frame: frame.clone(), users: users.clone(), exclude: None };
                self.send_to(*shard, d.into());
            }
            return;
        }
        // Like a send's deliveries, the users' shards still have to record the recall; these
        // records make a crash in between harmless (replayed at start-up).
        let users: Vec<UserId> = std::iter::once(&tomb.from).chain(tomb.receiver()).cloned().collect();
        let at = (conv, tomb.seq);
        for u in &users {
            batch.put_fanout(app, u, (tomb.server_id, 1), &at);
        }
        self.commit(batch, move |r| {
            let _ = reply.send(r);
        })
        .await;
        for u in users {
            self.route_user(app, &u, |user| Recalled { app, user, msg: tomb.clone(), by: by.clone() }.into());
        }
    }

    /// A message by server id, from the store.
    pub(in crate::shard) fn load_message(
        &self,
        app: AppId,
        server_id: u64,
    ) -> Result<Option<MessageRecord>, DomainError> {
        let fail = stored("reading a message");
        let Some((conv, seq)) = self.store.message_location(app, server_id).map_err(fail)? else {
            return Ok(None);
        };
        match self.store.message(app, &conv, seq).map_err(fail)? {
            Some(v) => MessageRecord::decode(&v).map(Some).map_err(|_| DomainError::StorageUnavailable),
            None => Ok(None),
        }
    }

    pub(in crate::shard) async fn history(&mut self, c: GetHistory) {
        let GetHistory { app, conv, viewer, admin, mut range, limit, reply } = c;
        if let ConvId::Group(g) = &conv {
            // Members only, and only from what they may see (their join, unless the group
            // shows its history to new members).
            let from = self.live_group(app, g).and_then(|st| match st.members.get(&viewer).map(|m| m.record()) {
                Some(m) => Ok(m.visible_from(&st.rec)),
                None if admin => Ok(1),
                None => Err(DomainError::NotGroupMember),
            });
            match from {
                Ok(f) => range.from = range.from.max(f),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
            if range.from > range.to {
                let _ = reply.send(Ok((Vec::new(), false)));
                return;
            }
        }
        let r = self
            .store
            .messages(app, &conv, (range.from, range.to), range.descending, limit)
            .map_err(stored("reading history"))
            .and_then(|(raw, more)| {
                let msgs: Result<Vec<_>, _> = raw.iter().map(|v| MessageRecord::decode(v)).collect();
                let mut msgs = msgs.map_err(|_| DomainError::StorageUnavailable)?;
                let cut = page::cut(&mut msgs, page::PAGE_BYTES);
                Ok((msgs, more || cut))
            });
        self.after_durable(move |durable| {
            let _ = reply.send(durable.and(r));
        })
        .await;
    }

    /// Whether `viewer` is in `m`'s conversation (for a group: a member who may see it).
    fn may_see(&self, app: AppId, viewer: &UserId, m: &MessageRecord) -> bool {
        match &m.to {
            ConvRef::P2p(to) => &m.from == viewer || to == viewer,
            ConvRef::Group(g) => self.visible_from(app, viewer, g).is_some_and(|f| m.seq >= f),
        }
    }

    /// Messages by server id, only from conversations the viewer belongs to (any, for admins).
    pub(in crate::shard) async fn get_messages(&mut self, c: GetMessages) {
        let GetMessages { app, viewer, admin, ids, reply } = c;
        if let Err(e) = self.ensure_groups(app, &viewer) {
            let _ = reply.send(Err(e));
            return;
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut bytes = 0usize;
        for id in ids {
            match self.load_message(app, id) {
                Ok(Some(m)) if admin || self.may_see(app, &viewer, &m) => {
                    // Cut by size: the ids after the last message answered were not looked at.
                    bytes += m.wire_size();
                    if bytes > page::PAGE_BYTES && !out.is_empty() {
                        self.after_durable(move |durable| {
                            let _ = reply.send(durable.map(|()| (out, true)));
                        })
                        .await;
                        return;
                    }
                    out.push(m)
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
        }
        self.after_durable(move |durable| {
            let _ = reply.send(durable.map(|()| (out, false)));
        })
        .await;
    }
}
