//! `sync`: one page of a stream (friends, friend requests, blacklist, conversations, groups,
//! messages) after a seq.

use super::Ctx;
use crate::cli::stream;
use crate::show::{answer, describe_message, print_head};

/// `target`: as an administrator, whose stream.
pub async fn sync(x: &Ctx, name: &str, after: u64, limit: u32, target: Option<&str>) -> anyhow::Result<()> {
    let a = x.client.sync(stream(name)?, after, limit, target).await?;
    answer(x.json, &a, |a| {
        for i in &a.items {
            let what = match (&i.message, &i.conversation) {
                (Some(m), _) => describe_message(m),
                (_, Some(cv)) => format!("conversation with {} unread {}", cv.peer, cv.unread),
                _ => String::new(),
            };
            println!("{:>8} {}{} {}", i.seq, i.id, if i.deleted { " (deleted)" } else { "" }, what);
        }
        print_head(a.head_seq, a.more);
    })
}
