//! `imctl`: the command-line client, on the SDK. Readable output by default, `--json` for
//! scripts. Mints its own ticket when given `--secret`.
//!
//! `cli.rs` holds the flags and subcommands, `show.rs` how answers, pushes and errors print;
//! this file runs one command. An error prints as one line on stderr and exits with 1.

mod cli;
mod show;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use cli::{client_type, field, stream, Cli, Cmd};
use imserver::auth::ticket;
use imserver::client::{Client, FriendRequestInfo, Profile, ProfileChange};
use show::{describe_message, describe_push, devices, print_outcomes, print_profile};

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", show::error_line(&e));
            if verbose {
                eprint!("{}", show::error_details(&e));
            }
            ExitCode::FAILURE
        }
    }
}

/// The id of the pending request `from` sent me.
fn pending_from(list: &[FriendRequestInfo], from: &str) -> anyhow::Result<u64> {
    match list.iter().find(|r| r.from == from && r.state == 0) {
        Some(r) => Ok(r.id),
        None => bail!("no pending friend request from {from}"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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
                    println!(
                        "{}: {} {}",
                        s.user_id,
                        if s.online { "online" } else { "offline" },
                        devices(&s).join(" ")
                    );
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
        Cmd::History { peer, before, after, oldest_first, limit, as_user } => {
            let (msgs, more) = if oldest_first {
                c.history_oldest_first(&peer, after, limit, as_user.as_deref()).await?
            } else {
                c.history(&peer, before, after, limit, as_user.as_deref()).await?
            };
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
        Cmd::Requests { approve, reject, approve_from, reject_from, read_all } => {
            let mut answers = vec![];
            answers.extend(approve.map(|id| (id, true)));
            answers.extend(reject.map(|id| (id, false)));
            if approve_from.is_some() || reject_from.is_some() {
                let list = c.friend_requests().await?;
                if let Some(u) = approve_from {
                    answers.push((pending_from(&list, &u)?, true));
                }
                if let Some(u) = reject_from {
                    answers.push((pending_from(&list, &u)?, false));
                }
            }
            for (id, yes) in answers {
                c.answer_friend_request(id, yes).await?;
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
            // Logged in (and subscribed): from here on every push prints. Scripts that start a
            // watcher in the background may wait for this line.
            match secs {
                Some(s) => println!("watching as {}/{} for {s} s", cli.user, cli.device),
                None => println!("watching as {}/{} until interrupted", cli.user, cli.device),
            }
            let beat = Duration::from_secs(info.heartbeat_secs.max(1) as u64);
            loop {
                let now = tokio::time::Instant::now();
                if until.is_some_and(|u| now >= u) {
                    break;
                }
                // Wake at the deadline, or after a heartbeat interval without pushes to ping.
                let wait = until.map_or(beat, |u| beat.min(u - now));
                match c.next_push(wait).await {
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
                    None if until.is_some_and(|u| tokio::time::Instant::now() >= u) => break,
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
