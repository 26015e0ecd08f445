//! Users: the profile record and the rules of import, delete, read and modify.

use crate::domain::ids::UserId;
use crate::domain::wire::known;
use crate::domain::DomainError;
use crate::protocol::wire::{FriendAddPolicy, Gender, UserField};
use crate::store::codec::{Corrupt, Reader, Writer};

/// Size limits of profile fields, in bytes.
pub const MAX_NICKNAME: usize = 128;
pub const MAX_URL: usize = 1024;
pub const MAX_SHORT: usize = 64;
pub const MAX_TEXT: usize = 512;
pub const MAX_EXTRA: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub nickname: String,
    pub avatar: String,
    pub gender: Gender,
    pub birthday: String,
    pub location: String,
    pub signature: String,
    pub friend_add_policy: FriendAddPolicy,
    /// May not send messages.
    pub silent: bool,
    /// Account disabled: no login, no sending.
    pub forbidden: bool,
    pub extra: String,
    pub create_ms: u64,
    pub update_ms: u64,
    /// Soft-deleted: kept so ids are never reused and history stays attributable.
    pub deleted: bool,
}

impl UserRecord {
    pub fn new(id: UserId) -> UserRecord {
        UserRecord {
            id,
            nickname: String::new(),
            avatar: String::new(),
            gender: Gender::Unknown,
            birthday: String::new(),
            location: String::new(),
            signature: String::new(),
            friend_add_policy: FriendAddPolicy::Anyone,
            silent: false,
            forbidden: false,
            extra: String::new(),
            create_ms: 0,
            update_ms: 0,
            deleted: false,
        }
    }

    const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.nickname.len() + self.avatar.len() + self.extra.len());
        w.u8(Self::VERSION)
            .str(&self.nickname)
            .str(&self.avatar)
            .u8(self.gender.0)
            .str(&self.birthday)
            .str(&self.location)
            .str(&self.signature)
            .u8(self.friend_add_policy.0)
            .bool(self.silent)
            .bool(self.forbidden)
            .str(&self.extra)
            .u64(self.create_ms)
            .u64(self.update_ms)
            .bool(self.deleted);
        w.finish()
    }

    pub fn decode(id: UserId, bytes: &[u8]) -> Result<UserRecord, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != Self::VERSION {
            return Err(Corrupt);
        }
        Ok(UserRecord {
            id,
            nickname: r.str()?.to_owned(),
            avatar: r.str()?.to_owned(),
            gender: Gender(r.u8()?),
            birthday: r.str()?.to_owned(),
            location: r.str()?.to_owned(),
            signature: r.str()?.to_owned(),
            friend_add_policy: FriendAddPolicy(r.u8()?),
            silent: r.bool()?,
            forbidden: r.bool()?,
            extra: r.str()?.to_owned(),
            create_ms: r.u64()?,
            update_ms: r.u64()?,
            deleted: r.bool()?,
        })
    }
}

fn check_len(s: &str, max: usize, what: &'static str) -> Result<(), DomainError> {
    if s.len() > max {
        return Err(DomainError::InvalidArgument(what));
    }
    Ok(())
}

fn check_enums(gender: Gender, policy: FriendAddPolicy) -> Result<(), DomainError> {
    known(gender, "gender")?;
    known(policy, "friend_add_policy")?;
    Ok(())
}

/// Checks a profile offered for import.
pub fn validate_profile(u: &UserRecord) -> Result<(), DomainError> {
    check_len(&u.nickname, MAX_NICKNAME, "nickname")?;
    check_len(&u.avatar, MAX_URL, "avatar")?;
    check_len(&u.birthday, MAX_SHORT, "birthday")?;
    check_len(&u.location, MAX_TEXT, "location")?;
    check_len(&u.signature, MAX_TEXT, "signature")?;
    check_len(&u.extra, MAX_EXTRA, "extra")?;
    check_enums(u.gender, u.friend_add_policy)
}

/// importUser for one user: the record to store, or why not. A deleted user's id is not
/// reused.
pub fn import(existing: Option<&UserRecord>, mut offered: UserRecord, now_ms: u64) -> Result<UserRecord, DomainError> {
    validate_profile(&offered)?;
    match existing {
        Some(u) if u.deleted => Err(DomainError::UserDeleted),
        Some(_) => Err(DomainError::UserAlreadyExists),
        None => {
            offered.create_ms = now_ms;
            offered.update_ms = now_ms;
            offered.deleted = false;
            Ok(offered)
        }
    }
}

/// The target of an operation must exist and not be deleted.
pub fn live(u: Option<&UserRecord>) -> Result<&UserRecord, DomainError> {
    match u {
        None => Err(DomainError::UserNotFound),
        Some(u) if u.deleted => Err(DomainError::UserDeleted),
        Some(u) => Ok(u),
    }
}

/// A device may log in as this user.
pub fn check_login(u: Option<&UserRecord>) -> Result<(), DomainError> {
    let u = live(u)?;
    if u.forbidden {
        return Err(DomainError::UserForbidden);
    }
    Ok(())
}

/// deleteUser for one user: the updated record.
pub fn delete(existing: Option<&UserRecord>, now_ms: u64) -> Result<UserRecord, DomainError> {
    let mut u = live(existing)?.clone();
    u.deleted = true;
    u.update_ms = now_ms;
    Ok(u)
}

/// A modifyUserInfo request: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChange {
    pub nickname: Option<String>,
    pub avatar: Option<String>,
    pub gender: Option<Gender>,
    pub birthday: Option<String>,
    pub location: Option<String>,
    pub signature: Option<String>,
    pub friend_add_policy: Option<FriendAddPolicy>,
    pub extra: Option<String>,
    pub silent: Option<bool>,
    pub forbidden: Option<bool>,
}

impl UserChange {
    /// Fields only an administrator may change.
    pub fn touches_admin_fields(&self) -> bool {
        self.silent.is_some() || self.forbidden.is_some()
    }

    pub fn is_empty(&self) -> bool {
        *self == UserChange::default()
    }
}

/// modifyUserInfo: the updated record. `by_admin` allows the admin-only flags.
pub fn modify(
    existing: Option<&UserRecord>,
    change: &UserChange,
    by_admin: bool,
    now_ms: u64,
) -> Result<UserRecord, DomainError> {
    let mut u = live(existing)?.clone();
    if change.touches_admin_fields() && !by_admin {
        return Err(DomainError::PermissionDenied);
    }
    if change.is_empty() {
        return Err(DomainError::MissingField("nothing to change"));
    }
    fn set<T: Clone>(dst: &mut T, v: &Option<T>) {
        if let Some(v) = v {
            *dst = v.clone();
        }
    }
    set(&mut u.nickname, &change.nickname);
    set(&mut u.avatar, &change.avatar);
    set(&mut u.gender, &change.gender);
    set(&mut u.birthday, &change.birthday);
    set(&mut u.location, &change.location);
    set(&mut u.signature, &change.signature);
    set(&mut u.friend_add_policy, &change.friend_add_policy);
    set(&mut u.extra, &change.extra);
    set(&mut u.silent, &change.silent);
    set(&mut u.forbidden, &change.forbidden);
    validate_profile(&u)?;
    u.update_ms = now_ms;
    Ok(u)
}

/// getUserInfo field selection: which fields to return. Empty = all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMask(u16);

impl FieldMask {
    pub const ALL: FieldMask = FieldMask(u16::MAX);

    pub fn from_fields(fields: &[UserField]) -> Result<FieldMask, DomainError> {
        if fields.is_empty() {
            return Ok(FieldMask::ALL);
        }
        let mut m = 0u16;
        for f in fields {
            known(*f, "fields")?;
            m |= 1 << f.0;
        }
        Ok(FieldMask(m))
    }

    pub fn has(self, f: UserField) -> bool {
        self.0 & (1 << f.0) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> UserRecord {
        let mut u = UserRecord::new(UserId::new(id).unwrap());
        u.nickname = "Alice".into();
        u.extra = r#"{"k":1}"#.into();
        u.gender = Gender::Female;
        u
    }

    #[test]
    fn encode_round_trip_and_corruption() {
        let mut u = rec("a");
        u.silent = true;
        u.create_ms = 42;
        let bytes = u.encode();
        assert_eq!(UserRecord::decode(u.id.clone(), &bytes), Ok(u.clone()));
        assert!(UserRecord::decode(u.id.clone(), &bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert!(UserRecord::decode(u.id.clone(), &bad).is_err());
    }

    #[test]
    fn import_rules() {
        let u = rec("a");
        let stored = import(None, u.clone(), 5).unwrap();
        assert_eq!((stored.create_ms, stored.update_ms), (5, 5));
        assert_eq!(import(Some(&stored), u.clone(), 6), Err(DomainError::UserAlreadyExists));
        let gone = delete(Some(&stored), 7).unwrap();
        assert_eq!(import(Some(&gone), u.clone(), 8), Err(DomainError::UserDeleted));
        let mut long = u.clone();
        long.nickname = "x".repeat(MAX_NICKNAME + 1);
        assert_eq!(import(None, long, 1), Err(DomainError::InvalidArgument("nickname")));
        let mut odd = u;
        odd.gender = Gender(77);
        assert_eq!(import(None, odd, 1), Err(DomainError::InvalidArgument("gender")));
    }

    #[test]
    fn modify_rules() {
        let u = import(None, rec("a"), 1).unwrap();
        let c = UserChange { nickname: Some("A2".into()), ..Default::default() };
        let m = modify(Some(&u), &c, false, 9).unwrap();
        assert_eq!((m.nickname.as_str(), m.extra.as_str(), m.update_ms), ("A2", u.extra.as_str(), 9));
        let admin_only = UserChange { silent: Some(true), ..Default::default() };
        assert_eq!(modify(Some(&u), &admin_only, false, 9), Err(DomainError::PermissionDenied));
        assert!(modify(Some(&u), &admin_only, true, 9).unwrap().silent);
        assert_eq!(modify(None, &c, true, 9), Err(DomainError::UserNotFound));
        assert!(matches!(modify(Some(&u), &UserChange::default(), true, 9), Err(DomainError::MissingField(_))));
    }

    #[test]
    fn login_and_masks() {
        let mut u = import(None, rec("a"), 1).unwrap();
        assert_eq!(check_login(Some(&u)), Ok(()));
        u.forbidden = true;
        assert_eq!(check_login(Some(&u)), Err(DomainError::UserForbidden));
        assert_eq!(check_login(None), Err(DomainError::UserNotFound));
        let m = FieldMask::from_fields(&[UserField::Nickname, UserField::Extra]).unwrap();
        assert!(m.has(UserField::Nickname) && m.has(UserField::Extra) && !m.has(UserField::Avatar));
        assert!(FieldMask::from_fields(&[]).unwrap().has(UserField::Times));
        assert!(FieldMask::from_fields(&[UserField(200)]).is_err());
    }
}

/// The send-relevant facts of a user, which the shard owning a conversation checks a send
/// with (`check_sender`, `check_receiver`) without asking the users' shards. The stored
/// record is their source of truth: shards cache them and drop a user's copy when the owner
/// reports a durable change (`shard::cmd::FactsChanged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserFacts {
    pub deleted: bool,
    pub forbidden: bool,
    pub silent: bool,
}

impl UserFacts {
    pub fn of(rec: &UserRecord) -> UserFacts {
        UserFacts { deleted: rec.deleted, forbidden: rec.forbidden, silent: rec.silent }
    }
}

/// Whether a change from `old` to `new` moves the user's facts (so every shard must hear of it).
pub fn facts_moved(old: Option<&UserRecord>, new: &UserRecord) -> bool {
    old.map(UserFacts::of) != Some(UserFacts::of(new))
}

/// May this user send a message?
pub fn check_sender(f: Option<&UserFacts>) -> Result<(), DomainError> {
    match f {
        None => Err(DomainError::UserNotFound),
        Some(f) if f.deleted => Err(DomainError::UserDeleted),
        Some(f) if f.forbidden => Err(DomainError::UserForbidden),
        Some(f) if f.silent => Err(DomainError::UserSilenced),
        Some(_) => Ok(()),
    }
}

/// May this user receive a message?
pub fn check_receiver(f: Option<&UserFacts>) -> Result<(), DomainError> {
    match f {
        None => Err(DomainError::UserNotFound),
        Some(f) if f.deleted => Err(DomainError::UserDeleted),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod facts_tests {
    use super::*;

    #[test]
    fn send_checks() {
        let ok = UserFacts::default();
        assert_eq!(check_sender(Some(&ok)), Ok(()));
        assert_eq!(check_sender(None), Err(DomainError::UserNotFound));
        assert_eq!(check_sender(Some(&UserFacts { silent: true, ..ok })), Err(DomainError::UserSilenced));
        assert_eq!(check_sender(Some(&UserFacts { forbidden: true, ..ok })), Err(DomainError::UserForbidden));
        assert_eq!(check_sender(Some(&UserFacts { deleted: true, ..ok })), Err(DomainError::UserDeleted));
        assert_eq!(check_receiver(Some(&UserFacts { silent: true, forbidden: true, ..ok })), Ok(()));
        assert_eq!(check_receiver(Some(&UserFacts { deleted: true, ..ok })), Err(DomainError::UserDeleted));
    }

    #[test]
    fn facts_follow_the_record() {
        let mut u = UserRecord::new(UserId::new("a").unwrap());
        assert!(facts_moved(None, &u), "a new user's facts are news");
        let before = u.clone();
        u.nickname = "A".into();
        assert!(!facts_moved(Some(&before), &u), "a profile change is not");
        u.silent = true;
        assert_eq!(UserFacts::of(&u), UserFacts { silent: true, ..Default::default() });
        assert!(facts_moved(Some(&before), &u));
        let back = u.clone();
        u.silent = false;
        u.deleted = true;
        assert!(facts_moved(Some(&back), &u));
    }
}
