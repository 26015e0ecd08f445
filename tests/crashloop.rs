//! Crash loop: senders with retries by client message id; the server process is killed with
//! SIGKILL at random moments and restarted, several times. After every cycle a checker
//! verifies that every acknowledged message is present exactly once with the seq it was acked
//! with, that per-conversation seqs have no gaps, and that each receiver's conversation entry
//! agrees with the conversation. CI runs 3 cycles; `IMSERVER_CRASH_CYCLES=50 cargo test
//! --release --test crashloop -- --nocapture` runs a long form.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imserver::auth::ticket;
use imserver::client::{Client, Profile};
use imserver::protocol::wire;
use rand::{Rng, SeedableRng};

mod common;
use common::{spawn_process, whole_history, write_config, Proc};

const APP: u32 = 1400000009;
const SECRET: &str = "crash-secret";

fn spawn(dir: &std::path::Path, cfg: &std::path::Path) -> (Proc, String) {
    spawn_process(&["--config", cfg.to_str().unwrap(), "--data", dir.to_str().unwrap()])
}

fn tk(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    ticket::sign(APP as u64, user, SECRET.as_bytes(), now, 3600)
}

async fn login(addr: &str, user: &str) -> Option<Client> {
    let c = Client::connect(addr).await.ok()?;
    c.login(APP, user, &tk(user), wire::ClientType::Ios, "p").await.ok()?;
    Some(c)
}

/// What one sender knows: acknowledged client ids (with their seq) and the one in doubt.
#[derive(Default)]
struct Sender {
    acked: HashMap<String, u64>,
    next: u64,
    in_doubt: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_keeps_every_acknowledged_message_exactly_once() {
    let cycles: usize = std::env::var("IMSERVER_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), APP, SECRET, "shards = 2");
    let pairs = [("s0", "r0"), ("s1", "r0"), ("s2", "r1")];
    let mut senders: Vec<Sender> = pairs.iter().map(|_| Sender::default()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    {
        let (_p, addr) = spawn(&data, &cfg);
        let a = Client::connect(&addr).await.unwrap();
        a.login(APP, "admin", &tk("admin"), wire::ClientType::Backend, "b").await.unwrap();
        let users: Vec<Profile> = ["s0", "s1", "s2", "r0", "r1"].iter().map(|u| Profile::new(u)).collect();
        a.import_users(&users).await.unwrap();
    }
    for cycle in 0..cycles {
        // The shard count changes from one start to the next (2, 3, 1, ...): deliveries cut
        // off by the kill are found from delivery marks written under the previous count.
        let cfg = write_config(tmp.path(), APP, SECRET, &format!("shards = {}", [2, 3, 1][cycle % 3]));
        let (mut p, addr) = spawn(&data, &cfg);
        // Senders run until the server dies under them; an unanswered send stays in doubt
        // and is retried, with the same client id, in the next cycle.
        let mut tasks = Vec::new();
        for (i, (from, to)) in pairs.iter().enumerate() {
            let mut st = std::mem::take(&mut senders[i]);
            let (addr, from, to) = (addr.clone(), from.to_string(), to.to_string());
            tasks.push(tokio::spawn(async move {
                let Some(c) = login(&addr, &from).await else { return st };
                loop {
                    let cid = match st.in_doubt.clone() {
                        Some(c) => c,
                        None => {
                            st.next += 1;
                            format!("{from}-{}", st.next)
                        }
                    };
                    st.in_doubt = Some(cid.clone());
                    match c.send_message(&to, &cid, 1, cid.as_bytes(), None).await {
                        Ok(ack) => {
                            if let Some(prev) = st.acked.insert(cid.clone(), ack.seq) {
                                assert_eq!(prev, ack.seq, "a retry must return the original seq");
                            }
                            st.in_doubt = None;
                        }
                        Err(_) => return st,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(150..600))).await;
        p.0.kill().unwrap();
        p.0.wait().unwrap();
        for (i, t) in tasks.into_iter().enumerate() {
            senders[i] = t.await.unwrap();
        }
        // Check on a fresh start.
        let (_p, addr) = spawn(&data, &cfg);
        let a = Client::connect(&addr).await.unwrap();
        a.login(APP, "admin", &tk("admin"), wire::ClientType::Backend, "check").await.unwrap();
        let mut total = 0;
        for (i, (from, to)) in pairs.iter().enumerate() {
            let all = whole_history(&a, to, from).await.unwrap();
            let mut seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
            seqs.sort_unstable();
            assert_eq!(
                seqs,
                (1..=seqs.len() as u64).collect::<Vec<_>>(),
                "cycle {cycle}: {from}->{to} gap-free, no duplicates"
            );
            let mut by_cid: HashMap<&str, u64> = HashMap::new();
            for m in &all {
                if m.from == *from {
                    assert!(
                        by_cid.insert(&m.client_id, m.seq).is_none(),
                        "cycle {cycle}: {} stored twice",
                        m.client_id
                    );
                }
            }
            for (cid, seq) in &senders[i].acked {
                assert_eq!(by_cid.get(cid.as_str()), Some(seq), "cycle {cycle}: acknowledged {cid} lost or moved");
            }
            let entry = a.conversations(0, 100, Some(to)).await.unwrap();
            let last_in_conv = seqs.len() as u64;
            let c = entry.conversations.iter().find(|c| c.peer == *from);
            if last_in_conv > 0 {
                assert_eq!(
                    c.and_then(|c| c.last_message.as_ref()).map(|m| m.seq),
                    Some(last_in_conv),
                    "cycle {cycle}: {to}'s entry"
                );
            }
            total += senders[i].acked.len();
        }
        // Both users' Messages streams hold every acknowledged message exactly once.
        for user in ["s0", "s1", "s2", "r0", "r1"] {
            let mut seen: HashMap<(String, String), usize> = HashMap::new();
            let mut cursor = 0;
            loop {
                let page = a.sync(wire::SyncStream::Messages, cursor, 500, Some(user)).await.unwrap();
                for m in page.items.iter().filter_map(|i| i.message.as_ref()) {
                    *seen.entry((m.from.clone(), m.client_id.clone())).or_default() += 1;
                }
                cursor = page.head_seq;
                if !page.more {
                    break;
                }
            }
            if let Some(((from, cid), n)) = seen.iter().find(|(_, n)| **n > 1) {
                panic!("cycle {cycle}: {from}'s {cid} is {n} times in {user}'s Messages stream");
            }
            for (i, (from, to)) in pairs.iter().enumerate() {
                if user != *from && user != *to {
                    continue;
                }
                for cid in senders[i].acked.keys() {
                    assert!(
                        seen.contains_key(&(from.to_string(), cid.clone())),
                        "cycle {cycle}: acknowledged {cid} missing from {user}'s Messages stream"
                    );
                }
            }
        }
        eprintln!("cycle {cycle}: {total} acknowledged messages checked");
    }
}
