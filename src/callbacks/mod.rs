//! Callbacks to an app's backend over HTTP. Before-hooks (`call_before`) ask the backend
//! whether an operation may go ahead (allow, refuse, or for messages rewrite the body); the
//! operation waits parked on its shard meanwhile (`shard::hooks`), and the shard goes on
//! serving everything else. Requests are JSON, named by Tencent's `CallbackCommand`s and
//! signed (`sign`); answers are read by `verdict`.

mod after;
pub mod config;
mod http;
pub mod sign;
pub mod verdict;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::domain::ids::AppId;
use crate::domain::DomainError;
pub use after::AfterHooks;
pub use config::CallbackConfig;
pub use verdict::Verdict;

/// The events a backend can hook, by their Tencent `CallbackCommand` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    C2cBeforeSendMsg,
    GroupBeforeSendMsg,
    SnsPrevFriendAdd,
    GroupBeforeCreateGroup,
    GroupBeforeApplyJoinGroup,
    GroupBeforeInviteJoinGroup,
    C2cAfterSendMsg,
    GroupAfterSendMsg,
    C2cAfterMsgWithDraw,
    GroupAfterRecallMsg,
    C2cAfterMsgReport,
    GroupAfterMsgReport,
    GroupAfterCreateGroup,
    GroupAfterNewMemberJoin,
    GroupAfterMemberExit,
    GroupAfterGroupInfoChanged,
    GroupAfterChangeGroupOwner,
    GroupAfterGroupDestroyed,
    SnsFriendAdd,
    SnsFriendDelete,
    SnsBlackListAdd,
    SnsBlackListDelete,
    ProfilePortraitSet,
    StateChange,
}

impl Event {
    const ALL: [Event; 24] = [
        Event::C2cBeforeSendMsg,
        Event::GroupBeforeSendMsg,
        Event::SnsPrevFriendAdd,
        Event::GroupBeforeCreateGroup,
        Event::GroupBeforeApplyJoinGroup,
        Event::GroupBeforeInviteJoinGroup,
        Event::C2cAfterSendMsg,
        Event::GroupAfterSendMsg,
        Event::C2cAfterMsgWithDraw,
        Event::GroupAfterRecallMsg,
        Event::C2cAfterMsgReport,
        Event::GroupAfterMsgReport,
        Event::GroupAfterCreateGroup,
        Event::GroupAfterNewMemberJoin,
        Event::GroupAfterMemberExit,
        Event::GroupAfterGroupInfoChanged,
        Event::GroupAfterChangeGroupOwner,
        Event::GroupAfterGroupDestroyed,
        Event::SnsFriendAdd,
        Event::SnsFriendDelete,
        Event::SnsBlackListAdd,
        Event::SnsBlackListDelete,
        Event::ProfilePortraitSet,
        Event::StateChange,
    ];

    /// Tencent's `CallbackCommand` where it has one; `Group.CallbackAfterMsgReport` (a
    /// member's read report) is this server's own, named after the one-to-one one.
    pub fn name(self) -> &'static str {
        match self {
            Event::C2cBeforeSendMsg => "C2C.CallbackBeforeSendMsg",
            Event::GroupBeforeSendMsg => "Group.CallbackBeforeSendMsg",
            Event::SnsPrevFriendAdd => "Sns.CallbackPrevFriendAdd",
            Event::GroupBeforeCreateGroup => "Group.CallbackBeforeCreateGroup",
            Event::GroupBeforeApplyJoinGroup => "Group.CallbackBeforeApplyJoinGroup",
            Event::GroupBeforeInviteJoinGroup => "Group.CallbackBeforeInviteJoinGroup",
            Event::C2cAfterSendMsg => "C2C.CallbackAfterSendMsg",
            Event::GroupAfterSendMsg => "Group.CallbackAfterSendMsg",
            Event::C2cAfterMsgWithDraw => "C2C.CallbackAfterMsgWithDraw",
            Event::GroupAfterRecallMsg => "Group.CallbackAfterRecallMsg",
            Event::C2cAfterMsgReport => "C2C.CallbackAfterMsgReport",
            Event::GroupAfterMsgReport => "Group.CallbackAfterMsgReport",
            Event::GroupAfterCreateGroup => "Group.CallbackAfterCreateGroup",
            Event::GroupAfterNewMemberJoin => "Group.CallbackAfterNewMemberJoin",
            Event::GroupAfterMemberExit => "Group.CallbackAfterMemberExit",
            Event::GroupAfterGroupInfoChanged => "Group.CallbackAfterGroupInfoChanged",
            Event::GroupAfterChangeGroupOwner => "Group.CallbackAfterChangeGroupOwner",
            Event::GroupAfterGroupDestroyed => "Group.CallbackAfterGroupDestroyed",
            Event::SnsFriendAdd => "Sns.CallbackFriendAdd",
            Event::SnsFriendDelete => "Sns.CallbackFriendDelete",
            Event::SnsBlackListAdd => "Sns.CallbackBlackListAdd",
            Event::SnsBlackListDelete => "Sns.CallbackBlackListDelete",
            Event::ProfilePortraitSet => "Profile.CallbackPortraitSet",
            Event::StateChange => "State.StateChange",
        }
    }

    pub fn named(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    pub fn is_before(self) -> bool {
        matches!(
            self,
            Event::C2cBeforeSendMsg
                | Event::GroupBeforeSendMsg
                | Event::SnsPrevFriendAdd
                | Event::GroupBeforeCreateGroup
                | Event::GroupBeforeApplyJoinGroup
                | Event::GroupBeforeInviteJoinGroup
        )
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// A before-hook's final word, the app's fail-open / fail-closed setting applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Go ahead (with this body instead of the client's, for a rewritten message).
    Pass(Option<Vec<u8>>),
    /// Go ahead without these users (an invite: the backend refused some of the invited).
    PassExcept(Vec<String>),
    /// The backend refused: its code and reason go to the client.
    Refused { code: i64, reason: String },
    /// No usable answer and the event fails closed.
    Unavailable(&'static str),
}

impl Outcome {
    /// The error a refused or unanswered operation gets; `None` when it may go ahead.
    pub fn error(&self) -> Option<DomainError> {
        match self {
            Outcome::Pass(_) | Outcome::PassExcept(_) => None,
            Outcome::Refused { code, reason } => {
                Some(DomainError::CallbackRefused { code: *code, reason: reason.clone() })
            }
            Outcome::Unavailable(why) => Some(DomainError::CallbackUnavailable(why)),
        }
    }
}

struct AppHooks {
    cfg: CallbackConfig,
    uri: hyper::Uri,
    before: u32,
    after: u32,
    fail_closed: u32,
    waiting: AtomicUsize,
}

/// Every app's hooks and the HTTP client they share.
pub struct Hooks {
    apps: HashMap<AppId, AppHooks>,
    client: http::Client,
    rt: tokio::runtime::Handle,
    next_request: AtomicU64,
}

/// Counts an operation as waiting on a hook until dropped.
struct Waiting(Arc<Hooks>, AppId);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(a) = self.0.apps.get(&self.1) {
            a.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Hooks {
    /// The hooks of every app that has a backend (`None`: no app has one). Calls run on `rt`.
    pub fn new(cfg: &Config, rt: tokio::runtime::Handle) -> Option<Arc<Hooks>> {
        let mut apps = HashMap::new();
        for app in &cfg.apps {
            let c = &app.callbacks;
            // Off (empty) or not a URL (refused by `Config::validate` already).
            let Ok(uri) = c.url.parse::<hyper::Uri>() else { continue };
            let mask = |names: &[String]| names.iter().filter_map(|n| Event::named(n)).fold(0, |m, e| m | e.bit());
            apps.insert(
                app.id,
                AppHooks {
                    uri,
                    before: mask(&c.before),
                    after: mask(&c.after),
                    fail_closed: mask(&c.fail_closed),
                    cfg: c.clone(),
                    waiting: AtomicUsize::new(0),
                },
            );
        }
        let seed = crate::now_ms() << 16;
        (!apps.is_empty())
            .then(|| Arc::new(Hooks { apps, client: http::client(), rt, next_request: AtomicU64::new(seed) }))
    }

    /// Whether `app` wants to hear of `event` after it happened.
    pub fn after_on(&self, app: AppId, event: Event) -> bool {
        self.apps.get(&app).is_some_and(|a| a.after & event.bit() != 0)
    }

    /// The stored form of an after-hook event (its JSON body, without the `EventId` its
    /// queue position gives it when sent).
    pub fn after_event(
        app: AppId,
        event: Event,
        operator: &str,
        platform: &str,
        mut fields: Map<String, Value>,
    ) -> Vec<u8> {
        fields.insert("CallbackCommand".into(), event.name().into());
        fields.insert("SdkAppid".into(), app.0.into());
        fields.insert("Operator_Account".into(), operator.into());
        fields.insert("OptPlatform".into(), platform.into());
        fields.insert("EventTime".into(), crate::now_ms().into());
        serde_json::to_vec(&Value::Object(fields)).unwrap_or_default()
    }

    /// Whether `app` hooks `event` before it happens.
    pub fn before_on(&self, app: AppId, event: Event) -> bool {
        self.apps.get(&app).is_some_and(|a| a.before & event.bit() != 0)
    }

    /// Asks `app`'s backend about `event` (the operation's `fields`, by `operator` from
    /// `platform`); `done` runs with the outcome, on the runtime, once the backend answered
    /// or the timeout passed. `Overloaded` when the app already has `max_waiting` waiting.
    pub fn call_before(
        self: &Arc<Self>,
        app: AppId,
        event: Event,
        operator: &str,
        platform: &str,
        fields: Map<String, Value>,
        done: impl FnOnce(Outcome) + Send + 'static,
    ) -> Result<(), DomainError> {
        let a = self.apps.get(&app).ok_or(DomainError::NotImplemented)?;
        if a.waiting.fetch_add(1, Ordering::AcqRel) >= a.cfg.max_waiting {
            a.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(DomainError::Overloaded);
        }
        let waiting = Waiting(self.clone(), app);
        let fail_closed = a.fail_closed & event.bit() != 0;
        let (uri, headers, body) = self.request(a, app, event, operator, platform, fields);
        let (client, timeout) = (self.client.clone(), Duration::from_millis(a.cfg.timeout_ms));
        self.rt.spawn(async move {
            let answer = http::post(&client, uri, &headers, body, timeout).await;
            let outcome = match answer.and_then(|(status, body)| verdict::read(status, &body)) {
                Ok(Verdict::Allow) => Outcome::Pass(None),
                Ok(Verdict::Rewrite(b)) => Outcome::Pass(Some(b)),
                Ok(Verdict::AllowExcept(users)) => Outcome::PassExcept(users),
                Ok(Verdict::Refuse { code, reason }) => Outcome::Refused { code, reason },
                Err(why) if fail_closed => Outcome::Unavailable(why),
                Err(why) => {
                    tracing::warn!(app = app.0, event = event.name(), why, "before-hook failed open");
                    Outcome::Pass(None)
                }
            };
            drop(waiting);
            done(outcome);
        });
        Ok(())
    }

    /// Asks `app`'s backend about `event` and waits for the outcome: for an operation that
    /// waits in its request's own future (not parked on a shard), such as a friend add or a
    /// group creation. `Overloaded` when the app already has `max_waiting` waiting.
    pub async fn ask(
        self: &Arc<Self>,
        app: AppId,
        event: Event,
        (operator, platform): (&str, &str),
        fields: Map<String, Value>,
    ) -> Result<Outcome, DomainError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.call_before(app, event, operator, platform, fields, move |o| {
            let _ = tx.send(o);
        })?;
        Ok(rx.await.unwrap_or(Outcome::Unavailable("no answer")))
    }

    /// The request for one event: URI with the query, headers (signature), JSON body.
    fn request(
        &self,
        a: &AppHooks,
        app: AppId,
        event: Event,
        operator: &str,
        platform: &str,
        mut fields: Map<String, Value>,
    ) -> (hyper::Uri, Vec<(&'static str, String)>, Bytes) {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        fields.insert("CallbackCommand".into(), event.name().into());
        fields.insert("SdkAppid".into(), app.0.into());
        fields.insert("Operator_Account".into(), operator.into());
        fields.insert("OptPlatform".into(), platform.into());
        fields.insert("RequestId".into(), id.to_string().into());
        let body = Bytes::from(serde_json::to_vec(&Value::Object(fields)).unwrap_or_default());
        signed(a, app, event.name(), platform, id.to_string(), body)
    }
}

/// The URI (with the query naming the event) and headers (signature) of a request.
fn signed(
    a: &AppHooks,
    app: AppId,
    event: &str,
    platform: &str,
    id: String,
    body: Bytes,
) -> (hyper::Uri, Vec<(&'static str, String)>, Bytes) {
    let sep = if a.cfg.url.contains('?') { '&' } else { '?' };
    let url =
        format!("{}{sep}SdkAppid={}&CallbackCommand={event}&contenttype=json&OptPlatform={platform}", a.cfg.url, app.0);
    let uri = url.parse().unwrap_or_else(|_| a.uri.clone());
    let ts = crate::now_ms() / 1000;
    let headers = vec![
        ("x-im-timestamp", ts.to_string()),
        ("x-im-signature", sign::sign(&a.cfg.secret, ts, &body)),
        ("x-im-request-id", id),
    ];
    (uri, headers, body)
}
