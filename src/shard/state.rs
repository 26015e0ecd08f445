//! One shard: its in-memory state, its loop, and the helpers every handler uses to make a
//! change durable before anyone hears of it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::domain::conversation::{ConvRef, ConvView};
use crate::domain::ids::{AppId, UserId};
use crate::domain::message::{IdGen, IdemRecord, MessageRecord, Pair};
use crate::domain::sync::{Heads, Stream, STREAM_COUNT};
use crate::domain::user::{UserFacts, UserRecord};
use crate::domain::DomainError;
use crate::protocol::wire::ClientType;
use crate::shard::cmd::{Deliver, ShardCmd};
use crate::shard::outbox::Outbox;
use crate::shard::recent::{Keyer, Recent};
use crate::shard::{Rejected, RouteError, Router};
use crate::store::{Batch, Committer, Store, StoreError};

/// Commands taken from the inbox per wake-up.
const DRAIN: usize = 256;

/// A shard's open group is handed to the writer early once it holds this many operations.
const COMMIT_GROUP_OPS: usize = 4096;

/// What a commit runs once it is durable (or failed).
type Then = Box<dyn FnOnce(Result<(), DomainError>) + Send>;

/// The commits a shard made since its last flush: written as one, at the end of each batch of
/// commands (`Shard::flush`), so a drain of 256 deliveries costs the writer one hand-off.
#[derive(Default)]
pub(super) struct CommitGroup {
    batch: Batch,
    thens: Vec<Then>,
}

/// This shard's delivery marks, by source shard: how far it has recorded the deliveries each
/// shard sent it (`recorded`), and what the store has (`written`). A group carries the marks
/// that moved, so they are durable exactly when the stream entries they cover are.
pub(super) struct Marks {
    recorded: [u64; 64],
    written: [u64; 64],
}

impl Default for Marks {
    fn default() -> Self {
        Marks { recorded: [0; 64], written: [0; 64] }
    }
}

pub(super) struct Device {
    pub outbox: Outbox,
    pub client_type: ClientType,
    pub device_id: String,
    pub login_ms: u64,
}

/// Everything a shard holds about one user.
pub(super) struct UserEntry {
    pub rec: UserRecord,
    pub devices: Vec<Device>,
    /// Who follows this user's online status, and until when (ms).
    pub subscribers: HashMap<UserId, u64>,
    pub heads: Heads,
    /// Version of this user's facts last replicated (see `ShardCmd::SetFacts`).
    pub facts_version: u64,
    /// The user's conversation list, loaded from the store on first use.
    pub convs: Option<HashMap<ConvRef, ConvView>>,
    /// The user's friends, blacklist and received requests, loaded on first use.
    pub social: Option<super::friends::Social>,
    /// The shard's use stamp when `convs` or `social` was last used (see `Shard::touch`).
    pub last_used: u64,
    /// Whether `heads` holds the streams' heads (read from the store on first use, kept).
    pub heads_loaded: bool,
}

impl UserEntry {
    pub fn new(rec: UserRecord) -> UserEntry {
        UserEntry {
            rec,
            devices: Vec::new(),
            subscribers: HashMap::new(),
            heads: Heads::default(),
            facts_version: 0,
            convs: None,
            social: None,
            last_used: 0,
            heads_loaded: false,
        }
    }

    pub fn loaded(&self) -> bool {
        self.convs.is_some() || self.social.is_some()
    }
}

pub(super) struct Shard {
    pub id: usize,
    pub cfg: Arc<Config>,
    pub store: Store,
    pub committer: Committer,
    pub router: Router,
    /// Commits made (buffered or submitted) and not yet durable. While non-zero, replies that
    /// read state wait behind them (see `after_pending`).
    pub inflight: Arc<AtomicUsize>,
    /// Commits made since the last flush, not yet handed to the writer.
    pub commit_group: RefCell<CommitGroup>,
    pub marks: RefCell<Marks>,
    /// Cross-shard commands sent while commits were buffered: they go out after those commits
    /// are handed to the writer, so whatever they cause can never be durable first.
    pub held: Vec<(usize, ShardCmd)>,
    pub users: HashMap<(AppId, UserId), UserEntry>,
    /// Cross-shard commands held back because the target inbox was full.
    pub deferred: VecDeque<(usize, ShardCmd)>,
    /// Status subscriptions by expiry time (ms): (app, target, subscriber). An entry may be
    /// stale (the subscription was renewed or removed); expiry checks the user's map.
    pub expiries: BTreeMap<u64, Vec<(AppId, UserId, UserId)>>,
    /// Every user's send-relevant facts (a full copy in every shard).
    pub facts: HashMap<(AppId, UserId), UserFacts>,
    /// Conversations this shard owns that have been used since start: their last seq.
    pub conv_heads: HashMap<(AppId, Pair), u64>,
    /// Recent client message ids -> their acks, for retries without a store read. Bounded
    /// by `limits.recent_client_ids` (oldest forgotten first; the store still has them).
    /// Keyed by (app, sender, peer, client id): client message ids are unique per sender and
    /// conversation.
    pub recent_ids: Recent<IdemRecord>,
    /// Where recently delivered messages sit in their user's Messages stream, so a recall
    /// moves that entry instead of adding a second one. Bounded like `recent_ids`; a recall of
    /// an older message adds an entry (both refer to the tombstone).
    /// Keyed by (app, user, server id).
    pub recent_stream: Recent<super::messages::RecentDelivery>,
    /// Makes the keys of `recent_ids` and `recent_stream`.
    pub keyer: Keyer,
    pub ids: IdGen,
    /// Commands this shard sent to itself; run right after the command that sent them.
    pub local: VecDeque<ShardCmd>,
    /// Conversation entries changed only by new messages (last seq, own read seq): written
    /// behind, once a second (`flush_convs`). Bounded by the users this shard owns.
    pub dirty_convs: HashSet<(AppId, UserId, ConvRef)>,
    /// Pairs whose conversation this shard owns: their friendship relations, for the send
    /// checks (read on first use, dropped when they change).
    pub pair_rel: HashMap<(AppId, Pair), super::friends::PairRelation>,
    /// Counts uses of loaded per-user state (`touch`); a user's `last_used` is a stamp of it.
    pub uses: u64,
    /// Users whose conversation list or friendship state is loaded. Past
    /// `limits.loaded_users_per_shard` the least recently used offline ones are dropped
    /// (`evict_idle`), to be loaded again from the store on their next use.
    pub loaded: usize,
}

pub(super) use crate::now_ms;

/// Builds every shard's state from the store: users, subscriptions. Streams (and their heads) and
/// messages are not scanned.
pub(super) fn load(
    cfg: &Arc<Config>,
    store: &Store,
    router: &Router,
    committer: Committer,
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
            users: HashMap::new(),
            deferred: VecDeque::new(),
            expiries: BTreeMap::new(),
            facts: HashMap::new(),
            conv_heads: HashMap::new(),
            recent_ids: Recent::new(cfg.limits.recent_client_ids),
            recent_stream: Recent::new(cfg.limits.recent_client_ids),
            keyer: Keyer::new(),
            ids: IdGen::new(id),
            local: VecDeque::new(),
            dirty_convs: HashSet::new(),
            pair_rel: HashMap::new(),
            uses: 0,
            loaded: 0,
        })
        .collect();
    let mut bad = None;
    store.for_each_user(|app, user, bytes| match UserRecord::decode(user.clone(), bytes) {
        Ok(rec) => {
            let f = UserFacts::of(&rec, 0);
            for sh in shards.iter_mut() {
                sh.facts.insert((app, user.clone()), f);
            }
            let s = router.user_shard(app, &user);
            shards[s].users.insert((app, user), UserEntry::new(rec));
        }
        Err(_) => bad = Some(user),
    })?;
    if let Some(u) = bad {
        return Err(StoreError::Corrupt(format!("user record {u}")));
    }
    let now = now_ms();
    store.for_each_subscription(|app, target, sub, until| {
        let shard = &mut shards[router.user_shard(app, &target)];
        if until > now {
            if let Some(e) = shard.users.get_mut(&(app, target.clone())) {
                e.subscribers.insert(sub.clone(), until);
            }
        }
        // Expired ones too: the first tick deletes them from the store.
        shard.expiries.entry(until).or_default().push((app, target, sub));
    })?;
    let newest = recover_deliveries(store, n)?;
    let now = now_ms();
    for sh in shards.iter_mut() {
        sh.ids = IdGen::starting(sh.id, newest, now);
    }
    // Deliveries that were durable but not yet recorded by the user's shard when the process
    // stopped: re-drive them first thing (the user's shard skips what it already has).
    let mut replays = 0usize;
    let mut missing = 0usize;
    store.for_each_fanout(|app, user, server_id, kind, (lo, hi, seq)| match store.message(app, &lo, &hi, seq) {
        Ok(Some(v)) => match MessageRecord::decode(&v) {
            Ok(m) if m.server_id == server_id => {
                replays += 1;
                let s = router.user_shard(app, &user);
                let msg = Arc::new(m);
                shards[s].local.push_back(if kind == 0 {
                    ShardCmd::Deliver(Deliver { app, msg, to: vec![(user, None)], from_record: true })
                } else {
                    let by = msg.from.clone();
                    ShardCmd::Recalled { app, user, msg, by }
                });
            }
            _ => missing += 1,
        },
        _ => missing += 1,
    })?;
    if replays + missing > 0 {
        tracing::info!(replays, missing, "re-driving unrecorded deliveries");
    }
    Ok(shards)
}

/// Finds the deliveries that were durable (their message is) but not recorded in their
/// user's stream when the process stopped: those of messages above the delivery floor that no
/// delivery mark covers. Each gets a fan-out record, re-driven at start like any other. Then
/// the marks start over, for `shards` shards, above a new floor: the newest message id, which
/// is returned. One synced write, before any shard runs.
fn recover_deliveries(store: &Store, shards: usize) -> Result<u64, StoreError> {
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
            let newest = store.for_each_message_after(from, |app, id, (lo, hi, seq)| {
                scanned += 1;
                let source = crate::domain::message::id_shard(id);
                for u in [&lo, &hi] {
                    let t = crate::shard::shard_of(app, u, old_shards) as u8;
                    let m = mark.get(&(t, source)).copied();
                    let redo = m.is_none_or(|m| m < id);
                    tracing::trace!(id, source, t, mark = ?m, user = %u, redo, "recovery: delivery above the floor");
                    if redo {
                        batch.put_fanout(app, u, id, 0, &lo, &hi, seq);
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

/// The shard thread: a single-threaded runtime draining the inbox in batches.
pub(super) fn run(
    mut shard: Shard,
    mut rx: mpsc::Receiver<ShardCmd>,
    mut peer_rx: mpsc::Receiver<ShardCmd>,
    mut stop: watch::Receiver<bool>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, shard = shard.id, "cannot build the shard runtime");
            return;
        }
    };
    rt.block_on(async move {
        // Replays queued at load time run before anything else.
        shard.run_local().await;
        let mut buf = Vec::with_capacity(DRAIN);
        let mut client_buf = Vec::with_capacity(DRAIN);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // What the last batch of commands committed goes to the writer as one group
            // before the shard waits for more (or takes the next batch).
            shard.flush().await;
            // Over the deferred bound, stop taking session commands (their senders wait: the
            // backpressure reaches the clients) until the other shards have taken our output.
            // Commands from other shards are always taken.
            let paused = shard.deferred.len() >= shard.cfg.limits.deferred_per_shard;
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    // Run what is already queued, then stop taking more.
                    rx.close();
                    peer_rx.close();
                    while let Some(cmd) = peer_rx.recv().await {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    while let Some(cmd) = rx.recv().await {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    shard.flush_convs().await;
                    shard.flush().await;
                    break;
                }
                // The tick before the inboxes, so a busy shard still flushes and expires.
                _ = tick.tick() => shard.on_tick().await,
                n = peer_rx.recv_many(&mut buf, DRAIN) => {
                    if n == 0 {
                        break;
                    }
                    for cmd in buf.drain(..) {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    shard.retry_deferred();
                    // Peers first, but never only peers: one batch of session commands too, so
                    // a shard flooded with deliveries still serves logins and facts.
                    if shard.deferred.len() < shard.cfg.limits.deferred_per_shard {
                        while client_buf.len() < DRAIN {
                            match rx.try_recv() {
                                Ok(cmd) => client_buf.push(cmd),
                                Err(_) => break,
                            }
                        }
                        for cmd in client_buf.drain(..) {
                            shard.handle(cmd).await;
                            shard.run_local().await;
                        }
                    }
                }
                n = rx.recv_many(&mut client_buf, DRAIN), if !paused => {
                    if n == 0 {
                        break;
                    }
                    for cmd in client_buf.drain(..) {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    shard.retry_deferred();
                }
                _ = tokio::time::sleep(Duration::from_millis(1)), if paused => shard.retry_deferred(),
            }
        }
        tracing::debug!(shard = shard.id, "shard stopped");
    });
}

impl Shard {
    /// The one exhaustive dispatch of shard commands.
    pub(super) async fn handle(&mut self, cmd: ShardCmd) {
        match cmd {
            ShardCmd::Login { app, user, device, reply } => self.login(app, user, device, reply).await,
            ShardCmd::Disconnect { app, user, conn } => self.disconnect(app, user, conn),
            ShardCmd::ImportUsers { app, users, reply } => self.import_users(app, users, reply).await,
            ShardCmd::DeleteUsers { app, users, reply } => self.delete_users(app, users, reply).await,
            ShardCmd::GetUsers { app, users, admin, reply } => self.get_users(app, users, admin, reply).await,
            ShardCmd::ModifyUser { app, user, change, by_admin, origin, reply } => {
                self.modify_user(app, user, change, by_admin, origin, reply).await
            }
            ShardCmd::QueryStatus { app, users, reply } => self.query_status(app, users, reply).await,
            ShardCmd::Subscribe { app, subscriber, targets, until_ms, reply } => {
                self.subscribe(app, subscriber, targets, until_ms, reply).await
            }
            ShardCmd::Unsubscribe { app, subscriber, targets, reply } => {
                self.unsubscribe(app, subscriber, targets, reply).await
            }
            ShardCmd::Push { app, user, frame } => self.push_local(app, &user, &frame),
            ShardCmd::PushEach { app, users, frame } => {
                for u in &users {
                    self.push_local(app, u, &frame);
                }
            }
            ShardCmd::Sync { app, user, stream, after, limit, reply } => {
                self.sync(app, user, stream, after, limit, reply).await
            }
            ShardCmd::SetFacts { app, facts, done } => self.set_facts(app, &facts, done),
            ShardCmd::FriendPrecheck { app, user, peer, reply } => self.friend_precheck(app, user, peer, reply),
            ShardCmd::FriendInbound { app, user, from, info, by_admin, reply } => {
                self.friend_inbound(app, user, from, info, by_admin, reply).await
            }
            ShardCmd::FriendAddSide { app, user, peer, info, origin, reply } => {
                self.friend_add_side(app, user, peer, info, origin, reply).await
            }
            ShardCmd::FriendDelete { app, user, peer, origin, reply } => {
                self.friend_delete(app, user, peer, origin, reply).await
            }
            ShardCmd::FriendUpdate { app, user, peer, remark, extra, origin, reply } => {
                self.friend_update(app, user, peer, remark, extra, origin, reply).await
            }
            ShardCmd::Relations { app, pairs, reply } => self.relations(app, pairs, reply).await,
            ShardCmd::Relation { app, user, peer, reply } => self.relation(app, user, peer, reply).await,
            ShardCmd::GetFriends { app, user, after, limit, reply } => {
                self.get_friends(app, user, after, limit, reply).await
            }
            ShardCmd::BlackAdd { app, user, peer, origin, reply } => {
                self.black_add(app, user, peer, origin, reply).await
            }
            ShardCmd::BlackDelete { app, user, peer, origin, reply } => {
                self.black_delete(app, user, peer, origin, reply).await
            }
            ShardCmd::GetFriendRequests { app, user, reply } => self.get_friend_requests(app, user, reply).await,
            ShardCmd::AnswerFriendRequest { app, user, id, approve, remark, origin, reply } => {
                self.answer_friend_request(app, user, id, approve, remark, origin, reply).await
            }
            ShardCmd::ReadAllFriendRequests { app, user, origin, reply } => {
                self.read_all_friend_requests(app, user, origin, reply).await
            }
            ShardCmd::PairChanged { app, pair, done } => self.pair_changed(app, pair, done),
            ShardCmd::Evict { users } => self.evict(users),
            ShardCmd::FriendTag { app, user, name, op, members, origin, reply } => {
                self.friend_tag(app, user, name, op, members, origin, reply).await
            }
            ShardCmd::GetFriendTags { app, user, reply } => self.get_friend_tags(app, user, reply).await,
            ShardCmd::Send { app, from, to, client_id, msg_type, body, origin } => {
                self.send(app, from, to, client_id, msg_type, body, origin).await
            }
            ShardCmd::Recall { app, pair, by, by_admin, server_id, reply } => {
                self.recall(app, pair, by, by_admin, server_id, reply).await
            }
            ShardCmd::History { app, pair, range, limit, reply } => self.history(app, pair, range, limit, reply),
            ShardCmd::Deliver(d) => self.deliver(d).await,
            ShardCmd::DeliveredUpTo { source, upto } => self.mark_delivered_up_to(source, upto),
            ShardCmd::Recalled { app, user, msg, by } => self.recalled(app, user, msg, by).await,
            ShardCmd::Receipt { app, user, by, server_id, seq, origin } => {
                self.receipt(app, user, by, server_id, seq, origin)
            }
            ShardCmd::Read { app, user, conv, seq, origin, reply } => {
                self.read(app, user, conv, seq, origin, reply).await
            }
            ShardCmd::ReadReceipt { app, user, reader, read_seq } => self.read_receipt(app, user, reader, read_seq),
            ShardCmd::GetMessages { app, viewer, admin, ids, reply } => {
                self.get_messages(app, viewer, admin, ids, reply)
            }
            ShardCmd::GetConversations { app, user, after, limit, reply } => {
                self.get_conversations(app, user, after, limit, reply).await
            }
            ShardCmd::UpdateConversation { app, user, conv, pinned, muted, origin, reply } => {
                self.update_conversation(app, user, conv, pinned, muted, origin, reply).await
            }
            ShardCmd::DeleteConversation { app, user, conv, client_only, origin, reply } => {
                self.delete_conversation(app, user, conv, client_only, origin, reply).await
            }
        }
    }

    fn set_facts(&mut self, app: AppId, facts: &[(UserId, UserFacts)], done: tokio::sync::oneshot::Sender<()>) {
        for (u, f) in facts {
            let e = self.facts.entry((app, u.clone())).or_insert(*f);
            if f.version >= e.version {
                *e = *f;
            }
        }
        let _ = done.send(());
    }

    /// Runs the commands this shard sent to itself, in order.
    pub(super) async fn run_local(&mut self) {
        while let Some(cmd) = self.local.pop_front() {
            Box::pin(self.handle(cmd)).await;
        }
    }

    async fn on_tick(&mut self) {
        // Every shard learns how far this one's deliveries go, behind those deliveries, so
        // its mark for this shard moves even when none were for it (start-up scans the
        // messages above the lowest mark).
        let upto = self.ids.last();
        for s in 0..self.router.len() {
            self.send_to(s, ShardCmd::DeliveredUpTo { source: self.id as u8, upto });
        }
        self.run_local().await;
        self.retry_deferred();
        self.flush_convs().await;
        self.expire_subscriptions().await;
        self.evict_idle().await;
    }

    /// Marks `user`'s loaded state as used now, reading the user's stream heads on first use
    /// (every change to a stream goes through `ensure_convs` or `ensure_social`, which call
    /// this first); returns the entry, in one lookup (the caller loads what is missing and
    /// counts a user that had nothing loaded with `loaded += 1`).
    pub fn touch(&mut self, app: AppId, user: &UserId) -> Result<&mut UserEntry, DomainError> {
        self.uses += 1;
        let stamp = self.uses;
        let e = self.users.get_mut(&(app, user.clone())).ok_or(DomainError::UserNotFound)?;
        e.last_used = stamp;
        if !e.heads_loaded {
            // Nothing of this user's streams can be in flight: every change bumps a head first.
            let heads = self.store.stream_heads(app, user, STREAM_COUNT as u8).map_err(|err| {
                tracing::error!(error = %err, "reading stream heads");
                DomainError::StorageUnavailable
            })?;
            for (i, seq) in heads.into_iter().enumerate() {
                if let Some(s) = Stream::from_u8(i as u8) {
                    e.heads.set(s, crate::domain::ids::Seq(seq));
                }
            }
            e.heads_loaded = true;
        }
        Ok(e)
    }

    /// Over `limits.loaded_users_per_shard`: picks the least recently used offline users
    /// with loaded state (down to 90 % of the bound) and, once every write submitted so far
    /// is durable (so a reload reads what memory holds), asks this shard to drop their state
    /// with `ShardCmd::Evict`. A user used in between keeps it (its stamp moved on).
    async fn evict_idle(&mut self) {
        let cap = self.cfg.limits.loaded_users_per_shard.max(1);
        if self.loaded <= cap {
            return;
        }
        let mut idle: Vec<((AppId, UserId), u64)> = self
            .users
            .iter()
            .filter(|(_, e)| e.loaded() && e.devices.is_empty())
            .map(|(k, e)| (k.clone(), e.last_used))
            .collect();
        let excess = self.loaded - cap * 9 / 10;
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
                let _ = router.try_send(me, ShardCmd::Evict { users: idle });
            }
        })
        .await;
    }

    fn evict(&mut self, users: Vec<((AppId, UserId), u64)>) {
        let mut dropped = 0;
        for (key, stamp) in users {
            let Some(e) = self.users.get_mut(&key) else { continue };
            if e.last_used == stamp && e.devices.is_empty() && e.loaded() {
                e.convs = None;
                e.social = None;
                self.loaded -= 1;
                dropped += 1;
            }
        }
        tracing::debug!(shard = self.id, dropped, loaded = self.loaded, "evicted idle users' loaded state");
    }

    /// Commits `batch`; `then` runs on the writer thread once it is durable (or failed). The
    /// batch joins the shard's open group, written with the rest of this batch of commands
    /// (`flush`); a group that grows past `COMMIT_GROUP_OPS` is handed over at once.
    pub async fn commit(&self, batch: Batch, then: impl FnOnce(Result<(), DomainError>) + Send + 'static) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let full = {
            let mut g = self.commit_group.borrow_mut();
            g.batch.append(batch);
            g.thens.push(Box::new(then));
            g.batch.len() >= COMMIT_GROUP_OPS
        };
        if full {
            self.submit_commit_group().await;
        }
    }

    /// A live delivery of message `server_id` is (being) recorded: the mark for its source
    /// shard moves with the group that records it.
    pub fn mark_delivered(&self, server_id: u64) {
        let source = crate::domain::message::id_shard(server_id) as usize;
        let mut m = self.marks.borrow_mut();
        m.recorded[source] = m.recorded[source].max(server_id);
    }

    /// Shard `source` sent every delivery up to `upto` before this command, and each was
    /// handled (its entries are in this or an earlier group).
    fn mark_delivered_up_to(&self, source: u8, upto: u64) {
        let mut m = self.marks.borrow_mut();
        let s = source as usize & 63;
        m.recorded[s] = m.recorded[s].max(upto);
    }

    /// Hands the open group to the writer (waiting while its queue is full), with the
    /// delivery marks that moved.
    async fn submit_commit_group(&self) {
        let CommitGroup { mut batch, thens } = std::mem::take(&mut *self.commit_group.borrow_mut());
        {
            let mut m = self.marks.borrow_mut();
            for s in 0..64 {
                if m.recorded[s] > m.written[s] {
                    batch.put_delivery_mark(self.id as u8, s as u8, m.recorded[s]);
                    m.written[s] = m.recorded[s];
                }
            }
        }
        if thens.is_empty() && batch.is_empty() {
            return;
        }
        let inflight = self.inflight.clone();
        self.committer
            .commit(
                batch,
                Box::new(move |r| {
                    inflight.fetch_sub(thens.len(), Ordering::AcqRel);
                    let r = r.map_err(|_| DomainError::StorageUnavailable);
                    for then in thens {
                        then(r.clone());
                    }
                }),
            )
            .await;
    }

    /// Writes the open group, then sends the cross-shard commands held behind it.
    pub async fn flush(&mut self) {
        self.submit_commit_group().await;
        for (shard, cmd) in std::mem::take(&mut self.held) {
            self.send_now(shard, cmd);
        }
    }

    /// Runs `then` once every commit this shard already submitted is durable: right away when
    /// none is in flight. Answers that read state use it, so nobody reads a change that could
    /// still be lost. After a store failure memory is ahead of the disk, so it gets
    /// `StorageUnavailable` instead.
    pub async fn after_pending(&self, then: impl FnOnce(Result<(), DomainError>) + Send + 'static) {
        if self.committer.has_failed() {
            then(Err(DomainError::StorageUnavailable));
        } else if self.inflight.load(Ordering::Acquire) == 0 {
            then(Ok(()));
        } else {
            self.commit(Batch::default(), then).await;
        }
    }

    /// Hands `frame` to every online device of `user`, wherever its shard is.
    pub fn push_to_user(&mut self, app: AppId, user: &UserId, frame: Bytes) {
        let s = self.router.user_shard(app, user);
        if s == self.id {
            self.push_local(app, user, &frame);
        } else {
            self.send_to_shard(s, ShardCmd::Push { app, user: user.clone(), frame });
        }
    }

    pub fn push_local(&self, app: AppId, user: &UserId, frame: &Bytes) {
        if let Some(e) = self.users.get(&(app, user.clone())) {
            for d in &e.devices {
                d.outbox.send(frame.clone());
            }
        }
    }

    /// Sends a command to a shard: to this one through `local` (run right after the current
    /// command), to another with `send_to_shard`.
    pub fn send_to(&mut self, shard: usize, cmd: ShardCmd) {
        if shard == self.id {
            self.local.push_back(cmd);
        } else {
            self.send_to_shard(shard, cmd);
        }
    }

    /// Sends to another shard without waiting, once the commits made so far are handed to
    /// the writer (`flush`); a full inbox defers the command.
    pub fn send_to_shard(&mut self, shard: usize, cmd: ShardCmd) {
        if !self.held.is_empty() || !self.commit_group.get_mut().thens.is_empty() {
            self.held.push((shard, cmd));
            return;
        }
        self.send_now(shard, cmd);
    }

    fn send_now(&mut self, shard: usize, cmd: ShardCmd) {
        if !self.deferred.is_empty() {
            // Keep order behind what is already deferred.
            self.defer(shard, cmd);
            return;
        }
        if let Err(Rejected { reason: RouteError::Full, cmd }) = self.router.try_send(shard, cmd) {
            self.defer(shard, *cmd);
        }
    }

    fn defer(&mut self, shard: usize, cmd: ShardCmd) {
        if self.deferred.len() >= self.cfg.limits.deferred_per_shard {
            if let ShardCmd::Push { .. } | ShardCmd::PushEach { .. } = cmd {
                // A push of a status or profile change: the client can re-read it
                // (queryOnlineStatus, getUserInfo). Logged, never silent.
                tracing::warn!(shard = self.id, to = shard, "deferred queue full; dropping a cross-shard push");
                return;
            }
            // Deliveries and recalls are never dropped. The loop stops taking session
            // commands while the queue is over its bound, so it exceeds it by at most what
            // one batch of session commands produces.
        }
        self.deferred.push_back((shard, cmd));
    }

    pub fn retry_deferred(&mut self) {
        while let Some((shard, cmd)) = self.deferred.pop_front() {
            if let Err(Rejected { reason: RouteError::Full, cmd }) = self.router.try_send(shard, cmd) {
                self.deferred.push_front((shard, *cmd));
                return;
            }
        }
    }
}
