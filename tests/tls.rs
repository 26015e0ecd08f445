//! TLS on the TCP port and on the HTTP listener (HTTPS, WSS), with certificates made at test
//! time: the handshake against the test CA, a client refusing a wrong CA, plain bytes on a
//! TLS-only port answered with a clear error, and a certificate swapped on reload (SIGHUP in
//! the real binary) without dropping the connections already open.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use imserver::client::connect::Tls;
use imserver::client::Client;
use imserver::protocol::wire::{self, ErrorCode};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and a server certificate it signed, for localhost and 127.0.0.1, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

fn trust(pki: &Pki) -> Tls {
    Tls::new(Some(pki.ca.clone()), None)
}

async fn tls_server(pki: &Pki) -> TestServer {
    let (cert, key) = (pki.cert.clone(), pki.key.clone());
    let mut s = TestServer::start_with(move |c| {
        c.tls.cert = cert;
        c.tls.key = key;
    })
    .await;
    s.client_tls = Some(trust(pki));
    s
}

async fn login(c: &Client, user: &str) {
    c.login(APP, user, &ticket_for(APP, user, SECRET), wire::ClientType::Ios, "phone").await.unwrap();
}

#[tokio::test]
async fn a_tls_session_logs_in_and_messages_flow() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "one");
    let s = tls_server(&pki).await;
    s.import(&["alice", "bob"]).await;
    let alice = Client::connect_tls(&s.addr, &trust(&pki)).await.unwrap();
    login(&alice, "alice").await;
    let mut bob =
        Client::connect_tls(&s.addr, &Tls::new(Some(pki.ca.clone()), Some("localhost".into()))).await.unwrap();
    login(&bob, "bob").await;
    let ack = alice.send_message("bob", "t1", 1, b"encrypted", None).await.unwrap();
    let seq = bob.wait_push(WAIT, |f| f.get().event_as_message_push().and_then(|p| p.message()).map(|m| m.seq())).await;
    assert_eq!(seq, Some(ack.seq));

    // WSS on the HTTPS listener, the same certificate.
    let url = format!("wss://{}/ws", s.http_addr.as_ref().unwrap());
    let web = Client::connect_ws(&url, Some(&trust(&pki))).await.unwrap();
    login(&web, "alice").await;
    web.ping().await.unwrap();
}

#[tokio::test]
async fn a_client_refuses_a_server_its_ca_did_not_sign() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, other) = (make_pki(dir.path(), "one"), make_pki(dir.path(), "other"));
    let s = tls_server(&pki).await;
    let e = Client::connect_tls(&s.addr, &trust(&other)).await.err().expect("refused");
    assert!(e.to_string().contains("certificate"), "{e}");
    // A name the certificate does not carry is refused too.
    let e = Client::connect_tls(&s.addr, &Tls::new(Some(pki.ca.clone()), Some("im.example.com".into())))
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("certificate"), "{e}");
    // The server goes on serving good clients.
    let c = Client::connect_tls(&s.addr, &trust(&pki)).await.unwrap();
    s.import(&["carol"]).await;
    login(&c, "carol").await;
}

#[tokio::test]
async fn plain_bytes_on_a_tls_port_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "one");
    let s = tls_server(&pki).await;
    s.import(&["alice"]).await;
    let mut plain = Client::connect(&s.addr).await.unwrap();
    let e =
        plain.login(APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Ios, "phone").await.unwrap_err();
    assert!(matches!(e, imserver::client::ClientError::Closed), "{e:?}");
    let f = plain.next_push(WAIT).await.expect("the error frame, in plain");
    assert_eq!(error_code(&f), Some(ErrorCode::TlsRequired));
    assert!(plain.closed(WAIT).await);

    // Plain HTTP on the HTTPS listener: a plain 400 saying so.
    let (status, body) = common::http::get(&common::http::client(), &s, "/healthz").await;
    assert_eq!(status, 400);
    assert!(body.contains("TlsRequired"), "{body}");
}

#[tokio::test]
async fn a_reload_swaps_the_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (make_pki(dir.path(), "old"), make_pki(dir.path(), "new"));
    let live = Pki { ca: old.ca.clone(), cert: dir.path().join("live-cert.pem"), key: dir.path().join("live-key.pem") };
    std::fs::copy(&old.cert, &live.cert).unwrap();
    std::fs::copy(&old.key, &live.key).unwrap();
    let s = tls_server(&live).await;
    s.import(&["alice"]).await;
    let before = Client::connect_tls(&s.addr, &trust(&old)).await.unwrap();
    login(&before, "alice").await;

    // A broken file is refused and the old certificate stays.
    std::fs::write(&live.cert, "not a certificate").unwrap();
    s.reload_tls.notify_one();
    tokio::time::sleep(Duration::from_millis(200)).await;
    Client::connect_tls(&s.addr, &trust(&old)).await.expect("still the old certificate");

    std::fs::copy(&new.cert, &live.cert).unwrap();
    std::fs::copy(&new.key, &live.key).unwrap();
    s.reload_tls.notify_one();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if Client::connect_tls(&s.addr, &trust(&new)).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the new certificate is served after the reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(Client::connect_tls(&s.addr, &trust(&old)).await.is_err(), "the old one is gone");
    // The connection made before the reload goes on.
    before.ping().await.unwrap();
}

#[test]
fn the_binary_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (make_pki(dir.path(), "old"), make_pki(dir.path(), "new"));
    let (cert, key) = (dir.path().join("live-cert.pem"), dir.path().join("live-key.pem"));
    std::fs::copy(&old.cert, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let data = dir.path().join("data");
    let (proc, addr) = spawn_process(&[
        "--data",
        data.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        Client::connect_tls(&addr, &trust(&old)).await.expect("the first certificate");
        std::fs::copy(&new.cert, &cert).unwrap();
        std::fs::copy(&new.key, &key).unwrap();
        // SAFETY: kill sends a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(proc.0.id() as i32, libc::SIGHUP) }, 0);
        let deadline = tokio::time::Instant::now() + WAIT;
        while Client::connect_tls(&addr, &trust(&new)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "SIGHUP reloaded the certificate");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    drop(proc);
}
