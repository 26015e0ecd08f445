//! Memory per group membership on the group's side: the Rust heap held by the server (it runs
//! in this process; RocksDB's own C++ memory is not counted) before and after 100,000
//! memberships exist, with every user's own side evicted (only groups stay in memory). The
//! number is printed (`--nocapture`) for docs/performance.md; the assertion is a guard
//! against a regression above the target (100 bytes). `IMSERVER_MEMBERSHIP_GROUPS=2000`
//! measures 1M memberships.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use imserver::client::{GroupInfo, Profile};
use imserver::protocol::wire::ErrorCode;

mod common;
use common::TestServer;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const MEMBERS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_per_membership_on_the_group_side() {
    let groups: usize = std::env::var("IMSERVER_MEMBERSHIP_GROUPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let s = TestServer::start_with(|c| c.limits.loaded_users_per_shard = 1).await;
    let users: Vec<String> = (0..MEMBERS).map(|i| format!("u{i}")).collect();
    let admin = s.admin().await;
    let r = admin.import_users(&users.iter().map(|u| Profile::new(u)).collect::<Vec<_>>()).await.unwrap();
    assert!(r.iter().all(|(_, c)| *c == ErrorCode::None));
    // Idle users leave memory once a second past the bound of 1 per shard.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = LIVE.load(Ordering::Relaxed);
    let members: Vec<&str> = users[1..].iter().map(String::as_str).collect();
    for g in 0..groups {
        let info = GroupInfo { group_id: format!("g{g}"), kind: 1, ..Default::default() };
        let (_, r) = admin.create_group(&info, &members, Some("u0")).await.unwrap();
        assert!(r.iter().all(|(_, c)| *c == ErrorCode::None));
    }
    // Each member's side was read to join them, then goes with the next evictions.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let after = LIVE.load(Ordering::Relaxed);
    let memberships = groups * MEMBERS;
    let per = (after - before) as f64 / memberships as f64;
    eprintln!("{memberships} memberships: {} bytes of heap, {per:.1} bytes per membership", after - before);
    assert!(per < 100.0, "{per:.1} bytes per membership");
    drop(admin);
    s.stop().await;
}
