//! `imload fanout`: the groups and their members. G groups of M members (all imported, each
//! member later on its own connection); member 0 of each group sends to it, the others
//! receive. Sending and receiving are `p2p`'s, with `Opts.group` set.

use anyhow::{bail, Context};
use imserver::client::GroupInfo;
use imserver::protocol::wire;

use crate::conn::Target;

/// Creates the users and the groups; returns each sender with its group, and the receivers.
pub async fn setup(
    t: &Target,
    admin: &str,
    run: &str,
    groups: usize,
    members: usize,
) -> anyhow::Result<(Vec<(String, String)>, Vec<String>)> {
    let name = |g: usize, i: usize| format!("ld{run}g{g}m{i}");
    let all: Vec<String> = (0..groups).flat_map(|g| (0..members).map(move |i| name(g, i))).collect();
    crate::import(t, admin, &all).await?;
    let c = t.client().await?;
    c.login(t.app, admin, &t.ticket(admin), wire::ClientType::Backend, "imload-admin").await.context("admin login")?;
    let (mut senders, mut receivers) = (Vec::new(), Vec::new());
    for g in 0..groups {
        let id = format!("ld{run}grp{g}");
        let info = GroupInfo { group_id: id.clone(), kind: 1, max_members: members as u32, ..Default::default() };
        c.create_group(&info, &[], Some(&name(g, 0))).await.with_context(|| format!("creating {id}"))?;
        let rest: Vec<String> = (1..members).map(|i| name(g, i)).collect();
        for chunk in rest.chunks(500) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let r = c.add_group_members(&id, &refs, true).await?;
            if let Some(bad) = r.iter().find(|(_, code)| *code != wire::ErrorCode::None) {
                bail!("adding {} to {id}: {:?}", bad.0, bad.1);
            }
        }
        senders.push((name(g, 0), id));
        receivers.extend(rest);
    }
    Ok((senders, receivers))
}
