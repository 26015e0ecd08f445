//! The flags of `imctl group ...`: one subcommand per group operation.

use clap::Subcommand;

#[derive(Subcommand)]
pub enum GroupOp {
    /// Create a group (no id: the server assigns one) with members besides me.
    Create {
        /// The group id (empty: server-assigned).
        #[arg(long, default_value = "")]
        id: String,
        /// A public group (join by request); private (invite-only) otherwise.
        #[arg(long)]
        public: bool,
        #[arg(long, default_value = "")]
        name: String,
        /// As an administrator, the owner.
        #[arg(long = "as")]
        as_user: Option<String>,
        members: Vec<String>,
    },
    /// [admin] Import a group owned by --owner with members ID or ID:ROLE (0 member, 1 admin).
    Import {
        group: String,
        #[arg(long)]
        owner: String,
        #[arg(long)]
        public: bool,
        members: Vec<String>,
    },
    /// [admin] Import members (ID or ID:ROLE) into a group.
    ImportMembers { group: String, members: Vec<String> },
    /// A group's info and first members.
    Get { group: String },
    /// A page of a group's members after --after.
    Members {
        group: String,
        #[arg(long, default_value = "")]
        after: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// [admin] The app's groups (--kind 1 private, 2 public).
    All {
        #[arg(long, default_value_t = 0)]
        kind: u8,
        #[arg(long, default_value = "")]
        after: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// My groups (--kind 1 private, 2 public).
    Joined {
        #[arg(long, default_value_t = 0)]
        kind: u8,
        #[arg(long, default_value = "")]
        after: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Change a group's fields.
    Update {
        group: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        avatar: Option<String>,
        #[arg(long)]
        introduction: Option<String>,
        #[arg(long)]
        notification: Option<String>,
        #[arg(long)]
        extra: Option<String>,
        #[arg(long)]
        max_members: Option<u32>,
        /// 0 needs approval, 1 free join, 2 forbidden.
        #[arg(long)]
        join_policy: Option<u8>,
        #[arg(long)]
        history_visible: Option<bool>,
    },
    /// Invite members (--silent: nobody is told).
    Add {
        group: String,
        #[arg(long)]
        silent: bool,
        members: Vec<String>,
    },
    /// Kick members.
    Kick { group: String, members: Vec<String> },
    /// Leave a group.
    Exit { group: String },
    /// Change a member's alias, extra, or role (0 member, 1 admin).
    Member {
        group: String,
        #[arg(id = "member_id", value_name = "USER")]
        member: String,
        #[arg(long)]
        alias: Option<String>,
        #[arg(long)]
        extra: Option<String>,
        #[arg(long)]
        role: Option<u8>,
    },
    /// Destroy a group.
    Destroy { group: String },
    /// The roles of users in a group.
    Roles { group: String, users: Vec<String> },
    /// Mute members for --secs seconds (0 lifts it).
    Mute {
        group: String,
        #[arg(long)]
        secs: u32,
        members: Vec<String>,
    },
    /// Mute everyone but the owner and admins (--off lifts it).
    MuteAll {
        group: String,
        #[arg(long)]
        off: bool,
    },
    /// The members muted now.
    Muted { group: String },
    /// Hand the group to another member.
    Owner { group: String, new_owner: String },
    /// Apply to join a public group.
    Apply {
        group: String,
        #[arg(long, default_value = "")]
        message: String,
    },
    /// Join requests of a group; --approve ID / --reject ID.
    Requests {
        group: String,
        #[arg(long)]
        approve: Option<u64>,
        #[arg(long)]
        reject: Option<u64>,
    },
    /// Send a text message to a group.
    Send {
        group: String,
        text: String,
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// A page of a group's messages: newest first before --before, or oldest first after --after.
    History {
        group: String,
        #[arg(long, default_value_t = 0)]
        before: u64,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long)]
        oldest_first: bool,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Every message of a group after --after, oldest first (how a device catches up).
    CatchUp {
        group: String,
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Mark a group read up to a seq.
    Read { group: String, seq: u64 },
    /// Acknowledge receiving a group's messages up to a seq.
    Ack { group: String, seq: u64 },
    /// Recall a group message by server id.
    Recall { group: String, server_id: u64 },
    /// Who received and read message SEQ.
    Receipts { group: String, seq: u64 },
}
