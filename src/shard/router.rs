//! Routing: which shard owns an entity (users by `hash(app, user)`, conversations by their
//! `ConvId`), and each shard's two bounded inboxes (sessions wait when one is full; other
//! shards never wait: they `try_send` and keep what did not fit).

use std::hash::Hasher;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::domain::ids::{AppId, ConvId, UserId};
use crate::shard::cmd::{PushToUser, PushToUsers, ShardCmd};

/// Routes commands to the shard owning an entity. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    /// Each shard's inbox for commands from sessions: sessions wait when it is full.
    shards: Arc<[mpsc::Sender<ShardCmd>]>,
    /// Each shard's inbox for commands from other shards (deliveries, pushes, facts). A shard
    /// always drains it, even while it stops taking session commands, so shards can never
    /// wait on each other in a cycle.
    peers: Arc<[mpsc::Sender<ShardCmd>]>,
}

/// Why a command could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// The shard's queue is full (only from `try_send`).
    Full,
    /// The shard has stopped (shutdown).
    Closed,
}

/// A command `try_send` could not queue, given back (boxed: this is the rare path).
pub struct Rejected {
    pub reason: RouteError,
    pub cmd: Box<ShardCmd>,
}

/// The routing hash, fixed for good: SipHash-1-3 with both keys 0 over the app id (4 bytes,
/// little-endian), then each id's bytes followed by one 0xff byte. The same entity maps to
/// the same shard in every build with the same shard count; persisted delivery marks rely
/// on it. (These are the values std's `DefaultHasher` gave when data was first written with
/// it; std does not promise to keep them, this function does. Pinned by a test vector.)
fn route_hash(app: AppId, ids: &[&str]) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0, 0);
    h.write(&app.0.to_le_bytes());
    for id in ids {
        h.write(id.as_bytes());
        h.write(&[0xff]);
    }
    h.finish()
}

/// The shard that owns a user.
pub fn shard_of(app: AppId, user: &UserId, n: usize) -> usize {
    (route_hash(app, &[user.as_str()]) % n as u64) as usize
}

/// The receiving ends of every shard's two inboxes, in shard order.
pub struct Inboxes {
    pub sessions: Vec<mpsc::Receiver<ShardCmd>>,
    pub peers: Vec<mpsc::Receiver<ShardCmd>>,
}

impl Router {
    /// A router over `n` shards whose inboxes each hold `queue` commands, and the inboxes'
    /// receiving ends (for the shard threads, or for a harness that plays the shards).
    pub fn new(n: usize, queue: usize) -> (Router, Inboxes) {
        let mut txs = Vec::with_capacity(n);
        let mut inboxes = Inboxes { sessions: Vec::with_capacity(n), peers: Vec::with_capacity(n) };
        let mut peer_txs = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(queue.max(1));
            txs.push(tx);
            inboxes.sessions.push(rx);
            let (tx, rx) = mpsc::channel(queue.max(1));
            peer_txs.push(tx);
            inboxes.peers.push(rx);
        }
        (Router { shards: txs.into(), peers: peer_txs.into() }, inboxes)
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// Commands queued in each shard's inboxes now: (from sessions, from other shards).
    pub fn depths(&self) -> Vec<(u64, u64)> {
        let queued = |s: &mpsc::Sender<ShardCmd>| (s.max_capacity() - s.capacity()) as u64;
        self.shards.iter().zip(self.peers.iter()).map(|(s, p)| (queued(s), queued(p))).collect()
    }

    pub fn user_shard(&self, app: AppId, user: &UserId) -> usize {
        shard_of(app, user, self.shards.len())
    }

    /// The shard that owns a conversation: a pair by its two users, a group by its id (after
    /// a marker, so a group's shard is not the same-named user's).
    pub fn conv_shard(&self, app: AppId, conv: &ConvId) -> usize {
        let h = match conv {
            ConvId::P2p(p) => route_hash(app, &[p.lo.as_str(), p.hi.as_str()]),
            ConvId::Group(g) => route_hash(app, &["#group", g.as_str()]),
        };
        (h % self.shards.len() as u64) as usize
    }

    /// Queues a command, waiting while the shard's inbox is full (backpressure to the caller).
    pub async fn send(&self, shard: usize, cmd: ShardCmd) -> Result<(), RouteError> {
        self.shards[shard].send(cmd).await.map_err(|_| RouteError::Closed)
    }

    /// Queues a command from a connection (the session inbox) without waiting; gives it back
    /// when full.
    pub fn try_submit(&self, shard: usize, cmd: ShardCmd) -> Result<(), Rejected> {
        self.shards[shard].try_send(cmd).map_err(Rejected::from)
    }

    /// Queues a command on a shard's peer inbox without waiting; gives it back when full.
    pub fn try_send(&self, shard: usize, cmd: ShardCmd) -> Result<(), Rejected> {
        self.peers[shard].try_send(cmd).map_err(Rejected::from)
    }
}

impl From<mpsc::error::TrySendError<ShardCmd>> for Rejected {
    fn from(e: mpsc::error::TrySendError<ShardCmd>) -> Rejected {
        match e {
            mpsc::error::TrySendError::Full(c) => Rejected { reason: RouteError::Full, cmd: Box::new(c) },
            mpsc::error::TrySendError::Closed(c) => Rejected { reason: RouteError::Closed, cmd: Box::new(c) },
        }
    }
}

impl Router {
    /// Hands an encoded push to every online device of `user`, from any thread, without
    /// waiting (used from commit completions on the writer thread). A full inbox drops the
    /// push with a warning: only pushes that a client can recover from (by re-reading or
    /// resyncing) travel this way. Receipts, which no stream holds, go back to the committing
    /// shard instead (`shard::kept`).
    pub fn push(&self, app: AppId, user: &UserId, frame: bytes::Bytes) {
        let shard = self.user_shard(app, user);
        if let Err(r) = self.try_send(shard, PushToUser { app, user: user.clone(), frame, kept: false }.into()) {
            if r.reason == RouteError::Full {
                tracing::warn!(shard, "shard inbox full; dropping a push");
            }
        }
    }

    /// `users` grouped by the shard that owns them (empty groups left out), for `push_each`.
    pub fn by_shard<'a>(&self, app: AppId, users: impl IntoIterator<Item = &'a UserId>) -> Vec<(usize, Vec<UserId>)> {
        let mut by_shard: Vec<Vec<UserId>> = vec![Vec::new(); self.len()];
        for u in users {
            by_shard[self.user_shard(app, u)].push(u.clone());
        }
        by_shard.into_iter().enumerate().filter(|(_, u)| !u.is_empty()).collect()
    }

    /// `push` to many users, grouped by `by_shard`: one command per shard, not one per user
    /// (a full inbox drops that shard's share, as `push` does).
    pub fn push_each(&self, app: AppId, groups: Vec<(usize, Vec<UserId>)>, frame: bytes::Bytes) {
        for (shard, users) in groups {
            if let Err(r) = self.try_send(shard, PushToUsers { app, users, frame: frame.clone() }.into()) {
                if r.reason == RouteError::Full {
                    tracing::warn!(shard, "shard inbox full; dropping a push to many users");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_hash_is_pinned() {
        // Values computed when this function replaced `DefaultHasher` (the same values): a
        // change here moves users between shards and breaks persisted delivery marks.
        assert_eq!(route_hash(AppId(1400000001), &["alice"]), PINNED[0]);
        assert_eq!(route_hash(AppId(1400000001), &["alice", "bob"]), PINNED[1]);
        assert_eq!(route_hash(AppId(0), &[""]), PINNED[2]);
        let u = |s: &str| UserId::new(s).unwrap();
        assert_eq!(shard_of(AppId(1400000001), &u("alice"), 4), (PINNED[0] % 4) as usize);
    }

    const PINNED: [u64; 3] = [10824086629965884522, 2641869600528014153, 7905721452564903634];

    #[test]
    fn shard_of_is_stable_and_spreads() {
        let u = |s: &str| UserId::new(s).unwrap();
        assert_eq!(shard_of(AppId(1), &u("alice"), 4), shard_of(AppId(1), &u("alice"), 4));
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[shard_of(AppId(1), &u(&format!("user{i}")), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn conversations_route_by_their_id() {
        let (r, _inboxes) = Router::new(8, 1);
        let (a, b) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let pair = ConvId::P2p(crate::domain::ids::Pair::new(&a, &b).unwrap());
        // A pair's shard is what it was before conversations had kinds.
        assert_eq!(r.conv_shard(AppId(1400000001), &pair), (PINNED[1] % 8) as usize);
        let mut counts = [0usize; 8];
        for i in 0..8000 {
            let g = ConvId::Group(crate::domain::ids::GroupId::new(&format!("g{i}")).unwrap());
            counts[r.conv_shard(AppId(1), &g)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
