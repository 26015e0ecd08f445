//! A lean client connection for load: raw frames, no per-call bookkeeping. The SDK
//! (`imserver::client`) is for correctness; this is for pushing the server hard while
//! spending as little of the shared 2 cores as possible on the generator.

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use imserver::auth::ticket;
use imserver::client::{connect::Tls, Client};
use imserver::protocol::{self, wire};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

/// A connection's halves, plain TCP or TLS alike.
pub type Reader = FramedRead<Box<dyn AsyncRead + Send + Unpin>, LengthDelimitedCodec>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Where and as what to connect.
#[derive(Clone)]
pub struct Target {
    pub addr: String,
    pub app: u32,
    pub secret: String,
    /// Connect with TLS, checking the server against these roots.
    pub tls: Option<Tls>,
}

impl Target {
    pub fn ticket(&self, user: &str) -> String {
        ticket::sign(self.app as u64, user, self.secret.as_bytes(), imserver::now_ms() / 1000, 86400)
    }

    /// An SDK client (for setup and the slower scenarios), over TLS when asked.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(match &self.tls {
            None => Client::connect(&self.addr).await?,
            Some(tls) => Client::connect_tls(&self.addr, tls).await?,
        })
    }

    /// A raw connection's two halves.
    async fn open(&self) -> anyhow::Result<(Box<dyn AsyncRead + Send + Unpin>, Writer)> {
        Ok(match &self.tls {
            None => {
                let s = TcpStream::connect(&self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
                s.set_nodelay(true)?;
                let (rd, wr) = s.into_split();
                (Box::new(rd), Box::new(wr))
            }
            Some(tls) => {
                let s = imserver::client::connect::tls(&self.addr, tls).await?;
                let (rd, wr) = tokio::io::split(s);
                (Box::new(rd), Box::new(wr))
            }
        })
    }
}

/// Connects and logs in; returns the two halves.
pub async fn login(t: &Target, user: &str, ct: wire::ClientType, device: &str) -> anyhow::Result<(Reader, Writer)> {
    let (rd, mut wr) = t.open().await?;
    let mut rd = FramedRead::new(rd, protocol::frame_codec(protocol::MAX_SERVER_FRAME));
    let ticket = t.ticket(user);
    let frame = protocol::client_frame(1, |fbb| protocol::login_req(fbb, t.app, user, &ticket, ct, device));
    wr.write_all(&frame).await?;
    wr.flush().await?;
    loop {
        let buf = match rd.next().await {
            Some(b) => b?,
            None => bail!("closed during login"),
        };
        let f = protocol::decode_server(&buf).map_err(|e| anyhow::anyhow!("bad frame: {e}"))?;
        if f.id() != 1 {
            continue; // a push that raced the answer
        }
        if let Some(e) = f.response_as_error() {
            bail!("login as {user} refused: {:?} {}", e.code(), e.message().unwrap_or_default());
        }
        return Ok((rd, wr));
    }
}

/// Writes `b` and flushes (TLS holds written records until flushed).
pub async fn send(wr: &mut Writer, b: &[u8]) -> std::io::Result<()> {
    wr.write_all(b).await?;
    wr.flush().await
}

/// The next frame, verified; `None` at the end of the stream.
pub async fn next(rd: &mut Reader) -> Option<BytesMut> {
    match rd.next().await {
        Some(Ok(b)) => Some(b),
        _ => None,
    }
}

pub fn ping(id: u64) -> Bytes {
    protocol::client_frame(id, |fbb| {
        let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 0 });
        (wire::Request::PingReq, p.as_union_value())
    })
}

pub fn send_msg(id: u64, to: &str, client_id: &str, body: &[u8]) -> Bytes {
    protocol::client_frame(id, |fbb| protocol::send_req(fbb, to, client_id, 1, body, None))
}

/// A send to a user, or (`group`) to a group.
pub fn send_to(id: u64, (group, to): (bool, &str), client_id: &str, body: &[u8]) -> Bytes {
    let kind = if group { wire::ConvType::Group } else { wire::ConvType::P2P };
    protocol::client_frame(id, |fbb| protocol::send_conv_req(fbb, (kind, to), client_id, 1, body, None))
}

/// "Received everything of `group` up to `seq`."
pub fn group_receive_ack(id: u64, group: &str, seq: u64) -> Bytes {
    protocol::client_frame(id, |fbb| {
        let p = fbb.create_string(group);
        let conv = wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: wire::ConvType::Group, peer: Some(p) });
        let r = wire::ReceiveAckReq::create(fbb, &wire::ReceiveAckReqArgs { conv: Some(conv), server_id: 0, seq });
        (wire::Request::ReceiveAckReq, r.as_union_value())
    })
}

pub fn receive_ack(id: u64, from: &str, server_id: u64, seq: u64) -> Bytes {
    protocol::client_frame(id, |fbb| {
        let p = fbb.create_string(from);
        let conv = wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: wire::ConvType::P2P, peer: Some(p) });
        let r = wire::ReceiveAckReq::create(fbb, &wire::ReceiveAckReqArgs { conv: Some(conv), server_id, seq });
        (wire::Request::ReceiveAckReq, r.as_union_value())
    })
}

pub fn sync(id: u64, after: u64, limit: u32) -> Bytes {
    protocol::client_frame(id, |fbb| {
        let r = wire::SyncReq::create(
            fbb,
            &wire::SyncReqArgs { user_id: None, stream: wire::SyncStream::Messages, after_seq: after, limit },
        );
        (wire::Request::SyncReq, r.as_union_value())
    })
}
