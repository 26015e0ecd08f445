//! How the server ends connections, read from real sockets: every close it starts ends with
//! the frame that says why, after whole frames only, even to a client that stopped reading.

mod common;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use common::*;
use imserver::protocol::{self, wire, wire::ErrorCode, wire::KickReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection whose receive buffer is small, so the server's writes back up fast.
async fn connect_small(addr: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(addr.parse().unwrap()).await.unwrap()
}

fn login_frame(user: &str, device: &str) -> bytes::Bytes {
    protocol::client_frame(1, |fbb| {
        protocol::login_req(fbb, APP, user, &ticket_for(APP, user, SECRET), wire::ClientType::Web, device)
    })
}

/// Every frame until the server closes, each checked to be a whole, valid server frame.
async fn read_to_end(sock: &mut TcpStream, within: Duration) -> Vec<bytes::Bytes> {
    let mut raw = Vec::new();
    tokio::time::timeout(within, sock.read_to_end(&mut raw))
        .await
        .expect("the server closes in time")
        .expect("a clean close, not a reset");
    let mut buf = BytesMut::from(&raw[..]);
    let mut frames = Vec::new();
    while !buf.is_empty() {
        assert!(buf.len() >= 4, "a cut length prefix at the end");
        let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert!(buf.len() >= 4 + len, "a cut frame at the end: {} of {} bytes", buf.len() - 4, len);
        buf.advance(4);
        let f = buf.split_to(len).freeze();
        protocol::decode_server(&f).expect("a valid server frame");
        frames.push(f);
    }
    frames
}

fn ping_frame() -> bytes::Bytes {
    protocol::client_frame(9, |fbb| {
        let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
        (wire::Request::PingReq, p.as_union_value())
    })
}

fn kick_of(f: &[u8]) -> Option<KickReason> {
    protocol::decode_server(f).ok()?.event_as_kick_push().map(|k| k.reason())
}

#[tokio::test]
async fn a_slow_consumer_reads_whole_frames_then_its_kick() {
    let s = TestServer::start_with(|c| c.limits.outbound_queue = 16).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let admin = s.admin().await;
    // bob logs in and then stops reading.
    let mut bob = connect_small(&s.addr).await;
    bob.write_all(&login_frame("bob", "stuck")).await.unwrap();
    let body = vec![7u8; 8000];
    let mut sent = 0;
    let mut offline = false;
    while sent < 4000 && !offline {
        alice.send_message("bob", &format!("flood{sent}"), 1, &body, None).await.unwrap();
        sent += 1;
        if sent % 25 == 0 {
            offline = !admin.query_online_status(&["bob"]).await.unwrap()[0].online;
        }
    }
    assert!(offline, "bob was closed as a slow consumer after {sent} messages");
    // bob still writes requests, which the server no longer reads: a socket closed with
    // unread input is reset, and a reset throws away what bob has not received yet.
    for _ in 0..20 {
        bob.write_all(&ping_frame()).await.unwrap();
    }
    // bob reads again (well within the write timeout): what the server had taken for his
    // socket, as whole frames, then the kick, then the end.
    let frames = read_to_end(&mut bob, Duration::from_secs(10)).await;
    let last = frames.last().expect("frames");
    assert_eq!(kick_of(last), Some(KickReason::SlowConsumer), "the last frame says why");
    let pushes =
        frames.iter().filter(|f| protocol::decode_server(f).unwrap().event_as_message_push().is_some()).count();
    assert!(pushes < sent, "the backlog was dropped, not delivered ({pushes} of {sent})");
    assert_eq!(frames.iter().filter(|f| kick_of(f).is_some()).count(), 1, "one kick");
    // Others were served throughout, and bob's next device gets everything by sync.
    alice.ping().await.unwrap();
    let bob = s.user("bob").await;
    let (last, _) = bob.history("alice", 0, 0, 1, None).await.unwrap();
    assert_eq!(last[0].seq, sent as u64);
}

#[tokio::test]
async fn a_connection_over_the_limit_reads_its_error_though_it_sent_a_login() {
    let s = TestServer::start_with(|c| c.limits.max_connections = 1).await;
    let _held = s.admin().await;
    let mut over = TcpStream::connect(&s.addr).await.unwrap();
    over.write_all(&login_frame("admin", "over")).await.unwrap();
    let frames = read_to_end(&mut over, WAIT).await;
    assert_eq!(frames.len(), 1);
    let f = protocol::decode_server(&frames[0]).unwrap();
    assert_eq!(f.response_as_error().map(|e| e.code()), Some(ErrorCode::TooManyConnections));
}
