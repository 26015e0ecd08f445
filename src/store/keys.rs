//! Every RocksDB key layout, in one place.
//!
//! Integers are big-endian so byte order is numeric order; a user id is length-prefixed
//! (one byte, ids are at most 64 bytes) when something follows it, so that "alice" and
//! "alice2" never share a prefix by accident. Decoders are checked: a key that does not
//! parse is reported, never trusted.

use crate::domain::ids::{AppId, ConvId, ConvKind, ConvRef, GroupId, Pair, UserId};

/// Column families. Names are part of the on-disk format.
pub const CF_META: &str = "default";
/// [app u32][user id] -> user record
pub const CF_USERS: &str = "users";
/// [app u32][len u8][user][stream u8][seq u64] -> stream entry (item id, tombstone, payload)
pub const CF_STREAM: &str = "stream";
/// [app u32][len u8][user][stream u8] -> head seq u64. Written by format 2 only: since
/// format 3 a stream's head is its last entry (`Store::stream_heads`). Still opened, since
/// directories written by format 2 have it.
pub const CF_HEADS: &str = "heads";
/// [app u32][len u8][target][subscriber] -> expiry ms u64
pub const CF_SUBS: &str = "subs";

/// [app u32][conv][seq u64] -> message record, where [conv] is `conv_bytes`: a P2P pair
/// (lo < hi) or a group
pub const CF_MSGS: &str = "msgs";
/// [app u32][server id u64] -> [conv][seq u64] (where a message lives)
pub const CF_MSG_IDS: &str = "msg_ids";
/// [app u32][len u8][user][kind u8][peer or group] -> the user's conversation entry (kind as
/// `ConvKind`: 1 P2P, 2 group)
pub const CF_USER_CONVS: &str = "user_convs";
/// [app u32][len u8][sender][tag u8][len u8][peer or group][client id] -> idempotency record
/// (tag as in `conv_bytes`)
pub const CF_IDEM: &str = "idem";
/// [app u32][len u8][user][server id u64][kind u8] -> [conv][seq]: a delivery (kind 0) or a
/// recall (kind 1) the user's shard has not recorded yet (replayed at start-up). Recalls write
/// them as they happen; deliveries get one only at start-up, when the delivery marks show
/// them unrecorded (or when a user shard could not read the user's state)
pub const CF_FANOUT: &str = "fanout";

/// [app u32][len u8][user][peer] -> the user's friend entry for peer
pub const CF_FRIENDS: &str = "friends";
/// [app u32][len u8][user][peer] -> the user's blacklist entry for peer
pub const CF_BLACKS: &str = "blacks";
/// [app u32][len u8][user][request id u64] -> a friend request the user received
pub const CF_FREQS: &str = "freqs";
/// [app u32][len u8][user][tag name] -> the members of one of the user's friend tags (the
/// column family keeps its first name)
pub const CF_FRIEND_TAGS: &str = "fgroups";

/// [app u32][len u8][group] -> group record
pub const CF_GROUPS: &str = "groups";
/// [app u32][len u8][group][user] -> member record
pub const CF_GROUP_MEMBERS: &str = "group_members";
/// [app u32][len u8][user][group] -> the user's entry for a group they belong to (the
/// user's side of the membership: their joined-groups list)
pub const CF_USER_GROUPS: &str = "user_groups";
/// [app u32][len u8][user][len u8][group][version u64] -> empty: the user's shard has yet to
/// bring its side of the membership up to that version of the group (replayed at start-up)
pub const CF_GROUP_SYNC: &str = "group_sync";
/// [app u32][len u8][group][request id u64] -> a join request
pub const CF_JOIN_REQS: &str = "join_reqs";
/// [app u32][seq u64] -> an after-hook event (JSON) not yet delivered to the app's backend;
/// the writer assigns `seq` in commit order (`store::events`).
pub const CF_HOOK_EVENTS: &str = "hook_events";

pub const ALL_CFS: [&str; 20] = [
    CF_META,
    CF_USERS,
    CF_STREAM,
    CF_HEADS,
    CF_SUBS,
    CF_MSGS,
    CF_MSG_IDS,
    CF_USER_CONVS,
    CF_IDEM,
    CF_FANOUT,
    CF_FRIENDS,
    CF_BLACKS,
    CF_FREQS,
    CF_FRIEND_TAGS,
    CF_GROUPS,
    CF_GROUP_MEMBERS,
    CF_USER_GROUPS,
    CF_GROUP_SYNC,
    CF_JOIN_REQS,
    CF_HOOK_EVENTS,
];

/// An after-hook event's key.
pub fn hook_event(app: AppId, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&app.0.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// (app, seq) of an after-hook event's key.
pub fn decode_hook_event(k: &[u8]) -> Option<(AppId, u64)> {
    let app = u32::from_be_bytes(k.get(..4)?.try_into().ok()?);
    let seq = u64::from_be_bytes(k.get(4..12)?.try_into().ok()?);
    (k.len() == 12).then_some((AppId(app), seq))
}

/// The on-disk format version, stored under this key in CF_META.
pub const META_FORMAT: &[u8] = b"format";
pub const FORMAT_VERSION: u32 = 5;

/// The tag before a conversation in keys and values: above 64, so it is never the length
/// byte of a user id, which is what format 4 had in its place (`store::upgrade` relies on it).
pub const CONV_P2P: u8 = 0x81;
pub const CONV_GROUP: u8 = 0x82;

/// CF_META: [floor u64][shards u8]: every delivery of a message with a server id up to the
/// floor is recorded in its user's stream or has a fan-out record; `shards` is the shard count
/// the delivery marks below were written with. Rewritten at every start.
pub const META_DELIVERY_FLOOR: &[u8] = b"delivery_floor";

/// CF_META: [b"dmark"][user shard u8][source shard u8] -> server id u64: the user shard has
/// recorded every delivery the source shard sent it up to this id (a delivery mark).
pub const DELIVERY_MARK_PREFIX: &[u8] = b"dmark";

pub fn delivery_mark(user_shard: u8, source_shard: u8) -> Vec<u8> {
    let mut k = DELIVERY_MARK_PREFIX.to_vec();
    k.push(user_shard);
    k.push(source_shard);
    k
}

pub fn decode_delivery_mark(key: &[u8]) -> Option<(u8, u8)> {
    match key.strip_prefix(DELIVERY_MARK_PREFIX)? {
        [t, s] => Some((*t, *s)),
        _ => None,
    }
}

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

fn tag(kind: ConvKind) -> u8 {
    match kind {
        ConvKind::P2P => CONV_P2P,
        ConvKind::Group => CONV_GROUP,
    }
}

fn push_id(k: &mut Vec<u8>, id: &str) {
    // Ids are 1..=64 bytes, so the length fits a byte.
    k.push(id.len() as u8);
    k.extend_from_slice(id.as_bytes());
}

/// `[tag][len][lo][len][hi]` for a P2P pair, `[tag][len][group]` for a group.
pub fn conv_bytes(c: &ConvId) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 * crate::domain::ids::MAX_USER_ID + 3);
    match c {
        ConvId::P2p(p) => {
            k.push(CONV_P2P);
            push_id(&mut k, p.lo.as_str());
            push_id(&mut k, p.hi.as_str());
        }
        ConvId::Group(g) => {
            k.push(CONV_GROUP);
            push_id(&mut k, g.as_str());
        }
    }
    k
}

/// Splits `[len][id]` off the front of `b`.
fn take_id(b: &[u8]) -> Option<(&str, &[u8])> {
    let len = *b.first()? as usize;
    Some((std::str::from_utf8(b.get(1..1 + len)?).ok()?, b.get(1 + len..)?))
}

/// Splits a `conv_bytes` off the front of `b`.
pub fn decode_conv(b: &[u8]) -> Option<(ConvId, &[u8])> {
    let (&t, rest) = b.split_first()?;
    match t {
        CONV_P2P => {
            let (lo, rest) = take_id(rest)?;
            let (hi, rest) = take_id(rest)?;
            let (lo, hi) = (UserId::new(lo)?, UserId::new(hi)?);
            // Stored pairs are canonical; anything else is not one of ours.
            (lo < hi).then_some((ConvId::P2p(Pair { lo, hi }), rest))
        }
        CONV_GROUP => {
            let (g, rest) = take_id(rest)?;
            Some((ConvId::Group(GroupId::new(g)?), rest))
        }
        _ => None,
    }
}

/// The prefix of all of a conversation's messages.
pub fn conv(app: AppId, c: &ConvId) -> Vec<u8> {
    let mut k = app.0.to_be_bytes().to_vec();
    k.extend_from_slice(&conv_bytes(c));
    k
}

pub fn msg(app: AppId, c: &ConvId, seq: u64) -> Vec<u8> {
    let mut k = conv(app, c);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn decode_msg_id(key: &[u8]) -> Option<(AppId, u64)> {
    match key {
        [a0, a1, a2, a3, id @ ..] if id.len() == 8 => {
            Some((AppId(u32::from_be_bytes([*a0, *a1, *a2, *a3])), u64::from_be_bytes(id.try_into().ok()?)))
        }
        _ => None,
    }
}

pub fn msg_id(app: AppId, server_id: u64) -> Vec<u8> {
    let mut k = app.0.to_be_bytes().to_vec();
    k.extend_from_slice(&server_id.to_be_bytes());
    k
}

/// `[conv][seq]`: where a message lives (the value of CF_MSG_IDS and CF_FANOUT entries, and
/// the payload of Messages-stream entries).
pub fn msg_location(c: &ConvId, seq: u64) -> Vec<u8> {
    let mut v = conv_bytes(c);
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

pub fn decode_msg_location(v: &[u8]) -> Option<(ConvId, u64)> {
    let (c, rest) = decode_conv(v)?;
    Some((c, u64::from_be_bytes(rest.try_into().ok()?)))
}

pub fn user_conv(app: AppId, user: &UserId, item: &[u8]) -> Vec<u8> {
    let mut k = app_user(item.len(), app, user);
    k.extend_from_slice(item);
    k
}

/// The prefix of everything one user owns in a per-user column (`user_convs`, `friends`,
/// `blacks`, `freqs`).
pub fn user_conv_prefix(app: AppId, user: &UserId) -> Vec<u8> {
    app_user(0, app, user)
}

/// `[app][len][user][peer]`: a per-user entry about another user.
pub fn user_peer(app: AppId, user: &UserId, peer: &UserId) -> Vec<u8> {
    let mut k = app_user(peer.as_str().len(), app, user);
    k.extend_from_slice(peer.as_str().as_bytes());
    k
}

pub fn user_named(app: AppId, user: &UserId, name: &str) -> Vec<u8> {
    let mut k = app_user(name.len(), app, user);
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn user_request(app: AppId, user: &UserId, id: u64) -> Vec<u8> {
    let mut k = app_user(8, app, user);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// A sender's client id in one conversation (`to` as the sender sees it).
pub fn idem(app: AppId, sender: &UserId, to: &ConvRef, client_id: &str) -> Vec<u8> {
    let mut k = app_user(2 + to.id_str().len() + client_id.len(), app, sender);
    k.push(tag(to.kind()));
    push_id(&mut k, to.id_str());
    k.extend_from_slice(client_id.as_bytes());
    k
}

pub fn fanout(app: AppId, user: &UserId, server_id: u64, kind: u8) -> Vec<u8> {
    let mut k = app_user(9, app, user);
    k.extend_from_slice(&server_id.to_be_bytes());
    k.push(kind);
    k
}

pub fn decode_fanout(key: &[u8]) -> Option<(AppId, UserId, u64, u8)> {
    let (app, user, rest) = decode_app_user(key)?;
    let (id, kind) = rest.split_at_checked(8)?;
    match kind {
        [k] => Some((app, user, u64::from_be_bytes(id.try_into().ok()?), *k)),
        _ => None,
    }
}

/// `[app][len][group]`: a group's key, and the prefix of everything stored under it.
pub fn group(app: AppId, g: &GroupId) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + g.as_str().len() + 72);
    k.extend_from_slice(&app.0.to_be_bytes());
    push_id(&mut k, g.as_str());
    k
}

/// The prefix of one app's groups.
pub fn app_prefix(app: AppId) -> Vec<u8> {
    app.0.to_be_bytes().to_vec()
}

pub fn decode_group(key: &[u8]) -> Option<(AppId, GroupId)> {
    let app = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let (g, rest) = take_id(key.get(4..)?)?;
    rest.is_empty().then_some(())?;
    Some((AppId(app), GroupId::new(g)?))
}

pub fn group_member(app: AppId, g: &GroupId, user: &UserId) -> Vec<u8> {
    let mut k = group(app, g);
    k.extend_from_slice(user.as_str().as_bytes());
    k
}

pub fn join_request(app: AppId, g: &GroupId, id: u64) -> Vec<u8> {
    let mut k = group(app, g);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn user_group(app: AppId, user: &UserId, g: &GroupId) -> Vec<u8> {
    let mut k = app_user(g.as_str().len(), app, user);
    k.extend_from_slice(g.as_str().as_bytes());
    k
}

pub fn group_sync(app: AppId, user: &UserId, g: &GroupId, version: u64) -> Vec<u8> {
    let mut k = app_user(9 + g.as_str().len(), app, user);
    push_id(&mut k, g.as_str());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

pub fn decode_group_sync(key: &[u8]) -> Option<(AppId, UserId, GroupId, u64)> {
    let (app, user, rest) = decode_app_user(key)?;
    let (g, rest) = take_id(rest)?;
    let version = u64::from_be_bytes(rest.try_into().ok()?);
    Some((app, user, GroupId::new(g)?, version))
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
        let keys: Vec<Vec<u8>> =
            [0u64, 1, 2, 255, 256, 65_535, 1 << 40, u64::MAX].iter().map(|&s| stream_entry(a, &u("x"), 3, s)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn apps_and_users_do_not_interleave() {
        // All of app 1 sorts before app 2; "alice"'s stream never contains "alice2"'s.
        assert!(stream_entry(AppId(1), &u("zzz"), 9, u64::MAX) < stream_entry(AppId(2), &u("a"), 0, 0));
        let p = stream_prefix(AppId(1), &u("alice"), 0);
        assert!(!stream_entry(AppId(1), &u("alice2"), 0, 5).starts_with(&p));
        assert!(stream_entry(AppId(1), &u("alice"), 0, 5).starts_with(&p));
        // Streams of one user sort by stream, then seq.
        assert!(stream_entry(AppId(1), &u("a"), 0, u64::MAX) < stream_entry(AppId(1), &u("a"), 1, 0));
        assert!(user(AppId(1), &u("zz")) < user(AppId(256), &u("a")));
    }

    fn pair(a: &str, b: &str) -> ConvId {
        ConvId::P2p(Pair::new(&u(a), &u(b)).unwrap())
    }

    #[test]
    fn messages_sort_by_seq_within_their_conversation() {
        let (ab, g) = (pair("a", "b"), ConvId::Group(GroupId::new("a").unwrap()));
        assert!(msg(AppId(1), &ab, 255) < msg(AppId(1), &ab, 256));
        // ("a","b") and ("ab", ...) never interleave thanks to the length prefixes, and a
        // group never shares a prefix with a pair.
        let p = conv(AppId(1), &ab);
        assert!(!msg(AppId(1), &pair("ab", "b"), 1).starts_with(&p));
        assert!(!msg(AppId(1), &g, 1).starts_with(&p) && !msg(AppId(1), &ab, 1).starts_with(&conv(AppId(1), &g)));
        for c in [&ab, &g] {
            assert_eq!(decode_msg_location(&msg_location(c, 42)), Some((c.clone(), 42)));
        }
        assert_eq!(decode_fanout(&fanout(AppId(3), &u("a"), 7, 1)), Some((AppId(3), u("a"), 7, 1)));
        assert_eq!(decode_fanout(&fanout(AppId(3), &u("a"), 7, 1)[..10]), None);
        // A client id never runs into the peer's bytes; a group's never meets a user's.
        let (b, bx) = (ConvRef::P2p(u("b")), ConvRef::P2p(u("bx")));
        assert_ne!(idem(AppId(1), &u("a"), &b, "x"), idem(AppId(1), &u("a"), &bx, ""));
        let gb = ConvRef::Group(GroupId::new("b").unwrap());
        assert_ne!(idem(AppId(1), &u("a"), &b, "x"), idem(AppId(1), &u("a"), &gb, "x"));
        // Garbage, a pair out of order, and format 4's untagged pair are refused.
        assert_eq!(decode_msg_location(&[5, b'x']), None);
        let mut swapped = vec![CONV_P2P, 1, b'b', 1, b'a'];
        swapped.extend_from_slice(&1u64.to_be_bytes());
        assert_eq!(decode_msg_location(&swapped), None);
        assert_eq!(decode_msg_location(&msg_location(&ab, 1)[1..]), None);
        assert!(msg_id(AppId(1), 1) < msg_id(AppId(1), 256));
    }

    #[test]
    fn group_keys_sort_and_never_share_a_prefix() {
        let (a, g, gx) = (AppId(1), GroupId::new("g").unwrap(), GroupId::new("gx").unwrap());
        // A group's members and requests sit under its key; "g" never contains "gx"'s.
        assert!(group_member(a, &g, &u("zz")).starts_with(&group(a, &g)));
        assert!(!group_member(a, &gx, &u("a")).starts_with(&group(a, &g)));
        assert!(join_request(a, &g, 255) < join_request(a, &g, 256));
        assert!(group(a, &GroupId::new("zzz").unwrap()) < group(AppId(2), &g));
        assert!(group(a, &g).starts_with(&app_prefix(a)));
        assert_eq!(decode_group(&group(a, &gx)), Some((a, gx.clone())));
        assert_eq!(decode_group(&group_member(a, &g, &u("x"))), None);
        // A user's groups never run into another user's; intents sort by version.
        assert!(!user_group(a, &u("ab"), &g).starts_with(&user_conv_prefix(a, &u("a"))));
        assert!(group_sync(a, &u("a"), &g, 255) < group_sync(a, &u("a"), &g, 256));
        assert_eq!(decode_group_sync(&group_sync(a, &u("a"), &gx, 9)), Some((a, u("a"), gx, 9)));
        assert_eq!(decode_group_sync(&group_sync(a, &u("a"), &g, 9)[..12]), None);
    }

    #[test]
    fn decoders_round_trip_and_refuse_garbage() {
        assert_eq!(decode_user(&user(AppId(7), &u("bob"))), Some((AppId(7), u("bob"))));
        assert_eq!(decode_sub(&sub(AppId(7), &u("t"), &u("s"))), Some((AppId(7), u("t"), u("s"))));
        let k = stream_entry(AppId(7), &u("bob"), 2, 99);
        assert_eq!(decode_stream_seq(&k, stream_prefix(AppId(7), &u("bob"), 2).len()), Some(99));
        assert_eq!(decode_user(&[0, 0]), None);
        assert_eq!(decode_sub(&[0, 0, 0, 1, 200, b'a']), None);
        assert_eq!(decode_stream_seq(&k[..k.len() - 1], stream_prefix(AppId(7), &u("bob"), 2).len()), None);
    }
}
