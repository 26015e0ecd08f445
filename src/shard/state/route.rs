//! Sending from a shard: pushes to devices, commands to this or another shard (held behind
//! the open commit group, deferred in order when an inbox is full).

use crate::domain::ids::{AppId, UserId};
use crate::shard::cmd::{PushToUser, ShardCmd, UserCmd};
use crate::shard::router::{Rejected, RouteError};
use bytes::Bytes;

use super::*;

impl Shard {
    /// Hands `frame` to every online device of `user`, wherever its shard is.
    pub(in crate::shard) fn push_to_user(&mut self, app: AppId, user: &UserId, frame: Bytes) {
        self.push_to(app, user, frame, false);
    }

    fn push_to(&mut self, app: AppId, user: &UserId, frame: Bytes, kept: bool) {
        let s = self.router.user_shard(app, user);
        if s == self.id {
            self.push_local(app, user, &frame);
        } else {
            self.send_to_shard(s, PushToUser { app, user: user.clone(), frame, kept }.into());
        }
    }

    /// Sends the pushes this shard's commit completions handed back (`kept`), never dropped.
    pub(in crate::shard) fn send_kept(&mut self) {
        for (app, user, frame) in self.kept.take() {
            self.push_to(app, &user, frame, true);
        }
    }

    pub(in crate::shard) fn push_local(&self, app: AppId, user: &UserId, frame: &Bytes) {
        if let Some(e) = self.users.get(&(app, user.clone())) {
            for d in &e.devices {
                d.outbox.send(frame.clone());
            }
        }
    }

    /// Sends a command to a shard: to this one through `local` (run right after the current
    /// command), to another with `send_to_shard`.
    pub(in crate::shard) fn send_to(&mut self, shard: usize, cmd: ShardCmd) {
        if shard == self.id {
            self.local.push_back(cmd);
        } else {
            self.send_to_shard(shard, cmd);
        }
    }

    /// Sends to another shard without waiting, once the commits made so far are handed to
    /// the writer (`flush`); a full inbox defers the command.
    pub(in crate::shard) fn send_to_shard(&mut self, shard: usize, cmd: ShardCmd) {
        if !self.held.is_empty() || !self.commit_group.get_mut().thens.is_empty() {
            self.held.push((shard, cmd));
            return;
        }
        self.send_now(shard, cmd);
    }

    pub(super) fn send_now(&mut self, shard: usize, cmd: ShardCmd) {
        if !self.deferred.is_empty() {
            // Keep order behind what is already deferred.
            self.defer(shard, cmd);
            return;
        }
        if let Err(Rejected { reason: RouteError::Full, cmd }) = self.router.try_send(shard, cmd) {
            self.defer(shard, *cmd);
        }
    }

    pub(super) fn defer(&mut self, shard: usize, cmd: ShardCmd) {
        if self.deferred.len() >= self.cfg.limits.deferred_per_shard {
            if let ShardCmd::User(UserCmd::PushToUser(PushToUser { kept: false, .. }) | UserCmd::PushToUsers(_)) = cmd {
                // A push of a status, profile or friendship change: the client can re-read it
                // (queryOnlineStatus, getUserInfo, sync). Logged, never silent.
                tracing::warn!(shard = self.id, to = shard, "deferred queue full; dropping a cross-shard push");
                return;
            }
            // Deliveries, recalls and receipts are never dropped. The loop stops taking session
            // commands while the queue is over its bound, so it exceeds it by at most what
            // one batch of session commands produces.
        }
        self.deferred.push_back((shard, cmd));
    }

    pub(in crate::shard) fn retry_deferred(&mut self) {
        while let Some((shard, cmd)) = self.deferred.pop_front() {
            if let Err(Rejected { reason: RouteError::Full, cmd }) = self.router.try_send(shard, cmd) {
                self.deferred.push_front((shard, *cmd));
                return;
            }
        }
    }
}
