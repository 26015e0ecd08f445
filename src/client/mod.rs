//! The async Rust client SDK: connect, log in, typed calls, and a stream of pushes.
//! Used by the integration tests, `imctl` and `imload`; a model for SDKs in other languages.
//!
//! Requests are pipelined: each gets a fresh id and the answer is matched by id, so many calls
//! may be in flight on one connection. Pushes (frames with id 0) arrive on `next_push`.

pub mod connect;
mod groups;
mod types;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, UnionWIPOffset, WIPOffset};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::protocol::{self, wire};
pub use calls::ConversationPage;
pub use groups::{GroupChange, GroupInfo, GroupMember, GroupReceipts, JoinRequestInfo};
pub use types::*;

/// Pushes buffered for the application; when full, the client stops reading the socket.
const PUSH_BUFFER: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("io: {0}")]
    Io(String),
    #[error("the connection is closed")]
    Closed,
    #[error("server error {code:?} ({}): {message}", code.0)]
    Server {
        code: wire::ErrorCode,
        message: String,
        /// For `CallbackRefused`: the code the app's backend answered.
        backend_code: i64,
    },
    #[error("unexpected answer: {0}")]
    Unexpected(&'static str),
    #[error("timed out")]
    Timeout,
}

impl ClientError {
    /// The server's error code, if this is a server error.
    pub fn code(&self) -> Option<wire::ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The app backend's own code of a `CallbackRefused` (0 otherwise).
    pub fn backend_code(&self) -> i64 {
        match self {
            ClientError::Server { backend_code, .. } => *backend_code,
            _ => 0,
        }
    }
}

/// A verified server frame, owned.
#[derive(Clone, Debug)]
pub struct Frame {
    body: Bytes,
}

impl Frame {
    fn new(body: Bytes) -> Option<Frame> {
        protocol::decode_server(&body).ok()?;
        Some(Frame { body })
    }

    /// The FlatBuffer's size: the value of the frame's length prefix.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// The frame's tables. (Verified when received; verified again here, cheaply, so no
    /// unchecked access is ever needed.)
    pub fn get(&self) -> wire::ServerFrame<'_> {
        protocol::decode_server(&self.body).expect("verified when received")
    }

    /// The error this frame carries, if it is an error response.
    pub fn error(&self) -> Option<ClientError> {
        self.get().response_as_error().map(|e| ClientError::Server {
            code: e.code(),
            message: e.message().unwrap_or_default().to_owned(),
            backend_code: e.backend_code(),
        })
    }
}

/// Calls waiting for their answer. `None` once the connection is closed: a call made after
/// that fails at once instead of waiting for its timeout.
type Waiters = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Frame>>>>>;

/// Bytes for the connection: a whole frame, length prefix included (over a WebSocket the
/// prefix is taken off and the rest sent as one message), or raw bytes from `send_raw`.
struct Out(Bytes);

pub struct Client {
    out: mpsc::Sender<Out>,
    waiters: Waiters,
    pushes: mpsc::Receiver<Frame>,
    next_id: AtomicU64,
    timeout: Duration,
}

impl Client {
    /// Connects over plain TCP (no login yet).
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| ClientError::Io(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Ok(Client::over_bytes(rd, wr))
    }

    /// Connects over TLS to a port that speaks it (`connect::Tls` says whom to trust).
    pub async fn connect_tls(addr: &str, tls: &connect::Tls) -> Result<Client, ClientError> {
        let stream = connect::tls(addr, tls).await?;
        let (rd, wr) = tokio::io::split(stream);
        Ok(Client::over_bytes(rd, wr))
    }

    /// Connects over a WebSocket: `ws://host:port/ws`, or `wss://` with `tls`.
    pub async fn connect_ws(url: &str, tls: Option<&connect::Tls>) -> Result<Client, ClientError> {
        let (tx, rx) = connect::ws(url, tls).await?;
        let (out, out_rx) = mpsc::channel::<Out>(1024);
        tokio::spawn(connect::ws_writer(tx, out_rx));
        let (waiters, pushes) = Client::reader(connect::ws_frames(rx));
        Ok(Client { out, waiters, pushes, next_id: AtomicU64::new(1), timeout: Duration::from_secs(30) })
    }

    /// A client over a byte stream's two halves (frames with their length prefix).
    fn over_bytes<R, W>(rd: R, mut wr: W) -> Client
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (out, mut out_rx) = mpsc::channel::<Out>(1024);
        tokio::spawn(async move {
            while let Some(Out(mut b)) = out_rx.recv().await {
                // Coalesce what is already queued into one write.
                let mut more = Vec::new();
                while let Ok(Out(n)) = out_rx.try_recv() {
                    more.push(n);
                    if more.len() >= 64 {
                        break;
                    }
                }
                if !more.is_empty() {
                    let mut all = Vec::with_capacity(b.len() + more.iter().map(|m| m.len()).sum::<usize>());
                    all.extend_from_slice(&b);
                    for m in more {
                        all.extend_from_slice(&m);
                    }
                    b = Bytes::from(all);
                }
                if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let frames = FramedRead::new(rd, protocol::frame_codec(protocol::MAX_SERVER_FRAME))
            .take_while(|r| std::future::ready(r.is_ok()))
            .filter_map(|r| std::future::ready(r.ok().map(|b| b.freeze())));
        let (waiters, pushes) = Client::reader(frames);
        Client { out, waiters, pushes, next_id: AtomicU64::new(1), timeout: Duration::from_secs(30) }
    }

    /// Reads server frames (FlatBuffers, no prefix): answers to their waiting calls, the rest
    /// to the push stream, until the stream ends or a frame does not verify.
    fn reader(frames: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> (Waiters, mpsc::Receiver<Frame>) {
        let (push_tx, pushes) = mpsc::channel(PUSH_BUFFER);
        let waiters: Waiters = Arc::new(Mutex::new(Some(HashMap::new())));
        let w = waiters.clone();
        tokio::spawn(async move {
            let mut frames = std::pin::pin!(frames);
            while let Some(buf) = frames.next().await {
                let Some(frame) = Frame::new(buf) else {
                    break;
                };
                let id = frame.get().id();
                let waiter = if id == 0 { None } else { w.lock().as_mut().and_then(|m| m.remove(&id)) };
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(frame);
                    }
                    None => {
                        if push_tx.send(frame).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // Closing: every waiting call learns it (its sender is dropped).
            *w.lock() = None;
        });
        (waiters, pushes)
    }

    /// How long a call waits for its answer (default 30 s).
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Sends raw bytes as they are (tests of hostile input). Over a WebSocket: a message
    /// holding the bytes after the first 4 (where a frame has its length prefix).
    pub async fn send_raw(&self, bytes: Bytes) -> Result<(), ClientError> {
        self.out.send(Out(bytes)).await.map_err(|_| ClientError::Closed)
    }

    /// Sends one request built by `f` and waits for its answer frame.
    pub async fn call(
        &self,
        f: impl FnOnce(&mut FlatBufferBuilder<'static>) -> (wire::Request, WIPOffset<UnionWIPOffset>),
    ) -> Result<Frame, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match self.waiters.lock().as_mut() {
            Some(m) => {
                m.insert(id, tx);
            }
            None => return Err(ClientError::Closed),
        }
        let frame = protocol::client_frame(id, f);
        if self.out.send(Out(frame)).await.is_err() {
            if let Some(m) = self.waiters.lock().as_mut() {
                m.remove(&id);
            }
            return Err(ClientError::Closed);
        }
        let frame = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(f)) => f,
            Ok(Err(_)) => return Err(ClientError::Closed),
            Err(_) => {
                if let Some(m) = self.waiters.lock().as_mut() {
                    m.remove(&id);
                }
                return Err(ClientError::Timeout);
            }
        };
        match frame.error() {
            Some(e) => Err(e),
            None => Ok(frame),
        }
    }

    /// The next push (or unsolicited frame such as a connection-level error), waiting at most
    /// `within`. `None` on timeout or when the connection is closed.
    pub async fn next_push(&mut self, within: Duration) -> Option<Frame> {
        tokio::time::timeout(within, self.pushes.recv()).await.ok().flatten()
    }

    /// Waits for the next push that `pick` accepts, skipping others.
    pub async fn wait_push<T>(&mut self, within: Duration, mut pick: impl FnMut(&Frame) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self.next_push(left).await?;
            if let Some(t) = pick(&f) {
                return Some(t);
            }
        }
    }

    /// Whether the server has closed this connection (waits at most `within`).
    pub async fn closed(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.pushes.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

mod calls;
mod friends;

pub use friends::{Friend, FriendRequestInfo, RelationInfo};
