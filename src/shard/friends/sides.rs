//! One user's side of friendships: the pre-check, an incoming add (blacklist, policy), writing,
//! updating and deleting a side, and reading relations and the friend list.

use serde_json::{Map, Value};

use crate::callbacks::Event;
use crate::domain::friend::{self, AddInfo, FriendEntry, FriendRequest, Inbound};
use crate::domain::ids::{AppId, UserId};
use crate::domain::page;
use crate::domain::sync::{ItemId, Stream};
use crate::domain::DomainError;
use crate::protocol::wire;
use crate::shard::cmd::{
    FriendAddSide, FriendDelete, FriendInbound, FriendPrecheck, FriendUpdate, GetFriends, Relation, Relations,
};
use crate::shard::common::or_reply;
use crate::shard::reports::pair_list;
use crate::shard::state::{now_ms, Shard};
use crate::store::{Batch, StreamPut};
use bytes::Bytes;

use super::*;

impl Shard {
    /// Whether `user` already has `peer` as a friend; `LimitExceeded` when not and `user` is
    /// at the friend limit.
    pub(in crate::shard) fn friend_precheck(&mut self, c: FriendPrecheck) {
        let FriendPrecheck { app, user, peer, reply } = c;
        let max = self.cfg.limits.max_friends;
        let r = self.ensure_social(app, &user).and_then(|_| {
            let s = self.users.get(&(app, user.clone())).and_then(|e| e.social.as_ref());
            match s {
                Some(s) if s.friends.contains_key(&peer) => Ok(true),
                Some(s) if s.friends.len() >= max => Err(DomainError::LimitExceeded("friends")),
                _ => Ok(false),
            }
        });
        let _ = reply.send(r);
    }

    /// Writes `user`'s side of the friendship with `peer` into `batch` (none if it exists);
    /// returns the entry and the push for `user`'s devices.
    pub(super) fn add_side(
        &mut self,
        app: AppId,
        user: &UserId,
        peer: &UserId,
        info: AddInfo,
        batch: &mut Batch,
    ) -> Option<(FriendEntry, Option<Bytes>)> {
        let e = self.users.get_mut(&(app, user.clone()))?;
        let s = e.social.as_mut()?;
        if let Some(f) = s.friends.get(peer) {
            return Some((f.clone(), None));
        }
        let seq = e.heads.bump(Stream::Friends).0;
        let f = FriendEntry { peer: peer.clone(), info, create_ms: now_ms(), stream_seq: seq };
        let enc = f.encode();
        let replaced = s.friend_tombs.remove(peer);
        batch.put_friend(app, user, peer, enc.clone());
        let item = ItemId::User(peer.clone());
        let put = StreamPut::marker(Stream::Friends, seq, &item, replaced);
        batch.put_stream_item(app, user, put);
        s.friends.insert(peer.clone(), f.clone());
        let push = changed_push(Stream::Friends, seq, peer.as_str(), false, Some(&enc));
        Some((f, Some(push)))
    }

    pub(in crate::shard) async fn friend_inbound(&mut self, c: FriendInbound) {
        let FriendInbound { app, user, from, info, by_admin, reply } = c;
        or_reply!(reply, self.ensure_social(app, &user));
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else { return };
        if entry.rec.deleted {
            let _ = reply.send(Err(DomainError::UserDeleted));
            return;
        }
        let policy = entry.rec.friend_add_policy;
        let Some(s) = entry.social.as_mut() else { return };
        let blacklisted = s.blacks.contains_key(&from);
        // Already my friend (a one-way delete on the other side, or a retry): nothing to ask.
        if s.friends.contains_key(&from) && !blacklisted {
            self.after_pending(move |r| {
                let _ = reply.send(r.map(|()| (Inbound::Added, None, true)));
            })
            .await;
            return;
        }
        let decision = friend::inbound(policy, blacklisted, by_admin);
        if matches!(decision, Ok(Inbound::Added)) && s.friends.len() >= self.cfg.limits.max_friends {
            let _ = reply.send(Err(DomainError::LimitExceeded("friends")));
            return;
        }
        let max_requests = self.cfg.limits.max_friend_requests.max(1);
        let targets = self.devices_but(app, &user, None);
        let mut batch = Batch::default();
        match decision {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok(Inbound::Added) => {
                let Some((_, push)) = self.add_side(app, &user, &from, info, &mut batch) else { return };
                self.commit_then(batch, targets, push.into_iter().collect(), reply, (Inbound::Added, None, false))
                    .await;
            }
            Ok(Inbound::Requested) => {
                let id = self.ids.next(now_ms());
                let Some(entry) = self.users.get_mut(&(app, user.clone())) else { return };
                let Some(s) = entry.social.as_mut() else { return };
                // A new request from the same user replaces a pending one.
                let old: Vec<u64> = s
                    .requests
                    .values()
                    .filter(|r| r.from == from && r.state == wire::RequestState::Pending)
                    .map(|r| r.id)
                    .collect();
                // Received requests are bounded: the oldest answered ones make room (below);
                // when they cannot, the request is refused before anything changes.
                let answered = s.requests.values().filter(|r| r.state != wire::RequestState::Pending).count();
                if s.requests.len() - old.len() + 1 > max_requests.saturating_add(answered) {
                    let _ = reply.send(Err(DomainError::LimitExceeded("pending friend requests")));
                    return;
                }
                // The replaced request is deleted: a tombstone in the stream, gone from disk.
                for o in old {
                    if let Some(r) = s.requests.remove(&o) {
                        drop_request(&mut batch, app, &user, &mut entry.heads, &r);
                    }
                }
                let replaced = None;
                let now = now_ms();
                let seq = entry.heads.bump(Stream::FriendRequests).0;
                let req = FriendRequest {
                    id,
                    from: from.clone(),
                    to: user.clone(),
                    info,
                    state: wire::RequestState::Pending,
                    read: false,
                    create_ms: now,
                    update_ms: now,
                    stream_seq: seq,
                };
                let enc = req.encode();
                batch.put_friend_request(app, &user, id, enc.clone());
                let item = ItemId::Request(id);
                let put = StreamPut::marker(Stream::FriendRequests, seq, &item, replaced);
                batch.put_stream_item(app, &user, put);
                s.requests.insert(id, req.clone());
                // The oldest answered requests make room (tombstones in the stream); the check
                // above made sure there are enough of them.
                while s.requests.len() > max_requests {
                    let oldest_answered =
                        s.requests.values().find(|r| r.state != wire::RequestState::Pending).map(|r| r.id);
                    let Some(old_id) = oldest_answered else { break };
                    if let Some(r) = s.requests.remove(&old_id) {
                        drop_request(&mut batch, app, &user, &mut entry.heads, &r);
                    }
                }
                let push = changed_push(Stream::FriendRequests, seq, &id.to_string(), false, Some(&enc));
                self.commit_then(batch, targets, vec![push], reply, (Inbound::Requested, Some(req), false)).await;
            }
        }
    }

    pub(in crate::shard) async fn friend_add_side(&mut self, c: FriendAddSide) {
        let FriendAddSide { app, user, peer, info, origin, report, reply } = c;
        or_reply!(reply, self.ensure_social(app, &user));
        if self.users.get(&(app, user.clone())).is_some_and(|e| e.rec.deleted) {
            let _ = reply.send(Err(DomainError::UserDeleted));
            return;
        }
        let targets = self.devices_but(app, &user, origin);
        let mut batch = Batch::default();
        let Some((f, push)) = self.add_side(app, &user, &peer, info, &mut batch) else { return };
        // The friendship is complete with this side: reported if it is new (a retry that finds
        // both sides written reports nothing again).
        if let Some(b) = report.filter(|b| b.always || push.is_some()) {
            self.report(&mut batch, (app, Event::SnsFriendAdd, Some(&b.by)), || {
                let other = if b.initiator == user { &peer } else { &user };
                let mut f = Map::new();
                let pairs = [(&user, &peer), (&peer, &user)].map(|(a, z)| {
                    serde_json::json!({
                        "From_Account": a.as_str(),
                        "To_Account": z.as_str(),
                        "Initiator_Account": b.initiator.as_str(),
                    })
                });
                f.insert("PairList".into(), Value::Array(pairs.into()));
                f.insert("ClientCmd".into(), b.client_cmd.into());
                f.insert("Friend_Account".into(), other.as_str().into());
                f
            });
        }
        self.commit_then(batch, targets, push.into_iter().collect(), reply, f).await;
    }

    pub(in crate::shard) async fn friend_delete(&mut self, c: FriendDelete) {
        let FriendDelete { app, user, peer, origin, by, reply } = c;
        let targets = self.devices_but(app, &user, origin);
        let (heads, s) = or_reply!(reply, self.social_mut(app, &user));
        let peers: Vec<UserId> = match &peer {
            Some(p) if !s.friends.contains_key(p) => {
                let _ = reply.send(Err(DomainError::NotFriends));
                return;
            }
            Some(p) => vec![p.clone()],
            None => s.friends.keys().cloned().collect(),
        };
        let mut batch = Batch::default();
        let mut frames = Vec::with_capacity(peers.len());
        for p in &peers {
            if let Some(f) = s.friends.remove(p) {
                let seq = heads.bump(Stream::Friends).0;
                batch.delete_friend(app, &user, p);
                let item = ItemId::User(p.clone());
                let put = StreamPut::tombstone(Stream::Friends, seq, &item, Some(f.stream_seq));
                batch.put_stream_item(app, &user, put);
                s.friend_tombs.insert(p.clone(), seq);
                frames.push(changed_push(Stream::Friends, seq, p.as_str(), true, None));
                // A former friend leaves my friend tags too.
                for (name, members) in s.tags.iter_mut() {
                    if members.remove(p) {
                        batch.put_friend_tag(app, &user, name, friend::encode_members(members.iter()));
                    }
                }
            }
        }
        if !frames.is_empty() {
            self.report(&mut batch, (app, Event::SnsFriendDelete, Some(&by)), || {
                let mut f = Map::new();
                f.insert("PairList".into(), pair_list(&user, &peers));
                f
            });
        }
        // Each former friend hears of it (their own list does not change: deletes are one-way).
        let router = self.router.clone();
        let me = user.clone();
        let gone = peers.clone();
        self.commit(batch, move |r| match r {
            Ok(()) => {
                for t in &targets {
                    for f in &frames {
                        t.send(f.clone());
                    }
                }
                for p in &gone {
                    router.push(app, p, friend_event("deleted_you", &me));
                }
                let _ = reply.send(Ok(peers));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        })
        .await;
    }

    pub(in crate::shard) async fn friend_update(&mut self, c: FriendUpdate) {
        let FriendUpdate { app, user, peer, remark, extra, origin, reply } = c;
        let targets = self.devices_but(app, &user, origin);
        let (heads, s) = or_reply!(reply, self.social_mut(app, &user));
        let Some(mut f) = s.friends.get(&peer).cloned() else {
            let _ = reply.send(Err(DomainError::NotFriends));
            return;
        };
        if let Some(r) = remark {
            f.info.remark = r;
        }
        if let Some(x) = extra {
            f.info.extra = x;
        }
        if let Err(e) = f.info.validate() {
            let _ = reply.send(Err(e));
            return;
        }
        let old = f.stream_seq;
        f.stream_seq = heads.bump(Stream::Friends).0;
        let enc = f.encode();
        let mut batch = Batch::default();
        batch.put_friend(app, &user, &peer, enc.clone());
        let item = ItemId::User(peer.clone());
        let put = StreamPut::marker(Stream::Friends, f.stream_seq, &item, Some(old));
        batch.put_stream_item(app, &user, put);
        s.friends.insert(peer.clone(), f.clone());
        let push = changed_push(Stream::Friends, f.stream_seq, peer.as_str(), false, Some(&enc));
        self.commit_then(batch, targets, vec![push], reply, f).await;
    }

    pub(in crate::shard) async fn relations(&mut self, c: Relations) {
        let Relations { app, pairs, reply } = c;
        let mut out = Vec::with_capacity(pairs.len());
        for (owner, peer) in pairs {
            // A store failure fails the check rather than answering "no relation".
            let s = or_reply!(reply, self.social(app, &owner));
            let rel = (s.friends.contains_key(&peer), s.blacks.contains_key(&peer));
            out.push(((owner, peer), rel));
        }
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| out));
        })
        .await;
    }

    pub(in crate::shard) async fn relation(&mut self, c: Relation) {
        let Relation { app, user, peer, reply } = c;
        let s = or_reply!(reply, self.social(app, &user));
        let out = (s.friends.get(&peer).cloned(), s.blacks.contains_key(&peer));
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| out));
        })
        .await;
    }

    pub(in crate::shard) async fn get_friends(&mut self, c: GetFriends) {
        let GetFriends { app, user, after, limit, reply } = c;
        let s = or_reply!(reply, self.social(app, &user));
        let mut list: Vec<FriendEntry> = s.friends.values().filter(|f| f.stream_seq > after).cloned().collect();
        list.sort_by_key(|f| f.stream_seq);
        let more = list.len() > limit;
        list.truncate(limit);
        let more = page::cut(&mut list, page::PAGE_BYTES) || more;
        let head = list.last().map_or(after, |f| f.stream_seq);
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| (list, head, more)));
        })
        .await;
    }
}

/// Deletes a received friend request: gone from disk, a tombstone in the FriendRequests
/// stream in place of its entry.
fn drop_request(batch: &mut Batch, app: AppId, user: &UserId, heads: &mut Heads, r: &FriendRequest) {
    let tomb = heads.bump(Stream::FriendRequests).0;
    batch.delete_friend_request(app, user, r.id);
    let item = ItemId::Request(r.id);
    let put = StreamPut::tombstone(Stream::FriendRequests, tomb, &item, Some(r.stream_seq));
    batch.put_stream_item(app, user, put);
}
