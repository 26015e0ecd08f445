//! Friend tags (friend groups on the wire): create, delete, add or remove members; list.

use crate::domain::friend::{self};
use crate::domain::DomainError;
use crate::shard::cmd::{FriendTag, FriendTags, GetFriendTags, TagOp};
use crate::shard::common::or_reply;
use crate::shard::state::Shard;
use crate::store::Batch;

use super::*;

impl Shard {
    /// Friend tags (friend groups on the wire): create (with members), delete, add or remove members. Members must be
    /// my friends.
    pub(in crate::shard) async fn friend_tag(&mut self, c: FriendTag) {
        let FriendTag { app, user, name, op, members, origin, reply } = c;
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

    pub(in crate::shard) async fn get_friend_tags(&mut self, c: GetFriendTags) {
        let GetFriendTags { app, user, reply } = c;
        let s = or_reply!(reply, self.social(app, &user));
        let out: FriendTags = s.tags.iter().map(|(n, m)| (n.clone(), m.iter().cloned().collect())).collect();
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| out));
        })
        .await;
    }
}
