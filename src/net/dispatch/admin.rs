//! Operators' requests: an online backup of the whole store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{admin_only, pending, Cx, Immediate, Outcome};
use crate::domain::backup;
use crate::protocol::{self, wire, wire::ErrorCode};

/// Clears the one-backup-at-a-time flag when the backup's work ends, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// `BackupReq`: a RocksDB checkpoint of the live store into `backup_dir/<name>`, written on a
/// blocking thread while the server goes on. Everything acknowledged before the request is in
/// it.
pub fn backup(cx: Cx<'_>, r: wire::BackupReq<'_>) -> Result<Outcome, Immediate> {
    admin_only(cx.s)?;
    let id = cx.id;
    let refuse = |code, msg: &str| Err(Immediate::Frame(protocol::error(id, code, msg)));
    let root = &cx.ctx.cfg.backup_dir;
    if root.as_os_str().is_empty() {
        return refuse(ErrorCode::PermissionDenied, "backups are off on this server (backup_dir is empty)");
    }
    let name = match backup::name(r.name().unwrap_or_default(), crate::now_ms()) {
        Ok(n) => n,
        Err(why) => return refuse(ErrorCode::InvalidArgument, why),
    };
    let Some(store) = cx.ctx.store.clone() else {
        return refuse(ErrorCode::StorageUnavailable, "no store");
    };
    let path = root.join(&name);
    if cx.ctx.backing_up.swap(true, Ordering::AcqRel) {
        return refuse(ErrorCode::Overloaded, "a backup is being written; retry when it is done");
    }
    let running = Running(cx.ctx.backing_up.clone());
    pending(async move {
        // The file system is asked on the blocking thread too, never on an async worker.
        let made = tokio::task::spawn_blocking(move || {
            let _running = running;
            if path.exists() {
                return None;
            }
            Some(store.checkpoint(&path))
        })
        .await;
        match made {
            Ok(None) => protocol::error(id, ErrorCode::InvalidArgument, "a backup of that name exists"),
            Ok(Some(Ok(b))) => {
                tracing::info!(path = %b.path.display(), files = b.files, bytes = b.bytes, ms = b.took_ms, "backup written");
                protocol::response(id, |fbb| {
                    let name = fbb.create_string(&name);
                    let path = fbb.create_string(&b.path.display().to_string());
                    let r = wire::BackupResp::create(
                        fbb,
                        &wire::BackupRespArgs {
                            name: Some(name),
                            path: Some(path),
                            files: b.files,
                            bytes: b.bytes,
                            took_ms: b.took_ms,
                        },
                    );
                    (wire::Response::BackupResp, r.as_union_value())
                })
            }
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e, "backup failed");
                protocol::error(id, ErrorCode::Internal, &format!("the backup failed: {e}"))
            }
            Err(_) => protocol::error(id, ErrorCode::Internal, "the backup task failed"),
        }
    })
}
