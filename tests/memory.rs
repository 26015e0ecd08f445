//! Memory after abuse: the real server process is abused in rounds (half-sent large frames,
//! slowloris connections before login, oversized and garbage frames, a flooding connection,
//! a client that never reads), all of it is closed, and the server's resident memory must come
//! back to where it was after the first (warm-up) round. A leak of what a connection holds
//! (its read buffer, its outbox, a session entry) grows by megabytes per round and fails this.

use std::time::Duration;

use bytes::Bytes;
use imserver::auth::ticket;
use imserver::client::{Client, Profile};
use imserver::protocol::{self, wire};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{now_secs, spawn_process, write_config};

const APP: u32 = 1400000011;
const SECRET: &str = "memory-secret";
const PARTIAL: usize = 300;
const SLOWLORIS: usize = 300;
const OVERSIZED: usize = 100;

fn tk(user: &str) -> String {
    ticket::sign(APP as u64, user, SECRET.as_bytes(), now_secs(), 3600)
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server is running");
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn login_frame(user: &str, device: &str) -> Bytes {
    protocol::client_frame(1, |fbb| protocol::login_req(fbb, APP, user, &tk(user), wire::ClientType::Android, device))
}

/// A raw connection logged in as `user` (its login answer read), for writing bytes the SDK
/// would never write.
async fn raw_login(addr: &str, user: &str, device: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&login_frame(user, device)).await.unwrap();
    loop {
        let n = s.read_u32().await.unwrap() as usize;
        let mut body = vec![0; n];
        s.read_exact(&mut body).await.unwrap();
        let f = protocol::decode_server(&body).unwrap();
        if f.response_as_login_resp().is_some() {
            return s;
        }
        assert!(f.response_as_error().is_none(), "login refused");
    }
}

async fn user(addr: &str, id: &str) -> Client {
    let c = Client::connect(addr).await.unwrap();
    c.login(APP, id, &tk(id), wire::ClientType::Ios, "p").await.unwrap();
    c
}

/// One round of abuse; returns the server's peak RSS seen while it was all open.
async fn abuse(addr: &str, pid: u32, round: usize) -> u64 {
    let mut held = Vec::new();
    // Logged-in connections that send most of a 60 KB frame and stop.
    for i in 0..PARTIAL {
        // 40 users, each connection its own device (at most 8 per user: none is kicked).
        let mut s = raw_login(addr, &format!("p{}", i % 40), &format!("d{i}")).await;
        let mut v = 61_440u32.to_be_bytes().to_vec();
        v.extend(std::iter::repeat_n(0xab, 60_000));
        s.write_all(&v).await.unwrap();
        held.push(s);
    }
    // Slowloris before login: two bytes of a length prefix, then nothing.
    for _ in 0..SLOWLORIS {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[0, 0]).await.unwrap();
        held.push(s);
    }
    // Oversized lengths: answered with an error and closed by the server.
    for _ in 0..OVERSIZED {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        held.push(s);
    }
    // Garbage frames on a logged-in connection, then a flood that gets it kicked.
    let mut g = raw_login(addr, "flood", "f").await;
    let mut junk = Vec::new();
    for i in 0..2000u32 {
        junk.extend_from_slice(&40u32.to_be_bytes());
        junk.extend(std::iter::repeat_n((i % 251) as u8, 40));
    }
    let _ = g.write_all(&junk).await;
    let ping = protocol::client_frame(9, |fbb| {
        let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
        (wire::Request::PingReq, p.as_union_value())
    });
    let flood: Vec<u8> = (0..3000).flat_map(|_| ping.iter().copied()).collect();
    let _ = g.write_all(&flood).await;
    held.push(g);
    // A receiver that never reads while messages pile up for it: closed as a slow consumer.
    let sink = raw_login(addr, "sink", "s").await;
    held.push(sink);
    let sender = user(addr, "sender").await;
    let body = vec![b'm'; 200];
    for i in 0..2000 {
        let id = format!("r{round}-{i}");
        if let Err(e) = sender.send_message("sink", &id, 1, &body, None).await {
            panic!("round {round}: send {i} failed: {e:?}");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = rss_kb(pid);
    drop(held);
    drop(sender);
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_to_its_level_after_rounds_of_abuse() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        APP,
        SECRET,
        "shards = 2\ndurability = \"wal\"\n[limits]\nrequests_per_sec = 20000\nrequest_burst = 1000\n\
         rate_limit_strikes = 500\noutbound_queue = 256",
    );
    let data = tmp.path().join("data");
    let (p, addr) = spawn_process(&["--config", cfg.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let pid = p.0.id();
    let admin = user(&addr, "admin").await;
    let mut ids: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    ids.extend(["flood", "sink", "sender", "alice", "bob"].map(String::from));
    let profiles: Vec<Profile> = ids.iter().map(|u| Profile::new(u)).collect();
    admin.import_users(&profiles).await.unwrap();
    let alice = user(&addr, "alice").await;
    let settle = || tokio::time::sleep(Duration::from_secs(2));

    let start = rss_kb(pid);
    let warm_peak = abuse(&addr, pid, 0).await;
    settle().await;
    let baseline = rss_kb(pid);
    eprintln!("rss: start {start} KB, warm-up peak {warm_peak} KB, baseline after warm-up {baseline} KB");
    let (mut after, mut reference) = (baseline, baseline);
    for round in 1..=3 {
        let peak = abuse(&addr, pid, round).await;
        settle().await;
        after = rss_kb(pid);
        eprintln!("round {round}: peak {peak} KB, after {after} KB");
        if round == 1 {
            // The reference level is the higher of the two after warm-up and round 1: whether
            // the allocator has handed a round's freed memory back to the system when a
            // sample is taken varies (from 43 to 69 MB after the same warm-up, on this build
            // and on older ones), so one sample alone made the test flaky. A leak still shows:
            // it grows by a round's worth (~18 MB) from round 1 to round 3, twice.
            reference = baseline.max(after);
        }
        // Others are served normally after each round.
        let ack = alice.send_message("bob", &format!("ok{round}"), 1, b"still here", None).await.unwrap();
        assert_eq!(ack.seq, round as u64);
    }
    // Three rounds each held ~18 MB of partial frames and a full outbox; what stays is at most
    // a few MB (the memtable holds the 6,000 messages sent meanwhile, ~3 MB with indexes).
    let slack = 12 * 1024 + reference / 10;
    assert!(after <= reference + slack, "RSS grew from {reference} KB to {after} KB over rounds 2 and 3 of abuse");
}
