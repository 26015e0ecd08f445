//! TLS for the listeners: the certificate and key from `[tls]`, re-read on request (SIGHUP)
//! without touching the connections already open, and the accept of one connection, which
//! tells a client that speaks plain bytes to a TLS-only port what is wrong.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The first byte of every TLS record that opens a connection (a handshake record).
const HANDSHAKE_RECORD: u8 = 0x16;

/// The server's TLS configuration, swapped whole on reload: a handshake in progress keeps the
/// one it started with.
pub struct Tls {
    files: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// `None` when no certificate is configured.
    pub fn load(files: &TlsConfig) -> Result<Option<Arc<Tls>>, String> {
        if !files.enabled() {
            return Ok(None);
        }
        let current = RwLock::new(server_config(files)?);
        Ok(Some(Arc::new(Tls { files: files.clone(), current })))
    }

    /// Reads the certificate and key again. On an error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = server_config(&self.files)?;
        *self.current.write() = fresh;
        Ok(())
    }

    pub fn applies_to_tcp(&self) -> bool {
        self.files.tcp
    }

    pub fn applies_to_http(&self) -> bool {
        self.files.http
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// The handshake, within `within`. A client whose first byte is not a TLS handshake
    /// record gets `Err(Plain(stream))` back, untouched but for that byte's peek, so the
    /// caller can answer it in plain words.
    pub async fn accept(&self, stream: TcpStream, within: Duration) -> Result<TlsStream<TcpStream>, Refused> {
        let deadline = tokio::time::Instant::now() + within;
        let mut first = [0u8; 1];
        match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] == HANDSHAKE_RECORD => {}
            Ok(Ok(1)) => return Err(Refused::Plain(stream)),
            Ok(_) => return Err(Refused::Failed(io::ErrorKind::UnexpectedEof.into())),
            Err(_) => return Err(Refused::Failed(io::ErrorKind::TimedOut.into())),
        }
        match tokio::time::timeout_at(deadline, self.acceptor().accept(stream)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(Refused::Failed(e)),
            Err(_) => Err(Refused::Failed(io::ErrorKind::TimedOut.into())),
        }
    }
}

/// Why a connection did not become a TLS session.
pub enum Refused {
    /// It spoke plain bytes to a TLS-only port.
    Plain(TcpStream),
    /// The handshake failed or timed out.
    Failed(io::Error),
}

fn server_config(files: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("tls.cert {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls.cert {}: no certificate in it", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("tls.key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: the certificate and key do not go together: {e}"))?;
    // HTTP/1.1 on the HTTP listener; clients of the TCP port offer no ALPN.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
