//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every input a fuzzer once
//! failed on (`fuzz/regressions/<target>/`) through the same entry points the cargo-fuzz
//! targets call (`imserver::fuzzing`), so `cargo test` and CI run them.
//!
//! The seed corpus is written by the ignored test below (real frames of every operation, as
//! the SDK builds them, captured off a socket); `cargo fuzz` then grows it. See
//! `docs/reliability.md` for the commands.

use std::path::{Path, PathBuf};
use std::time::Duration;

use imserver::client::{Client, Profile, ProfileChange};
use imserver::protocol::wire;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// A target's name and its entry point.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 3] = [
    ("frame_decoder", imserver::fuzzing::frame_decoder),
    ("request", |b| {
        imserver::fuzzing::request(b);
    }),
    ("ticket", imserver::fuzzing::ticket),
];

fn dir(kind: &str, target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target)
}

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir(dir(kind, target)) else { return Vec::new() };
    let mut v: Vec<_> = rd
        .map(|e| e.expect("a readable corpus dir").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).expect("a readable corpus file");
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_committed_corpus_and_regressions_pass_every_property() {
    for (target, run) in TARGETS {
        let corpus = inputs("corpus", target);
        // The seeds alone are dozens per target; an empty corpus means it went missing.
        assert!(corpus.len() >= 20, "fuzz/corpus/{target} holds only {} inputs", corpus.len());
        for (path, bytes) in corpus.iter().chain(inputs("regressions", target).iter()) {
            if let Err(e) = std::panic::catch_unwind(|| run(bytes)) {
                let why =
                    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                panic!("{target}: {} fails: {}", path.display(), why.unwrap_or_default());
            }
        }
    }
}

/// The harness really runs requests: a genuine ping is answered once as a user and once as an
/// administrator; garbage, an empty frame and a truncated one are answered with errors.
#[test]
fn the_request_harness_answers_real_and_broken_requests() {
    let ping = imserver::protocol::client_frame(7, |fbb| {
        let r = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
        (wire::Request::PingReq, r.as_union_value())
    });
    assert_eq!(imserver::fuzzing::request(&ping[4..]), 2);
    assert_eq!(imserver::fuzzing::request(&[0xff; 40]), 2);
    assert_eq!(imserver::fuzzing::request(&[]), 2);
    assert_eq!(imserver::fuzzing::request(&ping[4..ping.len() - 3]), 2);
}

fn save(target: &str, bytes: &[u8]) {
    let d = dir("corpus", target);
    std::fs::create_dir_all(&d).unwrap();
    let name = hex(&Sha256::digest(bytes)[..20]);
    std::fs::write(d.join(name), bytes).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the seed corpus: every request the SDK can build, captured as the bytes it puts on
/// the wire, as `request` inputs (bodies) and `frame_decoder` inputs (streams, each with a
/// chunking byte), plus genuine and broken tickets. Run by hand:
/// `cargo test --release --test fuzz_corpus -- --ignored write_seed_corpus`
#[tokio::test]
#[ignore]
async fn write_seed_corpus() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let capture = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        all
    });
    {
        let mut c = Client::connect(&addr).await.unwrap();
        c.set_timeout(Duration::from_millis(20));
        let ticket = imserver::auth::ticket::sign(1400000000, "alice", b"k", 1_800_000_000, 86400);
        let _ = c.login(1400000000, "alice", &ticket, wire::ClientType::Android, "phone").await;
        let _ = c.ping().await;
        let p = Profile { user_id: "bob".into(), nickname: "Bob".into(), extra: "{}".into(), ..Default::default() };
        let _ = c.import_users(&[p.clone(), Profile { user_id: "carol".into(), ..p }]).await;
        let _ = c.delete_users(&["bob", "carol"]).await;
        let _ = c.get_user_info(&["bob", "carol"], &[wire::UserField::Nickname, wire::UserField::Extra]).await;
        let _ = c.get_user_info(&["bob"], &[]).await;
        let _ = c.get_single_user_info("bob").await;
        let ch =
            ProfileChange { nickname: Some("A".into()), gender: Some(1), silent: Some(true), ..Default::default() };
        let _ = c.modify_user_info(&ch).await;
        let _ = c
            .modify_user_info(&ProfileChange {
                user_id: Some("bob".into()),
                forbidden: Some(true),
                ..Default::default()
            })
            .await;
        let _ = c.query_online_status(&["bob", "carol"]).await;
        let _ = c.subscribe_status(&["bob"], 60).await;
        let _ = c.unsubscribe_status(&["bob"]).await;
        for s in [wire::SyncStream::Messages, wire::SyncStream::Conversations, wire::SyncStream::Friends] {
            let _ = c.sync(s, 3, 100, None).await;
        }
        let _ = c.sync(wire::SyncStream::Blacklist, 0, 10, Some("bob")).await;
        let _ = c.send_message("bob", "c1", 1, b"hello", None).await;
        let _ = c.send_message("bob", "c2", 2, &[0u8; 300], Some("carol")).await;
        let _ = c.receive_ack("bob", 1 << 40, 5).await;
        let _ = c.read("bob", 9).await;
        let _ = c.recall("bob", 1 << 40, None).await;
        let _ = c.recall("bob", 1 << 40, Some("carol")).await;
        let _ = c.get_messages(&[1, 2, 3], None).await;
        let _ = c.history("bob", 100, 0, 20, None).await;
        let _ = c.history("bob", 0, 5, 20, Some("carol")).await;
        let _ = c.conversations(0, 50, None).await;
        let _ = c.update_conversation("bob", Some(true), None).await;
        let _ = c.update_conversation("bob", None, Some(false)).await;
        let _ = c.delete_conversation("bob", false).await;
        let _ = c.delete_conversation("bob", true).await;
        let _ = c.add_friend("bob", "hi", "search", "Bobby").await;
        let _ = c.delete_friend("bob").await;
        let _ = c.delete_all_friends().await;
        let _ = c.update_friend("bob", Some("B"), Some("x")).await;
        let _ = c.get_relation("bob").await;
        let _ = c.check_relations(&["bob", "carol"], true, false).await;
        let _ = c.check_relations(&["bob"], false, true).await;
        let _ = c.get_friends(0, 100).await;
        let _ = c.add_black("bob").await;
        let _ = c.delete_black("bob").await;
        let _ = c.friend_requests().await;
        let _ = c.answer_friend_request(3, true).await;
        let _ = c.answer_friend_request(4, false).await;
        let _ = c.read_all_friend_requests().await;
        for op in ["create", "add", "remove", "delete"] {
            let _ = c.friend_group(op, "work", &["bob", "carol"]).await;
        }
        let _ = c.friend_groups().await;
        let _ = c.logout().await;
    }
    let stream = capture.await.unwrap();
    // Split the stream into frames.
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 4 <= stream.len() {
        let n = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        frames.push(stream[at..at + 4 + n].to_vec());
        at += 4 + n;
    }
    assert!(frames.len() >= 40, "captured only {} frames", frames.len());
    for (i, f) in frames.iter().enumerate() {
        save("request", &f[4..]);
        // The login frame alone, then each frame after it, chunked in each of 4 ways.
        let mut s = vec![(i % 4) as u8 | ((i as u8) << 2)];
        s.extend_from_slice(&frames[0]);
        if i > 0 {
            s.extend_from_slice(f);
        }
        save("frame_decoder", &s);
    }
    // A whole session in one stream, a truncated one, and an oversized length.
    for seed in 0..4u8 {
        let mut s = vec![seed];
        s.extend_from_slice(&stream);
        save("frame_decoder", &s);
        save("frame_decoder", &s[..s.len() / 2]);
    }
    save("frame_decoder", &[1, 0, 0, 0x10, 1, 0]);
    save("frame_decoder", &[0, 0, 0, 0, 0]);
    // Tickets: genuine ones (as text), and seeds for the mint-and-mutate half.
    for (i, user) in ["alice", "bob", "a-much-longer-user-id_with.punctuation@x", "用户"].iter().enumerate() {
        let t = imserver::auth::ticket::sign(1400000000, user, b"k", 1_700_000_000 + i as u64, 86400);
        save("ticket", t.as_bytes());
        let mut m = (i as u64 * 0x9e37_79b9_7f4a_7c15).to_le_bytes().to_vec();
        m.extend_from_slice(user.as_bytes());
        save("ticket", &m);
    }
    for junk in ["", "*", "eJw_", "eJyrVgpJLS5RslJQSk"] {
        save("ticket", junk.as_bytes());
    }
    for i in 0..16u64 {
        let mut m = (i.wrapping_mul(0x2545_f491_4f6c_dd1d)).to_le_bytes().to_vec();
        m.extend_from_slice(format!("user{i}").as_bytes());
        save("ticket", &m);
    }
}
