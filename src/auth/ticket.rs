//! Login tickets in the format of Tencent Cloud IM's UserSig (TLSSigAPIv2), so app backends
//! can mint them with the tools they already have.
//!
//! A ticket is `url64(zlib(json))` where `url64` is standard base64 with `+ / =` replaced by
//! `* - _`, and the JSON object holds `TLS.ver` ("2.0"), `TLS.identifier` (user id),
//! `TLS.sdkappid` (app id), `TLS.time` (issue time, unix seconds), `TLS.expire` (lifetime,
//! seconds) and `TLS.sig`: base64(HMAC-SHA256(secret, content)) where content is
//! `"TLS.identifier:{id}\nTLS.sdkappid:{app}\nTLS.time:{time}\nTLS.expire:{expire}\n"`
//! (followed by `"TLS.userbuf:{userbuf}\n"` when the optional `TLS.userbuf` is present).
//!
//! Verification caps every size before it decodes or decompresses, compares the signature in
//! constant time, and rejects expired tickets and tickets issued in the future beyond a skew.

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest ticket accepted, in characters of its text form.
pub const MAX_TICKET_LEN: usize = 2048;
/// Largest decompressed JSON accepted: a zip bomb stops here.
const MAX_JSON_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket is malformed: {0}")]
    Malformed(&'static str),
    #[error("ticket signature does not match")]
    BadSignature,
    #[error("ticket was issued for another app or user")]
    WrongIdentity,
    #[error("ticket has expired")]
    Expired,
    #[error("ticket is issued in the future")]
    NotYetValid,
}

impl TicketError {
    /// The wire error a refused ticket answers with (a login's, the HTTP API's).
    pub fn code(&self) -> crate::protocol::wire::ErrorCode {
        use crate::protocol::wire::ErrorCode;
        match self {
            TicketError::Malformed(_) | TicketError::BadSignature => ErrorCode::BadTicket,
            TicketError::WrongIdentity => ErrorCode::TicketUserMismatch,
            TicketError::Expired => ErrorCode::TicketExpired,
            TicketError::NotYetValid => ErrorCode::TicketNotYetValid,
        }
    }
}

/// What a valid ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClaims {
    pub app_id: u64,
    pub user_id: String,
    pub issued_at: u64,
    pub lifetime_secs: u64,
}

fn content(user_id: &str, app_id: u64, time: u64, expire: u64, userbuf: Option<&str>) -> String {
    let mut s = format!("TLS.identifier:{user_id}\nTLS.sdkappid:{app_id}\nTLS.time:{time}\nTLS.expire:{expire}\n");
    if let Some(buf) = userbuf {
        s.push_str("TLS.userbuf:");
        s.push_str(buf);
        s.push('\n');
    }
    s
}

fn mac(secret: &[u8], content: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac takes any key length");
    m.update(content.as_bytes());
    m.finalize().into_bytes().into()
}

fn url64_encode(data: &[u8]) -> String {
    STANDARD
        .encode(data)
        .chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

fn url64_decode(text: &str) -> Option<Vec<u8>> {
    let std: String = text
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect();
    STANDARD.decode(std.as_bytes()).ok()
}

/// Mints a ticket, as an app backend would.
pub fn sign(app_id: u64, user_id: &str, secret: &[u8], issued_at: u64, lifetime_secs: u64) -> String {
    let sig = STANDARD.encode(mac(secret, &content(user_id, app_id, issued_at, lifetime_secs, None)));
    let json = serde_json::json!({
        "TLS.ver": "2.0",
        "TLS.identifier": user_id,
        "TLS.sdkappid": app_id,
        "TLS.expire": lifetime_secs,
        "TLS.time": issued_at,
        "TLS.sig": sig,
    });
    let raw = json.to_string();
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, raw.as_bytes()).expect("writing to a Vec cannot fail");
    url64_encode(&enc.finish().expect("writing to a Vec cannot fail"))
}

/// A ticket's JSON, size-capped at every step.
fn open(ticket: &str) -> Result<serde_json::Value, TicketError> {
    if ticket.is_empty() || ticket.len() > MAX_TICKET_LEN {
        return Err(TicketError::Malformed("length"));
    }
    let compressed = url64_decode(ticket).ok_or(TicketError::Malformed("base64"))?;
    let mut json = Vec::with_capacity(512);
    flate2::read::ZlibDecoder::new(&compressed[..])
        .take(MAX_JSON_LEN as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|_| TicketError::Malformed("zlib"))?;
    if json.len() > MAX_JSON_LEN {
        return Err(TicketError::Malformed("too large"));
    }
    serde_json::from_slice(&json).map_err(|_| TicketError::Malformed("json"))
}

/// The app and user a ticket claims to be for, unverified: which secret to `verify` it with.
pub fn claimed(ticket: &str) -> Option<(u64, String)> {
    let v = open(ticket).ok()?;
    Some((v.get("TLS.sdkappid")?.as_u64()?, v.get("TLS.identifier")?.as_str()?.to_owned()))
}

/// Checks a ticket for `app_id`/`user_id` against `secret` at time `now` (unix seconds).
pub fn verify(
    ticket: &str,
    app_id: u64,
    user_id: &str,
    secret: &[u8],
    now: u64,
    skew_secs: u64,
) -> Result<TicketClaims, TicketError> {
    let v = open(ticket)?;
    let field = |k: &str| v.get(k);
    if field("TLS.ver").and_then(|x| x.as_str()) != Some("2.0") {
        return Err(TicketError::Malformed("version"));
    }
    let identifier = field("TLS.identifier").and_then(|x| x.as_str()).ok_or(TicketError::Malformed("identifier"))?;
    let sdkappid = field("TLS.sdkappid").and_then(|x| x.as_u64()).ok_or(TicketError::Malformed("sdkappid"))?;
    let time = field("TLS.time").and_then(|x| x.as_u64()).ok_or(TicketError::Malformed("time"))?;
    let expire = field("TLS.expire").and_then(|x| x.as_u64()).ok_or(TicketError::Malformed("expire"))?;
    let sig_text = field("TLS.sig").and_then(|x| x.as_str()).ok_or(TicketError::Malformed("sig"))?;
    let userbuf = match field("TLS.userbuf") {
        None => None,
        Some(x) => Some(x.as_str().ok_or(TicketError::Malformed("userbuf"))?),
    };
    let sig = STANDARD.decode(sig_text).map_err(|_| TicketError::Malformed("sig"))?;
    let expected = mac(secret, &content(identifier, sdkappid, time, expire, userbuf));
    if sig.len() != expected.len() || !bool::from(sig.ct_eq(&expected)) {
        return Err(TicketError::BadSignature);
    }
    // Only a genuine ticket gets to say whose it is.
    if sdkappid != app_id || identifier != user_id {
        return Err(TicketError::WrongIdentity);
    }
    if time > now.saturating_add(skew_secs) {
        return Err(TicketError::NotYetValid);
    }
    if time.saturating_add(expire) <= now {
        return Err(TicketError::Expired);
    }
    Ok(TicketClaims { app_id: sdkappid, user_id: identifier.to_string(), issued_at: time, lifetime_secs: expire })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

    #[test]
    fn round_trip() {
        let t = sign(1400000000, "alice", KEY, 1_000_000, 86400);
        let c = verify(&t, 1400000000, "alice", KEY, 1_000_100, 300).unwrap();
        assert_eq!(c.user_id, "alice");
        assert_eq!(c.lifetime_secs, 86400);
    }

    #[test]
    fn rejects_wrong_key_identity_and_times() {
        let t = sign(1, "alice", KEY, 1_000_000, 100);
        assert_eq!(verify(&t, 1, "alice", b"other", 1_000_000, 0), Err(TicketError::BadSignature));
        assert_eq!(verify(&t, 2, "alice", KEY, 1_000_000, 0), Err(TicketError::WrongIdentity));
        assert_eq!(verify(&t, 1, "bob", KEY, 1_000_000, 0), Err(TicketError::WrongIdentity));
        assert_eq!(verify(&t, 1, "alice", KEY, 1_000_100, 0), Err(TicketError::Expired));
        assert_eq!(verify(&t, 1, "alice", KEY, 999_000, 300), Err(TicketError::NotYetValid));
        assert!(verify(&t, 1, "alice", KEY, 999_800, 300).is_ok());
    }

    #[test]
    fn rejects_garbage_and_bombs() {
        assert!(matches!(verify("", 1, "a", KEY, 0, 0), Err(TicketError::Malformed(_))));
        assert!(matches!(verify("!!!", 1, "a", KEY, 0, 0), Err(TicketError::Malformed(_))));
        assert!(matches!(verify(&"A".repeat(5000), 1, "a", KEY, 0, 0), Err(TicketError::Malformed(_))));
        // 1 MB of zeros compresses to ~1 KB: must be refused after 4 KB of output.
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut enc, &vec![b' '; 1 << 20]).unwrap();
        let bomb = url64_encode(&enc.finish().unwrap());
        assert!(bomb.len() < MAX_TICKET_LEN);
        assert_eq!(verify(&bomb, 1, "a", KEY, 0, 0), Err(TicketError::Malformed("too large")));
    }

    #[test]
    fn accepts_a_ticket_with_userbuf() {
        let ub = STANDARD.encode(b"payload");
        let sig = STANDARD.encode(mac(KEY, &content("u", 9, 10, 1000, Some(&ub))));
        let json = format!(
            r#"{{"TLS.ver":"2.0","TLS.identifier":"u","TLS.sdkappid":9,"TLS.expire":1000,"TLS.time":10,"TLS.userbuf":"{ub}","TLS.sig":"{sig}"}}"#
        );
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, json.as_bytes()).unwrap();
        let t = url64_encode(&enc.finish().unwrap());
        assert!(verify(&t, 9, "u", KEY, 20, 0).is_ok());
    }
}
