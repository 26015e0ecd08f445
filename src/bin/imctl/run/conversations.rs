//! My conversation list: a page of it, pin / mute one, delete one, mark one read.

use super::Ctx;
use crate::show::{answer, describe_message, print_head};

pub async fn list(x: &Ctx, after: u64, limit: u32, as_user: Option<&str>) -> anyhow::Result<()> {
    answer(x.json, &x.client.conversations(after, limit, as_user).await?, |page| {
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
        print_head(page.head_seq, page.more);
    })
}

/// Pins or mutes (or un-) the conversation with `peer`; prints what it is now.
pub async fn update(x: &Ctx, peer: &str, pin: Option<bool>, mute: Option<bool>) -> anyhow::Result<()> {
    answer(x.json, &x.client.update_conversation(peer, pin, mute).await?, |cv| {
        println!("{}: pinned {} muted {}", cv.peer, cv.pinned, cv.muted)
    })
}

pub async fn delete(x: &Ctx, peer: &str, client_only: bool) -> anyhow::Result<()> {
    x.client.delete_conversation(peer, client_only).await?;
    println!("deleted");
    Ok(())
}

pub async fn read(x: &Ctx, peer: &str, seq: u64) -> anyhow::Result<()> {
    x.client.read(peer, seq).await?;
    println!("read up to {seq}");
    Ok(())
}
