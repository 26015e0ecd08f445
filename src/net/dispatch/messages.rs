//! Messages, conversations and incremental sync.

use bytes::Bytes;

use super::{err_frame, ok_or_err, pending, subject, Cx, Immediate, Outcome};
use crate::domain::conversation::ConvView;
use crate::domain::friend::{BlackEntry, FriendEntry, FriendRequest};
use crate::domain::group::GroupRecord;
use crate::domain::ids::{ConvId, ConvRef, UserId};
use crate::domain::message::{self, history_range, MessageRecord};
use crate::domain::sync::{page_size, Stream, SyncPage};
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::shard::cmd::{
    DeleteConversation, GetConversations, GetHistory, GetMessages, GroupReceived, Origin, ReadConversation, ReadStream,
    RecallMessage, Receipt, SendMessage, UpdateConversation,
};
use crate::shard::gather::ask;
use crate::shard::wire_friends::{black_wire, friend_wire, request_wire};
use crate::shard::{Rejected, RouteError, ShardCmd};

type R = Result<Outcome, Immediate>;

pub fn send(cx: Cx<'_>, r: wire::SendMessageReq<'_>) -> R {
    let from = subject(cx.s, r.from_user())?;
    let conv = dw::parse_conv(r.conv())?;
    let client_id = r.client_id().ok_or(DomainError::MissingField("client_id"))?.to_owned();
    let body = r.body().map(|b| b.bytes().to_vec()).unwrap_or_default();
    message::validate_send(&client_id, &body, cx.lim().max_message_body)?;
    let id = conv_of(&conv, &from, "cannot message oneself")?;
    let (router, app) = (cx.router(), cx.s.app);
    let answered = cx.outbox.take_request();
    let cmd = SendMessage {
        app,
        from,
        to: conv,
        client_id,
        msg_type: r.msg_type(),
        body,
        origin: Origin { outbox: cx.outbox.clone(), req_id: cx.id, platform: cx.s.platform, answered },
        hook: Default::default(),
    }
    .into();
    let shard = router.conv_shard(app, &id);
    // The conversation's shard answers this connection directly once the message is durable
    // and then drops `answered`: the send counts as in flight until then.
    submit(cx, router, shard, cmd)
}

/// The conversation `me` names as `conv`; a conversation with oneself is refused as `what`.
fn conv_of(conv: &ConvRef, me: &UserId, what: &'static str) -> Result<ConvId, DomainError> {
    conv.conv_id(me).ok_or(DomainError::InvalidArgument(what))
}

pub fn receive_ack(cx: Cx<'_>, r: wire::ReceiveAckReq<'_>) -> R {
    let me = cx.s.user.clone().ok_or(DomainError::PermissionDenied)?;
    let conv = dw::parse_conv(r.conv())?;
    let (server_id, seq) = (r.server_id(), r.seq());
    let router = cx.router();
    let sender = match conv {
        ConvRef::P2p(sender) => sender,
        ConvRef::Group(group) => {
            // A group's receive-ack is cumulative: "received up to seq" (`server_id` unused).
            let shard = router.conv_shard(cx.s.app, &ConvId::Group(group.clone()));
            let origin = Origin {
                outbox: cx.outbox.clone(),
                req_id: cx.id,
                platform: cx.s.platform,
                answered: cx.outbox.take_request(),
            };
            let cmd = GroupReceived { app: cx.s.app, group, user: me, seq, origin }.into();
            let _ = server_id;
            return submit(cx, router, shard, cmd);
        }
    };
    let shard = router.user_shard(cx.s.app, &sender);
    let origin = Origin {
        outbox: cx.outbox.clone(),
        req_id: cx.id,
        platform: cx.s.platform,
        answered: cx.outbox.take_request(),
    };
    // The sender's shard answers this connection directly (see `send`).
    let cmd = Receipt { app: cx.s.app, user: sender, by: me, server_id, seq, origin }.into();
    submit(cx, router, shard, cmd)
}

/// Hands a command that answers its connection itself to a shard: at once, or by a future
/// when the shard's inbox is full. While one of the connection's commands waits for room,
/// later ones wait behind it (the session's futures take room in the order they were made),
/// so a client's commands reach the shards in the order it sent them.
fn submit(cx: Cx<'_>, router: crate::shard::Router, shard: usize, cmd: ShardCmd) -> R {
    let cmd = if cx.outbox.waiting() == 0 {
        match router.try_submit(shard, cmd) {
            Ok(()) => return Ok(Outcome::Done),
            Err(Rejected { reason: RouteError::Closed, .. }) => return Err(DomainError::ShuttingDown.into()),
            Err(Rejected { reason: RouteError::Full, cmd }) => *cmd,
        }
    } else {
        cmd
    };
    let (waiting, id) = (cx.outbox.start_waiting(), cx.id);
    Ok(Outcome::Forwarded(Box::pin(async move {
        let sent = router.send(shard, cmd).await;
        drop(waiting);
        match sent {
            Ok(()) => None,
            Err(_) => Some(err_frame(id, &DomainError::ShuttingDown)),
        }
    })))
}

pub fn read(cx: Cx<'_>, r: wire::ReadReq<'_>) -> R {
    let user = subject(cx.s, r.user_id())?;
    let conv = dw::parse_conv(r.conv())?;
    let seq = r.seq();
    let (router, app, id, origin, by) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn), cx.caller());
    pending(async move {
        let shard = router.user_shard(app, &user);
        let res =
            ask(&router, shard, |reply| ReadConversation { app, user, conv, seq, origin, by, reply }.into()).await;
        ok_or_err(id, res.and_then(|r| r))
    })
}

pub fn recall(cx: Cx<'_>, r: wire::RecallReq<'_>) -> R {
    let by = subject(cx.s, r.user_id())?;
    let conv = dw::parse_conv(r.conv())?;
    let conv = conv_of(&conv, &by, "conv")?;
    let (server_id, by_admin) = (r.server_id(), cx.s.admin);
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let shard = router.conv_shard(app, &conv);
        let res = ask(&router, shard, |reply| RecallMessage { app, conv, by, by_admin, server_id, reply }.into()).await;
        ok_or_err(id, res.and_then(|r| r))
    })
}

pub fn get_messages(cx: Cx<'_>, r: wire::GetMessagesReq<'_>) -> R {
    let viewer = subject(cx.s, r.user_id())?;
    let ids: Vec<u64> = r.server_ids().ok_or(DomainError::MissingField("server_ids"))?.iter().collect();
    if ids.len() > cx.lim().max_batch {
        return Err(DomainError::BatchTooLarge.into());
    }
    let (router, app, id, admin) = (cx.router(), cx.s.app, cx.id, cx.s.admin);
    pending(async move {
        let shard = router.user_shard(app, &viewer);
        let v = viewer.clone();
        match ask(&router, shard, |reply| GetMessages { app, viewer: v, admin, ids, reply }.into())
            .await
            .and_then(|r| r)
        {
            Ok((msgs, more)) => messages_resp(id, &msgs, &viewer, more),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn history(cx: Cx<'_>, r: wire::GetHistoryReq<'_>) -> R {
    let viewer = subject(cx.s, r.user_id())?;
    let conv = dw::parse_conv(r.conv())?;
    let conv = conv_of(&conv, &viewer, "conv")?;
    let range = history_range(r.before_seq(), r.after_seq(), r.oldest_first(), cx.s.protocol_version);
    let limit = page_size(r.limit(), cx.lim().max_page);
    let (router, app, id, admin) = (cx.router(), cx.s.app, cx.id, cx.s.admin);
    pending(async move {
        let shard = router.conv_shard(app, &conv);
        let (v, admin) = (viewer.clone(), admin);
        let cmd = |reply| GetHistory { app, conv, viewer: v, admin, range, limit, reply }.into();
        match ask(&router, shard, cmd).await.and_then(|r| r) {
            Ok((msgs, more)) => messages_resp(id, &msgs, &viewer, more),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn get_conversations(cx: Cx<'_>, r: wire::GetConversationsReq<'_>) -> R {
    let user = subject(cx.s, r.user_id())?;
    let (after, limit) = (r.after_seq(), page_size(r.limit(), cx.lim().max_page));
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let shard = router.user_shard(app, &user);
        let u = user.clone();
        match ask(&router, shard, |reply| GetConversations { app, user: u, after, limit, reply }.into())
            .await
            .and_then(|r| r)
        {
            Ok((list, head, more)) => conversations_resp(id, &list, &user, head, more),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn update_conversation(cx: Cx<'_>, r: wire::UpdateConversationReq<'_>) -> R {
    let user = subject(cx.s, r.user_id())?;
    let conv = dw::parse_conv(r.conv())?;
    let pinned = r.set_pinned().then(|| r.pinned());
    let muted = r.set_muted().then(|| r.muted());
    if pinned.is_none() && muted.is_none() {
        return Err(DomainError::MissingField("set_pinned or set_muted").into());
    }
    let (router, app, id, origin) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn));
    pending(async move {
        let shard = router.user_shard(app, &user);
        let u = user.clone();
        let res =
            ask(&router, shard, |reply| UpdateConversation { app, user: u, conv, pinned, muted, origin, reply }.into())
                .await
                .and_then(|r| r);
        match res {
            Ok(v) => conversations_resp(id, std::slice::from_ref(&v), &user, v.stream_seq, false),
            Err(e) => err_frame(id, &e),
        }
    })
}

pub fn delete_conversation(cx: Cx<'_>, r: wire::DeleteConversationReq<'_>) -> R {
    let user = subject(cx.s, r.user_id())?;
    let conv = dw::parse_conv(r.conv())?;
    let client_only = r.client_only();
    let (router, app, id, origin) = (cx.router(), cx.s.app, cx.id, Some(cx.s.conn));
    pending(async move {
        let shard = router.user_shard(app, &user);
        let res =
            ask(&router, shard, |reply| DeleteConversation { app, user, conv, client_only, origin, reply }.into())
                .await;
        ok_or_err(id, res.and_then(|r| r))
    })
}

pub fn sync(cx: Cx<'_>, r: wire::SyncReq<'_>) -> R {
    let user = subject(cx.s, r.user_id())?;
    let stream = Stream::from_wire(r.stream()).ok_or(DomainError::InvalidArgument("stream"))?;
    let (after, limit) = (r.after_seq(), page_size(r.limit(), cx.lim().max_page));
    let (router, app, id) = (cx.router(), cx.s.app, cx.id);
    pending(async move {
        let shard = router.user_shard(app, &user);
        let u = user.clone();
        match ask(&router, shard, |reply| ReadStream { app, user: u, stream, after, limit, reply }.into())
            .await
            .and_then(|r| r)
        {
            Ok(page) => sync_resp(id, &page, &user),
            Err(e) => err_frame(id, &e),
        }
    })
}

fn messages_resp(id: u64, msgs: &[MessageRecord], viewer: &UserId, more: bool) -> Bytes {
    protocol::response(id, |fbb| {
        let v: Vec<_> = msgs.iter().map(|m| dw::message(fbb, m, viewer, 0)).collect();
        let v = fbb.create_vector(&v);
        let r = wire::MessagesResp::create(fbb, &wire::MessagesRespArgs { messages: Some(v), more });
        (wire::Response::MessagesResp, r.as_union_value())
    })
}

fn conversations_resp(id: u64, list: &[ConvView], viewer: &UserId, head: u64, more: bool) -> Bytes {
    protocol::response(id, |fbb| {
        let v: Vec<_> = list.iter().map(|c| dw::conversation(fbb, c, viewer)).collect();
        let v = fbb.create_vector(&v);
        let r = wire::ConversationsResp::create(
            fbb,
            &wire::ConversationsRespArgs { conversations: Some(v), head_seq: head, more },
        );
        (wire::Response::ConversationsResp, r.as_union_value())
    })
}

/// A sync page with each stream's typed payload (item ids: `ItemId::wire_id`).
fn sync_resp(id: u64, page: &SyncPage, viewer: &UserId) -> Bytes {
    protocol::response(id, |fbb| {
        let mut items = Vec::with_capacity(page.changes.len());
        for c in &page.changes {
            let (mut friend, mut friend_request, mut black) = (None, None, None);
            let (mut message, mut conversation, mut group) = (None, None, None);
            let payload = c.payload.as_deref();
            match page.stream {
                Stream::Messages => {
                    let m = payload.and_then(|p| MessageRecord::decode(p).ok());
                    message = m.map(|m| dw::message(fbb, &m, viewer, c.seq.0));
                }
                Stream::Conversations => {
                    let v = payload.and_then(|p| ConvView::decode_full(p).ok());
                    conversation = v.map(|v| dw::conversation(fbb, &v, viewer));
                }
                Stream::Friends => {
                    friend = payload.and_then(|p| FriendEntry::decode(p).ok()).map(|f| friend_wire(fbb, &f));
                }
                Stream::Blacklist => {
                    black = payload.and_then(|p| BlackEntry::decode(p).ok()).map(|b| black_wire(fbb, &b));
                }
                Stream::FriendRequests => {
                    friend_request = payload.and_then(|p| FriendRequest::decode(p).ok()).map(|r| request_wire(fbb, &r));
                }
                Stream::JoinedGroups => {
                    let g = payload.and_then(|p| GroupRecord::decode(p).ok());
                    group = g.map(|g| dw::group_info(fbb, &g, c.seq.0));
                }
            }
            let item_id = fbb.create_string(&c.item.wire_id());
            items.push(wire::SyncItem::create(
                fbb,
                &wire::SyncItemArgs {
                    seq: c.seq.0,
                    id: Some(item_id),
                    deleted: c.payload.is_none(),
                    message,
                    conversation,
                    friend,
                    friend_request,
                    black,
                    group,
                },
            ));
        }
        let items = fbb.create_vector(&items);
        let r = wire::SyncResp::create(
            fbb,
            &wire::SyncRespArgs {
                stream: page.stream.to_wire(),
                items: Some(items),
                head_seq: page.head.0,
                more: page.more,
            },
        );
        (wire::Response::SyncResp, r.as_union_value())
    })
}
