//! A connection as a shard sees it: a bounded queue of encoded frames plus a way to close it
//! with a reason. Created by `net::session`, held by shards for every logged-in device.
//!
//! Nothing is dropped silently: when the queue is full the connection is closed as a slow
//! consumer (it will resync by seq after reconnecting), and the close reason is sent to it.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::domain::ids::ConnId;
use crate::metrics::Counter;
use crate::protocol::wire::KickReason;

struct Inner {
    conn: ConnId,
    /// 0 while open; otherwise the `KickReason` the connection is closing with.
    closing: AtomicU8,
    /// Wakes the writer (one waiter, the permit kept) and the session (`closed`).
    wake: Notify,
    wake_session: Notify,
    /// Requests taken from the connection and not answered yet (see `Unanswered`).
    unanswered: AtomicUsize,
    answered: Notify,
    /// Commands of this connection waiting for room in a shard's inbox (see `Waiting`).
    waiting: AtomicUsize,
    /// Counts frames the connection could not take (`send` on a full queue).
    drops: Counter,
}

/// A command of the connection waiting for room in a shard's inbox; dropped once it is in.
/// Only for commands that also carry an `Unanswered` guard (the session subtracts these so a
/// waiting command is not counted twice against `max_inflight_per_conn`).
pub struct Waiting(Arc<Inner>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request the connection took and has not answered: whoever answers it holds this and
/// drops it once the answer is queued. The session stops reading while too many are out.
pub struct Unanswered(Arc<Inner>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.0.unanswered.fetch_sub(1, Ordering::AcqRel);
        self.0.answered.notify_one();
    }
}

/// The internal marker of a close without a kick frame.
const QUIET: u8 = u8::MAX;

/// The sending side. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
    // Held only by `Outbox`es, so the writer sees the queue end once every holder is gone.
    tx: mpsc::Sender<Bytes>,
}

/// The receiving side, owned by the connection's writer task.
pub struct OutboxRx {
    rx: mpsc::Receiver<Bytes>,
    inner: Arc<Inner>,
}

/// What the writer should do next.
pub enum Next {
    Frame(Bytes),
    Close(KickReason),
}

impl Outbox {
    pub fn new(conn: ConnId, capacity: usize) -> (Outbox, OutboxRx) {
        Outbox::counting(conn, capacity, Counter::default())
    }

    /// An outbox counting the frames it refuses for a full queue in `drops`.
    pub fn counting(conn: ConnId, capacity: usize, drops: Counter) -> (Outbox, OutboxRx) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inner = Arc::new(Inner {
            conn,
            closing: AtomicU8::new(0),
            wake: Notify::new(),
            wake_session: Notify::new(),
            unanswered: AtomicUsize::new(0),
            answered: Notify::new(),
            waiting: AtomicUsize::new(0),
            drops,
        });
        (Outbox { inner: inner.clone(), tx }, OutboxRx { rx, inner })
    }

    pub fn conn(&self) -> ConnId {
        self.inner.conn
    }

    /// Queues a frame. A full queue closes the connection as a slow consumer; returns whether
    /// the frame was queued.
    pub fn send(&self, frame: Bytes) -> bool {
        if self.inner.closing.load(Ordering::Acquire) != 0 {
            return false;
        }
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.inner.drops.inc();
                self.close(KickReason::SlowConsumer);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection to close; its writer sends queued frames (unless the reason is
    /// `SlowConsumer`), then a `KickPush` with `reason`. The first reason wins.
    /// `KickReason::None` closes without a kick frame (the peer already hung up).
    pub fn close(&self, reason: KickReason) {
        let r = if reason.0 == 0 { QUIET } else { reason.0 };
        if self.inner.closing.compare_exchange(0, r, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.inner.wake.notify_one();
            self.inner.wake_session.notify_waiters();
        }
    }

    /// Completes once the connection is asked to close, for whatever reason.
    pub async fn closed(&self) {
        loop {
            // Registered before the check, so a close between the two is not missed.
            let notified = self.inner.wake_session.notified();
            if self.is_closing() {
                return;
            }
            notified.await;
        }
    }

    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire) != 0
    }

    /// Counts a request as taken until the returned guard is dropped.
    pub fn take_request(&self) -> Unanswered {
        self.inner.unanswered.fetch_add(1, Ordering::AcqRel);
        Unanswered(self.inner.clone())
    }

    /// Counts a command as waiting for room in a shard's inbox until the guard is dropped.
    pub fn start_waiting(&self) -> Waiting {
        self.inner.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(self.inner.clone())
    }

    /// Commands of this connection waiting for room in a shard's inbox.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Acquire)
    }

    /// Requests taken and not answered.
    pub fn unanswered(&self) -> usize {
        self.inner.unanswered.load(Ordering::Acquire)
    }

    /// Completes after a request was answered (possibly one answered before the call).
    pub async fn some_answered(&self) {
        self.inner.answered.notified().await
    }
}

impl OutboxRx {
    /// The next frame to write, or the reason to close. `None` when every sender is gone.
    pub async fn next(&mut self) -> Option<Next> {
        loop {
            let closing = self.inner.closing.load(Ordering::Acquire);
            if closing != 0 {
                return Some(Next::Close(if closing == QUIET { KickReason::None } else { KickReason(closing) }));
            }
            tokio::select! {
                biased;
                _ = self.inner.wake.notified() => continue,
                f = self.rx.recv() => return f.map(Next::Frame),
            }
        }
    }

    /// A frame already queued, without waiting.
    pub fn try_next(&mut self) -> Option<Bytes> {
        self.rx.try_recv().ok()
    }

    /// Completes once the connection is asked to close as a slow consumer: a write blocked on
    /// a client that does not read is abandoned at once rather than at the write timeout.
    pub async fn stalled(&self) {
        loop {
            let notified = self.inner.wake.notified();
            if self.inner.closing.load(Ordering::Acquire) == KickReason::SlowConsumer.0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_closes_as_slow_consumer() {
        let (tx, mut rx) = Outbox::new(ConnId(1), 2);
        assert!(tx.send(Bytes::from_static(b"a")));
        assert!(tx.send(Bytes::from_static(b"b")));
        assert!(!tx.send(Bytes::from_static(b"c")));
        assert!(tx.is_closing());
        assert!(matches!(rx.next().await, Some(Next::Close(KickReason::SlowConsumer))));
        tokio::time::timeout(std::time::Duration::from_secs(5), tx.closed()).await.expect("the session learns it");
        // A later reason does not replace the first.
        tx.close(KickReason::UserDeleted);
        assert!(matches!(rx.next().await, Some(Next::Close(KickReason::SlowConsumer))));
    }

    #[tokio::test]
    async fn requests_count_as_unanswered_until_their_guard_drops() {
        let (tx, _rx) = Outbox::new(ConnId(1), 2);
        let (a, b) = (tx.take_request(), tx.clone().take_request());
        assert_eq!(tx.unanswered(), 2);
        let waiter = tokio::spawn({
            let tx = tx.clone();
            async move {
                tx.some_answered().await;
                tx.unanswered()
            }
        });
        tokio::task::yield_now().await;
        drop(a);
        assert_eq!(waiter.await.unwrap(), 1, "the waiter wakes once one is answered");
        // Answered on another thread (as a shard's completion does).
        std::thread::spawn(move || drop(b)).join().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), tx.some_answered()).await.unwrap();
        assert_eq!(tx.unanswered(), 0);
    }

    #[tokio::test]
    async fn frames_flow_in_order() {
        let (tx, mut rx) = Outbox::new(ConnId(1), 8);
        for i in 0..5u8 {
            assert!(tx.send(Bytes::from(vec![i])));
        }
        for i in 0..5u8 {
            match rx.next().await {
                Some(Next::Frame(f)) => assert_eq!(&f[..], &[i]),
                _ => panic!("expected a frame"),
            }
        }
    }
}
