//! `GET /metrics` over real HTTP against a real server: every metric family is there in the
//! text format, and each count moves when its work is done (a send moves the sent counter and
//! the deliveries, a refused login the login failures, a connection over the limit the
//! refusals, an error its result code, a slow consumer its disconnect and the dropped frames).

use std::collections::HashMap;
use std::time::Duration;

use imserver::protocol::{self, wire};
use tokio::io::AsyncWriteExt;

mod common;
use common::http::{client, get, Http};
use common::{ticket_for, TestServer, APP, SECRET, WAIT};

/// The samples of a scrape: "name{labels}" -> value.
async fn scrape(c: &Http, s: &TestServer) -> HashMap<String, f64> {
    let (status, text) = get(c, s, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {l}"));
            (k.to_owned(), v.parse::<f64>().unwrap_or_else(|_| panic!("a number: {l}")))
        })
        .collect()
}

fn at(m: &HashMap<String, f64>, k: &str) -> f64 {
    m.get(k).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_with_the_work_they_count() {
    let s = TestServer::start_with(|c| {
        c.limits.max_connections = 6;
        c.limits.outbound_queue = 8;
    })
    .await;
    let h = client();
    let before = scrape(&h, &s).await;
    for family in [
        "im_connections_accepted_total",
        "im_connections_open",
        "im_frames_in_total",
        "im_frames_out_total",
        "im_requests_total{op=\"SendMessageReq\"}",
        "im_push_drops_total",
        "im_slow_consumer_disconnects_total",
        "im_commit_group_size_count",
        "im_store_write_seconds_count",
        "im_store_wal_sync_seconds_count",
        "im_shard_busy_seconds_total{shard=\"0\"}",
        "im_shard_inbox_depth{shard=\"1\",from=\"shards\"}",
        "im_store_memtable_bytes",
        "im_store_block_cache_bytes",
        "im_store_pending_compaction_bytes",
        "im_store_write_stopped",
        "im_store_delayed_write_rate",
        "im_hook_events_dropped_total",
    ] {
        assert!(before.contains_key(family), "{family} is exposed: {before:?}");
    }

    let admin = s.admin().await;
    s.import(&["alice", "bob", "slow"]).await;
    let alice = s.user("alice").await;
    let mut bob = s.user("bob").await;
    let ack = alice.send_message("bob", "m1", 1, b"hello", None).await.unwrap();
    bob.wait_push(WAIT, |f| f.get().event_as_message_push().map(|_| ())).await.expect("bob gets the message");
    // An error answer.
    assert!(admin.get_single_user_info("nobody").await.is_err());
    // A refused login.
    let stranger = s.connect().await;
    assert!(stranger.login(APP, "alice", "not-a-ticket", wire::ClientType::Ios, "x").await.is_err());

    let after = scrape(&h, &s).await;
    let moved = |k: &str| at(&after, k) - at(&before, k);
    assert_eq!(moved("im_messages_sent_total{kind=\"c2c\"}"), 1.0, "one message stored (seq {})", ack.seq);
    assert!(moved("im_pushes_total{kind=\"MessagePush\"}") >= 1.0, "delivered to bob's device");
    assert_eq!(moved("im_requests_total{op=\"SendMessageReq\"}"), 1.0);
    assert!(moved("im_answers_total{result=\"ok\"}") >= 2.0);
    assert_eq!(moved("im_answers_total{result=\"UserNotFound\"}"), 1.0);
    assert_eq!(moved("im_logins_total{result=\"BadTicket\"}"), 1.0);
    assert!(moved("im_logins_total{result=\"ok\"}") >= 3.0);
    assert!(moved("im_connections_accepted_total") >= 4.0);
    // admin, alice, bob (and the stranger, until the server has closed it after its login).
    let open = at(&after, "im_connections_open");
    assert!((3.0..=4.0).contains(&open), "{open} connections open");
    assert!(moved("im_frames_in_total") >= 6.0);
    assert!(moved("im_frames_out_total") >= 6.0);
    assert!(moved("im_commit_group_size_count") >= 1.0, "the message's commit");
    assert!(moved("im_store_write_seconds_count") >= 1.0);
    let busy: f64 = (0..2).map(|i| moved(&format!("im_shard_busy_seconds_total{{shard=\"{i}\"}}"))).sum();
    assert!(busy > 0.0, "the shards ran commands");
    assert!(at(&after, "im_http_requests_total{status=\"200\"}") >= 1.0, "the first scrape is counted");

    // Over the connection limit (6): refused with a reason.
    let extra = hold_connections(&s, 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = scrape(&h, &s).await;
    assert!(
        at(&refused, "im_connections_refused_total{reason=\"Limit\"}") >= 1.0,
        "a connection over the limit: {refused:?}"
    );
    drop(extra);

    // A slow consumer: a device that logs in, then never reads while pushes pile up past its
    // queue (8 frames).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut raw = sock.connect(s.addr.parse().unwrap()).await.unwrap();
    let login = protocol::client_frame(1, |fbb| {
        protocol::login_req(fbb, APP, "slow", &ticket_for(APP, "slow", SECRET), wire::ClientType::Web, "stuck")
    });
    raw.write_all(&login).await.unwrap();
    let body = vec![b'x'; 8000];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    loop {
        alice.send_message("slow", &format!("flood-{i}"), 1, &body, None).await.unwrap();
        i += 1;
        if i % 25 == 0 {
            let m = scrape(&h, &s).await;
            if at(&m, "im_slow_consumer_disconnects_total") >= 1.0 {
                assert!(at(&m, "im_push_drops_total") >= 1.0, "frames it could not take are counted");
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the slow consumer is disconnected and counted");
    }
    drop(raw);
    drop(admin);
    s.stop().await;
}

/// Opens `n` raw TCP connections (not logged in) and keeps them.
async fn hold_connections(s: &TestServer, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        let mut c = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
        let _ = c.flush().await;
        v.push(c);
    }
    v
}
