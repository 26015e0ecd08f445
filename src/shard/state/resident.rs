//! Users read on first use. A shard's entry for one of its users (`user_entry`): the record
//! and the user's status subscriptions (indexed by expiry), one point read and one short
//! seek, kept until the user is offline and evicted (`evict`). The send-relevant facts of
//! any user (`facts_of`): a bounded cache over the stored records, from which a user's copy
//! is dropped when the owner reports a durable change (`facts_changed`). Start-up reads
//! neither: memory follows the users in use, not the users registered.
//!
//! Why the facts cache cannot go backwards: the owner answers a change only once it is
//! durable, and only then are all shards told to drop their copies, each before the change
//! is acknowledged. A shard runs one command at a time, so its store read for a miss comes
//! either before it handles `FactsChanged` (the copy it cached, old or new, is dropped then)
//! or after, when the write is durable and the read sees it (or something newer). The store
//! is read, never a version compared, so evicting and re-reading a copy while a
//! `FactsChanged` is in flight changes nothing.

use std::collections::hash_map::Entry;

use crate::domain::ids::{AppId, UserId};
use crate::domain::user::{UserFacts, UserRecord};
use crate::domain::DomainError;
use crate::shard::cmd::FactsChanged;
use crate::shard::common::stored;

use super::*;

/// The stored record of `user`, if any.
fn read_user(store: &Store, app: AppId, user: &UserId) -> Result<Option<UserRecord>, DomainError> {
    let Some(bytes) = store.user(app, user).map_err(stored("reading a user"))? else {
        return Ok(None);
    };
    match UserRecord::decode(user.clone(), &bytes) {
        Ok(rec) => Ok(Some(rec)),
        Err(_) => {
            tracing::error!(user = %user, "a user record does not decode");
            Err(DomainError::StorageUnavailable)
        }
    }
}

/// `Shard::user_entry` on the fields it needs, so a caller can go on using the others.
pub(super) fn entry_in<'a>(
    users: &'a mut FastMap<(AppId, UserId), UserEntry>,
    expiries: &mut BTreeMap<u64, Vec<(AppId, UserId, UserId)>>,
    store: &Store,
    stamp: u64,
    app: AppId,
    user: &UserId,
) -> Result<Option<&'a mut UserEntry>, DomainError> {
    let e = match users.entry((app, user.clone())) {
        Entry::Occupied(o) => o.into_mut(),
        Entry::Vacant(v) => {
            let Some(rec) = read_user(store, app, user)? else { return Ok(None) };
            let mut e = UserEntry::new(rec);
            let subs = store.subscriptions_of(app, user).map_err(stored("reading subscriptions"))?;
            let now = now_ms();
            for (sub, until) in subs {
                if until > now {
                    e.subscribers.insert(sub.clone(), until);
                }
                // Indexed once (a user read again after an eviction is indexed already);
                // expired ones too: the next tick deletes them from the store.
                let item = (app, user.clone(), sub);
                let due = expiries.entry(until).or_default();
                if !due.contains(&item) {
                    due.push(item);
                }
            }
            v.insert(e)
        }
    };
    e.last_used = stamp;
    Ok(Some(e))
}

impl Shard {
    /// `user`'s entry (`None`: no such user), read from the store when it is not in memory,
    /// and stamped as used now. Every handler that reads or changes a user's stored state
    /// reaches the entry through here (or `touch`, which does the same), so an entry whose
    /// stamp did not move has changed nothing since (what `evict` relies on).
    pub(in crate::shard) fn user_entry(
        &mut self,
        app: AppId,
        user: &UserId,
    ) -> Result<Option<&mut UserEntry>, DomainError> {
        self.uses += 1;
        entry_in(&mut self.users, &mut self.expiries, &self.store, self.uses, app, user)
    }

    /// `user`'s record, read on first use (`None`: no such user).
    pub(in crate::shard) fn user_rec(&mut self, app: AppId, user: &UserId) -> Result<Option<&UserRecord>, DomainError> {
        Ok(self.user_entry(app, user)?.map(|e| &e.rec))
    }

    /// The send-relevant facts of any user (`None`: no such user), from the cache or, on a
    /// miss, the store.
    pub(in crate::shard) fn facts_of(&mut self, app: AppId, user: &UserId) -> Result<Option<UserFacts>, DomainError> {
        let key = self.keyer.key((app.0, user.as_str()));
        if let Some(f) = self.facts.get(key) {
            return Ok(Some(*f));
        }
        let Some(rec) = read_user(&self.store, app, user)? else { return Ok(None) };
        let f = UserFacts::of(&rec);
        self.facts.insert(key, f);
        Ok(Some(f))
    }

    /// Drops the cached facts of users whose change is durable (see the module's comment).
    pub(super) fn facts_changed(&mut self, c: FactsChanged) {
        let FactsChanged { app, users, done } = c;
        for u in users.iter() {
            self.facts.remove(self.keyer.key((app.0, u.as_str())));
        }
        let _ = done.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::store::{Batch, WriterOptions, WriterThread};

    fn uid(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn put(store: &Store, app: AppId, rec: &UserRecord) {
        let mut b = Batch::default();
        b.put_user(app, &rec.id, rec.encode());
        store.write_now(b).unwrap();
    }

    /// One shard over `store`, with its writer (and the router and inboxes it sends to).
    fn one_shard(store: &Store, cfg: Config) -> (Vec<Shard>, Router, crate::shard::router::Inboxes, WriterThread) {
        let (committer, writer) = store.start_writer(WriterOptions {
            durability: Durability::Sync,
            wal_sync_ms: 0,
            queue: 16,
            max_group: 16,
            direct: false,
        });
        let (router, inboxes) = Router::new(1, 16);
        let shards =
            load(&Arc::new(cfg), store, &router, committer, (None, crate::metrics::Metrics::new(router.len())))
                .unwrap();
        (shards, router, inboxes, writer)
    }

    fn changed(shard: &mut Shard, app: AppId, user: &UserId) {
        let (done, _) = tokio::sync::oneshot::channel();
        shard.facts_changed(FactsChanged { app, users: Arc::new(vec![user.clone()]), done });
    }

    /// The race of a facts change with the cache: the owner's write is durable and the
    /// shard's copy is evicted and read back before `FactsChanged` arrives. The copy read
    /// back is the new one, and the late `FactsChanged` cannot bring the old one back.
    #[test]
    fn a_copy_evicted_while_a_change_is_in_flight_reads_the_change() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (app, b, other) = (AppId(1), uid("b"), uid("other"));
        let mut rec = UserRecord::new(b.clone());
        put(&store, app, &rec);
        put(&store, app, &UserRecord::new(other.clone()));
        let mut cfg = Config::default();
        cfg.limits.facts_cache_per_shard = 1;
        let (mut shards, router, _inboxes, writer) = one_shard(&store, cfg);
        let sh = &mut shards[0];
        assert_eq!(sh.facts_of(app, &b), Ok(Some(UserFacts::default())));
        // The owner forbids b: durable, `FactsChanged` still on its way.
        rec.forbidden = true;
        put(&store, app, &rec);
        let forbidden = UserFacts { forbidden: true, ..Default::default() };
        assert_eq!(sh.facts_of(app, &b), Ok(Some(UserFacts::default())), "unacknowledged: the old copy may answer");
        assert_eq!(sh.facts_of(app, &other).map(|f| f.is_some()), Ok(true), "evicts b's copy");
        assert_eq!(sh.facts_of(app, &b), Ok(Some(forbidden)), "read back: the change");
        changed(sh, app, &b);
        assert_eq!(sh.facts_of(app, &b), Ok(Some(forbidden)), "the late FactsChanged keeps it");
        // And back: lifted, durable, told.
        rec.forbidden = false;
        put(&store, app, &rec);
        changed(sh, app, &b);
        assert_eq!(sh.facts_of(app, &b), Ok(Some(UserFacts::default())));
        assert_eq!(sh.facts_of(app, &uid("ghost")), Ok(None), "no record, no facts");
        drop(shards);
        drop(router);
        writer.join().unwrap();
    }

    /// A user's entry is read with its live subscriptions; a missing user has none.
    #[test]
    fn an_entry_is_read_with_its_subscriptions() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (app, t) = (AppId(1), uid("t"));
        put(&store, app, &UserRecord::new(t.clone()));
        let now = now_ms();
        let mut b = Batch::default();
        b.put_subscription(app, &t, &uid("live"), now + 60_000);
        b.put_subscription(app, &t, &uid("gone"), now - 1);
        store.write_now(b).unwrap();
        let (mut shards, router, _inboxes, writer) = one_shard(&store, Config::default());
        let sh = &mut shards[0];
        assert!(sh.users.is_empty() && sh.expiries.is_empty(), "start-up reads no user");
        let e = sh.user_entry(app, &t).unwrap().expect("stored");
        assert_eq!(e.subscribers.keys().cloned().collect::<Vec<_>>(), vec![uid("live")]);
        assert_eq!(sh.expiries.values().map(Vec::len).sum::<usize>(), 2, "the expired one is deleted at the tick");
        sh.users.clear();
        assert!(sh.user_entry(app, &t).unwrap().is_some(), "read again after an eviction");
        assert_eq!(sh.expiries.values().map(Vec::len).sum::<usize>(), 2, "and not indexed twice");
        assert!(sh.user_entry(app, &uid("ghost")).unwrap().is_none());
        assert_eq!(sh.users.len(), 1, "a missing user takes no memory");
        drop(shards);
        drop(router);
        writer.join().unwrap();
    }
}
