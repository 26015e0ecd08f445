//! Shard-level tests of interleavings: the shards are played by hand, without their threads,
//! so a test can stop between any two commands exactly where a `kill -9` could (then start
//! again on the same store and check what start-up recovers), or run an eviction exactly
//! while a write is in flight.

use std::sync::Arc;

use crate::config::{Config, Durability};
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::ids::{ConvId, ConvRef, Pair};
use crate::domain::sync::Stream;
use crate::domain::user::UserRecord;
use crate::shard::cmd::{Origin, SendMessage};
use crate::shard::outbox::Outbox;
use crate::shard::router::{shard_of, Router};
use crate::shard::state::{self, Shard};
use crate::store::{Batch, Committer, Store, WriterOptions, WriterThread};

const SHARDS: usize = 2;

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// Two users on one user shard whose conversation is owned by the other shard, so their
/// message's deliveries cross a shard inbox, where the test can stop between commands.
fn users_sharing_a_shard(app: AppId, router: &Router) -> (UserId, UserId, usize, usize) {
    for i in 0..1000 {
        for j in 0..1000 {
            let (a, b) = (uid(&format!("a{i}")), uid(&format!("b{j}")));
            let t = shard_of(app, &a, SHARDS);
            if shard_of(app, &b, SHARDS) != t {
                continue;
            }
            let p = router.conv_shard(app, &ConvId::P2p(Pair::new(&a, &b).unwrap()));
            if p != t {
                return (a, b, t, p);
            }
        }
    }
    unreachable!("some pair of names hashes that way");
}

struct Run {
    router: Router,
    inboxes: crate::shard::router::Inboxes,
    shards: Vec<Shard>,
    committer: Committer,
    writer: WriterThread,
}

fn start(cfg: &Arc<Config>, store: &Store) -> Run {
    let (committer, writer) = store.start_writer(WriterOptions {
        durability: Durability::Sync,
        wal_sync_ms: 0,
        queue: 64,
        max_group: 64,
        direct: false,
    });
    let (router, inboxes) = Router::new(SHARDS, 64);
    let shards =
        state::load(cfg, store, &router, committer.clone(), (None, crate::metrics::Metrics::new(router.len())))
            .unwrap();
    Run { router, inboxes, shards, committer, writer }
}

impl Run {
    /// Everything shard `s` has committed is durable.
    async fn settle(&mut self, s: usize) {
        self.shards[s].run_local().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A barrier behind what is open, handed to the writer with it.
        self.shards[s].after_pending(move |r| drop(tx.send(r))).await;
        self.shards[s].flush().await;
        rx.await.unwrap().unwrap();
    }

    /// A kill -9: whatever is queued and not handled is gone; what was written stays.
    fn kill(self) {
        drop(self.shards);
        drop(self.inboxes);
        drop(self.router);
        drop(self.committer);
        self.writer.join().unwrap();
    }
}

/// How many times `user`'s Messages stream holds message `server_id`.
fn in_stream(store: &Store, app: AppId, user: &UserId, server_id: u64) -> usize {
    let (entries, _) = store.read_stream(app, user, Stream::Messages, 0, 1000).unwrap();
    entries.iter().filter(|e| e.payload.is_some() && e.item == crate::domain::sync::ItemId::Message(server_id)).count()
}

/// The interleaving that lost messages (issue: acknowledged messages missing from the
/// receiver's Messages stream after kill -9 under load): sender and receiver on one user
/// shard T, their conversation on shard P. P stores the message and hands T its deliveries;
/// T takes what has arrived so far, records it with its delivery mark for P at the message's
/// id, and that group is durable; the process dies before T handles anything else. When the
/// two deliveries were two commands and only the first had arrived, the durable mark told
/// start-up the second was recorded too, and it never was. Checked here for every cut: T
/// handled nothing, one command, or everything that arrived. Each time both users must end
/// up with the message in their Messages stream exactly once.
#[test]
fn a_kill_between_a_messages_deliveries_to_one_shard_loses_neither() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    for handled in [Some(0), Some(1), None] {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = Arc::new(Config {
            data_dir: tmp.path().to_path_buf(),
            durability: Durability::Sync,
            shards: SHARDS,
            ..Config::default()
        });
        let app = cfg.apps[0].id;
        let store = Store::open(&cfg.data_dir).unwrap();
        let (probe, _) = Router::new(SHARDS, 1);
        let (a, b, t, p) = users_sharing_a_shard(app, &probe);
        let mut users = Batch::default();
        users.put_user(app, &a, UserRecord::new(a.clone()).encode());
        users.put_user(app, &b, UserRecord::new(b.clone()).encode());
        store.write_now(users).unwrap();

        let server_id = rt.block_on(async {
            let mut run = start(&cfg, &store);
            let (outbox, mut acks) = Outbox::new(ConnId(1), 16);
            let answered = outbox.take_request();
            let send = SendMessage {
                app,
                from: a.clone(),
                to: ConvRef::P2p(b.clone()),
                client_id: "c1".into(),
                msg_type: 1,
                body: b"hello".to_vec(),
                origin: Origin { outbox, req_id: 1, platform: Default::default(), answered },
                hook: Default::default(),
            }
            .into();
            run.shards[p].handle(send).await;
            run.settle(p).await;
            let Some(crate::shard::outbox::Next::Frame(ack)) = acks.next().await else {
                panic!("the sender is acknowledged")
            };
            let frame = crate::protocol::decode_server(&ack[4..]).expect("a server frame");
            let server_id = frame.response_as_send_ack().expect("a send ack").server_id();
            // What P handed T, in order.
            let mut arrived = Vec::new();
            while let Ok(cmd) = run.inboxes.peers[t].try_recv() {
                arrived.push(cmd);
            }
            assert!(!arrived.is_empty(), "P sent T the deliveries");
            let take = handled.unwrap_or(arrived.len());
            for cmd in arrived.into_iter().take(take) {
                run.shards[t].handle(cmd).await;
            }
            run.settle(t).await;
            run.kill();
            server_id
        });

        // The restart: start-up recovery and the re-drives it queues.
        rt.block_on(async {
            let mut run = start(&cfg, &store);
            for s in 0..SHARDS {
                run.settle(s).await;
            }
            run.kill();
        });
        for u in [&a, &b] {
            assert_eq!(
                in_stream(&store, app, u, server_id),
                1,
                "{u}'s Messages stream holds the message once (T handled {handled:?} of its commands)"
            );
        }
    }
}

/// The ack frame's seq.
fn ack_seq(next: Option<crate::shard::outbox::Next>) -> u64 {
    let Some(crate::shard::outbox::Next::Frame(ack)) = next else { panic!("an ack") };
    let frame = crate::protocol::decode_server(&ack[4..]).expect("a server frame");
    frame.response_as_send_ack().expect("a send ack").seq()
}

/// A conversation's cached last seq is dropped past `limits.conversations_per_shard`, but
/// never while a write of it may not be durable yet: a send handled between the eviction's
/// decision and the durability of the send before it must still get the next seq (read from
/// the store at that point, it would repeat the seq before).
#[test]
fn a_conversation_head_is_not_evicted_while_its_last_send_is_in_flight() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Config { data_dir: tmp.path().to_path_buf(), shards: SHARDS, ..Config::default() };
    cfg.limits.conversations_per_shard = 1;
    let cfg = Arc::new(cfg);
    let app = cfg.apps[0].id;
    let store = Store::open(&cfg.data_dir).unwrap();
    let (probe, _) = Router::new(SHARDS, 1);
    // Two conversations of `a` owned by one shard `p`: one more than the bound.
    let a = uid("a");
    let conv = |x: &UserId| ConvId::P2p(Pair::new(&a, x).unwrap());
    let (b, c) = (
        uid("b"),
        (0..1000)
            .map(|i| uid(&format!("c{i}")))
            .find(|c| probe.conv_shard(app, &conv(c)) == probe.conv_shard(app, &conv(&uid("b"))))
            .unwrap(),
    );
    let p = probe.conv_shard(app, &conv(&b));
    let mut users = Batch::default();
    for u in [&a, &b, &c] {
        users.put_user(app, u, UserRecord::new(u.clone()).encode());
    }
    store.write_now(users).unwrap();
    rt.block_on(async {
        let mut run = start(&cfg, &store);
        let (outbox, mut acks) = Outbox::new(ConnId(1), 16);
        let send = |to: &UserId, id: &str| {
            let answered = outbox.take_request();
            let origin = Origin { outbox: outbox.clone(), req_id: 1, platform: Default::default(), answered };
            SendMessage {
                app,
                from: a.clone(),
                to: ConvRef::P2p(to.clone()),
                client_id: id.into(),
                msg_type: 1,
                body: vec![1],
                origin,
                hook: Default::default(),
            }
            .into()
        };
        run.shards[p].handle(send(&c, "c1")).await;
        run.settle(p).await;
        assert_eq!(ack_seq(acks.next().await), 1);
        // a -> b is handled, its write still in the shard's open group, when the shard decides
        // to evict; the next send of the conversation comes before that write is durable.
        run.shards[p].handle(send(&b, "b1")).await;
        run.shards[p].evict_conversations().await;
        run.shards[p].handle(send(&b, "b2")).await;
        run.settle(p).await;
        assert_eq!((ack_seq(acks.next().await), ack_seq(acks.next().await)), (1, 2), "a -> b: seqs 1 and 2");
        // Once the writes are durable the eviction goes ahead: a -> c, unused since, is
        // dropped and read again from the store; a -> b, used after the decision, stays.
        while let Ok(cmd) = run.inboxes.peers[p].try_recv() {
            run.shards[p].handle(cmd).await;
        }
        let cached: Vec<bool> =
            [&b, &c].iter().map(|x| run.shards[p].conv_heads.contains_key(&(app, conv(x)))).collect();
        assert_eq!(cached, vec![true, false]);
        run.shards[p].handle(send(&c, "c2")).await;
        run.settle(p).await;
        assert_eq!(ack_seq(acks.next().await), 2, "a -> c goes on from the store");
        run.kill();
    });
}
