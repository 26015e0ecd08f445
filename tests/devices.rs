//! The four multi-device policies: a login that breaks the policy kicks the older device
//! with a push saying why. Over TCP against the real server.

mod common;

use std::time::Duration;

use common::*;
use imserver::client::Client;
use imserver::config::MultiDevicePolicy;
use imserver::protocol::wire::{ClientType, KickReason};

async fn kicked(c: &mut Client) -> bool {
    let r = c.wait_push(Duration::from_millis(800), kick_reason).await;
    match r {
        Some(KickReason::OtherDeviceLogin) => {
            assert!(c.closed(WAIT).await);
            true
        }
        Some(other) => panic!("unexpected kick {other:?}"),
        None => false,
    }
}

async fn server(p: MultiDevicePolicy) -> TestServer {
    let s = TestServer::start_with(|c| c.apps[0].multi_device = p).await;
    s.import(&["alice"]).await;
    s
}

#[tokio::test]
async fn any_keeps_every_device_and_replaces_a_reconnecting_one() {
    let s = server(MultiDevicePolicy::Any).await;
    let mut a = s.login("alice", ClientType::Ios, "phone").await;
    let mut b = s.login("alice", ClientType::Android, "tablet").await;
    let mut c = s.login("alice", ClientType::Web, "web").await;
    assert!(!kicked(&mut a).await && !kicked(&mut b).await && !kicked(&mut c).await);
    // The same device id logging in again replaces its stale connection.
    let _a2 = s.login("alice", ClientType::Ios, "phone").await;
    assert!(kicked(&mut a).await);
    let st = s.admin().await.query_online_status(&["alice"]).await.unwrap();
    assert_eq!(st[0].devices.len(), 3);
}

#[tokio::test]
async fn any_is_capped_by_max_devices() {
    let s = TestServer::start_with(|c| c.limits.max_devices_per_user = 2).await;
    s.import(&["alice"]).await;
    let mut a = s.login("alice", ClientType::Ios, "1").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut b = s.login("alice", ClientType::Ios, "2").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _c = s.login("alice", ClientType::Ios, "3").await;
    assert!(kicked(&mut a).await, "the oldest device goes");
    assert!(!kicked(&mut b).await);
}

#[tokio::test]
async fn one_per_class() {
    let s = server(MultiDevicePolicy::OnePerClass).await;
    let mut phone = s.login("alice", ClientType::Ios, "phone").await;
    let mut mac = s.login("alice", ClientType::Mac, "mac").await;
    let mut web = s.login("alice", ClientType::Web, "web").await;
    assert!(!kicked(&mut phone).await && !kicked(&mut mac).await && !kicked(&mut web).await);
    let _android = s.login("alice", ClientType::Android, "android").await;
    assert!(kicked(&mut phone).await, "a second mobile displaces the first");
    assert!(!kicked(&mut mac).await && !kicked(&mut web).await);
    let _win = s.login("alice", ClientType::Windows, "win").await;
    assert!(kicked(&mut mac).await);
}

#[tokio::test]
async fn one_mobile_one_desktop() {
    let s = server(MultiDevicePolicy::OneMobileOneDesktop).await;
    let mut phone = s.login("alice", ClientType::Ios, "phone").await;
    let mut mac = s.login("alice", ClientType::Mac, "mac").await;
    assert!(!kicked(&mut phone).await && !kicked(&mut mac).await);
    // Web counts with desktop: it displaces the mac, not the phone.
    let mut web = s.login("alice", ClientType::Web, "web").await;
    assert!(kicked(&mut mac).await);
    assert!(!kicked(&mut phone).await);
    let _pad = s.login("alice", ClientType::Ipad, "pad").await;
    assert!(kicked(&mut phone).await);
    assert!(!kicked(&mut web).await);
}

#[tokio::test]
async fn single_device() {
    let s = server(MultiDevicePolicy::Single).await;
    let mut phone = s.login("alice", ClientType::Ios, "phone").await;
    let mut web = s.login("alice", ClientType::Web, "web").await;
    assert!(kicked(&mut phone).await);
    let _mac = s.login("alice", ClientType::Mac, "mac").await;
    assert!(kicked(&mut web).await);
    let st = s.admin().await.query_online_status(&["alice"]).await.unwrap();
    assert_eq!(st[0].devices.len(), 1);
    assert_eq!(st[0].devices[0].client_type, ClientType::Mac);
}
