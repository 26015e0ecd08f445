//! One user's blacklist: add and delete.

use serde_json::{Map, Value};

use crate::callbacks::Event;
use crate::domain::friend::BlackEntry;
use crate::domain::ids::UserId;
use crate::domain::sync::{ItemId, Stream};
use crate::domain::DomainError;
use crate::shard::cmd::{BlackAdd, BlackDelete};
use crate::shard::common::or_reply;
use crate::shard::reports::pair_list;
use crate::shard::state::{now_ms, Shard};
use crate::store::{Batch, StreamPut};

use super::*;

impl Shard {
    pub(in crate::shard) async fn black_add(&mut self, c: BlackAdd) {
        let BlackAdd { app, user, peer, origin, by, reply } = c;
        if or_reply!(reply, self.facts_of(app, &peer)).is_none() {
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
        let item = ItemId::User(peer.clone());
        let put = StreamPut::marker(Stream::Blacklist, seq, &item, replaced);
        batch.put_stream_item(app, &user, put);
        s.blacks.insert(peer.clone(), b);
        let push = changed_push(Stream::Blacklist, seq, peer.as_str(), false, Some(&enc));
        self.report(&mut batch, (app, Event::SnsBlackListAdd, Some(&by)), || pairs(&user, &peer));
        self.commit_then(batch, targets, vec![push], reply, ()).await;
    }

    pub(in crate::shard) async fn black_delete(&mut self, c: BlackDelete) {
        let BlackDelete { app, user, peer, origin, by, reply } = c;
        let targets = self.devices_but(app, &user, origin);
        let (heads, s) = or_reply!(reply, self.social_mut(app, &user));
        let Some(b) = s.blacks.remove(&peer) else {
            let _ = reply.send(Err(DomainError::NotInBlacklist));
            return;
        };
        let seq = heads.bump(Stream::Blacklist).0;
        let mut batch = Batch::default();
        batch.delete_black(app, &user, &peer);
        let item = ItemId::User(peer.clone());
        let put = StreamPut::tombstone(Stream::Blacklist, seq, &item, Some(b.stream_seq));
        batch.put_stream_item(app, &user, put);
        s.black_tombs.insert(peer.clone(), seq);
        let push = changed_push(Stream::Blacklist, seq, peer.as_str(), true, None);
        self.report(&mut batch, (app, Event::SnsBlackListDelete, Some(&by)), || pairs(&user, &peer));
        self.commit_then(batch, targets, vec![push], reply, ()).await;
    }
}

/// A blacklist event's fields: who blacklisted whom.
fn pairs(user: &UserId, peer: &UserId) -> Map<String, Value> {
    let mut f = Map::new();
    f.insert("PairList".into(), pair_list(user, [peer]));
    f
}
