//! The users' side of a message: recording a delivery or a recall in a user's streams and
//! conversation list and pushing it to the user's devices, relaying receive-acks, and reading
//! a conversation (with the read receipt to the peer).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Map;

use crate::callbacks::Event;
use crate::domain::conversation;
use crate::domain::ids::{AppId, ConnId, ConvId, ConvRef, Pair, UserId};
use crate::domain::message::MessageRecord;
use crate::domain::sync::{ItemId, Stream};
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::{Deliver, GroupMemberRead, ReadConversation, Recalled, Receipt};
use crate::shard::common::{conversation_changed_push, put_conv_change};
use crate::shard::outbox::Outbox;
use crate::shard::recent::RecentDelivery;
use crate::shard::state::{devices_but, Shard};
use crate::store::{self, Batch, StreamPut};

/// What recording one delivery leaves to do once it is durable.
struct Recorded {
    /// The devices to push the message to, and the push.
    push: Option<(Vec<Outbox>, Bytes)>,
    /// The receiver has no device online: the server sends the sender a receipt.
    server_receipt: bool,
}

pub(super) fn message_push(m: &MessageRecord, viewer: &UserId, sync_seq: u64) -> Bytes {
    protocol::push(|fbb| {
        let msg = dw::message(fbb, m, viewer, sync_seq);
        let p = wire::MessagePush::create(fbb, &wire::MessagePushArgs { message: Some(msg) });
        (wire::Push::MessagePush, p.as_union_value())
    })
}

fn receipt_push(by: &UserId, server_id: u64, seq: u64, server_sent: bool) -> Bytes {
    protocol::push(|fbb| {
        let conv = dw::conv_id(fbb, &ConvRef::P2p(by.clone()));
        let by_user = fbb.create_string(by.as_str());
        let p = wire::ReceiptPush::create(
            fbb,
            &wire::ReceiptPushArgs { conv: Some(conv), server_id, seq, by_user: Some(by_user), server_sent },
        );
        (wire::Push::ReceiptPush, p.as_union_value())
    })
}

pub(super) fn recall_push(m: &MessageRecord, viewer: &UserId, by: &UserId, sync_seq: u64) -> Bytes {
    protocol::push(|fbb| {
        let conv = dw::conv_id(fbb, &m.seen_by(viewer));
        let by_user = fbb.create_string(by.as_str());
        let p = wire::RecallPush::create(
            fbb,
            &wire::RecallPushArgs {
                conv: Some(conv),
                server_id: m.server_id,
                seq: m.seq,
                by_user: Some(by_user),
                sync_seq,
            },
        );
        (wire::Push::RecallPush, p.as_union_value())
    })
}

impl Shard {
    /// Records a message in the Messages streams and conversation lists of the users `d` is
    /// for (all of this shard), in one batch, then pushes it to their devices.
    ///
    /// What makes a crash between the message's commit and this one harmless: a live delivery
    /// moves this shard's delivery mark for the message's source shard (`Shard::mark_delivered`)
    /// in the same group as the stream entries of every user of this shard the message is for
    /// (one command, one batch: see `cmd::Deliver`), and start-up re-drives what is above the
    /// marks; a re-driven delivery deletes its fan-out record in the same batch instead.
    /// Either way a delivery recorded once is never recorded again.
    pub(in crate::shard) async fn deliver(&mut self, d: Deliver) {
        let Deliver { app, msg, to, from_record } = d;
        let mut batch = Batch::default();
        let mut pushes: Vec<(Vec<Outbox>, Bytes)> = Vec::new();
        let mut receipt = false;
        for (user, exclude) in to {
            match self.ensure_convs(app, &user) {
                Ok(()) => {}
                // The user is gone: nothing to record (but the fan-out record to drop).
                Err(DomainError::UserNotFound) => {
                    if from_record {
                        batch.delete_fanout(app, &user, msg.server_id, 0);
                    }
                    continue;
                }
                // The store failed: a fan-out record makes a restart retry this delivery (a
                // re-driven one keeps its record).
                Err(_) => {
                    if let (false, Some(conv)) = (from_record, msg.conv()) {
                        batch.put_fanout(app, &user, (msg.server_id, 0), &(conv, msg.seq));
                    }
                    continue;
                }
            }
            if from_record {
                batch.delete_fanout(app, &user, msg.server_id, 0);
            }
            if let Some(p) = self.record_delivery(&mut batch, app, &user, &msg, exclude) {
                receipt |= p.server_receipt;
                if let Some(push) = p.push {
                    pushes.push(push);
                }
            }
        }
        if !from_record {
            // Before the commit: should the commit hand the group over, the mark goes with it.
            self.mark_delivered(msg.server_id);
        }
        if batch.is_empty() {
            return;
        }
        let receipt = receipt.then(|| (self.kept.clone(), msg));
        self.commit(batch, move |r| {
            if r.is_err() {
                return;
            }
            for (targets, frame) in &pushes {
                for t in targets {
                    t.send(frame.clone());
                }
            }
            if let Some((kept, msg)) = receipt {
                if let Some(to) = msg.receiver() {
                    kept.push(app, &msg.from, receipt_push(to, msg.server_id, msg.seq, true));
                }
            }
        })
        .await;
    }

    /// Adds `msg` to `user`'s Messages stream and conversation list (in memory and `batch`);
    /// what to push once that is durable. `user`'s conversation list is loaded.
    fn record_delivery(
        &mut self,
        batch: &mut Batch,
        app: AppId,
        user: &UserId,
        msg: &Arc<MessageRecord>,
        exclude: Option<ConnId>,
    ) -> Option<Recorded> {
        let conv_id = msg.conv()?;
        let entry = self.users.get_mut(&(app, user.clone()))?;
        let conv = msg.seen_by(user);
        let convs = entry.convs.get_or_insert_with(Default::default);
        let before = convs.get(&conv);
        // A conversation new to my list (or back after I deleted it) is a change of the list:
        // it goes to my Conversations stream and is stored now. A new message in a listed
        // conversation is not: devices learn it from the Messages stream, and the entry's
        // last seq and own-read seq are written behind (`flush_convs`) and re-derived from
        // the conversation at load.
        let listed = before.is_some_and(|v| !v.hidden);
        let mut view = conversation::on_message(before, conv.clone(), msg, user);
        let m_seq = entry.heads.bump(Stream::Messages).0;
        let pointer = store::message_ref(&conv_id, msg.seq);
        let item = ItemId::Message(msg.server_id);
        let put =
            StreamPut { stream: Stream::Messages, seq: m_seq, item: &item, payload: Some(&pointer), replaced: None };
        batch.put_stream_item(app, user, put);
        if listed {
            self.dirty_convs.insert((app, user.clone(), conv.clone()));
        } else {
            put_conv_change(batch, app, user, &mut entry.heads, &mut view);
        }
        convs.insert(conv, view);
        let targets = devices_but(&entry.devices, exclude);
        // The receiver has no device online: the server sends the receipt itself.
        let server_receipt = msg.receiver() == Some(user) && entry.devices.is_empty();
        self.remember_stream_pos(app, user, msg, m_seq);
        // Built only for someone to get it: the sender's own delivery usually has no device
        // left once the sending one is excluded.
        let push = (!targets.is_empty()).then(|| {
            let frame = message_push(msg, user, m_seq);
            (targets, frame)
        });
        Some(Recorded { push, server_receipt })
    }

    /// Remembers where a message sits in a user's Messages stream, and what it is (bounded,
    /// oldest dropped).
    pub(in crate::shard) fn remember_stream_pos(
        &mut self,
        app: AppId,
        user: &UserId,
        msg: &MessageRecord,
        stream_seq: u64,
    ) {
        let key = self.keyer.key((app.0, user.as_str(), msg.server_id));
        let peer = msg.seen_by(user);
        let d = RecentDelivery { stream_seq, conv_seq: msg.seq, peer: self.keyer.key(peer.id_str()) };
        self.recent_stream.insert(key, d);
    }

    /// Records a recall in `user`'s streams (the message becomes a tombstone) and pushes it.
    /// A replay after a restart needs no special care: recording a recall twice leaves one
    /// tombstone in the stream.
    pub(in crate::shard) async fn recalled(&mut self, c: Recalled) {
        let Recalled { app, user, msg, by } = c;
        let mut batch = Batch::default();
        batch.delete_fanout(app, &user, msg.server_id, 1);
        if let Err(e) = self.ensure_convs(app, &user) {
            // The user is gone: nothing to record but the fan-out record to drop. (A store
            // failure keeps the record, for the next start.)
            if e == DomainError::UserNotFound {
                self.commit(batch, |_| {}).await;
            }
            return;
        }
        let item = ItemId::Message(msg.server_id);
        // Where the message sits now, if delivered recently: that entry moves to the new seq.
        // An older entry stays; it only refers to the message, which is now a tombstone, so
        // no body is left behind either way (a device sees the tombstone twice at most).
        let replaced =
            self.recent_stream.get(self.keyer.key((app.0, user.as_str(), msg.server_id))).map(|d| d.stream_seq);
        let Some(conv_id) = msg.conv() else { return };
        let pointer = store::message_ref(&conv_id, msg.seq);
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else { return };
        let m_seq = entry.heads.bump(Stream::Messages).0;
        let put = StreamPut { stream: Stream::Messages, seq: m_seq, item: &item, payload: Some(&pointer), replaced };
        batch.put_stream_item(app, &user, put);
        let conv = msg.seen_by(&user);
        if let Some(convs) = entry.convs.as_mut() {
            // A hidden entry only changes in memory (its last message must not keep the body);
            // a visible one also in the stream.
            if let Some(v) = convs.get(&conv).filter(|v| v.hidden).and_then(|v| conversation::on_recall(v, &msg)) {
                convs.insert(conv.clone(), v);
            }
            let visible = convs.get(&conv).filter(|v| !v.hidden);
            if let Some(mut v) = visible.and_then(|v| conversation::on_recall(v, &msg)) {
                put_conv_change(&mut batch, app, &user, &mut entry.heads, &mut v);
                convs.insert(conv, v);
            }
        }
        let targets: Vec<Outbox> = entry.devices.iter().map(|d| d.outbox.clone()).collect();
        let frame = recall_push(&msg, &user, &by, m_seq);
        self.remember_stream_pos(app, &user, &msg, m_seq);
        self.commit_push(batch, targets, frame).await;
    }

    /// Relays a receive-ack to the sender's devices. Checks that the message exists and was
    /// sent by `user` to `by`.
    pub(in crate::shard) fn receipt(&mut self, c: Receipt) {
        let Receipt { app, user, by, server_id, seq, origin } = c;
        // The message must be of this pair at this seq. (Which of the two sent it is not
        // checked: a false claim would only be about the acker's own receipt.) A message
        // recorded recently in the user's stream is checked from memory, others by one read.
        // After a store failure memory may hold deliveries that never became durable.
        let recent = match self.committer.has_failed() {
            true => None,
            false => self.recent_stream.get(self.keyer.key((app.0, user.as_str(), server_id))),
        };
        let check = match recent.map(|d| d.conv_seq == seq && d.peer == self.keyer.key(by.as_str())) {
            Some(true) => Ok(()),
            Some(false) => Err(DomainError::MessageNotFound),
            None => self.stored_receipt_check(app, &user, &by, server_id, seq),
        };
        match check {
            Ok(()) => {
                self.push_local(app, &user, &receipt_push(&by, server_id, seq, false));
                origin.outbox.send(protocol::ok(origin.req_id));
            }
            Err(e) => {
                origin.outbox.send(e.frame(origin.req_id));
            }
        }
        drop(origin.answered);
    }

    fn stored_receipt_check(
        &self,
        app: AppId,
        user: &UserId,
        by: &UserId,
        server_id: u64,
        seq: u64,
    ) -> Result<(), DomainError> {
        match self.store.message_location(app, server_id) {
            Ok(Some((conv, s))) if s == seq && Pair::new(user, by).is_some_and(|p| conv == ConvId::P2p(p)) => Ok(()),
            Ok(_) => Err(DomainError::MessageNotFound),
            Err(e) => {
                tracing::error!(error = %e, "reading a message location");
                Err(DomainError::StorageUnavailable)
            }
        }
    }

    /// "Read up to seq" for one of my conversations.
    pub(in crate::shard) async fn read(&mut self, c: ReadConversation) {
        let ReadConversation { app, user, conv, seq, origin, by, reply } = c;
        if let Err(e) = self.ensure_convs(app, &user) {
            let _ = reply.send(Err(e));
            return;
        }
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else {
            let _ = reply.send(Err(DomainError::UserNotFound));
            return;
        };
        let convs = entry.convs.get_or_insert_with(Default::default);
        let Some(current) = convs.get(&conv).filter(|v| !v.hidden) else {
            let _ = reply.send(Err(DomainError::ConversationNotFound));
            return;
        };
        let Some(mut v) = conversation::read(current, seq) else {
            // Nothing new in memory. But the read seq may have moved by my own sends, which
            // are written behind: an acknowledged read must be durable, so write it now.
            if self.dirty_convs.remove(&(app, user.clone(), conv.clone())) {
                let mut batch = Batch::default();
                batch.put_user_conv(app, &user, &conv, current.encode());
                self.commit(batch, move |r| {
                    let _ = reply.send(r);
                })
                .await;
                return;
            }
            self.after_pending(move |r| {
                let _ = reply.send(r);
            })
            .await;
            return;
        };
        let mut batch = Batch::default();
        put_conv_change(&mut batch, app, &user, &mut entry.heads, &mut v);
        let own = conversation_changed_push(&user, &v);
        let targets = devices_but(&entry.devices, origin);
        let read_seq = v.read_seq;
        convs.insert(conv.clone(), v);
        let event = match conv {
            ConvRef::P2p(_) => Event::C2cAfterMsgReport,
            ConvRef::Group(_) => Event::GroupAfterMsgReport,
        };
        self.report(&mut batch, (app, event, Some(&by)), || {
            let mut f = Map::new();
            f.insert("Report_Account".into(), user.as_str().into());
            match &conv {
                ConvRef::P2p(peer) => f.insert("Peer_Account".into(), peer.as_str().into()),
                ConvRef::Group(g) => f.insert("GroupId".into(), g.as_str().into()),
            };
            f.insert("ReadSeq".into(), read_seq.into());
            f.insert("LastReadTime".into(), (crate::now_ms() / 1000).into());
            f
        });
        // A group's copy of my read seq (for its read receipts) follows, on its shard.
        let group_read = match &conv {
            ConvRef::Group(g) => Some(GroupMemberRead { app, group: g.clone(), user: user.clone(), seq: read_seq }),
            ConvRef::P2p(_) => None,
        };
        let kept = self.kept.clone();
        self.commit(batch, move |r| {
            let ok = r.is_ok();
            let _ = reply.send(r);
            if ok {
                for t in &targets {
                    t.send(own.clone());
                }
                if let ConvRef::P2p(peer) = &conv {
                    kept.push(app, peer, read_receipt_push(&user, read_seq));
                }
            }
        })
        .await;
        if let Some(r) = group_read {
            let shard = self.router.conv_shard(app, &ConvId::Group(r.group.clone()));
            self.send_to(shard, r.into());
        }
    }
}

fn read_receipt_push(reader: &UserId, read_seq: u64) -> Bytes {
    protocol::push(|fbb| {
        let conv = dw::conv_id(fbb, &ConvRef::P2p(reader.clone()));
        let u = fbb.create_string(reader.as_str());
        let p = wire::ReadReceiptPush::create(
            fbb,
            &wire::ReadReceiptPushArgs { conv: Some(conv), user_id: Some(u), read_seq },
        );
        (wire::Push::ReadReceiptPush, p.as_union_value())
    })
}
