//! The load tester itself, in a short form: every scenario runs against a real server and
//! reports what it should (no errors, nothing out of order or lost).

use std::process::Command;

mod common;
use common::{spawn_process, write_config, Proc, APP, SECRET};

/// A server whose per-connection request rate limit is out of the way: a closed loop of a few
/// connections on a fast machine sends more than the default 5,000 requests a second each,
/// and the refusals would count as the generator's errors.
struct Server {
    p: Proc,
    addr: String,
    config: String,
    _dir: tempfile::TempDir,
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), APP, SECRET, "[limits]\nrequests_per_sec = 1000000\nrequest_burst = 1000000");
    let data = dir.path().join("data");
    let config = cfg.to_str().unwrap().to_owned();
    let (p, addr) = spawn_process(&["--data", data.to_str().unwrap(), "--durability", "wal", "--config", &config]);
    Server { p, addr, config, _dir: dir }
}

fn imload(s: &Server, args: &[&str]) -> serde_json::Value {
    let json = tempfile::NamedTempFile::new().unwrap();
    let pid = s.p.0.id().to_string();
    let mut all =
        vec!["--addr", &s.addr, "--config", &s.config, "--server-pid", &pid, "--json", json.path().to_str().unwrap()];
    all.extend_from_slice(args);
    let out = Command::new(env!("CARGO_BIN_EXE_imload")).args(&all).output().unwrap();
    assert!(out.status.success(), "imload {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(json.path()).unwrap()).unwrap()
}

#[test]
fn every_scenario_runs_and_checks_itself() {
    let s = server();

    let r = imload(&s, &["--duration", "1", "--warmup", "0", "p2p", "--pairs", "10", "--window", "4"]);
    let res = &r["results"];
    assert!(res["delivered_in_window"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(res["errors"], 0);
    assert_eq!(res["out_of_order"], 0);
    assert_eq!(res["duplicates"], 0);
    assert_eq!(res["sent_total"], res["delivered_total"], "everything sent was delivered");
    assert!(r["server_cpu_s"].as_f64().is_some(), "server CPU is read from /proc");
    assert!(res["imload_cpu_us_per_msg"].as_f64().is_some_and(|v| v > 0.0), "its own cost: {r}");
    assert!(res["server_wakeups_per_msg"].as_f64().is_some(), "the server's sleeps per message: {r}");
    assert_eq!(res["receive_acks_sent"], res["delivered_total"], "a P2P receiver acks each message");

    // The same on a multi-threaded generator.
    let r = imload(&s, &["--threads", "2", "--duration", "1", "--warmup", "0", "p2p", "--pairs", "4"]);
    assert!(r["results"]["delivered_in_window"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["results"]["errors"], 0);
    assert_eq!(r["results"]["imload_threads"], 2);

    // Groups: every member gets every message in order, and acks cumulatively.
    let r = imload(
        &s,
        &[
            "--duration",
            "1",
            "--warmup",
            "0",
            "fanout",
            "--groups",
            "2",
            "--members",
            "5",
            "--window",
            "4",
            "--ack-ms",
            "20",
        ],
    );
    let res = &r["results"];
    assert_eq!(res["deliveries_per_message"], 4);
    assert_eq!(res["errors"], 0);
    assert_eq!((res["out_of_order"].clone(), res["duplicates"].clone()), (0.into(), 0.into()), "{r}");
    assert_eq!(res["delivered_total"].as_u64().unwrap(), 4 * res["sent_total"].as_u64().unwrap(), "{r}");
    let acks = res["receive_acks_sent"].as_u64().unwrap();
    assert!(acks > 0 && acks < res["delivered_total"].as_u64().unwrap(), "cumulative acks: {r}");

    let r = imload(&s, &["--duration", "1", "--warmup", "0", "p2p", "--pairs", "5", "--rate", "200"]);
    assert_eq!(r["results"]["offered_msgs_per_s"], 200.0);
    assert_eq!(r["results"]["errors"], 0);
    // How late the sends left their schedule: one sample per send of the window.
    let sent = r["results"]["delivered_in_window"].as_u64().unwrap();
    let lag = r["results"]["send_lag"]["count"].as_u64().unwrap();
    assert!(lag > sent / 2 && lag < sent * 2, "send_lag counts {lag} sends for {sent} delivered: {r}");

    let r = imload(&s, &["--duration", "1", "idle", "--connections", "50"]);
    assert!(r["results"]["logins_per_s"].as_f64().unwrap() > 0.0);

    let r = imload(&s, &["catchup", "--messages", "300"]);
    assert_eq!(r["results"]["messages_synced"], 300);

    let r = imload(&s, &["storm", "--connections", "20", "--missed", "3"]);
    assert_eq!(r["results"]["messages_lost"], 0);
}

#[test]
fn registered_users_memory_and_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_imload"))
        .args(["registered", "--users", "2000", "--shards", "2", "--settle", "0.5", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "imload registered failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(r["scenario"], "registered");
    let res = &r["results"];
    assert_eq!(res["users_imported"], 2000, "{r}");
    assert!(res["startup_s"].as_f64().unwrap() > 0.0, "{r}");
    assert!(res["empty_startup_s"].as_f64().unwrap() > 0.0, "{r}");
    for k in ["rss_empty_kib", "rss_after_import_kib", "rss_after_restart_kib"] {
        assert!(res[k].as_u64().unwrap() > 0, "{k}: {r}");
    }
    assert!(res["bytes_per_user"].as_f64().is_some(), "{r}");
    assert!(res["import_users_per_s"].as_f64().unwrap() > 0.0, "{r}");
}
