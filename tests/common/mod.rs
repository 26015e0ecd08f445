//! Test harness: the real server on an ephemeral port with a fresh RocksDB directory, and
//! SDK clients talking to it over TCP.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imserver::auth::ticket;
use imserver::client::{Client, ClientError, Message, Profile};
use imserver::config::{AppConfig, Config, Durability, MultiDevicePolicy};
use imserver::domain::ids::{AppId, UserId};
use imserver::protocol::wire;
use tokio::sync::oneshot;

pub mod http;
pub mod node;

pub const APP: u32 = 1400000001;
pub const SECRET: &str = "test-secret";
pub const OTHER_APP: u32 = 1400000002;
pub const OTHER_SECRET: &str = "other-secret";
pub const WAIT: Duration = Duration::from_secs(5);

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn ticket_for(app: u32, user: &str, secret: &str) -> String {
    ticket::sign(app as u64, user, secret.as_bytes(), now_secs(), 3600)
}

pub fn config(dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        // Backups off unless a test names where.
        backup_dir: PathBuf::new(),
        durability: Durability::Sync,
        // `IM_TEST_WRITE_PATH=shards` runs the in-process servers with each shard writing its
        // own groups (the processes started from a config file take the config's default).
        write_path: std::env::var("IM_TEST_WRITE_PATH").ok().and_then(|w| w.parse().ok()).unwrap_or_default(),
        // `IM_TEST_SESSIONS_ON_SHARDS=1` runs them with plain TCP sessions on the shard threads.
        sessions_on_shards: std::env::var("IM_TEST_SESSIONS_ON_SHARDS").is_ok_and(|v| v == "1"),
        shards: 2,
        apps: vec![
            AppConfig {
                id: AppId(APP),
                secret: SECRET.into(),
                admins: vec![UserId::new("admin").unwrap()],
                multi_device: MultiDevicePolicy::Any,
                recall_window_secs: 120,
                friendship_required: false,
                group_max_members: 2000,
                group_msgs_per_sec: 0,
                callbacks: Default::default(),
            },
            AppConfig {
                id: AppId(OTHER_APP),
                secret: OTHER_SECRET.into(),
                admins: vec![UserId::new("admin").unwrap()],
                multi_device: MultiDevicePolicy::Single,
                recall_window_secs: 120,
                friendship_required: false,
                group_max_members: 2000,
                group_msgs_per_sec: 0,
                callbacks: Default::default(),
            },
        ],
        ..Config::default()
    }
}

/// A server running on its own runtime and thread, so that dropping it can wait until it
/// has fully stopped and closed RocksDB (no server outlives its test).
pub struct TestServer {
    pub addr: String,
    /// The HTTP API's address (`http_listen` on).
    pub http_addr: Option<String>,
    pub dir: PathBuf,
    /// Notified: the server re-reads its TLS certificate and key (SIGHUP in `imserver`).
    pub reload_tls: std::sync::Arc<tokio::sync::Notify>,
    /// Set for a server whose TCP port speaks TLS: how `connect` (and so every helper) trusts it.
    pub client_tls: Option<imserver::client::connect::Tls>,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), imserver::ServerError>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, tweak).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an existing data directory (a restart).
    pub async fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut cfg = config(dir);
        tweak(&mut cfg);
        let listener = std::net::TcpListener::bind(cfg.listen).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let http = (!cfg.http_listen.is_empty()).then(|| {
            let l = std::net::TcpListener::bind(&cfg.http_listen).unwrap();
            l.set_nonblocking(true).unwrap();
            l
        });
        let http_addr = http.as_ref().map(|l| l.local_addr().unwrap().to_string());
        let (tx, rx) = oneshot::channel::<()>();
        let reload_tls = std::sync::Arc::new(tokio::sync::Notify::new());
        let reload = reload_tls.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let http = http.map(|l| tokio::net::TcpListener::from_std(l).unwrap());
                imserver::run_with(
                    listener,
                    http,
                    cfg,
                    async move {
                        let _ = rx.await;
                    },
                    reload,
                )
                .await
            })
        });
        TestServer {
            addr,
            http_addr,
            dir: dir.to_path_buf(),
            reload_tls,
            client_tls: None,
            _tmp: None,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Graceful stop; returns the data directory's owner so the data outlives the server.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            tokio::task::spawn_blocking(move || t.join()).await.unwrap().unwrap().unwrap();
        }
        self._tmp.take()
    }

    pub async fn connect(&self) -> Client {
        match &self.client_tls {
            None => Client::connect(&self.addr).await.unwrap(),
            Some(tls) => Client::connect_tls(&self.addr, tls).await.unwrap(),
        }
    }

    pub async fn admin(&self) -> Client {
        let c = self.connect().await;
        let info = c
            .login(APP, "admin", &ticket_for(APP, "admin", SECRET), wire::ClientType::Backend, "backend")
            .await
            .unwrap();
        assert!(info.is_admin);
        c
    }

    pub async fn login(&self, user: &str, ct: wire::ClientType, device: &str) -> Client {
        let c = self.connect().await;
        c.login(APP, user, &ticket_for(APP, user, SECRET), ct, device).await.unwrap();
        c
    }

    pub async fn user(&self, user: &str) -> Client {
        self.login(user, wire::ClientType::Ios, &format!("{user}-phone")).await
    }

    /// Imports users (as admin) and asserts they were created.
    pub async fn import(&self, ids: &[&str]) {
        let a = self.admin().await;
        let users: Vec<Profile> =
            ids.iter().map(|id| Profile { nickname: format!("nick-{id}"), ..Profile::new(id) }).collect();
        let r = a.import_users(&users).await.unwrap();
        assert!(r.iter().all(|(_, c)| *c == wire::ErrorCode::None), "{r:?}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            // Blocks the test's thread; the server runs on its own runtime, so it can finish.
            let _ = t.join();
        }
    }
}

/// The kick reason of a push frame, if it is a kick.
pub fn kick_reason(f: &imserver::client::Frame) -> Option<wire::KickReason> {
    f.get().event_as_kick_push().map(|k| k.reason())
}

/// The error code of an unsolicited error frame (id 0).
pub fn error_code(f: &imserver::client::Frame) -> Option<wire::ErrorCode> {
    f.get().response_as_error().map(|e| e.code())
}

/// The real `imserver` binary as a child process, killed (SIGKILL) when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `imserver` on an ephemeral port with `args` (data dir, config, durability...) and
/// returns it with the address it printed.
pub fn spawn_process(args: &[&str]) -> (Proc, String) {
    spawn_process_on(args, None)
}

/// `spawn_process`, with every thread of the server pinned to CPU `cpu` when given (see
/// `Contention`).
pub fn spawn_process_on(args: &[&str], cpu: Option<usize>) -> (Proc, String) {
    use std::io::{BufRead, BufReader};
    // IMSERVER_BIN runs another build of the server under the same test (an A/B of a fix).
    let bin = std::env::var_os("IMSERVER_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_imserver").into());
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // IMSERVER_TEST_SERVER_LOG=FILE appends the servers' logs there (with RUST_LOG set).
    if let Some(path) = std::env::var_os("IMSERVER_TEST_SERVER_LOG") {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("server log file");
        cmd.stderr(f);
    }
    match cpu {
        Some(cpu) => pin_child(&mut cmd, cpu),
        None => contend_if_asked(&mut cmd),
    }
    let mut child = cmd.spawn().expect("imserver starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).unwrap();
    let addr = line.split_whitespace().nth(3).expect("imserver listening on ADDR").to_string();
    (Proc(child), addr)
}

/// A whole one-to-one conversation as `as_user` sees it with `peer`, read by an administrator
/// newest page first (500 a page); the checkers of the crash tests compare it with their acks.
pub async fn whole_history(admin: &Client, peer: &str, as_user: &str) -> Result<Vec<Message>, ClientError> {
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let (page, more) = admin.history(peer, before, 0, 500, Some(as_user)).await?;
        if page.is_empty() {
            break;
        }
        before = page.iter().map(|m| m.seq).min().unwrap();
        all.extend(page);
        if !more || before == 1 {
            break;
        }
    }
    Ok(all)
}

/// Writes `dir/imserver.toml` for the real-process tests: `top` (top-level keys and tables
/// such as `[limits]`), then one app with `secret` and the administrator "admin".
pub fn write_config(dir: &Path, app: u32, secret: &str, top: &str) -> PathBuf {
    let path = dir.join("imserver.toml");
    std::fs::write(&path, format!("{top}\n[[apps]]\nid = {app}\nsecret = \"{secret}\"\nadmins = [\"admin\"]\n"))
        .expect("writing the test config");
    path
}

/// Pins `cmd`'s process (every thread it starts) to CPU `cpu`.
pub fn pin_child(cmd: &mut std::process::Command, cpu: usize) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure only calls sched_setaffinity, which is
    // async-signal-safe, on a set built on the stack.
    unsafe {
        cmd.pre_exec(move || pin_to(cpu));
    }
}

/// With `IMSERVER_TEST_CONTENTION=1`, the real-process tests run their server (or strace and
/// the server under it) pinned to CPU 0 beside a busy thread of this test process, as the
/// crash loop always does: `scripts/contended-crash-tests.sh` runs the kill -9, restart and
/// power-loss tests so, many times.
pub fn contend_if_asked(cmd: &mut std::process::Command) {
    static SPINNER: std::sync::OnceLock<Contention> = std::sync::OnceLock::new();
    if std::env::var("IMSERVER_TEST_CONTENTION").is_ok_and(|v| v == "1") {
        let c = SPINNER.get_or_init(|| Contention::start(1));
        pin_child(cmd, c.cpu);
    }
}

/// Pins the calling thread (and what it forks and execs afterwards) to one CPU.
pub fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPU contention for the crash tests: busy threads pinned to the CPU the server is pinned to,
/// so the server's threads (shards, connection threads, the writer) are preempted at arbitrary
/// points and run far apart in time, as on a loaded machine. Stops when dropped.
pub struct Contention {
    pub cpu: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Contention {
    /// `spinners` busy threads on CPU 0 (the server goes there too: `spawn_process_on`).
    pub fn start(spinners: usize) -> Contention {
        use std::sync::atomic::{AtomicBool, Ordering};
        let cpu = 0;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let threads = (0..spinners)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let _ = pin_to(cpu);
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                })
            })
            .collect();
        Contention { cpu, stop, threads }
    }
}

impl Drop for Contention {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A login as the SDK writes it, but with the given protocol version.
pub async fn login_with_version(s: &TestServer, user: &str, version: u32) -> Result<Client, ClientError> {
    let c = s.connect().await;
    let t = ticket_for(APP, user, SECRET);
    c.call(|fbb| {
        let user_id = fbb.create_string(user);
        let ticket = fbb.create_string(&t);
        let device_id = fbb.create_string("d");
        let r = wire::LoginReq::create(
            fbb,
            &wire::LoginReqArgs {
                app_id: APP,
                user_id: Some(user_id),
                ticket: Some(ticket),
                client_type: wire::ClientType::Ios,
                device_id: Some(device_id),
                protocol_version: version,
            },
        );
        (wire::Request::LoginReq, r.as_union_value())
    })
    .await?;
    Ok(c)
}
