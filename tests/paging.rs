//! Pages and batch answers over TCP: cut by size under the server frame bound (1 MiB) with
//! `more = true`, continued to the end without loss or repeats; and history bounds, exclusive
//! both ways from protocol version 2, inclusive `before_seq` kept for version 1 clients.

mod common;

use common::*;
use imserver::client::{Client, Frame, Profile};
use imserver::protocol::{self, wire, wire::SyncStream, MAX_SERVER_FRAME};

const BIG: usize = 16 * 1024;

fn p2p(fbb: &mut flatbuffers::FlatBufferBuilder<'static>, peer: &str) -> flatbuffers::WIPOffset<wire::ConvId<'static>> {
    let p = fbb.create_string(peer);
    wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: wire::ConvType::P2P, peer: Some(p) })
}

/// A raw answer, checked to be within the bound.
fn bounded(f: Frame) -> Frame {
    assert!(f.size() <= MAX_SERVER_FRAME, "a {} byte frame", f.size());
    assert!(f.get().response_as_error().is_none(), "{:?}", f.error());
    f
}

/// alice sends bob `n` messages with 16 KiB bodies; their server ids.
async fn big_messages(alice: &Client, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = vec![(i % 251) as u8; BIG];
        ids.push(alice.send_message("bob", &format!("big{i}"), 1, &body, None).await.unwrap().server_id);
    }
    ids
}

#[tokio::test]
async fn sync_history_and_get_messages_are_cut_by_size_and_continue_to_the_end() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    // 100 x 16 KiB: 1.6 MiB, more than one frame may carry.
    let n = 100;
    let ids = big_messages(&alice, n).await;

    // Sync, limit 500: one page is cut by size; paging from head_seq gets all, once, in order.
    let f = bounded(
        bob.call(|fbb| {
            let r = wire::SyncReq::create(
                fbb,
                &wire::SyncReqArgs { user_id: None, stream: SyncStream::Messages, after_seq: 0, limit: 500 },
            );
            (wire::Request::SyncReq, r.as_union_value())
        })
        .await
        .unwrap(),
    );
    let r = f.get().response_as_sync_resp().unwrap();
    let first = r.items().unwrap().len();
    assert!(r.more() && first > 0 && first < n, "cut at {first} of {n}, more = {}", r.more());
    assert_eq!(r.head_seq(), first as u64, "the cursor is the last item's seq");
    let (mut got, mut cursor) = (Vec::new(), 0);
    loop {
        let page = bob.sync(SyncStream::Messages, cursor, 500, None).await.unwrap();
        got.extend(page.items.iter().map(|i| i.message.as_ref().unwrap().seq));
        cursor = page.head_seq;
        if !page.more {
            break;
        }
    }
    assert_eq!(got, (1..=n as u64).collect::<Vec<_>>());

    // History, newest first, limit 500: cut by size; the next page continues before it.
    let history = |before_seq: u64| {
        let bob = &bob;
        async move {
            bounded(
                bob.call(|fbb| {
                    let conv = p2p(fbb, "alice");
                    let r = wire::GetHistoryReq::create(
                        fbb,
                        &wire::GetHistoryReqArgs { conv: Some(conv), before_seq, limit: 500, ..Default::default() },
                    );
                    (wire::Request::GetHistoryReq, r.as_union_value())
                })
                .await
                .unwrap(),
            )
        }
    };
    let (mut seqs, mut before) = (Vec::<u64>::new(), 0);
    loop {
        let f = history(before).await;
        let r = f.get().response_as_messages_resp().unwrap();
        let page: Vec<u64> = r.messages().unwrap().iter().map(|m| m.seq()).collect();
        if before == 0 {
            assert!(r.more() && page.len() < n, "the first page is cut ({} of {n})", page.len());
        }
        seqs.extend(&page);
        before = *page.last().unwrap();
        if !r.more() {
            break;
        }
    }
    assert_eq!(seqs, (1..=n as u64).rev().collect::<Vec<_>>());

    // Messages by id: the answer is cut by size; the SDK asks again for the rest.
    let f = bounded(
        bob.call(|fbb| {
            let v = fbb.create_vector(&ids);
            let r = wire::GetMessagesReq::create(fbb, &wire::GetMessagesReqArgs { user_id: None, server_ids: Some(v) });
            (wire::Request::GetMessagesReq, r.as_union_value())
        })
        .await
        .unwrap(),
    );
    let r = f.get().response_as_messages_resp().unwrap();
    assert!(r.more() && r.messages().unwrap().len() < n);
    let all = bob.get_messages(&ids, None).await.unwrap();
    assert_eq!(all.iter().map(|m| m.server_id).collect::<Vec<_>>(), ids);
    assert!(all.iter().all(|m| m.body.len() == BIG));
}

#[tokio::test]
async fn conversation_lists_are_cut_by_size() {
    let s = TestServer::start().await;
    let peers: Vec<String> = (0..40).map(|i| format!("peer{i}")).collect();
    let mut all: Vec<&str> = peers.iter().map(String::as_str).collect();
    all.push("bob");
    s.import(&all).await;
    let admin = s.admin().await;
    // 40 conversations, each ending with a 16 KiB message: 640 KiB of last messages.
    for p in &peers {
        admin.send_message("bob", &format!("from-{p}"), 1, &vec![1u8; BIG], Some(p)).await.unwrap();
    }
    let bob = s.user("bob").await;
    let f = bounded(
        bob.call(|fbb| {
            let r = wire::GetConversationsReq::create(
                fbb,
                &wire::GetConversationsReqArgs { user_id: None, after_seq: 0, limit: 500 },
            );
            (wire::Request::GetConversationsReq, r.as_union_value())
        })
        .await
        .unwrap(),
    );
    let r = f.get().response_as_conversations_resp().unwrap();
    assert!(r.more() && r.conversations().unwrap().len() < peers.len());
    let (mut seen, mut after) = (Vec::new(), 0);
    loop {
        let page = bob.conversations(after, 500, None).await.unwrap();
        seen.extend(page.conversations.iter().map(|c| c.peer.clone()));
        after = page.head_seq;
        if !page.more {
            break;
        }
    }
    seen.sort();
    let mut want = peers.clone();
    want.sort();
    assert_eq!(seen, want, "every conversation once");
}

#[tokio::test]
async fn user_info_is_cut_by_size_and_the_sdk_asks_for_the_rest() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let ids: Vec<String> = (0..150).map(|i| format!("u{i:03}")).collect();
    // Profiles near their largest (4 KiB extra, 1 KiB avatar): about 780 KiB for 150.
    for chunk in ids.chunks(8) {
        let users: Vec<Profile> = chunk
            .iter()
            .map(|id| Profile { extra: "x".repeat(4096), avatar: "a".repeat(1024), ..Profile::new(id) })
            .collect();
        admin.import_users(&users).await.unwrap();
    }
    let mut asked: Vec<&str> = ids.iter().map(String::as_str).collect();
    asked.insert(3, "nobody");
    let (users, missing, more) = admin.get_user_info_page(&asked, &[]).await.unwrap();
    assert!(more, "cut by size");
    assert!(users.len() < ids.len() && users.len() > 3);
    assert_eq!(missing, ["nobody"], "missing ids before the cut are answered");
    let (users, missing) = admin.get_user_info(&asked, &[]).await.unwrap();
    assert_eq!(
        users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(),
        asked.iter().filter(|u| **u != "nobody").copied().collect::<Vec<_>>()
    );
    assert_eq!(missing, ["nobody"]);
    assert!(users.iter().all(|u| u.extra.len() == 4096));
}

#[tokio::test]
async fn before_seq_is_exclusive_from_version_2_and_inclusive_for_version_1() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    for i in 1..=10 {
        alice.send_message("bob", &format!("m{i}"), 1, b"x", None).await.unwrap();
    }
    let seqs = |page: Vec<imserver::client::Message>| page.iter().map(|m| m.seq).collect::<Vec<_>>();
    let v2 = login_with_version(&s, "bob", 2).await.unwrap();
    assert_eq!(seqs(v2.history("alice", 5, 0, 10, None).await.unwrap().0), [4, 3, 2, 1]);
    assert_eq!(seqs(v2.history("alice", 0, 5, 10, None).await.unwrap().0), [6, 7, 8, 9, 10]);
    assert_eq!(seqs(v2.history_oldest_first("alice", 0, 3, None).await.unwrap().0), [1, 2, 3]);
    let v1 = login_with_version(&s, "bob", 1).await.unwrap();
    assert_eq!(seqs(v1.history("alice", 5, 0, 10, None).await.unwrap().0), [5, 4, 3, 2, 1]);
    assert_eq!(seqs(v1.history("alice", 0, 5, 10, None).await.unwrap().0), [6, 7, 8, 9, 10]);
    assert_eq!(protocol::PROTOCOL_VERSION, 2, "the SDK speaks the exclusive bounds");
}

#[tokio::test]
async fn friend_lists_are_cut_by_size() {
    let s = TestServer::start().await;
    let peers: Vec<String> = (0..130).map(|i| format!("f{i:03}")).collect();
    let mut all: Vec<&str> = peers.iter().map(String::as_str).collect();
    all.push("bob");
    s.import(&all).await;
    let bob = s.user("bob").await;
    // 130 friends with a 4 KiB extra each: about 530 KiB.
    for p in &peers {
        assert!(bob.add_friend(p, "hi", "test", "").await.unwrap().is_none(), "friends at once");
        bob.update_friend(p, None, Some(&"e".repeat(4096))).await.unwrap();
    }
    let f = bounded(
        bob.call(|fbb| {
            let r = wire::GetFriendsReq::create(
                fbb,
                &wire::GetFriendsReqArgs { after_seq: 0, limit: 500, ..Default::default() },
            );
            (wire::Request::GetFriendsReq, r.as_union_value())
        })
        .await
        .unwrap(),
    );
    let r = f.get().response_as_friends_resp().unwrap();
    assert!(r.more() && r.friends().unwrap().len() < peers.len(), "cut by size");
    let (mut seen, mut after) = (Vec::new(), 0);
    loop {
        let (page, head, more) = bob.get_friends(after, 500).await.unwrap();
        seen.extend(page.into_iter().map(|f| f.user_id));
        after = head;
        if !more {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, peers, "every friend once");
}
