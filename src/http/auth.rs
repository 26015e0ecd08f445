//! Who calls the HTTP API: an app administrator, by the same signed ticket a connection logs
//! in with, either Tencent-style in the query (`?sdkappid=..&identifier=<admin>&usersig=..`)
//! or as `Authorization: Bearer <ticket>` (the ticket names its app and user).

use super::HttpError;
use crate::auth::ticket;
use crate::config::Config;
use crate::domain::ids::{AppId, UserId};
use crate::protocol::wire::ErrorCode;

/// The value of `key` in a query string (tickets and ids need no percent-decoding: their
/// alphabets are URL-safe).
fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn unauthorized(code: ErrorCode, msg: impl Into<String>) -> HttpError {
    HttpError { status: 401, code, message: msg.into(), backend_code: 0 }
}

/// The administrator a request comes from: (app, admin id).
pub fn admin(cfg: &Config, query: Option<&str>, authorization: Option<&str>) -> Result<(AppId, UserId), HttpError> {
    let (app, user, t) = match (authorization.and_then(|a| a.strip_prefix("Bearer ")), query) {
        (Some(t), _) => {
            let t = t.trim();
            let (app, user) = ticket::claimed(t)
                .ok_or_else(|| unauthorized(ErrorCode::BadTicket, "the bearer ticket is malformed"))?;
            (app, user, t.to_owned())
        }
        (None, Some(q)) if param(q, "usersig").is_some() => {
            let app = param(q, "sdkappid").and_then(|a| a.parse().ok());
            let user = param(q, "identifier");
            let (Some(app), Some(user)) = (app, user) else {
                return Err(unauthorized(ErrorCode::MissingField, "sdkappid and identifier go with usersig"));
            };
            (app, user.to_owned(), param(q, "usersig").unwrap_or_default().to_owned())
        }
        _ => return Err(unauthorized(ErrorCode::NotLoggedIn, "an administrator's ticket is required")),
    };
    let app_id = AppId(u32::try_from(app).map_err(|_| unauthorized(ErrorCode::UnknownApp, "unknown app"))?);
    let a = cfg.app(app_id).ok_or_else(|| unauthorized(ErrorCode::UnknownApp, "unknown app"))?;
    let user = UserId::new(&user).ok_or_else(|| unauthorized(ErrorCode::InvalidArgument, "identifier"))?;
    let now = crate::now_ms() / 1000;
    if let Err(e) = ticket::verify(&t, app, user.as_str(), a.secret.as_bytes(), now, cfg.timeouts.ticket_skew_secs) {
        return Err(unauthorized(e.code(), e.to_string()));
    }
    if !a.admins.contains(&user) {
        return Err(HttpError {
            status: 403,
            code: ErrorCode::PermissionDenied,
            message: "the HTTP API is for app administrators".into(),
            backend_code: 0,
        });
    }
    Ok((app_id, user))
}

#[cfg(test)]
mod tests {
    use super::param;

    #[test]
    fn query_parameters() {
        let q = "sdkappid=14&identifier=admin&usersig=a*b-c_&random=9";
        assert_eq!(param(q, "identifier"), Some("admin"));
        assert_eq!(param(q, "usersig"), Some("a*b-c_"));
        assert_eq!(param(q, "nope"), None);
    }
}
