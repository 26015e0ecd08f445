//! The commands a shard accepts. Each names the entity whose shard must run it; replies go
//! back on a oneshot (or straight to the requesting connection's outbox, for sends), sent only
//! once the change they report is durable.

use tokio::sync::oneshot;

use crate::domain::ids::UserId;
use crate::domain::DomainError;
use crate::shard::outbox::Outbox;

pub type Reply<T> = oneshot::Sender<T>;
/// Per-item outcomes of a batch, in request order within this shard's share.
pub type ItemOutcomes = Vec<(UserId, Result<(), DomainError>)>;
/// Users whose send-relevant facts changed durably: every shard must drop its copy of them
/// (`FactsChanged`) before the change is answered.
pub type ChangedUsers = Vec<UserId>;

/// Who asked, as callbacks name them: the account logged in (a user or an administrator)
/// and the platform it logged in from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: UserId,
    pub platform: crate::protocol::wire::ClientType,
}

impl Caller {
    /// (operator account, platform name), for a callback request.
    pub fn names(&self) -> (&str, &'static str) {
        (self.account.as_str(), self.platform.variant_name().unwrap_or("Unknown"))
    }
}

/// Where the answer to a request goes when the shard answers the connection directly.
pub struct Origin {
    pub outbox: Outbox,
    pub req_id: u64,
    /// The platform the connection logged in from (callbacks name it).
    pub platform: crate::protocol::wire::ClientType,
    /// Dropped once the answer is queued: the session counts the request in flight until then.
    pub answered: crate::shard::outbox::Unanswered,
}

/// A command for a shard, by area; each area's commands are structs in its file, handed whole
/// to their handler.
pub enum ShardCmd {
    User(UserCmd),
    Friend(FriendCmd),
    Message(MessageCmd),
    Conversation(ConversationCmd),
    Group(GroupCmd),
}

/// Declares an area's command enum (one variant per command struct, named after it) and
/// `From<Struct> for ShardCmd`, so a command is built as `Struct { .. }.into()`.
macro_rules! area {
    ($area:ident, $enum:ident { $($cmd:ident),* $(,)? }) => {
        pub enum $enum {
            $($cmd($cmd),)*
        }
        $(impl From<$cmd> for super::ShardCmd {
            fn from(c: $cmd) -> super::ShardCmd {
                super::ShardCmd::$area($enum::$cmd(c))
            }
        })*
    };
}
use area;

mod conversations;
mod friends;
mod groups;
mod messages;
mod users;
pub use conversations::*;
pub use friends::*;
pub use groups::*;
pub use messages::*;
pub use users::*;
