//! The HTTP/JSON admin API over real HTTP (hyper's client) against a real server: a
//! walk-through of users, friendship, messages and groups; who may call it (the query ticket,
//! a bearer ticket; 401 and 403 otherwise); bad bodies refused with the typed error shape and
//! nothing changed; health and readiness.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{json, Value};

mod common;
use common::http::{admin_query, client, ok, post, request};
use common::{ticket_for, TestServer, APP, SECRET};

#[tokio::test]
async fn an_app_backend_runs_users_friends_messages_and_groups_over_http() {
    let s = TestServer::start().await;
    let c = client();
    let users = json!({"users": [
        {"user_id": "alice", "nickname": "Alice", "gender": "Female"},
        {"user_id": "bob", "nickname": "Bob"},
    ]});
    let r = ok(&c, &s, "/v1/user/importUser", users).await;
    assert_eq!(r["results"], json!([{"id": "alice", "code": "None"}, {"id": "bob", "code": "None"}]));
    let r = ok(&c, &s, "/v1/user/data/getUserInfo", json!({"user_ids": ["alice", "bob", "carol"]})).await;
    assert_eq!(r["users"][0]["nickname"], "Alice");
    assert_eq!(r["users"][0]["gender"], "Female");
    assert_eq!(r["missing"], json!(["carol"]));
    ok(&c, &s, "/v1/user/data/modifyUserInfo", json!({"user_id": "bob", "signature": "hi"})).await;
    let r = ok(&c, &s, "/v1/user/data/getSingleUserInfo", json!({"user_id": "bob"})).await;
    assert_eq!(r["users"][0]["signature"], "hi", "{r}");

    // Friendship, for alice, by the administrator.
    let r = ok(&c, &s, "/v1/friendship/add", json!({"user_id": "alice", "to_user": "bob", "add_wording": "hi"})).await;
    assert_eq!(r["became_friends"], true);
    let r = ok(&c, &s, "/v1/friendship/getRelation", json!({"user_id": "bob", "to_user": "alice"})).await;
    assert_eq!(r["is_friend"], true);

    // A message sent as alice, read back from bob's history; the body is base64.
    let send = json!({"from_user": "alice", "client_id": "m1", "conv": {"type": "P2P", "peer": "bob"}, "msg_type": 1, "body": "aGVsbG8="});
    let ack = ok(&c, &s, "/v1/message/sendMessage", send.clone()).await;
    assert_eq!((ack["seq"].as_u64(), ack["duplicate"].as_bool()), (Some(1), Some(false)), "{ack}");
    // The same send again is recognised.
    let again = ok(&c, &s, "/v1/message/send", send).await;
    assert_eq!((again["seq"].as_u64(), again["duplicate"].as_bool()), (Some(1), Some(true)));
    let h = ok(
        &c,
        &s,
        "/v1/message/getHistoryMessage",
        json!({"user_id": "bob", "conv": {"type": "P2P", "peer": "alice"}, "limit": 10}),
    )
    .await;
    assert_eq!(h["messages"][0]["body"], "aGVsbG8=");
    assert_eq!(h["messages"][0]["from_user"], "alice");

    // A group, a member added, a group message; a binary client sees the same state.
    let g = json!({"user_id": "alice", "group": {"group_id": "club", "type": "Public", "name": "Club"}});
    let r = ok(&c, &s, "/v1/group/createGroup", g).await;
    assert_eq!(r["group_id"], "club");
    ok(&c, &s, "/v1/group/addMember", json!({"group_id": "club", "members": ["bob"]})).await;
    let gsend = json!({"from_user": "bob", "client_id": "g1", "conv": {"type": "Group", "peer": "club"}, "msg_type": 1, "body": "eW8="});
    assert_eq!(ok(&c, &s, "/v1/group/sendMsg", gsend).await["seq"], 1);
    let r = ok(&c, &s, "/v1/group/get", json!({"group_id": "club"})).await;
    assert_eq!(r["group"]["name"], "Club");
    let mut members: Vec<&str> =
        r["members"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    let alice = s.user("alice").await;
    let (_, m) = alice.get_group("club").await.unwrap();
    assert_eq!(m.len(), 2);

    // A domain error: the wire's code, its name, a fitting status.
    let (status, e) = post(&c, &s, "/v1/group/get", json!({"group_id": "nope"})).await;
    assert_eq!(status, 404);
    assert_eq!(e["error"], "GroupNotFound");
    assert!(e["code"].as_u64().unwrap() >= 4000, "{e}");
    s.stop().await;
}

#[tokio::test]
async fn only_an_administrators_ticket_gets_in() {
    let s = TestServer::start().await;
    let c = client();
    let body = json!({"users": [{"user_id": "x"}]}).to_string();
    let path = "/v1/user/importUser";
    // No ticket at all.
    let (status, e) = request(&c, &s, "POST", path, None, &body).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("NotLoggedIn")), "{e}");
    // A forged one.
    let bad = format!("{path}?sdkappid={APP}&identifier=admin&usersig=garbage");
    let (status, e) = request(&c, &s, "POST", &bad, None, &body).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("BadTicket")));
    // Another user's ticket under the admin's name.
    let stolen = format!("{path}?sdkappid={APP}&identifier=admin&usersig={}", ticket_for(APP, "alice", SECRET));
    let (status, e) = request(&c, &s, "POST", &stolen, None, &body).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("TicketUserMismatch")));
    // A user's own valid ticket: not an administrator.
    let user = format!("Bearer {}", ticket_for(APP, "alice", SECRET));
    let (status, e) = request(&c, &s, "POST", path, Some(&user), &body).await;
    assert_eq!((status, e["error"].as_str()), (403, Some("PermissionDenied")));
    // Nothing was imported by any of them.
    let admin = s.admin().await;
    assert!(admin.get_single_user_info("x").await.is_err());
    // The administrator's bearer ticket works.
    let bearer = format!("Bearer {}", ticket_for(APP, "admin", SECRET));
    let (status, r) = request(&c, &s, "POST", path, Some(&bearer), &body).await;
    assert_eq!(status, 200, "{r}");
    assert!(admin.get_single_user_info("x").await.is_ok());
    s.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_typed_errors_and_change_nothing() {
    let s = TestServer::start().await;
    let c = client();
    let q = admin_query();
    let path = format!("/v1/user/importUser?{q}");
    let cases = [
        ("not json", "{\"users\": [", "InvalidArgument"),
        ("unknown field", r#"{"users": [{"user_id": "x", "nick": "X"}]}"#, "InvalidArgument"),
        ("wrong type", r#"{"users": [{"user_id": 7}]}"#, "InvalidArgument"),
        ("unknown enum", r#"{"users": [{"user_id": "x", "gender": "Robot"}]}"#, "InvalidArgument"),
        ("not an object", r#"[1, 2]"#, "InvalidArgument"),
    ];
    for (what, body, error) in cases {
        let (status, e) = request(&c, &s, "POST", &path, None, body).await;
        assert_eq!((status, e["error"].as_str()), (400, Some(error)), "{what}: {e}");
        assert!(e["code"].is_u64() && e["message"].is_string(), "{what}: {e}");
    }
    // Past the body bound.
    let big = format!(r#"{{"users": [{{"user_id": "x", "extra": "{}"}}]}}"#, "a".repeat(2 << 20));
    let (status, e) = request(&c, &s, "POST", &path, None, &big).await;
    assert_eq!((status, e["error"].as_str()), (413, Some("FrameTooLarge")));
    // A batch over the server's limit: the same check as the binary protocol.
    let many: Vec<Value> = (0..10_000).map(|i| json!({"user_id": format!("u{i}")})).collect();
    let (status, e) = request(&c, &s, "POST", &path, None, &json!({"users": many}).to_string()).await;
    assert_eq!(status, 400, "{e}");
    // Unknown operations and methods.
    let (status, e) = request(&c, &s, "POST", &format!("/v1/user/nope?{q}"), None, "{}").await;
    assert_eq!((status, e["error"].as_str()), (404, Some("UnknownOperation")));
    let (status, _) = request(&c, &s, "GET", "/v1/user/importUser", None, "").await;
    assert_eq!(status, 405);
    // None of it imported anyone.
    let admin = s.admin().await;
    assert!(admin.get_single_user_info("x").await.is_err());
    assert!(admin.get_single_user_info("u0").await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn health_and_readiness_while_draining() {
    let s = TestServer::start().await;
    let c = client();
    let (status, body) = request(&c, &s, "GET", "/healthz", None, "").await;
    assert_eq!((status, body.as_str()), (200, Some("ok\n")));
    let (status, _) = request(&c, &s, "GET", "/readyz", None, "").await;
    assert_eq!(status, 200);
    // A client that neither logs in nor closes keeps the drain going for a while (up to the
    // shutdown timeout): meanwhile the server is up but not ready.
    let _held = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let http = s.http_addr.clone().unwrap();
    let stopping = tokio::spawn(s.stop());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (ready, health) = loop {
        assert!(std::time::Instant::now() < deadline && !stopping.is_finished(), "never saw the drain");
        let get = |p: &str| hyper::Request::get(format!("http://{http}{p}")).body(Full::new(Bytes::new())).unwrap();
        if let Ok(r) = c.request(get("/readyz")).await {
            if r.status() == 503 {
                let h = c.request(get("/healthz")).await.unwrap().status();
                break (r.status(), h);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!((ready.as_u16(), health.as_u16()), (503, 200));
    stopping.await.unwrap();
}
