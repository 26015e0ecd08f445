//! Shard handlers for sessions and users: login/disconnect with the multi-device policy,
//! import, delete, read, modify, online status and its subscriptions, and the generic sync read.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Map;

use crate::callbacks::Event;
use crate::domain::ids::{AppId, UserId};
use crate::domain::page;
use crate::domain::presence::{devices_to_kick, DeviceView};
use crate::domain::sync::{Change, ItemId, Stream, SyncPage};
use crate::domain::user::{self, FieldMask};
use crate::domain::wire::{self as dw, DeviceStatus, UserStatus};
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::{
    DeleteUsers, Disconnect, GetUsers, ImportUsers, Login, ModifyUser, QueryStatus, ReadStream, Subscribe, Unsubscribe,
};
use crate::shard::common::or_reply;
use crate::shard::reports::profile_items;
use crate::shard::state::{devices_but, now_ms, Device, Shard, UserEntry};
use crate::store::Batch;

fn status_of(user: &UserId, e: Option<&UserEntry>) -> UserStatus {
    UserStatus {
        user: user.clone(),
        devices: e
            .map(|e| {
                e.devices
                    .iter()
                    .map(|d| DeviceStatus {
                        client_type: d.client_type,
                        device_id: d.device_id.clone(),
                        login_ms: d.login_ms,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Removes `item` from the expiry index at `until`.
fn unindex(expiries: &mut BTreeMap<u64, Vec<(AppId, UserId, UserId)>>, until: u64, item: &(AppId, UserId, UserId)) {
    if let Some(v) = expiries.get_mut(&until) {
        v.retain(|x| x != item);
        if v.is_empty() {
            expiries.remove(&until);
        }
    }
}

fn status_push(s: &UserStatus) -> Bytes {
    protocol::push(|fbb| {
        let status = dw::user_status(fbb, s);
        let p = wire::StatusChangedPush::create(fbb, &wire::StatusChangedPushArgs { status: Some(status) });
        (wire::Push::StatusChangedPush, p.as_union_value())
    })
}

impl Shard {
    pub(super) async fn login(&mut self, c: Login) {
        let Login { app, user, device: dev, reply } = c;
        let policy = self.cfg.app(app).map(|a| a.multi_device).unwrap_or_default();
        let max = self.cfg.limits.max_devices_per_user;
        let Some(entry) = or_reply!(reply, self.user_entry(app, &user)) else {
            let _ = reply.send(Err(DomainError::UserNotFound));
            return;
        };
        if let Err(e) = user::check_login(Some(&entry.rec)) {
            let _ = reply.send(Err(e));
            return;
        }
        let now = now_ms();
        let new = DeviceView { client_type: dev.client_type, device_id: &dev.device_id, login_ms: now };
        let views: Vec<DeviceView<'_>> = entry
            .devices
            .iter()
            .map(|d| DeviceView { client_type: d.client_type, device_id: &d.device_id, login_ms: d.login_ms })
            .collect();
        let kick = devices_to_kick(policy, max, &views, new);
        let mut kicked = Vec::with_capacity(kick.len());
        for i in kick.into_iter().rev() {
            let old = entry.devices.remove(i);
            old.outbox.close(wire::KickReason::OtherDeviceLogin);
            kicked.push(old.client_type);
        }
        let (platform, online) = (dev.client_type, entry.devices.len() + 1);
        let mut batch = Batch::default();
        self.report_state(&mut batch, (app, &user), ("Login", "Login"), (platform, &dev.device_id), (online, &kicked));
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else { return };
        entry.devices.push(Device {
            outbox: dev.outbox,
            client_type: dev.client_type,
            device_id: dev.device_id,
            login_ms: now,
        });
        self.status_changed(app, &user);
        // The login is answered once its status event (if the app wants one) is durable.
        let then = move |r| {
            let _ = reply.send(r);
        };
        if batch.is_empty() {
            self.after_pending(then).await;
        } else {
            self.commit(batch, then).await;
        }
    }

    pub(super) async fn disconnect(&mut self, c: Disconnect) {
        let Disconnect { app, user, conn, reason } = c;
        let Some(entry) = self.users.get_mut(&(app, user.clone())) else {
            return;
        };
        let Some(i) = entry.devices.iter().position(|d| d.outbox.conn() == conn) else { return };
        let gone = entry.devices.remove(i);
        let online = entry.devices.len();
        self.status_changed(app, &user);
        let action = if reason == wire::KickReason::Logout { "Logout" } else { "Disconnect" };
        let why = reason.variant_name().unwrap_or("Unknown");
        let mut batch = Batch::default();
        self.report_state(&mut batch, (app, &user), (action, why), (gone.client_type, &gone.device_id), (online, &[]));
        if !batch.is_empty() {
            self.commit(batch, |_| {}).await;
        }
    }

    /// Tells every live subscriber of `user` its current status, now. For presence changes,
    /// which are not stored.
    fn status_changed(&mut self, app: AppId, user: &UserId) {
        for (s, frame) in self.status_pushes(app, user) {
            self.push_to_user(app, &s, frame);
        }
    }

    /// The status pushes owed to `user`'s live subscribers.
    fn status_pushes(&self, app: AppId, user: &UserId) -> Vec<(UserId, Bytes)> {
        let now = now_ms();
        let Some(entry) = self.users.get(&(app, user.clone())) else {
            return Vec::new();
        };
        let subs: Vec<UserId> =
            entry.subscribers.iter().filter(|(_, &until)| until > now).map(|(s, _)| s.clone()).collect();
        if subs.is_empty() {
            return Vec::new();
        }
        let frame = status_push(&status_of(user, Some(entry)));
        subs.into_iter().map(|s| (s, frame.clone())).collect()
    }

    pub(super) async fn import_users(&mut self, c: ImportUsers) {
        let ImportUsers { app, users, reply } = c;
        let now = now_ms();
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(users.len());
        let mut facts = Vec::new();
        for offered in users {
            let id = offered.id.clone();
            let imported = self.user_rec(app, &id).and_then(|existing| user::import(existing, offered, now));
            match imported {
                Ok(rec) => {
                    batch.put_user(app, &id, rec.encode());
                    // In memory before it is durable, so a second import in flight sees it.
                    self.uses += 1;
                    let mut e = UserEntry::new(rec);
                    e.last_used = self.uses;
                    self.users.insert((app, id.clone()), e);
                    facts.push(id.clone());
                    out.push((id, Ok(())));
                }
                Err(e) => out.push((id, Err(e))),
            }
        }
        self.commit(batch, move |r| {
            let (out, facts) = match r {
                Ok(()) => (out, facts),
                Err(e) => (out.into_iter().map(|(id, _)| (id, Err(e.clone()))).collect(), Vec::new()),
            };
            let _ = reply.send((out, facts));
        })
        .await;
    }

    pub(super) async fn delete_users(&mut self, c: DeleteUsers) {
        let DeleteUsers { app, users, reply } = c;
        let now = now_ms();
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(users.len());
        let mut facts = Vec::new();
        let mut kicked = Vec::new();
        let mut pushes = Vec::new();
        for id in users {
            let deleted = self.user_rec(app, &id).and_then(|existing| user::delete(existing, now));
            match deleted {
                Ok(rec) => {
                    batch.put_user(app, &id, rec.encode());
                    if let Some(e) = self.users.get_mut(&(app, id.clone())) {
                        e.rec = rec;
                        kicked.extend(std::mem::take(&mut e.devices).into_iter().map(|d| d.outbox));
                    }
                    pushes.extend(self.status_pushes(app, &id));
                    facts.push(id.clone());
                    out.push((id, Ok(())));
                }
                Err(e) => out.push((id, Err(e))),
            }
        }
        let router = self.router.clone();
        self.commit(batch, move |r| {
            let ok = r.is_ok();
            let (out, facts) = match r {
                Ok(()) => (out, facts),
                Err(e) => (out.into_iter().map(|(id, _)| (id, Err(e.clone()))).collect(), Vec::new()),
            };
            let _ = reply.send((out, facts));
            // The devices were removed from memory either way; on a store failure they are
            // closed without a reason rather than left open and deaf.
            let reason = if ok { wire::KickReason::UserDeleted } else { wire::KickReason::None };
            for o in kicked {
                o.close(reason);
            }
            if ok {
                for (user, frame) in pushes {
                    router.push(app, &user, frame);
                }
            }
        })
        .await;
    }

    pub(super) async fn get_users(&mut self, c: GetUsers) {
        let GetUsers { app, users, admin, reply } = c;
        let out: Vec<_> = users
            .into_iter()
            .map(|id| {
                let r = self.user_rec(app, &id).and_then(|rec| match rec {
                    Some(r) if admin => Ok(r.clone()),
                    other => user::live(other).cloned(),
                });
                (id, r)
            })
            .collect();
        self.after_pending(move |r| {
            let out = match r {
                Ok(()) => out,
                Err(e) => out.into_iter().map(|(id, _)| (id, Err(e.clone()))).collect(),
            };
            let _ = reply.send(out);
        })
        .await;
    }

    pub(super) async fn modify_user(&mut self, c: ModifyUser) {
        let ModifyUser { app, user: id, change, by_admin, origin, by, reply } = c;
        let key = (app, id.clone());
        let modified = self.user_rec(app, &id).and_then(|existing| user::modify(existing, &change, by_admin, now_ms()));
        let rec = or_reply!(reply, modified);
        let mut batch = Batch::default();
        batch.put_user(app, &id, rec.encode());
        self.report(&mut batch, (app, Event::ProfilePortraitSet, Some(&by)), || {
            let mut f = Map::new();
            f.insert("From_Account".into(), id.as_str().into());
            f.insert("ProfileItem".into(), profile_items(&change));
            f
        });
        let Some(entry) = self.users.get_mut(&key) else {
            return;
        };
        let facts = if user::facts_moved(Some(&entry.rec), &rec) { vec![id.clone()] } else { Vec::new() };
        entry.rec = rec.clone();
        // Own devices hear of the change (all but the one that made it); a forbidden account
        // loses its sessions.
        let targets = devices_but(&entry.devices, origin);
        let forbid = change.forbidden == Some(true);
        let kicked = if forbid {
            std::mem::take(&mut entry.devices).into_iter().map(|d| d.outbox).collect()
        } else {
            Vec::new()
        };
        let pushes = if forbid { self.status_pushes(app, &id) } else { Vec::new() };
        // The user's friends hear of it too, on whatever shard they live: grouped by shard
        // here, not on the writer thread that runs the completion.
        let router = self.router.clone();
        let friends = match self.social(app, &id) {
            Ok(s) => router.by_shard(app, s.friends.keys()),
            Err(e) => {
                tracing::warn!(error = %e.message(), "friends unreadable; the profile push reaches own devices only");
                Vec::new()
            }
        };
        let push = protocol::push(|fbb| {
            let p = dw::profile(fbb, &rec, FieldMask::ALL);
            let p = wire::UserInfoChangedPush::create(fbb, &wire::UserInfoChangedPushArgs { user: Some(p) });
            (wire::Push::UserInfoChangedPush, p.as_union_value())
        });
        self.commit(batch, move |r| match r {
            Ok(()) => {
                for t in &targets {
                    t.send(push.clone());
                }
                router.push_each(app, friends, push.clone());
                for o in kicked {
                    o.close(wire::KickReason::UserForbidden);
                }
                for (user, frame) in pushes {
                    router.push(app, &user, frame);
                }
                let _ = reply.send(Ok((rec, facts)));
            }
            Err(e) => {
                for o in kicked {
                    o.close(wire::KickReason::None);
                }
                let _ = reply.send(Err(e));
            }
        })
        .await;
    }

    pub(super) async fn query_status(&mut self, c: QueryStatus) {
        let QueryStatus { app, users, reply } = c;
        let out: Vec<UserStatus> = users.iter().map(|u| status_of(u, self.users.get(&(app, u.clone())))).collect();
        let _ = reply.send(out);
    }

    pub(super) async fn subscribe(&mut self, c: Subscribe) {
        let Subscribe { app, subscriber, targets, until_ms, reply } = c;
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(targets.len());
        let mut first_status = Vec::new();
        let max_subs = self.cfg.limits.max_subscriptions_per_user;
        for t in targets {
            let r = match self.user_entry(app, &t) {
                Err(e) => Err(e),
                Ok(None) => Err(DomainError::UserNotFound),
                Ok(Some(e)) if e.rec.deleted => Err(DomainError::UserDeleted),
                Ok(Some(e)) if e.subscribers.len() >= max_subs && !e.subscribers.contains_key(&subscriber) => {
                    Err(DomainError::LimitExceeded("subscribers of this user"))
                }
                Ok(Some(e)) => {
                    let old = e.subscribers.insert(subscriber.clone(), until_ms);
                    first_status.push(status_of(&t, Some(e)));
                    batch.put_subscription(app, &t, &subscriber, until_ms);
                    // A renewal replaces its expiry entry, so renewals cannot grow the index.
                    let item = (app, t.clone(), subscriber.clone());
                    if let Some(old) = old.filter(|&o| o != until_ms) {
                        unindex(&mut self.expiries, old, &item);
                    }
                    if old != Some(until_ms) {
                        self.expiries.entry(until_ms).or_default().push(item);
                    }
                    Ok(())
                }
            };
            out.push((t, r));
        }
        // The subscriber learns the current status once the subscription is durable, then
        // every change.
        let router = self.router.clone();
        self.commit(batch, move |r| match r {
            Ok(()) => {
                let _ = reply.send(out);
                for st in first_status {
                    router.push(app, &subscriber, status_push(&st));
                }
            }
            Err(e) => {
                let _ = reply.send(out.into_iter().map(|(id, _)| (id, Err(e.clone()))).collect());
            }
        })
        .await;
    }

    pub(super) async fn unsubscribe(&mut self, c: Unsubscribe) {
        let Unsubscribe { app, subscriber, targets, reply } = c;
        let mut batch = Batch::default();
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            // Read on first use like any other: the entry has the stored subscriptions.
            let removed = self.user_entry(app, &t).map(|e| e.and_then(|e| e.subscribers.remove(&subscriber)));
            let r = removed.map(|until| {
                if let Some(until) = until {
                    batch.delete_subscription(app, &t, &subscriber);
                    unindex(&mut self.expiries, until, &(app, t.clone(), subscriber.clone()));
                }
            });
            out.push((t, r));
        }
        self.commit(batch, move |r| {
            let out = match r {
                Ok(()) => out,
                Err(e) => out.into_iter().map(|(id, _)| (id, Err(e.clone()))).collect(),
            };
            let _ = reply.send(out);
        })
        .await;
    }

    /// Drops subscriptions whose time is up (found through the expiry index, not by scanning
    /// users) and deletes them from the store. A target that is not in memory (evicted since
    /// its subscriptions were indexed) is checked against the store, so a due entry can
    /// never delete a subscription renewed meanwhile.
    pub(super) async fn expire_subscriptions(&mut self) {
        let now = now_ms();
        let later = self.expiries.split_off(&(now + 1));
        let due = std::mem::replace(&mut self.expiries, later);
        let mut batch = Batch::default();
        for (app, target, sub) in due.into_values().flatten() {
            let renewed = match self.users.get(&(app, target.clone())) {
                Some(e) => e.subscribers.get(&sub).is_some_and(|&until| until > now),
                // Not in memory: the store says (an unreadable one stays, to be indexed
                // again when its target is next read).
                None => self.store.subscription(app, &target, &sub).map_or(true, |u| u.is_some_and(|u| u > now)),
            };
            if !renewed {
                if let Some(e) = self.users.get_mut(&(app, target.clone())) {
                    e.subscribers.remove(&sub);
                }
                batch.delete_subscription(app, &target, &sub);
            }
        }
        if !batch.is_empty() {
            self.commit(batch, |_| {}).await;
        }
    }

    /// A stream entry's payload as sync answers carry it: the message a Messages entry refers
    /// to; the user's current entry for a conversation (`None`, a tombstone, when hidden).
    /// A reference that does not resolve is an error, never a silent tombstone.
    fn resolve(
        &self,
        app: AppId,
        user: &UserId,
        stream: Stream,
        item: &ItemId,
        stored: &[u8],
    ) -> Result<Option<Vec<u8>>, DomainError> {
        let broken = |what: &str| {
            tracing::error!(user = %user, what, "a sync entry does not resolve");
            DomainError::StorageUnavailable
        };
        let social =
            || self.users.get(&(app, user.clone())).and_then(|e| e.social.as_ref()).ok_or_else(|| broken("social"));
        // Friendship items gone from memory but not yet tombstoned on disk (the removal is in
        // flight) resolve to a tombstone: what the next entry will say anyway.
        match item {
            ItemId::Message(_) => {
                let (conv, seq) =
                    crate::store::decode_message_ref(stored).ok_or_else(|| broken("message reference"))?;
                match self.store.message(app, &conv, seq) {
                    Ok(Some(m)) => Ok(Some(m)),
                    _ => Err(broken("message")),
                }
            }
            ItemId::Conversation(conv) => {
                let e = self.users.get(&(app, user.clone())).ok_or_else(|| broken("user"))?;
                let v = e.convs.as_ref().and_then(|m| m.get(conv)).ok_or_else(|| broken("conversation"))?;
                Ok((!v.hidden).then(|| v.encode_full()))
            }
            ItemId::User(peer) if stream == Stream::Blacklist => Ok(social()?.blacks.get(peer).map(|b| b.encode())),
            ItemId::User(peer) => Ok(social()?.friends.get(peer).map(|f| f.encode())),
            ItemId::Request(id) => Ok(social()?.requests.get(id).map(|r| r.encode())),
            // The group as it is now (its own shard writes the record).
            ItemId::Group(g) => match self.store.group(app, g) {
                Ok(Some(v)) => Ok(Some(v)),
                _ => Err(broken("group")),
            },
        }
    }

    pub(super) async fn sync(&mut self, c: ReadStream) {
        let ReadStream { app, user, stream, after, limit, reply } = c;
        if let Err(e) = self.user_rec(app, &user).and_then(|rec| user::live(rec).map(|_| ())) {
            let _ = reply.send(Err(e));
            return;
        }
        // Stream entries are read from the store: the head reported is the newest seq returned
        // (or `after`); a change still in flight has a higher seq and comes in the next read,
        // so a device that moves its cursor to `head` misses nothing.
        let loaded = match stream {
            Stream::Conversations => self.ensure_convs(app, &user),
            Stream::Friends | Stream::Blacklist | Stream::FriendRequests => self.ensure_social(app, &user),
            Stream::JoinedGroups => self.ensure_groups(app, &user),
            Stream::Messages => Ok(()),
        };
        if let Err(e) = loaded {
            let _ = reply.send(Err(e));
            return;
        }
        let r = match self.store.read_stream(app, &user, stream, after, limit) {
            Ok((entries, more)) => {
                let changes: Result<Vec<Change>, DomainError> = entries
                    .into_iter()
                    .map(|e| {
                        let payload = match e.payload {
                            Some(p) => self.resolve(app, &user, stream, &e.item, &p)?,
                            None => None,
                        };
                        Ok(Change { seq: crate::domain::ids::Seq(e.seq), item: e.item, payload })
                    })
                    .collect();
                changes.map(|mut changes| {
                    let cut = page::cut(&mut changes, page::PAGE_BYTES);
                    let head = changes.last().map_or(after, |c| c.seq.0);
                    SyncPage { stream, changes, head: crate::domain::ids::Seq(head), more: more || cut }
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "sync read failed");
                Err(DomainError::StorageUnavailable)
            }
        };
        // Conversation and friendship entries come from memory, which may hold changes still
        // being written: answer once those are durable. Messages come from the store as they
        // are, so their answer does not wait behind other commits.
        if stream == Stream::Messages {
            self.after_durable(move |durable| {
                let _ = reply.send(durable.and(r));
            })
            .await;
            return;
        }
        self.after_pending(move |barrier| {
            let _ = reply.send(barrier.and(r));
        })
        .await;
    }
}
