//! The commands, one file per area, and what they share: the logged-in connection (`Ctx`).
//!
//! - `session`: login, ping, watch (pushes as they arrive), admin backup.
//! - `users`: import, delete, read, modify, online status.
//! - `messages`: send, history, recall.
//! - `conversations`: the list, pin / mute, delete, read.
//! - `friends`: add, delete, list, relation, check, blacklist, requests, groups.
//! - `groups`: every group operation and group messages.
//! - `sync`: one page of a sync stream.
//!
//! How an answer prints (JSON with `--json`, else text) is `show.rs`'s.

pub mod conversations;
pub mod friends;
pub mod groups;
pub mod messages;
pub mod session;
pub mod sync;
pub mod users;

use imserver::client::{Client, LoginInfo};

/// A logged-in connection and the global flags a command reads.
pub struct Ctx {
    pub client: Client,
    /// What the login answered.
    pub login: LoginInfo,
    /// `--json`: print JSON instead of text.
    pub json: bool,
    /// Who is logged in (`--user`), and as which device (`--device`).
    pub user: String,
    pub device: String,
}

/// Argument lists as the SDK takes them.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
