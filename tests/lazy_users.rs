//! Users are read on first use, not at start-up, and dropped again when idle; the send facts
//! are a small per-shard cache over the stored records. With both bounds at 1 every check
//! below reads the store again: a user imported before a restart logs in, sends and is found;
//! forbidden, silenced and deleted users stay so through eviction and restarts; missing users
//! get the same errors as ever.

mod common;

use std::time::Duration;

use common::*;
use imserver::client::{Client, Profile, ProfileChange};
use imserver::config::Config;
use imserver::protocol::wire::ErrorCode;

/// Two shards, one user in memory per shard, one user's facts cached per shard.
fn tiny(c: &mut Config) {
    c.shards = 2;
    c.limits.loaded_users_per_shard = 1;
    c.limits.facts_cache_per_shard = 1;
}

/// Long enough for two eviction ticks (once a second).
async fn ticks() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

/// `as_user` (through the admin) sends to `to`: the error code, `None` when sent.
async fn send_as(admin: &Client, as_user: &str, to: &str, id: &str) -> Option<ErrorCode> {
    admin.send_message(to, id, 1, b"x", Some(as_user)).await.err().map(|e| e.code().expect("a server error"))
}

/// Sends between other users, so the one-entry facts caches hold someone else.
async fn churn(admin: &Client, round: &str) {
    for (from, to) in [("p0", "p1"), ("p1", "p2"), ("p2", "p0")] {
        assert_eq!(send_as(admin, from, to, &format!("churn-{round}-{from}")).await, None);
    }
}

async fn login_error(s: &TestServer, user: &str) -> Option<ErrorCode> {
    let c = s.connect().await;
    let r = c.login(APP, user, &ticket_for(APP, user, SECRET), imserver::protocol::wire::ClientType::Ios, "p").await;
    r.err().and_then(|e| e.code())
}

#[tokio::test]
async fn users_imported_before_a_restart_log_in_send_and_are_found() {
    let s = TestServer::start_with(tiny).await;
    s.import(&["alice", "bob", "carol"]).await;
    let dir = s.dir.clone();
    let keep = s.stop().await;

    let s = TestServer::start_in(&dir, tiny).await;
    let mut bob = s.user("bob").await;
    let alice = s.user("alice").await;
    assert_eq!(alice.send_message("bob", "m1", 1, b"hi", None).await.unwrap().seq, 1);
    let got = bob.wait_push(WAIT, |f| f.get().event_as_message_push().map(|_| ())).await;
    assert!(got.is_some(), "bob hears alice's message");
    let carol = alice.get_single_user_info("carol").await.unwrap();
    assert_eq!(carol.nickname, "nick-carol");
    // A missing user is as missing as before: same errors on every path.
    assert_eq!(login_error(&s, "ghost").await, Some(ErrorCode::UserNotFound));
    let e = alice.send_message("ghost", "m2", 1, b"hi", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UserNotFound));
    assert_eq!(alice.get_single_user_info("ghost").await.unwrap_err().code(), Some(ErrorCode::UserNotFound));
    let r = alice.subscribe_status(&["bob", "ghost"], 60).await.unwrap();
    assert_eq!(r, vec![("bob".into(), ErrorCode::None), ("ghost".into(), ErrorCode::UserNotFound)]);
    assert_eq!(alice.add_black("ghost").await.unwrap_err().code(), Some(ErrorCode::UserNotFound));
    // Idle users are dropped and read again: carol (offline) is still found, and still new
    // to import.
    ticks().await;
    assert_eq!(alice.get_single_user_info("carol").await.unwrap().nickname, "nick-carol");
    let a = s.admin().await;
    assert_eq!(a.import_users(&[Profile::new("carol")]).await.unwrap()[0].1, ErrorCode::UserAlreadyExists);
    assert_eq!(send_as(&a, "carol", "alice", "m3").await, None);
    drop(keep);
}

/// What the flags must do, checked through the send path (as the admin) and login.
async fn flags_hold(s: &TestServer, a: &Client, round: &str) {
    assert_eq!(send_as(a, "sil", "p0", &format!("s-{round}")).await, Some(ErrorCode::UserSilenced));
    assert_eq!(send_as(a, "forb", "p0", &format!("f-{round}")).await, Some(ErrorCode::UserForbidden));
    assert_eq!(login_error(s, "forb").await, Some(ErrorCode::UserForbidden));
    // Silenced may log in, and may receive; forbidden may receive too.
    let sil = s.user("sil").await;
    let e = sil.send_message("p1", &format!("own-{round}"), 1, b"x", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UserSilenced));
    assert_eq!(send_as(a, "p1", "sil", &format!("to-sil-{round}")).await, None);
    assert_eq!(send_as(a, "p1", "forb", &format!("to-forb-{round}")).await, None);
}

#[tokio::test]
async fn forbidden_and_silenced_hold_after_eviction_and_restart() {
    let s = TestServer::start_with(tiny).await;
    s.import(&["sil", "forb", "p0", "p1", "p2"]).await;
    let a = s.admin().await;
    // Both cached as allowed first (their sends pass), then flagged.
    assert_eq!(send_as(&a, "sil", "p0", "before-1").await, None);
    assert_eq!(send_as(&a, "forb", "p0", "before-2").await, None);
    for (user, change) in [
        ("sil", ProfileChange { silent: Some(true), ..Default::default() }),
        ("forb", ProfileChange { forbidden: Some(true), ..Default::default() }),
    ] {
        a.modify_user_info(&ProfileChange { user_id: Some(user.into()), ..change }).await.unwrap();
    }
    flags_hold(&s, &a, "now").await;
    churn(&a, "1").await;
    ticks().await;
    flags_hold(&s, &a, "evicted").await;
    drop(a);
    let dir = s.dir.clone();
    let keep = s.stop().await;

    let s = TestServer::start_in(&dir, tiny).await;
    let a = s.admin().await;
    flags_hold(&s, &a, "restarted").await;
    // Forbid, lift, forbid ... with the caches churned in between: every acknowledged change
    // is what the next send sees, never an older one read back after an eviction.
    for i in 0..12 {
        let lifted = i % 2 == 0;
        let c = ProfileChange { user_id: Some("forb".into()), forbidden: Some(!lifted), ..Default::default() };
        a.modify_user_info(&c).await.unwrap();
        if i % 3 == 0 {
            churn(&a, &format!("t{i}")).await;
        }
        let want = if lifted { None } else { Some(ErrorCode::UserForbidden) };
        assert_eq!(send_as(&a, "forb", "p2", &format!("toggle-{i}")).await, want, "round {i}");
    }
    drop(keep);
}

#[tokio::test]
async fn a_deleted_user_stays_deleted_after_eviction_and_restart() {
    let s = TestServer::start_with(tiny).await;
    s.import(&["x", "y", "p0", "p1", "p2"]).await;
    let x = s.user("x").await;
    x.send_message("y", "m1", 1, b"hi", None).await.unwrap();
    let a = s.admin().await;
    assert_eq!(a.delete_users(&["y"]).await.unwrap()[0].1, ErrorCode::None);
    let deleted = |round: &'static str| {
        let (x, a) = (&x, &a);
        async move {
            let e = x.send_message("y", &format!("to-{round}"), 1, b"hi", None).await.unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::UserDeleted), "{round}: to a deleted user");
            assert_eq!(send_as(a, "y", "x", &format!("from-{round}")).await, Some(ErrorCode::UserDeleted));
            assert_eq!(x.get_single_user_info("y").await.unwrap_err().code(), Some(ErrorCode::UserDeleted));
            assert!(a.get_single_user_info("y").await.unwrap().deleted, "admins still see the record");
        }
    };
    deleted("now").await;
    churn(&a, "1").await;
    ticks().await;
    deleted("evicted").await;
    assert_eq!(login_error(&s, "y").await, Some(ErrorCode::UserDeleted));
    assert_eq!(a.import_users(&[Profile::new("y")]).await.unwrap()[0].1, ErrorCode::UserDeleted);
    drop((x, a));
    let dir = s.dir.clone();
    let keep = s.stop().await;

    let s = TestServer::start_in(&dir, tiny).await;
    let x = s.user("x").await;
    let e = x.send_message("y", "after", 1, b"hi", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UserDeleted));
    assert_eq!(login_error(&s, "y").await, Some(ErrorCode::UserDeleted));
    let a = s.admin().await;
    assert_eq!(a.import_users(&[Profile::new("y")]).await.unwrap()[0].1, ErrorCode::UserDeleted);
    drop(keep);
}

/// (user, online) of a status push.
fn status(f: &imserver::client::Frame) -> Option<(String, bool)> {
    let st = f.get().event_as_status_changed_push()?.status()?;
    Some((st.user_id().unwrap_or_default().to_owned(), st.online()))
}

/// Every status push that comes until none has come for a second and a half.
async fn statuses(c: &mut Client) -> Vec<(String, bool)> {
    let mut seen = Vec::new();
    while let Some(s) = c.wait_push(Duration::from_millis(1500), status).await {
        seen.push(s);
    }
    seen.sort();
    seen
}

#[tokio::test]
async fn subscriptions_to_evicted_users_hold_renew_and_end() {
    let s = TestServer::start_with(tiny).await;
    s.import(&["w", "t1", "t2", "t3", "p0", "p1", "p2"]).await;
    let mut w = s.user("w").await;
    w.subscribe_status(&["t1"], 600).await.unwrap();
    w.subscribe_status(&["t2", "t3"], 2).await.unwrap();
    let offline = |u: &str| (u.to_string(), false);
    assert_eq!(statuses(&mut w).await, vec![offline("t1"), offline("t2"), offline("t3")], "current status first");
    // Offline targets are evicted with their subscriptions in the store; t2's is renewed
    // while t2 is out of memory, then t2 is evicted again and its first expiry passes.
    let a = s.admin().await;
    churn(&a, "1").await;
    ticks().await;
    w.subscribe_status(&["t2"], 600).await.unwrap();
    assert_eq!(statuses(&mut w).await, vec![offline("t2")]);
    churn(&a, "2").await;
    ticks().await;
    // t1 and t2 coming online are heard; t3's subscription has ended.
    let (_t1, _t2, _t3) = (s.user("t1").await, s.user("t2").await, s.user("t3").await);
    let online = |u: &str| (u.to_string(), true);
    assert_eq!(statuses(&mut w).await, vec![online("t1"), online("t2")]);
    drop((_t1, _t2, _t3, w, a));
    let dir = s.dir.clone();
    let keep = s.stop().await;

    // After a restart, read again with their targets.
    let s = TestServer::start_in(&dir, tiny).await;
    let mut w = s.user("w").await;
    let (_t1, _t3) = (s.user("t1").await, s.user("t3").await);
    assert_eq!(statuses(&mut w).await, vec![online("t1")]);
    w.unsubscribe_status(&["t1"]).await.unwrap();
    drop(_t1);
    ticks().await;
    let _t1 = s.user("t1").await;
    assert_eq!(statuses(&mut w).await, vec![], "unsubscribed");
    drop(keep);
}
