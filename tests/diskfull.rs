//! A full disk: the real server runs with a file-size limit (RLIMIT_FSIZE, with SIGXFSZ
//! ignored), so once its WAL reaches the limit every write fails the way it does on a full
//! disk (EFBIG instead of ENOSPC). Sends then get `StorageUnavailable`, the server keeps
//! answering what needs no write, other connections are not dropped, and after a restart with
//! room every acknowledged message is there and no refused one is.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;

use imserver::auth::ticket;
use imserver::client::{Client, Profile};
use imserver::protocol::wire::{self, ErrorCode};

mod common;
use common::{now_secs, spawn_process, whole_history, write_config, Proc};

const APP: u32 = 1400000015;
const SECRET: &str = "disk-secret";
/// Bytes any one file of the server may grow to.
const FILE_LIMIT: u64 = 1 << 20;

fn tk(user: &str) -> String {
    ticket::sign(APP as u64, user, SECRET.as_bytes(), now_secs(), 3600)
}

async fn login(addr: &str, user: &str) -> Client {
    let c = Client::connect(addr).await.unwrap();
    c.login(APP, user, &tk(user), wire::ClientType::Ios, "p").await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_a_typed_error_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), APP, SECRET, "shards = 2");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_imserver"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: FILE_LIMIT, rlim_max: FILE_LIMIT };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    common::contend_if_asked(&mut cmd);
    let mut child = Proc(cmd.spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().nth(3).expect("imserver listening on ADDR").to_string();

    let admin = login(&addr, "admin").await;
    admin.import_users(&["alice", "bob", "carol"].map(Profile::new)).await.unwrap();
    let alice = login(&addr, "alice").await;
    let carol = login(&addr, "carol").await;
    // Send 2 KB messages until the WAL hits the limit.
    let body = vec![b'x'; 2048];
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut refused = Vec::new();
    for i in 0..2000 {
        let cid = format!("m{i}");
        match alice.send_message("bob", &cid, 1, &body, None).await {
            Ok(a) => {
                assert!(refused.is_empty(), "{cid} acknowledged after a refusal");
                acked.insert(cid, a.seq);
            }
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::StorageUnavailable), "{e:?}");
                refused.push(cid);
                if refused.len() == 20 {
                    break;
                }
            }
        }
    }
    eprintln!("{} messages acknowledged before the file-size limit, then {} refused", acked.len(), refused.len());
    assert!(acked.len() > 100, "the limit came too early: {} acked", acked.len());
    assert_eq!(refused.len(), 20, "the disk never filled: {} acked", acked.len());
    // Other writes are refused too; the connections stay up and answer what needs no write.
    let e = carol.send_message("bob", "c1", 1, b"hi", None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::StorageUnavailable));
    carol.ping().await.unwrap();
    alice.ping().await.unwrap();
    let status = admin.query_online_status(&["alice", "carol"]).await.unwrap();
    assert_eq!(status.len(), 2);
    drop(child);

    // With room again: everything acknowledged is there, once, and nothing refused.
    let (_p, addr): (Proc, String) =
        spawn_process(&["--config", cfg.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let a = login(&addr, "admin").await;
    let mut stored: HashMap<String, u64> = HashMap::new();
    for m in whole_history(&a, "bob", "alice").await.unwrap() {
        assert!(stored.insert(m.client_id, m.seq).is_none(), "a message stored twice");
    }
    assert_eq!(stored, acked, "what is stored is exactly what was acknowledged");
    for cid in &refused {
        assert!(!stored.contains_key(cid), "refused {cid} was stored");
    }
    // And the server takes writes again.
    let alice = login(&addr, "alice").await;
    let ack = alice.send_message("bob", "after", 1, b"room again", None).await.unwrap();
    assert_eq!(ack.seq, acked.len() as u64 + 1);
}
