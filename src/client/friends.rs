//! Typed friendship calls.

use super::{Client, ClientError, Frame};
use crate::protocol::wire;

/// My side of a friendship.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Friend {
    pub user_id: String,
    pub remark: String,
    pub add_source: String,
    pub add_wording: String,
    pub extra: String,
    pub create_time_ms: u64,
    pub seq: u64,
}

impl Friend {
    pub fn from_wire(f: &wire::Friend<'_>) -> Friend {
        let s = |v: Option<&str>| v.unwrap_or_default().to_owned();
        Friend {
            user_id: s(f.user_id()),
            remark: s(f.remark()),
            add_source: s(f.add_source()),
            add_wording: s(f.add_wording()),
            extra: s(f.extra()),
            create_time_ms: f.create_time_ms(),
            seq: f.seq(),
        }
    }
}

/// A friend request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FriendRequestInfo {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub add_wording: String,
    pub add_source: String,
    /// 0 pending, 1 approved, 2 rejected.
    pub state: u8,
    pub read: bool,
    pub seq: u64,
}

impl FriendRequestInfo {
    pub fn from_wire(r: &wire::FriendRequest<'_>) -> FriendRequestInfo {
        FriendRequestInfo {
            id: r.id(),
            from: r.from_user().unwrap_or_default().to_owned(),
            to: r.to_user().unwrap_or_default().to_owned(),
            add_wording: r.add_wording().unwrap_or_default().to_owned(),
            add_source: r.add_source().unwrap_or_default().to_owned(),
            state: r.state().0,
            read: r.read(),
            seq: r.seq(),
        }
    }
}

/// The answer of getRelation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelationInfo {
    pub friend: Option<Friend>,
    pub is_friend: bool,
    pub in_my_blacklist: bool,
    pub in_their_blacklist: bool,
}

fn ok(f: Result<Frame, ClientError>) -> Result<(), ClientError> {
    f.map(|_| ())
}

impl Client {
    /// Adds `to` as a friend. `Ok(None)` = friends now; `Ok(Some(request))` = a request waits.
    pub async fn add_friend(
        &self,
        to: &str,
        wording: &str,
        source: &str,
        remark: &str,
    ) -> Result<Option<FriendRequestInfo>, ClientError> {
        let f = self
            .call(|fbb| {
                let to_user = fbb.create_string(to);
                let add_wording = fbb.create_string(wording);
                let add_source = fbb.create_string(source);
                let remark = fbb.create_string(remark);
                let r = wire::AddFriendReq::create(
                    fbb,
                    &wire::AddFriendReqArgs {
                        user_id: None,
                        to_user: Some(to_user),
                        remark: Some(remark),
                        add_source: Some(add_source),
                        add_wording: Some(add_wording),
                        extra: None,
                    },
                );
                (wire::Request::AddFriendReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_add_friend_resp().ok_or(ClientError::Unexpected("AddFriendResp"))?;
        Ok(if r.became_friends() { None } else { r.request().map(|q| FriendRequestInfo::from_wire(&q)) })
    }

    pub async fn delete_friend(&self, peer: &str) -> Result<(), ClientError> {
        ok(self
            .call(|fbb| {
                let p = fbb.create_string(peer);
                let r =
                    wire::DeleteFriendReq::create(fbb, &wire::DeleteFriendReqArgs { user_id: None, to_user: Some(p) });
                (wire::Request::DeleteFriendReq, r.as_union_value())
            })
            .await)
    }

    pub async fn delete_all_friends(&self) -> Result<(), ClientError> {
        ok(self
            .call(|fbb| {
                let r = wire::DeleteAllFriendsReq::create(fbb, &wire::DeleteAllFriendsReqArgs { user_id: None });
                (wire::Request::DeleteAllFriendsReq, r.as_union_value())
            })
            .await)
    }

    pub async fn update_friend(
        &self,
        peer: &str,
        remark: Option<&str>,
        extra: Option<&str>,
    ) -> Result<(), ClientError> {
        ok(self
            .call(|fbb| {
                let p = fbb.create_string(peer);
                let remark = remark.map(|v| fbb.create_string(v));
                let extra = extra.map(|v| fbb.create_string(v));
                let r = wire::UpdateFriendReq::create(
                    fbb,
                    &wire::UpdateFriendReqArgs { user_id: None, to_user: Some(p), remark, extra },
                );
                (wire::Request::UpdateFriendReq, r.as_union_value())
            })
            .await)
    }

    pub async fn get_relation(&self, peer: &str) -> Result<RelationInfo, ClientError> {
        let f = self
            .call(|fbb| {
                let p = fbb.create_string(peer);
                let r =
                    wire::GetRelationReq::create(fbb, &wire::GetRelationReqArgs { user_id: None, to_user: Some(p) });
                (wire::Request::GetRelationReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_relation_resp().ok_or(ClientError::Unexpected("RelationResp"))?;
        Ok(RelationInfo {
            friend: r.friend().map(|x| Friend::from_wire(&x)),
            is_friend: r.is_friend(),
            in_my_blacklist: r.in_my_blacklist(),
            in_their_blacklist: r.in_their_blacklist(),
        })
    }

    /// checkFriend (`black = false`) or checkBlack; one relation per user, in order.
    pub async fn check_relations(
        &self,
        users: &[&str],
        both: bool,
        black: bool,
    ) -> Result<Vec<(String, wire::Relation)>, ClientError> {
        let direction = if both { wire::CheckDirection::Both } else { wire::CheckDirection::Single };
        let f = self
            .call(|fbb| {
                let v: Vec<_> = users.iter().map(|u| fbb.create_string(u)).collect();
                let to_users = Some(fbb.create_vector(&v));
                if black {
                    let r = wire::CheckBlackReq::create(
                        fbb,
                        &wire::CheckBlackReqArgs { user_id: None, to_users, direction },
                    );
                    (wire::Request::CheckBlackReq, r.as_union_value())
                } else {
                    let r = wire::CheckFriendReq::create(
                        fbb,
                        &wire::CheckFriendReqArgs { user_id: None, to_users, direction },
                    );
                    (wire::Request::CheckFriendReq, r.as_union_value())
                }
            })
            .await?;
        let r = f.get().response_as_check_resp().ok_or(ClientError::Unexpected("CheckResp"))?;
        Ok(r.results()
            .map(|v| v.iter().map(|c| (c.user_id().unwrap_or_default().to_owned(), c.relation())).collect())
            .unwrap_or_default())
    }

    /// My friends changed after `after_seq`: (friends, head seq, more).
    pub async fn get_friends(&self, after_seq: u64, limit: u32) -> Result<(Vec<Friend>, u64, bool), ClientError> {
        let f = self
            .call(|fbb| {
                let r = wire::GetFriendsReq::create(fbb, &wire::GetFriendsReqArgs { user_id: None, after_seq, limit });
                (wire::Request::GetFriendsReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_friends_resp().ok_or(ClientError::Unexpected("FriendsResp"))?;
        Ok((
            r.friends().map(|v| v.iter().map(|x| Friend::from_wire(&x)).collect()).unwrap_or_default(),
            r.head_seq(),
            r.more(),
        ))
    }

    pub async fn add_black(&self, peer: &str) -> Result<(), ClientError> {
        ok(self
            .call(|fbb| {
                let p = fbb.create_string(peer);
                let r = wire::AddBlackReq::create(fbb, &wire::AddBlackReqArgs { user_id: None, to_user: Some(p) });
                (wire::Request::AddBlackReq, r.as_union_value())
            })
            .await)
    }

    pub async fn delete_black(&self, peer: &str) -> Result<(), ClientError> {
        ok(self
            .call(|fbb| {
                let p = fbb.create_string(peer);
                let r =
                    wire::DeleteBlackReq::create(fbb, &wire::DeleteBlackReqArgs { user_id: None, to_user: Some(p) });
                (wire::Request::DeleteBlackReq, r.as_union_value())
            })
            .await)
    }

    pub async fn friend_requests(&self) -> Result<Vec<FriendRequestInfo>, ClientError> {
        let f = self
            .call(|fbb| {
                let r = wire::GetFriendRequestsReq::create(fbb, &wire::GetFriendRequestsReqArgs { user_id: None });
                (wire::Request::GetFriendRequestsReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_friend_requests_resp().ok_or(ClientError::Unexpected("FriendRequestsResp"))?;
        Ok(r.requests().map(|v| v.iter().map(|q| FriendRequestInfo::from_wire(&q)).collect()).unwrap_or_default())
    }

    pub async fn answer_friend_request(&self, id: u64, approve: bool) -> Result<(), ClientError> {
        ok(self
            .call(|fbb| {
                if approve {
                    let r = wire::ApproveFriendRequestReq::create(
                        fbb,
                        &wire::ApproveFriendRequestReqArgs { user_id: None, request_id: id, remark: None },
                    );
                    (wire::Request::ApproveFriendRequestReq, r.as_union_value())
                } else {
                    let r = wire::RejectFriendRequestReq::create(
                        fbb,
                        &wire::RejectFriendRequestReqArgs { user_id: None, request_id: id },
                    );
                    (wire::Request::RejectFriendRequestReq, r.as_union_value())
                }
            })
            .await)
    }

    pub async fn read_all_friend_requests(&self) -> Result<(), ClientError> {
        ok(self
            .call(|fbb| {
                let r =
                    wire::ReadAllFriendRequestsReq::create(fbb, &wire::ReadAllFriendRequestsReqArgs { user_id: None });
                (wire::Request::ReadAllFriendRequestsReq, r.as_union_value())
            })
            .await)
    }
}

impl Client {
    /// Creates, deletes, or adds/removes members of one of my friend groups.
    /// `op`: "create", "delete", "add" or "remove".
    pub async fn friend_group(&self, op: &str, name: &str, members: &[&str]) -> Result<(), ClientError> {
        let op = op.to_owned();
        ok(self
            .call(|fbb| {
                let n = Some(fbb.create_string(name));
                let v: Vec<_> = members.iter().map(|m| fbb.create_string(m)).collect();
                let m = Some(fbb.create_vector(&v));
                match op.as_str() {
                    "create" => {
                        let r = wire::CreateFriendGroupReq::create(
                            fbb,
                            &wire::CreateFriendGroupReqArgs { user_id: None, name: n, members: m },
                        );
                        (wire::Request::CreateFriendGroupReq, r.as_union_value())
                    }
                    "delete" => {
                        let r = wire::DeleteFriendGroupReq::create(
                            fbb,
                            &wire::DeleteFriendGroupReqArgs { user_id: None, name: n },
                        );
                        (wire::Request::DeleteFriendGroupReq, r.as_union_value())
                    }
                    "add" => {
                        let r = wire::AddFriendGroupMemberReq::create(
                            fbb,
                            &wire::AddFriendGroupMemberReqArgs { user_id: None, name: n, members: m },
                        );
                        (wire::Request::AddFriendGroupMemberReq, r.as_union_value())
                    }
                    _ => {
                        let r = wire::RemoveFriendGroupMemberReq::create(
                            fbb,
                            &wire::RemoveFriendGroupMemberReqArgs { user_id: None, name: n, members: m },
                        );
                        (wire::Request::RemoveFriendGroupMemberReq, r.as_union_value())
                    }
                }
            })
            .await)
    }

    /// My friend groups: (name, members).
    pub async fn friend_groups(&self) -> Result<Vec<(String, Vec<String>)>, ClientError> {
        let f = self
            .call(|fbb| {
                let r = wire::GetFriendGroupsReq::create(fbb, &wire::GetFriendGroupsReqArgs { user_id: None });
                (wire::Request::GetFriendGroupsReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_friend_groups_resp().ok_or(ClientError::Unexpected("FriendGroupsResp"))?;
        Ok(r.groups()
            .map(|v| {
                v.iter()
                    .map(|g| {
                        let members = g.members().map(|m| m.iter().map(str::to_owned).collect()).unwrap_or_default();
                        (g.name().unwrap_or_default().to_owned(), members)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}
