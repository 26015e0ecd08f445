//! Before-hooks of operations that wait in their request's own future: a friend add, a group
//! creation, an application to join, an invitation. The request waits for the app's backend
//! there (the connection goes on with its other requests, and no shard waits), then the
//! operation starts as it would without a hook, or the client gets the refusal. Sends are
//! different: they keep their place in their conversation's order, so they park on their
//! shard (`shard::hooks`).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::Cx;
use crate::callbacks::{Event, Hooks, Outcome};
use crate::domain::ids::AppId;
use crate::domain::DomainError;
use crate::shard::cmd::Caller;

/// An operation's before-hook, if its app has one for the event.
pub struct Gate(Option<Call>);

struct Call {
    hooks: Arc<Hooks>,
    app: AppId,
    event: Event,
    caller: Caller,
    fields: Map<String, Value>,
}

impl Cx<'_> {
    /// The before-hook of `event` for this request; `fields` (what the backend is told) are
    /// built only when the app hooks the event.
    pub fn gate(&self, event: Event, fields: impl FnOnce() -> Map<String, Value>) -> Gate {
        match &self.ctx.hooks {
            Some(h) if h.before_on(self.s.app, event) => {
                Gate(Some(Call { hooks: h.clone(), app: self.s.app, event, caller: self.caller(), fields: fields() }))
            }
            _ => Gate(None),
        }
    }
}

impl Gate {
    /// No hook: the operation goes ahead at once.
    pub fn open() -> Gate {
        Gate(None)
    }

    /// Waits for the backend's word: `Ok` with the users it refused (an invite goes ahead
    /// without them; empty for every other answer that lets the operation through), or the
    /// error the client gets (refused, no answer under fail-closed, too many waiting).
    pub async fn passed(self) -> Result<Vec<String>, DomainError> {
        let Some(c) = self.0 else { return Ok(Vec::new()) };
        match c.hooks.ask(c.app, c.event, c.caller.names(), c.fields).await? {
            Outcome::Pass(_) => Ok(Vec::new()),
            Outcome::PassExcept(refused) => Ok(refused),
            refused => Err(refused.error().unwrap_or(DomainError::CallbackUnavailable("no answer"))),
        }
    }
}

/// `[{"Member_Account": id}, ...]`, the way callbacks list users.
pub fn member_list<'a>(users: impl IntoIterator<Item = &'a crate::domain::ids::UserId>) -> Value {
    Value::Array(users.into_iter().map(|u| serde_json::json!({ "Member_Account": u.as_str() })).collect())
}
