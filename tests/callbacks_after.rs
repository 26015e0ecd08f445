//! After-send callbacks against a real HTTP backend on 127.0.0.1:0: each arrives once, in
//! order, signed; a backend that refuses them for a while, with the server restarted in
//! between, still gets every one (at least once, with ids to drop repeats); past the queue's
//! bound new events are dropped and the queued ones kept.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use imserver::callbacks::{sign, CallbackConfig};
use imserver::client::GroupInfo;

#[path = "common/backend.rs"]
mod backend;
mod common;
use backend::{backend, Backend};
use common::TestServer;

const SECRET: &str = "after-secret";
const C2C: &str = "C2C.CallbackAfterSendMsg";
const GROUP: &str = "Group.CallbackAfterSendMsg";

fn hooks(b: &Backend, max_queued: u64) -> CallbackConfig {
    CallbackConfig {
        url: format!("http://{}/after", b.addr),
        secret: SECRET.into(),
        after: vec![C2C.into(), GROUP.into()],
        retry_max_ms: 200,
        max_queued,
        ..Default::default()
    }
}

/// A backend that answers 200 while `up`, 503 otherwise.
async fn switchable(up: &Arc<AtomicBool>) -> Backend {
    let up = up.clone();
    backend(move |_| {
        let status = if up.load(Ordering::SeqCst) { 200 } else { 503 };
        (Duration::ZERO, status, "{}".into())
    })
    .await
}

/// A server whose app reports sends to `b` (queue bound `max_queued`), alice and bob in it,
/// and alice logged in.
async fn server_for(b: &Backend, max_queued: u64) -> (TestServer, imserver::client::Client) {
    let s = TestServer::start_with(|c| c.apps[0].callbacks = hooks(b, max_queued)).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    (s, alice)
}

/// The events the backend took (answered 200), waiting until there are `n` distinct ones.
async fn taken(b: &Backend, up: &AtomicBool, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Vec<Value> =
            if up.load(Ordering::SeqCst) { b.seen.lock().iter().map(|s| s.body.clone()).collect() } else { Vec::new() };
        let ids: BTreeSet<String> = got.iter().map(|v| v["EventId"].as_str().unwrap().to_owned()).collect();
        if ids.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{} of {n} events arrived", ids.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_message_sent_is_reported_once_in_order_and_signed() {
    let up = Arc::new(AtomicBool::new(true));
    let b = switchable(&up).await;
    let s = TestServer::start_with(|c| c.apps[0].callbacks = hooks(&b, 1000)).await;
    s.import(&["alice", "bob", "carol"]).await;
    let (alice, carol) = (s.user("alice").await, s.user("carol").await);
    let g = GroupInfo { group_id: "g".into(), kind: 1, ..Default::default() };
    alice.create_group(&g, &["bob", "carol"], None).await.unwrap();
    for i in 0..10 {
        alice.send_message("bob", &format!("a{i}"), 1, format!("hi {i}").as_bytes(), None).await.unwrap();
        carol.send_group_message("g", &format!("c{i}"), 1, b"yo", None).await.unwrap();
    }
    // A retry stores nothing and reports nothing.
    alice.send_message("bob", "a0", 1, b"hi 0", None).await.unwrap();
    let got = taken(&b, &up, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = b.seen.lock().clone();
    assert_eq!(seen.len(), 20, "each event once");
    let ids: Vec<u64> = got.iter().map(|v| v["EventId"].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    let p2p: Vec<u64> =
        got.iter().filter(|v| v["CallbackCommand"] == C2C).map(|v| v["MsgSeq"].as_u64().unwrap()).collect();
    let grp: Vec<u64> =
        got.iter().filter(|v| v["CallbackCommand"] == GROUP).map(|v| v["MsgSeq"].as_u64().unwrap()).collect();
    assert_eq!(p2p, (1..=10).collect::<Vec<_>>());
    assert_eq!(grp, (1..=10).collect::<Vec<_>>());
    let first = got.iter().find(|v| v["CallbackCommand"] == C2C).unwrap();
    assert_eq!((first["From_Account"].as_str(), first["To_Account"].as_str()), (Some("alice"), Some("bob")));
    let g1 = got.iter().find(|v| v["CallbackCommand"] == GROUP).unwrap();
    assert_eq!((g1["From_Account"].as_str(), g1["GroupId"].as_str()), (Some("carol"), Some("g")));
    for r in &seen {
        let ts: u64 = r.timestamp.parse().unwrap();
        assert!(sign::verify(SECRET, ts, &r.raw, &r.signature));
        assert!(
            r.query.contains("CallbackCommand=C2C.CallbackAfterSendMsg") || r.query.contains("CallbackCommand=Group.")
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn a_backend_down_across_a_restart_still_gets_every_event() {
    let up = Arc::new(AtomicBool::new(false));
    let b = switchable(&up).await;
    let (s, alice) = server_for(&b, 1000).await;
    for i in 0..15 {
        alice.send_message("bob", &format!("m{i}"), 1, b"x", None).await.unwrap();
    }
    // The backend refuses them for a while (the server retries), then the server restarts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(b.seen.lock().len() >= 2, "retried while down");
    drop(alice);
    let dir = s.stop().await.expect("the data directory");
    let s = TestServer::start_in(dir.path(), |c| c.apps[0].callbacks = hooks(&b, 1000)).await;
    up.store(true, Ordering::SeqCst);
    b.seen.lock().clear();
    let got = taken(&b, &up, 15).await;
    let ids: BTreeSet<String> = got.iter().map(|v| v["MsgId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, (0..15).map(|i| format!("m{i}")).collect::<BTreeSet<_>>());
    s.stop().await;
}

#[tokio::test]
async fn past_the_bound_new_events_are_dropped_and_queued_ones_kept() {
    let up = Arc::new(AtomicBool::new(false));
    let b = switchable(&up).await;
    let (s, alice) = server_for(&b, 3).await;
    for i in 0..6 {
        // The sends themselves all go through.
        alice.send_message("bob", &format!("m{i}"), 1, b"x", None).await.unwrap();
    }
    up.store(true, Ordering::SeqCst);
    let got = taken(&b, &up, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: BTreeSet<String> = b.seen.lock().iter().map(|r| r.body["MsgId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["m0", "m1", "m2"].map(String::from).into_iter().collect(), "{got:?}");
    // With room again, new events are queued.
    alice.send_message("bob", "m6", 1, b"x", None).await.unwrap();
    taken(&b, &up, 4).await;
    s.stop().await;
}

#[tokio::test]
async fn group_changes_and_recalls_are_reported_in_order_and_imports_are_not() {
    use imserver::client::{GroupChange, GroupMember};
    let up = Arc::new(AtomicBool::new(true));
    let b = switchable(&up).await;
    let s = TestServer::start_with(|c| {
        let mut h = hooks(&b, 1000);
        h.after = [
            "Group.CallbackAfterCreateGroup",
            "Group.CallbackAfterNewMemberJoin",
            "Group.CallbackAfterMemberExit",
            "Group.CallbackAfterGroupInfoChanged",
            "Group.CallbackAfterChangeGroupOwner",
            "Group.CallbackAfterGroupDestroyed",
            "C2C.CallbackAfterMsgWithDraw",
        ]
        .map(String::from)
        .to_vec();
        c.apps[0].callbacks = h;
    })
    .await;
    s.import(&["alice", "bob", "carol", "dave"]).await;
    let admin = s.admin().await;
    // Imports are not reported.
    let imported = GroupInfo { group_id: "old".into(), kind: 1, owner: "alice".into(), ..Default::default() };
    let m = GroupMember { user_id: "bob".into(), join_time_ms: 5, ..Default::default() };
    admin.import_group(&imported, &[m]).await.unwrap();
    let (alice, carol, dave) = (s.user("alice").await, s.user("carol").await, s.user("dave").await);
    let g = GroupInfo { group_id: "g".into(), kind: 1, ..Default::default() };
    alice.create_group(&g, &["bob"], None).await.unwrap();
    alice.add_group_members("g", &["carol"], false).await.unwrap();
    carol.exit_group("g").await.unwrap();
    alice.delete_group_members("g", &["bob"]).await.unwrap();
    alice.update_group("g", &GroupChange { name: Some("renamed".into()), ..Default::default() }).await.unwrap();
    alice.add_group_members("g", &["dave"], true).await.unwrap();
    alice.change_group_owner("g", "dave").await.unwrap();
    dave.destroy_group("g").await.unwrap();
    let ack = alice.send_message("bob", "r1", 1, b"oops", None).await.unwrap();
    alice.recall("bob", ack.server_id, None).await.unwrap();

    let got = taken(&b, &up, 9).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.seen.lock().len(), 9, "each once, and nothing for the import");
    let summary: Vec<(String, String)> = got
        .iter()
        .map(|v| {
            let who = v["MemberList"].as_array().map_or(String::new(), |l| {
                l.iter().map(|m| m["Member_Account"].as_str().unwrap()).collect::<Vec<_>>().join(",")
            });
            let how = v["ExitType"].as_str().or(v["JoinType"].as_str()).unwrap_or("");
            (
                v["CallbackCommand"].as_str().unwrap().trim_start_matches("Group.CallbackAfter").to_owned(),
                format!("{who}{how}"),
            )
        })
        .collect();
    let want = [
        ("CreateGroup", "alice,bob"),
        ("NewMemberJoin", "carolInvited"),
        ("MemberExit", "carolQuit"),
        ("MemberExit", "bobKicked"),
        ("GroupInfoChanged", ""),
        ("NewMemberJoin", "daveInvited"),
        ("ChangeGroupOwner", "alice,dave"),
        ("GroupDestroyed", ""),
        ("C2C.CallbackAfterMsgWithDraw", ""),
    ];
    assert_eq!(summary, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    assert_eq!(got[4]["Name"], "renamed");
    assert_eq!(got[8]["MsgKey"], ack.server_id.to_string());
    assert!(got.iter().all(|v| v["GroupId"] == "g" || v["CallbackCommand"] == "C2C.CallbackAfterMsgWithDraw"));
    drop(admin);
    s.stop().await;
}
