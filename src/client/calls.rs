//! Typed calls, one per operation the server serves.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{
    Backup, Client, ClientError, Conversation, Frame, ItemOutcome, LoginInfo, Message, Profile, ProfileChange, SendAck,
    Status, SyncAnswer, SyncEntry,
};
use crate::protocol::{self, wire};

fn outcomes(f: &Frame) -> Result<Vec<ItemOutcome>, ClientError> {
    let r = f.get().response_as_batch_resp().ok_or(ClientError::Unexpected("BatchResp"))?;
    Ok(r.results()
        .map(|v| v.iter().map(|i| (i.id().unwrap_or_default().to_owned(), i.code())).collect())
        .unwrap_or_default())
}

/// The profiles and missing ids of a `UserInfoResp`, and whether it was cut by size.
fn profiles(f: &Frame) -> Result<(Vec<Profile>, Vec<String>, bool), ClientError> {
    let r = f.get().response_as_user_info_resp().ok_or(ClientError::Unexpected("UserInfoResp"))?;
    let users = r.users().map(|v| v.iter().map(|p| Profile::from_wire(&p)).collect()).unwrap_or_default();
    let missing = r.missing().map(|v| v.iter().map(str::to_owned).collect()).unwrap_or_default();
    Ok((users, missing, r.more()))
}

impl Client {
    pub async fn login(
        &self,
        app_id: u32,
        user_id: &str,
        ticket: &str,
        client_type: wire::ClientType,
        device_id: &str,
    ) -> Result<LoginInfo, ClientError> {
        let f = self.call(|fbb| protocol::login_req(fbb, app_id, user_id, ticket, client_type, device_id)).await?;
        let r = f.get().response_as_login_resp().ok_or(ClientError::Unexpected("LoginResp"))?;
        Ok(LoginInfo {
            session_id: r.session_id(),
            server_addr: r.server_addr().unwrap_or_default().to_owned(),
            server_time_ms: r.server_time_ms(),
            heartbeat_secs: r.heartbeat_secs(),
            idle_timeout_secs: r.idle_timeout_secs(),
            is_admin: r.is_admin(),
        })
    }

    /// A heartbeat; returns the server's clock (ms).
    pub async fn ping(&self) -> Result<u64, ClientError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let f = self
            .call(|fbb| {
                (
                    wire::Request::PingReq,
                    wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: now }).as_union_value(),
                )
            })
            .await?;
        let p = f.get().response_as_pong_resp().ok_or(ClientError::Unexpected("PongResp"))?;
        Ok(p.server_time_ms())
    }

    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call(|fbb| {
            (wire::Request::LogoutReq, wire::LogoutReq::create(fbb, &wire::LogoutReqArgs {}).as_union_value())
        })
        .await
        .map(|_| ())
    }

    /// [admin] Writes a consistent copy of the live store into the server's backup directory,
    /// as `name` (empty: the server names it).
    pub async fn backup(&self, name: &str) -> Result<Backup, ClientError> {
        let f = self
            .call(|fbb| {
                let name = fbb.create_string(name);
                let r = wire::BackupReq::create(fbb, &wire::BackupReqArgs { name: Some(name) });
                (wire::Request::BackupReq, r.as_union_value())
            })
            .await?;
        let b = f.get().response_as_backup_resp().ok_or(ClientError::Unexpected("BackupResp"))?;
        Ok(Backup {
            name: b.name().unwrap_or_default().to_owned(),
            path: b.path().unwrap_or_default().to_owned(),
            files: b.files(),
            bytes: b.bytes(),
            took_ms: b.took_ms(),
        })
    }

    /// [admin] Creates users; one outcome per user.
    pub async fn import_users(&self, users: &[Profile]) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb| {
                let v: Vec<_> = users
                    .iter()
                    .map(|u| {
                        let s = |fbb: &mut flatbuffers::FlatBufferBuilder<'static>, v: &str| Some(fbb.create_string(v));
                        let args = wire::UserProfileArgs {
                            user_id: s(fbb, &u.user_id),
                            nickname: s(fbb, &u.nickname),
                            avatar: s(fbb, &u.avatar),
                            gender: wire::Gender(u.gender),
                            birthday: s(fbb, &u.birthday),
                            location: s(fbb, &u.location),
                            signature: s(fbb, &u.signature),
                            friend_add_policy: wire::FriendAddPolicy(u.friend_add_policy),
                            silent: u.silent,
                            forbidden: u.forbidden,
                            extra: s(fbb, &u.extra),
                            ..Default::default()
                        };
                        wire::UserProfile::create(fbb, &args)
                    })
                    .collect();
                let users = fbb.create_vector(&v);
                let r = wire::ImportUserReq::create(fbb, &wire::ImportUserReqArgs { users: Some(users) });
                (wire::Request::ImportUserReq, r.as_union_value())
            })
            .await?;
        outcomes(&f)
    }

    /// [admin] Soft-deletes users.
    pub async fn delete_users(&self, ids: &[&str]) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb| {
                let v: Vec<_> = ids.iter().map(|s| fbb.create_string(s)).collect();
                let v = fbb.create_vector(&v);
                let r = wire::DeleteUserReq::create(fbb, &wire::DeleteUserReqArgs { user_ids: Some(v) });
                (wire::Request::DeleteUserReq, r.as_union_value())
            })
            .await?;
        outcomes(&f)
    }

    /// Profiles of `ids` (only `fields`, all when empty); and the ids not found. An answer cut
    /// by size is continued with the ids it did not reach.
    pub async fn get_user_info(
        &self,
        ids: &[&str],
        fields: &[wire::UserField],
    ) -> Result<(Vec<Profile>, Vec<String>), ClientError> {
        let (mut users, mut missing, mut rest) = (Vec::new(), Vec::new(), ids);
        loop {
            let (u, m, more) = self.get_user_info_page(rest, fields).await?;
            let answered = u.len() + m.len();
            users.extend(u);
            missing.extend(m);
            if !more || answered == 0 || answered >= rest.len() {
                return Ok((users, missing));
            }
            rest = &rest[answered..];
        }
    }

    /// One `GetUserInfoReq`: profiles, missing ids, and whether the answer was cut by size
    /// (then the ids after the answered ones were not looked at).
    pub async fn get_user_info_page(
        &self,
        ids: &[&str],
        fields: &[wire::UserField],
    ) -> Result<(Vec<Profile>, Vec<String>, bool), ClientError> {
        let f = self
            .call(|fbb| {
                let v: Vec<_> = ids.iter().map(|s| fbb.create_string(s)).collect();
                let v = fbb.create_vector(&v);
                let fl = fbb.create_vector(fields);
                let r = wire::GetUserInfoReq::create(
                    fbb,
                    &wire::GetUserInfoReqArgs { user_ids: Some(v), fields: Some(fl) },
                );
                (wire::Request::GetUserInfoReq, r.as_union_value())
            })
            .await?;
        profiles(&f)
    }

    pub async fn get_single_user_info(&self, id: &str) -> Result<Profile, ClientError> {
        let f = self
            .call(|fbb| {
                let u = fbb.create_string(id);
                let r = wire::GetSingleUserInfoReq::create(fbb, &wire::GetSingleUserInfoReqArgs { user_id: Some(u) });
                (wire::Request::GetSingleUserInfoReq, r.as_union_value())
            })
            .await?;
        profiles(&f)?.0.into_iter().next().ok_or(ClientError::Unexpected("empty UserInfoResp"))
    }

    pub async fn modify_user_info(&self, c: &ProfileChange) -> Result<Profile, ClientError> {
        let f = self
            .call(|fbb| {
                let s = |fbb: &mut flatbuffers::FlatBufferBuilder<'static>, v: &Option<String>| {
                    v.as_deref().map(|v| fbb.create_string(v))
                };
                let args = wire::ModifyUserInfoReqArgs {
                    user_id: s(fbb, &c.user_id),
                    nickname: s(fbb, &c.nickname),
                    avatar: s(fbb, &c.avatar),
                    gender: wire::Gender(c.gender.unwrap_or(0)),
                    set_gender: c.gender.is_some(),
                    birthday: s(fbb, &c.birthday),
                    location: s(fbb, &c.location),
                    signature: s(fbb, &c.signature),
                    friend_add_policy: wire::FriendAddPolicy(c.friend_add_policy.unwrap_or(0)),
                    set_friend_add_policy: c.friend_add_policy.is_some(),
                    extra: s(fbb, &c.extra),
                    silent: c.silent.unwrap_or(false),
                    set_silent: c.silent.is_some(),
                    forbidden: c.forbidden.unwrap_or(false),
                    set_forbidden: c.forbidden.is_some(),
                };
                let r = wire::ModifyUserInfoReq::create(fbb, &args);
                (wire::Request::ModifyUserInfoReq, r.as_union_value())
            })
            .await?;
        profiles(&f)?.0.into_iter().next().ok_or(ClientError::Unexpected("empty UserInfoResp"))
    }

    pub async fn query_online_status(&self, ids: &[&str]) -> Result<Vec<Status>, ClientError> {
        let f = self
            .call(|fbb| {
                let v: Vec<_> = ids.iter().map(|s| fbb.create_string(s)).collect();
                let v = fbb.create_vector(&v);
                let r = wire::QueryOnlineStatusReq::create(fbb, &wire::QueryOnlineStatusReqArgs { user_ids: Some(v) });
                (wire::Request::QueryOnlineStatusReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_online_status_resp().ok_or(ClientError::Unexpected("OnlineStatusResp"))?;
        Ok(r.statuses().map(|v| v.iter().map(|s| Status::from_wire(&s)).collect()).unwrap_or_default())
    }

    /// Follows the online status of `ids` for `secs` seconds (0 = the server's maximum).
    pub async fn subscribe_status(&self, ids: &[&str], secs: u32) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb| {
                let v: Vec<_> = ids.iter().map(|s| fbb.create_string(s)).collect();
                let v = fbb.create_vector(&v);
                let r = wire::SubscribeStatusReq::create(
                    fbb,
                    &wire::SubscribeStatusReqArgs { user_ids: Some(v), duration_secs: secs },
                );
                (wire::Request::SubscribeStatusReq, r.as_union_value())
            })
            .await?;
        outcomes(&f)
    }

    pub async fn unsubscribe_status(&self, ids: &[&str]) -> Result<Vec<ItemOutcome>, ClientError> {
        let f = self
            .call(|fbb| {
                let v: Vec<_> = ids.iter().map(|s| fbb.create_string(s)).collect();
                let v = fbb.create_vector(&v);
                let r = wire::UnsubscribeStatusReq::create(fbb, &wire::UnsubscribeStatusReqArgs { user_ids: Some(v) });
                (wire::Request::UnsubscribeStatusReq, r.as_union_value())
            })
            .await?;
        outcomes(&f)
    }

    /// Changes of one of my streams after `after_seq` (an administrator may name a user).
    pub async fn sync(
        &self,
        stream: wire::SyncStream,
        after_seq: u64,
        limit: u32,
        user: Option<&str>,
    ) -> Result<SyncAnswer, ClientError> {
        let f = self
            .call(|fbb| {
                let u = user.map(|u| fbb.create_string(u));
                let r = wire::SyncReq::create(fbb, &wire::SyncReqArgs { user_id: u, stream, after_seq, limit });
                (wire::Request::SyncReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_sync_resp().ok_or(ClientError::Unexpected("SyncResp"))?;
        Ok(SyncAnswer {
            items: r
                .items()
                .map(|v| {
                    v.iter()
                        .map(|i| SyncEntry {
                            seq: i.seq(),
                            id: i.id().unwrap_or_default().to_owned(),
                            deleted: i.deleted(),
                            message: i.message().map(|m| Message::from_wire(&m)),
                            conversation: i.conversation().map(|c| Conversation::from_wire(&c)),
                            group: i.group().map(|g| super::GroupInfo::from_wire(&g)),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            head_seq: r.head_seq(),
            more: r.more(),
        })
    }
}

fn p2p<'a>(fbb: &mut flatbuffers::FlatBufferBuilder<'a>, peer: &str) -> flatbuffers::WIPOffset<wire::ConvId<'a>> {
    let p = fbb.create_string(peer);
    wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: wire::ConvType::P2P, peer: Some(p) })
}

fn messages(f: &Frame) -> Result<(Vec<Message>, bool), ClientError> {
    let r = f.get().response_as_messages_resp().ok_or(ClientError::Unexpected("MessagesResp"))?;
    Ok((r.messages().map(|v| v.iter().map(|m| Message::from_wire(&m)).collect()).unwrap_or_default(), r.more()))
}

/// A page of my conversation list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    pub head_seq: u64,
    pub more: bool,
}

impl Client {
    /// Sends a one-to-one message to `to`. `as_user`: an administrator sending for a user.
    pub async fn send_message(
        &self,
        to: &str,
        client_id: &str,
        msg_type: u32,
        body: &[u8],
        as_user: Option<&str>,
    ) -> Result<SendAck, ClientError> {
        let f = self.call(|fbb| protocol::send_req(fbb, to, client_id, msg_type, body, as_user)).await?;
        SendAck::from_frame(&f)
    }

    /// Tells the sender `from` that this device received message `server_id`.
    pub async fn receive_ack(&self, from: &str, server_id: u64, seq: u64) -> Result<(), ClientError> {
        self.call(|fbb| {
            let conv = p2p(fbb, from);
            let r = wire::ReceiveAckReq::create(fbb, &wire::ReceiveAckReqArgs { conv: Some(conv), server_id, seq });
            (wire::Request::ReceiveAckReq, r.as_union_value())
        })
        .await
        .map(|_| ())
    }

    /// "I have read my conversation with `peer` up to `seq`."
    pub async fn read(&self, peer: &str, seq: u64) -> Result<(), ClientError> {
        self.call(|fbb| {
            let conv = p2p(fbb, peer);
            let r = wire::ReadReq::create(fbb, &wire::ReadReqArgs { user_id: None, conv: Some(conv), seq });
            (wire::Request::ReadReq, r.as_union_value())
        })
        .await
        .map(|_| ())
    }

    /// Recalls a message of my conversation with `peer` (`as_user`: an administrator acting).
    pub async fn recall(&self, peer: &str, server_id: u64, as_user: Option<&str>) -> Result<(), ClientError> {
        self.call(|fbb| {
            let user_id = as_user.map(|u| fbb.create_string(u));
            let conv = p2p(fbb, peer);
            let r = wire::RecallReq::create(fbb, &wire::RecallReqArgs { user_id, conv: Some(conv), server_id });
            (wire::Request::RecallReq, r.as_union_value())
        })
        .await
        .map(|_| ())
    }

    /// Messages by server id (those I may see; all, for an administrator). An answer cut by
    /// size is continued with the ids after the last message it held.
    pub async fn get_messages(&self, server_ids: &[u64], as_user: Option<&str>) -> Result<Vec<Message>, ClientError> {
        let (mut all, mut rest) = (Vec::new(), server_ids);
        loop {
            let (page, more) = self.get_messages_page(rest, as_user).await?;
            let next = page.last().and_then(|m| rest.iter().position(|&id| id == m.server_id)).map(|i| i + 1);
            all.extend(page);
            match next {
                Some(i) if more && i < rest.len() => rest = &rest[i..],
                _ => return Ok(all),
            }
        }
    }

    /// One `GetMessagesReq`: the messages found, and whether the answer was cut by size.
    pub async fn get_messages_page(
        &self,
        server_ids: &[u64],
        as_user: Option<&str>,
    ) -> Result<(Vec<Message>, bool), ClientError> {
        let f = self
            .call(|fbb| {
                let user_id = as_user.map(|u| fbb.create_string(u));
                let ids = fbb.create_vector(server_ids);
                let r = wire::GetMessagesReq::create(fbb, &wire::GetMessagesReqArgs { user_id, server_ids: Some(ids) });
                (wire::Request::GetMessagesReq, r.as_union_value())
            })
            .await?;
        messages(&f)
    }

    /// A page of my conversation with `peer`: newest first before `before_seq` (exclusive;
    /// 0 = from the newest), or oldest first after `after_seq` (exclusive) when it is non-zero.
    pub async fn history(
        &self,
        peer: &str,
        before_seq: u64,
        after_seq: u64,
        limit: u32,
        as_user: Option<&str>,
    ) -> Result<(Vec<Message>, bool), ClientError> {
        self.history_page(peer, before_seq, after_seq, false, limit, as_user).await
    }

    /// A page of my conversation with `peer`, oldest first after `after_seq` (0 = from the
    /// first message).
    pub async fn history_oldest_first(
        &self,
        peer: &str,
        after_seq: u64,
        limit: u32,
        as_user: Option<&str>,
    ) -> Result<(Vec<Message>, bool), ClientError> {
        self.history_page(peer, 0, after_seq, true, limit, as_user).await
    }

    async fn history_page(
        &self,
        peer: &str,
        before_seq: u64,
        after_seq: u64,
        oldest_first: bool,
        limit: u32,
        as_user: Option<&str>,
    ) -> Result<(Vec<Message>, bool), ClientError> {
        let f = self
            .call(|fbb| {
                let user_id = as_user.map(|u| fbb.create_string(u));
                let conv = p2p(fbb, peer);
                let r = wire::GetHistoryReq::create(
                    fbb,
                    &wire::GetHistoryReqArgs { user_id, conv: Some(conv), before_seq, after_seq, limit, oldest_first },
                );
                (wire::Request::GetHistoryReq, r.as_union_value())
            })
            .await?;
        messages(&f)
    }

    pub async fn conversations(
        &self,
        after_seq: u64,
        limit: u32,
        as_user: Option<&str>,
    ) -> Result<ConversationPage, ClientError> {
        let f = self
            .call(|fbb| {
                let user_id = as_user.map(|u| fbb.create_string(u));
                let r = wire::GetConversationsReq::create(
                    fbb,
                    &wire::GetConversationsReqArgs { user_id, after_seq, limit },
                );
                (wire::Request::GetConversationsReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_conversations_resp().ok_or(ClientError::Unexpected("ConversationsResp"))?;
        Ok(ConversationPage {
            conversations: r
                .conversations()
                .map(|v| v.iter().map(|c| Conversation::from_wire(&c)).collect())
                .unwrap_or_default(),
            head_seq: r.head_seq(),
            more: r.more(),
        })
    }

    /// Pins / mutes my conversation with `peer`; returns the updated entry.
    pub async fn update_conversation(
        &self,
        peer: &str,
        pinned: Option<bool>,
        muted: Option<bool>,
    ) -> Result<Conversation, ClientError> {
        let f = self
            .call(|fbb| {
                let conv = p2p(fbb, peer);
                let r = wire::UpdateConversationReq::create(
                    fbb,
                    &wire::UpdateConversationReqArgs {
                        user_id: None,
                        conv: Some(conv),
                        pinned: pinned.unwrap_or(false),
                        set_pinned: pinned.is_some(),
                        muted: muted.unwrap_or(false),
                        set_muted: muted.is_some(),
                    },
                );
                (wire::Request::UpdateConversationReq, r.as_union_value())
            })
            .await?;
        let r = f.get().response_as_conversations_resp().ok_or(ClientError::Unexpected("ConversationsResp"))?;
        r.conversations()
            .and_then(|v| v.iter().next().map(|c| Conversation::from_wire(&c)))
            .ok_or(ClientError::Unexpected("empty ConversationsResp"))
    }

    /// Removes my conversation with `peer` from my list (`client_only`: only tell my other
    /// devices).
    pub async fn delete_conversation(&self, peer: &str, client_only: bool) -> Result<(), ClientError> {
        self.call(|fbb| {
            let conv = p2p(fbb, peer);
            let r = wire::DeleteConversationReq::create(
                fbb,
                &wire::DeleteConversationReqArgs { user_id: None, conv: Some(conv), client_only },
            );
            (wire::Request::DeleteConversationReq, r.as_union_value())
        })
        .await
        .map(|_| ())
    }
}
