//! `imctl`: the command-line client, on the SDK. Readable output by default, `--json` for
//! scripts. Mints its own ticket when given `--secret`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use imserver::auth::ticket;
use imserver::client::{Client, ItemOutcome, Profile, ProfileChange};
use imserver::config::DEV_SECRET;
use imserver::protocol::wire;

#[derive(Parser)]
#[command(version, about = "Command-line client for imserver")]
struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7700", global = true)]
    addr: String,
    /// App id.
    #[arg(long, default_value_t = 1400000000, global = true)]
    app: u32,
    /// Who to log in as (an app administrator for admin operations).
    #[arg(long, default_value = "admin", global = true)]
    user: String,
    /// A ticket to log in with; minted from --secret when absent.
    #[arg(long, global = true)]
    ticket: Option<String>,
    /// The app secret, to mint a ticket (defaults to the built-in development app's).
    #[arg(long, default_value = DEV_SECRET, global = true)]
    secret: String,
    /// Client type: ios, android, web, windows, mac, linux, ipad, miniprogram, backend.
    #[arg(long, default_value = "backend", global = true)]
    client_type: String,
    /// Device id.
    #[arg(long, default_value = "imctl", global = true)]
    device: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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
    GetUser { user: String },
    /// Change a profile (mine, or --target's as an administrator).
    Modify {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        nickname: Option<String>,
        #[arg(long)]
        avatar: Option<String>,
        #[arg(long)]
        gender: Option<u8>,
        #[arg(long)]
        birthday: Option<String>,
        #[arg(long)]
        location: Option<String>,
        #[arg(long)]
        signature: Option<String>,
        /// 0 anyone, 1 needs approval, 2 nobody.
        #[arg(long)]
        friend_policy: Option<u8>,
        #[arg(long)]
        extra: Option<String>,
        #[arg(long)]
        silent: Option<bool>,
        #[arg(long)]
        forbidden: Option<bool>,
    },
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
    /// Read a conversation's history, newest first (or oldest first with --after).
    History {
        peer: String,
        #[arg(long, default_value_t = 0)]
        before: u64,
        #[arg(long, default_value_t = 0)]
        after: u64,
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
    /// Friend requests I received; --approve ID / --reject ID / --read-all.
    Requests {
        #[arg(long)]
        approve: Option<u64>,
        #[arg(long)]
        reject: Option<u64>,
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

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn client_type(s: &str) -> anyhow::Result<wire::ClientType> {
    wire::ClientType::ENUM_VALUES
        .iter()
        .copied()
        .find(|t| t.variant_name().is_some_and(|n| n.eq_ignore_ascii_case(s)))
        .ok_or_else(|| anyhow!("unknown client type {s}"))
}

fn field(s: &str) -> anyhow::Result<wire::UserField> {
    let norm: String = s.chars().filter(|c| *c != '_').collect();
    wire::UserField::ENUM_VALUES
        .iter()
        .copied()
        .find(|t| t.variant_name().is_some_and(|n| n.eq_ignore_ascii_case(&norm)))
        .ok_or_else(|| anyhow!("unknown field {s}"))
}

fn stream(s: &str) -> anyhow::Result<wire::SyncStream> {
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

fn print_outcomes(json: bool, items: &[ItemOutcome]) {
    if json {
        let v: Vec<_> =
            items.iter().map(|(id, c)| serde_json::json!({"id": id, "code": c.0, "error": c.variant_name()})).collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (id, c) in items {
            if *c == wire::ErrorCode::None {
                println!("{id}: ok");
            } else {
                println!("{id}: {} ({})", c.variant_name().unwrap_or("?"), c.0);
            }
        }
    }
}

fn print_profile(p: &Profile) {
    println!("{}", p.user_id);
    let rows = [
        ("nickname", p.nickname.clone()),
        ("avatar", p.avatar.clone()),
        ("gender", p.gender.to_string()),
        ("birthday", p.birthday.clone()),
        ("location", p.location.clone()),
        ("signature", p.signature.clone()),
        ("friend_add_policy", p.friend_add_policy.to_string()),
        ("silent", p.silent.to_string()),
        ("forbidden", p.forbidden.to_string()),
        ("extra", p.extra.clone()),
        ("deleted", p.deleted.to_string()),
    ];
    for (k, v) in rows {
        if !v.is_empty() {
            println!("  {k:<18} {v}");
        }
    }
}

fn describe_message(m: &imserver::client::Message) -> String {
    let body = if m.recalled { "(recalled)".to_string() } else { String::from_utf8_lossy(&m.body).into_owned() };
    format!("#{} {} -> {} [{}]: {}", m.seq, m.from, m.to, m.server_id, body)
}

fn describe_push(f: &imserver::client::Frame) -> String {
    let sf = f.get();
    if let Some(k) = sf.event_as_kick_push() {
        return format!("kick: {}", k.reason().variant_name().unwrap_or("?"));
    }
    if let Some(s) = sf.event_as_status_changed_push() {
        if let Some(st) = s.status() {
            let s = imserver::client::Status::from_wire(&st);
            let devs: Vec<String> = s
                .devices
                .iter()
                .map(|d| format!("{}/{}", d.client_type.variant_name().unwrap_or("?"), d.device_id))
                .collect();
            return format!(
                "status: {} {} [{}]",
                s.user_id,
                if s.online { "online" } else { "offline" },
                devs.join(", ")
            );
        }
    }
    if let Some(u) = sf.event_as_user_info_changed_push() {
        if let Some(p) = u.user() {
            return format!(
                "profile changed: {} nickname={:?}",
                p.user_id().unwrap_or_default(),
                p.nickname().unwrap_or_default()
            );
        }
    }
    if let Some(m) = sf.event_as_message_push().and_then(|p| p.message()) {
        return format!("message: {}", describe_message(&imserver::client::Message::from_wire(&m)));
    }
    if let Some(r) = sf.event_as_receipt_push() {
        return format!(
            "received: {} got message {}{}",
            r.by_user().unwrap_or_default(),
            r.server_id(),
            if r.server_sent() { " (server-sent: offline)" } else { "" }
        );
    }
    if let Some(r) = sf.event_as_read_receipt_push() {
        return format!("read: {} read up to seq {}", r.user_id().unwrap_or_default(), r.read_seq());
    }
    if let Some(r) = sf.event_as_recall_push() {
        return format!("recalled: message {} by {}", r.server_id(), r.by_user().unwrap_or_default());
    }
    if let Some(c) = sf.event_as_sync_changed_push().and_then(|p| p.item()) {
        return match c.conversation() {
            Some(cv) => format!(
                "conversation changed: {} unread {} read {} pinned {} muted {}",
                cv.conv().and_then(|x| x.peer()).unwrap_or_default(),
                cv.unread(),
                cv.read_seq(),
                cv.pinned(),
                cv.muted()
            ),
            None => format!("sync changed: item {} (seq {})", c.id().unwrap_or_default(), c.seq()),
        };
    }
    if let Some(c) = sf.event_as_conversation_deleted_push().and_then(|p| p.conv()) {
        return format!("conversation deleted: {}", c.peer().unwrap_or_default());
    }
    if let Some(e) = f.error() {
        return format!("error: {e}");
    }
    format!("push: {}", sf.event_type().variant_name().unwrap_or("?"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ticket = match &cli.ticket {
        Some(t) => t.clone(),
        None => ticket::sign(cli.app as u64, &cli.user, cli.secret.as_bytes(), now_secs(), 86400),
    };
    if let Cmd::Sign { ttl } = &cli.cmd {
        println!("{}", ticket::sign(cli.app as u64, &cli.user, cli.secret.as_bytes(), now_secs(), *ttl));
        return Ok(());
    }
    let mut c = Client::connect(&cli.addr).await.with_context(|| format!("connecting to {}", cli.addr))?;
    let info =
        c.login(cli.app, &cli.user, &ticket, client_type(&cli.client_type)?, &cli.device).await.context("login")?;
    let json = cli.json;
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    match cli.cmd {
        Cmd::Sign { .. } => unreachable!("handled above"),
        Cmd::Login => {
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!(
                    "logged in: session {} on {}{}",
                    info.session_id,
                    info.server_addr,
                    if info.is_admin { " (admin)" } else { "" }
                );
            }
        }
        Cmd::Ping => {
            let t = c.ping().await?;
            if json {
                println!("{}", serde_json::json!({"server_time_ms": t}));
            } else {
                println!("pong: server time {t} ms");
            }
        }
        Cmd::ImportUsers { users, extra } => {
            let profiles: Vec<Profile> = users
                .iter()
                .map(|u| {
                    let (id, nick) = u.split_once(':').unwrap_or((u, ""));
                    Profile { nickname: nick.to_owned(), extra: extra.clone().unwrap_or_default(), ..Profile::new(id) }
                })
                .collect();
            print_outcomes(json, &c.import_users(&profiles).await?);
        }
        Cmd::DeleteUsers { users } => print_outcomes(json, &c.delete_users(&strs(&users)).await?),
        Cmd::GetUsers { users, fields } => {
            let fields = fields.iter().map(|f| field(f)).collect::<anyhow::Result<Vec<_>>>()?;
            let (found, missing) = c.get_user_info(&strs(&users), &fields).await?;
            if json {
                println!("{}", serde_json::json!({"users": found, "missing": missing}));
            } else {
                found.iter().for_each(print_profile);
                for m in missing {
                    println!("{m}: not found");
                }
            }
        }
        Cmd::GetUser { user } => {
            let p = c.get_single_user_info(&user).await?;
            if json {
                println!("{}", serde_json::to_string(&p)?);
            } else {
                print_profile(&p);
            }
        }
        Cmd::Modify {
            target,
            nickname,
            avatar,
            gender,
            birthday,
            location,
            signature,
            friend_policy,
            extra,
            silent,
            forbidden,
        } => {
            let change = ProfileChange {
                user_id: target,
                nickname,
                avatar,
                gender,
                birthday,
                location,
                signature,
                friend_add_policy: friend_policy,
                extra,
                silent,
                forbidden,
            };
            let p = c.modify_user_info(&change).await?;
            if json {
                println!("{}", serde_json::to_string(&p)?);
            } else {
                print_profile(&p);
            }
        }
        Cmd::Status { users } => {
            let st = c.query_online_status(&strs(&users)).await?;
            if json {
                println!("{}", serde_json::to_string(&st)?);
            } else {
                for s in st {
                    let devs: Vec<String> = s
                        .devices
                        .iter()
                        .map(|d| format!("{}/{}", d.client_type.variant_name().unwrap_or("?"), d.device_id))
                        .collect();
                    println!("{}: {} {}", s.user_id, if s.online { "online" } else { "offline" }, devs.join(" "));
                }
            }
        }
        Cmd::Sync { stream: s, after, limit, target } => {
            let a = c.sync(stream(&s)?, after, limit, target.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&a)?);
            } else {
                for i in &a.items {
                    let what = match (&i.message, &i.conversation) {
                        (Some(m), _) => describe_message(m),
                        (_, Some(cv)) => format!("conversation with {} unread {}", cv.peer, cv.unread),
                        _ => String::new(),
                    };
                    println!("{:>8} {}{} {}", i.seq, i.id, if i.deleted { " (deleted)" } else { "" }, what);
                }
                println!("head {} more {}", a.head_seq, a.more);
            }
        }
        Cmd::Send { to, text, client_id, msg_type, as_user } => {
            let cid = client_id.unwrap_or_else(|| format!("imctl-{}-{}", std::process::id(), imserver::now_ms()));
            let a = c.send_message(&to, &cid, msg_type, text.as_bytes(), as_user.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&a)?);
            } else {
                println!(
                    "sent: seq {} server id {} at {}{}",
                    a.seq,
                    a.server_id,
                    a.timestamp_ms,
                    if a.duplicate { " (duplicate: the original ack)" } else { "" }
                );
            }
        }
        Cmd::Conversations { after, limit, as_user } => {
            let page = c.conversations(after, limit, as_user.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string(&page)?);
            } else {
                for cv in &page.conversations {
                    let last = cv.last_message.as_ref().map(describe_message).unwrap_or_default();
                    println!(
                        "{:<16} unread {:<4} read {:<6}{}{} {}",
                        cv.peer,
                        cv.unread,
                        cv.read_seq,
                        if cv.pinned { " pinned" } else { "" },
                        if cv.muted { " muted" } else { "" },
                        last
                    );
                }
                println!("head {} more {}", page.head_seq, page.more);
            }
        }
        Cmd::Conversation { peer, pin, mute } => {
            let cv = c.update_conversation(&peer, pin, mute).await?;
            if json {
                println!("{}", serde_json::to_string(&cv)?);
            } else {
                println!("{}: pinned {} muted {}", cv.peer, cv.pinned, cv.muted);
            }
        }
        Cmd::DeleteConversation { peer, client_only } => {
            c.delete_conversation(&peer, client_only).await?;
            println!("deleted");
        }
        Cmd::History { peer, before, after, limit, as_user } => {
            let (msgs, more) = c.history(&peer, before, after, limit, as_user.as_deref()).await?;
            if json {
                println!("{}", serde_json::json!({"messages": msgs, "more": more}));
            } else {
                for m in &msgs {
                    println!("{}", describe_message(m));
                }
                println!("more {more}");
            }
        }
        Cmd::Read { peer, seq } => {
            c.read(&peer, seq).await?;
            println!("read up to {seq}");
        }
        Cmd::Recall { peer, server_id, as_user } => {
            c.recall(&peer, server_id, as_user.as_deref()).await?;
            println!("recalled");
        }
        Cmd::AddFriend { to, wording, source, remark } => match c.add_friend(&to, &wording, &source, &remark).await? {
            None => println!("friends with {to}"),
            Some(r) => println!("request {} sent to {to} (waiting for approval)", r.id),
        },
        Cmd::DeleteFriend { peer, all } => {
            match (peer, all) {
                (_, true) => c.delete_all_friends().await?,
                (Some(p), false) => c.delete_friend(&p).await?,
                (None, false) => bail!("name a friend or pass --all"),
            }
            println!("deleted");
        }
        Cmd::Friends { after, limit } => {
            let (list, head, more) = c.get_friends(after, limit).await?;
            if json {
                println!("{}", serde_json::json!({"friends": list, "head_seq": head, "more": more}));
            } else {
                for f in &list {
                    println!("{:<16} remark {:?} source {:?} seq {}", f.user_id, f.remark, f.add_source, f.seq);
                }
                println!("head {head} more {more}");
            }
        }
        Cmd::Relation { peer } => {
            let r = c.get_relation(&peer).await?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "{peer}: friend {} in my blacklist {} in their blacklist {}",
                    r.is_friend, r.in_my_blacklist, r.in_their_blacklist
                );
            }
        }
        Cmd::Check { users, both, black } => {
            for (u, r) in c.check_relations(&strs(&users), both, black).await? {
                println!("{u}: {}", r.variant_name().unwrap_or("?"));
            }
        }
        Cmd::Black { peer, remove } => {
            if remove {
                c.delete_black(&peer).await?;
            } else {
                c.add_black(&peer).await?;
            }
            println!("ok");
        }
        Cmd::Requests { approve, reject, read_all } => {
            if let Some(id) = approve {
                c.answer_friend_request(id, true).await?;
            }
            if let Some(id) = reject {
                c.answer_friend_request(id, false).await?;
            }
            if read_all {
                c.read_all_friend_requests().await?;
            }
            let list = c.friend_requests().await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for r in &list {
                    let state = ["pending", "approved", "rejected"].get(r.state as usize).unwrap_or(&"?");
                    println!(
                        "{:>20} from {:<12} {state}{} {:?}",
                        r.id,
                        r.from,
                        if r.read { "" } else { " (new)" },
                        r.add_wording
                    );
                }
            }
        }
        Cmd::FriendGroups { create, delete, add, remove, members } => {
            let m = strs(&members);
            for (op, name) in [("create", create), ("delete", delete), ("add", add), ("remove", remove)] {
                if let Some(n) = name {
                    c.friend_group(op, &n, &m).await?;
                }
            }
            for (name, members) in c.friend_groups().await? {
                println!("{name}: {}", members.join(", "));
            }
        }
        Cmd::Watch { follow, secs, ack } => {
            if !follow.is_empty() {
                print_outcomes(json, &c.subscribe_status(&strs(&follow), 0).await?);
            }
            let until = secs.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
            let beat = Duration::from_secs(info.heartbeat_secs.max(1) as u64);
            loop {
                if until.is_some_and(|u| tokio::time::Instant::now() >= u) {
                    break;
                }
                match c.next_push(beat).await {
                    Some(f) => {
                        println!("{}", describe_push(&f));
                        let got = f
                            .get()
                            .event_as_message_push()
                            .and_then(|p| p.message())
                            .map(|m| (m.from_user().unwrap_or_default().to_owned(), m.server_id(), m.seq()));
                        if let Some((from, server_id, seq)) = got.filter(|g| ack && g.0 != cli.user) {
                            c.receive_ack(&from, server_id, seq).await?;
                        }
                    }
                    None => {
                        if c.ping().await.is_err() {
                            println!("connection closed");
                            break;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
