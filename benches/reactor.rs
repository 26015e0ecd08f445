//! Shard routing: one-to-one messages per second through the reactor without sockets. Sends
//! go straight into the conversation shard's inbox as the dispatch layer puts them there; each
//! is checked, stored (a real RocksDB in `wal` mode, group-committed), acknowledged into the
//! sender's outbox and delivered into the receiver's Messages stream on the receiver's shard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imserver::config::{Config, Durability};
use imserver::domain::ids::{ConnId, UserId};
use imserver::domain::user::UserRecord;
use imserver::shard::cmd::Origin;
use imserver::shard::cmd::SendMessage;
use imserver::shard::outbox::Outbox;
use imserver::shard::Shards;
use imserver::store::{Batch, Store, WriterOptions};
use tokio::sync::Semaphore;

// As in the server binary (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PAIRS: usize = 1000;
const WINDOW: usize = 2048;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Arc::new(Config {
        data_dir: dir.path().to_path_buf(),
        durability: Durability::Wal,
        shards: 2,
        ..Config::default()
    });
    let app = cfg.apps[0].id;
    let store = Store::open(&cfg.data_dir).unwrap();
    let users: Vec<(UserId, UserId)> =
        (0..PAIRS).map(|i| (UserId::new(&format!("s{i}")).unwrap(), UserId::new(&format!("r{i}")).unwrap())).collect();
    {
        // Users straight into the store; the shards load them at start.
        let (committer, writer) = store.start_writer(WriterOptions {
            durability: Durability::Sync,
            wal_sync_ms: 0,
            queue: 16,
            max_group: 16,
            direct: false,
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut b = Batch::default();
            for (s, r) in &users {
                b.put_user(app, s, UserRecord::new(s.clone()).encode());
                b.put_user(app, r, UserRecord::new(r.clone()).encode());
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            committer.commit(b, Box::new(move |r| drop(tx.send(r)))).await;
            rx.await.unwrap().unwrap();
        });
        drop(committer);
        writer.join().unwrap();
    }
    let (committer, writer) = store.start_writer(WriterOptions {
        durability: Durability::Wal,
        wal_sync_ms: cfg.wal_sync_ms,
        queue: cfg.limits.commit_queue,
        max_group: cfg.limits.max_commit_group,
        direct: cfg.write_path == imserver::config::WritePath::Shards,
    });
    let (router, shards) =
        Shards::start(cfg.clone(), store.clone(), committer, None, imserver::metrics::Metrics::new(cfg.shard_count()))
            .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let next = AtomicU64::new(0);
    // At most WINDOW sends in flight: a permit is taken per send and given back per ack.
    let window = Arc::new(Semaphore::new(WINDOW));
    // One outbox per sender, drained and dropped as a session's writer would. The senders'
    // users have no device online, so an outbox only ever gets acks.
    let outboxes: Vec<Outbox> = (0..PAIRS)
        .map(|i| {
            let (tx, mut rx) = Outbox::new(ConnId(i as u64 + 1), 1 << 16);
            let window = window.clone();
            rt.spawn(async move {
                while rx.next().await.is_some() {
                    window.add_permits(1);
                }
            });
            tx
        })
        .collect();

    let mut g = c.benchmark_group("reactor");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("p2p_send_wal", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let i = (n % PAIRS as u64) as usize;
                    window.acquire().await.unwrap().forget();
                    let (from, to) = users[i].clone();
                    let to = imserver::domain::ids::ConvRef::P2p(to);
                    let conv = to.conv_id(&from).unwrap();
                    let answered = outboxes[i].take_request();
                    let cmd = SendMessage {
                        app,
                        from,
                        to,
                        client_id: format!("c{n}"),
                        msg_type: 1,
                        body: vec![b'x'; 200],
                        origin: Origin {
                            outbox: outboxes[i].clone(),
                            req_id: n + 1,
                            platform: Default::default(),
                            answered,
                        },
                        hook: Default::default(),
                    }
                    .into();
                    router.send(router.conv_shard(app, &conv), cmd).await.unwrap();
                }
                // Every ack is back: the window is whole again for the next sample.
                window.acquire_many(WINDOW as u32).await.unwrap().forget();
                window.add_permits(WINDOW);
            });
            start.elapsed()
        })
    });
    g.finish();
    drop(outboxes);
    drop(router);
    shards.stop();
    writer.join().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
