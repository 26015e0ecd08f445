//! Eviction of loaded per-user state: with `limits.loaded_users_per_shard` tiny, the real
//! server drops idle, offline users' conversation lists and friendship state (its debug log
//! says so), and everything those users see afterwards, reloaded from the store, is what they
//! saw before: conversations with unread counts, read positions, pins and last messages,
//! friends, blacklists, requests, and the sync streams.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use imserver::auth::ticket;
use imserver::client::{Client, Profile, ProfileChange};
use imserver::protocol::wire::{self, SyncStream};

mod common;
use common::{now_secs, write_config, Proc};

const APP: u32 = 1400000017;
const SECRET: &str = "evict-secret";
const USERS: [&str; 6] = ["u0", "u1", "u2", "u3", "u4", "u5"];

fn tk(user: &str) -> String {
    ticket::sign(APP as u64, user, SECRET.as_bytes(), now_secs(), 3600)
}

async fn login(addr: &str, user: &str) -> Client {
    let c = Client::connect(addr).await.unwrap();
    c.login(APP, user, &tk(user), wire::ClientType::Ios, "p").await.unwrap();
    c
}

/// Everything one user sees of their loaded state, in a comparable form.
async fn view(addr: &str, user: &str) -> String {
    let c = login(addr, user).await;
    let mut convs = c.conversations(0, 100, None).await.unwrap().conversations;
    convs.sort_by(|a, b| a.peer.cmp(&b.peer));
    let convs: Vec<_> = convs
        .iter()
        .map(|v| (v.peer.clone(), v.unread, v.read_seq, v.pinned, v.muted, v.last_message.as_ref().map(|m| m.seq)))
        .collect();
    let mut friends: Vec<_> =
        c.get_friends(0, 100).await.unwrap().0.into_iter().map(|f| (f.user_id, f.remark)).collect();
    friends.sort();
    let reqs: Vec<_> = c.friend_requests().await.unwrap().into_iter().map(|r| (r.from, r.state)).collect();
    let mut streams = Vec::new();
    for s in [SyncStream::Conversations, SyncStream::Friends, SyncStream::Blacklist, SyncStream::FriendRequests] {
        let a = c.sync(s, 0, 100, None).await.unwrap();
        streams.push((a.head_seq, a.items.len()));
    }
    let black = c.check_relations(&USERS, false, true).await.unwrap();
    format!("{convs:?} {friends:?} {reqs:?} {streams:?} {black:?}")
}

/// The server with `top` in its config and a debug log; (address, log path, process, dir).
fn start(top: &str) -> (String, std::path::PathBuf, Proc, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), APP, SECRET, top);
    let log = tmp.path().join("server.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imserver"))
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--config", cfg.to_str().unwrap()])
        .arg("--data")
        .arg(tmp.path().join("data"))
        .env("RUST_LOG", "imserver=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().nth(3).expect("imserver listening on ADDR").to_string();
    (addr, log, Proc(child), tmp)
}

/// Waits (at most 10 s) for a debug log line containing `what` that did drop something.
async fn logged(log: &std::path::Path, what: &str) -> bool {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = std::fs::read_to_string(log).unwrap();
        if text.lines().any(|l| l.contains(what) && !l.contains("dropped=0")) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_users_state_is_evicted_and_reloads_unchanged() {
    let (addr, log, _p, _tmp) = start("shards = 1\n[limits]\nloaded_users_per_shard = 2");

    let admin = login(&addr, "admin").await;
    admin.import_users(&USERS.map(Profile::new)).await.unwrap();
    admin
        .modify_user_info(&ProfileChange {
            user_id: Some("u5".into()),
            friend_add_policy: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    {
        let u0 = login(&addr, "u0").await;
        let u1 = login(&addr, "u1").await;
        for (i, to) in ["u1", "u2", "u3", "u1", "u1"].iter().enumerate() {
            u0.send_message(to, &format!("m{i}"), 1, b"hello", None).await.unwrap();
        }
        u1.send_message("u0", "r0", 1, b"back", None).await.unwrap();
        u1.read("u0", 2).await.unwrap();
        u1.update_conversation("u0", Some(true), None).await.unwrap();
        u0.add_friend("u1", "", "", "one").await.unwrap();
        u0.add_friend("u2", "", "", "two").await.unwrap();
        u0.add_friend("u5", "hi", "", "").await.unwrap();
        u1.add_black("u4").await.unwrap();
        u0.delete_friend("u2").await.unwrap();
    }
    let mut before = Vec::new();
    for u in USERS {
        before.push(view(&addr, u).await);
    }
    // All offline: within a few ticks the shard drops all but 2 users' state (to 90 % of 2).
    assert!(logged(&log, "evicted idle users' loaded state").await, "no eviction logged");
    for (u, b) in USERS.iter().zip(&before) {
        assert_eq!(&view(&addr, u).await, b, "{u} sees something else after a reload");
    }
    // And they keep working: a new message lands on top of the reloaded state.
    let u0 = login(&addr, "u0").await;
    assert_eq!(u0.send_message("u1", "m9", 1, b"again", None).await.unwrap().seq, 5);
    let u1 = login(&addr, "u1").await;
    let c = u1.conversations(0, 100, None).await.unwrap().conversations;
    let with_u0 = c.iter().find(|c| c.peer == "u0").unwrap();
    assert_eq!((with_u0.unread, with_u0.pinned, with_u0.last_message.as_ref().map(|m| m.seq)), (1, true, Some(5)));
}

/// With `limits.conversations_per_shard` tiny, the conversation shard drops the last seqs and
/// pair relations of the conversations least recently sent to (its debug log says so); their
/// next sends read them again from the store: seqs go on without a gap or a repeat, and a
/// blacklist still refuses. (The exact interleaving of an eviction and a write in flight is
/// played in `shard::crash_tests`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_heads_past_the_bound_are_evicted_and_seqs_go_on() {
    let (addr, log, _p, _tmp) = start("shards = 1\n[limits]\nconversations_per_shard = 2");
    let admin = login(&addr, "admin").await;
    admin.import_users(&USERS.map(Profile::new)).await.unwrap();
    login(&addr, "u5").await.add_black("u0").await.unwrap();
    let u0 = login(&addr, "u0").await;
    let peers = ["u1", "u2", "u3", "u4"];
    let mut next = std::collections::HashMap::new();
    for p in peers {
        for _ in 0..3 {
            let n = next.entry(p).or_insert(0u64);
            *n += 1;
            let ack = u0.send_message(p, &format!("{p}-{n}"), 1, b"x", None).await.unwrap();
            assert_eq!(ack.seq, *n);
        }
    }
    let refused = u0.send_message("u5", "b0", 1, b"x", None).await.unwrap_err();
    assert_eq!(refused.code(), Some(wire::ErrorCode::InBlacklist));
    assert!(logged(&log, "evicted conversation heads").await, "no head eviction logged");
    assert!(logged(&log, "evicted pair relations").await, "no relation eviction logged");
    // Four more senders, each with a window of 16 sends to its own offline peer in flight,
    // 3000 each: evictions run while sends wait in the shard's inbox behind commits not yet
    // durable, and each conversation's seqs still go on without a gap or a repeat.
    let senders = ["s0", "s1", "s2", "s3"];
    admin.import_users(&senders.map(Profile::new)).await.unwrap();
    let mut clients = Vec::new();
    for s in senders {
        clients.push(login(&addr, s).await);
    }
    let ids: Vec<String> = (1..=3000).map(|k| format!("m{k}")).collect();
    let ids = &ids;
    let runs = clients.iter().zip(peers).map(|(c, peer)| async move {
        use futures_util::StreamExt;
        let sends = futures_util::stream::iter(ids).map(|id| c.send_message(peer, id, 1, b"x", None));
        let seqs: Vec<u64> = sends.buffered(16).map(|a| a.unwrap().seq).collect().await;
        (peer, seqs)
    });
    for (peer, seqs) in futures_util::future::join_all(runs).await {
        assert_eq!(seqs, (1..=3000).collect::<Vec<_>>(), "-> {peer}: gap-free, no repeat");
    }
    let refused = u0.send_message("u5", "b1", 1, b"x", None).await.unwrap_err();
    assert_eq!(refused.code(), Some(wire::ErrorCode::InBlacklist), "the relation read again still refuses");
}
