//! Users: import and delete (administrators), read profiles, modify one, online status.

use imserver::client::{Profile, ProfileChange};

use super::{strs, Ctx};
use crate::cli::{field, ModifyFlags};
use crate::show::{answer, devices, print_outcomes, print_profile};

/// Creates users from `ID` or `ID:NICKNAME`, each with the same `extra`.
pub async fn import(x: &Ctx, users: &[String], extra: Option<String>) -> anyhow::Result<()> {
    let profiles: Vec<Profile> = users
        .iter()
        .map(|u| {
            let (id, nick) = u.split_once(':').unwrap_or((u, ""));
            Profile { nickname: nick.to_owned(), extra: extra.clone().unwrap_or_default(), ..Profile::new(id) }
        })
        .collect();
    print_outcomes(x.json, &x.client.import_users(&profiles).await?);
    Ok(())
}

pub async fn delete(x: &Ctx, users: &[String]) -> anyhow::Result<()> {
    print_outcomes(x.json, &x.client.delete_users(&strs(users)).await?);
    Ok(())
}

/// Profiles (only `fields` when given), then the users not found.
pub async fn get_many(x: &Ctx, users: &[String], fields: &[String]) -> anyhow::Result<()> {
    let fields = fields.iter().map(|f| field(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let (found, missing) = x.client.get_user_info(&strs(users), &fields).await?;
    answer(x.json, &serde_json::json!({"users": found, "missing": missing}), |_| {
        found.iter().for_each(print_profile);
        for m in &missing {
            println!("{m}: not found");
        }
    })
}

pub async fn get_one(x: &Ctx, user: &str) -> anyhow::Result<()> {
    answer(x.json, &x.client.get_single_user_info(user).await?, print_profile)
}

/// Changes the flags given (of `--target`, or mine) and prints the profile as it now is.
pub async fn modify(x: &Ctx, f: ModifyFlags) -> anyhow::Result<()> {
    let change = ProfileChange {
        user_id: f.target,
        nickname: f.nickname,
        avatar: f.avatar,
        gender: f.gender,
        birthday: f.birthday,
        location: f.location,
        signature: f.signature,
        friend_add_policy: f.friend_policy,
        extra: f.extra,
        silent: f.silent,
        forbidden: f.forbidden,
    };
    answer(x.json, &x.client.modify_user_info(&change).await?, print_profile)
}

pub async fn status(x: &Ctx, users: &[String]) -> anyhow::Result<()> {
    answer(x.json, &x.client.query_online_status(&strs(users)).await?, |st| {
        for s in st {
            println!("{}: {} {}", s.user_id, if s.online { "online" } else { "offline" }, devices(s).join(" "));
        }
    })
}
