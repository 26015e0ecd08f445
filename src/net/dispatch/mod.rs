//! Request dispatch: one exhaustive `match` over the `Request` union (`route`). Each arm hands
//! its table to the function for that operation, which parses it into owned, typed values
//! (parse, don't validate), checks permissions, and either answers at once or returns a
//! future that asks the owning shard(s) and encodes the answer.
//!
//! - `users`: import, delete, read, modify, online status, subscriptions.
//! - `messages`: messages (one-to-one and group), conversations, incremental sync.
//! - `groups`: every group operation.
//! - `admin`: operators' requests (online backup).

mod admin;
mod friends;
mod gate;
mod groups;
mod messages;
mod users;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use super::Ctx;
use crate::config::Limits;
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::protocol::{self, wire, wire::Request};
use crate::shard::cmd::{Caller, TagOp};
use crate::shard::outbox::Outbox;
use crate::shard::Router;

/// Who is talking on a logged-in connection.
pub struct Session {
    pub app: AppId,
    /// The identity that logged in (a user or an administrator).
    pub me: UserId,
    /// The user whose devices this connection counts as; `None` for administrators.
    pub user: Option<UserId>,
    pub admin: bool,
    pub conn: ConnId,
    /// The `LoginReq.protocol_version` the client speaks (`protocol::SERVED_VERSIONS`).
    pub protocol_version: u32,
    /// The platform the client logged in from.
    pub platform: wire::ClientType,
}

pub type Answer = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

pub enum Outcome {
    /// Answered already (through the outbox).
    Done,
    /// The answer arrives when this future completes.
    Pending(Answer),
    /// Handed to a shard that answers the connection itself; the future completes once it
    /// has (or with an answer of its own when the command could not be handed over).
    Forwarded(Answer),
    /// The client logged out: this answer goes out, then the connection closes.
    Logout(Bytes),
}

/// What an operation's function gets.
#[derive(Clone, Copy)]
pub struct Cx<'a> {
    pub ctx: &'a Ctx,
    pub s: &'a Session,
    pub outbox: &'a Outbox,
    /// The request id, echoed in the answer.
    pub id: u64,
}

impl Cx<'_> {
    pub fn lim(&self) -> &Limits {
        &self.ctx.cfg.limits
    }

    pub fn router(&self) -> Router {
        self.ctx.router.clone()
    }

    /// Who asks, as callbacks name them.
    pub fn caller(&self) -> Caller {
        Caller { account: self.s.me.clone(), platform: self.s.platform }
    }
}

fn err_frame(id: u64, e: &DomainError) -> Bytes {
    e.frame(id)
}

/// `Ok` or the error, as the answer to request `id`.
fn ok_or_err(id: u64, r: Result<(), DomainError>) -> Bytes {
    match r {
        Ok(()) => protocol::ok(id),
        Err(e) => e.frame(id),
    }
}

/// Parses and routes one frame.
pub fn request(ctx: &Ctx, s: &Session, outbox: &Outbox, buf: &[u8]) -> Outcome {
    let frame = match protocol::decode_client(buf) {
        Ok(f) => f,
        Err(_) => {
            outbox.send(protocol::error(0, wire::ErrorCode::MalformedFrame, "malformed frame"));
            return Outcome::Done;
        }
    };
    ctx.metrics.request(frame.request_type());
    let id = frame.id();
    if id == 0 {
        // An answer with id 0 would read as a push: refused, and not executed.
        outbox.send(protocol::error(0, wire::ErrorCode::InvalidArgument, "request id 0 is reserved for pushes"));
        return Outcome::Done;
    }
    match route(Cx { ctx, s, outbox, id }, &frame) {
        Ok(o) => o,
        Err(Immediate::Frame(f)) => {
            outbox.send(f);
            Outcome::Done
        }
        Err(Immediate::Error(e)) => {
            outbox.send(err_frame(id, &e));
            Outcome::Done
        }
    }
}

enum Immediate {
    Frame(Bytes),
    Error(DomainError),
}

impl From<DomainError> for Immediate {
    fn from(e: DomainError) -> Self {
        Immediate::Error(e)
    }
}

fn admin_only(s: &Session) -> Result<(), DomainError> {
    if s.admin {
        Ok(())
    } else {
        Err(DomainError::PermissionDenied)
    }
}

/// The user an operation acts for: the caller, or (administrators only) the one named.
fn subject(s: &Session, named: Option<&str>) -> Result<UserId, DomainError> {
    match dw::opt_user_id(named, "user_id")? {
        None => s.user.clone().ok_or(DomainError::MissingField("user_id")),
        Some(u) if Some(&u) == s.user.as_ref() => Ok(u),
        Some(u) if s.admin => Ok(u),
        Some(_) => Err(DomainError::PermissionDenied),
    }
}

fn pending(f: impl Future<Output = Bytes> + Send + 'static) -> Result<Outcome, Immediate> {
    Ok(Outcome::Pending(Box::pin(async move { Some(f.await) })))
}

fn batch_resp(id: u64, items: &[(String, Result<(), DomainError>)]) -> Bytes {
    protocol::response(id, |fbb| {
        let results = dw::item_results(fbb, items);
        let r = wire::BatchResp::create(fbb, &wire::BatchRespArgs { results: Some(results) });
        (wire::Response::BatchResp, r.as_union_value())
    })
}

/// The request's table, or `MissingField` when the union tag and table disagree.
fn table<T>(t: Option<T>) -> Result<T, Immediate> {
    t.ok_or(Immediate::Error(DomainError::MissingField("request")))
}

fn route(cx: Cx<'_>, f: &wire::ClientFrame<'_>) -> Result<Outcome, Immediate> {
    let id = cx.id;
    match f.request_type() {
        Request::NONE => Err(Immediate::Error(DomainError::MissingField("request"))),
        Request::LoginReq => {
            Err(Immediate::Frame(protocol::error(id, wire::ErrorCode::AlreadyLoggedIn, "already logged in")))
        }
        Request::LogoutReq => Ok(Outcome::Logout(protocol::ok(id))),
        Request::PingReq => {
            let t = table(f.request_as_ping_req())?.client_time_ms();
            Err(Immediate::Frame(protocol::response(id, |fbb| {
                let p = wire::PongResp::create(
                    fbb,
                    &wire::PongRespArgs { client_time_ms: t, server_time_ms: crate::now_ms() },
                );
                (wire::Response::PongResp, p.as_union_value())
            })))
        }
        Request::ImportUserReq => users::import(cx, table(f.request_as_import_user_req())?),
        Request::DeleteUserReq => users::delete(cx, table(f.request_as_delete_user_req())?),
        Request::GetUserInfoReq => users::get(cx, table(f.request_as_get_user_info_req())?),
        Request::GetSingleUserInfoReq => users::get_single(cx, table(f.request_as_get_single_user_info_req())?),
        Request::ModifyUserInfoReq => users::modify(cx, table(f.request_as_modify_user_info_req())?),
        Request::QueryOnlineStatusReq => users::query_status(cx, table(f.request_as_query_online_status_req())?),
        Request::SubscribeStatusReq => users::subscribe(cx, table(f.request_as_subscribe_status_req())?),
        Request::UnsubscribeStatusReq => users::unsubscribe(cx, table(f.request_as_unsubscribe_status_req())?),
        Request::SyncReq => messages::sync(cx, table(f.request_as_sync_req())?),
        Request::SendMessageReq => messages::send(cx, table(f.request_as_send_message_req())?),
        Request::ReceiveAckReq => messages::receive_ack(cx, table(f.request_as_receive_ack_req())?),
        Request::ReadReq => messages::read(cx, table(f.request_as_read_req())?),
        Request::RecallReq => messages::recall(cx, table(f.request_as_recall_req())?),
        Request::GetMessagesReq => messages::get_messages(cx, table(f.request_as_get_messages_req())?),
        Request::GetHistoryReq => messages::history(cx, table(f.request_as_get_history_req())?),
        Request::GetConversationsReq => messages::get_conversations(cx, table(f.request_as_get_conversations_req())?),
        Request::UpdateConversationReq => {
            messages::update_conversation(cx, table(f.request_as_update_conversation_req())?)
        }
        Request::DeleteConversationReq => {
            messages::delete_conversation(cx, table(f.request_as_delete_conversation_req())?)
        }
        Request::AddFriendReq => friends::add(cx, table(f.request_as_add_friend_req())?),
        Request::DeleteFriendReq => friends::delete(cx, table(f.request_as_delete_friend_req())?),
        Request::DeleteAllFriendsReq => friends::delete_all(cx, table(f.request_as_delete_all_friends_req())?),
        Request::UpdateFriendReq => friends::update(cx, table(f.request_as_update_friend_req())?),
        Request::GetRelationReq => friends::get_relation(cx, table(f.request_as_get_relation_req())?),
        Request::CheckFriendReq => {
            let r = table(f.request_as_check_friend_req())?;
            friends::check(cx, r.user_id(), r.to_users(), dw::both_directions(r.direction())?, false)
        }
        Request::CheckBlackReq => {
            let r = table(f.request_as_check_black_req())?;
            friends::check(cx, r.user_id(), r.to_users(), dw::both_directions(r.direction())?, true)
        }
        Request::GetFriendsReq => friends::get_friends(cx, table(f.request_as_get_friends_req())?),
        Request::AddBlackReq => {
            let r = table(f.request_as_add_black_req())?;
            friends::black(cx, r.user_id(), r.to_user(), true)
        }
        Request::DeleteBlackReq => {
            let r = table(f.request_as_delete_black_req())?;
            friends::black(cx, r.user_id(), r.to_user(), false)
        }
        Request::GetFriendRequestsReq => friends::get_requests(cx, table(f.request_as_get_friend_requests_req())?),
        Request::ApproveFriendRequestReq => {
            let r = table(f.request_as_approve_friend_request_req())?;
            friends::answer(cx, r.user_id(), r.request_id(), true, r.remark().unwrap_or_default().to_owned())
        }
        Request::RejectFriendRequestReq => {
            let r = table(f.request_as_reject_friend_request_req())?;
            friends::answer(cx, r.user_id(), r.request_id(), false, String::new())
        }
        Request::ReadAllFriendRequestsReq => friends::read_all(cx, table(f.request_as_read_all_friend_requests_req())?),
        Request::CreateFriendGroupReq => {
            let r = table(f.request_as_create_friend_group_req())?;
            friends::tag(cx, r.user_id(), r.name(), r.members(), TagOp::Create)
        }
        Request::DeleteFriendGroupReq => {
            let r = table(f.request_as_delete_friend_group_req())?;
            friends::tag(cx, r.user_id(), r.name(), None, TagOp::Delete)
        }
        Request::AddFriendGroupMemberReq => {
            let r = table(f.request_as_add_friend_group_member_req())?;
            friends::tag(cx, r.user_id(), r.name(), r.members(), TagOp::Add)
        }
        Request::RemoveFriendGroupMemberReq => {
            let r = table(f.request_as_remove_friend_group_member_req())?;
            friends::tag(cx, r.user_id(), r.name(), r.members(), TagOp::Remove)
        }
        Request::GetFriendGroupsReq => friends::get_tags(cx, table(f.request_as_get_friend_groups_req())?),
        Request::CreateGroupReq => groups::create(cx, table(f.request_as_create_group_req())?),
        Request::GetGroupReq => groups::get(cx, table(f.request_as_get_group_req())?),
        Request::GetAllGroupsReq => groups::get_all(cx, table(f.request_as_get_all_groups_req())?),
        Request::GetGroupMembersReq => groups::members(cx, table(f.request_as_get_group_members_req())?),
        Request::UpdateGroupReq => groups::update(cx, table(f.request_as_update_group_req())?),
        Request::AddGroupMembersReq => groups::add(cx, table(f.request_as_add_group_members_req())?),
        Request::DeleteGroupMembersReq => groups::remove(cx, table(f.request_as_delete_group_members_req())?),
        Request::ExitGroupReq => groups::exit(cx, table(f.request_as_exit_group_req())?),
        Request::UpdateGroupMemberReq => groups::update_member(cx, table(f.request_as_update_group_member_req())?),
        Request::DestroyGroupReq => groups::destroy(cx, table(f.request_as_destroy_group_req())?),
        Request::GetJoinedGroupsReq => groups::joined(cx, table(f.request_as_get_joined_groups_req())?),
        Request::GetRoleInGroupReq => groups::roles(cx, table(f.request_as_get_role_in_group_req())?),
        Request::ForbidSendMsgReq => groups::forbid(cx, table(f.request_as_forbid_send_msg_req())?),
        Request::MuteAllReq => groups::mute_all(cx, table(f.request_as_mute_all_req())?),
        Request::GetMutedMembersReq => groups::muted(cx, table(f.request_as_get_muted_members_req())?),
        Request::ChangeGroupOwnerReq => groups::change_owner(cx, table(f.request_as_change_group_owner_req())?),
        Request::ApplyJoinGroupReq => groups::apply(cx, table(f.request_as_apply_join_group_req())?),
        Request::HandleJoinRequestReq => groups::handle_request(cx, table(f.request_as_handle_join_request_req())?),
        Request::GetJoinRequestsReq => groups::requests(cx, table(f.request_as_get_join_requests_req())?),
        Request::ImportGroupReq => groups::import(cx, table(f.request_as_import_group_req())?),
        Request::ImportGroupMembersReq => groups::import_members(cx, table(f.request_as_import_group_members_req())?),
        Request::GetGroupReceiptsReq => groups::receipts(cx, table(f.request_as_get_group_receipts_req())?),
        Request::BackupReq => admin::backup(cx, table(f.request_as_backup_req())?),
        // A union member newer than this server (the generated enum is open, so a wildcard
        // is unavoidable; every known member is listed above).
        _ => Err(Immediate::Frame(protocol::error(id, wire::ErrorCode::UnknownOperation, "unknown operation"))),
    }
}
