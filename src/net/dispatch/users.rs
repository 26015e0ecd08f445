//! Users: import, delete, read, modify, online status and subscriptions.

use bytes::Bytes;

use super::{admin_only, batch_resp, err_frame, pending, subject, Cx, Immediate, Outcome};
use crate::domain::ids::{AppId, UserId};
use crate::domain::page::{self, WireSize};
use crate::domain::user::{FieldMask, UserRecord};
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::flows::{self, users};
use crate::protocol::{self, wire};
use crate::shard::cmd::{GetUsers, ItemOutcomes, QueryStatus, Reply, Subscribe, Unsubscribe};
use crate::shard::gather::{by_user, scatter};
use crate::shard::{Router, ShardCmd};

type R = Result<Outcome, Immediate>;

pub fn import(cx: Cx<'_>, r: wire::ImportUserReq<'_>) -> R {
    admin_only(cx.s)?;
    let users = r.users().ok_or(DomainError::MissingField("users"))?;
    if users.len() > cx.lim().max_batch {
        return Err(DomainError::BatchTooLarge.into());
    }
    // Profiles that do not parse fail alone; the rest go to their shards.
    let mut parsed = Vec::with_capacity(users.len());
    let mut seen = std::collections::HashSet::with_capacity(users.len());
    for p in users.iter() {
        let label = p.user_id().unwrap_or_default().to_owned();
        let r = dw::parse_profile(&p).and_then(|u| {
            if seen.insert(u.id.clone()) {
                Ok(u)
            } else {
                Err(DomainError::InvalidArgument("user_id appears twice in the batch"))
            }
        });
        parsed.push((label, r));
    }
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let good: Vec<UserRecord> = parsed.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
        let mut done =
            flows::detached(async move { Ok(users::import(router, app, good).await) }).await.unwrap_or_default();
        let items: Vec<(String, Result<(), DomainError>)> = parsed
            .into_iter()
            .map(|(label, r)| match r {
                Err(e) => (label, Err(e)),
                Ok(u) => (label, done.remove(&u.id).unwrap_or(Err(DomainError::ShuttingDown))),
            })
            .collect();
        batch_resp(id, &items)
    })
}

pub fn delete(cx: Cx<'_>, r: wire::DeleteUserReq<'_>) -> R {
    admin_only(cx.s)?;
    let ids = dw::user_ids(r.user_ids(), cx.lim().max_batch)?;
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let asked = ids.clone();
        let done =
            flows::detached(async move { Ok(users::delete(router, app, asked).await) }).await.unwrap_or_default();
        outcomes_resp(id, ids, done)
    })
}

pub fn get(cx: Cx<'_>, r: wire::GetUserInfoReq<'_>) -> R {
    let ids = dw::user_ids(r.user_ids(), cx.lim().max_batch)?;
    let fields: Vec<wire::UserField> = r.fields().map(|v| v.iter().collect()).unwrap_or_default();
    let mask = FieldMask::from_fields(&fields)?;
    pending(get_users(cx.router(), cx.s.app, cx.id, ids, mask, cx.s.admin, false))
}

pub fn get_single(cx: Cx<'_>, r: wire::GetSingleUserInfoReq<'_>) -> R {
    let u = dw::user_id(r.user_id(), "user_id")?;
    pending(get_users(cx.router(), cx.s.app, cx.id, vec![u], FieldMask::ALL, cx.s.admin, true))
}

pub fn modify(cx: Cx<'_>, r: wire::ModifyUserInfoReq<'_>) -> R {
    let user = subject(cx.s, r.user_id())?;
    let change = dw::parse_change(&r);
    let (by_admin, origin) = (cx.s.admin, Some(cx.s.conn));
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    let m = users::Modify { app, user, change, by_admin, origin, by: cx.caller() };
    pending(async move {
        match flows::detached(users::modify(router, m)).await {
            Ok(rec) => user_info_resp(id, &[rec], &[], FieldMask::ALL, false),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn query_status(cx: Cx<'_>, r: wire::QueryOnlineStatusReq<'_>) -> R {
    let ids = dw::user_ids(r.user_ids(), cx.lim().max_batch)?;
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let keyed = keyed(&ids);
        let answers = scatter(&router, app, keyed, |users, reply| QueryStatus { app, users, reply }.into()).await;
        let mut got: std::collections::HashMap<UserId, dw::UserStatus> =
            answers.into_iter().flatten().map(|st| (st.user.clone(), st)).collect();
        let statuses: Vec<dw::UserStatus> =
            ids.into_iter().map(|u| got.remove(&u).unwrap_or(dw::UserStatus { user: u, devices: vec![] })).collect();
        protocol::response(id, |fbb| {
            let v: Vec<_> = statuses.iter().map(|st| dw::user_status(fbb, st)).collect();
            let v = fbb.create_vector(&v);
            let r = wire::OnlineStatusResp::create(fbb, &wire::OnlineStatusRespArgs { statuses: Some(v) });
            (wire::Response::OnlineStatusResp, r.as_union_value())
        })
    })
}

pub fn subscribe(cx: Cx<'_>, r: wire::SubscribeStatusReq<'_>) -> R {
    let me = cx.s.user.clone().ok_or(DomainError::PermissionDenied)?;
    let ids = dw::user_ids(r.user_ids(), cx.lim().max_batch)?;
    let max = cx.lim().max_subscription_secs;
    let secs = match r.duration_secs() {
        0 => max,
        n if n > max => return Err(DomainError::InvalidArgument("duration_secs").into()),
        n => n,
    };
    let until_ms = crate::now_ms() + secs as u64 * 1000;
    let app = cx.s.app;
    per_user(cx, ids, move |targets, reply| Subscribe { app, subscriber: me.clone(), targets, until_ms, reply }.into())
}

pub fn unsubscribe(cx: Cx<'_>, r: wire::UnsubscribeStatusReq<'_>) -> R {
    let me = cx.s.user.clone().ok_or(DomainError::PermissionDenied)?;
    let ids = dw::user_ids(r.user_ids(), cx.lim().max_batch)?;
    let app = cx.s.app;
    per_user(cx, ids, move |targets, reply| Unsubscribe { app, subscriber: me.clone(), targets, reply }.into())
}

/// Asks each of `ids`' shards (`make` builds the command for its share) and answers one
/// outcome per id, in request order.
fn per_user(
    cx: Cx<'_>,
    ids: Vec<UserId>,
    make: impl Fn(Vec<UserId>, Reply<ItemOutcomes>) -> ShardCmd + Send + 'static,
) -> R {
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let answers = scatter(&router, app, keyed(&ids), make).await;
        outcomes_resp(id, ids, by_user(answers))
    })
}

/// Users keyed by themselves, for `scatter`.
fn keyed(ids: &[UserId]) -> Vec<(UserId, UserId)> {
    ids.iter().map(|u| (u.clone(), u.clone())).collect()
}

fn outcomes_resp(id: u64, ids: Vec<UserId>, mut done: users::Outcomes) -> Bytes {
    let items: Vec<_> = ids
        .into_iter()
        .map(|u| {
            let r = done.remove(&u).unwrap_or(Err(DomainError::ShuttingDown));
            (u.to_string(), r)
        })
        .collect();
    batch_resp(id, &items)
}

fn user_info_resp(
    id: u64,
    users: &[UserRecord],
    missing: &[(UserId, DomainError)],
    mask: FieldMask,
    more: bool,
) -> Bytes {
    protocol::response(id, |fbb| {
        let us: Vec<_> = users.iter().map(|u| dw::profile(fbb, u, mask)).collect();
        let us = fbb.create_vector(&us);
        let ms: Vec<_> = missing.iter().map(|(u, _)| fbb.create_string(u.as_str())).collect();
        let ms = fbb.create_vector(&ms);
        let r = wire::UserInfoResp::create(fbb, &wire::UserInfoRespArgs { users: Some(us), missing: Some(ms), more });
        (wire::Response::UserInfoResp, r.as_union_value())
    })
}

async fn get_users(
    router: Router,
    app: AppId,
    id: u64,
    ids: Vec<UserId>,
    mask: FieldMask,
    admin: bool,
    single: bool,
) -> Bytes {
    let keyed = keyed(&ids);
    let mut got =
        by_user(scatter(&router, app, keyed, |users, reply| GetUsers { app, users, admin, reply }.into()).await);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let (mut bytes, mut more) = (0usize, false);
    for u in ids {
        match got.remove(&u) {
            Some(Ok(rec)) => {
                // Cut by size: the ids from here on are not answered (`more`).
                bytes += rec.wire_size();
                if bytes > page::PAGE_BYTES && !found.is_empty() {
                    more = true;
                    break;
                }
                found.push(rec)
            }
            Some(Err(e)) => missing.push((u, e)),
            None => missing.push((u, DomainError::ShuttingDown)),
        }
    }
    if single {
        if let Some((_, e)) = missing.first() {
            return err_frame(id, e);
        }
    }
    user_info_resp(id, &found, &missing, mask, more)
}
