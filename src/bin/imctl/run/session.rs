//! The session itself: the login's answer, a heartbeat, and `watch`, which stays logged in
//! and prints every push (acknowledging messages with `--ack`); and the operator's `admin
//! backup`.

use std::time::Duration;

use imserver::client::Frame;
use tokio::time::Instant;

use super::{strs, Ctx};
use crate::show::{answer, describe_push, print_outcomes};

pub fn login(x: &Ctx) -> anyhow::Result<()> {
    answer(x.json, &x.login, |i| {
        println!("logged in: session {} on {}{}", i.session_id, i.server_addr, if i.is_admin { " (admin)" } else { "" })
    })
}

pub async fn backup(x: &Ctx, name: &str) -> anyhow::Result<()> {
    let b = x.client.backup(name).await?;
    answer(x.json, &b, |b| {
        println!("backup {} written to {} ({} files, {} bytes, {} ms)", b.name, b.path, b.files, b.bytes, b.took_ms)
    })
}

pub async fn ping(x: &Ctx) -> anyhow::Result<()> {
    let t = x.client.ping().await?;
    answer(x.json, &serde_json::json!({"server_time_ms": t}), |_| println!("pong: server time {t} ms"))
}

/// Prints pushes until `secs` have passed (or forever), pinging after each heartbeat interval
/// without one; stops when the connection closes.
pub async fn watch(x: &mut Ctx, follow: &[String], secs: Option<u64>, ack: bool) -> anyhow::Result<()> {
    if !follow.is_empty() {
        print_outcomes(x.json, &x.client.subscribe_status(&strs(follow), 0).await?);
    }
    let until = secs.map(|s| Instant::now() + Duration::from_secs(s));
    // Logged in (and subscribed): from here on every push prints. Scripts that start a
    // watcher in the background may wait for this line.
    match secs {
        Some(s) => println!("watching as {}/{} for {s} s", x.user, x.device),
        None => println!("watching as {}/{} until interrupted", x.user, x.device),
    }
    let beat = Duration::from_secs(x.login.heartbeat_secs.max(1) as u64);
    loop {
        let now = Instant::now();
        if until.is_some_and(|u| now >= u) {
            break;
        }
        // Wake at the deadline, or after a heartbeat interval without pushes to ping.
        let wait = until.map_or(beat, |u| beat.min(u - now));
        match x.client.next_push(wait).await {
            Some(f) => {
                println!("{}", describe_push(&f));
                if ack {
                    acknowledge(x, &f).await?;
                }
            }
            None if until.is_some_and(|u| Instant::now() >= u) => break,
            None => {
                if x.client.ping().await.is_err() {
                    println!("connection closed");
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Tells the sender of a pushed message that it arrived, as a real client does; not for the
/// messages I sent myself (from my other devices).
async fn acknowledge(x: &Ctx, f: &Frame) -> anyhow::Result<()> {
    let got = f
        .get()
        .event_as_message_push()
        .and_then(|p| p.message())
        .map(|m| (m.from_user().unwrap_or_default().to_owned(), m.server_id(), m.seq()));
    if let Some((from, server_id, seq)) = got.filter(|g| g.0 != x.user) {
        x.client.receive_ack(&from, server_id, seq).await?;
    }
    Ok(())
}
