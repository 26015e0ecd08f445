//! Group commit: mutations per second through the writer thread in `sync` and `wal` modes,
//! with many concurrent submitters (as shards and their many clients would be).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imserver::config::Durability;
use imserver::domain::ids::{AppId, UserId};
use imserver::store::{Batch, Store, WriterOptions};
use tokio::sync::Semaphore;

/// Commits `n` one-mutation batches with at most `window` in flight; returns the elapsed time.
fn run(store: &Store, durability: Durability, n: u64, window: usize, base: u64) -> Duration {
    let (committer, writer) =
        store.start_writer(WriterOptions { durability, wal_sync_ms: 100, queue: 8192, max_group: 1024, direct: false });
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let start = Instant::now();
    rt.block_on(async {
        let permits = Arc::new(Semaphore::new(window));
        for i in 0..n {
            let p = permits.clone().acquire_owned().await.unwrap();
            let mut b = Batch::default();
            let id = UserId::new(&format!("u{}", base + i)).unwrap();
            b.put_user(AppId(1), &id, vec![0u8; 100]);
            committer
                .commit(
                    b,
                    Box::new(move |r| {
                        r.expect("commit");
                        drop(p);
                    }),
                )
                .await;
        }
        let _ = permits.acquire_many(window as u32).await.unwrap();
    });
    let elapsed = start.elapsed();
    drop(committer);
    writer.join().unwrap();
    elapsed
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut g = c.benchmark_group("group_commit");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    let mut base = 0u64;
    for (name, d) in [("wal", Durability::Wal), ("sync", Durability::Sync)] {
        for window in [1usize, 64, 1024] {
            g.bench_function(format!("{name}_window_{window}"), |b| {
                b.iter_custom(|iters| {
                    base += iters;
                    run(&store, d, iters, window, base)
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
