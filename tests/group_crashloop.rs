//! Crash loop for groups: senders to several groups (members on different shards) with
//! retries by client message id, and a member added and kicked over and over, while the
//! server process is killed with SIGKILL at random moments and restarted with another shard
//! count and durability. Every few cycles (and after the last) a checker on a fresh start
//! verifies that every acknowledged group message is in its group exactly once at its acked
//! seq, that seqs have no gaps, that every member's catch-up by the documented sync (their
//! conversation entry's head, then the group's history after what they have) sees every
//! message once, and that acknowledged membership changes survived on both sides: the
//! group's members and each user's joined-groups list agree.
//!
//! `make test` runs 30 cycles; `IMSERVER_GROUP_CRASH_CYCLES=200` runs a longer one.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imserver::auth::ticket;
use imserver::client::{Client, GroupInfo, Profile};
use imserver::protocol::wire;
use rand::{Rng, SeedableRng};

mod common;
use common::{spawn_process_on, write_config, Contention, Proc};

const APP: u32 = 1400000010;
const SECRET: &str = "group-crash-secret";
const GROUPS: usize = 3;
const MEMBERS: usize = 6;
const ROVERS: usize = 3;

fn spawn(dir: &std::path::Path, cfg: &std::path::Path, cpu: usize) -> (Proc, String) {
    spawn_process_on(&["--config", cfg.to_str().unwrap(), "--data", dir.to_str().unwrap()], Some(cpu))
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

fn member(g: usize, i: usize) -> String {
    format!("g{g}m{i}")
}

/// One sender: acknowledged client ids with their seq, and the one in doubt.
#[derive(Default)]
struct Sender {
    acked: HashMap<String, u64>,
    next: u64,
    in_doubt: Option<String>,
}

/// The rovers joining and leaving group 0: whether each is in, as last acknowledged, and
/// the change in doubt (either outcome is allowed for it).
#[derive(Default, Clone)]
struct Rovers {
    inside: BTreeSet<String>,
    in_doubt: Option<String>,
    step: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_crash_loop_keeps_messages_and_memberships() {
    let cycles: usize = std::env::var("IMSERVER_GROUP_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let seed: u64 = std::env::var("IMSERVER_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let contention = Contention::start(1);
    let cpu = contention.cpu;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(tmp.path(), APP, SECRET, "shards = 2");
    let rovers_ids: Vec<String> = (0..ROVERS).map(|i| format!("rover{i}")).collect();
    {
        let (_p, addr) = spawn(&data, &cfg, cpu);
        let a = Client::connect(&addr).await.unwrap();
        a.login(APP, "admin", &tk("admin"), wire::ClientType::Backend, "b").await.unwrap();
        let mut users: Vec<Profile> =
            (0..GROUPS).flat_map(|g| (0..MEMBERS).map(move |i| Profile::new(&member(g, i)))).collect();
        users.extend(rovers_ids.iter().map(|r| Profile::new(r)));
        a.import_users(&users).await.unwrap();
        for g in 0..GROUPS {
            let info = GroupInfo { group_id: format!("grp{g}"), kind: 1, ..Default::default() };
            let others: Vec<String> = (1..MEMBERS).map(|i| member(g, i)).collect();
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            a.create_group(&info, &others, Some(&member(g, 0))).await.unwrap();
        }
    }
    // Two senders per group: members 0 and 1.
    let mut senders: Vec<Sender> = (0..GROUPS * 2).map(|_| Sender::default()).collect();
    let mut rovers = Rovers::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for cycle in 0..cycles {
        let durability = ["sync", "wal"][(cycle / 3) % 2];
        // Both write paths: one writer thread, or each shard writing its own groups.
        let write_path = ["writer", "shards"][cycle % 2];
        // And sessions on the connection threads, or moved to their users' shard threads.
        let on_shards = (cycle / 2) % 2 == 1;
        let top = format!(
            "shards = {}\ndurability = \"{durability}\"\nwrite_path = \"{write_path}\"\nsessions_on_shards = {on_shards}",
            [2, 3, 1][cycle % 3]
        );
        let cfg = write_config(tmp.path(), APP, SECRET, &top);
        let (mut p, addr) = spawn(&data, &cfg, cpu);
        let mut tasks = Vec::new();
        for (k, st) in senders.iter_mut().enumerate() {
            let mut st = std::mem::take(st);
            let (g, from) = (k / 2, member(k / 2, k % 2));
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let Some(c) = login(&addr, &from).await else { return st };
                loop {
                    let cid = st.in_doubt.clone().unwrap_or_else(|| {
                        st.next += 1;
                        format!("{from}-{}", st.next)
                    });
                    st.in_doubt = Some(cid.clone());
                    match c.send_group_message(&format!("grp{g}"), &cid, 1, cid.as_bytes(), None).await {
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
        // The owner of group 0 adds and kicks the rovers in turn.
        let mut rv = std::mem::take(&mut rovers);
        let (addr2, ids) = (addr.clone(), rovers_ids.clone());
        let rover_task = tokio::spawn(async move {
            let Some(c) = login(&addr2, &member(0, 0)).await else { return rv };
            loop {
                let r = ids[rv.step % ids.len()].clone();
                rv.in_doubt = Some(r.clone());
                let res = if rv.inside.contains(&r) {
                    c.delete_group_members("grp0", &[&r]).await
                } else {
                    c.add_group_members("grp0", &[&r], false).await
                };
                match res {
                    Ok(out) => {
                        assert_eq!(out[0].1, wire::ErrorCode::None, "{out:?}");
                        if !rv.inside.remove(&r) {
                            rv.inside.insert(r);
                        }
                        rv.in_doubt = None;
                        rv.step += 1;
                    }
                    Err(_) => return rv,
                }
            }
        });
        let delay = Duration::from_millis(rng.random_range(20..600));
        tokio::time::sleep(delay).await;
        p.0.kill().unwrap();
        p.0.wait().unwrap();
        for (k, t) in tasks.into_iter().enumerate() {
            senders[k] = t.await.unwrap();
        }
        rovers = rover_task.await.unwrap();
        // A change in doubt: learn its outcome from the group at the next check (below), and
        // settle it so the next cycle starts from a known state.
        if (cycle + 1) % 5 != 0 && cycle + 1 != cycles && rovers.in_doubt.is_none() {
            eprintln!("cycle {cycle}: killed after {delay:?}");
            continue;
        }
        let (_p, addr) = spawn(&data, &cfg, cpu);
        let mut total = 0;
        for g in 0..GROUPS {
            let gid = format!("grp{g}");
            let c = login(&addr, &member(g, 2)).await.unwrap();
            let all = c.group_catch_up(&gid, 0).await.unwrap();
            let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "cycle {cycle}: {gid} gap-free, in order");
            let by_cid: HashMap<&str, u64> = all.iter().map(|m| (m.client_id.as_str(), m.seq)).collect();
            assert_eq!(by_cid.len(), all.len(), "cycle {cycle}: {gid}: a client id stored twice");
            for k in [g * 2, g * 2 + 1] {
                for (cid, seq) in &senders[k].acked {
                    assert_eq!(by_cid.get(cid.as_str()), Some(seq), "cycle {cycle}: acknowledged {cid} lost or moved");
                }
                total += senders[k].acked.len();
            }
            // The documented catch-up from the conversation entry: its head is the group's.
            let convs = c.conversations(0, 100, None).await.unwrap();
            let entry = convs.conversations.iter().find(|e| e.peer == gid).expect("the group is in the member's list");
            assert_eq!(
                entry.last_message.as_ref().map_or(0, |m| m.seq),
                seqs.len() as u64,
                "cycle {cycle}: {gid} head"
            );
        }
        // Memberships: the group's side and each rover's side agree, and match what was
        // acknowledged (the change in doubt may have gone either way).
        let owner = login(&addr, &member(0, 0)).await.unwrap();
        let (_, members) = owner.get_group("grp0").await.unwrap();
        let in_group: BTreeSet<String> =
            members.iter().map(|m| m.user_id.clone()).filter(|u| u.starts_with("rover")).collect();
        let mut expected = rovers.inside.clone();
        if let Some(r) = rovers.in_doubt.take() {
            if in_group.contains(&r) != expected.contains(&r) {
                if !expected.remove(&r) {
                    expected.insert(r);
                }
                rovers.step += 1;
            }
        }
        assert_eq!(in_group, expected, "cycle {cycle}: acknowledged membership changes of grp0");
        rovers.inside = expected;
        for r in &rovers_ids {
            let c = login(&addr, r).await.unwrap();
            let (groups, _, _) = c.joined_groups(0, "", 10, None).await.unwrap();
            let listed = groups.iter().any(|g| g.group_id == "grp0");
            assert_eq!(listed, rovers.inside.contains(r), "cycle {cycle}: {r}'s side of grp0 agrees with the group");
        }
        eprintln!("cycle {cycle}: {total} acknowledged group messages checked, rovers in: {:?}", rovers.inside);
    }
    drop(contention);
}
