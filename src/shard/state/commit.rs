//! Making a change durable before anyone hears of it: commits join the shard's open commit
//! group, which goes to the writer with the delivery marks that moved; answers that read
//! state wait behind what is in flight (`after_pending`).

use crate::domain::DomainError;
use crate::shard::cmd::DeliveredUpTo;
use crate::store::Batch;
use std::sync::atomic::Ordering;

use super::*;

impl Shard {
    /// Commits `batch`; `then` runs once it is durable (or failed): on the writer thread, or
    /// on this one when shards write their own groups (`store::writer`). The
    /// batch joins the shard's open group, written with the rest of this batch of commands
    /// (`flush`); a group that grows past `limits.commit_group_ops` is handed over at once.
    pub(in crate::shard) async fn commit(
        &self,
        batch: Batch,
        then: impl FnOnce(Result<(), DomainError>) + Send + 'static,
    ) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let full = {
            let mut g = self.commit_group.borrow_mut();
            g.batch.append(batch);
            g.thens.push(Box::new(then));
            g.batch.len() >= self.cfg.limits.commit_group_ops
        };
        if full {
            self.submit_commit_group().await;
        }
    }

    /// A live delivery of message `server_id` is (being) recorded: the mark for its source
    /// shard moves with the group that records it.
    pub(in crate::shard) fn mark_delivered(&self, server_id: u64) {
        let source = crate::domain::message::id_shard(server_id) as usize;
        let mut m = self.marks.borrow_mut();
        m.recorded[source] = m.recorded[source].max(server_id);
    }

    /// Shard `source` sent every delivery up to `upto` before this command, and each was
    /// handled (its entries are in this or an earlier group).
    pub(super) fn mark_delivered_up_to(&self, c: DeliveredUpTo) {
        let DeliveredUpTo { source, upto } = c;
        let mut m = self.marks.borrow_mut();
        let s = source as usize & 63;
        m.recorded[s] = m.recorded[s].max(upto);
    }

    /// Hands the open group to the writer (waiting while its queue is full), or writes it
    /// here on the direct path, with the delivery marks that moved.
    pub(super) async fn submit_commit_group(&self) {
        let CommitGroup { mut batch, thens } = std::mem::take(&mut *self.commit_group.borrow_mut());
        {
            let mut m = self.marks.borrow_mut();
            for s in 0..64 {
                if m.recorded[s] > m.written[s] {
                    batch.put_delivery_mark(self.id as u8, s as u8, m.recorded[s]);
                    m.written[s] = m.recorded[s];
                }
            }
        }
        if thens.is_empty() && batch.is_empty() {
            return;
        }
        let inflight = self.inflight.clone();
        self.committer
            .commit(
                batch,
                Box::new(move |r| {
                    inflight.fetch_sub(thens.len(), Ordering::AcqRel);
                    let r = r.map_err(|_| DomainError::StorageUnavailable);
                    for then in thens {
                        then(r.clone());
                    }
                }),
            )
            .await;
    }

    /// Writes the open group, then sends the cross-shard commands held behind it. On the
    /// direct path they leave only after the write returned, so their effects are never
    /// durable before their cause (the WAL recovers a prefix).
    pub(in crate::shard) async fn flush(&mut self) {
        self.submit_commit_group().await;
        for (shard, cmd) in std::mem::take(&mut self.held) {
            self.send_now(shard, cmd);
        }
    }

    /// Runs `then` once every commit this shard already submitted is durable: right away when
    /// none is in flight. Answers that read state use it, so nobody reads a change that could
    /// still be lost. After a store failure memory is ahead of the disk, so it gets
    /// `StorageUnavailable` instead. Where a write is visible before it is durable (`sync`
    /// mode, shards writing their own groups) it always waits for the next WAL sync, which
    /// covers every write before it, by any shard.
    pub(in crate::shard) async fn after_pending(&self, then: impl FnOnce(Result<(), DomainError>) + Send + 'static) {
        if self.committer.has_failed() {
            then(Err(DomainError::StorageUnavailable));
        } else if self.inflight.load(Ordering::Acquire) == 0 && !self.committer.visible_before_durable() {
            then(Ok(()));
        } else {
            self.commit(Batch::default(), then).await;
        }
    }

    /// Runs `then` once what an answer read straight from the store is durable: at once,
    /// unless a write can be visible before it is durable (then after the next WAL sync).
    pub(in crate::shard) async fn after_durable(&self, then: impl FnOnce(Result<(), DomainError>) + Send + 'static) {
        if self.committer.visible_before_durable() {
            self.after_pending(then).await;
        } else {
            then(Ok(()));
        }
    }
}
