//! Users: import, delete, read with field selection, modify with pushes, online status and
//! status subscriptions. Over TCP against the real server.

mod common;

use std::time::Duration;

use common::*;
use imserver::client::{Profile, ProfileChange};
use imserver::domain::ids::UserId;
use imserver::protocol::wire::{self, ErrorCode, UserField};

#[tokio::test]
async fn import_reports_per_user_outcomes() {
    let s = TestServer::start().await;
    let a = s.admin().await;
    let mut long = Profile::new("longnick");
    long.nickname = "x".repeat(500);
    let users = vec![
        Profile { nickname: "Alice".into(), extra: r#"{"vip":true}"#.into(), gender: 2, ..Profile::new("alice") },
        Profile::new("bob"),
        Profile::new("bad id"),
        long,
        Profile { gender: 9, ..Profile::new("weird") },
    ];
    let r = a.import_users(&users).await.unwrap();
    let codes: Vec<ErrorCode> = r.iter().map(|(_, c)| *c).collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::None,
            ErrorCode::None,
            ErrorCode::InvalidArgument,
            ErrorCode::InvalidArgument,
            ErrorCode::InvalidArgument
        ]
    );
    // Importing again: already exists; nothing changes.
    let again = a.import_users(&[Profile { nickname: "Other".into(), ..Profile::new("alice") }]).await.unwrap();
    assert_eq!(again[0].1, ErrorCode::UserAlreadyExists);
    let p = a.get_single_user_info("alice").await.unwrap();
    assert_eq!((p.nickname.as_str(), p.extra.as_str(), p.gender), ("Alice", r#"{"vip":true}"#, 2));
    assert!(p.create_time_ms > 0);
}

#[tokio::test]
async fn admin_operations_are_refused_to_users() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let c = s.user("alice").await;
    assert_eq!(c.import_users(&[Profile::new("mallory")]).await.unwrap_err().code(), Some(ErrorCode::PermissionDenied));
    assert_eq!(c.delete_users(&["bob"]).await.unwrap_err().code(), Some(ErrorCode::PermissionDenied));
    let other = ProfileChange { user_id: Some("bob".into()), nickname: Some("pwned".into()), ..Default::default() };
    assert_eq!(c.modify_user_info(&other).await.unwrap_err().code(), Some(ErrorCode::PermissionDenied));
    let flags = ProfileChange { silent: Some(false), ..Default::default() };
    assert_eq!(c.modify_user_info(&flags).await.unwrap_err().code(), Some(ErrorCode::PermissionDenied));
    assert_eq!(
        c.sync(wire::SyncStream::Friends, 0, 10, Some("bob")).await.unwrap_err().code(),
        Some(ErrorCode::PermissionDenied)
    );
    // Nothing changed.
    assert_eq!(s.admin().await.get_single_user_info("bob").await.unwrap().nickname, "nick-bob");
}

#[tokio::test]
async fn get_user_info_selects_fields_and_reports_missing() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let c = s.user("alice").await;
    let (found, missing) = c.get_user_info(&["alice", "ghost", "bob"], &[UserField::Nickname]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].user_id, "alice");
    assert_eq!(found[0].nickname, "nick-alice");
    assert_eq!(found[0].create_time_ms, 0, "times were not selected");
    assert_eq!(missing, vec!["ghost".to_string()]);
    assert_eq!(c.get_single_user_info("ghost").await.unwrap_err().code(), Some(ErrorCode::UserNotFound));
    let too_many: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    assert_eq!(c.get_user_info(&refs, &[]).await.unwrap_err().code(), Some(ErrorCode::BatchTooLarge));
}

#[tokio::test]
async fn modify_pushes_to_my_other_devices_only() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let phone = s.login("alice", wire::ClientType::Ios, "phone").await;
    let mut desk = s.login("alice", wire::ClientType::Mac, "desk").await;
    let change =
        ProfileChange { nickname: Some("Alice II".into()), signature: Some("hi".into()), ..Default::default() };
    let p = phone.modify_user_info(&change).await.unwrap();
    assert_eq!((p.nickname.as_str(), p.signature.as_str()), ("Alice II", "hi"));
    let pushed = desk
        .wait_push(WAIT, |f| {
            f.get()
                .event_as_user_info_changed_push()
                .and_then(|u| u.user())
                .map(|u| u.nickname().unwrap_or_default().to_owned())
        })
        .await;
    assert_eq!(pushed.as_deref(), Some("Alice II"));
    let mut phone = phone;
    assert!(
        phone
            .wait_push(Duration::from_millis(300), |f| f.get().event_as_user_info_changed_push().map(|_| ()))
            .await
            .is_none(),
        "the device that made the change is answered, not pushed"
    );
    assert_eq!(s.admin().await.get_single_user_info("alice").await.unwrap().nickname, "Alice II");
}

#[tokio::test]
async fn invalid_modify_changes_nothing() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let c = s.user("alice").await;
    let bad = ProfileChange { nickname: Some("ok".into()), extra: Some("x".repeat(100_000)), ..Default::default() };
    // 100 KB is over the 64 KiB frame limit: the connection is closed for it.
    let _ = c.modify_user_info(&bad).await.unwrap_err();
    let c = s.user("alice").await;
    let bad = ProfileChange { nickname: Some("ok".into()), extra: Some("x".repeat(5000)), ..Default::default() };
    assert_eq!(c.modify_user_info(&bad).await.unwrap_err().code(), Some(ErrorCode::InvalidArgument));
    let empty = ProfileChange::default();
    assert_eq!(c.modify_user_info(&empty).await.unwrap_err().code(), Some(ErrorCode::MissingField));
    assert_eq!(c.get_single_user_info("alice").await.unwrap().nickname, "nick-alice");
}

#[tokio::test]
async fn delete_kicks_devices_and_refuses_login() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut dev = s.user("alice").await;
    let a = s.admin().await;
    let r = a.delete_users(&["alice", "ghost"]).await.unwrap();
    assert_eq!(r, vec![("alice".into(), ErrorCode::None), ("ghost".into(), ErrorCode::UserNotFound)]);
    let f = dev.wait_push(WAIT, kick_reason).await;
    assert_eq!(f, Some(wire::KickReason::UserDeleted));
    assert!(dev.closed(WAIT).await);
    let c = s.connect().await;
    let e = c.login(APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Ios, "p").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UserDeleted));
    // Ordinary users no longer see alice; admins see her as deleted; her id is not reused.
    let bob = s.user("bob").await;
    assert_eq!(bob.get_single_user_info("alice").await.unwrap_err().code(), Some(ErrorCode::UserDeleted));
    assert!(a.get_single_user_info("alice").await.unwrap().deleted);
    assert_eq!(a.import_users(&[Profile::new("alice")]).await.unwrap()[0].1, ErrorCode::UserDeleted);
    assert_eq!(a.delete_users(&["alice"]).await.unwrap()[0].1, ErrorCode::UserDeleted);
}

#[tokio::test]
async fn forbidding_a_user_kicks_and_blocks_login() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let mut dev = s.user("alice").await;
    let a = s.admin().await;
    let p = a
        .modify_user_info(&ProfileChange { user_id: Some("alice".into()), forbidden: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert!(p.forbidden);
    assert_eq!(dev.wait_push(WAIT, kick_reason).await, Some(wire::KickReason::UserForbidden));
    let c = s.connect().await;
    let e = c.login(APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Ios, "p").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UserForbidden));
    a.modify_user_info(&ProfileChange { user_id: Some("alice".into()), forbidden: Some(false), ..Default::default() })
        .await
        .unwrap();
    s.user("alice").await.ping().await.unwrap();
}

#[tokio::test]
async fn online_status_lists_devices() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let _p = s.login("alice", wire::ClientType::Ios, "phone").await;
    let _w = s.login("alice", wire::ClientType::Web, "browser").await;
    let st = s.user("bob").await.query_online_status(&["alice", "bob", "ghost"]).await.unwrap();
    assert_eq!(st.len(), 3);
    assert!(st[0].online);
    let mut types: Vec<wire::ClientType> = st[0].devices.iter().map(|d| d.client_type).collect();
    types.sort_by_key(|t| t.0);
    assert_eq!(types, vec![wire::ClientType::Ios, wire::ClientType::Web]);
    assert!(st[1].online, "bob is asking, so he is online");
    assert!(!st[2].online);
}

#[tokio::test]
async fn status_subscriptions_push_changes_until_unsubscribed() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut bob = s.user("bob").await;
    let r = bob.subscribe_status(&["alice", "ghost"], 60).await.unwrap();
    assert_eq!(r, vec![("alice".into(), ErrorCode::None), ("ghost".into(), ErrorCode::UserNotFound)]);
    let online = |f: &imserver::client::Frame| {
        f.get()
            .event_as_status_changed_push()
            .and_then(|p| p.status())
            .map(|st| (st.user_id().unwrap_or_default().to_owned(), st.online()))
    };
    // The current status first.
    assert_eq!(bob.wait_push(WAIT, online).await, Some(("alice".into(), false)));
    let alice = s.user("alice").await;
    assert_eq!(bob.wait_push(WAIT, online).await, Some(("alice".into(), true)));
    drop(alice);
    assert_eq!(bob.wait_push(WAIT, online).await, Some(("alice".into(), false)));
    bob.unsubscribe_status(&["alice"]).await.unwrap();
    let _alice = s.user("alice").await;
    assert_eq!(bob.wait_push(Duration::from_millis(500), online).await, None);
    let too_long = bob.subscribe_status(&["alice"], 365 * 24 * 3600).await.unwrap_err();
    assert_eq!(too_long.code(), Some(ErrorCode::InvalidArgument));
}

#[tokio::test]
async fn sync_reads_are_checked() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let c = s.user("alice").await;
    let page = c.sync(wire::SyncStream::Friends, 0, 50, None).await.unwrap();
    assert!(page.items.is_empty() && !page.more);
    assert_eq!(page.head_seq, 0);
    let page = c.sync(wire::SyncStream::Blacklist, 42, 0, None).await.unwrap();
    assert_eq!(page.head_seq, 42, "with nothing newer, the head is the cursor");
    let bad = c.sync(wire::SyncStream(99), 0, 10, None).await.unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::InvalidArgument));
    let a = s.admin().await;
    a.sync(wire::SyncStream::Friends, 0, 10, Some("alice")).await.unwrap();
    assert_eq!(
        a.sync(wire::SyncStream::Friends, 0, 10, Some("ghost")).await.unwrap_err().code(),
        Some(ErrorCode::UserNotFound)
    );
}

#[tokio::test]
async fn status_subscriptions_expire() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut bob = s.user("bob").await;
    bob.subscribe_status(&["alice"], 1).await.unwrap();
    let online = |f: &imserver::client::Frame| {
        f.get().event_as_status_changed_push().and_then(|p| p.status()).map(|st| st.online())
    };
    assert_eq!(bob.wait_push(WAIT, online).await, Some(false), "the current status comes first");
    // Expiry runs on the shard's one-second tick.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _alice = s.user("alice").await;
    assert_eq!(bob.wait_push(Duration::from_millis(500), online).await, None);
}

#[tokio::test]
async fn renewing_a_subscription_moves_its_expiry() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut bob = s.user("bob").await;
    let online = |f: &imserver::client::Frame| {
        f.get().event_as_status_changed_push().and_then(|p| p.status()).map(|st| st.online())
    };
    bob.subscribe_status(&["alice"], 1).await.unwrap();
    bob.subscribe_status(&["alice"], 60).await.unwrap();
    assert_eq!(bob.wait_push(WAIT, online).await, Some(false));
    assert_eq!(bob.wait_push(WAIT, online).await, Some(false));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _alice = s.user("alice").await;
    assert_eq!(bob.wait_push(WAIT, online).await, Some(true), "the renewed subscription is still alive");
}

#[tokio::test]
async fn per_user_subscriber_limit_and_duplicate_ids() {
    let s = TestServer::start_with(|c| c.limits.max_subscriptions_per_user = 1).await;
    s.import(&["alice", "bob", "carol"]).await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    assert_eq!(bob.subscribe_status(&["alice"], 60).await.unwrap()[0].1, ErrorCode::None);
    assert_eq!(
        bob.subscribe_status(&["alice"], 60).await.unwrap()[0].1,
        ErrorCode::None,
        "renewal is not a new subscriber"
    );
    assert_eq!(carol.subscribe_status(&["alice"], 60).await.unwrap()[0].1, ErrorCode::LimitExceeded);
    let a = s.admin().await;
    assert_eq!(a.delete_users(&["carol", "carol"]).await.unwrap_err().code(), Some(ErrorCode::InvalidArgument));
    assert_eq!(a.get_user_info(&["bob", "bob"], &[]).await.unwrap_err().code(), Some(ErrorCode::InvalidArgument));
    assert!(!a.get_single_user_info("carol").await.unwrap().deleted, "a refused batch changes nothing");
}

#[tokio::test]
async fn pipelined_requests_are_answered_before_logout_closes() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let c = s.user("alice").await;
    let change = ProfileChange { nickname: Some("last words".into()), ..Default::default() };
    let (m, l) = tokio::join!(c.modify_user_info(&change), c.logout());
    assert_eq!(m.unwrap().nickname, "last words");
    l.unwrap();
}

#[tokio::test]
async fn modify_pushes_to_friends_on_every_shard_and_not_to_others() {
    let s = TestServer::start().await;
    let friends = ["bob", "carol", "dan", "erin", "fay", "gus"];
    // The test server runs 2 shards: some friends live on alice's, some on the other.
    let shard = |u: &str| imserver::shard::shard_of(imserver::domain::ids::AppId(APP), &UserId::new(u).unwrap(), 2);
    assert!(friends.iter().any(|f| shard(f) == shard("alice")) && friends.iter().any(|f| shard(f) != shard("alice")));
    s.import(&["alice", "bob", "carol", "dan", "erin", "fay", "gus", "zed"]).await;
    let alice = s.user("alice").await;
    for f in friends {
        assert_eq!(alice.add_friend(f, "", "", "").await.unwrap(), None, "{f}");
    }
    let mut devices = Vec::new();
    for f in friends {
        devices.push(s.user(f).await);
    }
    let mut zed = s.user("zed").await;
    let change = ProfileChange { nickname: Some("Alice II".into()), ..Default::default() };
    alice.modify_user_info(&change).await.unwrap();
    let alices = |f: &imserver::client::Frame| {
        f.get()
            .event_as_user_info_changed_push()
            .and_then(|u| u.user())
            .filter(|u| u.user_id() == Some("alice"))
            .map(|u| u.nickname().unwrap_or_default().to_owned())
    };
    for (f, d) in friends.iter().zip(devices.iter_mut()) {
        assert_eq!(d.wait_push(WAIT, alices).await.as_deref(), Some("Alice II"), "{f}");
    }
    assert!(zed.wait_push(Duration::from_millis(300), alices).await.is_none(), "a non-friend is not told");
}
