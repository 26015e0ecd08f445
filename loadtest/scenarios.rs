//! `imload idle`, `catchup` and `storm`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::FutureExt;
use imserver::protocol::{self, wire};
use tokio::sync::Semaphore;

use crate::conn::{self, Reader, Target};

/// Logs in `users` concurrently (at most `parallel` logins at a time); keeps each connection
/// alive with pings every `beat` until `stop`. Returns the connections' tasks and the login
/// wall time.
pub async fn hold(
    t: &Target,
    users: &[String],
    parallel: usize,
    beat: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, Duration)> {
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let start = Instant::now();
    let mut logins = Vec::with_capacity(users.len());
    for u in users {
        let (t, u, sem) = (t.clone(), u.clone(), sem.clone());
        logins.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            conn::login(&t, &u, wire::ClientType::Web, "idle").await
        }));
    }
    let mut conns = Vec::with_capacity(users.len());
    for l in logins {
        conns.push(l.await??);
    }
    let took = start.elapsed();
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, (mut rd, mut wr)) in conns.into_iter().enumerate() {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            // Spread the pings over the beat.
            let offset = beat.mul_f64((i % 1000) as f64 / 1000.0);
            tokio::time::sleep(offset).await;
            let mut id = 1u64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                if conn::send(&mut wr, &conn::ping(id)).await.is_err() {
                    return;
                }
                let until = tokio::time::Instant::now() + beat;
                while tokio::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    let left =
                        until.saturating_duration_since(tokio::time::Instant::now()).min(Duration::from_millis(500));
                    if let Ok(None) = tokio::time::timeout(left, conn::next(&mut rd)).await {
                        return;
                    }
                }
            }
        }));
    }
    Ok((tasks, took))
}

/// Sends `n` messages from `from` to `to` with up to `window` in flight; returns when all are
/// acknowledged.
pub async fn send_many(t: &Target, from: &str, to: &str, n: u64, window: usize, payload: usize) -> anyhow::Result<()> {
    let (mut rd, mut wr) = conn::login(t, from, wire::ClientType::Backend, "catchup-sender").await?;
    let (mut sent, mut acked) = (0u64, 0u64);
    let body = vec![1u8; payload.max(1)];
    while acked < n {
        let mut buf = Vec::new();
        while sent < n && sent - acked < window as u64 {
            sent += 1;
            buf.extend_from_slice(&conn::send_msg(sent, to, &format!("c{sent}"), &body));
        }
        if !buf.is_empty() {
            conn::send(&mut wr, &buf).await?;
        }
        let Some(f) = conn::next(&mut rd).await else { bail!("closed while sending") };
        let mut frames = vec![f];
        while let Some(Some(f)) = conn::next(&mut rd).now_or_never() {
            frames.push(f);
        }
        for f in frames {
            let sf = protocol::decode_server(&f)?;
            if sf.id() == 0 {
                continue;
            }
            if let Some(e) = sf.response_as_error() {
                bail!("send refused: {:?}", e.code());
            }
            acked += 1;
        }
    }
    Ok(())
}

/// Syncs the Messages stream from `after` until nothing remains; returns (items, last seq).
pub async fn sync_all(
    rd: &mut Reader,
    wr: &mut crate::conn::Writer,
    after: u64,
    page: u32,
) -> anyhow::Result<(u64, u64)> {
    let (mut cursor, mut items, mut id) = (after, 0u64, 100u64);
    loop {
        id += 1;
        conn::send(wr, &conn::sync(id, cursor, page)).await?;
        let r = loop {
            let Some(f) = conn::next(rd).await else { bail!("closed while syncing") };
            let sf = protocol::decode_server(&f)?;
            if sf.id() != id {
                continue; // pushes
            }
            let Some(r) = sf.response_as_sync_resp() else { bail!("sync refused") };
            break (r.items().map(|v| v.len() as u64).unwrap_or(0), r.head_seq(), r.more());
        };
        items += r.0;
        cursor = r.1;
        if !r.2 {
            return Ok((items, cursor));
        }
    }
}

/// Storm: every receiver drops its connection at once; while they are away each one is sent
/// `missed` messages; then all reconnect at once and resync from their cursor. Returns the
/// time until all are back and caught up, and how many messages were found missing.
pub async fn storm(
    t: &Target,
    receivers: &[String],
    sender: &str,
    missed: u64,
    parallel: usize,
) -> anyhow::Result<(Duration, u64)> {
    // Everyone online first, learning their cursor.
    let mut cursors = Vec::with_capacity(receivers.len());
    for chunk in receivers.chunks(parallel.max(1)) {
        let mut tasks = Vec::new();
        for u in chunk {
            let (t, u) = (t.clone(), u.clone());
            tasks.push(tokio::spawn(async move {
                let (mut rd, mut wr) = conn::login(&t, &u, wire::ClientType::Ios, "storm").await?;
                let (_, cursor) = sync_all(&mut rd, &mut wr, 0, 500).await?;
                anyhow::Ok(cursor)
            }));
        }
        for task in tasks {
            cursors.push(task.await??);
        }
    }
    // (All those connections are now closed: the storm's "drop".) Messages arrive meanwhile.
    let (mut srd, mut swr) = conn::login(t, sender, wire::ClientType::Backend, "storm-sender").await?;
    let mut k = 0u64;
    let body = [2u8; 64];
    let total = missed * receivers.len() as u64;
    let mut acked = 0u64;
    let mut buf = Vec::new();
    for r in receivers {
        for _ in 0..missed {
            k += 1;
            buf.extend_from_slice(&conn::send_msg(k, r, &format!("storm-{k}"), &body));
        }
        conn::send(&mut swr, &buf).await?;
        buf.clear();
        while acked + 256 < k {
            let Some(_) = conn::next(&mut srd).await else { bail!("sender closed") };
            acked += 1;
        }
    }
    while acked < total {
        let Some(_) = conn::next(&mut srd).await else { bail!("sender closed") };
        acked += 1;
    }
    // The reconnect storm.
    let start = Instant::now();
    let lost = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::new();
    for (u, cursor) in receivers.iter().zip(cursors) {
        let (t, u, lost, sem) = (t.clone(), u.clone(), lost.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            let (mut rd, mut wr) = conn::login(&t, &u, wire::ClientType::Ios, "storm").await?;
            // A message is acknowledged to its sender before the receiver's shard has recorded
            // it in the receiver's stream (that follows within moments): sync again from the
            // new cursor until everything is there, for up to 10 s.
            let (mut got, mut cursor) = sync_all(&mut rd, &mut wr, cursor, 500).await?;
            let until = Instant::now() + Duration::from_secs(10);
            while got < missed && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let (n, c) = sync_all(&mut rd, &mut wr, cursor, 500).await?;
                got += n;
                cursor = c;
            }
            if got < missed {
                lost.fetch_add(missed - got, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((start.elapsed(), lost.load(Ordering::Relaxed)))
}
