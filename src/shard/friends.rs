//! Shard handlers for friendship: each user's shard owns that user's side of every
//! friendship, their blacklist and the friend requests they received (loaded on first use).
//! Two-sided operations are sequences of one-sided steps driven by `net::dispatch::friends`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::domain::friend::{self, AddInfo, BlackEntry, FriendEntry, FriendRequest, Inbound};
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::message::Pair;
use crate::domain::page;
use crate::domain::sync::{Heads, Stream};
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::{FriendTags, FriendPage, TagOp, InboundAnswer, RelationAnswers, Reply};
use crate::shard::outbox::Outbox;
use crate::shard::state::{now_ms, Shard};
use crate::store::Batch;

/// One user's friendship state.
#[derive(Default)]
pub(super) struct Social {
    pub friends: HashMap<UserId, FriendEntry>,
    pub blacks: HashMap<UserId, BlackEntry>,
    pub requests: BTreeMap<u64, FriendRequest>,
    /// Friend tags (the wire calls them friend groups): name -> members.
    pub tags: BTreeMap<String, std::collections::BTreeSet<UserId>>,
    /// Where the tombstones of deleted friends / blacklist entries sit in their streams, so
    /// that adding one again moves its entry (a stream holds each item once).
    pub friend_tombs: HashMap<UserId, u64>,
    pub black_tombs: HashMap<UserId, u64>,
}

/// What the conversation's shard knows of a pair for the send checks.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PairRelation {
    pub lo_friend_hi: bool,
    pub hi_friend_lo: bool,
    pub lo_black_hi: bool,
    pub hi_black_lo: bool,
}

/// A friendship event that is not an entry of the receiver's streams.
fn friend_event(kind: &str, user: &UserId) -> Bytes {
    protocol::push(|fbb| {
        let k = fbb.create_string(kind);
        let u = fbb.create_string(user.as_str());
        let p = wire::FriendEventPush::create(fbb, &wire::FriendEventPushArgs { kind: Some(k), user_id: Some(u) });
        (wire::Push::FriendEventPush, p.as_union_value())
    })
}

/// A `SyncChangedPush` for one item of a friendship stream.
fn changed_push(stream: Stream, seq: u64, id: &str, deleted: bool, payload: Option<&[u8]>) -> Bytes {
    protocol::push(|fbb| {
        let item_id = fbb.create_string(id);
        let (friend, friend_request, black) = match (stream, payload) {
            (Stream::Friends, Some(p)) => (FriendEntry::decode(p).ok().map(|f| friend_wire(fbb, &f)), None, None),
            (Stream::FriendRequests, Some(p)) => {
                (None, FriendRequest::decode(p).ok().map(|r| request_wire(fbb, &r)), None)
            }
            (Stream::Blacklist, Some(p)) => (None, None, BlackEntry::decode(p).ok().map(|b| black_wire(fbb, &b))),
            _ => (None, None, None),
        };
        let item = wire::SyncItem::create(
            fbb,
            &wire::SyncItemArgs {
                seq,
                id: Some(item_id),
                deleted,
                friend,
                friend_request,
                black,
                ..Default::default()
            },
        );
        let p = wire::SyncChangedPush::create(
            fbb,
            &wire::SyncChangedPushArgs { stream: stream.to_wire(), item: Some(item) },
        );
        (wire::Push::SyncChangedPush, p.as_union_value())
    })
}

type Fbb<'a> = flatbuffers::FlatBufferBuilder<'a>;

pub fn friend_wire<'a>(fbb: &mut Fbb<'a>, f: &FriendEntry) -> flatbuffers::WIPOffset<wire::Friend<'a>> {
    let user_id = fbb.create_string(f.peer.as_str());
    let remark = fbb.create_string(&f.info.remark);
    let add_source = fbb.create_string(&f.info.add_source);
    let add_wording = fbb.create_string(&f.info.add_wording);
    let extra = fbb.create_string(&f.info.extra);
    wire::Friend::create(
        fbb,
        &wire::FriendArgs {
            user_id: Some(user_id),
            remark: Some(remark),
            add_source: Some(add_source),
            add_wording: Some(add_wording),
            extra: Some(extra),
            create_time_ms: f.create_ms,
            black: false,
            seq: f.stream_seq,
        },
    )
}

pub fn request_wire<'a>(fbb: &mut Fbb<'a>, r: &FriendRequest) -> flatbuffers::WIPOffset<wire::FriendRequest<'a>> {
    let from_user = fbb.create_string(r.from.as_str());
    let to_user = fbb.create_string(r.to.as_str());
    let remark = fbb.create_string(&r.info.remark);
    let add_source = fbb.create_string(&r.info.add_source);
    let add_wording = fbb.create_string(&r.info.add_wording);
    wire::FriendRequest::create(
        fbb,
        &wire::FriendRequestArgs {
            id: r.id,
            from_user: Some(from_user),
            to_user: Some(to_user),
            remark: Some(remark),
            add_source: Some(add_source),
            add_wording: Some(add_wording),
            state: r.state,
            read: r.read,
            create_time_ms: r.create_ms,
            update_time_ms: r.update_ms,
            seq: r.stream_seq,
        },
    )
}

pub fn black_wire<'a>(fbb: &mut Fbb<'a>, b: &BlackEntry) -> flatbuffers::WIPOffset<wire::BlackEntry<'a>> {
    let user_id = fbb.create_string(b.peer.as_str());
    wire::BlackEntry::create(
        fbb,
        &wire::BlackEntryArgs { user_id: Some(user_id), create_time_ms: b.create_ms, seq: b.stream_seq },
    )
}

fn storage(e: crate::store::StoreError) -> DomainError {
    tracing::error!(error = %e, "friendship store access");
    DomainError::StorageUnavailable
}

/// Evaluates a `Result`; on an error, answers `reply` with it and returns from the handler.
macro_rules! or_reply {
    ($reply:expr, $r:expr) => {
        match $r {
            Ok(v) => v,
            Err(e) => {
                let _ = $reply.send(Err(e));
                return;
            }
        }
    };
}

impl Shard {
    /// `user`'s friendship state (loaded if need be), to read it.
    pub(super) fn social(&mut self, app: AppId, user: &UserId) -> Result<&Social, DomainError> {
        Ok(self.social_mut(app, user)?.1)
    }

    /// `user`'s stream heads and friendship state (loaded if need be), to change them.
    fn social_mut(&mut self, app: AppId, user: &UserId) -> Result<(&mut Heads, &mut Social), DomainError> {
        self.ensure_social(app, user)?;
        let e = self.users.get_mut(&(app, user.clone())).ok_or(DomainError::UserNotFound)?;
        let s = e.social.as_mut().ok_or(DomainError::UserNotFound)?;
        Ok((&mut e.heads, s))
    }

    /// Loads `user`'s friendship state from the store the first time it is needed.
    pub(super) fn ensure_social(&mut self, app: AppId, user: &UserId) -> Result<(), DomainError> {
        let e = self.touch(app, user)?;
        if e.social.is_some() {
            return Ok(());
        }
        let was_loaded = e.loaded();
        let (friends, blacks, requests, tags) = self.store.user_social(app, user).map_err(storage)?;
        let mut s = Social::default();
        for v in friends {
            match FriendEntry::decode(&v) {
                Ok(f) => {
                    s.friends.insert(f.peer.clone(), f);
                }
                Err(_) => tracing::error!(user = %user, "skipping a friend entry that does not decode"),
            }
        }
        for v in blacks {
            match BlackEntry::decode(&v) {
                Ok(b) => {
                    s.blacks.insert(b.peer.clone(), b);
                }
                Err(_) => tracing::error!(user = %user, "skipping a blacklist entry that does not decode"),
            }
        }
        for v in requests {
            match FriendRequest::decode(&v) {
                Ok(r) => {
                    s.requests.insert(r.id, r);
                }
                Err(_) => tracing::error!(user = %user, "skipping a friend request that does not decode"),
            }
        }
        for (name, v) in tags {
            match (String::from_utf8(name), friend::decode_members(&v)) {
                (Ok(n), Ok(m)) => {
                    s.tags.insert(n, m.into_iter().collect());
                }
                _ => tracing::error!(user = %user, "skipping a friend tag that does not decode"),
            }
        }
        // Tombstones are found in the streams themselves (one entry per item, so this reads
        // as many entries as the user ever had friends / blacklist entries).
        for (stream, tombs) in [(Stream::Friends, &mut s.friend_tombs), (Stream::Blacklist, &mut s.black_tombs)] {
            let (entries, _) = self.store.read_stream(app, user, stream as u8, 0, usize::MAX).map_err(storage)?;
            for e in entries.into_iter().filter(|e| e.payload.is_none()) {
                if let Some(peer) = std::str::from_utf8(&e.item).ok().and_then(UserId::new) {
                    tombs.insert(peer, e.seq);
                }
            }
        }
        if let Some(e) = self.users.get_mut(&(app, user.clone())) {
            e.social = Some(s);
            if !was_loaded {
                self.loaded += 1;
            }
        }
        Ok(())
    }

    /// Friend tags (friend groups on the wire): create (with members), delete, add or remove members. Members must be
    /// my friends.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn friend_tag(
        &mut self,
        app: AppId,
        user: UserId,
        name: String,
        op: TagOp,
        members: Vec<UserId>,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    ) {
        let max_tags = self.cfg.limits.max_friend_groups;
        let (_, s) = or_reply!(reply, self.social_mut(app, &user));
        if matches!(op, TagOp::Create | TagOp::Add) && members.iter().any(|m| !s.friends.contains_key(m)) {
            let _ = reply.send(Err(DomainError::NotFriends));
            return;
        }
        let mut batch = Batch::default();
        let r = match op {
            TagOp::Create if s.tags.contains_key(&name) => Err(DomainError::FriendTagExists),
            TagOp::Create if s.tags.len() >= max_tags => Err(DomainError::LimitExceeded("friend groups")),
            TagOp::Create => {
                s.tags.insert(name.clone(), members.into_iter().collect());
                Ok(())
            }
            _ if !s.tags.contains_key(&name) => Err(DomainError::FriendTagNotFound),
            TagOp::Delete => {
                s.tags.remove(&name);
                batch.delete_friend_tag(app, &user, &name);
                Ok(())
            }
            TagOp::Add | TagOp::Remove => {
                if let Some(g) = s.tags.get_mut(&name) {
                    for m in members {
                        if op == TagOp::Add {
                            g.insert(m);
                        } else {
                            g.remove(&m);
                        }
                    }
                }
                Ok(())
            }
        };
        if let Err(e) = r {
            let _ = reply.send(Err(e));
            return;
        }
        if let Some(g) = s.tags.get(&name) {
            batch.put_friend_tag(app, &user, &name, friend::encode_members(g.iter()));
        }
        // My other devices re-read their friend tags.
        let targets = self.devices_but(app, &user, origin);
        let frame = friend_event("groups_changed", &user);
        self.commit(batch, move |r| {
            if r.is_ok() {
                for t in &targets {
                    t.send(frame.clone());
                }
            }
            let _ = reply.send(r);
        })
        .await;
    }

    pub(super) async fn get_friend_tags(
        &mut self,
        app: AppId,
        user: UserId,
        reply: Reply<Result<FriendTags, DomainError>>,
    ) {
        let s = or_reply!(reply, self.social(app, &user));
        let out: FriendTags = s.tags.iter().map(|(n, m)| (n.clone(), m.iter().cloned().collect())).collect();
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| out));
        })
        .await;
    }

    /// `user`'s devices but `origin`.
    fn devices_but(&self, app: AppId, user: &UserId, origin: Option<ConnId>) -> Vec<Outbox> {
        self.users
            .get(&(app, user.clone()))
            .map(|e| e.devices.iter().filter(|d| Some(d.outbox.conn()) != origin).map(|d| d.outbox.clone()).collect())
            .unwrap_or_default()
    }

    /// Commits `batch`, then answers and pushes `frames` to `targets`.
    async fn commit_then<T: Send + 'static>(
        &self,
        batch: Batch,
        targets: Vec<Outbox>,
        frames: Vec<Bytes>,
        reply: Reply<Result<T, DomainError>>,
        value: T,
    ) {
        self.commit(batch, move |r| match r {
            Ok(()) => {
                for t in &targets {
                    for f in &frames {
                        t.send(f.clone());
                    }
                }
                let _ = reply.send(Ok(value));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        })
        .await;
    }

    /// Whether `user` already has `peer` as a friend; `LimitExceeded` when not and `user` is
    /// at the friend limit.
    pub(super) fn friend_precheck(
        &mut self,
        app: AppId,
        user: UserId,
        peer: UserId,
        reply: Reply<Result<bool, DomainError>>,
    ) {
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
    fn add_side(
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
        batch.put_stream_item(app, user, Stream::Friends as u8, seq, peer.as_str().as_bytes(), Some(&[]), replaced);
        s.friends.insert(peer.clone(), f.clone());
        let push = changed_push(Stream::Friends, seq, peer.as_str(), false, Some(&enc));
        Some((f, Some(push)))
    }

    pub(super) async fn friend_inbound(
        &mut self,
        app: AppId,
        user: UserId,
        from: UserId,
        info: AddInfo,
        by_admin: bool,
        reply: Reply<Result<InboundAnswer, DomainError>>,
    ) {
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
                        let tomb = entry.heads.bump(Stream::FriendRequests).0;
                        batch.delete_friend_request(app, &user, o);
                        batch.put_stream_item(
                            app,
                            &user,
                            Stream::FriendRequests as u8,
                            tomb,
                            &o.to_be_bytes(),
                            None,
                            Some(r.stream_seq),
                        );
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
                batch.put_stream_item(
                    app,
                    &user,
                    Stream::FriendRequests as u8,
                    seq,
                    &id.to_be_bytes(),
                    Some(&[]),
                    replaced,
                );
                s.requests.insert(id, req.clone());
                // The oldest answered requests make room (tombstones in the stream); the check
                // above made sure there are enough of them.
                while s.requests.len() > max_requests {
                    let oldest_answered =
                        s.requests.values().find(|r| r.state != wire::RequestState::Pending).map(|r| r.id);
                    let Some(old_id) = oldest_answered else { break };
                    if let Some(r) = s.requests.remove(&old_id) {
                        let tomb = entry.heads.bump(Stream::FriendRequests).0;
                        batch.delete_friend_request(app, &user, old_id);
                        batch.put_stream_item(
                            app,
                            &user,
                            Stream::FriendRequests as u8,
                            tomb,
                            &old_id.to_be_bytes(),
                            None,
                            Some(r.stream_seq),
                        );
                    }
                }
                let push = changed_push(Stream::FriendRequests, seq, &id.to_string(), false, Some(&enc));
                self.commit_then(batch, targets, vec![push], reply, (Inbound::Requested, Some(req), false)).await;
            }
        }
    }

    pub(super) async fn friend_add_side(
        &mut self,
        app: AppId,
        user: UserId,
        peer: UserId,
        info: AddInfo,
        origin: Option<ConnId>,
        reply: Reply<Result<FriendEntry, DomainError>>,
    ) {
        or_reply!(reply, self.ensure_social(app, &user));
        if self.users.get(&(app, user.clone())).is_some_and(|e| e.rec.deleted) {
            let _ = reply.send(Err(DomainError::UserDeleted));
            return;
        }
        let targets = self.devices_but(app, &user, origin);
        let mut batch = Batch::default();
        let Some((f, push)) = self.add_side(app, &user, &peer, info, &mut batch) else { return };
        self.commit_then(batch, targets, push.into_iter().collect(), reply, f).await;
    }

    pub(super) async fn friend_delete(
        &mut self,
        app: AppId,
        user: UserId,
        peer: Option<UserId>,
        origin: Option<ConnId>,
        reply: Reply<Result<Vec<UserId>, DomainError>>,
    ) {
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
                batch.put_stream_item(
                    app,
                    &user,
                    Stream::Friends as u8,
                    seq,
                    p.as_str().as_bytes(),
                    None,
                    Some(f.stream_seq),
                );
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

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn friend_update(
        &mut self,
        app: AppId,
        user: UserId,
        peer: UserId,
        remark: Option<String>,
        extra: Option<String>,
        origin: Option<ConnId>,
        reply: Reply<Result<FriendEntry, DomainError>>,
    ) {
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
        batch.put_stream_item(
            app,
            &user,
            Stream::Friends as u8,
            f.stream_seq,
            peer.as_str().as_bytes(),
            Some(&[]),
            Some(old),
        );
        s.friends.insert(peer.clone(), f.clone());
        let push = changed_push(Stream::Friends, f.stream_seq, peer.as_str(), false, Some(&enc));
        self.commit_then(batch, targets, vec![push], reply, f).await;
    }

    pub(super) async fn relations(
        &mut self,
        app: AppId,
        pairs: Vec<(UserId, UserId)>,
        reply: Reply<Result<RelationAnswers, DomainError>>,
    ) {
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

    pub(super) async fn relation(
        &mut self,
        app: AppId,
        user: UserId,
        peer: UserId,
        reply: Reply<Result<(Option<FriendEntry>, bool), DomainError>>,
    ) {
        let s = or_reply!(reply, self.social(app, &user));
        let out = (s.friends.get(&peer).cloned(), s.blacks.contains_key(&peer));
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| out));
        })
        .await;
    }

    pub(super) async fn get_friends(
        &mut self,
        app: AppId,
        user: UserId,
        after: u64,
        limit: usize,
        reply: Reply<Result<FriendPage, DomainError>>,
    ) {
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

    pub(super) async fn black_add(
        &mut self,
        app: AppId,
        user: UserId,
        peer: UserId,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    ) {
        if !self.facts.contains_key(&(app, peer.clone())) {
            let _ = reply.send(Err(DomainError::UserNotFound));
            return;
        }
        let max_blacklist = self.cfg.limits.max_blacklist;
        let targets = self.devices_but(app, &user, origin);
        let (heads, s) = or_reply!(reply, self.social_mut(app, &user));
        if s.blacks.contains_key(&peer) {
            let _ = reply.send(Err(DomainError::AlreadyInBlacklist));
            return;
        }
        if s.blacks.len() >= max_blacklist {
            let _ = reply.send(Err(DomainError::LimitExceeded("blacklist entries")));
            return;
        }
        let seq = heads.bump(Stream::Blacklist).0;
        let b = BlackEntry { peer: peer.clone(), create_ms: now_ms(), stream_seq: seq };
        let enc = b.encode();
        let replaced = s.black_tombs.remove(&peer);
        let mut batch = Batch::default();
        batch.put_black(app, &user, &peer, enc.clone());
        batch.put_stream_item(app, &user, Stream::Blacklist as u8, seq, peer.as_str().as_bytes(), Some(&[]), replaced);
        s.blacks.insert(peer.clone(), b);
        let push = changed_push(Stream::Blacklist, seq, peer.as_str(), false, Some(&enc));
        self.commit_then(batch, targets, vec![push], reply, ()).await;
    }

    pub(super) async fn black_delete(
        &mut self,
        app: AppId,
        user: UserId,
        peer: UserId,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    ) {
        let targets = self.devices_but(app, &user, origin);
        let (heads, s) = or_reply!(reply, self.social_mut(app, &user));
        let Some(b) = s.blacks.remove(&peer) else {
            let _ = reply.send(Err(DomainError::NotInBlacklist));
            return;
        };
        let seq = heads.bump(Stream::Blacklist).0;
        let mut batch = Batch::default();
        batch.delete_black(app, &user, &peer);
        batch.put_stream_item(
            app,
            &user,
            Stream::Blacklist as u8,
            seq,
            peer.as_str().as_bytes(),
            None,
            Some(b.stream_seq),
        );
        s.black_tombs.insert(peer.clone(), seq);
        let push = changed_push(Stream::Blacklist, seq, peer.as_str(), true, None);
        self.commit_then(batch, targets, vec![push], reply, ()).await;
    }

    pub(super) async fn get_friend_requests(
        &mut self,
        app: AppId,
        user: UserId,
        reply: Reply<Result<Vec<FriendRequest>, DomainError>>,
    ) {
        let s = or_reply!(reply, self.social(app, &user));
        let list: Vec<FriendRequest> = s.requests.values().cloned().collect();
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| list));
        })
        .await;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn answer_friend_request(
        &mut self,
        app: AppId,
        user: UserId,
        id: u64,
        approve: bool,
        remark: String,
        origin: Option<ConnId>,
        reply: Reply<Result<FriendRequest, DomainError>>,
    ) {
        let max_friends = self.cfg.limits.max_friends;
        let targets = self.devices_but(app, &user, origin);
        let (heads, s) = or_reply!(reply, self.social_mut(app, &user));
        // Approving an approved request again (a retry after an interrupted approve) answers
        // it again, so the caller completes the requester's side.
        if let Some(r) = s.requests.get(&id).filter(|r| approve && r.state == wire::RequestState::Approved) {
            let r = r.clone();
            self.after_pending(move |res| {
                let _ = reply.send(res.map(|()| r));
            })
            .await;
            return;
        }
        let mut req = match friend::answerable(s.requests.get(&id)) {
            Ok(r) => r.clone(),
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if approve && !s.friends.contains_key(&req.from) && s.friends.len() >= max_friends {
            let _ = reply.send(Err(DomainError::LimitExceeded("friends")));
            return;
        }
        let old = req.stream_seq;
        req.state = if approve { wire::RequestState::Approved } else { wire::RequestState::Rejected };
        req.read = true;
        req.update_ms = now_ms();
        req.stream_seq = heads.bump(Stream::FriendRequests).0;
        let enc = req.encode();
        let mut batch = Batch::default();
        batch.put_friend_request(app, &user, id, enc.clone());
        batch.put_stream_item(
            app,
            &user,
            Stream::FriendRequests as u8,
            req.stream_seq,
            &id.to_be_bytes(),
            Some(&[]),
            Some(old),
        );
        s.requests.insert(id, req.clone());
        let mut frames = vec![changed_push(Stream::FriendRequests, req.stream_seq, &id.to_string(), false, Some(&enc))];
        if approve {
            let info = AddInfo {
                remark,
                add_source: req.info.add_source.clone(),
                add_wording: String::new(),
                extra: String::new(),
            };
            if let Some((_, Some(push))) = self.add_side(app, &user, &req.from, info, &mut batch) {
                frames.push(push);
            }
        }
        // The requester hears the answer too. It is not an entry of the requester's own
        // stream, so it carries seq 0 (which no stream uses): informational, no cursor move.
        let to_requester = changed_push(Stream::FriendRequests, 0, &id.to_string(), false, Some(&enc));
        let router = self.router.clone();
        let requester = req.from.clone();
        self.commit(batch, move |r| match r {
            Ok(()) => {
                for t in &targets {
                    for f in &frames {
                        t.send(f.clone());
                    }
                }
                router.push(app, &requester, to_requester);
                let _ = reply.send(Ok(req));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        })
        .await;
    }

    pub(super) async fn read_all_friend_requests(
        &mut self,
        app: AppId,
        user: UserId,
        origin: Option<ConnId>,
        reply: Reply<Result<(), DomainError>>,
    ) {
        let targets = self.devices_but(app, &user, origin);
        let (heads, s) = or_reply!(reply, self.social_mut(app, &user));
        let mut batch = Batch::default();
        let mut frames = Vec::new();
        for r in s.requests.values_mut().filter(|r| !r.read) {
            let old = r.stream_seq;
            r.read = true;
            r.stream_seq = heads.bump(Stream::FriendRequests).0;
            let enc = r.encode();
            batch.put_friend_request(app, &user, r.id, enc.clone());
            batch.put_stream_item(
                app,
                &user,
                Stream::FriendRequests as u8,
                r.stream_seq,
                &r.id.to_be_bytes(),
                Some(&[]),
                Some(old),
            );
            frames.push(changed_push(Stream::FriendRequests, r.stream_seq, &r.id.to_string(), false, Some(&enc)));
        }
        self.commit_then(batch, targets, frames, reply, ()).await;
    }

    /// The relations of a pair, as cached by the conversation's shard for the send checks
    /// (read from the store on first use; dropped by `PairChanged`).
    pub(super) fn pair_relation(&mut self, app: AppId, pair: &Pair) -> Result<PairRelation, DomainError> {
        if let Some(r) = self.pair_rel.get(&(app, pair.clone())) {
            return Ok(*r);
        }
        let (lo_friend_hi, lo_black_hi) = self.store.relation(app, &pair.lo, &pair.hi).map_err(storage)?;
        let (hi_friend_lo, hi_black_lo) = self.store.relation(app, &pair.hi, &pair.lo).map_err(storage)?;
        let r = PairRelation { lo_friend_hi, hi_friend_lo, lo_black_hi, hi_black_lo };
        self.pair_rel.insert((app, pair.clone()), r);
        Ok(r)
    }

    pub(super) fn pair_changed(&mut self, app: AppId, pair: Pair, done: Reply<()>) {
        self.pair_rel.remove(&(app, pair));
        let _ = done.send(());
    }

    /// The friendship checks of a send from `from` to `to`.
    pub(super) fn check_pair(&mut self, app: AppId, from: &UserId, pair: &Pair) -> Result<(), DomainError> {
        let r = self.pair_relation(app, pair)?;
        let receiver_blocks_sender = if &pair.lo == from { r.hi_black_lo } else { r.lo_black_hi };
        if receiver_blocks_sender {
            return Err(DomainError::InBlacklist);
        }
        let required = self.cfg.app(app).is_some_and(|a| a.friendship_required);
        if required && !(r.lo_friend_hi && r.hi_friend_lo) {
            return Err(DomainError::FriendRequired);
        }
        Ok(())
    }
}
