//! The README's `imctl` walk-through, done by an app backend over the HTTP API instead: every
//! step as the app's administrator acting for the user the README's line logs in as, in the
//! README's order, each checked against what the line before it did (but for eve's friend
//! request, which a user's own device makes: an administrator's add is forced). A binary client (bob's
//! laptop, the README's watcher) stays connected and receives the messages sent over HTTP.
//!
//! So that the two cannot drift apart, the test reads the README's walk-through block and
//! requires that every `imctl` subcommand in it is one this test walks (or one that belongs
//! to a connection only: `sign`, `ping`, `watch`).

use std::collections::BTreeSet;

use serde_json::{json, Value};

mod common;
use common::http::{client, ok, Http};
use common::{TestServer, WAIT};

/// The subcommands this walk covers, as the README names them (`group X` for group ones).
const WALKED: &[&str] = &[
    "import-users",
    "get-users",
    "get-user",
    "modify",
    "status",
    "send",
    "conversations",
    "history",
    "read",
    "sync",
    "add-friend",
    "friends",
    "check",
    "requests",
    "black",
    "relation",
    "friend-groups",
    "group create",
    "group member",
    "group send",
    "group catch-up",
    "group read",
    "group receipts",
    "group joined",
    "group mute",
];
/// Subcommands that are a connection's own (a ticket, a heartbeat, pushes as they arrive).
const CONNECTION_ONLY: &[&str] = &["sign", "ping", "watch"];

/// The subcommand of each `imctl` line of the README's walk-through block.
fn readme_subcommands() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme.split("## Walk-through with `imctl`").nth(1).expect("the walk-through section");
    let block = block.split("```sh").nth(1).and_then(|b| b.split("```").next()).expect("its sh block");
    let mut subs = BTreeSet::new();
    for line in block.lines().map(str::trim).filter(|l| l.starts_with("imctl ")) {
        let mut words = line.split_whitespace().skip(1);
        let mut positional = Vec::new();
        while let Some(w) = words.next() {
            if w == "--json" {
                continue;
            }
            if w.starts_with("--") {
                words.next();
                continue;
            }
            positional.push(w);
            if positional[0] != "group" || positional.len() == 2 {
                break;
            }
        }
        subs.insert(positional.join(" "));
    }
    subs
}

fn p2p(peer: &str) -> Value {
    json!({"type": "P2P", "peer": peer})
}

fn group(id: &str) -> Value {
    json!({"type": "Group", "peer": id})
}

async fn call(c: &Http, s: &TestServer, path: &str, body: Value) -> Value {
    ok(c, s, path, body).await
}

#[tokio::test]
async fn the_readme_walk_through_runs_over_http() {
    let walked: BTreeSet<String> = WALKED.iter().chain(CONNECTION_ONLY).map(|s| s.to_string()).collect();
    let readme = readme_subcommands();
    assert!(!readme.is_empty());
    let missing: Vec<_> = readme.difference(&walked).collect();
    assert!(missing.is_empty(), "README subcommands this HTTP walk does not cover: {missing:?}");

    let s = TestServer::start().await;
    let c = client();
    // import-users alice:Alice bob:Bob eve:Eve --extra '{"plan":"pro"}'
    let users: Vec<Value> = [("alice", "Alice"), ("bob", "Bob"), ("eve", "Eve")]
        .iter()
        .map(|(id, nick)| json!({"user_id": id, "nickname": nick, "extra": "{\"plan\":\"pro\"}"}))
        .collect();
    let r = call(&c, &s, "/v1/user/importUser", json!({"users": users})).await;
    assert!(r["results"].as_array().unwrap().iter().all(|x| x["code"] == "None"), "{r}");
    // get-users alice bob eve --fields nickname,extra
    let r = call(
        &c,
        &s,
        "/v1/user/data/getUserInfo",
        json!({"user_ids": ["alice", "bob", "eve"], "fields": ["Nickname", "Extra"]}),
    )
    .await;
    let nicks: Vec<&str> = r["users"].as_array().unwrap().iter().map(|u| u["nickname"].as_str().unwrap()).collect();
    assert_eq!(nicks, ["Alice", "Bob", "Eve"]);
    assert_eq!(r["users"][2]["extra"], "{\"plan\":\"pro\"}");
    // get-user alice
    let r = call(&c, &s, "/v1/user/data/getSingleUserInfo", json!({"user_id": "alice"})).await;
    assert_eq!(r["users"][0]["user_id"], "alice");
    // modify --nickname "Alice L." --signature "hello" (as alice)
    let body = json!({"user_id": "alice", "nickname": "Alice L.", "signature": "hello"});
    call(&c, &s, "/v1/user/data/modifyUserInfo", body).await;
    let r = call(&c, &s, "/v1/user/data/getSingleUserInfo", json!({"user_id": "alice"})).await;
    assert_eq!(
        (r["users"][0]["nickname"].as_str(), r["users"][0]["signature"].as_str()),
        (Some("Alice L."), Some("hello"))
    );

    // bob's laptop: the README's watcher, a real connection.
    let mut laptop = s.login("bob", imserver::protocol::wire::ClientType::Mac, "bob-laptop").await;
    // status alice bob
    let r = call(&c, &s, "/v1/user/queryOnlineStatus", json!({"user_ids": ["alice", "bob"]})).await;
    let online: Vec<bool> =
        r["statuses"].as_array().unwrap().iter().map(|x| x["online"].as_bool().unwrap_or(false)).collect();
    assert_eq!(online, [false, true], "{r}");

    // send bob "hello bob"; send bob "again" --client-id my-id-1 (as alice)
    for (i, (text, id)) in [("hello bob", "wt-1"), ("again", "my-id-1")].iter().enumerate() {
        let b64 = base64_of(text);
        let body = json!({"from_user": "alice", "client_id": id, "conv": p2p("bob"), "msg_type": 1, "body": b64});
        let ack = call(&c, &s, "/v1/message/sendMessage", body).await;
        assert_eq!(ack["seq"].as_u64(), Some(i as u64 + 1), "{ack}");
        let got = laptop.wait_push(WAIT, |f| f.get().event_as_message_push().map(|p| p.message().unwrap().seq())).await;
        assert_eq!(got, Some(i as u64 + 1), "the laptop receives {text:?}");
    }
    // conversations (as bob)
    let r = call(&c, &s, "/v1/conversation/get", json!({"user_id": "bob"})).await;
    assert_eq!(r["conversations"][0]["conv"]["peer"], "alice", "{r}");
    assert_eq!(r["conversations"][0]["unread"].as_u64(), Some(2));
    // history alice --limit 10 (as bob)
    let r = call(&c, &s, "/v1/message/getHistoryMessage", json!({"user_id": "bob", "conv": p2p("alice"), "limit": 10}))
        .await;
    assert_eq!(r["messages"].as_array().unwrap().len(), 2);
    assert_eq!(r["messages"][0]["body"], base64_of("again"));
    // read alice 2 (as bob)
    call(&c, &s, "/v1/message/read", json!({"user_id": "bob", "conv": p2p("alice"), "seq": 2})).await;
    let r = call(&c, &s, "/v1/conversation/get", json!({"user_id": "bob"})).await;
    assert_eq!(r["conversations"][0]["unread"].as_u64().unwrap_or(0), 0, "{r}");
    // sync messages --after 0 (as bob)
    let r = call(&c, &s, "/v1/sync", json!({"user_id": "bob", "stream": "Messages", "after_seq": 0})).await;
    assert!(r["items"].as_array().unwrap().len() >= 2, "{r}");

    // add-friend bob --wording "hi" (as alice)
    let r =
        call(&c, &s, "/v1/friendship/add", json!({"user_id": "alice", "to_user": "bob", "add_wording": "hi"})).await;
    assert_eq!(r["became_friends"], true, "{r}");
    // friends (as alice)
    let r = call(&c, &s, "/v1/friendship/get", json!({"user_id": "alice"})).await;
    assert_eq!(r["friends"][0]["user_id"], "bob", "{r}");
    // check bob --both (as alice)
    let r = call(
        &c,
        &s,
        "/v1/friendship/checkFriend",
        json!({"user_id": "alice", "to_users": ["bob"], "direction": "Both"}),
    )
    .await;
    assert_eq!(r["results"][0]["relation"], "Both", "{r}");
    // modify --friend-policy 1 (as bob)
    let body = json!({"user_id": "bob", "friend_add_policy": "NeedApproval", "set_friend_add_policy": true});
    call(&c, &s, "/v1/user/data/modifyUserInfo", body).await;
    // eve: add-friend bob --wording "eve here". An administrator's add is forced (Tencent's
    // ForceAddFlags: a backend adds, it does not ask), so the request bob must approve comes
    // from eve's own device, as in the README, where eve runs imctl as herself.
    let eve = s.user("eve").await;
    assert!(eve.add_friend("bob", "eve here", "", "").await.unwrap().is_some(), "a request now");
    // requests (as bob), then requests --approve-from eve
    let r = call(&c, &s, "/v1/friendshipRequest/getFriendRequest", json!({"user_id": "bob"})).await;
    let req =
        r["requests"].as_array().unwrap().iter().find(|q| q["from_user"] == "eve").expect("eve's request").clone();
    let body = json!({"user_id": "bob", "request_id": req["id"]});
    call(&c, &s, "/v1/friendshipRequest/approveFriendRequest", body).await;
    let r =
        call(&c, &s, "/v1/friendship/checkFriend", json!({"user_id": "bob", "to_users": ["eve"], "direction": "Both"}))
            .await;
    assert_eq!(r["results"][0]["relation"], "Both", "{r}");
    // black eve; relation eve (as alice)
    call(&c, &s, "/v1/friendship/addBlack", json!({"user_id": "alice", "to_user": "eve"})).await;
    let r = call(&c, &s, "/v1/friendship/getRelation", json!({"user_id": "alice", "to_user": "eve"})).await;
    assert_eq!(r["in_my_blacklist"], true, "{r}");
    // friend-groups --create work bob (as alice)
    call(&c, &s, "/v1/friendshipGroup/create", json!({"user_id": "alice", "name": "work", "members": ["bob"]})).await;
    let r = call(&c, &s, "/v1/friendshipGroup/get", json!({"user_id": "alice"})).await;
    assert_eq!(r["groups"][0]["name"], "work", "{r}");

    // group create --id team --name "The team" bob eve (as alice)
    let body = json!({"user_id": "alice", "group": {"group_id": "team", "type": "Private", "name": "The team"}, "members": ["bob", "eve"]});
    let r = call(&c, &s, "/v1/group/createGroup", body).await;
    assert_eq!(r["group_id"], "team", "{r}");
    // group member team bob --role 1 (as alice)
    let body = json!({"user_id": "alice", "group_id": "team", "member": {"user_id": "bob", "role": "Admin"}, "set_role": true});
    call(&c, &s, "/v1/group/updateMember", body).await;
    let r = call(&c, &s, "/v1/group/getRoleInGroup", json!({"group_id": "team", "user_ids": ["bob"]})).await;
    assert_eq!(r["members"][0]["role"], "Admin", "{r}");
    // group send team "hello team" (as bob); his laptop is his own sending device's peer
    let body = json!({"from_user": "bob", "client_id": "g-1", "conv": group("team"), "msg_type": 1, "body": base64_of("hello team")});
    assert_eq!(call(&c, &s, "/v1/group/sendMsg", body).await["seq"], 1);
    // group catch-up team --after 0 (as eve)
    let body = json!({"user_id": "eve", "conv": group("team"), "after_seq": 0, "oldest_first": true});
    let r = call(&c, &s, "/v1/message/getHistoryMessage", body).await;
    assert_eq!(r["messages"][0]["body"], base64_of("hello team"), "{r}");
    // group read team 1 (as eve)
    call(&c, &s, "/v1/message/read", json!({"user_id": "eve", "conv": group("team"), "seq": 1})).await;
    // group receipts team 1 (as bob)
    let r = call(&c, &s, "/v1/group/getReceipts", json!({"user_id": "bob", "group_id": "team", "seq": 1})).await;
    assert_eq!(r["read_by"], json!(["eve"]), "{r}");
    // group joined (as eve)
    let r = call(&c, &s, "/v1/group/getJoinedGroup", json!({"user_id": "eve"})).await;
    assert_eq!(r["groups"][0]["group_id"], "team", "{r}");
    // group mute team --secs 60 eve (as alice)
    let body = json!({"user_id": "alice", "group_id": "team", "members": ["eve"], "duration_secs": 60});
    call(&c, &s, "/v1/group/forbidSendMsg", body).await;
    let r = call(&c, &s, "/v1/group/getGroupShuttedUin", json!({"group_id": "team"})).await;
    assert_eq!(r["members"][0]["user_id"], "eve", "{r}");
    drop(laptop);
    s.stop().await;
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
