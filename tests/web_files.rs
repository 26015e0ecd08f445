//! What the HTTP listener serves browsers besides `/ws`: the web chat's files, and the
//! development tickets (off unless configured; never for administrators).

mod common;

use common::http::{client, get, post};
use common::*;
use imserver::protocol::wire;
use serde_json::json;

#[tokio::test]
async fn the_web_chat_and_the_sdk_bundle_are_served() {
    let s = TestServer::start().await;
    let c = client();
    let (status, page) = get(&c, &s, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<script type=\"module\" src=\"/chat.js\">"), "{page}");
    let (status, js) = get(&c, &s, "/imclient.js").await;
    assert_eq!(status, 200);
    assert!(js.contains("ImClient"), "the SDK bundle");
    let (status, _) = get(&c, &s, "/chat.js").await;
    assert_eq!(status, 200);
    let (status, _) = get(&c, &s, "/nothing-here.js").await;
    assert_eq!(status, 405, "not a file: the listener's usual answer");

    let off = TestServer::start_with(|c| c.web.chat = false).await;
    let (status, _) = get(&c, &off, "/").await;
    assert_eq!(status, 405, "web.chat = false serves no page");
}

#[tokio::test]
async fn development_tickets_are_off_by_default() {
    let s = TestServer::start().await;
    let (status, body) = post(&client(), &s, "/v1/dev/ticket", json!({"app_id": APP, "user_id": "alice"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "UnknownOperation");
}

#[tokio::test]
async fn a_development_ticket_imports_the_user_and_logs_in() {
    let s = TestServer::start_with(|c| c.web.dev_tickets = true).await;
    let c = client();
    let (status, body) = post(&c, &s, "/v1/dev/ticket", json!({"app_id": APP, "user_id": "dora"})).await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let dora = s.connect().await;
    dora.login(APP, "dora", &ticket, wire::ClientType::Web, "web").await.unwrap();
    // Asking again changes nothing (the user exists) and gives another good ticket.
    let (status, _) = post(&c, &s, "/v1/dev/ticket", json!({"app_id": APP, "user_id": "dora"})).await;
    assert_eq!(status, 200);

    let (status, body) = post(&c, &s, "/v1/dev/ticket", json!({"app_id": APP, "user_id": "admin"})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("PermissionDenied")), "{body}");
    let (status, body) = post(&c, &s, "/v1/dev/ticket", json!({"app_id": 7, "user_id": "x"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("UnknownApp")), "{body}");
    let (status, body) = post(&c, &s, "/v1/dev/ticket", json!({"user_id": "x"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("InvalidArgument")), "{body}");
    // A ticket for one app does not open another.
    let other = s.connect().await;
    let e = other.login(OTHER_APP, "dora", &ticket, wire::ClientType::Web, "web").await.unwrap_err();
    assert!(e.code().is_some(), "{e}");
}
