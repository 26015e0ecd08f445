//! Every RocksDB key layout, in one place.
//!
//! Integers are big-endian so byte order is numeric order; a user id is length-prefixed
//! (one byte, ids are at most 64 bytes) when something follows it, so that "alice" and
//! "alice2" never share a prefix by accident. Decoders are checked: a key that does not
//! parse is reported, never trusted.

use crate::domain::ids::{AppId, UserId};

/// Column families. Names are part of the on-disk format.
pub const CF_META: &str = "default";
/// [app u32][user id] -> user record
pub const CF_USERS: &str = "users";
/// [app u32][len u8][user][stream u8][seq u64] -> stream entry (item id, tombstone, payload)
pub const CF_STREAM: &str = "stream";
/// [app u32][len u8][user][stream u8][item id] -> seq u64 (where an item sits in its stream)
pub const CF_STREAM_IDX: &str = "stream_idx";
/// [app u32][len u8][user][stream u8] -> head seq u64
pub const CF_HEADS: &str = "heads";
/// [app u32][len u8][target][subscriber] -> expiry ms u64
pub const CF_SUBS: &str = "subs";

pub const ALL_CFS: [&str; 6] = [
    CF_META,
    CF_USERS,
    CF_STREAM,
    CF_STREAM_IDX,
    CF_HEADS,
    CF_SUBS,
];

/// The on-disk format version, stored under this key in CF_META.
pub const META_FORMAT: &[u8] = b"format";
pub const FORMAT_VERSION: u32 = 1;

fn app_user(cap: usize, app: AppId, user: &UserId) -> Vec<u8> {
    let u = user.as_str().as_bytes();
    let mut k = Vec::with_capacity(5 + u.len() + cap);
    k.extend_from_slice(&app.0.to_be_bytes());
    // UserId guarantees 1..=64 bytes, so the length fits a byte.
    k.push(u.len() as u8);
    k.extend_from_slice(u);
    k
}

pub fn user(app: AppId, user: &UserId) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + user.as_str().len());
    k.extend_from_slice(&app.0.to_be_bytes());
    k.extend_from_slice(user.as_str().as_bytes());
    k
}

pub fn decode_user(key: &[u8]) -> Option<(AppId, UserId)> {
    let app = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let id = std::str::from_utf8(key.get(4..)?).ok()?;
    Some((AppId(app), UserId::new(id)?))
}

/// The prefix of all entries of one user's stream.
pub fn stream_prefix(app: AppId, u: &UserId, stream: u8) -> Vec<u8> {
    let mut k = app_user(9, app, u);
    k.push(stream);
    k
}

pub fn stream_entry(app: AppId, u: &UserId, stream: u8, seq: u64) -> Vec<u8> {
    let mut k = stream_prefix(app, u, stream);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The seq at the end of a stream entry key with the given prefix length.
pub fn decode_stream_seq(key: &[u8], prefix_len: usize) -> Option<u64> {
    let tail: [u8; 8] = key.get(prefix_len..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub fn stream_index(app: AppId, u: &UserId, stream: u8, item: &[u8]) -> Vec<u8> {
    let mut k = stream_prefix(app, u, stream);
    k.extend_from_slice(item);
    k
}

pub fn head(app: AppId, u: &UserId, stream: u8) -> Vec<u8> {
    stream_prefix(app, u, stream)
}

/// Decodes a CF_HEADS key.
pub fn decode_head(key: &[u8]) -> Option<(AppId, UserId, u8)> {
    let (app, user, rest) = decode_app_user(key)?;
    match rest {
        [stream] => Some((app, user, *stream)),
        _ => None,
    }
}

pub fn sub(app: AppId, target: &UserId, subscriber: &UserId) -> Vec<u8> {
    let mut k = app_user(subscriber.as_str().len(), app, target);
    k.extend_from_slice(subscriber.as_str().as_bytes());
    k
}

pub fn decode_sub(key: &[u8]) -> Option<(AppId, UserId, UserId)> {
    let (app, target, rest) = decode_app_user(key)?;
    let subscriber = UserId::new(std::str::from_utf8(rest).ok()?)?;
    Some((app, target, subscriber))
}

fn decode_app_user(key: &[u8]) -> Option<(AppId, UserId, &[u8])> {
    let app = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let len = *key.get(4)? as usize;
    let id = std::str::from_utf8(key.get(5..5 + len)?).ok()?;
    Some((AppId(app), UserId::new(id)?, key.get(5 + len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn stream_entries_sort_by_seq_numerically() {
        let a = AppId(1);
        let keys: Vec<Vec<u8>> = [0u64, 1, 2, 255, 256, 65_535, 1 << 40, u64::MAX]
            .iter()
            .map(|&s| stream_entry(a, &u("x"), 3, s))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn apps_and_users_do_not_interleave() {
        // All of app 1 sorts before app 2; "alice"'s stream never contains "alice2"'s.
        assert!(
            stream_entry(AppId(1), &u("zzz"), 9, u64::MAX) < stream_entry(AppId(2), &u("a"), 0, 0)
        );
        let p = stream_prefix(AppId(1), &u("alice"), 0);
        assert!(!stream_entry(AppId(1), &u("alice2"), 0, 5).starts_with(&p));
        assert!(stream_entry(AppId(1), &u("alice"), 0, 5).starts_with(&p));
        // Streams of one user sort by stream, then seq.
        assert!(
            stream_entry(AppId(1), &u("a"), 0, u64::MAX) < stream_entry(AppId(1), &u("a"), 1, 0)
        );
        assert!(user(AppId(1), &u("zz")) < user(AppId(256), &u("a")));
    }

    #[test]
    fn decoders_round_trip_and_refuse_garbage() {
        assert_eq!(
            decode_user(&user(AppId(7), &u("bob"))),
            Some((AppId(7), u("bob")))
        );
        assert_eq!(
            decode_head(&head(AppId(7), &u("bob"), 4)),
            Some((AppId(7), u("bob"), 4))
        );
        assert_eq!(
            decode_sub(&sub(AppId(7), &u("t"), &u("s"))),
            Some((AppId(7), u("t"), u("s")))
        );
        let k = stream_entry(AppId(7), &u("bob"), 2, 99);
        assert_eq!(
            decode_stream_seq(&k, stream_prefix(AppId(7), &u("bob"), 2).len()),
            Some(99)
        );
        assert_eq!(decode_user(&[0, 0]), None);
        assert_eq!(decode_head(&[0, 0, 0, 1, 200, b'a']), None);
        assert_eq!(decode_head(&head(AppId(1), &u("a"), 1)[..6]), None);
        assert_eq!(
            decode_stream_seq(
                &k[..k.len() - 1],
                stream_prefix(AppId(7), &u("bob"), 2).len()
            ),
            None
        );
    }
}
