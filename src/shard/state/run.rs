//! The shard thread's loop (draining both inboxes in batches), the one exhaustive dispatch
//! of shard commands, and the once-a-second tick.

use crate::shard::cmd::{ConversationCmd, DeliveredUpTo, FriendCmd, GroupCmd, MessageCmd, ShardCmd, UserCmd};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

use super::*;

/// The shard thread: a single-threaded runtime draining the inbox in batches (and running the
/// sessions moved onto it between batches).
pub(in crate::shard) fn run(
    rt: tokio::runtime::Runtime,
    mut shard: Shard,
    mut rx: mpsc::Receiver<ShardCmd>,
    mut peer_rx: mpsc::Receiver<ShardCmd>,
    mut stop: watch::Receiver<bool>,
) {
    rt.block_on(async move {
        // Replays queued at load time run before anything else.
        shard.run_local().await;
        // Commands taken from one inbox per wake-up (`limits.shard_drain`).
        let drain = shard.cfg.limits.shard_drain.max(1);
        let mut buf = Vec::with_capacity(drain);
        let mut client_buf = Vec::with_capacity(drain);
        let kept = shard.kept.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // What the last batch of commands committed goes to the writer as one group
            // before the shard waits for more (or takes the next batch).
            shard.flush().await;
            // Over the deferred bound, stop taking session commands (their senders wait: the
            // backpressure reaches the clients) until the other shards have taken our output.
            // Commands from other shards are always taken.
            let paused = shard.deferred.len() >= shard.cfg.limits.deferred_per_shard;
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    // Run what is already queued, then stop taking more.
                    rx.close();
                    peer_rx.close();
                    while let Some(cmd) = peer_rx.recv().await {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    while let Some(cmd) = rx.recv().await {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    shard.flush_convs().await;
                    shard.flush().await;
                    break;
                }
                // The tick before the inboxes, so a busy shard still flushes and expires.
                _ = tick.tick() => shard.on_tick().await,
                _ = kept.ready() => shard.send_kept(),
                n = peer_rx.recv_many(&mut buf, drain) => {
                    if n == 0 {
                        break;
                    }
                    let busy = Instant::now();
                    for cmd in buf.drain(..) {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    shard.retry_deferred();
                    // Peers first, but never only peers: one batch of session commands too, so
                    // a shard flooded with deliveries still serves logins and facts.
                    if shard.deferred.len() < shard.cfg.limits.deferred_per_shard {
                        while client_buf.len() < drain {
                            match rx.try_recv() {
                                Ok(cmd) => client_buf.push(cmd),
                                Err(_) => break,
                            }
                        }
                        for cmd in client_buf.drain(..) {
                            shard.handle(cmd).await;
                            shard.run_local().await;
                        }
                    }
                    shard.metrics.busy(shard.id, busy.elapsed().as_nanos() as u64);
                }
                n = rx.recv_many(&mut client_buf, drain), if !paused => {
                    if n == 0 {
                        break;
                    }
                    let busy = Instant::now();
                    for cmd in client_buf.drain(..) {
                        shard.handle(cmd).await;
                        shard.run_local().await;
                    }
                    shard.retry_deferred();
                    shard.metrics.busy(shard.id, busy.elapsed().as_nanos() as u64);
                }
                _ = tokio::time::sleep(Duration::from_millis(1)), if paused => shard.retry_deferred(),
            }
        }
        tracing::debug!(shard = shard.id, "shard stopped");
    });
}

impl Shard {
    /// The one exhaustive dispatch of shard commands.
    pub(in crate::shard) async fn handle(&mut self, cmd: ShardCmd) {
        match cmd {
            ShardCmd::User(c) => match c {
                UserCmd::EvictIdle(c) => self.evict(c),
                UserCmd::Login(c) => self.login(c).await,
                UserCmd::Disconnect(c) => self.disconnect(c).await,
                UserCmd::ImportUsers(c) => self.import_users(c).await,
                UserCmd::DeleteUsers(c) => self.delete_users(c).await,
                UserCmd::GetUsers(c) => self.get_users(c).await,
                UserCmd::ModifyUser(c) => self.modify_user(c).await,
                UserCmd::FactsChanged(c) => self.facts_changed(c),
                UserCmd::QueryStatus(c) => self.query_status(c).await,
                UserCmd::Subscribe(c) => self.subscribe(c).await,
                UserCmd::Unsubscribe(c) => self.unsubscribe(c).await,
                UserCmd::PushToUser(c) => self.push_local(c.app, &c.user, &c.frame),
                UserCmd::PushToUsers(c) => {
                    for u in &c.users {
                        self.push_local(c.app, u, &c.frame);
                    }
                }
                UserCmd::ReadStream(c) => self.sync(c).await,
            },
            ShardCmd::Friend(c) => match c {
                FriendCmd::FriendPrecheck(c) => self.friend_precheck(c),
                FriendCmd::FriendInbound(c) => self.friend_inbound(c).await,
                FriendCmd::FriendAddSide(c) => self.friend_add_side(c).await,
                FriendCmd::FriendDelete(c) => self.friend_delete(c).await,
                FriendCmd::FriendUpdate(c) => self.friend_update(c).await,
                FriendCmd::Relations(c) => self.relations(c).await,
                FriendCmd::Relation(c) => self.relation(c).await,
                FriendCmd::GetFriends(c) => self.get_friends(c).await,
                FriendCmd::BlackAdd(c) => self.black_add(c).await,
                FriendCmd::BlackDelete(c) => self.black_delete(c).await,
                FriendCmd::GetFriendRequests(c) => self.get_friend_requests(c).await,
                FriendCmd::AnswerFriendRequest(c) => self.answer_friend_request(c).await,
                FriendCmd::ReadAllFriendRequests(c) => self.read_all_friend_requests(c).await,
                FriendCmd::FriendTag(c) => self.friend_tag(c).await,
                FriendCmd::GetFriendTags(c) => self.get_friend_tags(c).await,
            },
            ShardCmd::Message(c) => match c {
                MessageCmd::PairChanged(c) => self.pair_changed(c),
                MessageCmd::EvictHeads(c) => self.evict_heads(c),
                MessageCmd::SendMessage(c) => self.send(c).await,
                MessageCmd::RecallMessage(c) => self.recall(c).await,
                MessageCmd::GetHistory(c) => self.history(c).await,
                MessageCmd::Deliver(c) => self.deliver(c).await,
                MessageCmd::DeliveredUpTo(c) => self.mark_delivered_up_to(c),
                MessageCmd::Recalled(c) => self.recalled(c).await,
                MessageCmd::Receipt(c) => self.receipt(c),
                MessageCmd::GetMessages(c) => self.get_messages(c).await,
                MessageCmd::HookAnswered(c) => self.hook_answered(c).await,
            },
            ShardCmd::Conversation(c) => match c {
                ConversationCmd::ReadConversation(c) => self.read(c).await,
                ConversationCmd::GetConversations(c) => self.get_conversations(c).await,
                ConversationCmd::UpdateConversation(c) => self.update_conversation(c).await,
                ConversationCmd::DeleteConversation(c) => self.delete_conversation(c).await,
            },
            ShardCmd::Group(c) => match c {
                GroupCmd::EvictGroups(c) => self.drop_groups(c),
                GroupCmd::CreateGroup(c) => self.create_group(c).await,
                GroupCmd::GetGroup(c) => self.get_group(c).await,
                GroupCmd::GetRoles(c) => self.get_roles(c).await,
                GroupCmd::GetMuted(c) => self.get_muted(c).await,
                GroupCmd::GetAllGroups(c) => self.get_all_groups(c),
                GroupCmd::UpdateGroup(c) => self.update_group(c).await,
                GroupCmd::AddMembers(c) => self.add_members(c).await,
                GroupCmd::RemoveMembers(c) => self.remove_members(c).await,
                GroupCmd::UpdateMember(c) => self.update_member(c).await,
                GroupCmd::DestroyGroup(c) => self.destroy_group(c).await,
                GroupCmd::MuteMembers(c) => self.mute_members(c).await,
                GroupCmd::ChangeOwner(c) => self.change_owner(c).await,
                GroupCmd::ApplyJoin(c) => self.apply_join(c).await,
                GroupCmd::HandleJoinRequest(c) => self.handle_join_request(c).await,
                GroupCmd::GetJoinRequests(c) => self.get_join_requests(c).await,
                GroupCmd::GroupReceived(c) => self.group_received(c),
                GroupCmd::GroupMemberRead(c) => self.group_member_read(c).await,
                GroupCmd::GetGroupReceipts(c) => self.group_receipts(c).await,
                GroupCmd::GroupSync(c) => self.group_sync(c).await,
                GroupCmd::GroupDeliver(c) => self.group_deliver(c).await,
                GroupCmd::GetJoinedGroups(c) => self.get_joined_groups(c).await,
            },
        }
    }

    /// Runs the commands this shard sent to itself, in order.
    pub(in crate::shard) async fn run_local(&mut self) {
        while let Some(cmd) = self.local.pop_front() {
            Box::pin(self.handle(cmd)).await;
        }
    }

    pub(super) async fn on_tick(&mut self) {
        // Every shard learns how far this one's deliveries go, behind those deliveries, so
        // its mark for this shard moves even when none were for it (start-up scans the
        // messages above the lowest mark).
        let upto = self.ids.last();
        for s in 0..self.router.len() {
            self.send_to(s, DeliveredUpTo { source: self.id as u8, upto }.into());
        }
        self.run_local().await;
        self.retry_deferred();
        self.flush_convs().await;
        self.expire_subscriptions().await;
        self.evict_idle().await;
        self.evict_conversations().await;
        self.evict_groups().await;
    }
}
