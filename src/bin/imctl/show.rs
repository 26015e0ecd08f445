//! What imctl prints: answers (as JSON with `--json`, else as text) and pushes, and an error as
//! one line (the server's message, its wire code's name and number), with the causes and
//! backtrace on request.

use std::backtrace::BacktraceStatus;

use imserver::client::{ClientError, Frame, ItemOutcome, Message, Profile, Status};
use imserver::protocol::wire;
use serde::Serialize;

/// Prints an answer: with `--json` (`json`) as one line of JSON, else as `text` shows it.
pub fn answer<T: Serialize>(json: bool, value: &T, text: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        text(value);
    }
    Ok(())
}

/// The last line of a page of a stream: its head and whether more follows.
pub fn print_head(head_seq: u64, more: bool) {
    println!("head {head_seq} more {more}");
}

pub fn print_outcomes(json: bool, items: &[ItemOutcome]) {
    if json {
        let v: Vec<_> =
            items.iter().map(|(id, c)| serde_json::json!({"id": id, "code": c.0, "error": c.variant_name()})).collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for (id, c) in items {
            if *c == wire::ErrorCode::None {
                println!("{id}: ok");
            } else {
                println!("{id}: {} ({})", c.variant_name().unwrap_or("?"), c.0);
            }
        }
    }
}

pub fn print_profile(p: &Profile) {
    println!("{}", p.user_id);
    let rows = [
        ("nickname", p.nickname.clone()),
        ("avatar", p.avatar.clone()),
        ("gender", p.gender.to_string()),
        ("birthday", p.birthday.clone()),
        ("location", p.location.clone()),
        ("signature", p.signature.clone()),
        ("friend_add_policy", p.friend_add_policy.to_string()),
        ("silent", p.silent.to_string()),
        ("forbidden", p.forbidden.to_string()),
        ("extra", p.extra.clone()),
        ("deleted", p.deleted.to_string()),
    ];
    for (k, v) in rows {
        if !v.is_empty() {
            println!("  {k:<18} {v}");
        }
    }
}

pub fn describe_message(m: &Message) -> String {
    let body = if m.recalled { "(recalled)".to_string() } else { String::from_utf8_lossy(&m.body).into_owned() };
    format!("#{} {} -> {} [{}]: {}", m.seq, m.from, m.to, m.server_id, body)
}

pub fn describe_push(f: &Frame) -> String {
    let sf = f.get();
    if let Some(k) = sf.event_as_kick_push() {
        return format!("kick: {}", k.reason().variant_name().unwrap_or("?"));
    }
    if let Some(s) = sf.event_as_status_changed_push() {
        if let Some(st) = s.status() {
            let s = Status::from_wire(&st);
            return format!(
                "status: {} {} [{}]",
                s.user_id,
                if s.online { "online" } else { "offline" },
                devices(&s).join(", ")
            );
        }
    }
    if let Some(u) = sf.event_as_user_info_changed_push() {
        if let Some(p) = u.user() {
            return format!(
                "profile changed: {} nickname={:?}",
                p.user_id().unwrap_or_default(),
                p.nickname().unwrap_or_default()
            );
        }
    }
    if let Some(m) = sf.event_as_message_push().and_then(|p| p.message()) {
        return format!("message: {}", describe_message(&Message::from_wire(&m)));
    }
    if let Some(r) = sf.event_as_receipt_push() {
        return format!(
            "received: {} got message {}{}",
            r.by_user().unwrap_or_default(),
            r.server_id(),
            if r.server_sent() { " (server-sent: offline)" } else { "" }
        );
    }
    if let Some(r) = sf.event_as_read_receipt_push() {
        return format!("read: {} read up to seq {}", r.user_id().unwrap_or_default(), r.read_seq());
    }
    if let Some(r) = sf.event_as_recall_push() {
        return format!("recalled: message {} by {}", r.server_id(), r.by_user().unwrap_or_default());
    }
    if let Some(c) = sf.event_as_sync_changed_push().and_then(|p| p.item()) {
        return match c.conversation() {
            Some(cv) => format!(
                "conversation changed: {} unread {} read {} pinned {} muted {}",
                cv.conv().and_then(|x| x.peer()).unwrap_or_default(),
                cv.unread(),
                cv.read_seq(),
                cv.pinned(),
                cv.muted()
            ),
            None => format!("sync changed: item {} (seq {})", c.id().unwrap_or_default(), c.seq()),
        };
    }
    if let Some(g) = sf.event_as_group_event_push() {
        let users: Vec<&str> = g.users().map(|v| v.iter().collect()).unwrap_or_default();
        return format!(
            "group {}: {} by {} [{}]",
            g.group_id().unwrap_or_default(),
            g.kind().unwrap_or_default(),
            g.actor().unwrap_or("an administrator"),
            users.join(", ")
        );
    }
    if let Some(c) = sf.event_as_conversation_deleted_push().and_then(|p| p.conv()) {
        return format!("conversation deleted: {}", c.peer().unwrap_or_default());
    }
    if let Some(e) = f.error() {
        return format!("error: {e}");
    }
    format!("push: {}", sf.event_type().variant_name().unwrap_or("?"))
}

/// A user's devices as `type/device-id`.
pub fn devices(s: &Status) -> Vec<String> {
    s.devices.iter().map(|d| format!("{}/{}", d.client_type.variant_name().unwrap_or("?"), d.device_id)).collect()
}

/// One cause as a person reads it; a server error as its message, then its wire code's name
/// and number, which is what to search the schema (`protocol/im.fbs`) and the logs for.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let text = match e.downcast_ref::<ClientError>() {
        Some(ClientError::Server { code, message, .. }) => {
            let name = code.variant_name().unwrap_or("unknown code");
            let message = if message.is_empty() { "server error" } else { message };
            format!("{message} ({name}, {})", code.0)
        }
        _ => e.to_string(),
    };
    // One line even when a cause's own text spans several.
    text.replace('\n', " ")
}

/// The error as one line: `error: ` and its causes, outermost first, joined by `: `.
pub fn error_line(e: &anyhow::Error) -> String {
    let causes: Vec<String> = e.chain().map(cause).collect();
    format!("error: {}", causes.join(": "))
}

/// What `--verbose` adds under the line: each cause as the program sees it, and the
/// backtrace where the error arose when RUST_BACKTRACE (or RUST_LIB_BACKTRACE) asked for one.
pub fn error_details(e: &anyhow::Error) -> String {
    let mut out = String::from("caused by:\n");
    for (i, c) in e.chain().enumerate() {
        let text = match c.downcast_ref::<ClientError>() {
            Some(ce) => format!("{ce:?}"),
            None => c.to_string(),
        };
        out.push_str(&format!("  {i}: {text}\n"));
    }
    match e.backtrace().status() {
        BacktraceStatus::Captured => out.push_str(&format!("backtrace:\n{}", e.backtrace())),
        _ => out.push_str("(set RUST_BACKTRACE=1 for a backtrace)\n"),
    }
    out
}
