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
        }
    }
}

fn default_timeout_ms() -> u64 {
    2000
}

fn default_max_waiting() -> usize {
    10_000
}

impl CallbackConfig {
    /// What is wrong with these settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.url.is_empty() {
            return (!self.before.is_empty()).then(|| "callbacks.before is set but callbacks.url is empty".into());
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
        None
    }
}
