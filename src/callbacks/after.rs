//! Delivering after-hook events: one task per app with after-hooks takes the app's queued
//! events (`store::events`) in order and POSTs each until the backend answers 200 (again after
//! a delay doubling from 100 ms to `retry_max_ms`), then deletes what was delivered. At least
//! once: an event delivered but not yet deleted when the server stopped goes again after the
//! restart, with the same `EventId` (its queue position), so the backend can drop repeats.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{http, signed, Hooks};
use crate::domain::ids::AppId;
use crate::store::{Batch, Committer, Store};

/// Events taken from the queue per read.
const PAGE: usize = 64;

/// The running delivery tasks.
pub struct AfterHooks {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl AfterHooks {
    /// Starts a task for each app with after-hooks (and sets each app's queue bound).
    pub fn start(hooks: &Arc<Hooks>, store: &Store, committer: &Committer) -> AfterHooks {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for (app, a) in &hooks.apps {
            if a.after == 0 {
                continue;
            }
            store.events().set_limit(*app, a.cfg.max_queued);
            let (hooks, store, committer, stopped) = (hooks.clone(), store.clone(), committer.clone(), stopped.clone());
            tasks.push(hooks.rt.clone().spawn(deliver(hooks, *app, store, committer, stopped)));
        }
        AfterHooks { stop, tasks }
    }

    /// Stops the tasks (what is not delivered stays queued for the next start).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn deliver(hooks: Arc<Hooks>, app: AppId, store: Store, committer: Committer, mut stop: watch::Receiver<bool>) {
    let Some(a) = hooks.apps.get(&app) else { return };
    let timeout = Duration::from_millis(a.cfg.timeout_ms.max(1));
    let max_delay = Duration::from_millis(a.cfg.retry_max_ms.max(100));
    let events = store.events().clone();
    let mut after = 0u64;
    while !*stop.borrow() {
        let written = events.next_write();
        tokio::pin!(written);
        written.as_mut().enable();
        // A RocksDB read: off the async workers.
        let reader = store.clone();
        let page = match tokio::task::spawn_blocking(move || reader.hook_events(app, after, PAGE)).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!(app = app.0, error = %e, "reading after-hook events");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        if page.is_empty() {
            tokio::select! {
                _ = &mut written => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let mut delivered = Batch::default();
        let mut stopped = false;
        'page: for (seq, raw) in page {
            after = seq;
            let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&raw) else {
                tracing::error!(app = app.0, seq, "an after-hook event that is not JSON: dropped");
                delivered.delete_hook_event(app, seq);
                continue;
            };
            body.insert("EventId".into(), seq.to_string().into());
            let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let (event, platform) = (text("CallbackCommand"), text("OptPlatform"));
            let bytes = Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default());
            let mut delay = Duration::from_millis(100);
            loop {
                let (uri, headers, b) = signed(a, app, &event, &platform, seq.to_string(), bytes.clone());
                match http::post(&hooks.client, uri, &headers, b, timeout).await {
                    Ok((200, _)) => break,
                    Ok((status, _)) => tracing::debug!(app = app.0, seq, status, "after-hook not taken; again later"),
                    Err(why) => tracing::debug!(app = app.0, seq, why, "after-hook not delivered; again later"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {
                        // This one was not delivered: it stays queued.
                        stopped = true;
                        break 'page;
                    }
                }
                delay = (delay * 2).min(max_delay);
            }
            delivered.delete_hook_event(app, seq);
        }
        let n = delivered.len() as u64;
        // A RocksDB write when shards write their own groups: off the async workers too.
        let c = committer.clone();
        match tokio::task::spawn_blocking(move || c.commit_blocking(delivered)).await {
            Ok(Ok(())) => events.delivered(app, n),
            _ => tracing::error!(app = app.0, "deleting delivered after-hook events failed; they will be sent again"),
        }
        if stopped {
            return;
        }
    }
}
