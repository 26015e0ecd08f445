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
        data_dir: dir.to_path_buf(),
        durability: Durability::Sync,
        shards: 2,
        apps: vec![
            AppConfig {
                id: AppId(APP),
                secret: SECRET.into(),
                admins: vec![UserId::new("admin").unwrap()],
                multi_device: MultiDevicePolicy::Any,
                recall_window_secs: 120,
                friendship_required: false,
            },
            AppConfig {
                id: AppId(OTHER_APP),
                secret: OTHER_SECRET.into(),
                admins: vec![UserId::new("admin").unwrap()],
                multi_device: MultiDevicePolicy::Single,
                recall_window_secs: 120,
                friendship_required: false,
            },
        ],
        ..Config::default()
    }
}

/// A server running on its own runtime and thread, so that dropping it can wait until it
/// has fully stopped and closed RocksDB (no server outlives its test).
pub struct TestServer {
    pub addr: String,
    pub dir: PathBuf,
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
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                imserver::run(listener, cfg, async move {
                    let _ = rx.await;
                })
                .await
            })
        });
        TestServer { addr, dir: dir.to_path_buf(), _tmp: None, stop: Some(tx), thread: Some(thread) }
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
        Client::connect(&self.addr).await.unwrap()
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
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imserver"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("imserver starts");
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
        before = page.iter().map(|m| m.seq).min().unwrap() - 1;
        all.extend(page);
        if !more || before == 0 {
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
