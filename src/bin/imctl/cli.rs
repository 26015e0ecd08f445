//! The command line: global flags, one subcommand per operation, and the parsers of their
//! string arguments. No I/O.

use anyhow::{anyhow, bail};
use clap::{Args, Parser, Subcommand};
use imserver::config::DEV_SECRET;
use imserver::protocol::wire;

#[derive(Parser)]
#[command(version, about = "Command-line client for imserver")]
pub struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7700", global = true)]
    pub addr: String,
    /// Connect with TLS (the server's `[tls]`), checking it against the system's roots or --ca.
    #[arg(long, global = true)]
    pub tls: bool,
    /// A PEM file of the CAs to trust (implies --tls).
    #[arg(long, global = true)]
    pub ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry (default: the host of --addr).
    #[arg(long, global = true)]
    pub server_name: Option<String>,
    /// App id.
    #[arg(long, default_value_t = 1400000000, global = true)]
    pub app: u32,
    /// Who to log in as (an app administrator for admin operations).
    #[arg(long, default_value = "admin", global = true)]
    pub user: String,
    /// A ticket to log in with; minted from --secret when absent.
    #[arg(long, global = true)]
    pub ticket: Option<String>,
    /// The app secret, to mint a ticket (defaults to the built-in development app's).
    #[arg(long, default_value = DEV_SECRET, global = true)]
    pub secret: String,
    /// Client type: ios, android, web, windows, mac, linux, ipad, miniprogram, backend.
    #[arg(long, default_value = "backend", global = true)]
    pub client_type: String,
    /// Device id.
    #[arg(long, default_value = "imctl", global = true)]
    pub device: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// On an error, print every cause and the backtrace (RUST_BACKTRACE=1) after the one-line
    /// message.
    #[arg(long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Mint a login ticket (TLSSigAPIv2 format) and print it.
    Sign {
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86400)]
        ttl: u64,
    },
    /// Log in and report the session.
    Login,
    /// Round-trip a heartbeat.
    Ping,
    /// [admin] Create users: each ID, or ID:NICKNAME.
    ImportUsers {
        users: Vec<String>,
        /// Extra JSON stored with each user.
        #[arg(long)]
        extra: Option<String>,
    },
    /// [admin] Soft-delete users.
    DeleteUsers { users: Vec<String> },
    /// Read profiles, optionally only some fields (nickname,avatar,gender,birthday,location,
    /// signature,friend_add_policy,silent,forbidden,extra,times).
    GetUsers {
        users: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        fields: Vec<String>,
    },
    /// Read one profile.
    GetUser {
        // Its own id: under the name `user` it would overwrite the global --user, and imctl
        // would log in as the user it reads (clap checks names only in debug builds).
        /// The user to read.
        #[arg(id = "profile_of", value_name = "USER")]
        user: String,
    },
    /// Change a profile (mine, or --target's as an administrator).
    Modify(ModifyFlags),
    /// Which users are online, on which devices.
    Status { users: Vec<String> },
    /// Sync a stream: friends, friend-requests, blacklist, conversations, groups, messages.
    Sync {
        stream: String,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// As an administrator, whose stream.
        #[arg(long)]
        target: Option<String>,
    },
    /// Send a one-to-one text message (an administrator may send --as another user).
    Send {
        to: String,
        text: String,
        /// Client message id (idempotency key); a fresh one when absent.
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long, default_value_t = 1)]
        msg_type: u32,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// List my conversations.
    Conversations {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Pin / mute a conversation.
    Conversation {
        peer: String,
        #[arg(long)]
        pin: Option<bool>,
        #[arg(long)]
        mute: Option<bool>,
    },
    /// Remove a conversation from my list (--client-only: just tell my other devices).
    DeleteConversation {
        peer: String,
        #[arg(long)]
        client_only: bool,
    },
    /// Read a conversation's history, newest first before --before (exclusive), or oldest
    /// first after --after (exclusive; with --oldest-first, from the first message).
    History {
        peer: String,
        #[arg(long, default_value_t = 0)]
        before: u64,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long)]
        oldest_first: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Mark a conversation read up to a seq.
    Read { peer: String, seq: u64 },
    /// Recall a message by server id.
    Recall {
        peer: String,
        server_id: u64,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Add a friend (a request when the other side needs approval).
    AddFriend {
        to: String,
        #[arg(long, default_value = "")]
        wording: String,
        #[arg(long, default_value = "")]
        source: String,
        #[arg(long, default_value = "")]
        remark: String,
    },
    /// Remove a friend (my side only), or all with --all.
    DeleteFriend {
        peer: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// My friends.
    Friends {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// My relation to one user.
    Relation { peer: String },
    /// Check friendship (or --black: blacklists) with users, --both for both directions.
    Check {
        users: Vec<String>,
        #[arg(long)]
        both: bool,
        #[arg(long)]
        black: bool,
    },
    /// Blacklist a user (--remove to take them off).
    Black {
        peer: String,
        #[arg(long)]
        remove: bool,
    },
    /// Friend requests I received; --approve ID / --reject ID (or the pending request
    /// --approve-from / --reject-from USER) / --read-all.
    Requests {
        #[arg(long)]
        approve: Option<u64>,
        #[arg(long)]
        reject: Option<u64>,
        #[arg(long, value_name = "USER")]
        approve_from: Option<String>,
        #[arg(long, value_name = "USER")]
        reject_from: Option<String>,
        #[arg(long)]
        read_all: bool,
    },
    /// Friend groups: list, or --create/--delete/--add/--remove NAME with members.
    FriendGroups {
        #[arg(long)]
        create: Option<String>,
        #[arg(long)]
        delete: Option<String>,
        #[arg(long)]
        add: Option<String>,
        #[arg(long)]
        remove: Option<String>,
        members: Vec<String>,
    },
    /// Operators: online backup (`imctl admin --help`).
    Admin {
        #[command(subcommand)]
        op: AdminOp,
    },
    /// Groups: every group operation and group messages (`imctl group --help`).
    Group {
        #[command(subcommand)]
        op: crate::cli_group::GroupOp,
    },
    /// Stay logged in and print every push; optionally follow users' online status.
    Watch {
        #[arg(long, value_delimiter = ',')]
        follow: Vec<String>,
        /// Stop after this many seconds (default: until interrupted).
        #[arg(long)]
        secs: Option<u64>,
        /// Acknowledge received messages to their senders, as a real client does.
        #[arg(long)]
        ack: bool,
    },
}

/// What an operator asks of the server.
#[derive(Subcommand)]
pub enum AdminOp {
    /// [admin] Write a consistent copy of the live store (every app's data) into the server's
    /// backup_dir; start a server with the printed path as its data dir to restore it.
    Backup {
        /// The backup's directory name (default: backup-<unix ms>).
        #[arg(long, default_value = "")]
        name: String,
    },
}

/// The flags of `modify`.
#[derive(Args)]
pub struct ModifyFlags {
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long)]
    pub nickname: Option<String>,
    #[arg(long)]
    pub avatar: Option<String>,
    #[arg(long)]
    pub gender: Option<u8>,
    #[arg(long)]
    pub birthday: Option<String>,
    #[arg(long)]
    pub location: Option<String>,
    #[arg(long)]
    pub signature: Option<String>,
    /// 0 anyone, 1 needs approval, 2 nobody.
    #[arg(long)]
    pub friend_policy: Option<u8>,
    #[arg(long)]
    pub extra: Option<String>,
    #[arg(long)]
    pub silent: Option<bool>,
    #[arg(long)]
    pub forbidden: Option<bool>,
}

pub fn client_type(s: &str) -> anyhow::Result<wire::ClientType> {
    wire::ClientType::ENUM_VALUES
        .iter()
        .copied()
        .find(|t| t.variant_name().is_some_and(|n| n.eq_ignore_ascii_case(s)))
        .ok_or_else(|| anyhow!("unknown client type {s}"))
}

pub fn field(s: &str) -> anyhow::Result<wire::UserField> {
    let norm: String = s.chars().filter(|c| *c != '_').collect();
    wire::UserField::ENUM_VALUES
        .iter()
        .copied()
        .find(|t| t.variant_name().is_some_and(|n| n.eq_ignore_ascii_case(&norm)))
        .ok_or_else(|| anyhow!("unknown field {s}"))
}

pub fn stream(s: &str) -> anyhow::Result<wire::SyncStream> {
    Ok(match s {
        "friends" => wire::SyncStream::Friends,
        "friend-requests" => wire::SyncStream::FriendRequests,
        "blacklist" => wire::SyncStream::Blacklist,
        "conversations" => wire::SyncStream::Conversations,
        "groups" => wire::SyncStream::JoinedGroups,
        "messages" => wire::SyncStream::Messages,
        other => bail!("unknown stream {other}"),
    })
}
