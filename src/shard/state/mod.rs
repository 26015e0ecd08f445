//! One shard: its in-memory state (this file) and, by concern, start-up (`load`), the loop
//! and dispatch (`run`), users and their facts read on first use (`resident`), evicting idle
//! users (`evict`), commits (`commit`) and sending (`route`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::Config;
use crate::domain::conversation::ConvView;
use crate::domain::ids::{AppId, ConnId, ConvId, ConvRef, GroupId, Pair, UserId};
use crate::domain::message::{IdGen, IdemRecord};
use crate::domain::sync::Heads;
use crate::domain::user::{UserFacts, UserRecord};
use crate::domain::DomainError;
use crate::protocol::wire::ClientType;
use crate::shard::cmd::{Reply, ShardCmd};
use crate::shard::outbox::Outbox;
use crate::shard::recent::{Keyer, Recent, RecentDelivery};
use crate::shard::router::Router;
use crate::store::{Batch, Committer, Store};

/// The shard's maps keyed by ids on the hot path (every delivery looks up its user and
/// conversation): hashbrown's default hasher, seeded per process.
pub(in crate::shard) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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

/// Everything a shard holds about one user it owns: read from the store on the user's first
/// use (`Shard::user_entry`), dropped when idle (`Shard::evict_idle`).
pub(super) struct UserEntry {
    pub rec: UserRecord,
    pub devices: Vec<Device>,
    /// Who follows this user's online status, and until when (ms): the live subscriptions,
    /// read from the store with the record.
    pub subscribers: HashMap<UserId, u64>,
    pub heads: Heads,
    /// The user's conversation list, loaded from the store on first use.
    pub convs: Option<FastMap<ConvRef, ConvView>>,
    /// The user's friends, blacklist and received requests, loaded on first use.
    pub social: Option<crate::domain::friend::Social>,
    /// The user's side of their group memberships (and of groups they left), loaded on
    /// first use.
    pub groups: Option<FastMap<GroupId, crate::domain::group::Joined>>,
    /// The shard's use stamp when the entry was last used (see `Shard::user_entry`).
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
            convs: None,
            social: None,
            groups: None,
            last_used: 0,
            heads_loaded: false,
        }
    }

    /// Nothing of it lives only here: no device online. (Its subscribers are in the store
    /// and in the expiry index; what it changed is durable once the writes submitted so far
    /// are: see `evict_idle`.)
    pub fn idle(&self) -> bool {
        self.devices.is_empty()
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
    /// The users of this shard used lately (read on first use; past
    /// `limits.loaded_users_per_shard` the least recently used idle ones are dropped each
    /// second by `evict_idle`, to be read again on their next use).
    pub users: FastMap<(AppId, UserId), UserEntry>,
    /// Cross-shard commands held back because the target inbox was full.
    pub deferred: VecDeque<(usize, ShardCmd)>,
    /// Status subscriptions by expiry time (ms): (app, target, subscriber), each stored
    /// subscription of a target read since start once, at its stored expiry (renewals and
    /// unsubscribes move or remove it), also while the target is evicted.
    pub expiries: BTreeMap<u64, Vec<(AppId, UserId, UserId)>>,
    /// Send-relevant facts of users this shard checked sends for, by `keyer` key of (app,
    /// user): a cache of the stored records, filled on a miss (`facts_of`), dropped per user
    /// by `FactsChanged`, at most `limits.facts_cache_per_shard` (oldest forgotten first).
    pub facts: Recent<UserFacts>,
    /// Conversations this shard owns that were used recently: their last seq, and the use
    /// stamp (`uses`) of their last send. Bounded by `limits.conversations_per_shard`
    /// (`evict_conversations`).
    pub conv_heads: FastMap<(AppId, ConvId), Stamped<u64>>,
    /// Recent client message ids -> their acks, for retries without a store read. Bounded
    /// by `limits.recent_client_ids` (oldest forgotten first; the store still has them).
    /// Keyed by (app, sender, peer, client id): client message ids are unique per sender and
    /// conversation.
    pub recent_ids: Recent<IdemRecord>,
    /// Where recently delivered messages sit in their user's Messages stream, so a recall
    /// moves that entry instead of adding a second one. Bounded like `recent_ids`; a recall of
    /// an older message adds an entry (both refer to the tombstone).
    /// Keyed by (app, user, server id).
    pub recent_stream: Recent<RecentDelivery>,
    /// Makes the keys of `recent_ids` and `recent_stream`.
    pub keyer: Keyer,
    pub ids: IdGen,
    /// Commands this shard sent to itself; run right after the command that sent them.
    pub local: VecDeque<ShardCmd>,
    /// Conversation entries changed only by new messages (last seq, own read seq): written
    /// behind, once a second (`flush_convs`). Bounded by the users this shard owns.
    pub dirty_convs: HashSet<(AppId, UserId, ConvRef)>,
    /// Pairs whose conversation this shard owns: their friendship relations, for the send
    /// checks (read on first use, dropped when they change, bounded like `conv_heads`).
    pub pair_rel: HashMap<(AppId, Pair), Stamped<crate::domain::friend::PairRelation>>,
    /// Pushes this shard's commit completions handed back to be sent (receipts).
    pub kept: Arc<crate::shard::kept::KeptPushes>,
    /// Groups this shard owns that were used since start (record, members, last seq; read
    /// on first use): see `shard::groups`.
    pub groups: FastMap<(AppId, GroupId), GroupState>,
    /// The last message seq of groups whose messages this shard delivered to its members
    /// lately: a conversation list loaded meanwhile takes it when the store does not have
    /// the message yet. Bounded by `limits.conversations_per_shard` (cleared past it).
    pub group_heads: FastMap<(AppId, GroupId), u64>,
    /// Counts uses of user entries (`user_entry`) and of the send caches; a user's
    /// `last_used` and the stamps of `conv_heads` and `pair_rel` are values of it.
    pub uses: u64,
    /// The apps' backends (`None`: no app has callbacks).
    pub hooks: Option<Arc<crate::callbacks::Hooks>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Sends waiting on a before-hook (`shard::hooks`).
    pub parking: crate::shard::hooks::Parking,
}

/// A cached value and the use stamp (`Shard::uses`) of its last use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamped<T> {
    pub value: T,
    pub used: u64,
}

pub(super) use crate::now_ms;

mod commit;
mod evict;
mod group;
mod load;
mod resident;
mod roster;
mod route;
mod run;

pub(in crate::shard) use group::GroupState;
pub(super) use load::load;
pub(in crate::shard) use roster::{Roster, Run};
pub(super) use run::run;

/// A user's devices but `origin` (the one that made a change hears of it in its answer).
pub(super) fn devices_but(devices: &[Device], origin: Option<ConnId>) -> Vec<Outbox> {
    devices.iter().filter(|d| Some(d.outbox.conn()) != origin).map(|d| d.outbox.clone()).collect()
}

impl Shard {
    /// `user`'s devices but `origin` (none if the user is not loaded).
    pub(super) fn devices_but(&self, app: AppId, user: &UserId, origin: Option<ConnId>) -> Vec<Outbox> {
        self.users.get(&(app, user.clone())).map(|e| devices_but(&e.devices, origin)).unwrap_or_default()
    }

    /// Commits `batch` (empty: a barrier behind every write queued so far), then pushes
    /// `frame` to `targets`.
    pub(super) async fn commit_push(&self, batch: Batch, targets: Vec<Outbox>, frame: Bytes) {
        self.commit(batch, move |r| {
            if r.is_ok() {
                for t in &targets {
                    t.send(frame.clone());
                }
            }
        })
        .await;
    }

    /// Commits `batch`, then answers `value` and pushes `frames` to `targets`.
    pub(super) async fn commit_then<T: Send + 'static>(
        &self,
        batch: Batch,
        targets: Vec<Outbox>,
        frames: Vec<Bytes>,
        reply: Reply<Result<T, DomainError>>,
        value: T,
    ) {
        self.commit(batch, move |r| match r {
            Ok(()) => {
                for t in &targets {
                    for f in &frames {
                        t.send(f.clone());
                    }
                }
                let _ = reply.send(Ok(value));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        })
        .await;
    }
}
