//! Group reads: a group's record, members and join requests, an app's groups in id order,
//! a user's side of their memberships, and the start-up scan of membership intents.

use rocksdb::{Direction, IteratorMode};

use super::{cf, keys, rocks, Entry, Store, StoreError};
use crate::domain::ids::{AppId, GroupId, UserId};

/// A membership intent: (app, user, group, version).
pub type GroupSyncRecord = (AppId, UserId, GroupId, u64);

impl Store {
    pub fn group(&self, app: AppId, g: &GroupId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(cf(&self.db, keys::CF_GROUPS)?, keys::group(app, g)).map_err(rocks)
    }

    pub fn group_member(&self, app: AppId, g: &GroupId, user: &UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(cf(&self.db, keys::CF_GROUP_MEMBERS)?, keys::group_member(app, g, user)).map_err(rocks)
    }

    /// Every member of a group: (user, record).
    pub fn group_members(&self, app: AppId, g: &GroupId) -> Result<Vec<(UserId, Vec<u8>)>, StoreError> {
        self.under(keys::CF_GROUP_MEMBERS, &keys::group(app, g))?
            .into_iter()
            .map(|(k, v)| {
                let u = std::str::from_utf8(&k).ok().and_then(UserId::new);
                Ok((u.ok_or_else(|| StoreError::Corrupt("member key".into()))?, v))
            })
            .collect()
    }

    /// Every join request of a group, oldest first.
    pub fn join_requests(&self, app: AppId, g: &GroupId) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.under(keys::CF_JOIN_REQS, &keys::group(app, g))?.into_iter().map(|(_, v)| v).collect())
    }

    /// A user's side of one membership.
    pub fn user_group(&self, app: AppId, user: &UserId, g: &GroupId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(cf(&self.db, keys::CF_USER_GROUPS)?, keys::user_group(app, user, g)).map_err(rocks)
    }

    /// A user's side of their memberships: (group, entry).
    pub fn user_groups(&self, app: AppId, user: &UserId) -> Result<Vec<(GroupId, Vec<u8>)>, StoreError> {
        self.under(keys::CF_USER_GROUPS, &keys::user_conv_prefix(app, user))?
            .into_iter()
            .map(|(k, v)| {
                let g = std::str::from_utf8(&k).ok().and_then(GroupId::new);
                Ok((g.ok_or_else(|| StoreError::Corrupt("user group key".into()))?, v))
            })
            .collect()
    }

    /// An app's group records with an id after `after` (all from the first when `None`), in
    /// id order (by length, then bytes: the key order), at most `limit`; and whether more remain.
    pub fn app_groups(
        &self,
        app: AppId,
        after: Option<&GroupId>,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        let prefix = keys::app_prefix(app);
        let start = match after {
            Some(g) => {
                let mut k = keys::group(app, g);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::with_capacity(limit.min(256));
        let it = self.db.iterator_cf(cf(&self.db, keys::CF_GROUPS)?, IteratorMode::From(&start, Direction::Forward));
        for kv in it {
            let (k, v) = kv.map_err(rocks)?;
            if !k.starts_with(&prefix) {
                break;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(v.to_vec());
        }
        Ok((out, false))
    }

    /// Every membership intent not yet carried out by its user's shard.
    pub fn group_syncs(&self) -> Result<Vec<GroupSyncRecord>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.iterator_cf(cf(&self.db, keys::CF_GROUP_SYNC)?, IteratorMode::Start) {
            let (k, _) = kv.map_err(rocks)?;
            out.push(keys::decode_group_sync(&k).ok_or_else(|| StoreError::Corrupt("group sync key".into()))?);
        }
        Ok(out)
    }

    /// (key suffix after `prefix`, value) of every key under `prefix` in one column.
    fn under(&self, cf_name: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for kv in self.db.iterator_cf(cf(&self.db, cf_name)?, IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = kv.map_err(rocks)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k[prefix.len()..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}
