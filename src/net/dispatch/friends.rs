//! Friendship requests: parsed here, run by one shard or by a flow (`flows::friends`) for
//! the two-sided operations, and answered.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::{err_frame, ok_or_err, pending, subject, Cx, Immediate, Outcome};
use crate::callbacks::Event;
use crate::domain::friend::{AddInfo, FriendEntry};
use crate::domain::ids::UserId;
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::flows::{self, friends};
use crate::protocol::{self, wire};
use crate::shard::cmd::{
    FriendTag, FriendUpdate, GetFriendRequests, GetFriendTags, GetFriends, ReadAllFriendRequests, Relation, Relations,
    TagOp,
};
use crate::shard::gather::{ask, scatter};
use crate::shard::wire_friends::{friend_wire, request_wire};

type R = Result<Outcome, Immediate>;

/// The other user of a friendship operation, never oneself.
fn peer_of(me: &UserId, named: Option<&str>) -> Result<UserId, DomainError> {
    let p = dw::user_id(named, "to_user")?;
    if &p == me {
        return Err(DomainError::FriendSelf);
    }
    Ok(p)
}

fn text(s: Option<&str>) -> String {
    s.unwrap_or_default().to_owned()
}

pub fn add(cx: Cx<'_>, r: wire::AddFriendReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let peer = peer_of(&me, r.to_user())?;
    let info = AddInfo {
        remark: text(r.remark()),
        add_source: text(r.add_source()),
        add_wording: text(r.add_wording()),
        extra: text(r.extra()),
    };
    info.validate()?;
    let gate = cx.gate(Event::SnsPrevFriendAdd, || {
        let mut f = Map::new();
        f.insert("Requester_Account".into(), cx.s.me.as_str().into());
        f.insert("From_Account".into(), me.as_str().into());
        let friend = serde_json::json!({
            "To_Account": peer.as_str(),
            "Remark": info.remark,
            "AddSource": info.add_source,
            "AddWording": info.add_wording,
        });
        f.insert("FriendList".into(), Value::Array(vec![friend]));
        f.insert("ForceAddFlags".into(), u8::from(cx.s.admin).into());
        f
    });
    let by = cx.caller();
    let a = friends::AddFriend { app: cx.s.app, me, peer, info, by_admin: cx.s.admin, origin: Some(cx.s.conn), by };
    let (router, id) = (cx.router(), cx.id);
    pending(async move {
        if let Err(e) = gate.passed().await {
            return err_frame(id, &e);
        }
        match flows::detached(friends::add(router, a)).await {
            Ok(friends::Added::Friends) => add_resp(id, true, None),
            Ok(friends::Added::Requested(request)) => add_resp(id, false, request.as_ref()),
            Err(e) => err_frame(id, &e),
        }
    })
}

fn add_resp(id: u64, became_friends: bool, request: Option<&crate::domain::friend::FriendRequest>) -> Bytes {
    protocol::response(id, |fbb| {
        let request = request.map(|r| request_wire(fbb, r));
        let r = wire::AddFriendResp::create(fbb, &wire::AddFriendRespArgs { became_friends, request });
        (wire::Response::AddFriendResp, r.as_union_value())
    })
}

pub fn delete(cx: Cx<'_>, r: wire::DeleteFriendReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let peer = peer_of(&me, r.to_user())?;
    delete_friends(cx, me, Some(peer))
}

pub fn delete_all(cx: Cx<'_>, r: wire::DeleteAllFriendsReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    delete_friends(cx, me, None)
}

fn delete_friends(cx: Cx<'_>, me: UserId, peer: Option<UserId>) -> R {
    let (router, app, id, origin) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn));
    let by = cx.caller();
    pending(async move { ok_or_err(id, flows::detached(friends::delete(router, (app, me, peer), origin, by)).await) })
}

pub fn update(cx: Cx<'_>, r: wire::UpdateFriendReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let peer = peer_of(&me, r.to_user())?;
    let (remark, extra) = (r.remark().map(str::to_owned), r.extra().map(str::to_owned));
    if remark.is_none() && extra.is_none() {
        return Err(DomainError::MissingField("remark or extra").into());
    }
    let (router, app, id, origin) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn));
    pending(async move {
        let shard = router.user_shard(app, &me);
        let r = ask(&router, shard, |reply| FriendUpdate { app, user: me, peer, remark, extra, origin, reply }.into())
            .await;
        ok_or_err(id, r.and_then(|r| r).map(|_| ()))
    })
}

pub fn get_relation(cx: Cx<'_>, r: wire::GetRelationReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let peer = peer_of(&me, r.to_user())?;
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let (m, p) = (me.clone(), peer.clone());
        let mine = ask(&router, router.user_shard(app, &me), |reply| Relation { app, user: m, peer: p, reply }.into())
            .await
            .and_then(|r| r);
        let (m, p) = (me.clone(), peer.clone());
        let theirs =
            ask(&router, router.user_shard(app, &peer), |reply| Relation { app, user: p, peer: m, reply }.into())
                .await
                .and_then(|r| r);
        match (mine, theirs) {
            (Ok((friend, my_black)), Ok((_, their_black))) => relation_resp(id, friend.as_ref(), my_black, their_black),
            (Err(e), _) | (_, Err(e)) => err_frame(id, &e),
        }
    })
}

fn relation_resp(id: u64, friend: Option<&FriendEntry>, in_my_blacklist: bool, in_their_blacklist: bool) -> Bytes {
    protocol::response(id, |fbb| {
        let is_friend = friend.is_some();
        let friend = friend.map(|f| friend_wire(fbb, f));
        let r = wire::RelationResp::create(
            fbb,
            &wire::RelationRespArgs { friend, is_friend, in_my_blacklist, in_their_blacklist },
        );
        (wire::Response::RelationResp, r.as_union_value())
    })
}

/// checkFriend (`black = false`) and checkBlack (`black = true`).
pub fn check(
    cx: Cx<'_>,
    user_id: Option<&str>,
    to_users: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<&str>>>,
    both: bool,
    black: bool,
) -> R {
    let me = subject(cx.s, user_id)?;
    let targets = dw::user_ids(to_users, cx.lim().max_batch)?;
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        // (owner, peer) questions, each asked of the owner's shard.
        let mut pairs: Vec<(UserId, (UserId, UserId))> =
            targets.iter().map(|t| (me.clone(), (me.clone(), t.clone()))).collect();
        if both {
            pairs.extend(targets.iter().map(|t| (t.clone(), (t.clone(), me.clone()))));
        }
        let answers = scatter(&router, app, pairs, |pairs, reply| Relations { app, pairs, reply }.into()).await;
        let mut rel = std::collections::HashMap::new();
        for a in answers {
            match a {
                Ok(list) => rel.extend(list),
                Err(e) => return err_frame(id, &e),
            }
        }
        let has = |owner: &UserId, peer: &UserId| {
            rel.get(&(owner.clone(), peer.clone())).map(|&(f, b)| if black { b } else { f }).unwrap_or(false)
        };
        let results: Vec<(String, wire::Relation)> = targets
            .iter()
            .map(|t| {
                let a_to_b = has(&me, t);
                let b_to_a = both && has(t, &me);
                let r = match (a_to_b, b_to_a) {
                    (true, true) => wire::Relation::Both,
                    (true, false) => wire::Relation::AToB,
                    (false, true) => wire::Relation::BToA,
                    (false, false) => wire::Relation::None,
                };
                (t.to_string(), r)
            })
            .collect();
        protocol::response(id, |fbb| {
            let v: Vec<_> = results
                .iter()
                .map(|(u, r)| {
                    let u = fbb.create_string(u);
                    wire::CheckResult::create(fbb, &wire::CheckResultArgs { user_id: Some(u), relation: *r })
                })
                .collect();
            let v = fbb.create_vector(&v);
            let r = wire::CheckResp::create(fbb, &wire::CheckRespArgs { results: Some(v) });
            (wire::Response::CheckResp, r.as_union_value())
        })
    })
}

pub fn get_friends(cx: Cx<'_>, r: wire::GetFriendsReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let (after, limit) = (r.after_seq(), crate::domain::sync::page_size(r.limit(), cx.lim().max_page));
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let shard = router.user_shard(app, &me);
        match ask(&router, shard, |reply| GetFriends { app, user: me, after, limit, reply }.into())
            .await
            .and_then(|r| r)
        {
            Ok((list, head, more)) => protocol::response(id, |fbb| {
                let v: Vec<_> = list.iter().map(|f| friend_wire(fbb, f)).collect();
                let v = fbb.create_vector(&v);
                let r =
                    wire::FriendsResp::create(fbb, &wire::FriendsRespArgs { friends: Some(v), head_seq: head, more });
                (wire::Response::FriendsResp, r.as_union_value())
            }),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn black(cx: Cx<'_>, user_id: Option<&str>, to_user: Option<&str>, add: bool) -> R {
    let me = subject(cx.s, user_id)?;
    let peer = peer_of(&me, to_user)?;
    let (router, app, id, origin) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn));
    let by = cx.caller();
    pending(
        async move { ok_or_err(id, flows::detached(friends::black(router, (app, me, peer), add, origin, by)).await) },
    )
}

pub fn get_requests(cx: Cx<'_>, r: wire::GetFriendRequestsReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let shard = router.user_shard(app, &me);
        match ask(&router, shard, |reply| GetFriendRequests { app, user: me, reply }.into()).await.and_then(|r| r) {
            Ok(list) => protocol::response(id, |fbb| {
                let v: Vec<_> = list.iter().map(|q| request_wire(fbb, q)).collect();
                let v = fbb.create_vector(&v);
                let r = wire::FriendRequestsResp::create(fbb, &wire::FriendRequestsRespArgs { requests: Some(v) });
                (wire::Response::FriendRequestsResp, r.as_union_value())
            }),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn answer(cx: Cx<'_>, user_id: Option<&str>, request_id: u64, approve: bool, remark: String) -> R {
    let me = subject(cx.s, user_id)?;
    let (origin, by) = (Some(cx.s.conn), cx.caller());
    let a = friends::AnswerRequest { app: cx.s.app, me, id: request_id, approve, remark, origin, by };
    let (router, id) = (cx.router(), cx.id);
    pending(async move { ok_or_err(id, flows::detached(friends::answer(router, a)).await) })
}

pub fn read_all(cx: Cx<'_>, r: wire::ReadAllFriendRequestsReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let (router, app, id, origin) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn));
    pending(async move {
        let shard = router.user_shard(app, &me);
        let r = ask(&router, shard, |reply| ReadAllFriendRequests { app, user: me, origin, reply }.into()).await;
        ok_or_err(id, r.and_then(|r| r))
    })
}

/// Friend tags (friend groups on the wire): create, delete, add or remove members.
pub fn tag(
    cx: Cx<'_>,
    user_id: Option<&str>,
    name: Option<&str>,
    members: Option<flatbuffers::Vector<'_, flatbuffers::ForwardsUOffset<&str>>>,
    op: TagOp,
) -> R {
    let me = subject(cx.s, user_id)?;
    let name = name.ok_or(DomainError::MissingField("name"))?.to_owned();
    crate::domain::friend::valid_tag_name(&name)?;
    let members = match (op, members) {
        (TagOp::Delete, _) => Vec::new(),
        // A tag may be created empty.
        (TagOp::Create, m) if m.is_none_or(|v| v.is_empty()) => Vec::new(),
        (_, m) => dw::user_ids(m, cx.lim().max_batch)?,
    };
    let (router, app, id, origin) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn));
    pending(async move {
        let shard = router.user_shard(app, &me);
        let r = ask(&router, shard, |reply| FriendTag { app, user: me, name, op, members, origin, reply }.into()).await;
        ok_or_err(id, r.and_then(|r| r))
    })
}

pub fn get_tags(cx: Cx<'_>, r: wire::GetFriendGroupsReq<'_>) -> R {
    let me = subject(cx.s, r.user_id())?;
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let shard = router.user_shard(app, &me);
        match ask(&router, shard, |reply| GetFriendTags { app, user: me, reply }.into()).await.and_then(|r| r) {
            Ok(tags) => protocol::response(id, |fbb| {
                let v: Vec<_> = tags
                    .iter()
                    .map(|(n, m)| {
                        let name = fbb.create_string(n);
                        let ms: Vec<_> = m.iter().map(|u| fbb.create_string(u.as_str())).collect();
                        let members = fbb.create_vector(&ms);
                        wire::FriendGroupInfo::create(
                            fbb,
                            &wire::FriendGroupInfoArgs { name: Some(name), members: Some(members) },
                        )
                    })
                    .collect();
                let v = fbb.create_vector(&v);
                let r = wire::FriendGroupsResp::create(fbb, &wire::FriendGroupsRespArgs { groups: Some(v) });
                (wire::Response::FriendGroupsResp, r.as_union_value())
            }),
            Err(e) => err_frame(id, &e),
        }
    })
}
