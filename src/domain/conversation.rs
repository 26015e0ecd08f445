//! Conversations as one user sees them: the entry in my list (peer, last message, read seq,
//! pinned, muted) and the rules that change it.

use std::sync::Arc;

use crate::domain::ids::{ConvKind, ConvRef, UserId};
use crate::domain::message::MessageRecord;
use crate::store::codec::{Corrupt, Reader, Writer};

/// My entry for one conversation. `unread = last_seq - read_seq - skipped`: sending advances
/// my own read seq, so the difference counts only the others' messages; in a group, recalled
/// messages after my read seq are not counted either (`skipped`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvView {
    pub conv: ConvRef,
    pub last_seq: u64,
    /// Shared with the message's other holders: a group message reaches every member's
    /// entry without a copy.
    pub last: Option<Arc<MessageRecord>>,
    pub read_seq: u64,
    pub pinned: bool,
    pub muted: bool,
    /// Removed from my list; a new message brings it back.
    pub hidden: bool,
    /// Where this entry sits in my Conversations stream.
    pub stream_seq: u64,
    /// The seqs of group messages after `read_seq` that are not unread: others' messages
    /// recalled (not stored: found when the list is loaded, then kept up in memory).
    pub skipped: Vec<u64>,
}

impl ConvView {
    pub fn new(conv: ConvRef) -> ConvView {
        ConvView {
            conv,
            last_seq: 0,
            last: None,
            read_seq: 0,
            pinned: false,
            muted: false,
            hidden: false,
            stream_seq: 0,
            skipped: Vec::new(),
        }
    }

    pub fn unread(&self) -> u64 {
        self.last_seq.saturating_sub(self.read_seq).saturating_sub(self.skipped.len() as u64)
    }

    /// The stored form. The last message is not stored here: it is the conversation's
    /// message at `last_seq`, read back when the list is loaded (`last` is then `None`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(48 + self.conv.id_str().len());
        w.u8(2)
            .u8(self.conv.kind() as u8)
            .str(self.conv.id_str())
            .u64(self.last_seq)
            .u64(self.read_seq)
            .bool(self.pinned)
            .bool(self.muted)
            .bool(self.hidden)
            .u64(self.stream_seq);
        w.finish()
    }

    /// The entry with its last message, for sync answers.
    pub fn encode_full(&self) -> Vec<u8> {
        let mut v = self.encode();
        let last = self.last.as_ref().map(|m| m.encode()).unwrap_or_default();
        let mut w = Writer::with_capacity(4 + last.len());
        w.bytes(&last);
        v.extend_from_slice(&w.finish());
        v
    }

    pub fn decode_full(bytes: &[u8]) -> Result<ConvView, Corrupt> {
        let base = ConvView::decode(bytes)?;
        let rest = bytes.get(base.encode().len()..).ok_or(Corrupt)?;
        let last = Reader::new(rest).bytes()?;
        let last = if last.is_empty() { None } else { Some(Arc::new(MessageRecord::decode(last)?)) };
        Ok(ConvView { last, ..base })
    }

    pub fn decode(bytes: &[u8]) -> Result<ConvView, Corrupt> {
        let mut r = Reader::new(bytes);
        if r.u8()? != 2 {
            return Err(Corrupt);
        }
        let kind = ConvKind::from_u8(r.u8()?).ok_or(Corrupt)?;
        let conv = ConvRef::parse(kind, r.str()?).ok_or(Corrupt)?;
        Ok(ConvView {
            conv,
            last_seq: r.u64()?,
            last: None,
            read_seq: r.u64()?,
            pinned: r.bool()?,
            muted: r.bool()?,
            hidden: r.bool()?,
            stream_seq: r.u64()?,
            skipped: Vec::new(),
        })
    }
}

/// A message of this conversation reached me (as sender or receiver): the new entry.
pub fn on_message(view: Option<&ConvView>, conv: ConvRef, msg: &Arc<MessageRecord>, me: &UserId) -> ConvView {
    let mut v = view.cloned().unwrap_or_else(|| ConvView::new(conv));
    apply_message(&mut v, msg, me);
    v
}

/// `on_message` in place (a group message, to each member's entry).
pub fn apply_message(v: &mut ConvView, msg: &Arc<MessageRecord>, me: &UserId) {
    if msg.seq >= v.last_seq {
        v.last_seq = msg.seq;
        v.last = Some(msg.clone());
    }
    if &msg.from == me {
        v.read_seq = v.read_seq.max(msg.seq);
    }
    let read = v.read_seq;
    v.skipped.retain(|s| *s > read);
    v.hidden = false;
}

/// A recalled message: the entry shows the tombstone if it was the last message.
pub fn on_recall(view: &ConvView, tomb: &Arc<MessageRecord>) -> Option<ConvView> {
    match &view.last {
        Some(m) if m.server_id == tomb.server_id => {
            let mut v = view.clone();
            v.last = Some(tomb.clone());
            Some(v)
        }
        _ => None,
    }
}

/// Most recalled seqs one entry keeps apart from its unread count.
pub const MAX_SKIPPED: usize = 256;

/// A group message recalled, seen by `me`: besides `on_recall`, one unread fewer when it was
/// someone else's message after my read seq. (Group recalls are never replayed, so each is
/// counted once; a one-to-one recall can be, and leaves unread as it is.)
pub fn on_group_recall(v: &mut ConvView, tomb: &Arc<MessageRecord>, me: &UserId) {
    if let Some(n) = on_recall(v, tomb) {
        *v = n;
    }
    // Bounded: past `MAX_SKIPPED` recalls in a row unread, the rest count as unread.
    let fresh = !v.skipped.contains(&tomb.seq) && v.skipped.len() < MAX_SKIPPED;
    if &tomb.from != me && tomb.seq > v.read_seq && tomb.seq <= v.last_seq && fresh {
        v.skipped.push(tomb.seq);
    }
}

/// "Read up to `seq`": never backwards, and a `seq` past the last message is clamped to it
/// (not refused: "read everything" may name any larger seq, and a later message stays
/// unread). `None` = no change.
pub fn read(view: &ConvView, seq: u64) -> Option<ConvView> {
    let to = seq.min(view.last_seq);
    if to <= view.read_seq {
        return None;
    }
    let mut v = view.clone();
    v.read_seq = to;
    v.skipped.retain(|s| *s > to);
    Some(v)
}

/// Pin / mute. `None` = no change.
pub fn update(view: &ConvView, pinned: Option<bool>, muted: Option<bool>) -> Option<ConvView> {
    let mut v = view.clone();
    if let Some(p) = pinned {
        v.pinned = p;
    }
    if let Some(m) = muted {
        v.muted = m;
    }
    (v != *view).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn m(seq: u64, from: &str, to: &str) -> Arc<MessageRecord> {
        Arc::new(MessageRecord {
            server_id: seq * 10,
            client_id: format!("c{seq}"),
            from: u(from),
            to: ConvRef::P2p(u(to)),
            seq,
            msg_type: 1,
            body: vec![1, 2],
            ts_ms: seq,
            recalled: false,
        })
    }

    #[test]
    fn unread_read_and_own_messages() {
        let me = u("bob");
        let c = ConvRef::P2p(u("alice"));
        let v = on_message(None, c.clone(), &m(1, "alice", "bob"), &me);
        let v = on_message(Some(&v), c.clone(), &m(2, "alice", "bob"), &me);
        assert_eq!((v.last_seq, v.unread()), (2, 2));
        let v = on_message(Some(&v), c.clone(), &m(3, "bob", "alice"), &me);
        assert_eq!(v.unread(), 0, "my own message reads the conversation");
        let v = on_message(Some(&v), c.clone(), &m(4, "alice", "bob"), &me);
        assert_eq!(v.unread(), 1);
        assert!(read(&v, 3).is_none(), "never backwards");
        let r = read(&v, 99).unwrap();
        assert_eq!((r.read_seq, r.unread()), (4, 0), "never past the last message");
        assert_eq!(read(&v, u64::MAX).map(|r| r.read_seq), Some(4), "clamped, not refused");
        assert!(read(&r, u64::MAX).is_none(), "clamped to where it already is: no change");
        // An older message arriving late does not replace the last one.
        let late = on_message(Some(&r), c, &m(2, "alice", "bob"), &me);
        assert_eq!(late.last.as_ref().unwrap().seq, 4);
    }

    #[test]
    fn recalled_group_messages_are_not_unread() {
        let (me, g) = (u("bob"), ConvRef::Group(crate::domain::ids::GroupId::new("g").unwrap()));
        let gm = |seq: u64, from: &str| {
            let mut x = (*m(seq, from, "x")).clone();
            x.to = g.clone();
            Arc::new(x)
        };
        let mut v = ConvView::new(g.clone());
        for s in 1..=4 {
            apply_message(&mut v, &gm(s, "alice"), &me);
        }
        assert_eq!(v.unread(), 4);
        let tomb = |seq: u64, from: &str| {
            let mut t = (*gm(seq, from)).clone();
            t.recalled = true;
            Arc::new(t)
        };
        on_group_recall(&mut v, &tomb(2, "alice"), &me);
        assert_eq!(v.unread(), 3, "a recalled message is not unread");
        on_group_recall(&mut v, &tomb(4, "alice"), &me);
        assert!(v.last.as_ref().unwrap().recalled, "the last message shows the tombstone");
        assert_eq!(v.unread(), 2);
        let r = read(&v, 3).unwrap();
        assert_eq!((r.unread(), &r.skipped[..]), (0, &[4][..]), "4 is recalled: nothing unread");
        let r = read(&v, 1).unwrap();
        assert_eq!(r.unread(), 1, "3 is unread, 2 and 4 were recalled");
        let all = read(&v, 4).unwrap();
        assert_eq!((all.unread(), all.skipped.len()), (0, 0));
        let mut again = all.clone();
        on_group_recall(&mut again, &tomb(4, "alice"), &me);
        assert_eq!(again.unread(), 0, "a recall of what I read changes nothing");
        // My own message: sending read everything before it, its recall changes nothing.
        let mut w = ConvView::new(g.clone());
        apply_message(&mut w, &gm(1, "alice"), &me);
        apply_message(&mut w, &gm(2, "bob"), &me);
        apply_message(&mut w, &gm(3, "alice"), &me);
        on_group_recall(&mut w, &tomb(2, "bob"), &me);
        assert_eq!(w.unread(), 1);
    }

    #[test]
    fn hidden_comes_back_and_encoding_round_trips() {
        let me = u("bob");
        let c = ConvRef::P2p(u("alice"));
        let mut v = on_message(None, c.clone(), &m(1, "alice", "bob"), &me);
        v.hidden = true;
        v.pinned = true;
        v.stream_seq = 7;
        let stored = ConvView::decode(&v.encode()).unwrap();
        assert_eq!(stored, ConvView { last: None, ..v.clone() }, "the last message is not stored with the entry");
        assert_eq!(ConvView::decode_full(&v.encode_full()), Ok(v.clone()));
        let back = on_message(Some(&v), c.clone(), &m(2, "alice", "bob"), &me);
        assert!(!back.hidden && back.pinned);
        assert!(update(&back, Some(true), None).is_none());
        assert!(update(&back, None, Some(true)).unwrap().muted);
    }
}
