//! Every limit and knob of the server in one struct, with defaults.
//!
//! Loaded from a TOML file (`--config`), then overridden by command-line flags. Nothing else
//! in the crate hard-codes a limit: a bound that is not here is a bug.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::domain::ids::{AppId, UserId};

/// How durable a write is when its ack leaves the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The WAL is fdatasync'ed before any ack: survives power loss.
    #[default]
    Sync,
    /// Written to the WAL (the OS page cache) before the ack, fdatasync'ed every `wal_sync_ms`:
    /// a process crash loses nothing; a machine crash loses at most the last interval's acks.
    Wal,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(Durability::Sync),
            "wal" => Ok(Durability::Wal),
            other => Err(format!("durability must be sync or wal, not {other:?}")),
        }
    }
}

/// How a shard's commit group reaches RocksDB (`store::writer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WritePath {
    /// One writer thread merges every shard's groups into one write and runs the
    /// completions: a thread wake-up on the way in and one on the way out.
    #[default]
    Writer,
    /// Each shard writes its own groups on its own thread (RocksDB groups concurrent
    /// writes into one WAL write) and runs the completions itself.
    Shards,
}

impl std::str::FromStr for WritePath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "writer" => Ok(WritePath::Writer),
            "shards" => Ok(WritePath::Shards),
            other => Err(format!("write_path must be writer or shards, not {other:?}")),
        }
    }
}

/// The four multi-device policies of the mission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MultiDevicePolicy {
    /// Any number of devices (up to `limits.max_devices_per_user`).
    #[default]
    Any,
    /// One device per platform class: mobile, desktop, web.
    OnePerClass,
    /// One mobile device and one non-mobile device (desktop or web).
    OneMobileOneDesktop,
    /// Exactly one device.
    Single,
}

/// One tenant.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub id: AppId,
    /// The HMAC key tickets are signed with (TLSSigAPIv2's "secret key").
    pub secret: String,
    /// User ids that log in as app administrators (app backends).
    #[serde(default)]
    pub admins: Vec<UserId>,
    #[serde(default)]
    pub multi_device: MultiDevicePolicy,
    /// How long after sending a sender may recall (withdraw) a message.
    #[serde(default = "default_recall_window")]
    pub recall_window_secs: u64,
    /// One-to-one messages need friendship in both directions.
    #[serde(default)]
    pub friendship_required: bool,
    /// A group's member limit when its creator names none (at most
    /// `limits.group_max_members`).
    #[serde(default = "default_group_members")]
    pub group_max_members: u32,
    /// Messages per second one group takes from its ordinary members (owner and admins are
    /// exempt); beyond it sends get `RateLimited`. 0 = no limit.
    #[serde(default)]
    pub group_msgs_per_sec: u32,
    /// Hooks to the app's backend (off unless `callbacks.url` is set).
    #[serde(default)]
    pub callbacks: crate::callbacks::CallbackConfig,
}

fn default_group_members() -> u32 {
    2000
}

fn default_recall_window() -> u64 {
    120
}

/// Bounds. Every queue, buffer and batch in the server takes its size from here.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_connections: usize,
    /// Largest frame accepted after login, in bytes (length prefix excluded).
    pub max_frame: usize,
    /// Largest frame accepted before login.
    pub max_login_frame: usize,
    /// Requests a connection may have in flight before the server stops reading from it.
    pub max_inflight_per_conn: usize,
    /// HTTP connections served at once; more wait in the listen queue.
    pub max_http_connections: usize,
    /// Frames queued towards one connection; past this it is a slow consumer and is closed.
    pub outbound_queue: usize,
    /// Items in one batch request (import, get, query...).
    pub max_batch: usize,
    /// Items in one page of a paged or sync read.
    pub max_page: usize,
    pub max_devices_per_user: usize,
    /// Commands queued towards one shard.
    pub shard_queue: usize,
    /// Commits queued towards the group-commit writer.
    pub commit_queue: usize,
    /// Most commits merged into one RocksDB write.
    pub max_commit_group: usize,
    /// Cross-shard commands a shard holds back when the target shard's queue is full.
    pub deferred_per_shard: usize,
    /// Subscribers one user's online status may have.
    pub max_subscriptions_per_user: usize,
    pub max_subscription_secs: u32,
    /// Largest message body, in bytes.
    pub max_message_body: usize,
    /// Client message ids remembered in memory per shard for fast idempotent retries (older
    /// ones are found in RocksDB).
    pub recent_client_ids: usize,
    /// Requests per second one connection may make on average (administrators are exempt);
    /// beyond it requests get `RateLimited`.
    pub requests_per_sec: u32,
    /// Requests one connection may make at once before the average applies.
    pub request_burst: u32,
    /// Refused requests in a row after which the connection is closed (`KickPush{RateLimited}`).
    pub rate_limit_strikes: u32,
    /// Friends one user may have; adding or approving past it is `LimitExceeded`. (Both users
    /// are checked before anything changes; adds racing on one user can pass it by the number
    /// in flight.)
    pub max_friends: usize,
    /// Blacklist entries one user may have.
    pub max_blacklist: usize,
    /// Received friend requests kept per user: past it the oldest answered one is dropped;
    /// when all are still pending, new requests are refused.
    pub max_friend_requests: usize,
    /// Friend groups one user may have.
    pub max_friend_groups: usize,
    /// Users per shard kept in memory (record, subscriptions, stream heads, conversation list,
    /// friendship state), read from the store on first use; past it the least recently used
    /// ones with no device online are dropped each second and read
    /// again on their next use.
    pub loaded_users_per_shard: usize,
    /// Conversations per shard whose last seq, and pairs whose friendship relations, stay in
    /// memory for sends; past it the least recently used are dropped each second and read
    /// again from the store on their next send.
    pub conversations_per_shard: usize,
    /// Users whose send-relevant facts (deleted, forbidden, silenced) a shard caches for the
    /// send checks; past it the oldest cached are forgotten and read again from the store.
    pub facts_cache_per_shard: usize,
    /// The highest member limit a group may have.
    pub group_max_members: u32,
    /// The member limit of groups in apps that set none.
    pub group_default_members: u32,
    /// Members of the groups a shard keeps in memory (each group counts its members + 1);
    /// past it the least recently used groups are dropped each second and read again on
    /// their next use.
    pub group_members_per_shard: usize,
    /// Join requests one group keeps: past it the oldest answered one is dropped; when all
    /// are still pending, new applications are refused (`LimitExceeded`).
    pub max_join_requests: usize,
    /// Groups up to this many members answer a message's receipts with the lists of who
    /// received and read it (bigger ones with the counts only).
    pub receipt_list_members: usize,
    /// Commands a shard takes from one inbox per wake-up.
    pub shard_drain: usize,
    /// Store operations after which a shard hands its open commit group to the writer
    /// without waiting for the end of its batch of commands.
    pub commit_group_ops: usize,
    /// Bytes of queued frames a connection gathers into one socket write.
    pub write_chunk: usize,
    /// A connection's first read buffer, in bytes (it grows for larger frames, up to the
    /// frame limit).
    pub read_buffer_start: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_000,
            max_frame: 64 * 1024,
            max_login_frame: 4 * 1024,
            max_inflight_per_conn: 128,
            max_http_connections: 256,
            outbound_queue: 1024,
            max_batch: 500,
            max_page: 500,
            max_devices_per_user: 10,
            shard_queue: 8192,
            commit_queue: 8192,
            max_commit_group: 1024,
            deferred_per_shard: 65_536,
            max_subscriptions_per_user: 1000,
            max_subscription_secs: 7 * 24 * 3600,
            max_message_body: 16 * 1024,
            recent_client_ids: 100_000,
            requests_per_sec: 5_000,
            request_burst: 10_000,
            rate_limit_strikes: 1_000,
            max_friends: 5000,
            max_blacklist: 10_000,
            max_friend_requests: 200,
            max_friend_groups: 100,
            loaded_users_per_shard: 50_000,
            conversations_per_shard: 200_000,
            facts_cache_per_shard: 200_000,
            group_max_members: 100_000,
            group_default_members: 2000,
            receipt_list_members: 200,
            group_members_per_shard: 2_000_000,
            max_join_requests: 1000,
            shard_drain: 256,
            commit_group_ops: 4096,
            write_chunk: 64 * 1024,
            read_buffer_start: 512,
        }
    }
}

/// Timeouts, in seconds in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// The first frame must be a login within this.
    pub login_secs: u64,
    /// A connection that sends nothing for this long is closed.
    pub idle_secs: u64,
    /// What the server tells clients to aim for between frames.
    pub heartbeat_secs: u64,
    /// Allowed clock skew for tickets issued "in the future".
    pub ticket_skew_secs: u64,
    /// Graceful shutdown gives connections this long to drain.
    pub shutdown_secs: u64,
    /// A socket write that makes no progress for this long ends the connection.
    pub write_secs: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            login_secs: 10,
            idle_secs: 90,
            heartbeat_secs: 30,
            ticket_skew_secs: 300,
            shutdown_secs: 5,
            write_secs: 15,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// The HTTP listener (admin API, health); off when empty.
    pub http_listen: String,
    /// The address told to clients in the login answer; the listen address when empty.
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    /// Where online backups (`BackupReq`) are written, one directory each; backups are off
    /// when empty.
    pub backup_dir: PathBuf,
    pub durability: Durability,
    /// `wal` durability: how often (milliseconds) the WAL is fdatasync'ed; 0 = never (the
    /// kernel writes it back, typically within 30 s).
    pub wal_sync_ms: u64,
    /// How commit groups are written: `writer` (one writer thread) or `shards` (each shard
    /// writes its own).
    pub write_path: WritePath,
    /// Plain TCP sessions move to their user's shard thread once the login ticket checks
    /// out, so a connection's reads, writes and its own shard's work share one thread
    /// (TLS, WebSocket and administrator sessions stay on the connection threads).
    pub sessions_on_shards: bool,
    /// Number of shards; 0 = half the cores (at least 1).
    pub shards: usize,
    /// Threads running connections (socket reads and writes, request parsing); 0 = half the
    /// cores (at least 1). Shards, connection threads and the store writer share the cores:
    /// more threads than cores costs context switches on every hand-off.
    pub io_threads: usize,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// TLS on the TCP port and the HTTP listener (off unless a certificate is named).
    pub tls: TlsConfig,
    /// Browsers: WebSocket origins, the web chat, development tickets.
    pub web: WebConfig,
    pub apps: Vec<AppConfig>,
}

/// TLS: a PEM certificate chain and its private key, re-read on SIGHUP. When set, the
/// listeners it applies to speak TLS only.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The TCP port speaks TLS only.
    pub tcp: bool,
    /// The HTTP listener speaks HTTPS (and WSS) only.
    pub http: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { cert: PathBuf::new(), key: PathBuf::new(), tcp: true, http: true }
    }
}

impl TlsConfig {
    /// A certificate is configured.
    pub fn enabled(&self) -> bool {
        !self.cert.as_os_str().is_empty()
    }
}

/// What browsers reach on the HTTP listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Origins (`scheme://host[:port]`) whose pages may open a WebSocket session; `"*"` allows
    /// any. Empty: only pages served by this server (the Origin's host is the Host header).
    /// Clients that send no Origin (apps, not browsers) are always let in: they log in with a
    /// ticket like any TCP client.
    pub origins: Vec<String>,
    /// Serve the web chat at `GET /`.
    pub chat: bool,
    /// `POST /v1/dev/ticket {app_id, user_id}` signs a login ticket for anyone who asks: for a
    /// development server only, never one with real users.
    pub dev_tickets: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { origins: Vec::new(), chat: true, dev_tickets: false }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            http_listen: "127.0.0.1:7701".into(),
            advertise: None,
            data_dir: PathBuf::from("./data"),
            backup_dir: PathBuf::from("./backups"),
            durability: Durability::Sync,
            wal_sync_ms: 100,
            write_path: WritePath::default(),
            sessions_on_shards: false,
            shards: 0,
            io_threads: 0,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            tls: TlsConfig::default(),
            web: WebConfig::default(),
            apps: vec![AppConfig {
                id: AppId(1400000000),
                secret: DEV_SECRET.to_string(),
                admins: vec![UserId::new("admin").expect("static id is valid")],
                multi_device: MultiDevicePolicy::Any,
                recall_window_secs: default_recall_window(),
                friendship_required: false,
                group_max_members: default_group_members(),
                group_msgs_per_sec: 0,
                callbacks: Default::default(),
            }],
        }
    }
}

/// Half the cores this process may use, at least 1: the default for shards and for
/// connection threads (on 2 cores, 1 + 1 moved 12 % more messages than 2 + 2; see
/// docs/performance.md).
fn half_the_cores() -> usize {
    (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) / 2).max(1)
}

/// The secret of the built-in development app, used when no config file names apps.
/// Documented in the README so that a first run works; a deployment sets its own.
pub const DEV_SECRET: &str = "dev-secret-change-me";

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for app in &self.apps {
            if !seen.insert(app.id) {
                return Err(format!("app {} is listed twice", app.id.0));
            }
            if app.secret.is_empty() {
                return Err(format!("app {} has an empty secret", app.id.0));
            }
            if let Some(p) = app.callbacks.problem() {
                return Err(format!("app {}: {p}", app.id.0));
            }
        }
        if self.shards > 64 {
            return Err("shards above 64 (server message ids carry 6 bits of shard)".into());
        }
        if !self.http_listen.is_empty() && self.http_listen.parse::<SocketAddr>().is_err() {
            return Err(format!("http_listen {:?} is not an address (host:port)", self.http_listen));
        }
        if self.tls.enabled() == self.tls.key.as_os_str().is_empty() {
            return Err("tls.cert and tls.key go together".into());
        }
        if self.limits.max_login_frame > self.limits.max_frame {
            return Err("limits.max_login_frame is larger than limits.max_frame".into());
        }
        if self.limits.max_message_body + 1024 > self.limits.max_frame {
            return Err("limits.max_message_body must leave 1 KiB of room below limits.max_frame".into());
        }
        // A message as large as a client frame must fit, with a page's worth of others, in one
        // server frame (`protocol::MAX_SERVER_FRAME`, 1 MiB).
        if self.limits.max_frame > crate::protocol::MAX_SERVER_FRAME / 4 {
            return Err("limits.max_frame above 256 KiB".into());
        }
        Ok(())
    }

    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            half_the_cores().min(64)
        }
    }

    pub fn io_thread_count(&self) -> usize {
        if self.io_threads > 0 {
            self.io_threads
        } else {
            half_the_cores()
        }
    }

    pub fn app(&self, id: AppId) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.id == id)
    }

    pub fn login_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.login_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.idle_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_web_sections_parse_and_cert_needs_key() {
        let cfg = Config::from_toml(
            "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\ntcp = false\n[web]\norigins = [\"*\"]\ndev_tickets = true\n",
        )
        .unwrap();
        assert!(cfg.tls.enabled() && !cfg.tls.tcp && cfg.tls.http);
        assert!(cfg.web.dev_tickets && cfg.web.chat);
        assert!(!Config::default().tls.enabled() && !Config::default().web.dev_tickets);
        let e = Config::from_toml("[tls]\ncert = \"c.pem\"\n").unwrap_err();
        assert!(e.contains("tls.cert and tls.key"), "{e}");
        assert!(Config::from_toml("[tls]\nkey = \"k.pem\"\n").is_err());
    }

    #[test]
    fn parses_a_full_file() {
        let cfg = Config::from_toml(
            r#"
            listen = "127.0.0.1:9000"
            data_dir = "/tmp/x"
            durability = "wal"
            shards = 3
            [limits]
            max_frame = 4000
            max_login_frame = 500
            max_message_body = 2000
            [[apps]]
            id = 7
            secret = "k"
            admins = ["boss"]
            multi_device = "one_per_class"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.durability, Durability::Wal);
        assert_eq!(cfg.shard_count(), 3);
        assert_eq!(cfg.limits.max_frame, 4000);
        assert_eq!(cfg.limits.outbound_queue, Limits::default().outbound_queue);
        assert_eq!(cfg.apps[0].multi_device, MultiDevicePolicy::OnePerClass);
    }

    #[test]
    fn rejects_unknown_keys_and_duplicate_apps() {
        assert!(Config::from_toml("nonsense = 1").is_err());
        let dup = "[[apps]]\nid = 1\nsecret = \"a\"\n[[apps]]\nid = 1\nsecret = \"b\"\n";
        assert!(Config::from_toml(dup).is_err());
    }
}
