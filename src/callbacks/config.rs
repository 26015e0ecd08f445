//! An app's callback settings (`[apps.callbacks]` in the config file).

use serde::Deserialize;

/// Where and how an app's backend is called. Off while `url` is empty.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// The backend's endpoint (`http://host:port/path`); every event goes there, named in the
    /// query (`CallbackCommand=...`) and in the body.
    #[serde(default)]
    pub url: String,
    /// The key the `X-IM-Signature` HMAC is made with. Required when `url` is set.
    #[serde(default)]
    pub secret: String,
    /// Before-hooks that are on, by event name (`C2C.CallbackBeforeSendMsg`, ...).
    #[serde(default)]
    pub before: Vec<String>,
    /// Before-hooks that refuse the operation when the backend does not answer in time or
    /// answers garbage (fail closed); the others let it through (fail open).
    #[serde(default)]
    pub fail_closed: Vec<String>,
    /// How long an operation waits for a before-hook's answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Operations waiting on before-hooks, over all shards; beyond it they get `Overloaded`.
    #[serde(default = "default_max_waiting")]
    pub max_waiting: usize,
    /// After-hooks that are on, by event name (`C2C.CallbackAfterSendMsg`, ...).
    #[serde(default)]
    pub after: Vec<String>,
    /// An after-hook the backend did not take (no 200) is sent again after a delay that
    /// doubles from 100 ms up to this.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// After-hook events queued (durably) for the backend at most; past it new events are
    /// dropped, counted and logged, and the queued ones kept.
    #[serde(default = "default_max_queued")]
    pub max_queued: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            url: String::new(),
            secret: String::new(),
            before: Vec::new(),
            fail_closed: Vec::new(),
            timeout_ms: default_timeout_ms(),
            max_waiting: default_max_waiting(),
            after: Vec::new(),
            retry_max_ms: default_retry_max_ms(),
            max_queued: default_max_queued(),
        }
    }
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_max_waiting() -> usize {
    10_000
}

fn default_retry_max_ms() -> u64 {
    30_000
}

fn default_max_queued() -> u64 {
    1_000_000
}

impl CallbackConfig {
    /// What is wrong with these settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.url.is_empty() {
            let on = !self.before.is_empty() || !self.after.is_empty();
            return on.then(|| "callbacks.before or .after is set but callbacks.url is empty".into());
        }
        if !self.url.starts_with("http://") {
            return Some(format!("callbacks.url {:?}: only http:// backends are supported", self.url));
        }
        if self.url.parse::<hyper::Uri>().is_err() {
            return Some(format!("callbacks.url {:?} is not a URL", self.url));
        }
        if self.secret.is_empty() {
            return Some("callbacks.secret is empty".into());
        }
        for name in self.before.iter().chain(&self.fail_closed) {
            match super::Event::named(name) {
                Some(e) if e.is_before() => {}
                _ => return Some(format!("{name:?} is not a before-hook event")),
            }
        }
        for name in &self.after {
            match super::Event::named(name) {
                Some(e) if !e.is_before() => {}
                _ => return Some(format!("{name:?} is not an after-hook event")),
            }
        }
        None
    }
}
