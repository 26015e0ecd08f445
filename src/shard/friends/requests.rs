//! The friend requests a user received: list, approve or reject, mark all read.

use crate::domain::friend::{self, AddInfo, FriendRequest};
use crate::domain::sync::{ItemId, Stream};
use crate::domain::DomainError;
use crate::protocol::wire;
use crate::shard::cmd::{AnswerFriendRequest, GetFriendRequests, ReadAllFriendRequests};
use crate::shard::common::or_reply;
use crate::shard::state::{now_ms, Shard};
use crate::store::{Batch, StreamPut};

use super::*;

impl Shard {
    pub(in crate::shard) async fn get_friend_requests(&mut self, c: GetFriendRequests) {
        let GetFriendRequests { app, user, reply } = c;
        let s = or_reply!(reply, self.social(app, &user));
        let list: Vec<FriendRequest> = s.requests.values().cloned().collect();
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| list));
        })
        .await;
    }

    pub(in crate::shard) async fn answer_friend_request(&mut self, c: AnswerFriendRequest) {
        let AnswerFriendRequest { app, user, id, approve, remark, origin, reply } = c;
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
        let item = ItemId::Request(id);
        let put = StreamPut::marker(Stream::FriendRequests, req.stream_seq, &item, Some(old));
        batch.put_stream_item(app, &user, put);
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

    pub(in crate::shard) async fn read_all_friend_requests(&mut self, c: ReadAllFriendRequests) {
        let ReadAllFriendRequests { app, user, origin, reply } = c;
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
            let item = ItemId::Request(r.id);
            let put = StreamPut::marker(Stream::FriendRequests, r.stream_seq, &item, Some(old));
            batch.put_stream_item(app, &user, put);
            frames.push(changed_push(Stream::FriendRequests, r.stream_seq, &r.id.to_string(), false, Some(&enc)));
        }
        self.commit_then(batch, targets, frames, reply, ()).await;
    }
}
