//! Login, tickets, session lifecycle: over TCP against the real server.

mod common;

use std::time::Duration;

use common::*;
use imserver::auth::ticket;
use imserver::client::Client;
use imserver::protocol::{self, wire, wire::ErrorCode};

async fn login_err(s: &TestServer, app: u32, user: &str, t: &str) -> ErrorCode {
    let c = s.connect().await;
    c.login(app, user, t, wire::ClientType::Ios, "d").await.unwrap_err().code().expect("a server error")
}

#[tokio::test]
async fn login_answers_session_and_address() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let c = s.connect().await;
    let info = c.login(APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Ios, "p1").await.unwrap();
    assert_eq!(info.server_addr, s.addr);
    assert!(!info.is_admin);
    assert!(info.heartbeat_secs > 0 && info.idle_timeout_secs > info.heartbeat_secs);
    assert!(c.ping().await.unwrap() > 0);
}

#[tokio::test]
async fn bad_tickets_are_refused_with_their_codes() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let now = now_secs();
    assert_eq!(login_err(&s, APP, "alice", "garbage").await, ErrorCode::BadTicket);
    let wrong_key = ticket::sign(APP as u64, "alice", b"not-the-secret", now, 3600);
    assert_eq!(login_err(&s, APP, "alice", &wrong_key).await, ErrorCode::BadTicket);
    let expired = ticket::sign(APP as u64, "alice", SECRET.as_bytes(), now - 7200, 3600);
    assert_eq!(login_err(&s, APP, "alice", &expired).await, ErrorCode::TicketExpired);
    let future = ticket::sign(APP as u64, "alice", SECRET.as_bytes(), now + 3600, 3600);
    assert_eq!(login_err(&s, APP, "alice", &future).await, ErrorCode::TicketNotYetValid);
    let bobs = ticket_for(APP, "bob", SECRET);
    assert_eq!(login_err(&s, APP, "alice", &bobs).await, ErrorCode::TicketUserMismatch);
    // A genuine ticket of another app, presented to this app.
    let other = ticket_for(OTHER_APP, "alice", OTHER_SECRET);
    assert_eq!(login_err(&s, APP, "alice", &other).await, ErrorCode::BadTicket);
    assert_eq!(login_err(&s, 999, "alice", &ticket_for(999, "alice", SECRET)).await, ErrorCode::UnknownApp);
    assert_eq!(login_err(&s, APP, "nobody", &ticket_for(APP, "nobody", SECRET)).await, ErrorCode::UserNotFound);
    assert_eq!(login_err(&s, APP, "bad id", &ticket_for(APP, "bad id", SECRET)).await, ErrorCode::InvalidArgument);
}

#[tokio::test]
async fn apps_do_not_see_each_other() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    // alice exists in APP only.
    let t = ticket_for(OTHER_APP, "alice", OTHER_SECRET);
    assert_eq!(login_err(&s, OTHER_APP, "alice", &t).await, ErrorCode::UserNotFound);
    let other_admin = s.connect().await;
    other_admin
        .login(OTHER_APP, "admin", &ticket_for(OTHER_APP, "admin", OTHER_SECRET), wire::ClientType::Backend, "b")
        .await
        .unwrap();
    let (found, missing) = other_admin.get_user_info(&["alice"], &[]).await.unwrap();
    assert!(found.is_empty());
    assert_eq!(missing, vec!["alice".to_string()]);
}

#[tokio::test]
async fn frames_before_login_are_refused_and_closed() {
    let s = TestServer::start().await;
    let mut c = s.connect().await;
    let err = c.ping().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotLoggedIn));
    assert!(c.closed(WAIT).await);
}

#[tokio::test]
async fn second_login_on_one_connection_is_refused() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let c = s.user("alice").await;
    let again = c.login(APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Ios, "x").await;
    assert_eq!(again.unwrap_err().code(), Some(ErrorCode::AlreadyLoggedIn));
    c.ping().await.unwrap();
}

#[tokio::test]
async fn login_timeout_closes_silent_connections() {
    let s = TestServer::start_with(|c| c.timeouts.login_secs = 1).await;
    let mut c = s.connect().await;
    let f = c.next_push(WAIT).await.expect("an error frame");
    assert_eq!(error_code(&f), Some(ErrorCode::LoginTimeout));
    assert!(c.closed(WAIT).await);
}

#[tokio::test]
async fn idle_timeout_closes_and_heartbeats_keep_alive() {
    let s = TestServer::start_with(|c| c.timeouts.idle_secs = 1).await;
    s.import(&["alice", "bob"]).await;
    let mut idle = s.user("alice").await;
    let busy = s.user("bob").await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        busy.ping().await.unwrap();
    }
    let f = idle.next_push(WAIT).await.expect("a kick");
    assert_eq!(kick_reason(&f), Some(wire::KickReason::IdleTimeout));
    assert!(idle.closed(WAIT).await);
    busy.ping().await.unwrap();
}

#[tokio::test]
async fn logout_answers_then_closes_and_goes_offline() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let mut c = s.user("alice").await;
    let admin = s.admin().await;
    assert!(admin.query_online_status(&["alice"]).await.unwrap()[0].online);
    c.logout().await.unwrap();
    let f = c.next_push(WAIT).await.expect("kick frame");
    assert_eq!(kick_reason(&f), Some(wire::KickReason::Logout));
    assert!(c.closed(WAIT).await);
    let mut offline = false;
    for _ in 0..50 {
        if !admin.query_online_status(&["alice"]).await.unwrap()[0].online {
            offline = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(offline);
}

#[tokio::test]
async fn connection_limit_answers_with_an_error() {
    let s = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    let _a = s.connect().await;
    let _b = s.connect().await;
    // Give the server a moment to accept both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = Client::connect(&s.addr).await.unwrap();
    let f = c.next_push(WAIT).await.expect("an error frame");
    assert_eq!(error_code(&f), Some(ErrorCode::TooManyConnections));
    assert!(c.closed(WAIT).await);
}

#[tokio::test]
async fn oversized_login_frame_is_refused() {
    let s = TestServer::start().await;
    let mut c = s.connect().await;
    // A length prefix above the 4 KiB pre-login limit: refused before it is buffered.
    let mut raw = (5000u32).to_be_bytes().to_vec();
    raw.extend(vec![0u8; 100]);
    c.send_raw(raw.into()).await.unwrap();
    let f = c.next_push(WAIT).await.expect("an error frame");
    assert_eq!(error_code(&f), Some(ErrorCode::FrameTooLarge));
    assert!(c.closed(WAIT).await);
}

#[tokio::test]
async fn malformed_login_frame_is_refused() {
    let s = TestServer::start().await;
    let mut c = s.connect().await;
    let mut raw = (8u32).to_be_bytes().to_vec();
    raw.extend([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
    c.send_raw(raw.into()).await.unwrap();
    let f = c.next_push(WAIT).await.expect("an error frame");
    assert_eq!(error_code(&f), Some(ErrorCode::MalformedFrame));
    assert!(c.closed(WAIT).await);
    // The server is fine.
    let _ = protocol::PROTOCOL_VERSION;
    s.admin().await.ping().await.unwrap();
}

#[tokio::test]
async fn only_the_served_protocol_versions_may_log_in() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    for v in [0, 3, 99] {
        let e = login_with_version(&s, "alice", v).await.err().expect("refused");
        assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "version {v}");
    }
    for v in protocol::SERVED_VERSIONS {
        login_with_version(&s, "alice", v).await.unwrap().ping().await.unwrap();
    }
    assert_eq!(protocol::SERVED_VERSIONS, 1..=2);
}

#[tokio::test]
async fn a_ticket_signed_with_this_apps_secret_for_another_app_id_is_a_mismatch() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let t = ticket::sign(OTHER_APP as u64, "alice", SECRET.as_bytes(), now_secs(), 3600);
    assert_eq!(login_err(&s, APP, "alice", &t).await, ErrorCode::TicketUserMismatch);
}

#[tokio::test]
async fn a_login_with_request_id_0_is_refused_with_id_0_and_closed() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let mut c = s.connect().await;
    let t = ticket_for(APP, "alice", SECRET);
    let f = protocol::client_frame(0, |fbb| protocol::login_req(fbb, APP, "alice", &t, wire::ClientType::Ios, "d"));
    c.send_raw(f).await.unwrap();
    let answer = c.next_push(WAIT).await.expect("an answer");
    assert_eq!(answer.get().id(), 0);
    assert_eq!(error_code(&answer), Some(ErrorCode::InvalidArgument));
    assert!(c.closed(WAIT).await);
    // Not logged in: alice is offline.
    let a = s.admin().await;
    let st = a.query_online_status(&["alice"]).await.unwrap();
    assert!(!st[0].online);
}
