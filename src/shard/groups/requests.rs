//! Join requests to public groups: apply (a member at once when the policy is free join),
//! list, approve or reject (owner and admins). The admins and the applicant are told.

use crate::callbacks::Event;
use crate::domain::group::{self, Apply, JoinRequest, MemberRecord};
use crate::domain::ids::UserId;
use crate::domain::DomainError;
use crate::protocol::wire::GroupRole;
use crate::shard::cmd::{ApplyJoin, GetJoinRequests, HandleJoinRequest, Side};
use crate::shard::common::or_reply;
use crate::shard::state::{GroupState, Shard};
use crate::store::Batch;

use super::{event_push, Effect};

/// The owner and admins of a group.
fn managers(st: &GroupState) -> Vec<UserId> {
    st.members.managers()
}

impl Shard {
    pub(in crate::shard) async fn apply_join(&mut self, c: ApplyJoin) {
        let ApplyJoin { app, group, by, message, reply } = c;
        let Some(user) = by.user.clone() else {
            let _ = reply.send(Err(DomainError::MissingField("user_id")));
            return;
        };
        if message.len() > group::MAX_TEXT {
            let _ = reply.send(Err(DomainError::InvalidArgument("message")));
            return;
        }
        if let Some(Err(e)) = or_reply!(reply, self.check_joiners(app, std::slice::from_ref(&user))).pop() {
            let _ = reply.send(Err(e));
            return;
        }
        or_reply!(reply, self.group_requests(app, &group));
        let now = crate::now_ms();
        let max_requests = self.cfg.limits.max_join_requests.max(1);
        let hooks = self.hooks();
        let Ok(st) = self.live_group(app, &group) else { return };
        let mut batch = Batch::default();
        let (effect, answer) = match or_reply!(reply, group::apply(&st.rec, st.members.contains(&user))) {
            Apply::Join => {
                let m = MemberRecord::new(user.clone(), GroupRole::Member, now, st.head);
                batch.put_group_member(app, &group, &user, m.encode());
                let visible_from = m.visible_from(&st.rec);
                st.members.put(m);
                st.members_changed();
                st.rec.version += 1;
                let told = st.members.ids().filter(|u| **u != user).cloned().collect();
                let event = event_push("members_added", Some(&user), std::slice::from_ref(&user), &st.rec);
                let hook = (app, Event::GroupAfterNewMemberJoin, &by);
                let joined = (&st.rec, std::slice::from_ref(&user));
                Shard::report_group(&hooks, &mut batch, hook, joined, &[("JoinType", "Apply".into())]);
                let effect = Effect { changed: vec![(user, Side::Member { visible_from })], told, event: Some(event) };
                (effect, (true, None))
            }
            Apply::Request => {
                let requests = st.requests.get_or_insert_with(Default::default);
                let pending = requests.values().find(|r| r.user == user && r.state == JoinRequest::PENDING).cloned();
                if let Some(r) = pending {
                    // Asked already: the same request, nothing new stored.
                    self.after_pending(move |res| {
                        let _ = reply.send(res.map(|()| (false, Some(r))));
                    })
                    .await;
                    return;
                }
                // Bounded: the oldest answered request makes room; all pending, none is taken.
                if requests.len() >= max_requests {
                    let oldest = requests.values().find(|r| r.state != JoinRequest::PENDING).map(|r| r.id);
                    match oldest {
                        Some(id) => {
                            requests.remove(&id);
                            batch.delete_join_request(app, &group, id);
                        }
                        None => {
                            let _ = reply.send(Err(DomainError::LimitExceeded("pending join requests of the group")));
                            return;
                        }
                    }
                }
                st.rec.last_request += 1;
                let r = JoinRequest {
                    id: st.rec.last_request,
                    group: group.clone(),
                    user: user.clone(),
                    message,
                    state: JoinRequest::PENDING,
                    create_ms: now,
                };
                batch.put_join_request(app, &group, r.id, r.encode());
                requests.insert(r.id, r.clone());
                let mut told = managers(st);
                told.push(user.clone());
                let event = event_push("join_requested", Some(&user), std::slice::from_ref(&user), &st.rec);
                (Effect::push(told, event), (false, Some(r)))
            }
        };
        batch.put_group(app, &group, st.rec.encode());
        effect.intents(&mut batch, app, &group, st.rec.version);
        let snapshot = st.snapshot();
        self.commit_change(app, snapshot, batch, effect, reply, answer).await;
    }

    pub(in crate::shard) async fn handle_join_request(&mut self, c: HandleJoinRequest) {
        let HandleJoinRequest { app, group, by, request, approve, reply } = c;
        or_reply!(reply, self.group_requests(app, &group));
        let applicant = {
            let Ok(st) = self.live_group(app, &group) else { return };
            or_reply!(reply, group::manage(st.acting(&by)));
            match st.requests.as_ref().and_then(|r| r.get(&request)) {
                Some(r) if r.state == JoinRequest::PENDING => r.user.clone(),
                _ => {
                    let _ = reply.send(Err(DomainError::JoinRequestNotFound));
                    return;
                }
            }
        };
        // The applicant must still be able to join (not deleted meanwhile).
        if approve {
            if let Some(Err(e)) = or_reply!(reply, self.check_joiners(app, std::slice::from_ref(&applicant))).pop() {
                let _ = reply.send(Err(e));
                return;
            }
        }
        let now = crate::now_ms();
        let hooks = self.hooks();
        let Ok(st) = self.live_group(app, &group) else { return };
        let mut batch = Batch::default();
        let mut changed = Vec::new();
        if approve && !st.members.contains(&applicant) {
            or_reply!(reply, group::room(&st.rec, 1));
            let m = MemberRecord::new(applicant.clone(), GroupRole::Member, now, st.head);
            batch.put_group_member(app, &group, &applicant, m.encode());
            changed.push((applicant.clone(), Side::Member { visible_from: m.visible_from(&st.rec) }));
            st.members.put(m);
            st.members_changed();
            st.rec.version += 1;
            batch.put_group(app, &group, st.rec.encode());
        }
        let Some(r) = st.requests.as_mut().and_then(|rs| rs.get_mut(&request)) else { return };
        r.state = if approve { JoinRequest::APPROVED } else { JoinRequest::REJECTED };
        batch.put_join_request(app, &group, r.id, r.encode());
        let answer = r.clone();
        if !changed.is_empty() {
            let hook = (app, Event::GroupAfterNewMemberJoin, &by);
            let joined = (&st.rec, std::slice::from_ref(&applicant));
            Shard::report_group(&hooks, &mut batch, hook, joined, &[("JoinType", "Apply".into())]);
        }
        let mut told: Vec<UserId> = if approve {
            st.members.ids().filter(|u| **u != applicant).cloned().collect()
        } else {
            let mut m = managers(st);
            m.push(applicant.clone());
            m
        };
        told.retain(|u| !changed.iter().any(|(c, _)| c == u));
        let kind = if approve { "join_approved" } else { "join_rejected" };
        let event = event_push(kind, by.user.as_ref(), std::slice::from_ref(&applicant), &st.rec);
        let effect = Effect { changed, told, event: Some(event) };
        effect.intents(&mut batch, app, &group, st.rec.version);
        let snapshot = st.snapshot();
        self.commit_change(app, snapshot, batch, effect, reply, answer).await;
    }

    pub(in crate::shard) async fn get_join_requests(&mut self, c: GetJoinRequests) {
        let GetJoinRequests { app, group, by, reply } = c;
        or_reply!(reply, self.group_requests(app, &group));
        let Ok(st) = self.live_group(app, &group) else { return };
        or_reply!(reply, group::manage(st.acting(&by)));
        // The pending ones first (oldest first), then the answered; cut to fit one frame.
        let all = st.requests.as_ref().map(|r| r.values().collect::<Vec<_>>()).unwrap_or_default();
        let (pending, answered): (Vec<&JoinRequest>, Vec<&JoinRequest>) =
            all.into_iter().partition(|r| r.state == JoinRequest::PENDING);
        let mut list: Vec<JoinRequest> = pending.into_iter().chain(answered).cloned().collect();
        crate::domain::page::cut(&mut list, crate::domain::page::PAGE_BYTES);
        self.after_pending(move |r| {
            let _ = reply.send(r.map(|()| list));
        })
        .await;
    }
}
