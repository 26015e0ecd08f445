//! Sends waiting on the app's before-send hook. A send whose app hooks it is parked here while
//! the call is in flight (on the server's runtime, `callbacks::Hooks::call_before`), and the
//! shard goes on with every other command. The answer comes back as a `HookAnswered`; then the
//! conversation's parked sends resume from the front, in arrival order, each once it and every
//! send before it in that conversation have their answers: no seq is assigned while waiting,
//! and a later send never takes a seq before an earlier one of the same conversation.

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value};

use super::reports::message_fields;
use crate::callbacks::{Event, Outcome};
use crate::domain::ids::{AppId, ConvId};
use crate::domain::message;
use crate::domain::DomainError;
use crate::shard::cmd::{HookAnswered, HookPass, SendMessage};
use crate::shard::state::{FastMap, Shard};

/// The parked sends of one shard.
#[derive(Default)]
pub(in crate::shard) struct Parking {
    next: u64,
    /// Per conversation, its parked sends (tickets) in arrival order.
    lanes: FastMap<(AppId, ConvId), VecDeque<u64>>,
    sends: HashMap<u64, Parked>,
}

struct Parked {
    cmd: SendMessage,
    /// The content hash of what the client sent.
    hash: u64,
    outcome: Option<Outcome>,
}

/// What the backend is told about a send waiting on it.
fn send_fields(c: &SendMessage) -> Map<String, Value> {
    message_fields(&c.from, &c.to, &c.client_id, c.msg_type, &c.body)
}

impl Shard {
    /// `Some(c)` when the send goes ahead now (no hook, or it has passed); `None` when it was
    /// parked on the hook, or answered (too many waiting).
    pub(in crate::shard) fn gate_send(&mut self, conv: &ConvId, c: SendMessage) -> Option<SendMessage> {
        let event = match conv {
            ConvId::P2p(_) => Event::C2cBeforeSendMsg,
            ConvId::Group(_) => Event::GroupBeforeSendMsg,
        };
        let hooks = match &self.hooks {
            Some(h) if c.hook == HookPass::Ahead && h.before_on(c.app, event) => h.clone(),
            _ => return Some(c),
        };
        let ticket = self.parking.next;
        self.parking.next += 1;
        let (router, me) = (self.router.clone(), self.id);
        let platform = c.origin.platform.variant_name().unwrap_or("Unknown");
        let called = hooks.call_before(c.app, event, c.from.as_str(), platform, send_fields(&c), move |outcome| {
            // On the runtime: wait for room in the shard's inbox rather than lose the answer.
            tokio::spawn(async move {
                let _ = router.send(me, HookAnswered { ticket, outcome }.into()).await;
            });
        });
        if let Err(e) = called {
            c.origin.outbox.send(e.frame(c.origin.req_id));
            return None;
        }
        let hash = message::content_hash(&c.to, c.msg_type, &c.body);
        self.parking.lanes.entry((c.app, conv.clone())).or_default().push_back(ticket);
        self.parking.sends.insert(ticket, Parked { cmd: c, hash, outcome: None });
        None
    }

    /// A hook's answer: the sends at the front of its conversation that have theirs go on
    /// (or get their refusal), in order.
    pub(in crate::shard) async fn hook_answered(&mut self, a: HookAnswered) {
        let Some(p) = self.parking.sends.get_mut(&a.ticket) else { return };
        p.outcome = Some(a.outcome);
        let lane = {
            let c = &p.cmd;
            let Some(conv) = c.to.conv_id(&c.from) else { return };
            (c.app, conv)
        };
        let max_body = self.cfg.limits.max_message_body;
        while let Some(&front) = self.parking.lanes.get(&lane).and_then(|q| q.front()) {
            if self.parking.sends.get(&front).is_some_and(|p| p.outcome.is_none()) {
                break;
            }
            self.parking.lanes.get_mut(&lane).map(VecDeque::pop_front);
            let Some(Parked { mut cmd, hash, outcome }) = self.parking.sends.remove(&front) else { continue };
            let refusal = match outcome.unwrap_or(Outcome::Unavailable("no answer")) {
                // A list of refused members means nothing for a message.
                Outcome::Pass(None) | Outcome::PassExcept(_) => {
                    cmd.hook = HookPass::Passed { hash, rewritten: false };
                    None
                }
                Outcome::Pass(Some(body)) if body.len() > max_body => {
                    Some(DomainError::CallbackUnavailable("the backend's body is over the message size limit"))
                }
                Outcome::Pass(Some(body)) => {
                    cmd.body = body;
                    cmd.hook = HookPass::Passed { hash, rewritten: true };
                    None
                }
                refused => refused.error(),
            };
            match refusal {
                None => self.send(cmd).await,
                Some(e) => {
                    cmd.origin.outbox.send(e.frame(cmd.origin.req_id));
                }
            }
        }
        if self.parking.lanes.get(&lane).is_some_and(VecDeque::is_empty) {
            self.parking.lanes.remove(&lane);
        }
    }
}
