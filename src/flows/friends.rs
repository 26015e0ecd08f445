//! Friendship as sequences of one-sided shard steps. An add asks the adder's shard (already
//! friends? room for one more?), then the target's (blacklist, policy: writes its side or a
//! request), then the adder's (writes its side); a change that affects sending then tells the
//! pair's conversation shard. A crash between the steps leaves a one-way friendship (a legal
//! state: deletes are one-way too) that the client's retry of the unanswered operation
//! completes, since every step is idempotent.

use crate::domain::friend::{AddInfo, FriendRequest, Inbound};
use crate::domain::ids::{AppId, ConnId, ConvId, Pair, UserId};
use crate::domain::DomainError;
use crate::shard::cmd::{
    AnswerFriendRequest, Befriended, BlackAdd, BlackDelete, Caller, FriendAddSide, FriendDelete, FriendInbound,
    FriendPrecheck, GetFriendRequests, PairChanged,
};
use crate::shard::gather::ask;
use crate::shard::Router;

/// What an add did.
pub enum Added {
    /// Friends now, both sides written.
    Friends,
    /// The target's policy asks for approval: the request waits (if one was written).
    Requested(Option<FriendRequest>),
}

/// An add friend request: `me` adds `peer` with `info`.
pub struct AddFriend {
    pub app: AppId,
    pub me: UserId,
    pub peer: UserId,
    pub info: AddInfo,
    /// An administrator adds for `me`: the target's policy does not apply.
    pub by_admin: bool,
    pub origin: Option<ConnId>,
    /// Who asked (after-hook events name them).
    pub by: Caller,
}

pub async fn add(router: Router, a: AddFriend) -> Result<Added, DomainError> {
    let AddFriend { app, me, peer, info, by_admin, origin, by } = a;
    let (mine, theirs) = (router.user_shard(app, &me), router.user_shard(app, &peer));
    let (m, p) = (me.clone(), peer.clone());
    let i_have_them = ask(&router, mine, |reply| FriendPrecheck { app, user: m, peer: p, reply }.into()).await??;
    let (m, p, i) = (me.clone(), peer.clone(), info.clone());
    let inbound =
        ask(&router, theirs, |reply| FriendInbound { app, user: p, from: m, info: i, by_admin, reply }.into())
            .await??;
    match inbound {
        (_, _, true) if i_have_them => Err(DomainError::AlreadyFriends),
        (Inbound::Requested, request, _) => Ok(Added::Requested(request)),
        (Inbound::Added, _, they_had_me) => {
            let (m, p) = (me.clone(), peer.clone());
            // My side completes the friendship: it reports it (also when my side was there
            // already, if theirs is new).
            let report = Some(Befriended { initiator: me.clone(), by, client_cmd: "friend_add", always: !they_had_me });
            ask(&router, mine, |reply| FriendAddSide { app, user: m, peer: p, info, origin, report, reply }.into())
                .await??;
            pair_changed(&router, app, &me, &peer).await;
            Ok(Added::Friends)
        }
    }
}

/// Deletes `me`'s side of the friendship with `peer`, or of every friendship (`None`), and
/// tells each pair's conversation shard.
pub async fn delete(
    router: Router,
    (app, me, peer): (AppId, UserId, Option<UserId>),
    origin: Option<ConnId>,
    by: Caller,
) -> Result<(), DomainError> {
    let shard = router.user_shard(app, &me);
    let (m, named) = (me.clone(), peer.clone());
    let r = ask(&router, shard, |reply| FriendDelete { app, user: m, peer, origin, by, reply }.into())
        .await
        .and_then(|r| r);
    if let (Err(_), Some(p)) = (&r, &named) {
        // Perhaps a retry after an interrupted delete: make sure the pair's shard knows.
        pair_changed(&router, app, &me, p).await;
    }
    for p in &r? {
        pair_changed(&router, app, &me, p).await;
    }
    Ok(())
}

/// Adds `peer` to `me`'s blacklist (or removes it), then tells the pair's shard.
pub async fn black(
    router: Router,
    (app, me, peer): (AppId, UserId, UserId),
    add: bool,
    origin: Option<ConnId>,
    by: Caller,
) -> Result<(), DomainError> {
    let shard = router.user_shard(app, &me);
    let (m, p) = (me.clone(), peer.clone());
    let r = if add {
        ask(&router, shard, |reply| BlackAdd { app, user: m, peer: p, origin, by, reply }.into()).await
    } else {
        ask(&router, shard, |reply| BlackDelete { app, user: m, peer: p, origin, by, reply }.into()).await
    };
    // Also after `AlreadyInBlacklist` / `NotInBlacklist`: a retry of an interrupted change
    // must still reach the pair's shard.
    pair_changed(&router, app, &me, &peer).await;
    r?
}

/// `me` answers friend request `id`.
pub struct AnswerRequest {
    pub app: AppId,
    pub me: UserId,
    pub id: u64,
    pub approve: bool,
    /// My remark for the new friend (approvals).
    pub remark: String,
    pub origin: Option<ConnId>,
    /// Who asked (after-hook events name them).
    pub by: Caller,
}

/// Approves or rejects a request; an approval writes my side, then the requester's.
pub async fn answer(router: Router, a: AnswerRequest) -> Result<(), DomainError> {
    let AnswerRequest { app, me, id, approve, remark, origin, by } = a;
    let shard = router.user_shard(app, &me);
    if approve {
        // The requester must have room for one more friend too: checked before anything
        // changes (two approvals racing for one requester can pass it by one each).
        let m = me.clone();
        let list = ask(&router, shard, |reply| GetFriendRequests { app, user: m, reply }.into()).await;
        if let Some(from) =
            list.ok().and_then(|r| r.ok()).and_then(|l| l.into_iter().find(|q| q.id == id)).map(|q| q.from)
        {
            let m = me.clone();
            let theirs = router.user_shard(app, &from);
            ask(&router, theirs, |reply| FriendPrecheck { app, user: from, peer: m, reply }.into()).await??;
        }
    }
    let m = me.clone();
    let req =
        ask(&router, shard, |reply| AnswerFriendRequest { app, user: m, id, approve, remark, origin, reply }.into())
            .await??;
    if approve {
        // The requester's side, with what they said when they asked.
        let (from, m) = (req.from.clone(), me.clone());
        let info = req.info.clone();
        let theirs = router.user_shard(app, &from);
        // The requester's side completes the friendship, and reports it.
        let report = Some(Befriended { initiator: from.clone(), by, client_cmd: "friend_response", always: true });
        let side = ask(&router, theirs, |reply| {
            FriendAddSide { app, user: from, peer: m, info, origin: None, report, reply }.into()
        })
        .await;
        // My side is written whatever happens to theirs: the pair's shard must know.
        pair_changed(&router, app, &me, &req.from).await;
        side??;
    }
    Ok(())
}

/// Tells the pair's conversation shard that their relations changed, and waits for it.
async fn pair_changed(router: &Router, app: AppId, a: &UserId, b: &UserId) {
    if let Some(pair) = Pair::new(a, b) {
        let shard = router.conv_shard(app, &ConvId::P2p(pair.clone()));
        let _ = ask(router, shard, |done| PairChanged { app, pair, done }.into()).await;
    }
}
