//! What a backend's answer to a before-hook means. The answer is JSON, in the shape of
//! Tencent's callbacks: `{"ErrorCode": 0}` lets the operation through, a non-zero
//! `ErrorCode` refuses it (with `ErrorInfo` as the reason the client sees), and for messages a
//! `MsgBody` (base64) replaces the body. Anything else is not an answer.

use base64::Engine;
use serde::Deserialize;

/// Longest refusal reason passed on to the client.
pub const MAX_REASON: usize = 200;

/// A backend's answer, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed with this body instead of the client's.
    Rewrite(Vec<u8>),
    /// Allowed for everyone but these users (`RefusedMembers_Account`, for invites).
    AllowExcept(Vec<String>),
    /// Refused with the backend's code and reason.
    Refuse {
        code: i64,
        reason: String,
    },
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "ErrorCode")]
    code: i64,
    #[serde(rename = "ErrorInfo", default)]
    info: String,
    #[serde(rename = "MsgBody", default)]
    body: Option<String>,
    #[serde(rename = "RefusedMembers_Account", default)]
    refused: Vec<String>,
}

/// Reads the answer to a before-hook (`status`, `body`); `Err` says why it is not one.
pub fn read(status: u16, body: &[u8]) -> Result<Verdict, &'static str> {
    if status != 200 {
        return Err("the backend answered a status other than 200");
    }
    let a: Answer = serde_json::from_slice(body).map_err(|_| "the backend's answer is not the expected JSON")?;
    if a.code != 0 {
        let mut reason = a.info;
        if reason.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        return Ok(Verdict::Refuse { code: a.code, reason });
    }
    if !a.refused.is_empty() {
        return Ok(Verdict::AllowExcept(a.refused));
    }
    match a.body {
        None => Ok(Verdict::Allow),
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Verdict::Rewrite)
            .map_err(|_| "the backend's MsgBody is not base64"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_refuse_rewrite() {
        assert_eq!(read(200, br#"{"ActionStatus":"OK","ErrorCode":0}"#), Ok(Verdict::Allow));
        assert_eq!(
            read(200, br#"{"ErrorCode":120001,"ErrorInfo":"spam"}"#),
            Ok(Verdict::Refuse { code: 120001, reason: "spam".into() })
        );
        assert_eq!(read(200, br#"{"ErrorCode":0,"MsgBody":"aGk="}"#), Ok(Verdict::Rewrite(b"hi".to_vec())));
        assert_eq!(
            read(200, br#"{"ErrorCode":0,"RefusedMembers_Account":["bob"]}"#),
            Ok(Verdict::AllowExcept(vec!["bob".into()]))
        );
        assert_eq!(read(200, br#"{"ErrorCode":0,"RefusedMembers_Account":[]}"#), Ok(Verdict::Allow));
    }

    #[test]
    fn garbage_is_no_answer() {
        for (status, body) in [
            (500, &br#"{"ErrorCode":0}"#[..]),
            (200, b"OK"),
            (200, b""),
            (200, br#"{"ErrorCode":"0"}"#),
            (200, br#"{"Allowed":true}"#),
            (200, br#"{"ErrorCode":0,"MsgBody":"%%%"}"#),
        ] {
            assert!(read(status, body).is_err(), "{status} {:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_long_reason_is_cut_on_a_char_boundary() {
        let long = format!(r#"{{"ErrorCode":1,"ErrorInfo":"{}"}}"#, "é".repeat(300));
        let Ok(Verdict::Refuse { reason, .. }) = read(200, long.as_bytes()) else { panic!() };
        assert!(reason.len() <= MAX_REASON && reason.chars().all(|c| c == 'é'));
    }
}
