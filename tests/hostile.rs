//! Bad input after login: every malformed, oversized, truncated or unknown frame gets a typed
//! error (or, for an oversized length, an error then a close) and never disturbs the server or
//! other connections.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use imserver::protocol::{self, wire, wire::ErrorCode};
use tokio::io::AsyncWriteExt;

fn framed(body: &[u8]) -> Bytes {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v.into()
}

/// The next unsolicited frame's error code and request id.
async fn next_error(c: &mut imserver::client::Client) -> (ErrorCode, u64) {
    let f = c.next_push(WAIT).await.expect("an answer");
    (error_code(&f).expect("an error frame"), f.get().id())
}

#[tokio::test]
async fn malformed_and_empty_frames_get_errors_and_the_connection_lives() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let mut c = s.user("alice").await;
    c.send_raw(framed(&[0xff; 40])).await.unwrap();
    assert_eq!(next_error(&mut c).await.0, ErrorCode::MalformedFrame);
    c.send_raw(framed(&[])).await.unwrap();
    assert_eq!(next_error(&mut c).await.0, ErrorCode::MalformedFrame);
    c.ping().await.unwrap();
}

#[tokio::test]
async fn unknown_operation_and_missing_request_are_typed_errors() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let mut c = s.user("alice").await;
    let unknown = protocol::client_frame(777, |fbb| {
        let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 1 });
        (wire::Request(200), p.as_union_value())
    });
    c.send_raw(unknown).await.unwrap();
    assert_eq!(next_error(&mut c).await, (ErrorCode::UnknownOperation, 777));
    // A frame with no request at all.
    let mut fbb = flatbuffers::FlatBufferBuilder::new();
    let cf = wire::ClientFrame::create(&mut fbb, &wire::ClientFrameArgs { id: 778, ..Default::default() });
    fbb.finish_minimal(cf);
    c.send_raw(framed(fbb.finished_data())).await.unwrap();
    assert_eq!(next_error(&mut c).await, (ErrorCode::MissingField, 778));
    // A request table whose required fields are absent.
    let empty_import = protocol::client_frame(779, |fbb| {
        let r = wire::GetUserInfoReq::create(fbb, &wire::GetUserInfoReqArgs::default());
        (wire::Request::GetUserInfoReq, r.as_union_value())
    });
    c.send_raw(empty_import).await.unwrap();
    assert_eq!(next_error(&mut c).await, (ErrorCode::MissingField, 779));
    // A union tag that does not match its table: refused by the verifier or by the handler.
    let mislabeled = protocol::client_frame(780, |fbb| {
        let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: u64::MAX });
        (wire::Request::ImportUserReq, p.as_union_value())
    });
    c.send_raw(mislabeled).await.unwrap();
    let (code, _) = next_error(&mut c).await;
    assert!(
        matches!(code, ErrorCode::MalformedFrame | ErrorCode::PermissionDenied | ErrorCode::MissingField),
        "{code:?}"
    );
    // A second login on the session.
    let login = protocol::client_frame(781, |fbb| {
        let r = wire::LoginReq::create(fbb, &wire::LoginReqArgs::default());
        (wire::Request::LoginReq, r.as_union_value())
    });
    c.send_raw(login).await.unwrap();
    assert_eq!(next_error(&mut c).await, (ErrorCode::AlreadyLoggedIn, 781));
    c.ping().await.unwrap();
}

/// Every group request with its fields left out gets a typed error and changes nothing.
#[tokio::test]
async fn empty_group_requests_get_typed_errors() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let c = s.user("alice").await;
    macro_rules! empty {
        ($($t:ident => $args:ident),* $(,)?) => {{
            let mut codes = Vec::new();
            $(
                let e = c
                    .call(|fbb| {
                        let r = wire::$t::create(fbb, &wire::$args::default());
                        (wire::Request::$t, r.as_union_value())
                    })
                    .await
                    .unwrap_err();
                codes.push((stringify!($t), e.code()));
            )*
            codes
        }};
    }
    let codes = empty!(
        CreateGroupReq => CreateGroupReqArgs,
        GetGroupReq => GetGroupReqArgs,
        GetGroupMembersReq => GetGroupMembersReqArgs,
        UpdateGroupReq => UpdateGroupReqArgs,
        AddGroupMembersReq => AddGroupMembersReqArgs,
        DeleteGroupMembersReq => DeleteGroupMembersReqArgs,
        ExitGroupReq => ExitGroupReqArgs,
        UpdateGroupMemberReq => UpdateGroupMemberReqArgs,
        DestroyGroupReq => DestroyGroupReqArgs,
        GetRoleInGroupReq => GetRoleInGroupReqArgs,
        ForbidSendMsgReq => ForbidSendMsgReqArgs,
        MuteAllReq => MuteAllReqArgs,
        GetMutedMembersReq => GetMutedMembersReqArgs,
        ChangeGroupOwnerReq => ChangeGroupOwnerReqArgs,
        ApplyJoinGroupReq => ApplyJoinGroupReqArgs,
        HandleJoinRequestReq => HandleJoinRequestReqArgs,
        GetJoinRequestsReq => GetJoinRequestsReqArgs,
        GetGroupReceiptsReq => GetGroupReceiptsReqArgs,
    );
    for (op, code) in codes {
        assert_eq!(code, Some(ErrorCode::MissingField), "{op}");
    }
    // Admin-only ones refuse a user first.
    let e = c
        .call(|fbb| {
            let r = wire::ImportGroupReq::create(fbb, &wire::ImportGroupReqArgs::default());
            (wire::Request::ImportGroupReq, r.as_union_value())
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PermissionDenied));
    assert!(c.joined_groups(0, "", 10, None).await.unwrap().0.is_empty(), "nothing was created");
    c.ping().await.unwrap();
}

#[tokio::test]
async fn oversized_frame_is_refused_and_closed_without_harming_others() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut c = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut raw = (1u32 << 20).to_be_bytes().to_vec();
    raw.extend(vec![0u8; 1000]);
    c.send_raw(raw.into()).await.unwrap();
    assert_eq!(next_error(&mut c).await.0, ErrorCode::FrameTooLarge);
    assert!(c.closed(WAIT).await);
    bob.ping().await.unwrap();
}

#[tokio::test]
async fn truncated_frames_and_byte_at_a_time_writers() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let bob = s.user("bob").await;
    // A frame cut off by the peer closing.
    {
        let mut raw = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
        raw.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    }
    // A valid login frame, one byte at a time.
    let mut raw = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let login = protocol::client_frame(1, |fbb| {
        protocol::login_req(fbb, APP, "alice", &ticket_for(APP, "alice", SECRET), wire::ClientType::Web, "slow")
    });
    for b in login.iter() {
        raw.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let mut online = false;
    for _ in 0..100 {
        let st = bob.query_online_status(&["alice"]).await.unwrap();
        if st[0].online {
            online = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(online, "the slowly written login went through");
    bob.ping().await.unwrap();
}

#[tokio::test]
async fn many_pipelined_requests_are_all_answered() {
    let s = TestServer::start().await;
    s.import(&["alice"]).await;
    let c = std::sync::Arc::new(s.user("alice").await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..250 {
                c.get_single_user_info("alice").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_flooding_connection_is_refused_then_disconnected_and_others_are_served() {
    let s = TestServer::start_with(|c| {
        c.limits.requests_per_sec = 50;
        c.limits.request_burst = 10;
        c.limits.rate_limit_strikes = 30;
    })
    .await;
    s.import(&["alice", "bob"]).await;
    let mut flood = s.user("alice").await;
    let bob = s.user("bob").await;
    // 200 pings at once: the burst is answered, then RateLimited, then the connection closes.
    let mut frames = Vec::new();
    for i in 0..200u64 {
        frames.extend_from_slice(&protocol::client_frame(1000 + i, |fbb| {
            let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: i });
            (wire::Request::PingReq, p.as_union_value())
        }));
    }
    flood.send_raw(frames.into()).await.unwrap();
    let (mut pongs, mut limited, mut kicked) = (0, 0, None);
    while let Some(f) = flood.next_push(WAIT).await {
        let sf = f.get();
        if sf.response_as_pong_resp().is_some() {
            pongs += 1;
        } else if error_code(&f) == Some(ErrorCode::RateLimited) {
            limited += 1;
        } else if let Some(k) = kick_reason(&f) {
            kicked = Some(k);
            break;
        }
    }
    assert!((10..=12).contains(&pongs), "the burst, about: {pongs}");
    assert!(limited >= 20, "{limited}");
    assert_eq!(kicked, Some(wire::KickReason::RateLimited));
    assert!(flood.closed(WAIT).await);
    bob.ping().await.unwrap();
    // Administrators are not limited.
    let a = s.admin().await;
    for _ in 0..100 {
        a.ping().await.unwrap();
    }
}

/// Valid frames of several kinds, to mutate.
fn seed_frames() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    v.push(
        protocol::client_frame(1, |fbb| {
            let p = wire::PingReq::create(fbb, &wire::PingReqArgs { client_time_ms: 7 });
            (wire::Request::PingReq, p.as_union_value())
        })
        .to_vec(),
    );
    v.push(protocol::client_frame(2, |fbb| protocol::send_req(fbb, "bob", "fuzz", 1, &[1, 2, 3], None)).to_vec());
    v.push(
        protocol::client_frame(3, |fbb| {
            let u = fbb.create_string("bob");
            let ids = fbb.create_vector(&[u]);
            let fl = fbb.create_vector(&[wire::UserField::Nickname]);
            let r =
                wire::GetUserInfoReq::create(fbb, &wire::GetUserInfoReqArgs { user_ids: Some(ids), fields: Some(fl) });
            (wire::Request::GetUserInfoReq, r.as_union_value())
        })
        .to_vec(),
    );
    v.push(
        protocol::client_frame(4, |fbb| {
            let t = fbb.create_string("bob");
            let r = wire::AddFriendReq::create(fbb, &wire::AddFriendReqArgs { to_user: Some(t), ..Default::default() });
            (wire::Request::AddFriendReq, r.as_union_value())
        })
        .to_vec(),
    );
    v
}

/// A seeded mutation: flip bytes in the body, truncate it, or replace it with noise. The
/// length prefix is rewritten to the body's length so the frame boundary holds.
fn mutate(rng: &mut rand::rngs::StdRng, seed: &[u8]) -> Vec<u8> {
    use rand::Rng;
    let mut body = seed[4..].to_vec();
    match rng.random_range(0..4) {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..body.len());
                body[i] = rng.random();
            }
        }
        1 => body.truncate(rng.random_range(0..body.len())),
        2 => body = (0..rng.random_range(0..200)).map(|_| rng.random()).collect(),
        _ => {
            let i = rng.random_range(0..body.len());
            body[i] ^= 0xff;
            body.extend((0..rng.random_range(0..16)).map(|_| rng.random::<u8>()));
        }
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

#[test]
fn the_verifier_survives_many_mutated_frames() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1a2b);
    let seeds = seed_frames();
    for i in 0..50_000 {
        let f = mutate(&mut rng, &seeds[i % seeds.len()]);
        if let Ok(cf) = protocol::decode_client(&f[4..]) {
            // Whatever verified can be read field by field without panicking.
            let _ = (cf.id(), cf.request_type());
            if let Some(r) = cf.request_as_send_message_req() {
                let _ = (r.client_id(), r.conv().map(|c| c.peer()), r.body().map(|b| b.len()));
            }
            if let Some(r) = cf.request_as_get_user_info_req() {
                let _ = r.user_ids().map(|v| v.iter().count());
            }
        }
    }
}

#[tokio::test]
async fn mutated_frames_over_tcp_never_hurt_the_server() {
    use rand::SeedableRng;
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let bob = s.user("bob").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let seeds = seed_frames();
    let mut c = s.user("alice").await;
    let mut answered = 0;
    for i in 0..600 {
        let f = mutate(&mut rng, &seeds[i % seeds.len()]);
        if c.send_raw(f.into()).await.is_err() || c.closed(std::time::Duration::from_millis(1)).await {
            c = s.user("alice").await;
            continue;
        }
        if i % 50 == 0 {
            // Every so often the connection still answers properly.
            if c.ping().await.is_ok() {
                answered += 1;
            } else {
                c = s.user("alice").await;
            }
        }
    }
    assert!(answered > 0);
    // The server and other connections are fine; nothing anyone stored is corrupt.
    bob.ping().await.unwrap();
    let p = bob.get_single_user_info("alice").await.unwrap();
    assert_eq!(p.user_id, "alice");
    let a = s.admin().await;
    a.sync(wire::SyncStream::Messages, 0, 500, Some("bob")).await.unwrap();
}

/// A one-to-one send to `to` whose conversation type is `conv_type` as given.
fn send_with_conv_type(
    fbb: &mut flatbuffers::FlatBufferBuilder<'static>,
    to: &str,
    conv_type: u8,
) -> protocol::RequestBody {
    let peer = fbb.create_string(to);
    let conv = wire::ConvId::create(fbb, &wire::ConvIdArgs { type_: wire::ConvType(conv_type), peer: Some(peer) });
    let client_id = fbb.create_string("c1");
    let body = fbb.create_vector(b"hi");
    let r = wire::SendMessageReq::create(
        fbb,
        &wire::SendMessageReqArgs {
            from_user: None,
            client_id: Some(client_id),
            conv: Some(conv),
            msg_type: 1,
            body: Some(body),
        },
    );
    (wire::Request::SendMessageReq, r.as_union_value())
}

/// Asserts that `as_user`'s conversation with `peer` holds no message.
async fn no_messages(admin: &imserver::client::Client, peer: &str, as_user: &str) {
    match whole_history(admin, peer, as_user).await {
        Ok(v) => assert!(v.is_empty(), "{v:?}"),
        Err(e) => assert_eq!(e.code(), Some(ErrorCode::ConversationNotFound)),
    }
}

#[tokio::test]
async fn out_of_range_enum_values_are_invalid_arguments_and_change_nothing() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let c = s.user("alice").await;
    let code = |r: Result<imserver::client::Frame, imserver::client::ClientError>| r.unwrap_err().code();
    for black in [false, true] {
        let r = c
            .call(|fbb| {
                let bob = fbb.create_string("bob");
                let to_users = fbb.create_vector(&[bob]);
                if black {
                    let args = wire::CheckBlackReqArgs {
                        user_id: None,
                        to_users: Some(to_users),
                        direction: wire::CheckDirection(9),
                    };
                    (wire::Request::CheckBlackReq, wire::CheckBlackReq::create(fbb, &args).as_union_value())
                } else {
                    let args = wire::CheckFriendReqArgs {
                        user_id: None,
                        to_users: Some(to_users),
                        direction: wire::CheckDirection(9),
                    };
                    (wire::Request::CheckFriendReq, wire::CheckFriendReq::create(fbb, &args).as_union_value())
                }
            })
            .await;
        assert_eq!(code(r), Some(ErrorCode::InvalidArgument), "black: {black}");
    }
    let r = c.call(|fbb| send_with_conv_type(fbb, "bob", 9)).await;
    assert_eq!(code(r), Some(ErrorCode::InvalidArgument));
    let r = c
        .call(|fbb| {
            let args = wire::SyncReqArgs { user_id: None, stream: wire::SyncStream(99), after_seq: 0, limit: 10 };
            (wire::Request::SyncReq, wire::SyncReq::create(fbb, &args).as_union_value())
        })
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidArgument));
    // A profile change with an out-of-range gender.
    let r = c
        .call(|fbb| {
            let args = wire::ModifyUserInfoReqArgs { gender: wire::Gender(7), set_gender: true, ..Default::default() };
            (wire::Request::ModifyUserInfoReq, wire::ModifyUserInfoReq::create(fbb, &args).as_union_value())
        })
        .await;
    assert_eq!(code(r), Some(ErrorCode::InvalidArgument));
    // Nothing was sent: the conversation is still empty, on both sides.
    let a = s.admin().await;
    no_messages(&a, "bob", "alice").await;
    no_messages(&a, "alice", "bob").await;
    let (found, _) = a.get_user_info(&["alice"], &[]).await.unwrap();
    assert_eq!(found[0].gender, 0);
    c.ping().await.unwrap();
}

#[tokio::test]
async fn request_id_0_is_refused_with_id_0_and_not_executed() {
    let s = TestServer::start().await;
    s.import(&["alice", "bob"]).await;
    let mut a = s.admin().await;
    let import = protocol::client_frame(0, |fbb| {
        let id = fbb.create_string("carol");
        let p = wire::UserProfile::create(fbb, &wire::UserProfileArgs { user_id: Some(id), ..Default::default() });
        let users = fbb.create_vector(&[p]);
        let r = wire::ImportUserReq::create(fbb, &wire::ImportUserReqArgs { users: Some(users) });
        (wire::Request::ImportUserReq, r.as_union_value())
    });
    a.send_raw(import).await.unwrap();
    assert_eq!(next_error(&mut a).await, (ErrorCode::InvalidArgument, 0));
    let (found, missing) = a.get_user_info(&["carol"], &[]).await.unwrap();
    assert!(found.is_empty() && missing == vec!["carol".to_string()]);

    let mut c = s.user("alice").await;
    let send = protocol::client_frame(0, |fbb| protocol::send_req(fbb, "bob", "c0", 1, b"hi", None));
    c.send_raw(send).await.unwrap();
    assert_eq!(next_error(&mut c).await, (ErrorCode::InvalidArgument, 0));
    no_messages(&a, "bob", "alice").await;
    c.ping().await.unwrap();
}
