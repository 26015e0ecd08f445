//! Friendship over TCP against the real server: add under each policy, requests, delete,
//! update, relations and checks, blacklist, pushes to other devices, sync with tombstones,
//! and the send checks.

mod common;

use common::*;
use imserver::client::{Frame, ProfileChange};
use imserver::protocol::wire::{self, ErrorCode, Relation, SyncStream};

fn synced_friend(f: &Frame) -> Option<(String, bool)> {
    let p = f.get().event_as_sync_changed_push()?;
    if p.stream() != SyncStream::Friends {
        return None;
    }
    let i = p.item()?;
    Some((i.id().unwrap_or_default().to_owned(), i.deleted()))
}

async fn set_policy(s: &TestServer, user: &str, policy: u8) {
    let a = s.admin().await;
    a.modify_user_info(&ProfileChange {
        user_id: Some(user.into()),
        friend_add_policy: Some(policy),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn add_under_each_policy() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol", "dave"]).await;
    set_policy(&s, "carol", 1).await; // needs approval
    set_policy(&s, "dave", 2).await; // nobody
    let alice = s.user("alice").await;
    let mut bob = s.user("bob").await;
    // Anyone: friends at once, both sides, and bob's device hears of it.
    assert_eq!(alice.add_friend("bob", "hi", "search", "Bobby").await.unwrap(), None);
    assert_eq!(bob.wait_push(WAIT, synced_friend).await, Some(("alice".into(), false)));
    let r = alice.get_relation("bob").await.unwrap();
    assert!(r.is_friend && !r.in_my_blacklist && !r.in_their_blacklist);
    assert_eq!(r.friend.unwrap().remark, "Bobby");
    assert!(bob.get_relation("alice").await.unwrap().is_friend);
    assert_eq!(alice.add_friend("bob", "", "", "").await.unwrap_err().code(), Some(ErrorCode::AlreadyFriends));
    // Needs approval: a request.
    let req = alice.add_friend("carol", "let's talk", "qr", "").await.unwrap().expect("a request");
    assert_eq!((req.from.as_str(), req.to.as_str(), req.state), ("alice", "carol", 0));
    assert!(!alice.get_relation("carol").await.unwrap().is_friend);
    // Nobody: refused.
    assert_eq!(alice.add_friend("dave", "", "", "").await.unwrap_err().code(), Some(ErrorCode::FriendAddRefused));
    // Errors.
    assert_eq!(alice.add_friend("alice", "", "", "").await.unwrap_err().code(), Some(ErrorCode::FriendSelf));
    assert_eq!(alice.add_friend("ghost", "", "", "").await.unwrap_err().code(), Some(ErrorCode::UserNotFound));
    // An administrator imports a relationship whatever the policy.
    let a = s.admin().await;
    let f = a
        .call(|fbb| {
            let u = fbb.create_string("alice");
            let t = fbb.create_string("dave");
            let r = wire::AddFriendReq::create(
                fbb,
                &wire::AddFriendReqArgs { user_id: Some(u), to_user: Some(t), ..Default::default() },
            );
            (wire::Request::AddFriendReq, r.as_union_value())
        })
        .await
        .unwrap();
    assert!(f.get().response_as_add_friend_resp().unwrap().became_friends());
    assert!(alice.get_relation("dave").await.unwrap().is_friend);
}

#[tokio::test]
async fn requests_are_listed_approved_rejected_and_read() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol"]).await;
    set_policy(&s, "carol", 1).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut carol = s.user("carol").await;
    let from_alice = alice.add_friend("carol", "hello", "", "").await.unwrap().unwrap();
    let from_bob = bob.add_friend("carol", "hey", "", "").await.unwrap().unwrap();
    let reqs = carol.friend_requests().await.unwrap();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.state == 0 && !r.read));
    let pushed = carol
        .wait_push(WAIT, |f| {
            f.get().event_as_sync_changed_push().filter(|p| p.stream() == SyncStream::FriendRequests).map(|_| ())
        })
        .await;
    assert!(pushed.is_some(), "carol's device hears of the request");
    carol.read_all_friend_requests().await.unwrap();
    assert!(carol.friend_requests().await.unwrap().iter().all(|r| r.read));
    carol.answer_friend_request(from_alice.id, true).await.unwrap();
    assert!(carol.get_relation("alice").await.unwrap().is_friend);
    assert!(alice.get_relation("carol").await.unwrap().is_friend, "the requester's side too");
    carol.answer_friend_request(from_bob.id, false).await.unwrap();
    assert!(!bob.get_relation("carol").await.unwrap().is_friend);
    assert_eq!(
        carol.answer_friend_request(from_bob.id, true).await.unwrap_err().code(),
        Some(ErrorCode::FriendRequestNotFound)
    );
    assert_eq!(
        carol.answer_friend_request(12345, true).await.unwrap_err().code(),
        Some(ErrorCode::FriendRequestNotFound)
    );
    let states: Vec<u8> = carol.friend_requests().await.unwrap().iter().map(|r| r.state).collect();
    assert!(states.contains(&1) && states.contains(&2));
}

#[tokio::test]
async fn delete_is_one_way_and_update_changes_my_side() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol"]).await;
    let alice = s.user("alice").await;
    let mut alice2 = s.login("alice", wire::ClientType::Web, "web").await;
    let bob = s.user("bob").await;
    alice.add_friend("bob", "", "", "").await.unwrap();
    alice.add_friend("carol", "", "", "").await.unwrap();
    alice.update_friend("bob", Some("B."), Some(r#"{"tag":1}"#)).await.unwrap();
    let f = alice.get_relation("bob").await.unwrap().friend.unwrap();
    assert_eq!((f.remark.as_str(), f.extra.as_str()), ("B.", r#"{"tag":1}"#));
    assert_eq!(alice.update_friend("zed", Some("x"), None).await.unwrap_err().code(), Some(ErrorCode::NotFriends));
    alice.delete_friend("bob").await.unwrap();
    assert_eq!(alice2.wait_push(WAIT, |f| synced_friend(f).filter(|x| x.1)).await, Some(("bob".into(), true)));
    assert!(!alice.get_relation("bob").await.unwrap().is_friend);
    assert!(bob.get_relation("alice").await.unwrap().is_friend, "bob keeps his side");
    assert_eq!(alice.delete_friend("bob").await.unwrap_err().code(), Some(ErrorCode::NotFriends));
    alice.delete_all_friends().await.unwrap();
    assert!(alice.get_friends(0, 100).await.unwrap().0.is_empty());
}

#[tokio::test]
async fn check_friend_and_black_in_both_directions() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol", "dave", "eve"]).await;
    let alice = s.user("alice").await;
    let carol = s.user("carol").await;
    let dave = s.user("dave").await;
    alice.add_friend("bob", "", "", "").await.unwrap(); // both ways
    alice.add_friend("carol", "", "", "").await.unwrap();
    carol.delete_friend("alice").await.unwrap(); // now A->C only
    dave.add_friend("alice", "", "", "").await.unwrap();
    alice.delete_friend("dave").await.unwrap(); // now D->A only
    let users = ["bob", "carol", "dave", "eve"];
    let both = alice.check_relations(&users, true, false).await.unwrap();
    let got: Vec<Relation> = both.iter().map(|x| x.1).collect();
    assert_eq!(got, vec![Relation::Both, Relation::AToB, Relation::BToA, Relation::None]);
    let single = alice.check_relations(&users, false, false).await.unwrap();
    let got: Vec<Relation> = single.iter().map(|x| x.1).collect();
    assert_eq!(got, vec![Relation::AToB, Relation::AToB, Relation::None, Relation::None]);
    alice.add_black("eve").await.unwrap();
    dave.add_black("alice").await.unwrap();
    let blacks = alice.check_relations(&["eve", "dave", "bob"], true, true).await.unwrap();
    let got: Vec<Relation> = blacks.iter().map(|x| x.1).collect();
    assert_eq!(got, vec![Relation::AToB, Relation::BToA, Relation::None]);
    assert_eq!(alice.add_black("eve").await.unwrap_err().code(), Some(ErrorCode::AlreadyInBlacklist));
    assert_eq!(alice.delete_black("bob").await.unwrap_err().code(), Some(ErrorCode::NotInBlacklist));
    let r = alice.get_relation("dave").await.unwrap();
    assert!(r.in_their_blacklist && !r.in_my_blacklist);
}

#[tokio::test]
async fn blacklist_refuses_adds_and_messages() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    alice.send_message("bob", "m1", 1, b"hi", None).await.unwrap();
    bob.add_black("alice").await.unwrap();
    assert_eq!(alice.send_message("bob", "m2", 1, b"hi", None).await.unwrap_err().code(), Some(ErrorCode::InBlacklist));
    assert_eq!(alice.add_friend("bob", "", "", "").await.unwrap_err().code(), Some(ErrorCode::InBlacklist));
    // bob may still write to alice (he blacklisted her, not the other way round).
    bob.send_message("alice", "b1", 1, b"hm", None).await.unwrap();
    bob.delete_black("alice").await.unwrap();
    assert_eq!(alice.send_message("bob", "m3", 1, b"hi", None).await.unwrap().seq, 3);
}

#[tokio::test]
async fn apps_may_require_friendship_to_message() {
    let s = TestServer::start_with(|c| c.apps[0].friendship_required = true).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    assert_eq!(
        alice.send_message("bob", "x1", 1, b"hi", None).await.unwrap_err().code(),
        Some(ErrorCode::FriendRequired)
    );
    alice.add_friend("bob", "", "", "").await.unwrap();
    alice.send_message("bob", "x2", 1, b"hi", None).await.unwrap();
    bob.delete_friend("alice").await.unwrap();
    assert_eq!(
        alice.send_message("bob", "x3", 1, b"hi", None).await.unwrap_err().code(),
        Some(ErrorCode::FriendRequired)
    );
}

#[tokio::test]
async fn friends_blacklist_and_requests_sync_with_tombstones_after_offline() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol", "dave", "frank"]).await;
    set_policy(&s, "alice", 1).await;
    let alice = s.user("alice").await;
    assert_eq!(alice.add_friend("bob", "", "", "").await.unwrap(), None, "bob accepts anyone");
    assert_eq!(alice.add_friend("carol", "", "", "").await.unwrap(), None);
    alice.add_black("dave").await.unwrap();
    // dave asks alice (who needs approval): a request in alice's stream.
    let dave = s.user("dave").await;
    assert_eq!(dave.add_friend("alice", "hi", "", "").await.unwrap_err().code(), Some(ErrorCode::InBlacklist));
    let req = s.user("bob").await.add_friend("alice", "hi", "", "").await.unwrap_err();
    assert_eq!(req.code(), Some(ErrorCode::AlreadyFriends), "bob already has alice (both sides were written)");
    let frank = s.user("frank").await;
    let req = frank.add_friend("alice", "hello?", "", "").await.unwrap().expect("alice needs approval");
    alice.delete_friend("carol").await.unwrap();
    // A device that was offline syncs each stream from 0.
    let dev = s.login("alice", wire::ClientType::Mac, "mac").await;
    let friends = dev.sync(SyncStream::Friends, 0, 100, None).await.unwrap();
    assert!(friends.items.iter().any(|i| i.id == "bob" && !i.deleted));
    assert!(friends.items.iter().any(|i| i.id == "carol" && i.deleted), "the deletion is a tombstone");
    let blacks = dev.sync(SyncStream::Blacklist, 0, 100, None).await.unwrap();
    assert_eq!(blacks.items.iter().map(|i| (i.id.as_str(), i.deleted)).collect::<Vec<_>>(), vec![("dave", false)]);
    let reqs = dev.sync(SyncStream::FriendRequests, 0, 100, None).await.unwrap();
    assert_eq!(reqs.items.len(), 1);
    assert_eq!(reqs.items[0].id, req.id.to_string());
    // Paging by seq.
    let (page, head, more) = dev.get_friends(0, 100).await.unwrap();
    assert_eq!(page.iter().map(|f| f.user_id.as_str()).collect::<Vec<_>>(), vec!["bob"]);
    assert!(head > 0 && !more);
}

#[tokio::test]
async fn friend_groups_hold_friends_and_survive_a_restart() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol", "dave"]).await;
    let alice = s.user("alice").await;
    alice.add_friend("bob", "", "", "").await.unwrap();
    alice.add_friend("carol", "", "", "").await.unwrap();
    alice.friend_group("create", "work", &["bob"]).await.unwrap();
    assert_eq!(alice.friend_group("create", "work", &[]).await.unwrap_err().code(), Some(ErrorCode::FriendGroupExists));
    assert_eq!(alice.friend_group("add", "work", &["dave"]).await.unwrap_err().code(), Some(ErrorCode::NotFriends));
    alice.friend_group("add", "work", &["carol"]).await.unwrap();
    alice.friend_group("create", "family", &[]).await.unwrap();
    alice.friend_group("remove", "work", &["bob"]).await.unwrap();
    assert_eq!(
        alice.friend_group("add", "nope", &["bob"]).await.unwrap_err().code(),
        Some(ErrorCode::FriendGroupNotFound)
    );
    alice.friend_group("delete", "family", &[]).await.unwrap();
    drop(alice);
    let dir = s.dir.clone();
    let keep = s.stop().await;
    let s = TestServer::start_in(&dir, |_| {}).await;
    let alice = s.user("alice").await;
    assert_eq!(alice.friend_groups().await.unwrap(), vec![("work".to_string(), vec!["carol".to_string()])]);
    drop(keep);
}

#[tokio::test]
async fn re_adding_keeps_one_stream_entry_per_item_and_one_way_deletes_can_be_repaired() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol", "eve"]).await;
    set_policy(&s, "carol", 1).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    for _ in 0..3 {
        alice.add_friend("bob", "", "", "").await.unwrap();
        alice.delete_friend("bob").await.unwrap();
        alice.add_black("eve").await.unwrap();
        alice.delete_black("eve").await.unwrap();
    }
    alice.add_friend("bob", "", "", "").await.unwrap();
    let friends = alice.sync(SyncStream::Friends, 0, 100, None).await.unwrap();
    assert_eq!(friends.items.iter().map(|i| (i.id.as_str(), i.deleted)).collect::<Vec<_>>(), vec![("bob", false)]);
    let blacks = alice.sync(SyncStream::Blacklist, 0, 100, None).await.unwrap();
    assert_eq!(blacks.items.iter().map(|i| (i.id.as_str(), i.deleted)).collect::<Vec<_>>(), vec![("eve", true)]);
    // bob deletes his side; alice adds again and they are friends both ways once more.
    bob.delete_friend("alice").await.unwrap();
    assert_eq!(alice.add_friend("bob", "", "", "").await.unwrap(), None);
    assert!(bob.get_relation("alice").await.unwrap().is_friend);
    // A second request from the same user replaces the first: one live request, one tombstone.
    let first = alice.add_friend("carol", "1", "", "").await.unwrap().unwrap();
    let second = alice.add_friend("carol", "2", "", "").await.unwrap().unwrap();
    let carol = s.user("carol").await;
    let reqs = carol.friend_requests().await.unwrap();
    assert_eq!(reqs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![second.id]);
    let stream = carol.sync(SyncStream::FriendRequests, 0, 100, None).await.unwrap();
    let first_id = first.id.to_string();
    assert!(stream.items.iter().any(|i| i.id == first_id && i.deleted));
    assert_eq!(stream.items.len(), 2);
    // Approving twice is harmless.
    carol.answer_friend_request(second.id, true).await.unwrap();
    carol.answer_friend_request(second.id, true).await.unwrap();
    assert!(alice.get_relation("carol").await.unwrap().is_friend);
    assert_eq!(alice.add_black("ghost").await.unwrap_err().code(), Some(ErrorCode::UserNotFound));
}

#[tokio::test]
async fn a_one_way_delete_and_friend_group_changes_are_pushed() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let mut alice2 = s.login("alice", wire::ClientType::Web, "web").await;
    let mut bob = s.user("bob").await;
    alice.add_friend("bob", "", "", "").await.unwrap();
    let event = |f: &Frame| {
        f.get()
            .event_as_friend_event_push()
            .map(|e| (e.kind().unwrap_or_default().to_owned(), e.user_id().unwrap_or_default().to_owned()))
    };
    alice.friend_group("create", "close", &["bob"]).await.unwrap();
    assert_eq!(alice2.wait_push(WAIT, event).await, Some(("groups_changed".into(), "alice".into())));
    alice.delete_friend("bob").await.unwrap();
    assert_eq!(bob.wait_push(WAIT, event).await, Some(("deleted_you".into(), "alice".into())));
    assert!(alice.friend_groups().await.unwrap()[0].1.is_empty(), "bob left alice's group");
}

#[tokio::test]
async fn received_requests_are_bounded_and_a_refusal_changes_nothing() {
    let s = TestServer::start_with(|c| c.limits.max_friend_requests = 3).await;
    s.import(&["fan0", "fan1", "fan2", "fan3", "star"]).await;
    set_policy(&s, "star", 1).await;
    // Admin adds bypass the policy, so the fans ask for themselves.
    for u in ["fan0", "fan1", "fan2"] {
        let c = s.user(u).await;
        assert!(c.add_friend("star", "", "", "").await.unwrap().is_some());
    }
    // A pending request from the same fan is replaced, not added.
    assert!(s.user("fan1").await.add_friend("star", "again", "", "").await.unwrap().is_some());
    let star = s.user("star").await;
    let before = star.sync(SyncStream::FriendRequests, 0, 100, None).await.unwrap();
    let last = s.user("fan3").await;
    assert_eq!(last.add_friend("star", "", "", "").await.unwrap_err().code(), Some(ErrorCode::LimitExceeded));
    // The refusal changed nothing: same list, same stream head, in memory and after a restart.
    assert_eq!(star.friend_requests().await.unwrap().len(), 3);
    let after = star.sync(SyncStream::FriendRequests, 0, 100, None).await.unwrap();
    assert_eq!((after.head_seq, after.items.len()), (before.head_seq, before.items.len()));
    drop((star, last));
    let dir = s.stop().await.unwrap();
    let s = TestServer::start_in(dir.path(), |c| c.limits.max_friend_requests = 3).await;
    let star = s.user("star").await;
    let restarted = star.sync(SyncStream::FriendRequests, 0, 100, None).await.unwrap();
    assert_eq!((restarted.head_seq, restarted.items.len()), (before.head_seq, before.items.len()));
    // Answering one makes room: the answered request is dropped for the new one.
    let first = star.friend_requests().await.unwrap()[0].id;
    star.answer_friend_request(first, false).await.unwrap();
    let last = s.user("fan3").await;
    assert!(last.add_friend("star", "", "", "").await.unwrap().is_some(), "an answered request made room");
    let reqs = star.friend_requests().await.unwrap();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.id != first));
}

#[tokio::test]
async fn the_friend_limit_holds_for_adding_accepting_and_approving() {
    let s = TestServer::start_with(|c| c.limits.max_friends = 2).await;
    s.import(&["alice", "bob", "carol", "dave", "erin"]).await;
    let alice = s.user("alice").await;
    alice.add_friend("bob", "", "", "").await.unwrap();
    alice.add_friend("carol", "", "", "").await.unwrap();
    // alice is full: she cannot add, and cannot be added.
    assert_eq!(alice.add_friend("dave", "", "", "").await.unwrap_err().code(), Some(ErrorCode::LimitExceeded));
    let dave = s.user("dave").await;
    assert_eq!(dave.add_friend("alice", "", "", "").await.unwrap_err().code(), Some(ErrorCode::LimitExceeded));
    assert!(!dave.get_relation("alice").await.unwrap().is_friend, "nothing half-made");
    // Nor approve: erin asks bob (who needs approval), bob fills up, then cannot approve.
    set_policy(&s, "bob", 1).await;
    let erin = s.user("erin").await;
    let req = erin.add_friend("bob", "", "", "").await.unwrap().expect("a request");
    let bob = s.user("bob").await;
    set_policy(&s, "dave", 0).await;
    bob.add_friend("dave", "", "", "").await.unwrap();
    assert_eq!(bob.answer_friend_request(req.id, true).await.unwrap_err().code(), Some(ErrorCode::LimitExceeded));
    // Nor can a full requester be approved into a friend: alice (full) asked frank earlier.
    s.import(&["frank"]).await;
    set_policy(&s, "frank", 1).await;
    alice.delete_friend("carol").await.unwrap();
    let ask = alice.add_friend("frank", "", "", "").await.unwrap().expect("a request");
    alice.add_friend("carol", "", "", "").await.unwrap();
    let frank = s.user("frank").await;
    assert_eq!(frank.answer_friend_request(ask.id, true).await.unwrap_err().code(), Some(ErrorCode::LimitExceeded));
    assert!(!frank.get_relation("alice").await.unwrap().is_friend, "frank's side was not written");
    assert!(!alice.get_relation("frank").await.unwrap().is_friend);
    // A delete makes room.
    alice.delete_friend("carol").await.unwrap();
    alice.add_friend("dave", "", "", "").await.unwrap();
    assert!(alice.get_relation("dave").await.unwrap().is_friend);
}
