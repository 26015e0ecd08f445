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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_users_state_is_evicted_and_reloads_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), APP, SECRET, "shards = 1\n[limits]\nloaded_users_per_shard = 2");
    let log = tmp.path().join("server.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imserver"))
        .args(["--listen", "127.0.0.1:0", "--config", cfg.to_str().unwrap()])
        .arg("--data")
        .arg(tmp.path().join("data"))
        .env("RUST_LOG", "imserver=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _p = Proc(child);
    let addr = line.split_whitespace().nth(3).expect("imserver listening on ADDR").to_string();

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
    let mut evicted = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = std::fs::read_to_string(&log).unwrap();
        if text.lines().any(|l| l.contains("evicted idle users' loaded state") && !l.contains("dropped=0")) {
            evicted = true;
            break;
        }
    }
    assert!(evicted, "no eviction logged");
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
