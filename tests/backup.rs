//! Online backup: taken from a live server under one-to-one load (over HTTP, the binary
//! protocol and `imctl`), a backup started as a data directory gives back every change
//! acknowledged before the backup began, with no holes; the server serves on meanwhile; bad
//! names, a name taken, and ordinary users are refused with typed errors.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

mod common;
use common::http::{client, ok, post};
use common::{whole_history, TestServer, APP, SECRET};

const PAIRS: usize = 4;

fn code(e: &imserver::client::ClientError) -> Option<imserver::protocol::wire::ErrorCode> {
    e.code()
}

/// One sender's acks: (seq, when the ack arrived).
type Acks = Arc<Mutex<Vec<(u64, Instant)>>>;

#[tokio::test]
async fn a_backup_under_load_restores_everything_acknowledged_before_it_began() {
    let backups = tempfile::tempdir().unwrap();
    let root = backups.path().join("b");
    let s = TestServer::start_with({
        let root = root.clone();
        move |c| c.backup_dir = root
    })
    .await;
    let users: Vec<String> = (0..PAIRS).flat_map(|i| [format!("a{i}"), format!("b{i}")]).collect();
    s.import(&users.iter().map(String::as_str).collect::<Vec<_>>()).await;

    // p2p load: each a{i} sends to b{i} as fast as acks come back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut acks: Vec<Acks> = Vec::new();
    let mut senders = Vec::new();
    for i in 0..PAIRS {
        let c = s.user(&format!("a{i}")).await;
        let log: Acks = Arc::default();
        acks.push(log.clone());
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let a = c.send_message(&format!("b{i}"), &format!("m{n}"), 1, b"load", None).await.unwrap();
                log.lock().push((a.seq, Instant::now()));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    let h = client();
    let began = Instant::now();
    let r = ok(&h, &s, "/v1/admin/backup", json!({"name": "under-load"})).await;
    let took = began.elapsed();
    let path = r["path"].as_str().unwrap().to_owned();
    assert_eq!(r["name"], "under-load");
    assert!(r["files"].as_u64().unwrap() > 0 && r["bytes"].as_u64().unwrap() > 0, "{r}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in senders {
        t.await.unwrap();
    }
    let during: usize =
        acks.iter().map(|a| a.lock().iter().filter(|(_, t)| *t > began && *t < began + took).count()).sum();
    eprintln!("backup took {took:?}; {during} sends acknowledged while it ran");

    // The second way in: the binary protocol, and a name already taken.
    let admin = s.admin().await;
    let b2 = admin.backup("").await.unwrap();
    assert!(b2.name.starts_with("backup-"), "{b2:?}");
    let taken = admin.backup("under-load").await.unwrap_err();
    assert_eq!(code(&taken), Some(imserver::protocol::wire::ErrorCode::InvalidArgument));
    drop(admin);

    // The live server still serves.
    let a0 = s.user("a0").await;
    a0.send_message("b0", "after", 1, b"after", None).await.unwrap();

    // A server on the backup: every message acknowledged before the backup began is there,
    // and each conversation is whole from 1 up (a consistent point, not a torn copy).
    let restored = TestServer::start_in(std::path::Path::new(&path), |_| {}).await;
    let admin = restored.admin().await;
    for (i, log) in acks.iter().enumerate() {
        let before: BTreeSet<u64> = log.lock().iter().filter(|(_, t)| *t < began).map(|(seq, _)| *seq).collect();
        assert!(!before.is_empty(), "pair {i} sent before the backup");
        let got: BTreeSet<u64> =
            whole_history(&admin, &format!("b{i}"), &format!("a{i}")).await.unwrap().iter().map(|m| m.seq).collect();
        let top = got.iter().max().copied().unwrap_or(0);
        assert_eq!(got, (1..=top).collect::<BTreeSet<u64>>(), "pair {i}: no holes");
        assert!(before.is_subset(&got), "pair {i}: {} acknowledged before, restored up to {top}", before.len());
        let sent = log.lock().len() as u64;
        assert!(top <= sent, "pair {i}: nothing from after the load ({top} of {sent})");
    }
    for u in &users {
        admin.get_single_user_info(u).await.expect("imported users are in the backup");
    }
    drop(admin);
    restored.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn backups_refuse_bad_names_ordinary_users_and_a_server_without_a_backup_dir() {
    let backups = tempfile::tempdir().unwrap();
    let s = TestServer::start_with({
        let root = backups.path().to_path_buf();
        move |c| c.backup_dir = root
    })
    .await;
    let h = client();
    for bad in ["../escape", "a/b", ".hidden", "with space"] {
        let (status, v) = post(&h, &s, "/v1/admin/backup", json!({"name": bad})).await;
        assert_eq!((status, v["error"].as_str()), (400, Some("InvalidArgument")), "{bad}: {v}");
    }
    let (status, v) = post(&h, &s, "/v1/admin/backup", json!({"name": 7})).await;
    assert_eq!(status, 400, "a name that is not a string: {v}");
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0, "nothing written");
    s.import(&["alice"]).await;
    let alice = s.user("alice").await;
    let e = alice.backup("mine").await.unwrap_err();
    assert_eq!(code(&e), Some(imserver::protocol::wire::ErrorCode::PermissionDenied));

    // imctl admin backup, the operator's way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imctl"))
        .args(["--addr", &s.addr, "--app", &APP.to_string(), "--secret", SECRET, "--json"])
        .args(["admin", "backup", "--name", "from-imctl"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "from-imctl");
    assert!(backups.path().join("from-imctl").join("CURRENT").exists(), "a RocksDB directory");
    s.stop().await;

    let off = TestServer::start().await;
    let admin = off.admin().await;
    let e = admin.backup("x").await.unwrap_err();
    assert_eq!(code(&e), Some(imserver::protocol::wire::ErrorCode::PermissionDenied));
    off.stop().await;
}
