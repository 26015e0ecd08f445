//! Friendship: add and delete friends, list them, one relation, check several, the
//! blacklist, friend requests (answer, mark read, list) and friend groups.

use anyhow::bail;
use imserver::client::FriendRequestInfo;

use super::{strs, Ctx};
use crate::show::{answer, print_head};

/// Befriends `to`, or sends a request when they approve friends first.
pub async fn add(x: &Ctx, to: &str, wording: &str, source: &str, remark: &str) -> anyhow::Result<()> {
    match x.client.add_friend(to, wording, source, remark).await? {
        None => println!("friends with {to}"),
        Some(r) => println!("request {} sent to {to} (waiting for approval)", r.id),
    }
    Ok(())
}

/// Removes `peer` (my side only), or every friend with `all`.
pub async fn delete(x: &Ctx, peer: Option<&str>, all: bool) -> anyhow::Result<()> {
    match (peer, all) {
        (_, true) => x.client.delete_all_friends().await?,
        (Some(p), false) => x.client.delete_friend(p).await?,
        (None, false) => bail!("name a friend or pass --all"),
    }
    println!("deleted");
    Ok(())
}

pub async fn list(x: &Ctx, after: u64, limit: u32) -> anyhow::Result<()> {
    let (list, head, more) = x.client.get_friends(after, limit).await?;
    answer(x.json, &serde_json::json!({"friends": list, "head_seq": head, "more": more}), |_| {
        for f in &list {
            println!("{:<16} remark {:?} source {:?} seq {}", f.user_id, f.remark, f.add_source, f.seq);
        }
        print_head(head, more);
    })
}

pub async fn relation(x: &Ctx, peer: &str) -> anyhow::Result<()> {
    answer(x.json, &x.client.get_relation(peer).await?, |r| {
        println!(
            "{peer}: friend {} in my blacklist {} in their blacklist {}",
            r.is_friend, r.in_my_blacklist, r.in_their_blacklist
        )
    })
}

/// Friendship with `users` (or with `black`, blacklisting), one way or `both`.
pub async fn check(x: &Ctx, users: &[String], both: bool, black: bool) -> anyhow::Result<()> {
    for (u, r) in x.client.check_relations(&strs(users), both, black).await? {
        println!("{u}: {}", r.variant_name().unwrap_or("?"));
    }
    Ok(())
}

/// Blacklists `peer`, or takes them off with `remove`.
pub async fn black(x: &Ctx, peer: &str, remove: bool) -> anyhow::Result<()> {
    if remove {
        x.client.delete_black(peer).await?;
    } else {
        x.client.add_black(peer).await?;
    }
    println!("ok");
    Ok(())
}

/// Answers requests (by id, or the pending one from a user), marks all read with `read_all`,
/// then lists the requests I received.
pub async fn requests(
    x: &Ctx,
    approve: Option<u64>,
    reject: Option<u64>,
    approve_from: Option<&str>,
    reject_from: Option<&str>,
    read_all: bool,
) -> anyhow::Result<()> {
    let mut answers = vec![];
    answers.extend(approve.map(|id| (id, true)));
    answers.extend(reject.map(|id| (id, false)));
    if approve_from.is_some() || reject_from.is_some() {
        let list = x.client.friend_requests().await?;
        if let Some(u) = approve_from {
            answers.push((pending_from(&list, u)?, true));
        }
        if let Some(u) = reject_from {
            answers.push((pending_from(&list, u)?, false));
        }
    }
    for (id, yes) in answers {
        x.client.answer_friend_request(id, yes).await?;
    }
    if read_all {
        x.client.read_all_friend_requests().await?;
    }
    answer(x.json, &x.client.friend_requests().await?, |list| {
        for r in list {
            let state = ["pending", "approved", "rejected"].get(r.state as usize).unwrap_or(&"?");
            println!(
                "{:>20} from {:<12} {state}{} {:?}",
                r.id,
                r.from,
                if r.read { "" } else { " (new)" },
                r.add_wording
            );
        }
    })
}

/// The id of the pending request `from` sent me.
fn pending_from(list: &[FriendRequestInfo], from: &str) -> anyhow::Result<u64> {
    match list.iter().find(|r| r.from == from && r.state == 0) {
        Some(r) => Ok(r.id),
        None => bail!("no pending friend request from {from}"),
    }
}

/// Creates, deletes, adds `members` to or removes them from the groups named, in that order,
/// then lists every group.
pub async fn groups(
    x: &Ctx,
    create: Option<String>,
    delete: Option<String>,
    add: Option<String>,
    remove: Option<String>,
    members: &[String],
) -> anyhow::Result<()> {
    let m = strs(members);
    for (op, name) in [("create", create), ("delete", delete), ("add", add), ("remove", remove)] {
        if let Some(n) = name {
            x.client.friend_group(op, &n, &m).await?;
        }
    }
    for (name, members) in x.client.friend_groups().await? {
        println!("{name}: {}", members.join(", "));
    }
    Ok(())
}
