//! The login handshake in two parts: `verify` checks the login frame and its ticket (CPU
//! only, on the thread that accepted the connection), and `register` tells the user's shard
//! about the device and answers (where the session runs: a connection thread, or the user's
//! shard thread for a plain TCP session that moved there).

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use super::dispatch::Session;
use super::Ctx;
use crate::auth::ticket;
use crate::domain::ids::{AppId, ConnId, UserId};
use crate::protocol::{self, wire, wire::ErrorCode};
use crate::shard::cmd::{DeviceLogin, Login};
use crate::shard::outbox::Outbox;

/// A login frame whose ticket checked out.
#[derive(Debug)]
pub struct Verified {
    /// The login request's id (its answer carries it).
    pub id: u64,
    pub app: AppId,
    pub user: UserId,
    pub admin: bool,
    pub client_type: wire::ClientType,
    pub device_id: String,
    pub protocol_version: u32,
}

/// Why a login was refused: the error frame's request id, code and text.
#[derive(Debug)]
pub struct Refused {
    pub id: u64,
    pub code: ErrorCode,
    pub msg: String,
}

impl Refused {
    fn new(id: u64, code: ErrorCode, msg: impl Into<String>) -> Refused {
        Refused { id, code, msg: msg.into() }
    }

    /// Counts the refusal and queues its error frame.
    pub fn answer(&self, ctx: &Ctx, outbox: &Outbox) {
        ctx.metrics.login(self.code);
        outbox.send(protocol::error(self.id, self.code, &self.msg));
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Checks the first frame: a well-formed login in a served protocol version, for a known app,
/// with a valid ticket for that user.
pub fn verify(ctx: &Ctx, buf: &[u8]) -> Result<Verified, Refused> {
    let Ok(frame) = protocol::decode_client(buf) else {
        return Err(Refused::new(0, ErrorCode::MalformedFrame, "malformed frame"));
    };
    let id = frame.id();
    if id == 0 {
        return Err(Refused::new(0, ErrorCode::InvalidArgument, "request id 0 is reserved for pushes"));
    }
    let Some(req) = frame.request_as_login_req() else {
        return Err(Refused::new(id, ErrorCode::NotLoggedIn, "the first frame must be a login"));
    };
    let protocol_version = req.protocol_version();
    if !protocol::SERVED_VERSIONS.contains(&protocol_version) {
        let (lo, hi) = (protocol::SERVED_VERSIONS.start(), protocol::SERVED_VERSIONS.end());
        let msg = format!("protocol_version {protocol_version} is not served; this server speaks {lo} to {hi}");
        return Err(Refused::new(id, ErrorCode::InvalidArgument, msg));
    }
    let app_id = AppId(req.app_id());
    let Some(app) = ctx.cfg.app(app_id) else {
        return Err(Refused::new(id, ErrorCode::UnknownApp, "unknown app"));
    };
    let Some(user) = req.user_id().and_then(UserId::new) else {
        return Err(Refused::new(id, ErrorCode::InvalidArgument, "user_id"));
    };
    let Some(t) = req.ticket() else {
        return Err(Refused::new(id, ErrorCode::MissingField, "ticket"));
    };
    let device_id = req.device_id().unwrap_or_default();
    if device_id.len() > 128 {
        return Err(Refused::new(id, ErrorCode::InvalidArgument, "device_id"));
    }
    let Ok(client_type) = crate::domain::wire::known(req.client_type(), "client_type") else {
        return Err(Refused::new(id, ErrorCode::InvalidArgument, "client_type"));
    };
    let checked = ticket::verify(
        t,
        app_id.0 as u64,
        user.as_str(),
        app.secret.as_bytes(),
        now_secs(),
        ctx.cfg.timeouts.ticket_skew_secs,
    );
    if let Err(e) = checked {
        return Err(Refused::new(id, e.code(), e.to_string()));
    }
    let admin = app.admins.contains(&user);
    Ok(Verified { id, app: app_id, user, admin, client_type, device_id: device_id.to_owned(), protocol_version })
}

/// Registers a verified login's device with its user's shard (administrators have none) and
/// queues the answer; on failure the error is queued and `None` returned.
pub async fn register(ctx: &Ctx, conn: ConnId, outbox: &Outbox, v: Verified) -> Option<Session> {
    let Verified { id, app, user, admin, client_type, device_id, protocol_version } = v;
    if !admin {
        let (tx, rx) = oneshot::channel();
        let cmd = Login {
            app,
            user: user.clone(),
            device: DeviceLogin { client_type, device_id, outbox: outbox.clone() },
            reply: tx,
        }
        .into();
        let refused = if ctx.router.send(ctx.router.user_shard(app, &user), cmd).await.is_err() {
            Some(Refused::new(id, ErrorCode::ShuttingDown, "shutting down"))
        } else {
            match rx.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(Refused::new(id, e.code(), e.message())),
                Err(_) => Some(Refused::new(id, ErrorCode::ShuttingDown, "shutting down")),
            }
        };
        if let Some(r) = refused {
            r.answer(ctx, outbox);
            return None;
        }
    }
    let resp = protocol::response(id, |fbb| {
        let addr = fbb.create_string(&ctx.advertise);
        let r = wire::LoginResp::create(
            fbb,
            &wire::LoginRespArgs {
                session_id: conn.0,
                server_addr: Some(addr),
                server_time_ms: crate::now_ms(),
                heartbeat_secs: ctx.cfg.timeouts.heartbeat_secs as u32,
                idle_timeout_secs: ctx.cfg.timeouts.idle_secs as u32,
                is_admin: admin,
            },
        );
        (wire::Response::LoginResp, r.as_union_value())
    });
    outbox.send(resp);
    ctx.metrics.login(ErrorCode::None);
    tracing::debug!(conn = conn.0, app = app.0, user = %user, admin, "logged in");
    Some(Session {
        app,
        me: user.clone(),
        user: (!admin).then_some(user),
        admin,
        conn,
        protocol_version,
        platform: client_type,
    })
}
