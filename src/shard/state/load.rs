//! Start-up: every shard's state built from the store, and the recovery of deliveries a
//! crash may have cut (`recover_deliveries`). Users are not read here: a shard reads each of
//! its users on first use (`resident`), so start-up takes as long for ten users as for ten
//! million.

use crate::config::Config;
use crate::domain::group::{GroupRecord, MemberRecord};
use crate::domain::ids::{AppId, ConvId, GroupId, UserId};
use crate::domain::message::{IdGen, MessageRecord};
use crate::shard::cmd::{Deliver, GroupSync, Recalled, Side, SyncUser};
use crate::shard::recent::{Keyer, Recent};
use crate::shard::router::Router;
use crate::store::{Batch, Committer, Store, StoreError};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use super::*;

/// Builds every shard's state: empty maps, the delivery recovery and its re-drives. Users,
/// subscriptions, streams (and their heads) and messages are not scanned.
pub(in crate::shard) fn load(
    cfg: &Arc<Config>,
    store: &Store,
    router: &Router,
    committer: Committer,
    (hooks, metrics): (Option<Arc<crate::callbacks::Hooks>>, Arc<crate::metrics::Metrics>),
) -> Result<Vec<Shard>, StoreError> {
    let n = router.len();
    let mut shards: Vec<Shard> = (0..n)
        .map(|id| Shard {
            id,
            cfg: cfg.clone(),
            store: store.clone(),
            committer: committer.clone(),
            router: router.clone(),
            inflight: Arc::new(AtomicUsize::new(0)),
            commit_group: RefCell::new(CommitGroup::default()),
            marks: RefCell::new(Marks::default()),
            held: Vec::new(),
            users: FastMap::default(),
            deferred: VecDeque::new(),
            expiries: BTreeMap::new(),
            facts: Recent::new(cfg.limits.facts_cache_per_shard),
            conv_heads: FastMap::default(),
            recent_ids: Recent::new(cfg.limits.recent_client_ids),
            recent_stream: Recent::new(cfg.limits.recent_client_ids),
            keyer: Keyer::new(),
            ids: IdGen::new(id),
            local: VecDeque::new(),
            dirty_convs: HashSet::new(),
            pair_rel: HashMap::new(),
            kept: Arc::default(),
            groups: FastMap::default(),
            group_heads: FastMap::default(),
            uses: 0,
            hooks: hooks.clone(),
            metrics: metrics.clone(),
            parking: Default::default(),
        })
        .collect();
    let newest = recover_deliveries(store, n)?;
    let now = now_ms();
    for sh in shards.iter_mut() {
        sh.ids = IdGen::starting(sh.id, newest, now);
    }
    // Deliveries that were durable but not yet recorded by the user's shard when the process
    // stopped: re-drive them first thing (the user's shard skips what it already has).
    let mut replays = 0usize;
    let mut missing = 0usize;
    store.for_each_fanout(|app, user, server_id, kind, (conv, seq)| match store.message(app, &conv, seq) {
        Ok(Some(v)) => match MessageRecord::decode(&v) {
            Ok(m) if m.server_id == server_id => {
                replays += 1;
                let s = router.user_shard(app, &user);
                let msg = Arc::new(m);
                shards[s].local.push_back(if kind == 0 {
                    (Deliver { app, msg, to: vec![(user, None)], from_record: true }).into()
                } else {
                    let by = msg.from.clone();
                    Recalled { app, user, msg, by }.into()
                });
            }
            _ => missing += 1,
        },
        _ => missing += 1,
    })?;
    if replays + missing > 0 {
        tracing::info!(replays, missing, "re-driving unrecorded deliveries");
    }
    replay_group_syncs(store, router, &mut shards)?;
    Ok(shards)
}

/// Membership changes durable on their group's shard but not yet carried to a member's side
/// when the process stopped (their intent records remain): each member's shard brings that
/// side to the group's stored state first thing, deleting the intents.
fn replay_group_syncs(store: &Store, router: &Router, shards: &mut [Shard]) -> Result<(), StoreError> {
    let mut pending: BTreeMap<(AppId, UserId, GroupId), Vec<u64>> = BTreeMap::new();
    for (app, user, g, version) in store.group_syncs()? {
        pending.entry((app, user, g)).or_default().push(version);
    }
    if !pending.is_empty() {
        tracing::info!(intents = pending.len(), "carrying interrupted group changes to their members");
    }
    let corrupt = |what: &str| StoreError::Corrupt(what.into());
    for ((app, user, g), intents) in pending {
        let Some(raw) = store.group(app, &g)? else { continue };
        let rec = GroupRecord::decode(&raw).map_err(|_| corrupt("group record"))?;
        let side = match store.group_member(app, &g, &user)? {
            Some(v) if !rec.destroyed => {
                let m = MemberRecord::decode(user.clone(), &v).map_err(|_| corrupt("member record"))?;
                Side::Member { visible_from: m.visible_from(&rec) }
            }
            _ => Side::Gone,
        };
        let head = store.conv_head(app, &ConvId::Group(g.clone()))?;
        let s = router.user_shard(app, &user);
        let users = vec![SyncUser { user, side, intents }];
        shards[s].local.push_back(GroupSync { app, group: Arc::new(rec), head, users, event: None }.into());
    }
    Ok(())
}

/// Finds the deliveries that were durable (their message is) but not recorded in their
/// user's stream when the process stopped: those of messages above the delivery floor that no
/// delivery mark covers. Each gets a fan-out record, re-driven at start like any other. Then
/// the marks start over, for `shards` shards, above a new floor: the newest message id, which
/// is returned. One synced write, before any shard runs.
pub(in crate::shard) fn recover_deliveries(store: &Store, shards: usize) -> Result<u64, StoreError> {
    let (floor, marks) = store.delivery_marks()?;
    let mut batch = Batch::default();
    let newest = match floor {
        // A new directory, or one from format 3: every delivery not recorded has a record.
        None => store.max_message_id()?,
        Some((floor, old_shards)) => {
            let old_shards = old_shards.max(1) as usize;
            tracing::debug!(floor, old_shards, ?marks, "recovery: delivery floor and marks");
            let mark: HashMap<(u8, u8), u64> = marks.iter().copied().collect();
            // Below the lowest mark, when every pair of shards has one, everything is recorded.
            let pairs = (0..old_shards).flat_map(|t| (0..old_shards).map(move |s| (t as u8, s as u8)));
            let lowest = pairs.map(|k| mark.get(&k).copied()).collect::<Option<Vec<u64>>>();
            let from = floor.max(lowest.and_then(|v| v.into_iter().min()).unwrap_or(0));
            let (mut pending, mut scanned) = (0usize, 0usize);
            let newest = store.for_each_message_after(from, |app, id, (conv, seq)| {
                scanned += 1;
                let source = crate::domain::message::id_shard(id);
                // A one-to-one message is delivered to its two users. A group message has no
                // per-member delivery to recover (members derive it from the group's head).
                let users = match &conv {
                    ConvId::P2p(p) => vec![p.lo.clone(), p.hi.clone()],
                    ConvId::Group(_) => Vec::new(),
                };
                let at = (conv, seq);
                for u in &users {
                    let t = crate::shard::router::shard_of(app, u, old_shards) as u8;
                    let m = mark.get(&(t, source)).copied();
                    let redo = m.is_none_or(|m| m < id);
                    tracing::trace!(id, source, t, mark = ?m, user = %u, redo, "recovery: delivery above the floor");
                    if redo {
                        batch.put_fanout(app, u, (id, 0), &at);
                        pending += 1;
                    }
                }
            })?;
            tracing::info!(
                scanned,
                pending,
                from,
                "messages above the delivery marks checked; unrecorded deliveries get fan-out records"
            );
            newest
        }
    };
    for ((t, s), _) in marks {
        batch.delete_delivery_mark(t, s);
    }
    batch.put_delivery_floor(newest, shards as u8);
    store.write_now(batch)?;
    Ok(newest)
}
