//! `sessions_on_shards`: a plain TCP session moves to its user's shard thread once its ticket
//! checks out. Read from real sockets: what a client sent behind its login is not lost in the
//! move, users on different shards talk as before, administrators and refused logins stay
//! where they were accepted, and a graceful stop still closes every moved session with its
//! reason.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use common::http::{client, get};
use common::*;
use imserver::client::{Frame, Message};
use imserver::protocol::{self, wire, wire::ErrorCode, wire::KickReason};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn moved(s: &TestServer) -> f64 {
    let (status, text) = get(&client(), s, "/metrics").await;
    assert_eq!(status, 200);
    let line = text.lines().find(|l| l.starts_with("im_sessions_moved_total ")).expect("the counter is exposed");
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

fn pushed_message(f: &Frame) -> Option<Message> {
    f.get().event_as_message_push().and_then(|p| p.message()).map(|m| Message::from_wire(&m))
}

/// Reads whole frames until `n` have come, within `within`.
async fn read_frames(sock: &mut tokio::net::TcpStream, n: usize, within: Duration) -> Vec<bytes::Bytes> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    tokio::time::timeout(within, async {
        while frames.len() < n {
            while buf.len() >= 4 {
                let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
                if buf.len() < 4 + len {
                    break;
                }
                buf.advance(4);
                frames.push(buf.split_to(len).freeze());
            }
            if frames.len() >= n {
                break;
            }
            let mut chunk = [0u8; 4096];
            let got = sock.read(&mut chunk).await.unwrap();
            assert!(got > 0, "the server closed after {} frames", frames.len());
            buf.extend_from_slice(&chunk[..got]);
        }
    })
    .await
    .expect("the frames come in time");
    frames
}

#[tokio::test]
async fn a_moved_session_answers_what_was_sent_behind_its_login() {
    let s = TestServer::start_with(|c| c.sessions_on_shards = true).await;
    s.import(&["alice"]).await;
    let before = moved(&s).await;
    // The login and two requests in one write: the server reads them together, so the two
    // requests are already in the read buffer when the session moves.
    let mut sock = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let login = protocol::client_frame(1, |fbb| {
        protocol::login_req(fbb, APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Web, "w")
    });
    let ping = |id| {
        protocol::client_frame(id, |fbb| {
            let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
            (wire::Request::PingReq, p.as_union_value())
        })
    };
    let mut all = login.to_vec();
    all.extend_from_slice(&ping(7));
    all.extend_from_slice(&ping(8));
    sock.write_all(&all).await.unwrap();
    let frames = read_frames(&mut sock, 3, WAIT).await;
    let ids: Vec<u64> = frames.iter().map(|f| protocol::decode_server(f).unwrap().id()).collect();
    assert_eq!(ids, vec![1, 7, 8], "the login's answer, then both pings'");
    let first = protocol::decode_server(&frames[0]).unwrap();
    assert!(first.response_as_login_resp().is_some(), "the first answer is the login's");
    assert_eq!(moved(&s).await - before, 1.0, "alice's session moved; the importing admin's did not");
}

#[tokio::test]
async fn moved_sessions_on_different_shards_talk_and_close_with_a_reason() {
    let s = TestServer::start_with(|c| {
        c.sessions_on_shards = true;
        c.shards = 2;
    })
    .await;
    // Enough users that both shards have some.
    let names: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    s.import(&refs).await;
    let before = moved(&s).await;
    let mut clients = HashMap::new();
    for n in &names {
        clients.insert(n.clone(), s.user(n).await);
    }
    assert_eq!(moved(&s).await - before, names.len() as f64, "every user session moved");
    // An administrator stays on the connection threads.
    let _admin = s.admin().await;
    // A refused login is answered where it was accepted, and nothing moves.
    let stranger = s.connect().await;
    let refused = stranger.login(APP, "u0", "not-a-ticket", wire::ClientType::Ios, "x").await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::BadTicket));
    assert_eq!(moved(&s).await - before, names.len() as f64);

    // Every user sends to the next: across shards and within one.
    for (i, from) in names.iter().enumerate() {
        let to = &names[(i + 1) % names.len()];
        let ack = clients[from].send_message(to, &format!("{from}-1"), 1, from.as_bytes(), None).await.unwrap();
        assert_eq!(ack.seq, 1);
    }
    for (i, to) in names.iter().enumerate() {
        let from = &names[(i + names.len() - 1) % names.len()];
        let c = clients.get_mut(to).unwrap();
        let m = c.wait_push(WAIT, pushed_message).await.unwrap_or_else(|| panic!("{to} gets {from}'s message"));
        assert_eq!((m.from.as_str(), m.body.as_slice()), (from.as_str(), from.as_bytes()));
        c.receive_ack(from, m.server_id, m.seq).await.unwrap();
    }
    // The receipts reach the senders.
    for (i, from) in names.iter().enumerate() {
        let to = names[(i + 1) % names.len()].clone();
        let c = clients.get_mut(from).unwrap();
        let by = c
            .wait_push(WAIT, |f| f.get().event_as_receipt_push().map(|r| r.by_user().unwrap_or_default().to_owned()))
            .await;
        assert_eq!(by, Some(to));
    }

    // A graceful stop closes every moved session with its reason.
    let stop = tokio::spawn(s.stop());
    for (n, c) in clients.iter_mut() {
        let kick = c.wait_push(WAIT, kick_reason).await;
        assert_eq!(kick, Some(KickReason::ServerShutdown), "{n} is told why");
        assert!(c.closed(WAIT).await, "{n}'s connection closes");
    }
    stop.await.unwrap();
}
