//! WebSocket sessions at `GET /ws` on the HTTP listener: the same session as a TCP one (login
//! first, limits, pushes, slow consumers, typed errors for bad input), one frame per binary
//! message, and the origin check.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use imserver::client::Client;
use imserver::protocol::{self, wire, wire::ErrorCode, wire::KickReason};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn ws_url(s: &TestServer) -> String {
    format!("ws://{}/ws", s.http_addr.as_ref().unwrap())
}

async fn ws_user(s: &TestServer, user: &str) -> Client {
    let c = Client::connect_ws(&ws_url(s), None).await.unwrap();
    c.login(APP, user, &ticket_for(APP, user, SECRET), wire::ClientType::Web, &format!("{user}-web")).await.unwrap();
    c
}

/// A raw WebSocket, for what the SDK would never send; `recv_buffer` small makes the
/// server's writes back up fast.
async fn raw(s: &TestServer, recv_buffer: Option<u32>) -> WebSocketStream<TcpStream> {
    let sock = TcpSocket::new_v4().unwrap();
    if let Some(n) = recv_buffer {
        sock.set_recv_buffer_size(n).unwrap();
    }
    let tcp = sock.connect(s.http_addr.as_ref().unwrap().parse().unwrap()).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(ws_url(s), tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// A frame as a WebSocket message: the FlatBuffer without its length prefix.
fn msg(frame: Bytes) -> Message {
    Message::Binary(frame.slice(protocol::LEN_PREFIX..))
}

fn login_msg(user: &str, device: &str) -> Message {
    msg(protocol::client_frame(1, |fbb| {
        protocol::login_req(fbb, APP, user, &ticket_for(APP, user, SECRET), wire::ClientType::Web, device)
    }))
}

/// Every binary message until the server's close frame (whose code is returned, with the
/// frames, each verified).
async fn read_until_close(ws: &mut WebSocketStream<TcpStream>, within: Duration) -> (Vec<Bytes>, Option<u16>) {
    let mut frames = Vec::new();
    let end = tokio::time::timeout(within, async {
        while let Some(m) = ws.next().await {
            match m.expect("a clean WebSocket") {
                Message::Binary(b) => {
                    protocol::decode_server(&b).expect("a valid server frame");
                    frames.push(b);
                }
                Message::Close(c) => return c.map(|c| u16::from(c.code)),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("the server closes in time");
    (frames, end)
}

fn error_of(f: &[u8]) -> Option<ErrorCode> {
    protocol::decode_server(f).ok()?.response_as_error().map(|e| e.code())
}

fn kick_of(f: &[u8]) -> Option<KickReason> {
    protocol::decode_server(f).ok()?.event_as_kick_push().map(|k| k.reason())
}

#[tokio::test]
async fn a_websocket_client_and_a_tcp_client_message_each_other() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut alice = ws_user(&s, "alice").await;
    let mut bob = s.user("bob").await;
    let ack = alice.send_message("bob", "c1", 1, b"over the web", None).await.unwrap();
    let pushed =
        bob.wait_push(WAIT, |f| f.get().event_as_message_push().and_then(|p| p.message()).map(|m| m.seq())).await;
    assert_eq!(pushed, Some(ack.seq));
    bob.send_message("alice", "c2", 1, b"over tcp", None).await.unwrap();
    let body = alice
        .wait_push(WAIT, |f| {
            f.get().event_as_message_push().and_then(|p| p.message()).map(|m| m.body().unwrap().bytes().to_vec())
        })
        .await;
    assert_eq!(body.as_deref(), Some(&b"over tcp"[..]));
    // A sync read answers over the WebSocket like any other call.
    let (hist, _) = alice.history("bob", 0, 0, 10, None).await.unwrap();
    assert_eq!(hist.len(), 2);
    // The metrics count sessions by transport.
    let (_, m) = common::http::get(&common::http::client(), &s, "/metrics").await;
    assert!(m.lines().any(|l| l.starts_with("im_sessions_total{kind=\"ws\"}") && !l.ends_with(" 0")), "{m}");
}

#[tokio::test]
async fn login_comes_first_and_bad_frames_get_typed_errors() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut bob = ws_user(&s, "bob").await;

    // Garbage where a login belongs: MalformedFrame, then the close.
    let mut ws = raw(&s, None).await;
    ws.send(Message::Binary(Bytes::from_static(b"\x00\x01not a flatbuffer"))).await.unwrap();
    let (frames, close) = read_until_close(&mut ws, WAIT).await;
    assert_eq!(frames.iter().filter_map(|f| error_of(f)).collect::<Vec<_>>(), vec![ErrorCode::MalformedFrame]);
    assert!(close.is_some(), "a close frame ends it");

    // A request before the login: NotLoggedIn.
    let mut ws = raw(&s, None).await;
    ws.send(msg(protocol::client_frame(5, |fbb| {
        let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
        (wire::Request::PingReq, p.as_union_value())
    })))
    .await
    .unwrap();
    let (frames, _) = read_until_close(&mut ws, WAIT).await;
    assert_eq!(frames.iter().filter_map(|f| error_of(f)).collect::<Vec<_>>(), vec![ErrorCode::NotLoggedIn]);

    // Logged in, then a text message: frames are binary.
    let mut ws = raw(&s, None).await;
    ws.send(login_msg("alice", "raw")).await.unwrap();
    let first = ws.next().await.unwrap().unwrap().into_data();
    assert!(protocol::decode_server(&first).unwrap().response_as_login_resp().is_some());
    ws.send(Message::Text("{\"hello\": 1}".into())).await.unwrap();
    let (frames, _) = read_until_close(&mut ws, WAIT).await;
    assert_eq!(frames.iter().filter_map(|f| error_of(f)).collect::<Vec<_>>(), vec![ErrorCode::MalformedFrame]);

    // None of it disturbed another session.
    bob.ping().await.unwrap();
    let alice = s.user("alice").await;
    alice.send_message("bob", "still", 1, b"fine", None).await.unwrap();
    assert!(bob.wait_push(WAIT, |f| f.get().event_as_message_push().map(|_| ())).await.is_some());
}

#[tokio::test]
async fn oversize_messages_are_refused_before_and_after_login() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let max_login = imserver::config::Limits::default().max_login_frame;
    let max = imserver::config::Limits::default().max_frame;

    let mut ws = raw(&s, None).await;
    ws.send(Message::Binary(vec![0u8; max_login + 1].into())).await.unwrap();
    let (frames, _) = read_until_close(&mut ws, WAIT).await;
    assert_eq!(frames.iter().filter_map(|f| error_of(f)).collect::<Vec<_>>(), vec![ErrorCode::FrameTooLarge]);

    let mut ws = raw(&s, None).await;
    ws.send(login_msg("alice", "big")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    // Within the frame limit after login (a bad frame, answered, the session open), then over it.
    ws.send(Message::Binary(vec![0u8; max_login + 1].into())).await.unwrap();
    ws.send(Message::Binary(vec![0u8; max + 1].into())).await.unwrap();
    let (frames, _) = read_until_close(&mut ws, WAIT).await;
    let errors: Vec<_> = frames.iter().filter_map(|f| error_of(f)).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_ne!(errors[0], ErrorCode::FrameTooLarge, "within the limit: the frame was read and refused");
    assert_eq!(errors[1], ErrorCode::FrameTooLarge);
}

#[tokio::test]
async fn a_websocket_client_that_never_reads_is_closed_as_a_slow_consumer() {
    let s = TestServer::start_with(|c| c.limits.outbound_queue = 16).await;
    s.import(&["alice", "bob"]).await;
    let alice = s.user("alice").await;
    let admin = s.admin().await;
    let mut bob = raw(&s, Some(4096)).await;
    bob.send(login_msg("bob", "stuck")).await.unwrap();
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
    // bob reads again: whole frames, the kick, the close.
    let (frames, close) = read_until_close(&mut bob, Duration::from_secs(10)).await;
    assert_eq!(frames.last().and_then(|f| kick_of(f)), Some(KickReason::SlowConsumer));
    assert_eq!(close, Some(1008), "a policy close");
    let pushes =
        frames.iter().filter(|f| protocol::decode_server(f).unwrap().event_as_message_push().is_some()).count();
    assert!(pushes < sent, "the backlog was dropped ({pushes} of {sent})");
    alice.ping().await.unwrap();
}

#[tokio::test]
async fn websocket_sessions_count_against_the_connection_limit() {
    let s = TestServer::start_with(|c| c.limits.max_connections = 1).await;
    let _held = s.admin().await;
    let req = ws_url(&s).into_client_request().unwrap();
    let tcp = TcpStream::connect(s.http_addr.as_ref().unwrap()).await.unwrap();
    let refused = tokio_tungstenite::client_async(req, tcp).await.unwrap_err();
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 503);
            let body: serde_json::Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"], "TooManyConnections", "{body}");
        }
        e => panic!("expected a 503, got {e}"),
    }
}

#[tokio::test]
async fn pages_from_other_origins_may_not_open_a_session() {
    let s = TestServer::start().await;
    let http = s.http_addr.clone().unwrap();
    let upgrade = |origin: &str| {
        let mut req = ws_url(&s).into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    let tcp = TcpStream::connect(&http).await.unwrap();
    match tokio_tungstenite::client_async(upgrade("http://evil.example"), tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected a 403, got {:?}", other.map(|_| ())),
    }
    // The server's own pages may.
    let tcp = TcpStream::connect(&http).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(upgrade(&format!("http://{http}")), tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    drop(ws);

    // A configured list lets in exactly its origins.
    let s = TestServer::start_with(|c| c.web.origins = vec!["https://chat.example.com".into()]).await;
    let mut req = ws_url(&s).into_client_request().unwrap();
    req.headers_mut().insert("origin", "https://chat.example.com".parse().unwrap());
    let tcp = TcpStream::connect(s.http_addr.as_ref().unwrap()).await.unwrap();
    assert!(tokio_tungstenite::client_async(req, tcp).await.is_ok());
}

#[tokio::test]
async fn shutdown_closes_websocket_sessions_with_their_reason() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let mut ws = raw(&s, None).await;
    ws.send(login_msg("alice", "web")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let stopping = tokio::spawn(s.stop());
    let (frames, close) = read_until_close(&mut ws, Duration::from_secs(10)).await;
    assert_eq!(frames.last().and_then(|f| kick_of(f)), Some(KickReason::ServerShutdown));
    assert_eq!(close, Some(1001), "going away");
    stopping.await.unwrap();
}
