//! `imctl`: the command-line client, on the SDK. Readable output by default, `--json` for
//! scripts. Mints its own ticket when given `--secret`.
//!
//! `cli.rs` holds the flags and subcommands (`cli_group.rs` those of `group`), `show.rs` how answers, pushes and errors print,
//! `run/` the commands, one file per area. This file parses the command line, logs in and
//! hands the command to its area. An error prints as one line on stderr and exits with 1.

mod cli;
mod cli_group;
mod run;
mod show;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use cli::{client_type, AdminOp, Cli, Cmd};
use imserver::auth::ticket;
use imserver::client::Client;
use run::{conversations, friends, groups, messages, session, sync, users, Ctx};

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

/// A ticket for `--user` of `--app`, minted with `--secret`, valid for `ttl` seconds from now.
fn mint(cli: &Cli, ttl: u64) -> String {
    ticket::sign(cli.app as u64, &cli.user, cli.secret.as_bytes(), now_secs(), ttl)
}

/// `sign` prints a ticket; every other command connects, logs in and runs.
async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Sign { ttl } = cli.cmd {
        println!("{}", mint(&cli, ttl));
        return Ok(());
    }
    let ticket = match &cli.ticket {
        Some(t) => t.clone(),
        None => mint(&cli, 86400),
    };
    let client = if cli.tls || cli.ca.is_some() {
        let tls = imserver::client::connect::Tls::new(cli.ca.clone(), cli.server_name.clone());
        Client::connect_tls(&cli.addr, &tls).await
    } else {
        Client::connect(&cli.addr).await
    };
    let client = client.with_context(|| format!("connecting to {}", cli.addr))?;
    let login = client
        .login(cli.app, &cli.user, &ticket, client_type(&cli.client_type)?, &cli.device)
        .await
        .context("login")?;
    let mut x = Ctx { client, login, json: cli.json, user: cli.user, device: cli.device };
    command(&mut x, cli.cmd).await
}

/// The one match over the commands: each goes to its area's function with its flags.
async fn command(x: &mut Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Sign { .. } => unreachable!("signed before connecting"),
        Cmd::Login => session::login(x),
        Cmd::Ping => session::ping(x).await,
        Cmd::Watch { follow, secs, ack } => session::watch(x, &follow, secs, ack).await,
        Cmd::ImportUsers { users, extra } => users::import(x, &users, extra).await,
        Cmd::DeleteUsers { users } => users::delete(x, &users).await,
        Cmd::GetUsers { users, fields } => users::get_many(x, &users, &fields).await,
        Cmd::GetUser { user } => users::get_one(x, &user).await,
        Cmd::Modify(flags) => users::modify(x, flags).await,
        Cmd::Status { users } => users::status(x, &users).await,
        Cmd::Sync { stream, after, limit, target } => sync::sync(x, &stream, after, limit, target.as_deref()).await,
        Cmd::Send { to, text, client_id, msg_type, as_user } => {
            messages::send(x, &to, &text, client_id, msg_type, as_user.as_deref()).await
        }
        Cmd::History { peer, before, after, oldest_first, limit, as_user } => {
            messages::history(x, &peer, before, after, oldest_first, limit, as_user.as_deref()).await
        }
        Cmd::Recall { peer, server_id, as_user } => messages::recall(x, &peer, server_id, as_user.as_deref()).await,
        Cmd::Conversations { after, limit, as_user } => conversations::list(x, after, limit, as_user.as_deref()).await,
        Cmd::Conversation { peer, pin, mute } => conversations::update(x, &peer, pin, mute).await,
        Cmd::DeleteConversation { peer, client_only } => conversations::delete(x, &peer, client_only).await,
        Cmd::Read { peer, seq } => conversations::read(x, &peer, seq).await,
        Cmd::AddFriend { to, wording, source, remark } => friends::add(x, &to, &wording, &source, &remark).await,
        Cmd::DeleteFriend { peer, all } => friends::delete(x, peer.as_deref(), all).await,
        Cmd::Friends { after, limit } => friends::list(x, after, limit).await,
        Cmd::Relation { peer } => friends::relation(x, &peer).await,
        Cmd::Check { users, both, black } => friends::check(x, &users, both, black).await,
        Cmd::Black { peer, remove } => friends::black(x, &peer, remove).await,
        Cmd::Requests { approve, reject, approve_from, reject_from, read_all } => {
            friends::requests(x, approve, reject, approve_from.as_deref(), reject_from.as_deref(), read_all).await
        }
        Cmd::FriendGroups { create, delete, add, remove, members } => {
            friends::groups(x, create, delete, add, remove, &members).await
        }
        Cmd::Group { op } => groups::run(x, op).await,
        Cmd::Admin { op: AdminOp::Backup { name } } => session::backup(x, &name).await,
    }
}
