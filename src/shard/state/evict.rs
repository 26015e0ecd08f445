//! A user's stream heads on first use (`touch`), the eviction of idle users' entries (record,
//! subscriptions, heads, conversation list, friendship state) past
//! `limits.loaded_users_per_shard`, and of the send caches (`conv_heads`, `pair_rel`) past
//! `limits.conversations_per_shard`.

use crate::domain::ids::{AppId, UserId};
use crate::domain::sync::{Stream, STREAM_COUNT};
use crate::domain::DomainError;
use crate::shard::cmd::{EvictHeads, EvictIdle};

use super::*;

impl Shard {
    /// `user`'s entry (read on first use, stamped as used now) with the user's stream heads
    /// read on first use (every change to a stream goes through `ensure_convs` or
    /// `ensure_social`, which call this first). The caller loads what else is missing.
    pub(in crate::shard) fn touch(&mut self, app: AppId, user: &UserId) -> Result<&mut UserEntry, DomainError> {
        self.uses += 1;
        let e = super::resident::entry_in(&mut self.users, &mut self.expiries, &self.store, self.uses, app, user)?
            .ok_or(DomainError::UserNotFound)?;
        if !e.heads_loaded {
            // Nothing of this user's streams can be in flight: every change bumps a head first.
            let heads = self
                .store
                .stream_heads(app, user, STREAM_COUNT as u8)
                .map_err(crate::shard::common::stored("reading stream heads"))?;
            for (i, seq) in heads.into_iter().enumerate() {
                if let Some(s) = Stream::from_u8(i as u8) {
                    e.heads.set(s, crate::domain::ids::Seq(seq));
                }
            }
            e.heads_loaded = true;
        }
        Ok(e)
    }

    /// Over `limits.loaded_users_per_shard` users in memory: picks the least recently used
    /// idle ones (no device online; down to 90 % of the bound) and,
    /// once every write submitted so far is durable (so a reload reads what memory holds),
    /// asks this shard to drop them with `ShardCmd::EvictIdle`. A user used in between keeps
    /// its entry (its stamp moved on). The tick writes the written-behind conversation
    /// entries (`flush_convs`) just before this, so none is left only in memory.
    pub(super) async fn evict_idle(&mut self) {
        let cap = self.cfg.limits.loaded_users_per_shard.max(1);
        if self.users.len() <= cap {
            return;
        }
        let mut idle: Vec<((AppId, UserId), u64)> =
            self.users.iter().filter(|(_, e)| e.idle()).map(|(k, e)| (k.clone(), e.last_used)).collect();
        let excess = self.users.len() - cap * 9 / 10;
        if idle.len() > excess {
            idle.select_nth_unstable_by_key(excess, |(_, used)| *used);
            idle.truncate(excess);
        }
        if idle.is_empty() {
            return;
        }
        let (router, me) = (self.router.clone(), self.id);
        self.after_pending(move |r| {
            if r.is_ok() {
                // A full inbox drops it; the next tick picks again.
                let _ = router.try_send(me, EvictIdle { users: idle }.into());
            }
        })
        .await;
    }

    pub(super) fn evict(&mut self, c: EvictIdle) {
        let EvictIdle { users } = c;
        let mut dropped = 0;
        for (key, stamp) in users {
            if self.users.get(&key).is_some_and(|e| e.last_used == stamp && e.idle()) {
                self.users.remove(&key);
                dropped += 1;
            }
        }
        tracing::debug!(shard = self.id, dropped, loaded = self.users.len(), "evicted idle users' loaded state");
    }

    /// Over `limits.conversations_per_shard`: drops the least recently used pair relations
    /// (always safe: the next send reads them again) and, like `evict_idle`, asks this shard
    /// to drop the least recently used conversation heads once every write submitted so far
    /// is durable, so that a head read again from the store is the one memory had.
    pub(in crate::shard) async fn evict_conversations(&mut self) {
        let cap = self.cfg.limits.conversations_per_shard.max(1);
        if self.pair_rel.len() > cap {
            let drop = least_used(&self.pair_rel, cap);
            for k in &drop {
                self.pair_rel.remove(&k.0);
            }
            tracing::debug!(shard = self.id, dropped = drop.len(), "evicted pair relations");
        }
        if self.conv_heads.len() <= cap {
            return;
        }
        let convs = least_used(&self.conv_heads, cap);
        let (router, me) = (self.router.clone(), self.id);
        self.after_pending(move |r| {
            if r.is_ok() {
                // A full inbox drops it; the next tick picks again.
                let _ = router.try_send(me, EvictHeads { convs }.into());
            }
        })
        .await;
    }

    pub(super) fn evict_heads(&mut self, c: EvictHeads) {
        let mut dropped = 0;
        for (key, stamp) in c.convs {
            if self.conv_heads.get(&key).is_some_and(|h| h.used == stamp) {
                self.conv_heads.remove(&key);
                dropped += 1;
            }
        }
        tracing::debug!(shard = self.id, dropped, cached = self.conv_heads.len(), "evicted conversation heads");
    }
}

/// The least recently used keys of `map` (with their stamps), enough to bring it down to 90 %
/// of `cap`.
fn least_used<K: Clone, V, S>(map: &HashMap<K, Stamped<V>, S>, cap: usize) -> Vec<(K, u64)> {
    let excess = map.len().saturating_sub(cap * 9 / 10);
    let mut all: Vec<(K, u64)> = map.iter().map(|(k, v)| (k.clone(), v.used)).collect();
    if all.len() > excess {
        all.select_nth_unstable_by_key(excess, |(_, used)| *used);
        all.truncate(excess);
    }
    all
}
