//! One-to-one messaging over TCP against the real server: send/ack, delivery to every device,
//! idempotent retries, receipts, read, recall, history, conversations and offline sync.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use imserver::client::{Client, Frame, Message, ProfileChange};
use imserver::protocol::wire::{self, ErrorCode, SyncStream};

fn pushed_message(f: &Frame) -> Option<Message> {
    f.get().event_as_message_push().and_then(|p| p.message()).map(|m| Message::from_wire(&m))
}

#[tokio::test]
async fn send_acks_and_delivers_to_every_device_but_the_sender() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.login("alice", wire::ClientType::Ios, "a-phone").await;
    let mut alice_desk = s.login("alice", wire::ClientType::Mac, "a-desk").await;
    let mut bob_phone = s.login("bob", wire::ClientType::Android, "b-phone").await;
    let mut bob_web = s.login("bob", wire::ClientType::Web, "b-web").await;

    let ack = alice.send_message("bob", "c-1", 1, b"hi bob", None).await.unwrap();
    assert_eq!((ack.seq, ack.duplicate, ack.client_id.as_str()), (1, false, "c-1"));
    assert!(ack.server_id > 0 && ack.timestamp_ms > 0);

    for dev in [&mut bob_phone, &mut bob_web] {
        let m = dev.wait_push(WAIT, pushed_message).await.expect("bob's device gets the message");
        assert_eq!(
            (m.server_id, m.seq, m.from.as_str(), m.peer.as_str(), &m.body[..]),
            (ack.server_id, 1, "alice", "alice", &b"hi bob"[..])
        );
        assert!(m.sync_seq > 0);
    }
    let m = alice_desk.wait_push(WAIT, pushed_message).await.expect("alice's other device gets it");
    assert_eq!((m.server_id, m.peer.as_str()), (ack.server_id, "bob"));
    let mut alice = alice;
    assert!(alice.wait_push(Duration::from_millis(300), pushed_message).await.is_none(), "not the sending device");

    let ack2 = bob_web.send_message("alice", "c-1", 1, b"hi alice", None).await.unwrap();
    assert_eq!(ack2.seq, 2, "one seq per conversation, whoever sends");
}

#[tokio::test]
async fn send_errors_are_typed_and_store_nothing() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol"]).await;
    let a = s.admin().await;
    let alice = s.user("alice").await;
    let e = |r: Result<imserver::client::SendAck, imserver::client::ClientError>| r.unwrap_err().code().unwrap();
    assert_eq!(e(alice.send_message("ghost", "x1", 1, b"?", None).await), ErrorCode::UserNotFound);
    assert_eq!(e(alice.send_message("alice", "x2", 1, b"?", None).await), ErrorCode::InvalidArgument);
    assert_eq!(e(alice.send_message("bob", "", 1, b"?", None).await), ErrorCode::MissingField);
    assert_eq!(e(alice.send_message("bob", "x3", 1, &vec![0u8; 20_000], None).await), ErrorCode::MessageTooLarge);
    assert_eq!(e(alice.send_message("bob", "x4", 1, b"?", Some("carol")).await), ErrorCode::PermissionDenied);
    a.modify_user_info(&ProfileChange { user_id: Some("alice".into()), silent: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(e(alice.send_message("bob", "x5", 1, b"?", None).await), ErrorCode::UserSilenced);
    a.modify_user_info(&ProfileChange { user_id: Some("alice".into()), silent: Some(false), ..Default::default() })
        .await
        .unwrap();
    a.delete_users(&["carol"]).await.unwrap();
    assert_eq!(e(alice.send_message("carol", "x6", 1, b"?", None).await), ErrorCode::UserDeleted);
    // None of that stored anything: the first real message is seq 1.
    assert_eq!(alice.send_message("bob", "x7", 1, b"ok", None).await.unwrap().seq, 1);
    // An administrator sends for a user.
    let ack = a.send_message("alice", "adm-1", 1, b"from bob's backend", Some("bob")).await.unwrap();
    assert_eq!(ack.seq, 2);
    let (hist, _) = alice.history("bob", 0, 0, 10, None).await.unwrap();
    assert_eq!(hist[0].from, "bob");
}

#[tokio::test]
async fn retries_return_the_original_ack_everywhere() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.login("alice", wire::ClientType::Ios, "p").await;
    let first = alice.send_message("bob", "same", 7, b"body", None).await.unwrap();
    let again = alice.send_message("bob", "same", 7, b"body", None).await.unwrap();
    assert!(again.duplicate);
    assert_eq!((again.server_id, again.seq, again.timestamp_ms), (first.server_id, first.seq, first.timestamp_ms));
    // From another device of the same user.
    let other = s.login("alice", wire::ClientType::Mac, "m").await;
    let third = other.send_message("bob", "same", 7, b"body", None).await.unwrap();
    assert_eq!((third.server_id, third.duplicate), (first.server_id, true));
    // The same id with another body is a conflict.
    let e = other.send_message("bob", "same", 7, b"other", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::ClientIdConflict));
    // After a restart (memory is gone; the store remembers).
    drop((alice, other));
    let dir = s.dir.clone();
    let keep = s.stop().await;
    let s = TestServer::start_in(&dir, |_| {}).await;
    let alice = s.login("alice", wire::ClientType::Ios, "p").await;
    let after = alice.send_message("bob", "same", 7, b"body", None).await.unwrap();
    assert_eq!((after.server_id, after.seq, after.duplicate), (first.server_id, first.seq, true));
    let (hist, _) = alice.history("bob", 0, 0, 10, None).await.unwrap();
    assert_eq!(hist.len(), 1, "retries stored nothing");
    assert_eq!(alice.send_message("bob", "next", 7, b"x", None).await.unwrap().seq, 2);
    drop(keep);
}

#[tokio::test]
async fn many_concurrent_senders_get_gap_free_ordered_seqs() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut watcher = s.login("bob", wire::ClientType::Web, "watch").await;
    let senders: Vec<Arc<Client>> = vec![
        Arc::new(s.login("alice", wire::ClientType::Ios, "a1").await),
        Arc::new(s.login("alice", wire::ClientType::Mac, "a2").await),
        Arc::new(s.login("bob", wire::ClientType::Ios, "b1").await),
    ];
    let per = 100u64;
    let mut tasks = Vec::new();
    for (i, c) in senders.iter().enumerate() {
        let c = c.clone();
        let to = if i < 2 { "bob" } else { "alice" };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for k in 0..per {
                let ack =
                    c.send_message(to, &format!("s{i}-{k}"), 1, format!("{i}:{k}").as_bytes(), None).await.unwrap();
                seqs.push(ack.seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "one sender's acks are in order");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=3 * per).collect::<Vec<_>>(), "gap-free, no duplicates");
    // A device sees the conversation in seq order (its own sends from other devices included).
    let mut seen = Vec::new();
    while seen.len() < (3 * per) as usize {
        match watcher.wait_push(WAIT, pushed_message).await {
            Some(m) => seen.push(m.seq),
            None => break,
        }
    }
    // The watcher is bob's device: it sees alice's messages and bob's other device's.
    assert_eq!(seen, (1..=3 * per).collect::<Vec<_>>());
}

#[tokio::test]
async fn receipts_are_relayed_or_sent_by_the_server() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol"]).await;
    let mut alice = s.user("alice").await;
    let receipt = |f: &Frame| {
        f.get()
            .event_as_receipt_push()
            .map(|r| (r.server_id(), r.by_user().unwrap_or_default().to_owned(), r.server_sent()))
    };
    // bob offline: the server sends the receipt, marked server-sent.
    let ack = alice.send_message("bob", "r1", 1, b"x", None).await.unwrap();
    assert_eq!(alice.wait_push(WAIT, receipt).await, Some((ack.server_id, "bob".into(), true)));
    // bob online: his device acks and the server relays it.
    let mut bob = s.user("bob").await;
    let ack = alice.send_message("bob", "r2", 1, b"y", None).await.unwrap();
    let m = bob.wait_push(WAIT, pushed_message).await.unwrap();
    bob.receive_ack("alice", m.server_id, m.seq).await.unwrap();
    assert_eq!(alice.wait_push(WAIT, receipt).await, Some((ack.server_id, "bob".into(), false)));
    // An ack for a message that does not exist is refused.
    assert_eq!(bob.receive_ack("alice", 12345, 1).await.unwrap_err().code(), Some(ErrorCode::MessageNotFound));
    // So is one that names a real message with the wrong seq, or from outside its conversation
    // (checked from the sender's recent deliveries, without a store read).
    let wrong_seq = bob.receive_ack("alice", m.server_id, m.seq + 1).await.unwrap_err();
    assert_eq!(wrong_seq.code(), Some(ErrorCode::MessageNotFound));
    let carol = s.user("carol").await;
    let outsider = carol.receive_ack("alice", m.server_id, m.seq).await.unwrap_err();
    assert_eq!(outsider.code(), Some(ErrorCode::MessageNotFound));
    // None of the refused acks reached alice as a receipt.
    assert_eq!(alice.wait_push(Duration::from_millis(300), receipt).await, None);
}

/// Receipts are in no stream, so a client cannot read a lost one again: none may be dropped
/// on the way, even with every shard inbox holding a single command and the deferred queues
/// at their bound (they were, by `Router::push`, when the sender's shard inbox was full).
#[tokio::test]
async fn no_server_receipt_is_lost_when_shard_inboxes_are_full() {
    let s = TestServer::start_with(|c| {
        c.limits.shard_queue = 1;
        c.limits.deferred_per_shard = 1;
    })
    .await;
    let receivers: Vec<String> = (0..16).map(|i| format!("offline{i}")).collect();
    let mut ids = vec!["alice"];
    ids.extend(receivers.iter().map(String::as_str));
    s.import(&ids).await;
    let mut alice = s.user("alice").await;
    const N: usize = 600;
    let mut sent = std::collections::HashSet::new();
    let client_ids: Vec<String> = (0..N).map(|n| format!("c{n}")).collect();
    for round in 0..N / 200 {
        let alice = &alice;
        let sends = (round * 200..(round + 1) * 200)
            .map(|n| alice.send_message(&receivers[n % receivers.len()], &client_ids[n], 1, b"x", None));
        for ack in futures_util::future::join_all(sends).await {
            sent.insert(ack.unwrap().server_id);
        }
    }
    let receipt = |f: &Frame| f.get().event_as_receipt_push().filter(|r| r.server_sent()).map(|r| r.server_id());
    let mut got = std::collections::HashSet::new();
    while got.len() < N {
        match alice.wait_push(WAIT, receipt).await {
            Some(id) => got.insert(id),
            None => break,
        };
    }
    assert_eq!(got.len(), N, "every message to an offline user gets its server receipt");
    assert_eq!(got, sent);
}

#[tokio::test]
async fn read_moves_forward_syncs_devices_and_tells_the_peer() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let bob = s.login("bob", wire::ClientType::Ios, "phone").await;
    let mut bob_desk = s.login("bob", wire::ClientType::Mac, "desk").await;
    for i in 0..3 {
        alice.send_message("bob", &format!("m{i}"), 1, b"x", None).await.unwrap();
    }
    let page = bob.conversations(0, 50, None).await.unwrap();
    assert_eq!(page.conversations.len(), 1);
    let c = &page.conversations[0];
    assert_eq!((c.peer.as_str(), c.unread, c.read_seq), ("alice", 3, 0));
    assert_eq!(c.last_message.as_ref().unwrap().seq, 3);

    let mut alice = alice;
    bob.read("alice", 2).await.unwrap();
    let rr = |f: &Frame| {
        f.get().event_as_read_receipt_push().map(|r| (r.user_id().unwrap_or_default().to_owned(), r.read_seq()))
    };
    assert_eq!(alice.wait_push(WAIT, rr).await, Some(("bob".into(), 2)));
    let synced = |f: &Frame| {
        f.get().event_as_sync_changed_push().and_then(|p| p.item()).and_then(|i| i.conversation()).map(|c| c.read_seq())
    };
    assert_eq!(bob_desk.wait_push(WAIT, synced).await, Some(2));
    // Never backwards, never past the last message.
    bob.read("alice", 1).await.unwrap();
    bob.read("alice", 99).await.unwrap();
    let c = bob.conversations(0, 50, None).await.unwrap().conversations.remove(0);
    assert_eq!((c.read_seq, c.unread), (3, 0));
    assert_eq!(bob.read("carol", 1).await.unwrap_err().code(), Some(ErrorCode::ConversationNotFound));
}

#[tokio::test]
async fn a_read_past_the_last_message_is_clamped_everywhere() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut alice = s.user("alice").await;
    let bob = s.login("bob", wire::ClientType::Ios, "phone").await;
    let mut bob_desk = s.login("bob", wire::ClientType::Mac, "desk").await;
    for i in 0..2 {
        alice.send_message("bob", &format!("c{i}"), 1, b"x", None).await.unwrap();
    }
    // "Read everything" with a seq far beyond the last message (2): accepted, recorded as 2.
    bob.read("alice", u64::MAX).await.unwrap();
    let rr = |f: &Frame| f.get().event_as_read_receipt_push().map(|r| r.read_seq());
    assert_eq!(alice.wait_push(WAIT, rr).await, Some(2), "the peer's receipt carries the recorded seq");
    let synced = |f: &Frame| {
        f.get().event_as_sync_changed_push().and_then(|p| p.item()).and_then(|i| i.conversation()).map(|c| c.read_seq())
    };
    assert_eq!(bob_desk.wait_push(WAIT, synced).await, Some(2), "my other devices get the recorded seq");
    let c = bob.conversations(0, 50, None).await.unwrap().conversations.remove(0);
    assert_eq!((c.read_seq, c.unread), (2, 0));
    let sync = bob.sync(SyncStream::Conversations, 0, 100, None).await.unwrap();
    assert_eq!(sync.items.last().and_then(|i| i.conversation.as_ref()).map(|c| c.read_seq), Some(2));
    // The clamp does not pre-read what comes later: the next message is unread.
    alice.send_message("bob", "c2", 1, b"x", None).await.unwrap();
    let c = bob.conversations(0, 50, None).await.unwrap().conversations.remove(0);
    assert_eq!((c.read_seq, c.unread), (2, 1));
    // Reading past the end again moves the read seq to the new last message, no further.
    bob.read("alice", 1000).await.unwrap();
    assert_eq!(alice.wait_push(WAIT, rr).await, Some(3));
    let c = bob.conversations(0, 50, None).await.unwrap().conversations.remove(0);
    assert_eq!((c.read_seq, c.unread), (3, 0));
}

#[tokio::test]
async fn recall_within_the_window_by_the_sender_only() {
    let s = TestServer::start_with(|c| c.apps[0].recall_window_secs = 1).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let mut bob = s.user("bob").await;
    let ack = alice.send_message("bob", "rc1", 1, b"oops", None).await.unwrap();
    bob.wait_push(WAIT, pushed_message).await.unwrap();
    assert_eq!(bob.recall("alice", ack.server_id, None).await.unwrap_err().code(), Some(ErrorCode::RecallDenied));
    alice.recall("bob", ack.server_id, None).await.unwrap();
    let recalled =
        |f: &Frame| f.get().event_as_recall_push().map(|r| (r.server_id(), r.by_user().unwrap_or_default().to_owned()));
    assert_eq!(bob.wait_push(WAIT, recalled).await, Some((ack.server_id, "alice".into())));
    assert_eq!(alice.recall("bob", ack.server_id, None).await.unwrap_err().code(), Some(ErrorCode::AlreadyRecalled));
    let got = bob.get_messages(&[ack.server_id], None).await.unwrap();
    assert!(got[0].recalled && got[0].body.is_empty(), "a tombstone in history");
    // The tombstone replaces the message in bob's Messages stream.
    let sync = bob.sync(SyncStream::Messages, 0, 100, None).await.unwrap();
    assert_eq!(sync.items.len(), 1);
    assert!(sync.items[0].message.as_ref().unwrap().recalled);
    let late = alice.send_message("bob", "rc2", 1, b"later", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        alice.recall("bob", late.server_id, None).await.unwrap_err().code(),
        Some(ErrorCode::RecallWindowPassed)
    );
    assert_eq!(alice.recall("bob", 999, None).await.unwrap_err().code(), Some(ErrorCode::MessageNotFound));
    // An administrator may recall past the window.
    s.admin().await.recall("bob", late.server_id, Some("alice")).await.unwrap();
}

#[tokio::test]
async fn history_pages_both_ways_and_get_messages_checks_membership() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol"]).await;
    let alice = s.user("alice").await;
    let mut ids = Vec::new();
    for i in 1..=25u64 {
        ids.push(
            alice.send_message("bob", &format!("h{i}"), 1, format!("{i}").as_bytes(), None).await.unwrap().server_id,
        );
    }
    let (page, more) = alice.history("bob", 0, 0, 10, None).await.unwrap();
    assert!(more);
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), (16..=25).rev().collect::<Vec<_>>());
    // The next older page: before the oldest seq received (exclusive).
    let (page, more) = alice.history("bob", 16, 0, 10, None).await.unwrap();
    assert_eq!((page[0].seq, page[9].seq, more), (15, 6, true));
    let (page, more) = alice.history("bob", 6, 0, 10, None).await.unwrap();
    assert_eq!((page.len(), page[0].seq, more), (5, 5, false));
    assert!(alice.history("bob", 1, 0, 10, None).await.unwrap().0.is_empty(), "nothing before the first");
    let (page, more) = alice.history("bob", 0, 20, 10, None).await.unwrap();
    assert_eq!((page.iter().map(|m| m.seq).collect::<Vec<_>>(), more), ((21..=25).collect::<Vec<_>>(), false));
    let bob = s.user("bob").await;
    assert_eq!(bob.history("alice", 0, 0, 3, None).await.unwrap().0[0].seq, 25);
    // carol is not in the conversation: she sees nothing of it.
    let carol = s.user("carol").await;
    assert!(carol.get_messages(&ids[..3], None).await.unwrap().is_empty());
    assert!(carol.history("alice", 0, 0, 10, None).await.unwrap().0.is_empty());
    assert_eq!(bob.get_messages(&ids[..3], None).await.unwrap().len(), 3);
}

#[tokio::test]
async fn history_pages_oldest_first_from_the_beginning() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    for i in 1..=7u64 {
        alice.send_message("bob", &format!("o{i}"), 1, b"x", None).await.unwrap();
    }
    let bob = s.user("bob").await;
    let seqs = |p: &[Message]| p.iter().map(|m| m.seq).collect::<Vec<_>>();
    // From the first message, then onwards from the last seq received.
    let (page, more) = bob.history_oldest_first("alice", 0, 3, None).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![1, 2, 3], true));
    let (page, more) = bob.history_oldest_first("alice", 3, 3, None).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![4, 5, 6], true));
    let (page, more) = bob.history_oldest_first("alice", 6, 3, None).await.unwrap();
    assert_eq!((seqs(&page), more), (vec![7], false));
    let (page, more) = bob.history_oldest_first("alice", 7, 3, None).await.unwrap();
    assert_eq!((page.len(), more), (0, false));
    // Old clients, which never set the flag, still get newest first for after_seq = 0.
    let (page, _) = bob.history("alice", 0, 0, 3, None).await.unwrap();
    assert_eq!(seqs(&page), vec![7, 6, 5]);
    // An administrator reads it the same way for a user.
    let (page, _) = s.admin().await.history_oldest_first("alice", 0, 2, Some("bob")).await.unwrap();
    assert_eq!(seqs(&page), vec![1, 2]);
}

#[tokio::test]
async fn conversations_pin_mute_delete_and_come_back() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol"]).await;
    let alice = s.user("alice").await;
    let mut alice2 = s.login("alice", wire::ClientType::Web, "web").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    bob.send_message("alice", "1", 1, b"x", None).await.unwrap();
    carol.send_message("alice", "1", 1, b"y", None).await.unwrap();
    let list = alice.conversations(0, 50, None).await.unwrap();
    let peers: Vec<&str> = list.conversations.iter().map(|c| c.peer.as_str()).collect();
    assert_eq!(peers, vec!["bob", "carol"], "by change seq");
    let c = alice.update_conversation("bob", Some(true), Some(true)).await.unwrap();
    assert!(c.pinned && c.muted);
    let synced = |f: &Frame| {
        f.get()
            .event_as_sync_changed_push()
            .and_then(|p| p.item())
            .and_then(|i| i.conversation())
            .map(|c| (c.pinned(), c.muted()))
    };
    assert_eq!(alice2.wait_push(WAIT, synced).await, Some((true, true)));
    alice.delete_conversation("carol", false).await.unwrap();
    let deleted = |f: &Frame| {
        f.get()
            .event_as_conversation_deleted_push()
            .and_then(|p| p.conv())
            .map(|c| c.peer().unwrap_or_default().to_owned())
    };
    assert_eq!(alice2.wait_push(WAIT, deleted).await, Some("carol".into()));
    let peers: Vec<String> =
        alice.conversations(0, 50, None).await.unwrap().conversations.into_iter().map(|c| c.peer).collect();
    assert_eq!(peers, vec!["bob".to_string()]);
    // Sync shows the tombstone.
    let sync = alice.sync(SyncStream::Conversations, 0, 100, None).await.unwrap();
    assert!(sync.items.iter().any(|i| i.id == "carol" && i.deleted));
    // A new message brings it back.
    carol.send_message("alice", "2", 1, b"z", None).await.unwrap();
    let list = alice.conversations(0, 50, None).await.unwrap();
    assert!(list.conversations.iter().any(|c| c.peer == "carol" && c.last_message.as_ref().unwrap().seq == 2));
    // Client-only delete only tells my other devices.
    alice.delete_conversation("bob", true).await.unwrap();
    assert_eq!(alice2.wait_push(WAIT, deleted).await, Some("bob".into()));
    assert_eq!(alice.conversations(0, 50, None).await.unwrap().conversations.len(), 2);
    assert_eq!(
        alice.update_conversation("nobody", Some(true), None).await.unwrap_err().code(),
        Some(ErrorCode::ConversationNotFound)
    );
}

#[tokio::test]
async fn offline_receiver_syncs_on_two_devices_then_continues_live() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let total = 130u64;
    for i in 1..=total {
        alice.send_message("bob", &format!("o{i}"), 1, format!("{i}").as_bytes(), None).await.unwrap();
    }
    let mut phone = s.login("bob", wire::ClientType::Ios, "phone").await;
    let mut pad = s.login("bob", wire::ClientType::Ipad, "pad").await;
    for (total, dev) in (total..).zip([&mut phone, &mut pad]) {
        let (mut cursor, mut got) = (0u64, Vec::new());
        loop {
            let page = dev.sync(SyncStream::Messages, cursor, 50, None).await.unwrap();
            got.extend(page.items.iter().map(|i| i.message.as_ref().unwrap().seq));
            cursor = page.head_seq;
            if !page.more {
                break;
            }
        }
        assert_eq!(got, (1..=total).collect::<Vec<_>>(), "everything, once, in order");
        // Then live: the next message arrives as a push continuing the same stream.
        let ack = alice.send_message("bob", &format!("live-{cursor}"), 1, b"now", None).await.unwrap();
        let m = dev.wait_push(WAIT, |f| pushed_message(f).filter(|m| m.seq == ack.seq)).await.unwrap();
        assert_eq!((m.seq, m.sync_seq), (ack.seq, cursor + 1), "no gap between sync and push");
        let c = dev.conversations(0, 10, None).await.unwrap().conversations.remove(0);
        assert_eq!(c.unread, ack.seq);
    }
}

#[tokio::test]
async fn a_slow_reader_is_disconnected_not_buffered() {
    let s = TestServer::start_with(|c| c.limits.outbound_queue = 16).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    // bob never reads his socket: a raw connection that logs in and then sleeps.
    let mut raw = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let login = imserver::protocol::client_frame(1, |fbb| {
        imserver::protocol::login_req(fbb, APP, "bob", &ticket_for(APP, "bob", SECRET), wire::ClientType::Web, "stuck")
    });
    tokio::io::AsyncWriteExt::write_all(&mut raw, &login).await.unwrap();
    let body = vec![7u8; 8000];
    let mut offline = false;
    for i in 0..2000 {
        alice.send_message("bob", &format!("flood{i}"), 1, &body, None).await.unwrap();
        if i % 50 == 49 && !s.admin().await.query_online_status(&["bob"]).await.unwrap()[0].online {
            offline = true;
            break;
        }
    }
    assert!(offline, "the stuck connection was closed as a slow consumer");
    // Nothing was lost: bob resyncs everything on a new connection.
    let bob = s.user("bob").await;
    let mut n = 0;
    let mut cursor = 0;
    loop {
        let page = bob.sync(SyncStream::Messages, cursor, 500, None).await.unwrap();
        n += page.items.len();
        cursor = page.head_seq;
        if !page.more {
            break;
        }
    }
    let (last, _) = bob.history("alice", 0, 0, 1, None).await.unwrap();
    assert_eq!(n as u64, last[0].seq);
    let _ = HashMap::<u8, u8>::new();
}

#[tokio::test]
async fn a_send_pipelined_before_logout_is_still_acked() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let (sent, out) = tokio::join!(alice.send_message("bob", "last", 1, b"bye", None), alice.logout());
    assert_eq!(sent.unwrap().seq, 1);
    out.unwrap();
}

#[tokio::test]
async fn recall_right_after_send_leaves_one_tombstone_in_each_stream() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    for i in 0..20 {
        let ack = alice.send_message("bob", &format!("q{i}"), 1, b"secret", None).await.unwrap();
        alice.recall("bob", ack.server_id, None).await.unwrap();
    }
    let a = s.admin().await;
    for u in ["alice", "bob"] {
        let page = a.sync(SyncStream::Messages, 0, 500, Some(u)).await.unwrap();
        assert_eq!(page.items.len(), 20, "{u}: one entry per message");
        assert!(page.items.iter().all(|i| i.message.as_ref().unwrap().recalled), "{u}: no body left behind");
    }
}

#[tokio::test]
async fn a_deleted_conversation_cannot_be_read_until_a_message_brings_it_back() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    alice.send_message("bob", "1", 1, b"x", None).await.unwrap();
    bob.delete_conversation("alice", false).await.unwrap();
    assert_eq!(bob.read("alice", 1).await.unwrap_err().code(), Some(ErrorCode::ConversationNotFound));
    alice.send_message("bob", "2", 1, b"y", None).await.unwrap();
    bob.read("alice", 2).await.unwrap();
}

#[tokio::test]
async fn conversation_entries_survive_a_restart_with_their_last_message() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    for i in 1..=5 {
        alice.send_message("bob", &format!("k{i}"), 1, format!("m{i}").as_bytes(), None).await.unwrap();
    }
    let bob = s.user("bob").await;
    bob.read("alice", 2).await.unwrap();
    bob.update_conversation("alice", Some(true), None).await.unwrap();
    alice.send_message("bob", "k6", 1, b"m6", None).await.unwrap();
    drop((alice, bob));
    let dir = s.dir.clone();
    let keep = s.stop().await;
    let s = TestServer::start_in(&dir, |_| {}).await;
    let bob = s.user("bob").await;
    let c = bob.conversations(0, 10, None).await.unwrap().conversations.remove(0);
    assert_eq!((c.peer.as_str(), c.read_seq, c.unread, c.pinned), ("alice", 2, 4, true));
    assert_eq!(c.last_message.unwrap().body, b"m6".to_vec());
    drop(keep);
}

#[tokio::test]
async fn my_own_sends_read_the_conversation_even_after_a_restart() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    bob.send_message("alice", "b1", 1, b"hi", None).await.unwrap();
    for i in 0..3 {
        alice.send_message("bob", &format!("a{i}"), 1, b"yo", None).await.unwrap();
    }
    // Alice's entry: read up to her last send (4), nothing unread; and her explicit read of
    // what her sends already covered is acknowledged and durable.
    alice.read("bob", 4).await.unwrap();
    drop((alice, bob));
    let dir = s.dir.clone();
    let keep = s.stop().await;
    let s = TestServer::start_in(&dir, |_| {}).await;
    let alice = s.user("alice").await;
    let c = alice.conversations(0, 10, None).await.unwrap().conversations.remove(0);
    assert_eq!((c.read_seq, c.unread), (4, 0));
    drop(keep);
}

/// A client that pipelines many sends while the conversation shard's inbox is full (a queue
/// of one): the later sends wait behind the waiting ones instead of overtaking them, so the
/// conversation's seqs follow the order the client sent them.
#[tokio::test]
async fn pipelined_sends_keep_their_order_when_the_shard_inbox_is_full() {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start_with(|c| c.limits.shard_queue = 1).await;
    s.import(&["alice", "bob"]).await;
    let raw = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let (rd, mut wr) = raw.into_split();
    let mut frames = tokio_util::codec::FramedRead::new(rd, imserver::protocol::frame_codec(1 << 20));
    let login = imserver::protocol::client_frame(1, |fbb| {
        imserver::protocol::login_req(fbb, APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Web, "p")
    });
    wr.write_all(&login).await.unwrap();
    let answer = frames.next().await.unwrap().unwrap();
    assert!(imserver::protocol::decode_server(&answer).unwrap().response_as_login_resp().is_some());
    // All sends in one write: the session reads them in a burst, faster than the shard drains.
    const N: u64 = 300;
    let mut burst = Vec::new();
    for i in 0..N {
        let cid = format!("c{i}");
        burst.extend_from_slice(&imserver::protocol::client_frame(i + 2, |fbb| {
            imserver::protocol::send_req(fbb, "bob", &cid, 1, cid.as_bytes(), None)
        }));
    }
    wr.write_all(&burst).await.unwrap();
    let mut seq_of = HashMap::new();
    while (seq_of.len() as u64) < N {
        let f = tokio::time::timeout(WAIT, frames.next()).await.expect("every send answered").unwrap().unwrap();
        let f = imserver::protocol::decode_server(&f).unwrap();
        if let Some(ack) = f.response_as_send_ack() {
            seq_of.insert(f.id(), ack.seq());
        } else {
            assert!(f.response_as_error().is_none(), "a send failed: {:?}", f.response_as_error());
        }
    }
    for i in 0..N {
        assert_eq!(seq_of[&(i + 2)], i + 1, "send {i} took its place in the conversation");
    }
}
