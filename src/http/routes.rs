//! `POST /v1/<area>/<operation>` -> the request table it carries. The paths are the original
//! system's (`/user/importUser`, `/friendship/add`, `/group/createGroup`, ...) under `/v1`;
//! operations it had no path for are named the same way. `docs/http-api.md` has this table.

use crate::protocol::wire::Request;

/// (path, request) for every operation the HTTP API serves: all but login, logout and ping,
/// which belong to a connection.
pub const ROUTES: &[(&str, Request)] = &[
    ("/v1/user/importUser", Request::ImportUserReq),
    ("/v1/user/deleteUser", Request::DeleteUserReq),
    ("/v1/user/data/getUserInfo", Request::GetUserInfoReq),
    ("/v1/user/data/getSingleUserInfo", Request::GetSingleUserInfoReq),
    ("/v1/user/data/modifyUserInfo", Request::ModifyUserInfoReq),
    ("/v1/user/queryOnlineStatus", Request::QueryOnlineStatusReq),
    ("/v1/user/subscribeStatus", Request::SubscribeStatusReq),
    ("/v1/user/unsubscribeStatus", Request::UnsubscribeStatusReq),
    ("/v1/sync", Request::SyncReq),
    ("/v1/friendship/add", Request::AddFriendReq),
    ("/v1/friendship/delete", Request::DeleteFriendReq),
    ("/v1/friendship/deleteAll", Request::DeleteAllFriendsReq),
    ("/v1/friendship/update", Request::UpdateFriendReq),
    ("/v1/friendship/getRelation", Request::GetRelationReq),
    ("/v1/friendship/checkFriend", Request::CheckFriendReq),
    ("/v1/friendship/checkBlack", Request::CheckBlackReq),
    ("/v1/friendship/get", Request::GetFriendsReq),
    ("/v1/friendship/addBlack", Request::AddBlackReq),
    ("/v1/friendship/deleteBlack", Request::DeleteBlackReq),
    ("/v1/friendshipRequest/getFriendRequest", Request::GetFriendRequestsReq),
    ("/v1/friendshipRequest/approveFriendRequest", Request::ApproveFriendRequestReq),
    ("/v1/friendshipRequest/rejectFriendRequest", Request::RejectFriendRequestReq),
    ("/v1/friendshipRequest/readAllFriendRequest", Request::ReadAllFriendRequestsReq),
    ("/v1/friendshipGroup/create", Request::CreateFriendGroupReq),
    ("/v1/friendshipGroup/delete", Request::DeleteFriendGroupReq),
    ("/v1/friendshipGroup/addMember", Request::AddFriendGroupMemberReq),
    ("/v1/friendshipGroup/removeMember", Request::RemoveFriendGroupMemberReq),
    ("/v1/friendshipGroup/get", Request::GetFriendGroupsReq),
    ("/v1/group/createGroup", Request::CreateGroupReq),
    ("/v1/group/get", Request::GetGroupReq),
    ("/v1/group/getAll", Request::GetAllGroupsReq),
    ("/v1/group/getGroupMember", Request::GetGroupMembersReq),
    ("/v1/group/update", Request::UpdateGroupReq),
    ("/v1/group/addMember", Request::AddGroupMembersReq),
    ("/v1/group/deleteMember", Request::DeleteGroupMembersReq),
    ("/v1/group/exitGroup", Request::ExitGroupReq),
    ("/v1/group/updateMember", Request::UpdateGroupMemberReq),
    ("/v1/group/destroyGroup", Request::DestroyGroupReq),
    ("/v1/group/getJoinedGroup", Request::GetJoinedGroupsReq),
    ("/v1/group/getRoleInGroup", Request::GetRoleInGroupReq),
    ("/v1/group/forbidSendMsg", Request::ForbidSendMsgReq),
    ("/v1/group/muteAll", Request::MuteAllReq),
    ("/v1/group/getGroupShuttedUin", Request::GetMutedMembersReq),
    ("/v1/group/changeGroupOwner", Request::ChangeGroupOwnerReq),
    ("/v1/group/applyJoinGroup", Request::ApplyJoinGroupReq),
    ("/v1/group/handleJoinRequest", Request::HandleJoinRequestReq),
    ("/v1/group/getJoinRequests", Request::GetJoinRequestsReq),
    ("/v1/group/import", Request::ImportGroupReq),
    ("/v1/group/importMember", Request::ImportGroupMembersReq),
    ("/v1/group/getReceipts", Request::GetGroupReceiptsReq),
    ("/v1/group/sendMsg", Request::SendMessageReq),
    ("/v1/conversation/get", Request::GetConversationsReq),
    ("/v1/conversation/update", Request::UpdateConversationReq),
    ("/v1/conversation/delete", Request::DeleteConversationReq),
    ("/v1/message/sendMessage", Request::SendMessageReq),
    ("/v1/message/send", Request::SendMessageReq),
    ("/v1/message/getMessage", Request::GetMessagesReq),
    ("/v1/message/getHistoryMessage", Request::GetHistoryReq),
    ("/v1/message/withdrawMessage", Request::RecallReq),
    ("/v1/group/withdrawMessage", Request::RecallReq),
    ("/v1/message/read", Request::ReadReq),
    ("/v1/message/receiveAck", Request::ReceiveAckReq),
    ("/v1/admin/backup", Request::BackupReq),
];

/// The request a path carries.
pub fn route(path: &str) -> Option<Request> {
    ROUTES.iter().find(|(p, _)| *p == path).map(|&(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json;

    #[test]
    fn every_operation_but_the_connections_own_has_a_path_and_a_table() {
        for r in Request::ENUM_VALUES.iter().filter(|r| r.0 > Request::PingReq.0) {
            assert!(ROUTES.iter().any(|(_, x)| x == r), "{:?} has no path", r.variant_name());
        }
        for (path, r) in ROUTES {
            let name = r.variant_name().unwrap();
            assert!(json::object(name).is_some(), "{path}: no table {name}");
            assert_eq!(route(path), Some(*r));
        }
        assert_eq!(route("/v1/user/login"), None);
    }
}
