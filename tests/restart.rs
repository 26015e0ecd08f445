//! Restarts keep every acknowledged change: an in-process graceful restart, and a real
//! `kill -9` of the server process during a burst of writes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use imserver::client::{Client, Profile, ProfileChange};
use imserver::protocol::wire::{self, ErrorCode};

#[tokio::test]
async fn graceful_restart_keeps_users_changes_and_subscriptions() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob", "carol"]).await;
    let a = s.admin().await;
    a.modify_user_info(&ProfileChange {
        user_id: Some("alice".into()),
        nickname: Some("Renamed".into()),
        silent: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    a.delete_users(&["carol"]).await.unwrap();
    let bob = s.user("bob").await;
    bob.subscribe_status(&["alice"], 600).await.unwrap();
    drop((a, bob));
    let dir = s.dir.clone();
    let keep = s.stop().await;

    let s = TestServer::start_in(&dir, |_| {}).await;
    let a = s.admin().await;
    let alice = a.get_single_user_info("alice").await.unwrap();
    assert_eq!((alice.nickname.as_str(), alice.silent), ("Renamed", true));
    assert!(a.get_single_user_info("carol").await.unwrap().deleted);
    // The subscription survived: bob hears alice come online.
    let mut bob = s.user("bob").await;
    let _alice = s.user("alice").await;
    let seen = bob
        .wait_push(WAIT, |f| {
            f.get().event_as_status_changed_push().and_then(|p| p.status()).filter(|st| st.online()).map(|_| ())
        })
        .await;
    assert!(seen.is_some());
    drop(keep);
}

/// The real `imserver` binary on `dir` with config `cfg`, in `sync` mode.
fn spawn_server(dir: &std::path::Path, cfg: &std::path::Path) -> (Proc, String) {
    spawn_process(&["--config", cfg.to_str().unwrap(), "--data", dir.to_str().unwrap(), "--durability", "sync"])
}

#[tokio::test]
async fn kill_9_during_a_burst_loses_no_acknowledged_user() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), APP, SECRET, "shards = 2");
    let (mut proc_, addr) = spawn_server(&data, &cfg);

    // Four writers import users one at a time and record every acknowledged one.
    let mut writers = Vec::new();
    for w in 0..4 {
        let addr = addr.clone();
        writers.push(tokio::spawn(async move {
            let c = Client::connect(&addr).await.unwrap();
            c.login(APP, "admin", &ticket_for(APP, "admin", SECRET), wire::ClientType::Backend, &format!("w{w}"))
                .await
                .unwrap();
            let mut acked = Vec::new();
            for i in 0.. {
                let id = format!("w{w}-u{i}");
                match c.import_users(&[Profile { nickname: format!("n{i}"), ..Profile::new(&id) }]).await {
                    Ok(r) if r[0].1 == ErrorCode::None => acked.push(id),
                    Ok(r) => panic!("unexpected outcome {r:?}"),
                    Err(_) => break, // the server died under us
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    proc_.0.kill().unwrap(); // SIGKILL
    proc_.0.wait().unwrap();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    eprintln!("{} users acknowledged before kill -9", acked.len());
    assert!(acked.len() > 10, "the burst was too short to mean anything: {}", acked.len());

    let (_proc2, addr) = spawn_server(&data, &cfg);
    let c = Client::connect(&addr).await.unwrap();
    c.login(APP, "admin", &ticket_for(APP, "admin", SECRET), wire::ClientType::Backend, "check").await.unwrap();
    for chunk in acked.chunks(400) {
        let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let (found, missing) = c.get_user_info(&ids, &[]).await.unwrap();
        assert!(missing.is_empty(), "acknowledged but lost after kill -9: {missing:?}");
        assert_eq!(found.len(), chunk.len());
    }
}

#[tokio::test]
async fn sigterm_closes_clients_with_a_reason_and_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), APP, SECRET, "");
    let (mut p, addr) = spawn_server(&data, &cfg);
    let mut c = Client::connect(&addr).await.unwrap();
    c.login(APP, "admin", &ticket_for(APP, "admin", SECRET), wire::ClientType::Backend, "b").await.unwrap();
    c.import_users(&[Profile::new("zed")]).await.unwrap();
    let pid = p.0.id() as i32;
    assert_eq!(send_signal(pid, 15), 0);
    let reason = c.wait_push(WAIT, kick_reason).await;
    assert_eq!(reason, Some(wire::KickReason::ServerShutdown));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "did not exit in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    // And the data is there after a restart.
    let (_p2, addr) = spawn_server(&data, &cfg);
    let c = Client::connect(&addr).await.unwrap();
    c.login(APP, "zed", &ticket_for(APP, "zed", SECRET), wire::ClientType::Web, "w").await.unwrap();
}

/// Sends a signal with the `kill` command (no libc dependency in tests).
fn send_signal(pid: i32, sig: i32) -> i32 {
    let st = Command::new("kill").args([format!("-{sig}"), pid.to_string()]).status().unwrap();
    st.code().unwrap_or(-1)
}

#[tokio::test]
async fn kill_9_during_a_burst_of_sends_keeps_every_acked_message_once_without_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), APP, SECRET, "shards = 2");
    let (mut proc_, addr) = spawn_server(&data, &cfg);
    {
        let c = Client::connect(&addr).await.unwrap();
        c.login(APP, "admin", &ticket_for(APP, "admin", SECRET), wire::ClientType::Backend, "b").await.unwrap();
        let users: Vec<Profile> = ["s0", "s1", "s2", "s3", "r0", "r1"].iter().map(|u| Profile::new(u)).collect();
        c.import_users(&users).await.unwrap();
    }
    // Four senders, two receivers; each sender keeps sending until the server dies.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let me = format!("s{w}");
            let to = format!("r{}", w % 2);
            let c = Client::connect(&addr).await.unwrap();
            c.login(APP, &me, &ticket_for(APP, &me, SECRET), wire::ClientType::Ios, "p").await.unwrap();
            let mut acked = Vec::new();
            for i in 0.. {
                let cid = format!("{me}-{i}");
                match c.send_message(&to, &cid, 1, cid.as_bytes(), None).await {
                    Ok(a) => acked.push((me.clone(), to.clone(), cid, a.seq, a.server_id)),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    proc_.0.kill().unwrap();
    proc_.0.wait().unwrap();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    eprintln!("{} messages acknowledged before kill -9", acked.len());
    assert!(acked.len() > 20);

    let (_p2, addr) = spawn_server(&data, &cfg);
    let admin = Client::connect(&addr).await.unwrap();
    admin.login(APP, "admin", &ticket_for(APP, "admin", SECRET), wire::ClientType::Backend, "check").await.unwrap();
    for w in 0..4 {
        let (me, to) = (format!("s{w}"), format!("r{}", w % 2));
        // The whole conversation, oldest first.
        let all = whole_history(&admin, &to, &me).await.unwrap();
        let mut seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{me}->{to}: seqs are gap-free");
        // The receiver's conversation entry agrees with the conversation (entries are written
        // behind and re-derived at load).
        let list = admin.conversations(0, 100, Some(&to)).await.unwrap();
        let entry = list.conversations.iter().find(|c| c.peer == me).expect("a conversation entry");
        assert_eq!(entry.last_message.as_ref().map(|m| m.seq), Some(seqs.len() as u64), "{to}'s entry for {me}");
        for (_, _, cid, seq, sid) in acked.iter().filter(|a| a.0 == me) {
            let found: Vec<_> = all.iter().filter(|m| &m.client_id == cid).collect();
            assert_eq!(found.len(), 1, "{cid} present exactly once");
            assert_eq!((found[0].seq, found[0].server_id), (*seq, *sid), "{cid} kept the seq it was acked with");
        }
        // A retry of an acknowledged send after the restart is recognised.
        if let Some((_, _, cid, seq, _)) = acked.iter().find(|a| a.0 == me) {
            let again = admin.send_message(&to, cid, 1, cid.as_bytes(), Some(&me)).await.unwrap();
            assert!(again.duplicate && again.seq == *seq);
        }
    }
    // Each receiver's Messages stream holds every acknowledged message exactly once (deliveries
    // cut off by the kill were re-driven at start-up).
    for r in ["r0", "r1"] {
        let mut ids = Vec::new();
        let mut cursor = 0;
        loop {
            let page = admin.sync(wire::SyncStream::Messages, cursor, 500, Some(r)).await.unwrap();
            ids.extend(page.items.iter().filter_map(|i| i.message.as_ref().map(|m| m.server_id)));
            cursor = page.head_seq;
            if !page.more {
                break;
            }
        }
        let mut uniq = ids.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), ids.len(), "{r}: no duplicates in the stream");
        for (_, _, cid, _, sid) in acked.iter().filter(|a| a.1 == r) {
            assert!(ids.contains(sid), "{r}: acknowledged {cid} missing from the Messages stream");
        }
    }
}
