//! Group operations over TCP against the real server: create, read, members, roles, updates,
//! mutes, ownership, join requests, import, destroy; their pushes and errors; the permission
//! matrix; the joined-groups list and its sync stream, also after a restart.

mod common;

use std::time::Duration;

use common::*;
use imserver::client::{Client, ClientError, Frame, GroupChange, GroupInfo, GroupMember};
use imserver::protocol::wire::{ErrorCode, SyncStream};

const PRIVATE: u8 = 1;
const PUBLIC: u8 = 2;

fn info(id: &str, kind: u8) -> GroupInfo {
    GroupInfo { group_id: id.into(), kind, name: format!("name-{id}"), ..Default::default() }
}

fn code<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    r.unwrap_err().code().expect("a server error")
}

fn ok_all(r: &[(String, ErrorCode)]) -> bool {
    r.iter().all(|(_, c)| *c == ErrorCode::None)
}

/// The kind and users of a group event push.
fn event(f: &Frame) -> Option<(String, Vec<String>)> {
    let p = f.get().event_as_group_event_push()?;
    let users = p.users().map(|v| v.iter().map(str::to_owned).collect()).unwrap_or_default();
    Some((p.kind().unwrap_or_default().to_owned(), users))
}

async fn expect_event(c: &mut Client, kind: &str) -> Vec<String> {
    loop {
        let (k, users) = c.wait_push(WAIT, event).await.unwrap_or_else(|| panic!("no {kind} event"));
        if k == kind {
            return users;
        }
    }
}

async fn joined(c: &Client) -> Vec<String> {
    let (groups, _, more) = c.joined_groups(0, "", 100, None).await.unwrap();
    assert!(!more);
    groups.into_iter().map(|g| g.group_id).collect()
}

#[tokio::test]
async fn create_get_and_the_members_lists() {
    let s = TestServer::start().await;
    s.import(&["owner", "m1", "m2", "out"]).await;
    let owner = s.user("owner").await;
    let mut m1 = s.user("m1").await;
    let (id, results) =
        owner.create_group(&info("team", PRIVATE), &["m1", "m2", "ghost", "owner"], None).await.unwrap();
    assert_eq!(id, "team");
    let codes: Vec<ErrorCode> = results.iter().map(|(_, c)| *c).collect();
    assert_eq!(codes, [ErrorCode::None, ErrorCode::None, ErrorCode::UserNotFound, ErrorCode::AlreadyGroupMember]);
    let users = expect_event(&mut m1, "created").await;
    assert_eq!(users, ["m1", "m2", "owner"]);

    let (g, members) = m1.get_group("team").await.unwrap();
    assert_eq!((g.owner.as_str(), g.member_count, g.kind, g.name.as_str()), ("owner", 3, PRIVATE, "name-team"));
    let roles: Vec<(String, u8)> = members.iter().map(|m| (m.user_id.clone(), m.role)).collect();
    assert_eq!(roles, [("m1".into(), 0), ("m2".into(), 0), ("owner".into(), 2)]);
    // Paged members, by id.
    let (page, next, more) = m1.group_members("team", "", 2).await.unwrap();
    assert_eq!((page.len(), next.as_str(), more), (2, "m2", true));
    let (rest, _, more) = m1.group_members("team", &next, 2).await.unwrap();
    assert_eq!((rest.len(), rest[0].user_id.as_str(), more), (1, "owner", false));
    let roles = m1.group_roles("team", &["owner", "out"]).await.unwrap();
    assert_eq!(roles.iter().map(|m| (m.user_id.as_str(), m.role)).collect::<Vec<_>>(), [("owner", 2)]);
    // A private group is for its members.
    let out = s.user("out").await;
    assert_eq!(code(out.get_group("team").await), ErrorCode::NotGroupMember);
    assert_eq!(code(out.group_members("team", "", 10).await), ErrorCode::NotGroupMember);
    // Server-assigned ids; a taken id; a bad one.
    let (auto, _) = owner.create_group(&info("", PUBLIC), &[], None).await.unwrap();
    assert!(auto.starts_with("@g"), "{auto}");
    assert_eq!(out.get_group(&auto).await.unwrap().0.kind, PUBLIC, "a public group's info is for anyone");
    assert_eq!(code(owner.create_group(&info("team", PRIVATE), &[], None).await), ErrorCode::GroupExists);
    assert_eq!(code(owner.create_group(&info("has space", PRIVATE), &[], None).await), ErrorCode::InvalidArgument);
    assert_eq!(code(owner.create_group(&info("k", 9), &[], None).await), ErrorCode::InvalidArgument);
    assert_eq!(code(owner.get_group("nope").await), ErrorCode::GroupNotFound);
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(code(owner.create_group(&info("big", PRIVATE), &many, None).await), ErrorCode::BatchTooLarge);
    assert_eq!(code(owner.get_group("big").await), ErrorCode::GroupNotFound, "refused, nothing stored");
    assert_eq!(joined(&m1).await, ["team"]);
    let mut all = joined(&owner).await;
    all.sort();
    assert_eq!(all, [auto.clone(), "team".to_string()]);
}

#[tokio::test]
async fn add_kick_exit_silent_and_the_joined_list() {
    let s = TestServer::start().await;
    s.import(&["owner", "adm", "m1", "m2", "m3"]).await;
    let owner = s.user("owner").await;
    let mut m1 = s.user("m1").await;
    let mut m2 = s.user("m2").await;
    owner.create_group(&info("g", PUBLIC), &["adm", "m1"], None).await.unwrap();
    owner.update_group_member("g", "adm", None, None, Some(1)).await.unwrap();
    expect_event(&mut m1, "member_updated").await;
    // Only managers invite into a public group.
    assert_eq!(code(m1.add_group_members("g", &["m2"], false).await), ErrorCode::GroupRoleDenied);
    let adm = s.user("adm").await;
    let r = adm.add_group_members("g", &["m2", "m1", "ghost"], false).await.unwrap();
    let codes: Vec<ErrorCode> = r.iter().map(|(_, c)| *c).collect();
    assert_eq!(codes, [ErrorCode::None, ErrorCode::AlreadyGroupMember, ErrorCode::UserNotFound]);
    assert_eq!(expect_event(&mut m1, "members_added").await, ["m2"]);
    assert_eq!(expect_event(&mut m2, "members_added").await, ["m2"], "the new member hears of it too");
    assert_eq!(joined(&m2).await, ["g"]);
    // Silent: nobody is told, but the new member's lists have it.
    let mut m3 = s.user("m3").await;
    assert!(ok_all(&owner.add_group_members("g", &["m3"], true).await.unwrap()));
    assert!(m1.wait_push(Duration::from_millis(300), event).await.is_none(), "silent");
    assert!(m3.wait_push(Duration::from_millis(300), event).await.is_none(), "silent");
    assert_eq!(joined(&m3).await, ["g"]);
    // Kicks follow rank: an admin kicks members, not the owner or other admins.
    let r = adm.delete_group_members("g", &["owner", "m3"]).await.unwrap();
    assert_eq!(r.iter().map(|(_, c)| *c).collect::<Vec<_>>(), [ErrorCode::GroupRoleDenied, ErrorCode::None]);
    assert_eq!(expect_event(&mut m3, "members_removed").await, ["m3"], "the kicked member is told");
    assert!(joined(&m3).await.is_empty());
    assert_eq!(code(m1.delete_group_members("g", &["m2"]).await), ErrorCode::GroupRoleDenied);
    // Leaving; the owner cannot.
    m2.exit_group("g").await.unwrap();
    assert_eq!(expect_event(&mut m1, "exited").await, ["m2"]);
    assert!(joined(&m2).await.is_empty());
    assert_eq!(code(m2.exit_group("g").await), ErrorCode::NotGroupMember);
    assert_eq!(code(owner.exit_group("g").await), ErrorCode::OwnerCannotExit);
    let (g, _) = owner.get_group("g").await.unwrap();
    assert_eq!(g.member_count, 3);
    // Back in after leaving: the JoinedGroups stream holds the group once, live.
    owner.add_group_members("g", &["m2"], false).await.unwrap();
    expect_event(&mut m2, "members_added").await;
    let sync = m2.sync(SyncStream::JoinedGroups, 0, 100, None).await.unwrap();
    assert_eq!(sync.items.len(), 1, "{:?}", sync.items);
    assert!(!sync.items[0].deleted);
    assert_eq!(sync.items[0].group.as_ref().map(|g| g.member_count), Some(4));
}

#[tokio::test]
async fn updates_mutes_owner_change_and_destroy() {
    let s = TestServer::start().await;
    s.import(&["owner", "adm", "m1", "m2"]).await;
    let owner = s.user("owner").await;
    let mut m1 = s.user("m1").await;
    owner.create_group(&info("g", PUBLIC), &["adm", "m1", "m2"], None).await.unwrap();
    owner.update_group_member("g", "adm", None, None, Some(1)).await.unwrap();
    let adm = s.user("adm").await;
    // Texts and mute-all by owner and admins; the member limit and join policy by the owner.
    let g = adm.update_group("g", &GroupChange { name: Some("renamed".into()), ..Default::default() }).await.unwrap();
    assert_eq!(g.name, "renamed");
    expect_event(&mut m1, "updated").await;
    let policy = GroupChange { join_policy: Some(1), ..Default::default() };
    assert_eq!(code(adm.update_group("g", &policy).await), ErrorCode::GroupRoleDenied);
    assert_eq!(
        code(m1.update_group("g", &GroupChange { name: Some("x".into()), ..Default::default() }).await),
        ErrorCode::GroupRoleDenied
    );
    assert_eq!(owner.update_group("g", &policy).await.unwrap().join_policy, 1);
    let shrink = GroupChange { max_members: Some(2), ..Default::default() };
    assert_eq!(code(owner.update_group("g", &shrink).await), ErrorCode::InvalidArgument);
    // A member's own alias; not someone else's.
    assert_eq!(m1.update_group_member("g", "m1", Some("me"), None, None).await.unwrap().alias, "me");
    assert_eq!(code(m1.update_group_member("g", "m2", Some("x"), None, None).await), ErrorCode::GroupRoleDenied);
    assert_eq!(code(adm.update_group_member("g", "m1", None, None, Some(1)).await), ErrorCode::GroupRoleDenied);
    // Mutes: members by admins, with their end; 0 lifts; nobody mutes the owner.
    let r = adm.mute_group_members("g", &["m1", "owner"], 60).await.unwrap();
    assert_eq!(r.iter().map(|(_, c)| *c).collect::<Vec<_>>(), [ErrorCode::None, ErrorCode::GroupRoleDenied]);
    assert_eq!(expect_event(&mut m1, "muted").await, ["m1"]);
    let muted = m1.muted_members("g").await.unwrap();
    assert_eq!(muted.len(), 1);
    assert!(muted[0].mute_end_ms > imserver::now_ms() + 50_000);
    adm.mute_group_members("g", &["m1"], 0).await.unwrap();
    assert!(m1.muted_members("g").await.unwrap().is_empty());
    assert_eq!(code(m1.mute_all("g", true).await), ErrorCode::GroupRoleDenied);
    adm.mute_all("g", true).await.unwrap();
    assert!(owner.get_group("g").await.unwrap().0.mute_all);
    // Ownership: to a member only; the old owner becomes a member.
    assert_eq!(code(owner.change_group_owner("g", "ghost").await), ErrorCode::NotGroupMember);
    assert_eq!(code(adm.change_group_owner("g", "m1").await), ErrorCode::GroupRoleDenied);
    owner.change_group_owner("g", "m1").await.unwrap();
    assert_eq!(expect_event(&mut m1, "owner_changed").await, ["owner", "m1"]);
    let roles = m1.group_roles("g", &["owner", "m1"]).await.unwrap();
    assert_eq!(roles.iter().map(|m| (m.user_id.as_str(), m.role)).collect::<Vec<_>>(), [("owner", 0), ("m1", 2)]);
    assert_eq!(m1.get_group("g").await.unwrap().0.owner, "m1");
    // Destroy: the owner only; then it is gone from every list and refuses everything.
    assert_eq!(code(owner.destroy_group("g").await), ErrorCode::GroupRoleDenied);
    m1.destroy_group("g").await.unwrap();
    expect_event(&mut m1, "destroyed").await;
    for c in [&owner, &m1, &adm] {
        assert!(joined(c).await.is_empty());
        let sync = c.sync(SyncStream::JoinedGroups, 0, 100, None).await.unwrap();
        assert!(sync.items.iter().all(|i| i.deleted), "a tombstone: {:?}", sync.items);
        let convs = c.sync(SyncStream::Conversations, 0, 100, None).await.unwrap();
        assert!(convs.items.iter().all(|i| i.deleted), "the group left the list: {:?}", convs.items);
    }
    assert_eq!(code(m1.get_group("g").await), ErrorCode::GroupDestroyed);
    let (g, members) = s.admin().await.get_group("g").await.unwrap();
    assert!(g.destroyed && members.is_empty(), "app administrators still read the record");
    assert_eq!(code(m1.add_group_members("g", &["owner"], false).await), ErrorCode::GroupDestroyed);
    assert_eq!(code(m1.send_group_message("g", "c1", 1, b"x", None).await), ErrorCode::GroupDestroyed);
    assert_eq!(code(m1.create_group(&info("g", PRIVATE), &[], None).await), ErrorCode::GroupExists, "ids never reused");
}

#[tokio::test]
async fn join_requests_to_public_groups() {
    let s = TestServer::start().await;
    s.import(&["owner", "adm", "joe", "ann", "free"]).await;
    let mut owner = s.user("owner").await;
    owner.create_group(&info("pub", PUBLIC), &["adm"], None).await.unwrap();
    owner.create_group(&info("priv", PRIVATE), &[], None).await.unwrap();
    owner.update_group_member("pub", "adm", None, None, Some(1)).await.unwrap();
    let mut joe = s.user("joe").await;
    assert_eq!(code(joe.apply_join_group("priv", "hi").await), ErrorCode::GroupPrivateJoin);
    let (joined_now, req) = joe.apply_join_group("pub", "let me in").await.unwrap();
    let req = req.expect("a pending request");
    assert!(!joined_now);
    assert_eq!((req.state, req.user_id.as_str(), req.message.as_str()), (0, "joe", "let me in"));
    assert_eq!(expect_event(&mut owner, "join_requested").await, ["joe"], "the managers are told");
    let (_, again) = joe.apply_join_group("pub", "again").await.unwrap();
    assert_eq!(again.unwrap().id, req.id, "one pending request per applicant");
    assert_eq!(code(joe.join_requests("pub").await), ErrorCode::NotGroupMember);
    let adm = s.user("adm").await;
    let list = adm.join_requests("pub").await.unwrap();
    assert_eq!(list.iter().map(|r| r.id).collect::<Vec<_>>(), [req.id]);
    let done = adm.handle_join_request("pub", req.id, true).await.unwrap();
    assert_eq!(done.state, 1);
    assert_eq!(expect_event(&mut joe, "join_approved").await, ["joe"]);
    assert_eq!(joined(&joe).await, ["pub"]);
    assert_eq!(code(adm.handle_join_request("pub", req.id, true).await), ErrorCode::JoinRequestNotFound);
    assert_eq!(code(joe.apply_join_group("pub", "").await), ErrorCode::AlreadyGroupMember);
    // Rejected: the applicant hears of it and stays out.
    let mut ann = s.user("ann").await;
    let (_, r) = ann.apply_join_group("pub", "").await.unwrap();
    assert_eq!(code(joe.handle_join_request("pub", r.as_ref().unwrap().id, true).await), ErrorCode::GroupRoleDenied);
    owner.handle_join_request("pub", r.unwrap().id, false).await.unwrap();
    expect_event(&mut ann, "join_rejected").await;
    assert!(joined(&ann).await.is_empty());
    // Free join: a member at once.
    owner.update_group("pub", &GroupChange { join_policy: Some(1), ..Default::default() }).await.unwrap();
    let free = s.user("free").await;
    assert_eq!(free.apply_join_group("pub", "").await.unwrap(), (true, None));
    assert_eq!(joined(&free).await, ["pub"]);
}

#[tokio::test]
async fn import_and_app_admin_reads() {
    let s = TestServer::start().await;
    s.import(&["o", "a", "b"]).await;
    let admin = s.admin().await;
    let mut b = s.user("b").await;
    let g = GroupInfo { owner: "o".into(), create_time_ms: 1_000, ..info("imp", PRIVATE) };
    let members = [GroupMember { join_time_ms: 5_000, ..GroupMember::new("a", 1) }];
    let (id, r) = admin.import_group(&g, &members).await.unwrap();
    assert_eq!(id, "imp");
    assert!(ok_all(&r));
    let more = [GroupMember { join_time_ms: 7_000, ..GroupMember::new("b", 0) }];
    assert!(ok_all(&admin.import_group_members("imp", &more).await.unwrap()));
    assert!(b.wait_push(Duration::from_millis(300), event).await.is_none(), "an import tells nobody");
    let (info_, members) = admin.get_group("imp").await.unwrap();
    assert_eq!((info_.create_time_ms, info_.owner.as_str(), info_.member_count), (1_000, "o", 3));
    let times: Vec<(String, u8, u64)> = members.iter().map(|m| (m.user_id.clone(), m.role, m.join_time_ms)).collect();
    assert_eq!(times[..2], [("a".into(), 1, 5_000), ("b".into(), 0, 7_000)]);
    assert_eq!(joined(&b).await, ["imp"]);
    // Only app administrators import and list the app's groups.
    assert_eq!(code(b.import_group(&info("x", PRIVATE), &[]).await), ErrorCode::PermissionDenied);
    assert_eq!(code(b.all_groups(0, "", 10).await), ErrorCode::PermissionDenied);
    admin.create_group(&info("p1", PUBLIC), &[], Some("o")).await.unwrap();
    let (all, _, _) = admin.all_groups(0, "", 10).await.unwrap();
    assert_eq!(all.len(), 2);
    let (public, _, _) = admin.all_groups(PUBLIC, "", 10).await.unwrap();
    assert_eq!(public.iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), ["p1"]);
    let (first, next, more) = admin.all_groups(0, "", 1).await.unwrap();
    assert!(more);
    let (second, _, more) = admin.all_groups(0, &next, 1).await.unwrap();
    assert!(!more && first[0].group_id != second[0].group_id);
    // An app administrator acts on any group, as above every role (but is not its owner).
    admin.add_group_members("imp", &["o"], false).await.map(|_| ()).unwrap();
    assert_eq!(admin.joined_groups(0, "", 10, Some("b")).await.unwrap().0.len(), 1);
}

#[tokio::test]
async fn membership_survives_a_restart() {
    let s = TestServer::start().await;
    s.import(&["o", "m", "k"]).await;
    let o = s.user("o").await;
    o.create_group(&info("g", PRIVATE), &["m", "k"], None).await.unwrap();
    o.delete_group_members("g", &["k"]).await.unwrap();
    o.mute_group_members("g", &["m"], 3600).await.unwrap();
    drop(o);
    let dir = s.stop().await.unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}).await;
    let m = s.user("m").await;
    let (g, members) = m.get_group("g").await.unwrap();
    assert_eq!(g.member_count, 2);
    assert_eq!(members.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(), ["m", "o"]);
    assert_eq!(m.muted_members("g").await.unwrap().len(), 1);
    assert_eq!(joined(&m).await, ["g"]);
    assert!(joined(&s.user("k").await).await.is_empty());
    drop(dir);
}

/// The matrix over TCP: each operation tried by the owner, an admin, a member, a non-member
/// and an app administrator, on a fresh group each time.
#[tokio::test]
async fn the_permission_matrix_over_tcp() {
    let s = TestServer::start().await;
    s.import(&["own", "adm", "mem", "out", "t1", "t2"]).await;
    let admin = s.admin().await;
    let clients = [s.user("own").await, s.user("adm").await, s.user("mem").await, s.user("out").await];
    let ok = ErrorCode::None;
    let (denied, not_member) = (ErrorCode::GroupRoleDenied, ErrorCode::NotGroupMember);
    type Row = (&'static str, [ErrorCode; 5]);
    let rows: [Row; 8] = [
        ("rename", [ok, ok, denied, not_member, ok]),
        ("set policy", [ok, denied, denied, not_member, ok]),
        ("invite (public)", [ok, ok, denied, not_member, ok]),
        ("kick a member", [ok, ok, denied, not_member, ok]),
        ("mute a member", [ok, ok, denied, not_member, ok]),
        ("make admin", [ok, denied, denied, not_member, ok]),
        ("change owner", [ok, denied, denied, not_member, ok]),
        ("destroy", [ok, denied, denied, not_member, ok]),
    ];
    for (n, (op, want)) in rows.iter().enumerate() {
        for (who, expected) in want.iter().enumerate() {
            let g = format!("m{n}-{who}");
            admin.create_group(&info(&g, PUBLIC), &["adm", "mem", "t1"], Some("own")).await.unwrap();
            admin.update_group_member(&g, "adm", None, None, Some(1)).await.unwrap();
            let c: &Client = if who == 4 { &admin } else { &clients[who] };
            let first = |r: Result<Vec<(String, ErrorCode)>, ClientError>| r.map(|v| v[0].1);
            let got = match *op {
                "rename" => {
                    c.update_group(&g, &GroupChange { name: Some("n".into()), ..Default::default() }).await.map(|_| ok)
                }
                "set policy" => {
                    c.update_group(&g, &GroupChange { join_policy: Some(1), ..Default::default() }).await.map(|_| ok)
                }
                "invite (public)" => first(c.add_group_members(&g, &["t2"], false).await),
                "kick a member" => first(c.delete_group_members(&g, &["t1"]).await),
                "mute a member" => first(c.mute_group_members(&g, &["t1"], 60).await),
                "make admin" => c.update_group_member(&g, "t1", None, None, Some(1)).await.map(|_| ok),
                "change owner" => c.change_group_owner(&g, "t1").await.map(|_| ok),
                "destroy" => c.destroy_group(&g).await.map(|_| ok),
                _ => unreachable!(),
            };
            let got = got.unwrap_or_else(|e| e.code().expect("a server error"));
            assert_eq!(got, *expected, "{op} by actor {who}");
        }
    }
}
