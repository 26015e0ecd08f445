//! Simulated power loss. The real server runs under `strace`, which records every write to
//! and every fdatasync of its WAL files (with timestamps) while three senders send messages
//! and note when each ack arrived. The server is killed with SIGKILL; then every WAL file is
//! cut back to the length it had when its last completed fdatasync began, which is what a
//! machine that lost power keeps in the worst case (unsynced pages gone). The server restarts
//! on what is left and a checker compares it with the acks:
//!
//! - `sync` durability: no acknowledged message is lost.
//! - `wal` durability (`wal_sync_ms = 100`): every message acknowledged before the last
//!   completed WAL sync began is there; only later acks may be missing, and that sync began
//!   within the interval (plus slack for strace's slowdown) of the crash.
//! - control, `wal` with `wal_sync_ms = 0` (never sync): acknowledged messages are lost, which
//!   shows the simulation really drops what was not synced.
//!
//! Needs `strace` (`make test` installs it on Debian; `apt-get install strace`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imserver::auth::ticket;
use imserver::client::{Client, Profile};
use imserver::protocol::wire;

mod common;
use common::{spawn_process, whole_history, write_config, Proc};

const APP: u32 = 1400000013;
const SECRET: &str = "power-secret";
const PAIRS: [(&str, &str); 3] = [("s0", "r0"), ("s1", "r0"), ("s2", "r1")];

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

fn tk(user: &str) -> String {
    ticket::sign(APP as u64, user, SECRET.as_bytes(), now_us() / 1_000_000, 3600)
}

async fn login(addr: &str, user: &str) -> Client {
    let c = Client::connect(addr).await.unwrap();
    c.login(APP, user, &tk(user), wire::ClientType::Ios, "p").await.unwrap();
    c
}

/// What the trace says about one WAL file.
#[derive(Default, Debug)]
struct Wal {
    /// Bytes written (completed writes, in trace order).
    written: u64,
    /// Bytes of writes the kill interrupted (they may or may not have reached the file).
    unfinished: u64,
    /// Bytes covered by the last completed fdatasync: written before that sync began.
    synced: u64,
}

/// What the trace says: each WAL file, and when the last completed WAL sync began (µs).
#[derive(Debug)]
struct Trace {
    wals: HashMap<PathBuf, Wal>,
    last_sync_start_us: u64,
    syncs: usize,
    /// The longest fdatasync seen (µs).
    max_sync_us: u64,
}

fn ts_us(ts: &str) -> u64 {
    let (s, us) = ts.split_once('.').unwrap();
    s.parse::<u64>().unwrap() * 1_000_000 + us.parse::<u64>().unwrap()
}

/// The path in `name(fd</path>, ...`.
fn fd_path(call: &str) -> Option<PathBuf> {
    let open = call.find('(')?;
    let rest = &call[open..];
    let lt = rest.find('<')?;
    let gt = rest[lt..].find('>')?;
    Some(PathBuf::from(&rest[lt + 1..lt + gt]))
}

fn is_wal(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "log")
}

/// Parses `strace -f -ttt -y -s 0` output of write/pwrite64/writev/fdatasync/fsync.
fn parse(trace: &Path) -> Trace {
    struct Pending {
        call: String,
        path: PathBuf,
        start_us: u64,
        /// WAL bytes written when the call began.
        at_start: u64,
        /// Bytes a write asked for (it may have put them in the file even if the kill came
        /// before it returned).
        asked: u64,
    }
    let mut t = Trace { wals: HashMap::new(), last_sync_start_us: 0, syncs: 0, max_sync_us: 0 };
    let mut pending: HashMap<String, Pending> = HashMap::new();
    for line in BufReader::new(std::fs::File::open(trace).unwrap()).lines() {
        let line = line.unwrap();
        // `PID TIMESTAMP CALL...`; strace pads the pid with spaces to a fixed width.
        let Some((pid, r)) = line.trim_start().split_once(' ') else { continue };
        let Some((ts, rest)) = r.trim_start().split_once(' ') else { continue };
        let (p, result) = if let Some(r) = rest.strip_prefix("<... ") {
            let Some(p) = pending.remove(pid) else { continue };
            assert!(r.starts_with(&p.call), "resumed {r} after {}", p.call);
            t.wals.entry(p.path.clone()).or_default().unfinished -= p.asked;
            (p, r.rsplit(" = ").next().unwrap().to_string())
        } else {
            let Some(name) = rest.split('(').next() else { continue };
            let Some(path) = fd_path(rest).filter(|p| is_wal(p)) else { continue };
            let at_start = t.wals.get(&path).map_or(0, |w| w.written);
            let unfinished = rest.strip_suffix(" <unfinished ...>");
            // The arguments: up to `<unfinished ...>` or to `) = RESULT`.
            let args = unfinished.or_else(|| rest.rsplit_once(") = ").map(|(a, _)| a)).unwrap_or(rest);
            let asked = if name.starts_with("write") {
                // writev's size is not on the line: count it as "anything".
                args.rsplit(", ").next().and_then(|n| n.parse().ok()).unwrap_or(1 << 40)
            } else {
                0
            };
            let p = Pending { call: name.to_string(), path, start_us: ts_us(ts), at_start, asked };
            if unfinished.is_some() {
                t.wals.entry(p.path.clone()).or_default().unfinished += asked;
                pending.insert(pid.to_string(), p);
                continue;
            }
            (p, rest.rsplit(" = ").next().unwrap().to_string())
        };
        let result = result.split_whitespace().next().unwrap_or("");
        let w = t.wals.entry(p.path).or_default();
        // `= ?`: the kill came while the call ran. A write may or may not have reached the file.
        if result == "?" {
            w.unfinished += p.asked;
            continue;
        }
        let ok: i64 = result.parse().unwrap_or(-1);
        match p.call.as_str() {
            "write" | "writev" if ok > 0 => w.written += ok as u64,
            "pwrite64" => panic!("a positioned WAL write: this model of the WAL does not hold"),
            "fdatasync" | "fsync" if ok == 0 => {
                w.synced = w.synced.max(p.at_start);
                t.last_sync_start_us = t.last_sync_start_us.max(p.start_us);
                t.max_sync_us = t.max_sync_us.max(ts_us(ts).saturating_sub(p.start_us));
                t.syncs += 1;
            }
            _ => {}
        }
    }
    t
}

/// SIGKILLs a process (by pid) when dropped.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect()
}

/// One run: send under strace, SIGKILL, cut the WALs back to what was synced, restart, check.
/// Returns (acked messages, lost ones acked before the last sync began, lost ones after,
/// µs from the last sync's start to the kill, the longest fdatasync in µs).
async fn run(durability: &str, wal_sync_ms: u64, write_path: &str) -> (usize, usize, usize, u64, u64) {
    // One traced server at a time: the timing check should not measure the other tests.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(
        tmp.path(),
        APP,
        SECRET,
        &format!(
            "shards = 2\ndurability = \"{durability}\"\nwal_sync_ms = {wal_sync_ms}\nwrite_path = \"{write_path}\""
        ),
    );
    let trace = tmp.path().join("strace.out");
    let mut strace = std::process::Command::new("strace");
    strace
        .args(["-f", "-ttt", "-y", "-s", "0", "-e", "trace=write,pwrite64,writev,fdatasync,fsync", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_imserver"))
        .args([
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
    common::contend_if_asked(&mut strace);
    let mut strace = strace.spawn().expect("strace runs (apt-get install strace)");
    let mut line = String::new();
    BufReader::new(strace.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().nth(3).expect("imserver listening on ADDR").to_string();
    let strace_pid = strace.id();
    let strace = Proc(strace);
    let server = children(strace_pid);
    assert_eq!(server.len(), 1, "strace runs one child: {server:?}");
    // Should the test fail early, neither strace nor the server outlives it.
    let server_guard = KillOnDrop(server[0] as i32);

    let admin = login(&addr, "admin").await;
    let users: Vec<Profile> = ["s0", "s1", "s2", "r0", "r1"].iter().map(|u| Profile::new(u)).collect();
    admin.import_users(&users).await.unwrap();
    // Let a sync cover the imports in `wal` mode, so the restarted server knows the users.
    tokio::time::sleep(Duration::from_millis(wal_sync_ms * 3 + 50)).await;

    let mut tasks = Vec::new();
    for (from, to) in PAIRS {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let c = login(&addr, from).await;
            let mut acked: Vec<(String, u64, u64)> = Vec::new();
            for i in 0.. {
                let cid = format!("{from}-{i}");
                match c.send_message(to, &cid, 1, cid.as_bytes(), None).await {
                    Ok(ack) => acked.push((cid, ack.seq, now_us())),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = now_us();
    unsafe { libc::kill(server[0] as i32, libc::SIGKILL) };
    // Killed: its pid must not be signalled again once reaped (it could be reused).
    std::mem::forget(server_guard);
    let mut strace = strace;
    strace.0.wait().unwrap();
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap());
    }

    // Power loss: every WAL file keeps only what its last completed fdatasync covered.
    let t = parse(&trace);
    assert!(!t.wals.is_empty(), "the trace shows no WAL writes");
    // The model holds for one WAL file (no memtable switch in so short a run).
    assert_eq!(t.wals.len(), 1, "more than one WAL file was written: {:?}", t.wals.keys());
    for (path, w) in &t.wals {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(
            w.written <= len && len <= w.written + w.unfinished,
            "{}: the trace accounts for every byte of the WAL ({len} bytes; {} written, {} in doubt)",
            path.display(),
            w.written,
            w.unfinished
        );
        std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(w.synced).unwrap();
        eprintln!("{}: {} bytes written, {} synced", path.display(), w.written, w.synced);
    }

    let (_p, addr): (Proc, String) =
        spawn_process(&["--config", cfg.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let a = login(&addr, "admin").await;
    let (mut total, mut lost_before, mut lost_after) = (0, 0, 0);
    for ((from, to), acked) in PAIRS.iter().zip(&acked) {
        // After the control's power loss the users themselves are gone: nothing stored.
        let stored: HashMap<String, u64> =
            whole_history(&a, to, from).await.unwrap_or_default().into_iter().map(|m| (m.client_id, m.seq)).collect();
        for (cid, seq, at) in acked {
            total += 1;
            if stored.get(cid) != Some(seq) {
                if *at < t.last_sync_start_us {
                    lost_before += 1;
                } else {
                    lost_after += 1;
                }
            }
        }
    }
    let gap = killed_at.saturating_sub(t.last_sync_start_us);
    eprintln!(
        "{durability} wal_sync_ms={wal_sync_ms}: {total} acked, {} WAL syncs, last began {gap} µs before the kill; \
         lost: {lost_before} acked before it, {lost_after} after",
        t.syncs
    );
    (total, lost_before, lost_after, gap, t.max_sync_us)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_in_sync_mode_loses_no_acknowledged_message() {
    let (total, before, after, _, _) = run("sync", 0, "writer").await;
    assert!(total >= 100, "too few messages to tell: {total}");
    assert_eq!((before, after), (0, 0), "acknowledged messages lost in sync mode");
}

/// The same with each shard writing (and fdatasyncing) its own groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_in_sync_mode_with_shards_writing_loses_no_acknowledged_message() {
    let (total, before, after, _, _) = run("sync", 0, "shards").await;
    assert!(total >= 100, "too few messages to tell: {total}");
    assert_eq!((before, after), (0, 0), "acknowledged messages lost in sync mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_in_wal_mode_loses_at_most_the_last_sync_interval() {
    for write_path in ["writer", "shards"] {
        wal_mode_loses_at_most_the_last_sync_interval(write_path).await;
    }
}

async fn wal_mode_loses_at_most_the_last_sync_interval(write_path: &str) {
    let (total, before, _after, gap, max_sync) = run("wal", 100, write_path).await;
    assert!(total >= 100, "too few messages to tell: {total}");
    assert_eq!(before, 0, "messages acknowledged before the last WAL sync were lost");
    // The syncer ran until the crash: its last sync began within the interval (100 ms) plus
    // two of the slowest fdatasyncs seen, plus 300 ms of slack for strace's slowdown.
    let bound = 100_000 + 2 * max_sync + 300_000;
    assert!(gap <= bound, "the last WAL sync began {gap} µs before the crash (bound {bound} µs)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_wal_syncs_a_power_loss_loses_acknowledged_messages() {
    let (total, before, after, _, _) = run("wal", 0, "writer").await;
    assert!(total >= 100, "too few messages to tell: {total}");
    assert!(before + after > 0, "the simulated power loss dropped nothing: it simulates nothing");
}

/// The parser's reading of the three ways strace shows a write the kill interrupted.
#[test]
fn the_trace_parser_counts_writes_cut_by_the_kill_as_in_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t");
    std::fs::write(
        &trace,
        "  101 1.000000 write(5</d/000004.log>, \"\"..., 100) = 100\n\
           101 1.000010 fdatasync(5</d/000004.log>) = 0\n\
           101 1.000020 write(5</d/000004.log>, \"\"..., 30) = 30\n\
           102 1.000030 write(5</d/000004.log>, \"\"..., 40 <unfinished ...>\n\
           101 1.000040 write(7</d/other.sst>, \"\"..., 999) = 999\n\
           102 1.000050 <... write resumed>) = ?\n\
           103 1.000060 write(5</d/000004.log>, \"\"..., 50) = ?\n\
           104 1.000070 write(5</d/000004.log>, \"\"..., 60 <unfinished ...>\n\
           102 1.000080 +++ killed by SIGKILL +++\n",
    )
    .unwrap();
    let t = parse(&trace);
    let w = &t.wals[Path::new("/d/000004.log")];
    assert_eq!((w.written, w.synced, w.unfinished), (130, 100, 40 + 50 + 60));
    assert_eq!((t.syncs, t.last_sync_start_us), (1, 1_000_010));
    assert_eq!(t.wals.len(), 1, "only .log files are WALs");
}
