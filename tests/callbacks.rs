//! Before-send callbacks against real HTTP backends on 127.0.0.1:0: allow, refuse, rewrite, a
//! slow backend under fail-open and fail-closed, a backend that is down or answers garbage,
//! the bound on waiting sends, and a slow hook on one conversation not holding up another
//! conversation of the same shard while its own order is kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use parking_lot::Mutex;
use serde_json::Value;

use imserver::callbacks::{sign, CallbackConfig};
use imserver::client::{ClientError, GroupInfo, Message};
use imserver::protocol::wire::ErrorCode;

#[path = "common/backend.rs"]
mod backend;
mod common;
use backend::backend;
use common::TestServer;

const SECRET: &str = "hook-secret";
const C2C: &str = "C2C.CallbackBeforeSendMsg";
const GROUP: &str = "Group.CallbackBeforeSendMsg";

fn hooks(url: String, fail_closed: &[&str], timeout_ms: u64) -> CallbackConfig {
    CallbackConfig {
        url,
        secret: SECRET.into(),
        before: vec![C2C.into(), GROUP.into()],
        fail_closed: fail_closed.iter().map(|s| s.to_string()).collect(),
        timeout_ms,
        ..Default::default()
    }
}

fn body_of(v: &Value) -> Vec<u8> {
    let b = v["MsgBody"].as_str().unwrap_or("");
    base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default()
}

fn allow() -> (Duration, u16, String) {
    (Duration::ZERO, 200, r#"{"ActionStatus":"OK","ErrorCode":0}"#.into())
}

async fn history(c: &imserver::client::Client, peer: &str) -> Vec<Message> {
    c.history_oldest_first(peer, 0, 100, None).await.unwrap().0
}

#[tokio::test]
async fn the_backend_allows_refuses_and_rewrites_one_to_one_messages() {
    let b = backend(|v| match body_of(v).as_slice() {
        b"spam" => (Duration::ZERO, 200, r#"{"ErrorCode":120001,"ErrorInfo":"no spam here"}"#.into()),
        b"rewrite me" => {
            let new = base64::engine::general_purpose::STANDARD.encode("rewritten!");
            (Duration::ZERO, 200, format!(r#"{{"ErrorCode":0,"MsgBody":"{new}"}}"#))
        }
        _ => allow(),
    })
    .await;
    let url = format!("http://{}/im/hook", b.addr);
    let s = TestServer::start_with(|c| c.apps[0].callbacks = hooks(url, &[], 2000)).await;
    s.import(&["alice", "bob"]).await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);

    let ack = alice.send_message("bob", "m1", 1, b"hello", None).await.unwrap();
    assert!(!ack.rewritten);
    let e = alice.send_message("bob", "m2", 1, b"spam", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CallbackRefused));
    assert_eq!(e.backend_code(), 120001);
    assert!(e.to_string().contains("no spam here"), "{e}");
    let ack3 = alice.send_message("bob", "m3", 1, b"rewrite me", None).await.unwrap();
    assert!(ack3.rewritten);
    assert_eq!(ack3.seq, 2, "the refused send took no seq");
    // A retry of the rewritten send is recognised by what the client sent.
    let again = alice.send_message("bob", "m3", 1, b"rewrite me", None).await.unwrap();
    assert!(again.duplicate && again.seq == 2);

    let bodies: Vec<Vec<u8>> = history(&bob, "alice").await.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [b"hello".to_vec(), b"rewritten!".to_vec()]);

    // Every request names its event and app, and is signed over its timestamp and body.
    let seen = b.seen.lock().clone();
    assert_eq!(seen.len(), 4);
    for r in &seen {
        assert!(r.query.contains("CallbackCommand=C2C.CallbackBeforeSendMsg"), "{}", r.query);
        assert!(r.query.contains(&format!("SdkAppid={}", common::APP)));
        assert_eq!(r.body["CallbackCommand"], C2C);
        assert_eq!(r.body["From_Account"], "alice");
        assert_eq!(r.body["To_Account"], "bob");
        assert_eq!(r.body["SdkAppid"], common::APP);
        let ts: u64 = r.timestamp.parse().unwrap();
        assert!(ts.abs_diff(common::now_secs()) < 60);
        assert!(sign::verify(SECRET, ts, &r.raw, &r.signature), "signature");
        assert!(!sign::verify("another secret", ts, &r.raw, &r.signature));
    }
    s.stop().await;
}

#[tokio::test]
async fn a_slow_backend_fails_open_or_closed_by_event() {
    let b = backend(|_| (Duration::from_millis(800), 200, r#"{"ErrorCode":1}"#.into())).await;
    let url = format!("http://{}/", b.addr);
    let s = TestServer::start_with(|c| c.apps[0].callbacks = hooks(url, &[GROUP], 200)).await;
    s.import(&["alice", "bob"]).await;
    let (alice, bob) = (s.user("alice").await, s.user("bob").await);
    let g = GroupInfo { group_id: "g".into(), kind: 1, ..Default::default() };
    alice.create_group(&g, &["bob"], None).await.unwrap();

    // One-to-one fails open: past the timeout the send goes ahead (the late refusal is moot).
    let t = Instant::now();
    alice.send_message("bob", "p1", 1, b"x", None).await.expect("fail-open");
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(history(&bob, "alice").await.len(), 1);
    // The group event fails closed.
    let e = alice.send_group_message("g", "g1", 1, b"x", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CallbackUnavailable));
    assert!(bob.group_catch_up("g", 0).await.unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_backend_that_is_down_or_answers_garbage() {
    // Nothing listens here.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{gone}/");
    let s = TestServer::start_with(|c| c.apps[0].callbacks = hooks(url, &[GROUP], 1000)).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let g = GroupInfo { group_id: "g".into(), kind: 1, ..Default::default() };
    alice.create_group(&g, &["bob"], None).await.unwrap();
    alice.send_message("bob", "p1", 1, b"x", None).await.expect("down, fail-open");
    let e = alice.send_group_message("g", "g1", 1, b"x", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CallbackUnavailable));
    s.stop().await;

    for garbage in ["not json", r#"{"ErrorCode":"zero"}"#, r#"{"ErrorCode":0,"MsgBody":"%%"}"#] {
        let b = backend(move |_| (Duration::ZERO, 200, garbage.into())).await;
        let url = format!("http://{}/", b.addr);
        let s = TestServer::start_with(|c| c.apps[0].callbacks = hooks(url, &[C2C], 1000)).await;
        s.import(&["alice", "bob"]).await;
        let alice = s.user("alice").await;
        let e = alice.send_message("bob", "p1", 1, b"x", None).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::CallbackUnavailable), "{garbage}");
        s.stop().await;
    }
    let b = backend(|_| (Duration::ZERO, 500, "oops".into())).await;
    let url = format!("http://{}/", b.addr);
    let s = TestServer::start_with(|c| c.apps[0].callbacks = hooks(url, &[], 1000)).await;
    s.import(&["alice", "bob"]).await;
    s.user("alice").await.send_message("bob", "p1", 1, b"x", None).await.expect("a 500 fails open");
    s.stop().await;
}

#[tokio::test]
async fn a_slow_hook_holds_only_its_own_conversation_and_keeps_its_order() {
    // Bodies starting "slow" are answered after 600 ms, the rest at once.
    let b = backend(|v| {
        let slow = body_of(v).starts_with(b"slow");
        (if slow { Duration::from_millis(600) } else { Duration::ZERO }, 200, r#"{"ErrorCode":0}"#.into())
    })
    .await;
    let url = format!("http://{}/", b.addr);
    let s = TestServer::start_with(|c| {
        c.shards = 1;
        c.apps[0].callbacks = hooks(url, &[], 5000);
    })
    .await;
    s.import(&["alice", "bob", "carol", "dave"]).await;
    let (alice, carol, bob) = (s.user("alice").await, s.user("carol").await, s.user("bob").await);
    let done: Arc<Mutex<Vec<&str>>> = Arc::default();
    let order = |name: &'static str, r: Result<imserver::client::SendAck, ClientError>| {
        done.lock().push(name);
        r.unwrap()
    };
    let (slow, fast, other) = tokio::join!(
        async { order("slow", alice.send_message("bob", "a1", 1, b"slow one", None).await) },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            order("fast", alice.send_message("bob", "a2", 1, b"fast two", None).await)
        },
        async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            order("other", carol.send_message("dave", "c1", 1, b"fast", None).await)
        },
    );
    // Alice's second send was answered first by the backend but kept its place behind the
    // first (its seq); carol's send, on the same shard, did not wait for alice's slow hook.
    // (The two acks of alice can arrive in one read: their order at the client says nothing.)
    assert_eq!((slow.seq, fast.seq, other.seq), (1, 2, 1));
    assert_eq!(done.lock()[0], "other");
    let bodies: Vec<Vec<u8>> = history(&bob, "alice").await.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, [b"slow one".to_vec(), b"fast two".to_vec()]);
    s.stop().await;
}

#[tokio::test]
async fn sends_past_the_waiting_bound_are_refused_as_overloaded() {
    let b = backend(|_| (Duration::from_millis(700), 200, r#"{"ErrorCode":0}"#.into())).await;
    let url = format!("http://{}/", b.addr);
    let s = TestServer::start_with(|c| {
        let mut h = hooks(url, &[], 5000);
        h.max_waiting = 2;
        c.apps[0].callbacks = h;
    })
    .await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let sends = (0..5).map(|i| {
        let alice = &alice;
        async move { alice.send_message("bob", &format!("m{i}"), 1, b"x", None).await }
    });
    let results = futures_util::future::join_all(sends).await;
    let overloaded = results.iter().filter(|r| matches!(r, Err(e) if e.code() == Some(ErrorCode::Overloaded))).count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, overloaded), (2, 3), "{results:?}");
    // Once those are answered, there is room again.
    alice.send_message("bob", "later", 1, b"x", None).await.unwrap();
    s.stop().await;
}

#[test]
fn bad_callback_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (url, secret, before) in [
        ("https://example.com/", SECRET, C2C),
        ("http://127.0.0.1:1/", "", C2C),
        ("http://127.0.0.1:1/", SECRET, "C2C.NoSuchEvent"),
        ("", SECRET, C2C),
    ] {
        let mut c = common::config(dir.path());
        c.apps[0].callbacks = CallbackConfig {
            url: url.into(),
            secret: secret.into(),
            before: vec![before.into()],
            ..Default::default()
        };
        assert!(c.validate().is_err(), "{url} {secret:?} {before}");
    }
}
