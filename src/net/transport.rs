//! What a session runs over: plain TCP, TLS over TCP, or a WebSocket (on the HTTP listener,
//! itself plain or TLS). The session sees frames in and frames out; only this file knows how
//! each transport carries them.
//!
//! On a byte stream (TCP, TLS) a frame is its 4-byte big-endian length and the FlatBuffer.
//! On a WebSocket a frame is one binary message holding the FlatBuffer alone: the message's
//! own length replaces the prefix.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::linger;
use crate::protocol::wire::KickReason;
use crate::protocol::{self, LEN_PREFIX};
use crate::shard::outbox::OutboxRx;

pub type WsStream = WebSocketStream<TokioIo<Upgraded>>;

/// A connection, before it is split into its two directions.
pub enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Ws(Box<WsStream>),
}

impl Conn {
    /// The name metrics and logs use.
    pub fn kind(&self) -> &'static str {
        match self {
            Conn::Tcp(_) => "tcp",
            Conn::Tls(_) => "tls",
            Conn::Ws(_) => "ws",
        }
    }

    /// The reader takes frames up to `max` bytes (raised after login); it starts with a
    /// `start`-byte buffer.
    pub fn split(self, max: usize, start: usize) -> (FramesIn, FramesOut) {
        match self {
            Conn::Tcp(s) => tcp_halves(s, Bytes::new(), max, start),
            Conn::Tls(s) => {
                let (rd, wr) = tokio::io::split(*s);
                let rd = FramedRead::with_capacity(rd, protocol::frame_codec(max), start);
                (FramesIn::Tls(rd), FramesOut::Tls { wr, buf: BytesMut::new() })
            }
            Conn::Ws(s) => {
                let (tx, rx) = (*s).split();
                (FramesIn::Ws { rx, max }, FramesOut::Ws { tx, queued: Vec::new(), bytes: 0 })
            }
        }
    }
}

/// A TCP connection's reader and writer. The reader first gives `pre`: bytes already read (a
/// moved session's, behind its login frame).
fn tcp_halves(s: TcpStream, pre: Bytes, max: usize, start: usize) -> (FramesIn, FramesOut) {
    let (rd, wr) = s.into_split();
    let rd = FramedRead::with_capacity(TcpIn { pre, rd }, protocol::frame_codec(max), start);
    (FramesIn::Tcp(rd), FramesOut::Tcp { wr, queued: VecDeque::new(), bytes: 0 })
}

/// A TCP connection's reading half, behind the bytes read before it was moved (empty, and
/// unallocated, for every other connection). `FramedRead` cannot be rebuilt with bytes
/// already buffered without reading the socket first, and `Framed::from_parts`, which can,
/// reserves 8 KiB buffers each way.
pub struct TcpIn {
    pre: Bytes,
    rd: OwnedReadHalf,
}

impl tokio::io::AsyncRead for TcpIn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

/// What `FramesIn::detach` gives (at once taken apart: its size does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Detached {
    /// The socket, off this thread's runtime, and the bytes read past the last frame.
    Tcp(std::net::TcpStream, Bytes),
    /// Not a plain TCP connection: it stays where it is.
    Kept(FramesIn, FramesOut),
    /// The socket could not be taken off the runtime; the connection is gone.
    Lost,
}

/// A detached TCP connection's reader (frames up to `max` bytes, a `start`-byte buffer) and
/// writer on the current runtime. Must run inside the runtime that is to drive the socket.
pub fn attach(s: std::net::TcpStream, pre: Bytes, max: usize, start: usize) -> io::Result<(FramesIn, FramesOut)> {
    Ok(tcp_halves(TcpStream::from_std(s)?, pre, max, start))
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum InError {
    /// Over the frame limit (answered with `FrameTooLarge`).
    TooLarge,
    /// A WebSocket text message: frames are binary (answered with `MalformedFrame`).
    NotBinary,
    /// The connection failed.
    Io,
}

/// Frames from the client.
pub enum FramesIn {
    Tcp(FramedRead<TcpIn, LengthDelimitedCodec>),
    Tls(FramedRead<ReadHalf<TlsStream<TcpStream>>, LengthDelimitedCodec>),
    Ws { rx: SplitStream<WsStream>, max: usize },
}

impl FramesIn {
    /// The next frame's FlatBuffer; `None` at the end of the connection. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Bytes, InError>> {
        match self {
            FramesIn::Tcp(rd) => rd.next().await.map(stream_frame),
            FramesIn::Tls(rd) => rd.next().await.map(stream_frame),
            FramesIn::Ws { rx, max } => loop {
                return match rx.next().await? {
                    Ok(Message::Binary(b)) if b.len() > *max => Some(Err(InError::TooLarge)),
                    Ok(Message::Binary(b)) => Some(Ok(b)),
                    Ok(Message::Text(_)) => Some(Err(InError::NotBinary)),
                    // tungstenite answers pings itself; pongs and raw frames carry nothing.
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                    Ok(Message::Close(_)) => None,
                    Err(WsError::Capacity(_)) => Some(Err(InError::TooLarge)),
                    Err(_) => Some(Err(InError::Io)),
                };
            },
        }
    }

    /// A plain TCP connection (the reader and the writer not yet started) taken off this
    /// thread's runtime, to be `attach`ed on another; other transports are `Kept`.
    pub fn detach(self, out: FramesOut) -> Detached {
        match (self, out) {
            (FramesIn::Tcp(rd), FramesOut::Tcp { wr, .. }) => {
                let parts = rd.into_parts();
                // What the reader holds past the last frame, then what `pre` still held: copied
                // out, so the (start-sized) buffer is freed here.
                let mut pre = BytesMut::from(&parts.read_buf[..]);
                pre.extend_from_slice(&parts.io.pre);
                match parts.io.rd.reunite(wr).map(|s| s.into_std()) {
                    Ok(Ok(s)) => Detached::Tcp(s, pre.freeze()),
                    _ => Detached::Lost,
                }
            }
            (rd, out) => Detached::Kept(rd, out),
        }
    }

    /// The largest frame taken from now on.
    pub fn set_max(&mut self, n: usize) {
        match self {
            FramesIn::Tcp(rd) => rd.decoder_mut().set_max_frame_length(n),
            FramesIn::Tls(rd) => rd.decoder_mut().set_max_frame_length(n),
            FramesIn::Ws { max, .. } => *max = n,
        }
    }

    /// The end of a connection the server closed, after the writer's last frame: until the
    /// client has it all, or `within` (see `linger`; a WebSocket waits for the client's half
    /// of the close handshake instead).
    pub async fn finish(self, closed: Option<FramesOut>, within: Duration) {
        let deadline = Instant::now() + within;
        match (self, closed) {
            (FramesIn::Tcp(rd), Some(FramesOut::Tcp { wr, .. })) => {
                if let Ok(stream) = rd.into_inner().rd.reunite(wr) {
                    linger::until_acknowledged(&stream, deadline).await;
                }
            }
            (FramesIn::Tls(rd), Some(FramesOut::Tls { wr, .. })) => {
                let tls = rd.into_inner().unsplit(wr);
                linger::until_acknowledged(tls.get_ref().0, deadline).await;
            }
            (FramesIn::Ws { mut rx, .. }, Some(FramesOut::Ws { .. })) => {
                let _ = tokio::time::timeout_at(deadline, async { while rx.next().await.is_some() {} }).await;
            }
            _ => {}
        }
    }
}

fn stream_frame(r: io::Result<BytesMut>) -> Result<Bytes, InError> {
    match r {
        Ok(b) => Ok(b.freeze()),
        Err(e) if e.get_ref().is_some_and(|inner| inner.is::<tokio_util::codec::LengthDelimitedCodecError>()) => {
            Err(InError::TooLarge)
        }
        Err(_) => Err(InError::Io),
    }
}

/// How a batch of frames went out.
pub enum Written {
    All,
    /// The connection was closed as a slow consumer meanwhile; what was not taken is kept.
    Stalled,
    Failed,
}

/// Frames to the client, gathered into batches: each batch goes out in as few writes as the
/// transport allows.
pub enum FramesOut {
    /// The outboxes' frames themselves, prefixes included, written with vectored writes (no
    /// copy into a write buffer); the front one may be partly taken. `bytes`: what the
    /// socket has not taken yet.
    Tcp { wr: OwnedWriteHalf, queued: VecDeque<Bytes>, bytes: usize },
    /// rustls copies what it encrypts anyway: the frames are gathered into one buffer,
    /// allocated on first use and given back after a burst.
    Tls { wr: WriteHalf<TlsStream<TcpStream>>, buf: BytesMut },
    /// Messages not yet handed to tungstenite (which has a write buffer of its own).
    Ws { tx: SplitSink<WsStream, Message>, queued: Vec<Bytes>, bytes: usize },
}

impl FramesOut {
    /// Adds a frame (as the outboxes hold it: prefix and FlatBuffer) to the batch.
    pub fn push(&mut self, f: Bytes) {
        match self {
            FramesOut::Tcp { queued, bytes, .. } => {
                *bytes += f.len();
                queued.push_back(f);
            }
            FramesOut::Tls { buf, .. } => buf.extend_from_slice(&f),
            FramesOut::Ws { queued, bytes, .. } => {
                *bytes += f.len() - LEN_PREFIX;
                queued.push(f.slice(LEN_PREFIX..));
            }
        }
    }

    /// Bytes in the batch.
    pub fn gathered(&self) -> usize {
        match self {
            FramesOut::Tls { buf, .. } => buf.len(),
            FramesOut::Tcp { bytes, .. } | FramesOut::Ws { bytes, .. } => *bytes,
        }
    }

    /// Writes the batch out, until it is all taken, the write timeout passes or the
    /// connection is found to be a slow consumer. After a batch larger than `chunk`, the
    /// buffer is given back.
    pub async fn write(&mut self, rx: &OutboxRx, timeout: Duration, chunk: usize) -> Written {
        let deadline = Instant::now() + timeout;
        let written = match self {
            FramesOut::Tcp { wr, queued, bytes } => write_queued(wr, queued, bytes, rx, deadline).await,
            FramesOut::Tls { wr, buf } => write_bytes(wr, buf, rx, deadline).await,
            FramesOut::Ws { tx, queued, bytes } => {
                *bytes = 0;
                let send = async {
                    for m in queued.drain(..) {
                        tx.feed(Message::Binary(m)).await?;
                    }
                    tx.flush().await
                };
                tokio::select! {
                    r = tokio::time::timeout_at(deadline, send) => match r {
                        Ok(Ok(())) => Written::All,
                        _ => Written::Failed,
                    },
                    _ = rx.stalled() => Written::Stalled,
                }
            }
        };
        if let Written::All = written {
            match self {
                FramesOut::Tls { buf, .. } if buf.capacity() > chunk => *buf = BytesMut::new(),
                // All taken, so empty: its room is given back too. An idle connection then
                // holds no queue (a batch costs one small allocation; keeping the room cost
                // every idle connection 128 bytes and more).
                FramesOut::Tcp { queued, .. } => *queued = VecDeque::new(),
                _ => {}
            }
        }
        written
    }

    /// Writes what is gathered (the closing kick among it), ends the sending side (a TLS
    /// close_notify, a WebSocket close frame naming `kick`), and gives itself back for
    /// `FramesIn::finish`; `None` when that failed within `timeout`.
    pub async fn close(mut self, kick: KickReason, timeout: Duration) -> Option<FramesOut> {
        let sent = tokio::time::timeout(timeout, async {
            match &mut self {
                FramesOut::Tcp { wr, queued, bytes } => {
                    while *bytes > 0 {
                        match write_front(wr, queued).await? {
                            0 => return Err(io::ErrorKind::WriteZero.into()),
                            n => taken(queued, bytes, n),
                        }
                    }
                    wr.shutdown().await
                }
                FramesOut::Tls { wr, buf } => {
                    wr.write_all(buf).await?;
                    wr.shutdown().await
                }
                FramesOut::Ws { tx, queued, .. } => {
                    for m in queued.drain(..) {
                        tx.feed(Message::Binary(m)).await.map_err(io::Error::other)?;
                    }
                    let code = match kick {
                        KickReason::None | KickReason::Logout => CloseCode::Normal,
                        KickReason::ServerShutdown => CloseCode::Away,
                        _ => CloseCode::Policy,
                    };
                    let frame = CloseFrame { code, reason: kick.variant_name().unwrap_or("").into() };
                    tx.send(Message::Close(Some(frame))).await.map_err(io::Error::other)
                }
            }
        })
        .await;
        matches!(sent, Ok(Ok(()))).then_some(self)
    }
}

/// Frames given to one vectored write at most (Linux takes up to 1,024).
const SLICES: usize = 64;

/// Writes the queued frames with vectored writes, dropping each frame the socket took whole.
async fn write_queued(
    wr: &mut OwnedWriteHalf,
    queued: &mut VecDeque<Bytes>,
    bytes: &mut usize,
    rx: &OutboxRx,
    deadline: Instant,
) -> Written {
    while *bytes > 0 {
        tokio::select! {
            // A vectored write is cancel-safe: when the stall wins, nothing was taken.
            r = tokio::time::timeout_at(deadline, write_front(wr, queued)) => match r {
                Ok(Ok(n)) if n > 0 => taken(queued, bytes, n),
                _ => return Written::Failed,
            },
            _ = rx.stalled() => return Written::Stalled,
        }
    }
    Written::All
}

/// One vectored write of the front frames; how many bytes the socket took. The slices are
/// made at each poll, so the writer's future does not hold them while it waits (every
/// connection's writer would carry their room).
fn write_front<'a>(
    wr: &'a mut OwnedWriteHalf,
    queued: &'a VecDeque<Bytes>,
) -> impl std::future::Future<Output = io::Result<usize>> + 'a {
    std::future::poll_fn(move |cx| {
        let mut slices = [IoSlice::new(&[]); SLICES];
        let n = queued.iter().zip(slices.iter_mut()).map(|(f, s)| *s = IoSlice::new(f)).count();
        std::pin::Pin::new(&mut *wr).poll_write_vectored(cx, &slices[..n])
    })
}

/// Drops the `n` bytes the socket took from the front of `queued`.
fn taken(queued: &mut VecDeque<Bytes>, bytes: &mut usize, mut n: usize) {
    *bytes -= n;
    while n > 0 {
        let Some(front) = queued.front_mut() else { return };
        if front.len() > n {
            front.advance(n);
            return;
        }
        n -= front.len();
        queued.pop_front();
    }
}

/// Writes `buf` out, consuming what the socket takes, then flushes (TLS holds records back
/// until flushed).
async fn write_bytes<W: AsyncWrite + Unpin>(
    wr: &mut W,
    buf: &mut BytesMut,
    rx: &OutboxRx,
    deadline: Instant,
) -> Written {
    while !buf.is_empty() {
        tokio::select! {
            // `write` is cancel-safe: when the stall wins, nothing was taken.
            r = tokio::time::timeout_at(deadline, wr.write(buf)) => match r {
                Ok(Ok(n)) if n > 0 => buf.advance(n),
                _ => return Written::Failed,
            },
            _ = rx.stalled() => return Written::Stalled,
        }
    }
    tokio::select! {
        r = tokio::time::timeout_at(deadline, wr.flush()) => match r {
            Ok(Ok(())) => Written::All,
            _ => Written::Failed,
        },
        _ = rx.stalled() => Written::Stalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_vectored_write_drops_whole_frames_and_advances_the_next() {
        let mut q: VecDeque<Bytes> = [&b"abc"[..], b"defgh", b"ij"].into_iter().map(Bytes::from_static).collect();
        let mut bytes = 10;
        taken(&mut q, &mut bytes, 4);
        assert_eq!((bytes, q.len(), &q[0][..]), (6, 2, &b"efgh"[..]));
        taken(&mut q, &mut bytes, 4);
        assert_eq!((bytes, q.len(), &q[0][..]), (2, 1, &b"ij"[..]));
        taken(&mut q, &mut bytes, 2);
        assert_eq!((bytes, q.len()), (0, 0));
    }
}
