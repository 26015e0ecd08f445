//! One-to-one messages: send, read a conversation's history, recall. An administrator may act
//! for a user (`as_user`).

use super::Ctx;
use crate::show::{answer, describe_message};

/// Sends a text (`msg_type`) message; `client_id` is the idempotency key, fresh when absent.
pub async fn send(
    x: &Ctx,
    to: &str,
    text: &str,
    client_id: Option<String>,
    msg_type: u32,
    as_user: Option<&str>,
) -> anyhow::Result<()> {
    let cid = client_id.unwrap_or_else(|| format!("imctl-{}-{}", std::process::id(), imserver::now_ms()));
    let a = x.client.send_message(to, &cid, msg_type, text.as_bytes(), as_user).await?;
    answer(x.json, &a, |a| {
        println!(
            "sent: seq {} server id {} at {}{}",
            a.seq,
            a.server_id,
            a.timestamp_ms,
            if a.duplicate { " (duplicate: the original ack)" } else { "" }
        )
    })
}

/// A page of history: newest first before `before`, or oldest first after `after`.
pub async fn history(
    x: &Ctx,
    peer: &str,
    before: u64,
    after: u64,
    oldest_first: bool,
    limit: u32,
    as_user: Option<&str>,
) -> anyhow::Result<()> {
    let (msgs, more) = if oldest_first {
        x.client.history_oldest_first(peer, after, limit, as_user).await?
    } else {
        x.client.history(peer, before, after, limit, as_user).await?
    };
    answer(x.json, &serde_json::json!({"messages": msgs, "more": more}), |_| {
        for m in &msgs {
            println!("{}", describe_message(m));
        }
        println!("more {more}");
    })
}

pub async fn recall(x: &Ctx, peer: &str, server_id: u64, as_user: Option<&str>) -> anyhow::Result<()> {
    x.client.recall(peer, server_id, as_user).await?;
    println!("recalled");
    Ok(())
}
