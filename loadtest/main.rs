//! `imload`: the load tester. It creates its users (admin import), mints tickets, logs in its
//! connections, runs a scenario after a warm-up for a duration with a live progress line, and
//! prints a table (`--json FILE` writes the full report). With `--server-pid` it reports the
//! server's CPU seconds and RSS from /proc, apart from imload's own.
//!
//! Scenarios: `p2p` (closed loop `--window` or open loop `--rate`), `fanout` (groups), `idle`, `catchup`,
//! `storm`, and `registered` (which runs its own server). See docs/performance.md for the
//! commands and results.

mod backend;
mod conn;
mod fanout;
mod frames;
mod p2p;
mod registered;
mod scenarios;
mod stats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use imserver::client::Profile;
use imserver::config::{Config, DEV_SECRET};
use imserver::protocol::wire;
use serde::Serialize;

use conn::Target;
use stats::{Latency, Usage, UsageReport};

#[derive(Parser)]
#[command(version, about = "Load tester for imserver")]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:7700", global = true)]
    addr: String,
    /// Connect with TLS (the server's `[tls]`), checking it against the system's roots or --ca.
    #[arg(long, global = true)]
    tls: bool,
    /// A PEM file of the CAs to trust (implies --tls).
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of --addr).
    #[arg(long, global = true)]
    server_name: Option<String>,
    #[arg(long, default_value_t = 1400000000, global = true)]
    app: u32,
    #[arg(long, default_value = DEV_SECRET, global = true)]
    secret: String,
    /// Read the app id and secret from the server's config file (first app).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// An administrator of the app (to import the load users).
    #[arg(long, default_value = "admin", global = true)]
    admin: String,
    #[arg(long, default_value_t = 10, global = true)]
    duration: u64,
    #[arg(long, default_value_t = 2, global = true)]
    warmup: u64,
    #[arg(long, default_value_t = 200, global = true)]
    payload: usize,
    /// Threads running the load's connections. 1 (the default): one thread does it all, with
    /// no wake-ups across threads, which costs the least CPU per message; more only when one
    /// core cannot generate the load.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// p2p and fanout: also report the delivery rate in each window of this many seconds of
    /// the measurement (`rate_per_window`), to see a long run's rate change as data grows.
    #[arg(long, default_value_t = 10, global = true)]
    window_secs: u64,
    /// The server's pid, to report its CPU time and memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Write the full report as JSON here; with no file (or `-`), as one line on stdout (the
    /// table then goes to stderr).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One-to-one messages between pairs of users.
    P2p {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Closed loop: unacknowledged sends per sender.
        #[arg(long, default_value_t = 32)]
        window: usize,
        /// Open loop: messages per second over all senders (overrides --window).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Group messages: G groups of M members, each member on its own connection, one sender
    /// per group; receivers ack cumulatively. Reports deliveries (one per member reached).
    Fanout {
        #[arg(long, default_value_t = 20)]
        groups: usize,
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Closed loop: unacknowledged sends per sender.
        #[arg(long, default_value_t = 32)]
        window: usize,
        /// Open loop: messages per second over all senders (overrides --window).
        #[arg(long)]
        rate: Option<f64>,
        /// A member acks (cumulatively) once this many messages are unacknowledged, or
        /// --ack-ms after the first of them.
        #[arg(long, default_value_t = 64)]
        ack_every: u64,
        #[arg(long, default_value_t = 100)]
        ack_ms: u64,
    },
    /// Hold many logged-in, heartbeating connections; report memory per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
    },
    /// A user offline while M messages arrive, then logs in and syncs.
    Catchup {
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
    },
    /// All connections drop and reconnect at once, each resyncing what it missed.
    Storm {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Messages each user misses while away.
        #[arg(long, default_value_t = 5)]
        missed: u64,
    },
    /// Server memory and start-up time with N registered (imported, offline) users. Runs the
    /// server itself (the app, secret and admin flags configure it): an empty one for
    /// reference, then one that imports the users, stops (SIGTERM) and restarts.
    Registered(registered::Args),
    /// A tiny app backend that allows every callback (for a server configured with
    /// `[apps.callbacks]` pointing at it); runs until killed.
    HookBackend {
        #[arg(long, default_value = "127.0.0.1:7790")]
        listen: String,
        /// Answer each callback after this long.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

#[derive(Serialize, Default)]
struct Report {
    scenario: String,
    params: serde_json::Value,
    duration_s: f64,
    #[serde(flatten)]
    usage: UsageReport,
    results: serde_json::Value,
}

/// Creates `names` as users of the app (ignoring ones that exist).
async fn import(t: &Target, admin: &str, names: &[String]) -> anyhow::Result<()> {
    let c = t.client().await?;
    c.login(t.app, admin, &t.ticket(admin), wire::ClientType::Backend, "imload-admin").await.context("admin login")?;
    for chunk in names.chunks(500) {
        let users: Vec<Profile> = chunk.iter().map(|n| Profile::new(n)).collect();
        let r = c.import_users(&users).await?;
        if let Some(bad) =
            r.iter().find(|(_, code)| *code != wire::ErrorCode::None && *code != wire::ErrorCode::UserAlreadyExists)
        {
            bail!("importing {}: {:?}", bad.0, bad.1);
        }
    }
    Ok(())
}

fn run_id() -> String {
    format!("{:x}", imserver::now_ms() % 0xffffff)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads).enable_all().build()?
    };
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::HookBackend { listen, delay_ms } = &cli.cmd {
        return backend::run(listen, *delay_ms).await;
    }
    let nofile = stats::raise_nofile();
    let (app, secret) = match &cli.config {
        Some(p) => {
            let cfg = Config::from_toml(&std::fs::read_to_string(p)?).map_err(|e| anyhow::anyhow!(e))?;
            let a = cfg.apps.first().context("the config lists no app")?;
            (a.id.0, a.secret.clone())
        }
        None => (cli.app, cli.secret.clone()),
    };
    let tls = (cli.tls || cli.ca.is_some())
        .then(|| imserver::client::connect::Tls::new(cli.ca.clone(), cli.server_name.clone()));
    let t = Target { addr: cli.addr.clone(), app, secret, tls };
    let run = run_id();
    let mut report = Report::default();
    let mut human = None;
    match cli.cmd {
        Cmd::P2p { pairs, window, rate } => {
            report.scenario = "p2p".into();
            report.params = serde_json::json!({"pairs": pairs, "window": window, "rate": rate, "payload": cli.payload, "warmup_s": cli.warmup});
            if 2 * pairs + 100 > nofile as usize {
                bail!("{} connections need more open files than the limit {nofile}", 2 * pairs);
            }
            let senders: Vec<String> = (0..pairs).map(|i| format!("ld{run}s{i}")).collect();
            let receivers: Vec<String> = (0..pairs).map(|i| format!("ld{run}r{i}")).collect();
            import(&t, &cli.admin, &[senders.clone(), receivers.clone()].concat()).await?;
            let opts = p2p::Opts {
                pairs,
                window: window.max(1),
                rate,
                payload: cli.payload,
                group: false,
                ack_every: 1,
                ack_ms: 0,
            };
            let load =
                Load { senders: senders.into_iter().zip(receivers.iter().cloned()).collect(), receivers, fan: 1 };
            drive(&cli, &t, opts, load, &mut report).await?;
        }
        Cmd::Fanout { groups, members, window, rate, ack_every, ack_ms } => {
            report.scenario = "fanout".into();
            report.params = serde_json::json!({"groups": groups, "members": members, "window": window, "rate": rate, "ack_every": ack_every, "ack_ms": ack_ms, "payload": cli.payload, "warmup_s": cli.warmup});
            if groups * members + 100 > nofile as usize {
                bail!("{} connections need more open files than the limit {nofile}", groups * members);
            }
            let (senders, receivers) = fanout::setup(&t, &cli.admin, &run, groups, members.max(2)).await?;
            let opts = p2p::Opts {
                pairs: groups,
                window: window.max(1),
                rate,
                payload: cli.payload,
                group: true,
                ack_every: ack_every.max(1),
                ack_ms,
            };
            let load = Load { senders, receivers, fan: members.max(2) as u64 - 1 };
            drive(&cli, &t, opts, load, &mut report).await?;
        }
        Cmd::Idle { connections } => {
            report.scenario = "idle".into();
            report.params = serde_json::json!({"connections": connections});
            if connections + 100 > nofile as usize {
                bail!("{connections} connections need more open files than the limit {nofile}");
            }
            let users: Vec<String> = (0..connections).map(|i| format!("ld{run}i{i}")).collect();
            import(&t, &cli.admin, &users).await?;
            let before = cli.server_pid.and_then(|p| stats::memory_kib(&p.to_string()));
            let usage = Usage::start(cli.server_pid);
            let stop = Arc::new(AtomicBool::new(false));
            let (tasks, took) = scenarios::hold(&t, &users, 256, Duration::from_secs(20), stop.clone()).await?;
            tokio::time::sleep(Duration::from_secs(cli.duration)).await;
            report.usage = usage.finish();
            let after = cli.server_pid.and_then(|p| stats::memory_kib(&p.to_string()));
            stop.store(true, Ordering::Relaxed);
            for task in tasks {
                let _ = task.await;
            }
            report.duration_s = cli.duration as f64;
            let per_conn = match (before, after) {
                (Some(b), Some(a)) => Some((a.0.saturating_sub(b.0)) as f64 * 1024.0 / connections as f64),
                _ => None,
            };
            report.results = serde_json::json!({
                "logins_per_s": connections as f64 / took.as_secs_f64(),
                "login_wall_s": took.as_secs_f64(),
                "server_rss_before_kib": before.map(|b| b.0),
                "server_rss_after_kib": after.map(|a| a.0),
                "server_bytes_per_connection": per_conn,
            });
        }
        Cmd::Catchup { messages } => {
            report.scenario = "catchup".into();
            report.params = serde_json::json!({"messages": messages, "payload": cli.payload});
            // The messages come from several senders (friends writing to one offline user),
            // each within a connection's request budget (`limits.request_burst`, 10,000).
            let to = format!("ld{run}cr");
            let senders = messages.div_ceil(4000).max(1);
            let froms: Vec<String> = (0..senders).map(|i| format!("ld{run}cs{i}")).collect();
            let mut users = froms.clone();
            users.push(to.clone());
            import(&t, &cli.admin, &users).await?;
            let start = Instant::now();
            let mut fills = Vec::new();
            for (i, from) in froms.into_iter().enumerate() {
                let n = messages / senders + u64::from((i as u64) < messages % senders);
                let (t, to, payload) = (t.clone(), to.clone(), cli.payload);
                fills.push(tokio::spawn(async move { scenarios::send_many(&t, &from, &to, n, 256, payload).await }));
            }
            for f in fills {
                f.await??;
            }
            let fill = start.elapsed();
            let usage = Usage::start(cli.server_pid);
            let start = Instant::now();
            let (mut rd, mut wr) = conn::login(&t, &to, wire::ClientType::Ios, "catchup").await?;
            let (items, _) = scenarios::sync_all(&mut rd, &mut wr, 0, 500).await?;
            let took = start.elapsed();
            report.usage = usage.finish();
            report.duration_s = took.as_secs_f64();
            if items != messages {
                bail!("synced {items} of {messages} messages");
            }
            report.results = serde_json::json!({
                "fill_s": fill.as_secs_f64(),
                "catchup_s": took.as_secs_f64(),
                "messages_synced": items,
                "messages_per_s": items as f64 / took.as_secs_f64(),
            });
        }
        Cmd::Storm { connections, missed } => {
            report.scenario = "storm".into();
            report.params = serde_json::json!({"connections": connections, "missed": missed});
            let users: Vec<String> = (0..connections).map(|i| format!("ld{run}t{i}")).collect();
            let sender = format!("ld{run}ts");
            import(&t, &cli.admin, &[users.clone(), vec![sender.clone()]].concat()).await?;
            let usage = Usage::start(cli.server_pid);
            let (took, lost) = scenarios::storm(&t, &users, &sender, missed, 512).await?;
            report.usage = usage.finish();
            report.duration_s = took.as_secs_f64();
            report.results = serde_json::json!({
                "reconnect_and_resync_s": took.as_secs_f64(),
                "messages_lost": lost,
                "messages_expected": missed * connections as u64,
            });
        }
        Cmd::HookBackend { .. } => unreachable!("answered above"),
        Cmd::Registered(args) => {
            let o = registered::Opts::new(args, &t, &cli.admin)?;
            let (start, usage) = (Instant::now(), Usage::start(None));
            let r = registered::run(&o).await?;
            report = Report {
                scenario: "registered".into(),
                params: o.params(),
                duration_s: start.elapsed().as_secs_f64(),
                usage: UsageReport {
                    server_rss_kib: Some(r.rss_after_restart_kib),
                    server_peak_rss_kib: Some(r.peak_rss_after_restart_kib),
                    ..usage.finish()
                },
                results: serde_json::to_value(&r)?,
            };
            let mut text = Vec::new();
            registered::print(&o, &r, &mut text)?;
            human = Some(text);
        }
    }
    let json_to_stdout = cli.json.as_deref() == Some(Path::new("-"));
    let mut out: Box<dyn Write> =
        if json_to_stdout { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
    match human {
        Some(text) => out.write_all(&text)?,
        None => print_report(&report, &mut out)?,
    }
    match &cli.json {
        Some(_) if json_to_stdout => println!("{}", serde_json::to_string(&report)?),
        Some(p) => std::fs::write(p, serde_json::to_string_pretty(&report)?)?,
        None => {}
    }
    Ok(())
}

fn print_report(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "scenario   {}", r.scenario)?;
    writeln!(out, "params     {}", r.params)?;
    writeln!(out, "window     {:.2} s", r.duration_s)?;
    if let serde_json::Value::Object(m) = &r.results {
        for (k, v) in m {
            writeln!(out, "{k:<24} {v}")?;
        }
    }
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    writeln!(out, "server cpu (s)           {}", f(r.usage.server_cpu_s))?;
    writeln!(
        out,
        "server rss / peak (MiB)  {} / {}",
        f(r.usage.server_rss_kib.map(|k| k as f64 / 1024.0)),
        f(r.usage.server_peak_rss_kib.map(|k| k as f64 / 1024.0))
    )?;
    writeln!(out, "imload cpu (s)           {}", f(r.usage.imload_cpu_s))
}

/// What one closed- or open-loop run drives: each sender with its target (a user or a
/// group), the receiving users, and how many deliveries each message makes.
struct Load {
    senders: Vec<(String, String)>,
    receivers: Vec<String>,
    fan: u64,
}

/// Runs `load` after the warm-up for the duration and fills `report` (p2p and fanout).
async fn drive(cli: &Cli, t: &Target, opts: p2p::Opts, load: Load, report: &mut Report) -> anyhow::Result<()> {
    let t = t.clone();
    let Load { senders, receivers, fan } = load;
    let rate = opts.rate;
    let opts = Arc::new(opts);
    let c = Arc::new(p2p::Counters::default());
    let epoch = Instant::now();
    let (done, done_rx) = tokio::sync::watch::channel(false);
    let mut recv_tasks = Vec::new();
    for r in &receivers {
        let group = opts.group.then_some((opts.ack_every, opts.ack_ms));
        recv_tasks.push(tokio::spawn(p2p::receiver(t.clone(), r.clone(), c.clone(), epoch, done_rx.clone(), group)));
    }
    let waiting = Instant::now();
    while c.ready.load(Ordering::Relaxed) < receivers.len() as u64 {
        if waiting.elapsed() > Duration::from_secs(120) {
            bail!("only {} of {} receivers logged in", c.ready.load(Ordering::Relaxed), receivers.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut send_tasks = Vec::new();
    for (s, r) in &senders {
        send_tasks.push(tokio::spawn(p2p::sender(t.clone(), s.clone(), r.clone(), opts.clone(), c.clone(), epoch)));
    }
    let bar = indicatif::ProgressBar::new_spinner();
    let progress = |label: &str, secs: u64| {
        let (bar, c) = (bar.clone(), c.clone());
        let label = label.to_string();
        async move {
            let start = Instant::now();
            let mut last = (0u64, Instant::now());
            while start.elapsed() < Duration::from_secs(secs) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let d = c.delivered.load(Ordering::Relaxed);
                let rate = (d - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (d, Instant::now());
                bar.set_message(format!(
                    "{label} {:>4.1}s  acked {}  delivered {}  {:>9.0} msg/s  errors {}",
                    start.elapsed().as_secs_f64(),
                    c.acked.load(Ordering::Relaxed),
                    d,
                    rate,
                    c.errors.load(Ordering::Relaxed)
                ));
                bar.tick();
            }
        }
    };
    progress("warm-up", cli.warmup).await;
    c.measuring.store(true, Ordering::Relaxed);
    let usage = Usage::start(cli.server_pid);
    let window_start = Instant::now();
    // Deliveries per `--window-secs` of the measurement, sampled beside the progress line.
    let every = Duration::from_secs(cli.window_secs.max(1));
    let rates = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = {
        let (c, rates) = (c.clone(), rates.clone());
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let d = c.win_delivered.load(Ordering::Relaxed);
                if let Ok(mut r) = rates.lock() {
                    r.push((d - last) as f64 / every.as_secs_f64());
                }
                last = d;
            }
        })
    };
    progress("measure", cli.duration).await;
    c.measuring.store(false, Ordering::Relaxed);
    let elapsed = window_start.elapsed().as_secs_f64();
    sampler.abort();
    // Whole windows only.
    let mut rate_per_window = rates.lock().map(|r| r.clone()).unwrap_or_default();
    rate_per_window.truncate((elapsed / every.as_secs_f64()) as usize);
    report.usage = usage.finish();
    bar.finish_and_clear();
    c.stop.store(true, Ordering::Relaxed);
    let (mut ack_h, mut lag_h) = (stats::histogram(), stats::histogram());
    for s in send_tasks {
        let (ack, lag) = s.await??;
        ack_h.add(ack)?;
        lag_h.add(lag)?;
    }
    // Let the last deliveries arrive.
    let sent = c.sent.load(Ordering::Relaxed);
    let wait = Instant::now();
    while c.delivered.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed) * fan < sent * fan
        && wait.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = done.send(true);
    let mut del_h = stats::histogram();
    for r in recv_tasks {
        del_h.add(r.await??)?;
    }
    let win_delivered = c.win_delivered.load(Ordering::Relaxed);
    report.duration_s = elapsed;
    let achieved = win_delivered as f64 / elapsed;
    let server_us_per_msg = report.usage.server_cpu_s.map(|s| s * 1e6 / win_delivered.max(1) as f64);
    // What generating the load cost, so a run shows whether imload itself was the limit.
    let imload_us_per_msg = report.usage.imload_cpu_s.map(|s| s * 1e6 / win_delivered.max(1) as f64);
    // The server's threads' sleeps per message: each is a hand-off that had to wake a thread.
    let wakeups_per_msg = report.usage.server_voluntary_switches.map(|s| s as f64 / win_delivered.max(1) as f64);
    let acked_in_window = c.win_acked.load(Ordering::Relaxed);
    report.results = serde_json::json!({
        "offered_msgs_per_s": rate,
        "achieved_msgs_per_s": achieved,
        "acked_in_window": acked_in_window,
        "receive_acks_sent": c.acks.load(Ordering::Relaxed),
        "acked_msgs_per_s": acked_in_window as f64 / elapsed,
        "deliveries_per_message": fan,
        "delivered_in_window": win_delivered,
        "sent_total": sent,
        "delivered_total": c.delivered.load(Ordering::Relaxed),
        "errors": c.errors.load(Ordering::Relaxed),
        "out_of_order": c.out_of_order.load(Ordering::Relaxed),
        "duplicates": c.duplicates.load(Ordering::Relaxed),
        "send_to_ack": Latency::of(&ack_h),
        "send_to_delivery": Latency::of(&del_h),
        // Open loop: latencies count from the scheduled send; this is how late imload sent.
        "send_lag": rate.map(|_| Latency::of(&lag_h)),
        "server_cpu_us_per_msg": server_us_per_msg,
        "imload_cpu_us_per_msg": imload_us_per_msg,
        "server_wakeups_per_msg": wakeups_per_msg,
        "rate_per_window": rate_per_window.iter().map(|r| r.round()).collect::<Vec<_>>(),
        "imload_threads": cli.threads,
    });
    Ok(())
}
