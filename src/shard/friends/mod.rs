//! Shard handlers for friendship: each user's shard owns that user's side of every
//! friendship, their blacklist and the friend requests they received (loaded on first use).
//! Two-sided operations are sequences of one-sided steps driven by `flows::friends`. This file:
//! the wire encoders, loading a user's friendship state, and the pair relations the
//! conversation's shard checks sends with; by concern: `sides`, `blacklist`, `requests`, `tags`.

use bytes::Bytes;

use crate::domain::friend::{self, BlackEntry, FriendEntry, FriendRequest, PairRelation, Social};
use crate::domain::ids::Pair;
use crate::domain::ids::{AppId, UserId};
use crate::domain::sync::{Heads, Stream};
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::PairChanged;
use crate::shard::common::stored;
use crate::shard::state::Shard;

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

mod blacklist;
mod requests;
mod sides;
mod tags;

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
        let (friends, blacks, requests, tags) =
            self.store.user_social(app, user).map_err(stored("friendship store access"))?;
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
            let (entries, _) =
                self.store.read_stream(app, user, stream, 0, usize::MAX).map_err(stored("friendship store access"))?;
            for e in entries.into_iter().filter(|e| e.payload.is_none()) {
                if let crate::domain::sync::ItemId::User(peer) = e.item {
                    tombs.insert(peer, e.seq);
                }
            }
        }
        if let Some(e) = self.users.get_mut(&(app, user.clone())) {
            e.social = Some(s);
        }
        Ok(())
    }

    /// The relations of a pair, as cached by the conversation's shard for the send checks
    /// (read from the store on first use; dropped by `PairChanged`).
    pub(super) fn pair_relation(&mut self, app: AppId, pair: &Pair) -> Result<PairRelation, DomainError> {
        self.uses += 1;
        let used = self.uses;
        if let Some(r) = self.pair_rel.get_mut(&(app, pair.clone())) {
            r.used = used;
            return Ok(r.value);
        }
        let (lo_friend_hi, lo_black_hi) =
            self.store.relation(app, &pair.lo, &pair.hi).map_err(stored("friendship store access"))?;
        let (hi_friend_lo, hi_black_lo) =
            self.store.relation(app, &pair.hi, &pair.lo).map_err(stored("friendship store access"))?;
        let r = PairRelation { lo_friend_hi, hi_friend_lo, lo_black_hi, hi_black_lo };
        self.pair_rel.insert((app, pair.clone()), crate::shard::state::Stamped { value: r, used });
        Ok(r)
    }

    pub(super) fn pair_changed(&mut self, c: PairChanged) {
        let PairChanged { app, pair, done } = c;
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
