//! Callbacks of everything but sends, against real HTTP backends on 127.0.0.1:0: the
//! before-hooks of a friend add, a group creation, an application to join and an invitation
//! (allowed, refused with the backend's code, an invitation refused for some members only, a
//! backend that is down under fail-closed and fail-open), and the after-hooks of friendships,
//! blacklists, read reports, profile changes and online status, each once and in order.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use imserver::callbacks::{sign, CallbackConfig};
use imserver::client::{GroupInfo, ProfileChange};
use imserver::protocol::wire::{ClientType, ErrorCode};

#[path = "common/backend.rs"]
mod backend;
mod common;
use backend::{backend, Backend};
use common::TestServer;

const FRIEND: &str = "Sns.CallbackPrevFriendAdd";
const CREATE: &str = "Group.CallbackBeforeCreateGroup";
const APPLY: &str = "Group.CallbackBeforeApplyJoinGroup";
const INVITE: &str = "Group.CallbackBeforeInviteJoinGroup";

fn config(b: &Backend, before: &[&str], after: &[&str], fail_closed: &[&str]) -> CallbackConfig {
    let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    CallbackConfig {
        url: format!("http://{}/hook", b.addr),
        secret: "social-secret".into(),
        before: names(before),
        after: names(after),
        fail_closed: names(fail_closed),
        timeout_ms: 1000,
        retry_max_ms: 200,
        ..Default::default()
    }
}

const ALLOW: &str = r#"{"ErrorCode":0}"#;

/// Refuses whatever names "mallory" (as the target of an add, or the group's name), lets a
/// group's invitation through without "mallory", and allows the rest.
async fn moderator() -> Backend {
    backend(|v| {
        let text = v.to_string();
        let answer = match v["CallbackCommand"].as_str() {
            Some(INVITE) if text.contains("mallory") => r#"{"ErrorCode":0,"RefusedMembers_Account":["mallory"]}"#,
            Some(_) if text.contains("mallory") => r#"{"ErrorCode":120002,"ErrorInfo":"not mallory"}"#,
            _ => ALLOW,
        };
        (Duration::ZERO, 200, answer.into())
    })
    .await
}

#[tokio::test]
async fn before_hooks_allow_and_refuse_friend_adds_groups_applications_and_invites() {
    let b = moderator().await;
    let s =
        TestServer::start_with(|c| c.apps[0].callbacks = config(&b, &[FRIEND, CREATE, APPLY, INVITE], &[], &[])).await;
    s.import(&["alice", "bob", "carol", "mallory"]).await;
    let (alice, mallory) = (s.user("alice").await, s.user("mallory").await);

    // Friend adds: allowed for bob, refused for mallory (nothing written).
    alice.add_friend("bob", "hi", "search", "Bob").await.unwrap();
    let e = alice.add_friend("mallory", "hi", "search", "").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CallbackRefused));
    assert_eq!(e.backend_code(), 120002);
    assert!(e.to_string().contains("not mallory"), "{e}");
    assert!(!alice.get_relation("mallory").await.unwrap().is_friend);
    assert!(alice.get_relation("bob").await.unwrap().is_friend);

    // A group named after mallory is refused; another is created.
    let bad = GroupInfo { group_id: "gm".into(), kind: 2, name: "mallory fans".into(), ..Default::default() };
    let e = alice.create_group(&bad, &[], None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CallbackRefused));
    let e = alice.get_group("gm").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GroupNotFound));
    let g = GroupInfo { group_id: "g".into(), kind: 2, name: "club".into(), join_policy: 1, ..Default::default() };
    alice.create_group(&g, &[], None).await.unwrap();

    // Mallory's application is refused; carol's goes through (free join).
    let e = mallory.apply_join_group("g", "let me in").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CallbackRefused));
    let carol = s.user("carol").await;
    assert!(carol.apply_join_group("g", "hello").await.unwrap().0);

    // An invitation of bob and mallory: bob joins, mallory is refused, in request order.
    let out = alice.add_group_members("g", &["mallory", "bob"], false).await.unwrap();
    assert_eq!(out, vec![("mallory".into(), ErrorCode::CallbackRefused), ("bob".into(), ErrorCode::None)]);
    let (_, members) = alice.get_group("g").await.unwrap();
    let ids: BTreeSet<String> = members.into_iter().map(|m| m.user_id).collect();
    assert_eq!(ids, ["alice", "bob", "carol"].map(String::from).into());

    // What the backend was told: each event once, with the operation's fields.
    let seen: Vec<Value> = b.seen.lock().iter().map(|r| r.body.clone()).collect();
    let events: Vec<&str> = seen.iter().map(|v| v["CallbackCommand"].as_str().unwrap()).collect();
    assert_eq!(events, [FRIEND, FRIEND, CREATE, CREATE, APPLY, APPLY, INVITE]);
    assert_eq!(seen[0]["FriendList"][0]["To_Account"], "bob");
    assert_eq!(seen[0]["Operator_Account"], "alice");
    assert_eq!(seen[0]["OptPlatform"], "Ios");
    assert_eq!(seen[3]["Name"], "club");
    assert_eq!(seen[5]["Requestor_Account"], "carol");
    assert_eq!(seen[5]["ApplyMsg"], "hello");
    let invited: Vec<&str> = seen[6]["DestinationMembers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Member_Account"].as_str().unwrap())
        .collect();
    assert_eq!(invited, ["mallory", "bob"]);
    s.stop().await;
}

#[tokio::test]
async fn a_backend_that_is_down_refuses_under_fail_closed_and_not_under_fail_open() {
    // A port nobody listens on: connection refused.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let b = Backend { addr: down, seen: Default::default() };
    let s = TestServer::start_with(|c| c.apps[0].callbacks = config(&b, &[FRIEND, CREATE], &[], &[CREATE])).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    // Friend adds fail open: the add goes ahead.
    alice.add_friend("bob", "", "", "").await.unwrap();
    assert!(alice.get_relation("bob").await.unwrap().is_friend);
    // Group creation fails closed: refused as unavailable, and nothing was created.
    let g = GroupInfo { group_id: "g".into(), kind: 1, ..Default::default() };
    let e = alice.create_group(&g, &[], None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::CallbackUnavailable));
    assert_eq!(alice.get_group("g").await.unwrap_err().code(), Some(ErrorCode::GroupNotFound));
    s.stop().await;
}

/// The after-hook events the backend got, once `n` distinct ones have arrived.
async fn events(b: &Backend, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Vec<Value> = b.seen.lock().iter().map(|s| s.body.clone()).collect();
        let ids: BTreeSet<&str> = got.iter().filter_map(|v| v["EventId"].as_str()).collect();
        if ids.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{} of {n} events arrived: {got:?}", ids.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn relations_reads_profiles_and_status_are_reported_once_in_order() {
    let b = backend(|_| (Duration::ZERO, 200, ALLOW.into())).await;
    let after = [
        "Sns.CallbackFriendAdd",
        "Sns.CallbackFriendDelete",
        "Sns.CallbackBlackListAdd",
        "Sns.CallbackBlackListDelete",
        "C2C.CallbackAfterMsgReport",
        "Group.CallbackAfterMsgReport",
        "Profile.CallbackPortraitSet",
        "State.StateChange",
    ];
    let s = TestServer::start_with(|c| c.apps[0].callbacks = config(&b, &[], &after, &[])).await;
    s.import(&["alice", "bob", "carol"]).await;
    let admin = s.admin().await;
    let alice = s.login("alice", ClientType::Android, "a1").await;
    let bob = s.user("bob").await;
    // bob asks for approval; carol takes anyone.
    let need = ProfileChange { friend_add_policy: Some(1), ..Default::default() };
    bob.modify_user_info(&need).await.unwrap();
    alice.add_friend("carol", "", "", "").await.unwrap();
    // A repeated add changes nothing and reports nothing.
    assert!(alice.add_friend("carol", "", "", "").await.is_err());
    let req = alice.add_friend("bob", "hi bob", "", "").await.unwrap().expect("a request");
    bob.answer_friend_request(req.id, true).await.unwrap();
    alice.delete_friend("carol").await.unwrap();
    alice.add_black("carol").await.unwrap();
    alice.delete_black("carol").await.unwrap();
    let ack = bob.send_message("alice", "m1", 1, b"hi", None).await.unwrap();
    alice.read("bob", ack.seq).await.unwrap();
    let g = GroupInfo { group_id: "g".into(), kind: 1, ..Default::default() };
    alice.create_group(&g, &["bob"], None).await.unwrap();
    let gack = alice.send_group_message("g", "gm1", 1, b"yo", None).await.unwrap();
    // The message reaches bob's conversation list on its own time: read it once it has.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bob
        .conversations(0, 50, None)
        .await
        .unwrap()
        .conversations
        .iter()
        .any(|c| c.last_message.as_ref().is_some_and(|m| m.client_id == "gm1"))
    {
        assert!(Instant::now() < deadline, "the group message never reached bob's list");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bob.group_read("g", gack.seq).await.unwrap();
    let nick = ProfileChange { nickname: Some("Ally".into()), ..Default::default() };
    alice.modify_user_info(&nick).await.unwrap();
    alice.logout().await.unwrap();
    drop(alice);

    // Logins (admin: none; alice, bob), bob's policy, friend add, request approved, delete,
    // black add and delete, two reads, alice's nickname, alice's logout.
    let got = events(&b, 12).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_now: Vec<Value> = b.seen.lock().iter().map(|s| s.body.clone()).collect();
    assert_eq!(got_now.len(), got.len(), "each event once: {got_now:?}");
    let ids: Vec<u64> = got.iter().map(|v| v["EventId"].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    let line = |v: &Value| -> String {
        let cmd = v["CallbackCommand"].as_str().unwrap().to_owned();
        match cmd.as_str() {
            "State.StateChange" => format!("{cmd} {} {}", v["Info"]["To_Account"], v["Info"]["Action"]),
            "Sns.CallbackFriendAdd" => format!("{cmd} {} {}", v["PairList"][0]["Initiator_Account"], v["ClientCmd"]),
            "Sns.CallbackFriendDelete" | "Sns.CallbackBlackListAdd" | "Sns.CallbackBlackListDelete" => {
                format!("{cmd} {} {}", v["PairList"][0]["From_Account"], v["PairList"][0]["To_Account"])
            }
            "C2C.CallbackAfterMsgReport" => format!("{cmd} {} {}", v["Report_Account"], v["Peer_Account"]),
            "Group.CallbackAfterMsgReport" => format!("{cmd} {} {}", v["Report_Account"], v["GroupId"]),
            _ => format!("{cmd} {} {}", v["From_Account"], v["ProfileItem"][0]["Tag"]),
        }
        .replace('"', "")
    };
    let summary: Vec<String> = got.iter().map(line).collect();
    assert_eq!(
        summary,
        [
            "State.StateChange alice Login",
            "State.StateChange bob Login",
            "Profile.CallbackPortraitSet bob Tag_Profile_IM_AllowType",
            "Sns.CallbackFriendAdd alice friend_add",
            "Sns.CallbackFriendAdd alice friend_response",
            "Sns.CallbackFriendDelete alice carol",
            "Sns.CallbackBlackListAdd alice carol",
            "Sns.CallbackBlackListDelete alice carol",
            "C2C.CallbackAfterMsgReport alice bob",
            "Group.CallbackAfterMsgReport bob g",
            "Profile.CallbackPortraitSet alice Tag_Profile_IM_Nick",
            "State.StateChange alice Logout",
        ],
        "{got:?}"
    );
    // Who acted and from where.
    assert_eq!(got[0]["OptPlatform"], "Android");
    assert_eq!(got[0]["DeviceId"], "a1");
    assert_eq!(got[4]["Operator_Account"], "bob");
    assert_eq!(got[8]["ReadSeq"], ack.seq);
    assert_eq!(got[10]["ProfileItem"][0]["Value"], "Ally");
    assert_eq!(got[11]["OnlineDevices"], 0);
    // Each signed, and named in the query as in the body.
    for r in b.seen.lock().iter() {
        let ts: u64 = r.timestamp.parse().unwrap();
        assert!(sign::verify("social-secret", ts, &r.raw, &r.signature));
        let cmd = r.body["CallbackCommand"].as_str().unwrap();
        assert!(r.query.contains(&format!("CallbackCommand={cmd}")), "{}", r.query);
    }
    drop(admin);
    s.stop().await;
}
