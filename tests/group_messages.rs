//! Group messages over TCP against the real server: send checks, delivery to every online
//! member's devices, idempotent retries, gap-free seqs, history from the join, recall, read,
//! receipts, the conversation list, offline catch-up, rate limits, restart, and the store
//! cost of a message (O(1) keys whatever the group's size).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use imserver::client::{Client, ClientError, Frame, GroupChange, GroupInfo, Message};
use imserver::protocol::wire::{ErrorCode, SyncStream};

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    r.unwrap_err().code().expect("a server error")
}

fn pushed(f: &Frame) -> Option<Message> {
    f.get().event_as_message_push().and_then(|p| p.message()).map(|m| Message::from_wire(&m))
}

fn recalled(f: &Frame) -> Option<(u64, String)> {
    f.get().event_as_recall_push().map(|p| (p.server_id(), p.by_user().unwrap_or_default().to_owned()))
}

async fn group(s: &TestServer, owner: &Client, id: &str, members: &[&str]) {
    let g = GroupInfo { group_id: id.into(), kind: 1, ..Default::default() };
    let (_, r) = owner.create_group(&g, members, None).await.unwrap();
    assert!(r.iter().all(|(_, c)| *c == ErrorCode::None), "{r:?}");
    let _ = s;
}

#[tokio::test]
async fn a_message_reaches_every_member_device_but_the_sending_one() {
    let s = TestServer::start().await;
    s.import(&["o", "a", "b", "out"]).await;
    let o = s.user("o").await;
    group(&s, &o, "g", &["a", "b"]).await;
    let mut o_desk = s.login("o", imserver::protocol::wire::ClientType::Mac, "o-desk").await;
    let mut a = s.user("a").await;
    let mut b = s.user("b").await;
    let ack = o.send_group_message("g", "c1", 1, b"hello all", None).await.unwrap();
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    for dev in [&mut a, &mut b, &mut o_desk] {
        let m = dev.wait_push(WAIT, pushed).await.expect("every member device gets it");
        assert_eq!(
            (m.server_id, m.seq, m.from.as_str(), m.peer.as_str(), &m.body[..]),
            (ack.server_id, 1, "o", "g", &b"hello all"[..])
        );
    }
    let mut o = o;
    assert!(o.wait_push(Duration::from_millis(300), pushed).await.is_none(), "not the sending device");
    // Seqs are gap-free whoever sends.
    let acks = futures_util::future::join_all((0..20).map(|i| {
        let c = if i % 2 == 0 { &a } else { &b };
        async move { c.send_group_message("g", &format!("p{i}"), 1, b"x", None).await.unwrap().seq }
    }))
    .await;
    let mut seqs = acks.clone();
    seqs.sort();
    assert_eq!(seqs, (2..=21).collect::<Vec<u64>>());
    // Retries: the same ack; other content under the same id: a conflict; after a reconnect too.
    let again = o.send_group_message("g", "c1", 1, b"hello all", None).await.unwrap();
    assert_eq!((again.server_id, again.seq, again.duplicate), (ack.server_id, 1, true));
    assert_eq!(code(o.send_group_message("g", "c1", 1, b"other", None).await), ErrorCode::ClientIdConflict);
    drop(o);
    let o = s.user("o").await;
    assert!(o.send_group_message("g", "c1", 1, b"hello all", None).await.unwrap().duplicate);
    // Not a member, not a group.
    let out = s.user("out").await;
    assert_eq!(code(out.send_group_message("g", "x", 1, b"x", None).await), ErrorCode::NotGroupMember);
    assert_eq!(code(out.send_group_message("nope", "x", 1, b"x", None).await), ErrorCode::GroupNotFound);
    // An app administrator sends as a member, not as an outsider.
    let admin = s.admin().await;
    assert_eq!(admin.send_group_message("g", "adm1", 1, b"x", Some("a")).await.unwrap().seq, 22);
    assert_eq!(code(admin.send_group_message("g", "adm2", 1, b"x", Some("out")).await), ErrorCode::NotGroupMember);
}

#[tokio::test]
async fn mutes_mute_all_and_the_rate_limit() {
    let s = TestServer::start_with(|c| c.apps[0].group_msgs_per_sec = 3).await;
    s.import(&["o", "adm", "m"]).await;
    let o = s.user("o").await;
    group(&s, &o, "g", &["adm", "m"]).await;
    o.update_group_member("g", "adm", None, None, Some(1)).await.unwrap();
    let (adm, m) = (s.user("adm").await, s.user("m").await);
    o.mute_group_members("g", &["m"], 1).await.unwrap();
    assert_eq!(code(m.send_group_message("g", "m1", 1, b"x", None).await), ErrorCode::MemberMuted);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    m.send_group_message("g", "m1", 1, b"x", None).await.expect("the mute ended by itself");
    o.mute_all("g", true).await.unwrap();
    assert_eq!(code(m.send_group_message("g", "m2", 1, b"x", None).await), ErrorCode::GroupMuted);
    adm.send_group_message("g", "a1", 1, b"x", None).await.expect("admins are exempt from mute-all");
    o.mute_all("g", false).await.unwrap();
    // 3 a second from members; owner and admins are exempt.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut limited = 0;
    let second = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let first = second();
    for i in 0..6 {
        if let Err(e) = m.send_group_message("g", &format!("r{i}"), 1, b"x", None).await {
            assert_eq!(e.code(), Some(ErrorCode::RateLimited));
            limited += 1;
        }
    }
    // At most 3 in each wall-clock second the sends touched.
    let seconds = second() - first + 1;
    assert!(6 - limited <= 3 * seconds, "{limited} of 6 refused over {seconds} s");
    assert!(seconds > 1 || limited >= 3, "{limited} of 6 refused within a second");
    for i in 0..6 {
        adm.send_group_message("g", &format!("ar{i}"), 1, b"x", None).await.expect("exempt");
    }
}

#[tokio::test]
async fn history_starts_at_the_join_unless_the_group_shows_it() {
    let s = TestServer::start().await;
    s.import(&["o", "early", "late", "later"]).await;
    let o = s.user("o").await;
    group(&s, &o, "g", &["early"]).await;
    for i in 0..5 {
        o.send_group_message("g", &format!("c{i}"), 1, format!("m{i}").as_bytes(), None).await.unwrap();
    }
    o.add_group_members("g", &["late"], false).await.unwrap();
    o.send_group_message("g", "c5", 1, b"m5", None).await.unwrap();
    let late = s.user("late").await;
    let seqs = |v: Vec<Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(late.group_catch_up("g", 0).await.unwrap()), [6], "only from the join");
    assert_eq!(seqs(late.group_history("g", 0, 0, false, 10).await.unwrap().0), [6]);
    let early = s.user("early").await;
    assert_eq!(seqs(early.group_catch_up("g", 0).await.unwrap()), (1..=6).collect::<Vec<u64>>());
    assert_eq!(seqs(early.group_history("g", 4, 0, false, 2).await.unwrap().0), [3, 2], "newest first before 4");
    // getMessage by id: what the viewer may see.
    let ids: Vec<u64> = early.group_catch_up("g", 0).await.unwrap().iter().map(|m| m.server_id).collect();
    assert_eq!(late.get_messages(&ids, None).await.unwrap().len(), 1);
    assert_eq!(early.get_messages(&ids, None).await.unwrap().len(), 6);
    o.update_group("g", &GroupChange { history_visible: Some(true), ..Default::default() }).await.unwrap();
    o.add_group_members("g", &["later"], false).await.unwrap();
    let later = s.user("later").await;
    assert_eq!(later.group_catch_up("g", 0).await.unwrap().len(), 6, "history shown to new members");
    let out = s.user("o").await;
    out.delete_group_members("g", &["early"]).await.unwrap();
    assert_eq!(code(early.group_catch_up("g", 0).await), ErrorCode::NotGroupMember);
}

#[tokio::test]
async fn recall_by_the_sender_or_a_manager() {
    let s = TestServer::start_with(|c| c.apps[0].recall_window_secs = 1).await;
    s.import(&["o", "a", "b"]).await;
    let o = s.user("o").await;
    group(&s, &o, "g", &["a", "b"]).await;
    let (a, mut b) = (s.user("a").await, s.user("b").await);
    let m1 = a.send_group_message("g", "c1", 1, b"one", None).await.unwrap();
    let m2 = a.send_group_message("g", "c2", 1, b"two", None).await.unwrap();
    assert_eq!(code(b.group_recall("g", m1.server_id).await), ErrorCode::RecallDenied);
    a.group_recall("g", m1.server_id).await.unwrap();
    let (id, by) = b.wait_push(WAIT, recalled).await.expect("members are told");
    assert_eq!((id, by.as_str()), (m1.server_id, "a"));
    assert_eq!(code(a.group_recall("g", m1.server_id).await), ErrorCode::AlreadyRecalled);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(code(a.group_recall("g", m2.server_id).await), ErrorCode::RecallWindowPassed);
    o.group_recall("g", m2.server_id).await.expect("the owner recalls at any time");
    let h = b.group_catch_up("g", 0).await.unwrap();
    assert!(h.iter().all(|m| m.recalled && m.body.is_empty()), "tombstones in history: {h:?}");
    let m3 = a.send_group_message("g", "c3", 1, b"three", None).await.unwrap();
    assert_eq!(entry(&b).await.unread, 1, "recalled messages are not unread");
    // Also when the list is read again after a restart.
    drop((o, a, b));
    let dir = s.stop().await.unwrap();
    let s = TestServer::start_in(dir.path(), |c| c.apps[0].recall_window_secs = 1).await;
    let b = s.user("b").await;
    let e = entry(&b).await;
    assert_eq!((e.unread, e.last_message.map(|m| m.seq)), (1, Some(m3.seq)));
    drop(dir);
}

#[tokio::test]
async fn read_receive_acks_receipts_and_the_conversation_list() {
    let s = TestServer::start().await;
    s.import(&["o", "a", "b"]).await;
    let o = s.user("o").await;
    group(&s, &o, "g", &["a", "b"]).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    for i in 0..4 {
        o.send_group_message("g", &format!("c{i}"), 1, b"x", None).await.unwrap();
    }
    a.send_group_message("g", "mine", 1, b"mine", None).await.unwrap();
    let e = entry(&b).await;
    assert_eq!((e.unread, e.last_message.as_ref().map(|m| m.seq)), (5, Some(5)));
    assert_eq!(entry(&a).await.unread, 0, "my own message reads everything before it");
    b.group_read("g", 3).await.unwrap();
    assert_eq!(entry(&b).await.unread, 2);
    b.group_receive_ack("g", 4).await.unwrap();
    let r = o.group_receipts("g", 4).await.unwrap();
    assert_eq!((r.members, r.received, r.read), (2, 2, 1), "{r:?}");
    assert_eq!(r.read_by, Some(vec!["a".to_string()]));
    let mut got = r.received_by.unwrap();
    got.sort();
    assert_eq!(got, ["a", "b"]);
    let r = o.group_receipts("g", 3).await.unwrap();
    assert_eq!((r.received, r.read), (2, 2));
    assert_eq!(code(o.group_receipts("g", 99).await), ErrorCode::MessageNotFound);
    // Read survives a restart, on both sides (the list and the receipts).
    drop((o, a, b));
    let dir = s.stop().await.unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let (o, b) = (s.user("o").await, s.user("b").await);
    let e = entry(&b).await;
    assert_eq!((e.read_seq, e.unread), (3, 2));
    assert_eq!(o.group_receipts("g", 3).await.unwrap().read, 2);
    drop(dir);
}

async fn entry(c: &Client) -> imserver::client::Conversation {
    let page = c.conversations(0, 100, None).await.unwrap();
    page.conversations.into_iter().find(|c| c.peer == "g").expect("the group is in my list")
}

/// A member who was offline catches up the documented way: sync the Conversations and
/// JoinedGroups streams to learn the groups and their last seq, then page each group's
/// messages after the last seq it has. Nothing was written per member per message.
#[tokio::test]
async fn an_offline_member_catches_up_by_the_documented_sync() {
    let s = TestServer::start().await;
    s.import(&["o", "off"]).await;
    let o = s.user("o").await;
    group(&s, &o, "g1", &["off"]).await;
    group(&s, &o, "g2", &["off"]).await;
    let off = s.user("off").await;
    let groups = off.sync(SyncStream::JoinedGroups, 0, 100, None).await.unwrap();
    let mut ids: Vec<String> = groups.items.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["g1", "g2"]);
    drop(off);
    for i in 0..30 {
        let g = if i % 3 == 0 { "g2" } else { "g1" };
        o.send_group_message(g, &format!("c{i}"), 1, format!("{i}").as_bytes(), None).await.unwrap();
    }
    let off = s.user("off").await;
    let messages = off.sync(SyncStream::Messages, 0, 100, None).await.unwrap();
    assert!(messages.items.is_empty(), "no per-member stream entry per group message");
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    let convs = off.conversations(0, 100, None).await.unwrap();
    for c in convs.conversations {
        let last = c.last_message.as_ref().map_or(0, |m| m.seq);
        let got = off.group_catch_up(&c.peer, c.read_seq).await.unwrap();
        assert_eq!(got.last().map(|m| m.seq), Some(last), "{}", c.peer);
        seen.insert(c.peer.clone(), got.iter().map(|m| m.seq).collect());
    }
    assert_eq!(seen["g1"], (1..=20).collect::<Vec<u64>>());
    assert_eq!(seen["g2"], (1..=10).collect::<Vec<u64>>());
}

/// What a group message stores: one message, its id index and its idempotency record,
/// whatever the group's size; no key per member.
#[tokio::test]
async fn a_group_message_costs_the_same_keys_whatever_the_group_size() {
    let s = TestServer::start().await;
    let users: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    s.import(&refs).await;
    let o = s.user("u0").await;
    group(&s, &o, "big", &refs[1..300]).await;
    group(&s, &o, "small", &refs[1..3]).await;
    // Members online: they get pushes, which must not be writes either.
    let mut online = Vec::new();
    for u in &refs[1..40] {
        online.push(s.user(u).await);
    }
    drop(o);
    let counts = |dir: &std::path::Path| {
        let store = imserver::store::Store::open(dir).unwrap();
        store.key_counts().unwrap().into_iter().collect::<HashMap<_, _>>()
    };
    drop(online);
    let dir = s.stop().await.unwrap();
    let before = counts(dir.path());
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let o = s.user("u0").await;
    let mut online = Vec::new();
    for u in &refs[1..40] {
        online.push(s.user(u).await);
    }
    for g in ["big", "small"] {
        for i in 0..50 {
            o.send_group_message(g, &format!("{g}-{i}"), 1, b"x", None).await.unwrap();
        }
    }
    drop((o, online));
    s.stop().await;
    let after = counts(dir.path());
    for (cf, n) in &after {
        let grew = n - before[cf];
        let want = match *cf {
            "msgs" | "msg_ids" | "idem" => 100,
            _ => 0,
        };
        assert_eq!(grew, want, "keys added to {cf} by 100 group messages");
    }
    drop(dir);
}

/// A new member's conversation entry never shows a message from before they joined, also
/// when the list is read again after a restart.
#[tokio::test]
async fn a_new_members_entry_hides_what_came_before_the_join() {
    let s = TestServer::start().await;
    s.import(&["o", "late"]).await;
    let o = s.user("o").await;
    group(&s, &o, "g", &[]).await;
    for i in 0..3 {
        o.send_group_message("g", &format!("c{i}"), 1, b"before", None).await.unwrap();
    }
    o.add_group_members("g", &["late"], false).await.unwrap();
    let late = s.user("late").await;
    let e = entry(&late).await;
    assert_eq!((e.unread, e.last_message.is_none()), (0, true), "{e:?}");
    drop((o, late));
    let dir = s.stop().await.unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let late = s.user("late").await;
    let e = entry(&late).await;
    assert_eq!((e.unread, e.last_message.is_none()), (0, true), "after a restart: {e:?}");
    drop(dir);
}

/// Past `limits.group_members_per_shard`, idle groups leave memory; read again, they go on
/// where they were: seqs continue, members, mutes and history are intact.
#[tokio::test]
async fn evicted_groups_come_back_as_they_were() {
    let s = TestServer::start_with(|c| c.limits.group_members_per_shard = 6).await;
    s.import(&["o", "a", "b"]).await;
    let o = s.user("o").await;
    for g in 0..6 {
        group(&s, &o, &format!("g{g}"), &["a", "b"]).await;
        o.send_group_message(&format!("g{g}"), "first", 1, b"1", None).await.unwrap();
    }
    o.mute_group_members("g0", &["b"], 3600).await.unwrap();
    // Two ticks: the least recently used groups are dropped once their writes are durable.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for g in 0..6 {
        let id = format!("g{g}");
        let ack = o.send_group_message(&id, "second", 1, b"2", None).await.unwrap();
        assert_eq!(ack.seq, 2, "{id}: the seq goes on");
        assert!(
            o.send_group_message(&id, "first", 1, b"1", None).await.unwrap().duplicate,
            "{id}: retries still known"
        );
        let (_, members) = o.get_group(&id).await.unwrap();
        assert_eq!(members.len(), 3);
    }
    let b = s.user("b").await;
    assert_eq!(code(b.send_group_message("g0", "x", 1, b"x", None).await), ErrorCode::MemberMuted);
    assert_eq!(b.group_catch_up("g5", 0).await.unwrap().len(), 2);
}
