//! The transports the SDK connects over besides plain TCP: TLS (whom to trust: a CA file or
//! the system's roots) and WebSocket (`ws://`, or `wss://` over the same TLS).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{ClientError, Out};
use crate::protocol::LEN_PREFIX;

/// How to check the server's certificate. The roots are read once, at the first connection
/// (clones share them): a load generator opening thousands of connections parses the CA file
/// or the system's store once, not per connection.
#[derive(Clone, Default)]
pub struct Tls {
    /// Trust only the CAs in this PEM file; `None`: the system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// The name the certificate must carry; `None`: the host of the address.
    pub server_name: Option<String>,
    made: Arc<OnceLock<TlsConnector>>,
}

impl Tls {
    pub fn new(ca_file: Option<PathBuf>, server_name: Option<String>) -> Tls {
        Tls { ca_file, server_name, made: Default::default() }
    }

    fn connector(&self) -> Result<TlsConnector, ClientError> {
        if let Some(c) = self.made.get() {
            return Ok(c.clone());
        }
        let c = connector(self)?;
        Ok(self.made.get_or_init(|| c).clone())
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("ca_file", &self.ca_file).field("server_name", &self.server_name).finish()
    }
}

fn io(e: impl std::fmt::Display) -> ClientError {
    ClientError::Io(e.to_string())
}

fn connector(tls: &Tls) -> Result<TlsConnector, ClientError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| io(format!("{}: {e}", path.display())))?;
            for c in certs {
                roots.add(c).map_err(|e| io(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err(io("no trusted certificate authority to check the server against"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(cfg)))
}

/// The host part of `host:port` (brackets off an IPv6 address).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// A TLS connection to `addr`, the certificate checked.
pub async fn tls(addr: &str, tls: &Tls) -> Result<TlsStream<TcpStream>, ClientError> {
    let name = tls.server_name.clone().unwrap_or_else(|| host_of(addr).to_owned());
    let name = ServerName::try_from(name).map_err(|e| io(format!("server name: {e}")))?;
    let stream = TcpStream::connect(addr).await.map_err(io)?;
    let _ = stream.set_nodelay(true);
    tls.connector()?.connect(name, stream).await.map_err(|e| io(format!("tls: {e}")))
}

type Ws = WebSocketStream<Box<dyn Duplex>>;

/// A byte stream of either kind under a WebSocket.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// A WebSocket session at `url` (`ws://host:port/path` or `wss://...` with `tls`).
pub async fn ws(url: &str, tls: Option<&Tls>) -> Result<(SplitSink<Ws, Message>, SplitStream<Ws>), ClientError> {
    let (secure, rest) = match url.split_once("://") {
        Some(("ws", rest)) => (false, rest),
        Some(("wss", rest)) => (true, rest),
        _ => return Err(io(format!("{url}: not a ws:// or wss:// address"))),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let stream: Box<dyn Duplex> = if secure {
        let default = Tls::default();
        Box::new(self::tls(authority, tls.unwrap_or(&default)).await?)
    } else {
        let s = TcpStream::connect(authority).await.map_err(io)?;
        let _ = s.set_nodelay(true);
        Box::new(s)
    };
    let (ws, _) = tokio_tungstenite::client_async(url, stream).await.map_err(|e| io(format!("websocket: {e}")))?;
    Ok(ws.split())
}

/// Writes queued frames as binary messages, the length prefix taken off (each message is one
/// frame), flushing once per burst.
pub(super) async fn ws_writer(mut tx: SplitSink<Ws, Message>, mut out: mpsc::Receiver<Out>) {
    while let Some(Out(b)) = out.recv().await {
        let mut next = Some(b);
        while let Some(b) = next.take() {
            if tx.feed(Message::Binary(b.slice(LEN_PREFIX.min(b.len())..))).await.is_err() {
                return;
            }
            next = out.try_recv().ok().map(|Out(b)| b);
        }
        if tx.flush().await.is_err() {
            return;
        }
    }
    let _ = tx.close().await;
}

/// The server's frames: the binary messages, until the connection or a text message ends it.
pub(super) fn ws_frames(rx: SplitStream<Ws>) -> impl Stream<Item = Bytes> + Send {
    rx.take_while(|m| std::future::ready(matches!(m, Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_)))))
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Binary(b)) => Some(b),
                _ => None,
            })
        })
}
