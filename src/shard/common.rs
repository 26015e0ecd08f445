//! What the handlers share that needs no shard state: the one mapping of store failures to
//! their wire error, answering early on an error (`or_reply!`), and the conversation-list
//! bookkeeping that messages and conversations both do. A leaf: no other shard module is
//! imported here. (The shared `Shard` helpers, `devices_but` and `commit_then`, are in
//! `state`.)

use bytes::Bytes;

use crate::domain::conversation::ConvView;
use crate::domain::ids::{AppId, UserId};
use crate::domain::sync::{Heads, ItemId, Stream};
use crate::domain::wire as dw;
use crate::domain::DomainError;
use crate::protocol::{self, wire};
use crate::store::{Batch, StoreError, StreamPut};

/// The wire error of a store failure (`StorageUnavailable`), logged with what was being done:
/// `.map_err(stored("reading history"))`. The store's details never reach the client.
pub(super) fn stored(doing: &'static str) -> impl Fn(StoreError) -> DomainError + Copy {
    move |e| {
        tracing::error!(error = %e, doing, "store access failed");
        DomainError::StorageUnavailable
    }
}

/// Evaluates a `Result`; on an error, answers `reply` with it and returns from the handler.
macro_rules! or_reply {
    ($reply:expr, $r:expr) => {
        match $r {
            Ok(v) => v,
            Err(e) => {
                let _ = $reply.send(Err(e));
                return;
            }
        }
    };
}
pub(super) use or_reply;

/// A `SyncChangedPush` carrying my updated entry for a conversation.
pub(super) fn conversation_changed_push(user: &UserId, v: &ConvView) -> Bytes {
    protocol::push(|fbb| {
        let c = dw::conversation(fbb, v, user);
        let id = fbb.create_string(v.conv.id_str());
        let item = wire::SyncItem::create(
            fbb,
            &wire::SyncItemArgs { seq: v.stream_seq, id: Some(id), conversation: Some(c), ..Default::default() },
        );
        let p = wire::SyncChangedPush::create(
            fbb,
            &wire::SyncChangedPushArgs { stream: Stream::Conversations.to_wire(), item: Some(item) },
        );
        (wire::Push::SyncChangedPush, p.as_union_value())
    })
}

/// A change of my conversation list: the entry moves to the next seq of my Conversations
/// stream (its previous stream entry removed) and is written, both in `batch`.
pub(super) fn put_conv_change(batch: &mut Batch, app: AppId, user: &UserId, heads: &mut Heads, v: &mut ConvView) {
    let old = (v.stream_seq > 0).then_some(v.stream_seq);
    v.stream_seq = heads.bump(Stream::Conversations).0;
    let item = ItemId::Conversation(v.conv.clone());
    let put = StreamPut::marker(Stream::Conversations, v.stream_seq, &item, old);
    batch.put_stream_item(app, user, put);
    batch.put_user_conv(app, user, &v.conv, v.encode());
}
