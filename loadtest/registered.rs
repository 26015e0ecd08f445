//! `imload registered`: the server's memory and start-up time against registered (imported,
//! never logged-in) users. It runs the `imserver` binary itself on a scratch directory.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use imserver::protocol::{self, wire};
use serde::Serialize;

use crate::conn::{self, Target};
use crate::stats;

/// Largest client frame the server accepts by default (`limits.max_frame`).
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// How long a server may take to print its address, and to answer once it has.
const START_TIMEOUT: Duration = Duration::from_secs(900);
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// The command line of `imload registered`.
#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Users per ImportUserReq (at most limits.max_batch, 500).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Import requests in flight.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    #[arg(long, default_value = "wal", value_parser = ["wal", "sync"])]
    durability: String,
    /// Seconds to wait before each RSS reading. Past 10 s because the server loads its data
    /// on a tokio blocking thread, and what that thread allocated stays in its heap (RSS)
    /// until the thread exits, 10 s after it went idle.
    #[arg(long, default_value_t = 15.0)]
    settle: f64,
    /// The server binary (default: the `imserver` next to imload).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Where the scratch data directories go (removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub struct Opts {
    a: Args,
    settle: Duration,
    server: PathBuf,
    dir: PathBuf,
    app: u32,
    secret: String,
    admin: String,
}

impl Opts {
    /// The arguments checked, with the app, secret and admin to configure the server with.
    pub fn new(a: Args, t: &Target, admin: &str) -> anyhow::Result<Opts> {
        if a.batch == 0 || a.batch > 500 || a.inflight == 0 || a.users == 0 {
            bail!("--users and --inflight must be positive and --batch 1..=500 (limits.max_batch)");
        }
        let settle = Duration::try_from_secs_f64(a.settle).context("--settle")?;
        let server = match &a.server {
            Some(s) => s.clone(),
            None => std::env::current_exe()?.with_file_name("imserver"),
        };
        let dir = a.dir.clone().unwrap_or_else(std::env::temp_dir);
        Ok(Opts { a, settle, server, dir, app: t.app, secret: t.secret.clone(), admin: admin.to_string() })
    }

    pub fn params(&self) -> serde_json::Value {
        let a = &self.a;
        serde_json::json!({
            "users": a.users, "shards": a.shards, "batch": a.batch, "inflight": a.inflight,
            "durability": a.durability, "settle_s": self.settle.as_secs_f64(),
        })
    }
}

#[derive(Serialize)]
pub struct Results {
    pub users_imported: u64,
    pub import_s: f64,
    pub import_users_per_s: f64,
    pub rss_empty_kib: u64,
    pub rss_after_import_kib: u64,
    pub stop_s: f64,
    pub startup_s: f64,
    pub empty_startup_s: f64,
    pub rss_after_restart_kib: u64,
    pub peak_rss_after_restart_kib: u64,
    pub bytes_per_user: f64,
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `imserver`; killed (SIGKILL) if dropped while it still runs.
struct Server {
    child: Child,
    spawned: Instant,
    target: Target,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Spawns the server on `data` with an ephemeral port; returns once it has printed its
    /// address (it binds before opening the store, so it may not answer yet).
    async fn spawn(o: &Opts, scratch: &Path, data: &Path) -> anyhow::Result<Server> {
        let log = scratch.join("server.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let mut cmd = Command::new(&o.server);
        cmd.arg("--config").arg(scratch.join("imserver.toml")).arg("--data").arg(data);
        cmd.args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--durability", o.a.durability.as_str()]);
        cmd.args(["--shards", o.a.shards.to_string().as_str()]);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_file);
        // SAFETY: prctl only sets a flag of the child; nothing is allocated after the fork.
        // The server gets SIGKILL if the thread that spawned it (imload's main thread) dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let spawned = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", o.server.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let target = Target { addr: String::new(), app: o.app, secret: o.secret.clone(), tls: None };
        let mut s = Server { child, spawned, target, log };
        let line = tokio::time::timeout(START_TIMEOUT, rx).await.map_err(|_| s.failed("printed no address"))??;
        let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next());
        s.target.addr =
            addr.ok_or_else(|| s.failed(&format!("printed no address (its first line: {line:?})")))?.to_string();
        Ok(s)
    }

    /// An error naming what went wrong, with the end of the server's log (the scratch
    /// directory holding the log is removed on the way out).
    fn failed(&self, what: &str) -> anyhow::Error {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        anyhow::anyhow!("imserver {what}; the end of its log:\n{tail}")
    }

    /// Waits until an admin login and a ping succeed; returns the time since the spawn.
    async fn ready(&mut self, admin: &str) -> anyhow::Result<Duration> {
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(30), login_and_ping(&self.target, admin));
            match attempt.await.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 30 s"))) {
                Ok(()) => return Ok(self.spawned.elapsed()),
                Err(e) if self.spawned.elapsed() > START_TIMEOUT => {
                    return Err(e.context(self.failed("never answered")))
                }
                Err(_) => {}
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.failed(&format!("exited with {status} while starting")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// (RSS, peak RSS) in KiB.
    fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        stats::memory_kib(&self.child.id().to_string()).context("reading the server's /proc/PID/status")
    }

    /// SIGTERM, then waits for a clean exit; returns how long it took.
    async fn stop(mut self) -> anyhow::Result<Duration> {
        let start = Instant::now();
        // SAFETY: kill only sends a signal, to the child this struct owns (not yet reaped).
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        while start.elapsed() < STOP_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    return Err(self.failed(&format!("exited with {status} on SIGTERM")));
                }
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(self.failed("did not stop within 120 s of SIGTERM"))
    }
}

async fn login_and_ping(t: &Target, admin: &str) -> anyhow::Result<()> {
    let (mut rd, mut wr) = conn::login(t, admin, wire::ClientType::Backend, "imload-registered").await?;
    conn::send(&mut wr, &conn::ping(2)).await?;
    while let Some(f) = conn::next(&mut rd).await {
        let sf = protocol::decode_server(&f)?;
        if sf.id() == 2 {
            sf.response_as_pong_resp().context("the ping was not answered with a pong")?;
            return Ok(());
        }
    }
    bail!("closed before the pong")
}

/// An `ImportUserReq` of users `lo..hi` (profiles holding only their id).
fn import_frame(id: u64, lo: u64, hi: u64) -> bytes::Bytes {
    protocol::client_frame(id, |fbb| {
        let v: Vec<_> = (lo..hi)
            .map(|i| {
                let user_id = Some(fbb.create_string(&user_name(i)));
                wire::UserProfile::create(fbb, &wire::UserProfileArgs { user_id, ..Default::default() })
            })
            .collect();
        let users = Some(fbb.create_vector(&v));
        let r = wire::ImportUserReq::create(fbb, &wire::ImportUserReqArgs { users });
        (wire::Request::ImportUserReq, r.as_union_value())
    })
}

fn user_name(i: u64) -> String {
    format!("u{i:08}")
}

/// Imports users 0..n as the admin, `inflight` batches at a time; returns how many were
/// created.
async fn import(t: &Target, o: &Opts) -> anyhow::Result<u64> {
    let (mut rd, mut wr) = conn::login(t, &o.admin, wire::ClientType::Backend, "imload-import").await?;
    let (n, batch) = (o.a.users, o.a.batch as u64);
    let batches = n.div_ceil(batch);
    let (mut sent, mut answered, mut created) = (0u64, 0u64, 0u64);
    while answered < batches {
        while sent < batches && sent - answered < o.a.inflight as u64 {
            let f = import_frame(sent + 2, sent * batch, ((sent + 1) * batch).min(n));
            if f.len() > MAX_CLIENT_FRAME + 4 {
                bail!("a batch of {batch} users is a {} byte frame, above the 64 KiB limit: lower --batch", f.len());
            }
            conn::send(&mut wr, &f).await?;
            sent += 1;
        }
        let Some(f) = conn::next(&mut rd).await else { bail!("the server closed the admin connection") };
        let sf = protocol::decode_server(&f)?;
        if sf.id() == 0 {
            continue; // a push
        }
        if let Some(e) = sf.response_as_error() {
            bail!("import refused: {:?} {}", e.code(), e.message().unwrap_or_default());
        }
        let r = sf.response_as_batch_resp().context("an import answered without a BatchResp")?;
        for item in r.results().into_iter().flatten() {
            match item.code() {
                wire::ErrorCode::None => created += 1,
                wire::ErrorCode::UserAlreadyExists => {}
                code => bail!("importing {}: {code:?}", item.id().unwrap_or_default()),
            }
        }
        answered += 1;
    }
    Ok(created)
}

/// Writes the server's config file: one app with its secret and admin.
fn write_config(o: &Opts, path: &Path) -> anyhow::Result<()> {
    // A JSON string is a valid TOML basic string.
    let q = |s: &str| serde_json::to_string(s);
    let text = format!("[[apps]]\nid = {}\nsecret = {}\nadmins = [{}]\n", o.app, q(&o.secret)?, q(&o.admin)?);
    imserver::config::Config::from_toml(&text).map_err(|e| anyhow::anyhow!("the server config: {e}"))?;
    Ok(std::fs::write(path, text)?)
}

/// An empty server's start-up time and RSS after `settle`.
async fn empty_server(o: &Opts, scratch: &Path) -> anyhow::Result<(Duration, u64)> {
    let mut s = Server::spawn(o, scratch, &scratch.join("empty")).await?;
    let took = s.ready(&o.admin).await?;
    tokio::time::sleep(o.settle).await;
    let rss = s.rss_kib()?.0;
    s.stop().await?;
    Ok((took, rss))
}

/// The whole measurement: an empty server, then the import, a graceful stop and a restart.
pub async fn run(o: &Opts) -> anyhow::Result<Results> {
    let dir = o.dir.join(format!("imload-registered-{}-{:x}", std::process::id(), imserver::now_ms()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let scratch = Scratch(dir);
    write_config(o, &scratch.0.join("imserver.toml"))?;
    let (empty_startup, rss_empty) = empty_server(o, &scratch.0).await?;
    let data = scratch.0.join("data");
    let mut s = Server::spawn(o, &scratch.0, &data).await?;
    s.ready(&o.admin).await?;
    let start = Instant::now();
    let users_imported = import(&s.target, o).await?;
    let import_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(o.settle).await;
    let rss_after_import = s.rss_kib()?.0;
    let stop = s.stop().await?;
    let mut s = Server::spawn(o, &scratch.0, &data).await?;
    let startup = s.ready(&o.admin).await?;
    tokio::time::sleep(o.settle).await;
    let (rss, peak) = s.rss_kib()?;
    s.stop().await?;
    Ok(Results {
        users_imported,
        import_s,
        import_users_per_s: o.a.users as f64 / import_s,
        rss_empty_kib: rss_empty,
        rss_after_import_kib: rss_after_import,
        stop_s: stop.as_secs_f64(),
        startup_s: startup.as_secs_f64(),
        empty_startup_s: empty_startup.as_secs_f64(),
        rss_after_restart_kib: rss,
        peak_rss_after_restart_kib: peak,
        bytes_per_user: (rss as f64 - rss_empty as f64) * 1024.0 / o.a.users as f64,
    })
}

/// The short human report.
pub fn print(o: &Opts, r: &Results, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mib = |k: u64| k as f64 / 1024.0;
    writeln!(out, "registered  {} users, {} shard(s), durability {}", o.a.users, o.a.shards, o.a.durability)?;
    writeln!(
        out,
        "import      {:.2} s ({:.0} users/s), {} created",
        r.import_s, r.import_users_per_s, r.users_imported
    )?;
    writeln!(
        out,
        "rss (MiB)   empty {:.1}, after import {:.1}, after restart {:.1} (peak {:.1})",
        mib(r.rss_empty_kib),
        mib(r.rss_after_import_kib),
        mib(r.rss_after_restart_kib),
        mib(r.peak_rss_after_restart_kib)
    )?;
    writeln!(
        out,
        "start-up    {:.3} s (empty server {:.3} s); stop {:.2} s",
        r.startup_s, r.empty_startup_s, r.stop_s
    )?;
    writeln!(out, "per user    {:.0} bytes of RSS after restart, above the empty server", r.bytes_per_user)
}
