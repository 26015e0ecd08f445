//! Group messages. The group's shard checks and stores a message once (message, id index,
//! idempotency record, the sender's membership with its read seq: O(1) writes whatever the
//! group's size), acks the sender once that is
//! durable, and hands it to the members' shards in one `GroupDeliver` per shard carrying that
//! shard's members and the push, encoded once. A member's shard writes nothing for it: it
//! moves the member's conversation entry in memory (re-derived from the group's head at load)
//! and pushes once the message is durable. Members' positions (read seq, receive-acks) live
//! with the membership on the group's shard; receipts are counted from them on request.

use std::sync::Arc;

use crate::domain::conversation;
use crate::domain::group;
use crate::domain::ids::{ConvId, ConvRef, GroupId};
use crate::domain::message::{self, IdemRecord, MessageRecord};
use crate::domain::user;
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::{GetGroupReceipts, GroupDeliver, GroupMemberRead, GroupReceipts, GroupReceived, SendMessage};
use crate::shard::common::{or_reply, put_conv_change};
use crate::shard::outbox::Outbox;
use crate::shard::state::{now_ms, Shard};
use crate::store::Batch;

use super::ack_frame;

impl Shard {
    /// A send to a group this shard owns (see the module's comment).
    pub(super) async fn send_group(&mut self, c: SendMessage, g: GroupId) {
        let SendMessage { app, from, to, client_id, msg_type, body, origin, hook } = c;
        let now = now_ms();
        let limit = self.cfg.app(app).map_or(0, |a| a.group_msgs_per_sec);
        let checks = self.facts_of(app, &from).and_then(|f| user::check_sender(f.as_ref())).and_then(|()| {
            let st = self.live_group(app, &g)?;
            let m = st.members.get(&from).map(|m| m.record());
            group::check_send(&st.rec, m.as_ref(), now)?;
            // The app's per-group rate limit; owner and admins are exempt.
            let second = now / 1000;
            if st.rate.0 != second {
                st.rate = (second, 0);
            }
            let exempt = m.is_some_and(|m| m.role != wire::GroupRole::Member);
            if limit > 0 && !exempt && st.rate.1 >= limit {
                return Err(DomainError::RateLimited);
            }
            Ok(exempt)
        });
        let exempt = match checks {
            Ok(exempt) => exempt,
            Err(e) => {
                origin.outbox.send(e.frame(origin.req_id));
                return;
            }
        };
        let (hash, rewritten) = hook.hash(|| message::content_hash(&to, msg_type, &body));
        let Some(origin) = self.fresh_client_id(app, (&from, &to, &client_id), hash, origin).await else { return };
        let server_id = self.ids.next(now);
        let Ok(st) = self.live_group(app, &g) else { return };
        if !exempt {
            st.rate.1 += 1;
        }
        st.head += 1;
        // Sending reads what came before (as in the sender's own conversation entry): the
        // membership's read seq moves, in the same batch (one more key, whatever the size).
        let mut batch = Batch::default();
        if let Some(m) = st.members.read_to(&from, st.head) {
            batch.put_group_member(app, &g, &from, m.encode());
        }
        let msg = Arc::new(MessageRecord {
            server_id,
            client_id,
            from,
            to,
            seq: st.head,
            msg_type,
            body,
            ts_ms: now,
            recalled: false,
        });
        let idem = IdemRecord { server_id: msg.server_id, seq: msg.seq, ts_ms: now, content_hash: hash };
        let conv = ConvId::Group(g.clone());
        batch.put_message(app, &conv, msg.seq, msg.server_id, msg.encode());
        batch.put_idem(app, &msg.from, &msg.to, &msg.client_id, idem.encode());
        self.after_send(&mut batch, app, &msg, origin.platform);
        self.remember_client_id(app, &msg.from, &msg.to, &msg.client_id, idem.clone());
        let exclude = Some(origin.outbox.conn());
        self.commit_acked(batch, (&msg.client_id, &idem, rewritten), origin, &self.metrics.sent_group).await;
        // The same bytes for every member: no per-member stream seq.
        let frame = super::delivered::message_push(&msg, &msg.from, 0);
        let Some(fanout) = self.group_fanout(app, &g) else { return };
        for (shard, users) in fanout.iter() {
            let d = GroupDeliver { app, msg: msg.clone(), frame: frame.clone(), users: users.clone(), exclude };
            self.send_to(*shard, d.into());
        }
    }

    /// The original ack for a retried client id (once the original is durable), or the
    /// conflict; nothing is stored.
    pub(super) async fn answer_retry(
        &self,
        known: &IdemRecord,
        hash: u64,
        client_id: &str,
        origin: crate::shard::cmd::Origin,
    ) {
        let frame = match message::retry(known, hash) {
            Ok(i) => ack_frame(origin.req_id, client_id, &i, true),
            Err(e) => e.frame(origin.req_id),
        };
        let (outbox, req_id, answered) = (origin.outbox, origin.req_id, origin.answered);
        self.after_pending(move |r| {
            outbox.send(match r {
                Ok(()) => frame,
                Err(e) => e.frame(req_id),
            });
            drop(answered);
        })
        .await;
    }

    /// The members' side of a group message (or recall): their conversation entries in
    /// memory, and the push once the message is durable (behind it in the writer).
    pub(in crate::shard) async fn group_deliver(&mut self, d: GroupDeliver) {
        let GroupDeliver { app, msg, frame, users, exclude } = d;
        let ConvRef::Group(g) = &msg.to else { return };
        if !msg.recalled {
            if self.group_heads.len() >= self.cfg.limits.conversations_per_shard {
                self.group_heads.clear();
            }
            let h = self.group_heads.entry((app, g.clone())).or_insert(0);
            *h = (*h).max(msg.seq);
        }
        let conv = msg.to.clone();
        let mut batch = Batch::default();
        let mut targets: Vec<Outbox> = Vec::new();
        for u in users.iter() {
            // A user not in memory has no device online, and their list is derived at load.
            let Some(e) = self.users.get_mut(&(app, u.clone())) else { continue };
            if let Some(v) = e.convs.as_mut().and_then(|c| c.get_mut(&conv)) {
                if msg.recalled {
                    conversation::on_group_recall(v, &msg, u);
                } else {
                    // Back in my list after I deleted it: a change of the list, stored now.
                    let listed = !v.hidden;
                    conversation::apply_message(v, &msg, u);
                    if !listed {
                        put_conv_change(&mut batch, app, u, &mut e.heads, v);
                    }
                }
            }
            targets.extend(e.devices.iter().filter(|d| Some(d.outbox.conn()) != exclude).map(|d| d.outbox.clone()));
        }
        if targets.is_empty() && batch.is_empty() {
            return;
        }
        self.commit_push(batch, targets, frame).await;
    }

    /// A member's cumulative receive-ack (memory only: it speeds up nothing a restart needs).
    pub(in crate::shard) fn group_received(&mut self, c: GroupReceived) {
        let GroupReceived { app, group, user, seq, origin } = c;
        let r = self.live_group(app, &group).and_then(|st| {
            let upto = seq.min(st.head);
            if !st.members.received_to(&user, upto) {
                return Err(DomainError::NotGroupMember);
            }
            Ok(())
        });
        origin.outbox.send(match r {
            Ok(()) => protocol::ok(origin.req_id),
            Err(e) => e.frame(origin.req_id),
        });
        drop(origin.answered);
    }

    /// A member read the group up to `seq`: the membership's read seq moves (only forward).
    pub(in crate::shard) async fn group_member_read(&mut self, c: GroupMemberRead) {
        let GroupMemberRead { app, group, user, seq } = c;
        let Ok(st) = self.live_group(app, &group) else { return };
        let Some(m) = st.members.read_to(&user, seq.min(st.head)) else { return };
        let mut batch = Batch::default();
        batch.put_group_member(app, &group, &user, m.encode());
        self.commit(batch, |_| {}).await;
    }

    /// Who received and read message `seq`, from the members' positions.
    pub(in crate::shard) async fn group_receipts(&mut self, c: GetGroupReceipts) {
        let GetGroupReceipts { app, group, by, seq, reply } = c;
        let list_max = self.cfg.limits.receipt_list_members;
        let store = self.store.clone();
        let st = or_reply!(reply, self.live_group(app, &group));
        or_reply!(reply, group::view_members(st.acting(&by)));
        if seq == 0 || seq > st.head {
            let _ = reply.send(Err(DomainError::MessageNotFound));
            return;
        }
        let sender = match store.message(app, &ConvId::Group(group.clone()), seq) {
            Ok(Some(v)) => MessageRecord::decode(&v).ok().map(|m| m.from),
            _ => None,
        };
        let mut out = GroupReceipts::default();
        let lists = st.members.len() <= list_max;
        let (mut received_by, mut read_by) = (Vec::new(), Vec::new());
        for m in st.members.iter() {
            // Those who joined after it, and its sender, are not counted.
            if m.join_seq() >= seq && !st.rec.history_visible || sender.as_ref() == Some(m.user) {
                continue;
            }
            out.members += 1;
            let read = m.read_seq() >= seq;
            let received = m.received() >= seq;
            if received {
                out.received += 1;
                if lists {
                    received_by.push(m.user.clone());
                }
            }
            if read {
                out.read += 1;
                if lists {
                    read_by.push(m.user.clone());
                }
            }
        }
        if lists {
            received_by.sort_unstable();
            read_by.sort_unstable();
            (out.received_by, out.read_by) = (Some(received_by), Some(read_by));
        }
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| out));
        })
        .await;
    }
}
