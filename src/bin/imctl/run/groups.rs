//! `imctl group ...`: every group operation and group messages, on the SDK.

use anyhow::{anyhow, bail};
use imserver::client::{GroupChange, GroupInfo, GroupMember};

use super::{strs, Ctx};
use crate::cli_group::GroupOp;
use crate::show::{answer, describe_message, print_outcomes};

/// `ID` or `ID:ROLE`.
fn member(s: &str) -> anyhow::Result<GroupMember> {
    match s.split_once(':') {
        None => Ok(GroupMember::new(s, 0)),
        Some((id, role)) => Ok(GroupMember::new(id, role.parse().map_err(|_| anyhow!("bad role in {s}"))?)),
    }
}

fn print_group(g: &GroupInfo) {
    let kind = if g.kind == 2 { "public" } else { "private" };
    println!(
        "{} ({kind}) {:?} owner {} members {}/{}{}{}",
        g.group_id,
        g.name,
        g.owner,
        g.member_count,
        g.max_members,
        if g.mute_all { " mute-all" } else { "" },
        if g.destroyed { " DESTROYED" } else { "" }
    );
}

fn print_members(ms: &[GroupMember]) {
    for m in ms {
        let role = ["member", "admin", "owner"].get(m.role as usize).copied().unwrap_or("?");
        let muted = if m.mute_end_ms > 0 { format!(" muted until {}", m.mute_end_ms) } else { String::new() };
        println!(
            "{} {role}{}{muted}",
            m.user_id,
            if m.alias.is_empty() { String::new() } else { format!(" ({})", m.alias) }
        );
    }
}

pub async fn run(x: &Ctx, op: GroupOp) -> anyhow::Result<()> {
    let c = &x.client;
    match op {
        GroupOp::Create { id, public, name, as_user, members } => {
            let g = GroupInfo { group_id: id, kind: if public { 2 } else { 1 }, name, ..Default::default() };
            let (id, results) = c.create_group(&g, &strs(&members), as_user.as_deref()).await?;
            if !x.json {
                println!("created {id}");
            }
            print_outcomes(x.json, &results);
            Ok(())
        }
        GroupOp::Import { group, owner, public, members } => {
            let g = GroupInfo { group_id: group, kind: if public { 2 } else { 1 }, owner, ..Default::default() };
            let ms = members.iter().map(|m| member(m)).collect::<anyhow::Result<Vec<_>>>()?;
            let (id, results) = c.import_group(&g, &ms).await?;
            if !x.json {
                println!("imported {id}");
            }
            print_outcomes(x.json, &results);
            Ok(())
        }
        GroupOp::ImportMembers { group, members } => {
            let ms = members.iter().map(|m| member(m)).collect::<anyhow::Result<Vec<_>>>()?;
            print_outcomes(x.json, &c.import_group_members(&group, &ms).await?);
            Ok(())
        }
        GroupOp::Get { group } => {
            let (g, ms) = c.get_group(&group).await?;
            answer(x.json, &serde_json::json!({"group": g, "members": ms}), |_| {
                print_group(&g);
                print_members(&ms);
            })
        }
        GroupOp::Members { group, after, limit } => {
            let (ms, next, more) = c.group_members(&group, &after, limit).await?;
            answer(x.json, &serde_json::json!({"members": ms, "next": next, "more": more}), |_| {
                print_members(&ms);
                println!("next {next:?} more {more}");
            })
        }
        GroupOp::All { kind, after, limit } => groups(x, c.all_groups(kind, &after, limit).await?),
        GroupOp::Joined { kind, after, limit } => groups(x, c.joined_groups(kind, &after, limit, None).await?),
        GroupOp::Update {
            group,
            name,
            avatar,
            introduction,
            notification,
            extra,
            max_members,
            join_policy,
            history_visible,
        } => {
            let change = GroupChange {
                name,
                avatar,
                introduction,
                notification,
                extra,
                max_members,
                join_policy,
                mute_all: None,
                history_visible,
            };
            let g = c.update_group(&group, &change).await?;
            answer(x.json, &g, print_group)
        }
        GroupOp::Add { group, silent, members } => {
            print_outcomes(x.json, &c.add_group_members(&group, &strs(&members), silent).await?);
            Ok(())
        }
        GroupOp::Kick { group, members } => {
            print_outcomes(x.json, &c.delete_group_members(&group, &strs(&members)).await?);
            Ok(())
        }
        GroupOp::Exit { group } => done(c.exit_group(&group).await?, "left"),
        GroupOp::Member { group, member, alias, extra, role } => {
            let m = c.update_group_member(&group, &member, alias.as_deref(), extra.as_deref(), role).await?;
            answer(x.json, &m, |m| print_members(std::slice::from_ref(m)))
        }
        GroupOp::Destroy { group } => done(c.destroy_group(&group).await?, "destroyed"),
        GroupOp::Roles { group, users } => {
            let ms = c.group_roles(&group, &strs(&users)).await?;
            answer(x.json, &ms, |ms| print_members(ms))
        }
        GroupOp::Mute { group, secs, members } => {
            print_outcomes(x.json, &c.mute_group_members(&group, &strs(&members), secs).await?);
            Ok(())
        }
        GroupOp::MuteAll { group, off } => done(c.mute_all(&group, !off).await?, if off { "unmuted" } else { "muted" }),
        GroupOp::Muted { group } => {
            let ms = c.muted_members(&group).await?;
            answer(x.json, &ms, |ms| print_members(ms))
        }
        GroupOp::Owner { group, new_owner } => done(c.change_group_owner(&group, &new_owner).await?, "owner changed"),
        GroupOp::Apply { group, message } => {
            let (joined, req) = c.apply_join_group(&group, &message).await?;
            answer(x.json, &serde_json::json!({"joined": joined, "request": req}), |_| match &req {
                Some(r) => println!("request {} pending", r.id),
                None => println!("joined"),
            })
        }
        GroupOp::Requests { group, approve, reject } => {
            let list = match (approve, reject) {
                (Some(_), Some(_)) => bail!("--approve or --reject, not both"),
                (Some(id), None) => vec![c.handle_join_request(&group, id, true).await?],
                (None, Some(id)) => vec![c.handle_join_request(&group, id, false).await?],
                (None, None) => c.join_requests(&group).await?,
            };
            answer(x.json, &list, |list| {
                for r in list {
                    let state = ["pending", "approved", "rejected"].get(r.state as usize).copied().unwrap_or("?");
                    println!("{} {} {state} {:?}", r.id, r.user_id, r.message);
                }
            })
        }
        GroupOp::Send { group, text, client_id, as_user } => {
            let cid = client_id.unwrap_or_else(|| format!("imctl-{}-{}", std::process::id(), imserver::now_ms()));
            let a = c.send_group_message(&group, &cid, 1, text.as_bytes(), as_user.as_deref()).await?;
            answer(x.json, &a, |a| {
                println!(
                    "sent: seq {} server id {}{}",
                    a.seq,
                    a.server_id,
                    if a.duplicate { " (duplicate)" } else { "" }
                )
            })
        }
        GroupOp::History { group, before, after, oldest_first, limit } => {
            let (msgs, more) = c.group_history(&group, before, after, oldest_first, limit).await?;
            answer(x.json, &serde_json::json!({"messages": msgs, "more": more}), |_| {
                for m in &msgs {
                    println!("{}", describe_message(m));
                }
                println!("more {more}");
            })
        }
        GroupOp::CatchUp { group, after } => {
            let msgs = c.group_catch_up(&group, after).await?;
            answer(x.json, &msgs, |msgs| {
                for m in msgs {
                    println!("{}", describe_message(m));
                }
            })
        }
        GroupOp::Read { group, seq } => done(c.group_read(&group, seq).await?, "read"),
        GroupOp::Ack { group, seq } => done(c.group_receive_ack(&group, seq).await?, "acknowledged"),
        GroupOp::Recall { group, server_id } => done(c.group_recall(&group, server_id).await?, "recalled"),
        GroupOp::Receipts { group, seq } => {
            let r = c.group_receipts(&group, seq).await?;
            answer(x.json, &r, |r| {
                println!("of {} members: {} received, {} read", r.members, r.received, r.read);
                if let (Some(rec), Some(read)) = (&r.received_by, &r.read_by) {
                    println!("received: {}", rec.join(" "));
                    println!("read: {}", read.join(" "));
                }
            })
        }
    }
}

fn groups(x: &Ctx, (gs, next, more): (Vec<GroupInfo>, String, bool)) -> anyhow::Result<()> {
    answer(x.json, &serde_json::json!({"groups": gs, "next": next, "more": more}), |_| {
        for g in &gs {
            print_group(g);
        }
        println!("next {next:?} more {more}");
    })
}

fn done((): (), what: &str) -> anyhow::Result<()> {
    println!("{what}");
    Ok(())
}
