//! How big an answer may get: every page and batch answer is cut by its items' size on the
//! wire as well as by count, so no server frame passes `MAX_SERVER_FRAME`.
//!
//! A list is cut after the last item that fits within `PAGE_BYTES` (one item always goes, so
//! a page is never empty while items are left), and the answer says `more = true`: the client
//! asks again from where this page ended. `PAGE_BYTES` is half the frame bound, which leaves
//! room for one more item at its largest (a 16 KiB message) and for the estimate being off.

use crate::domain::conversation::ConvView;
use crate::domain::friend::FriendEntry;
use crate::domain::message::MessageRecord;
use crate::domain::sync::Change;
use crate::domain::user::UserRecord;

pub use crate::protocol::MAX_SERVER_FRAME;

/// The estimated wire bytes a page's items may take.
pub const PAGE_BYTES: usize = MAX_SERVER_FRAME / 2;

/// A table's fixed cost on the wire, roughly: vtable, offsets, scalars, string headers.
pub const TABLE: usize = 96;

/// What an item costs on the wire, estimated from above for the strings and bytes it holds.
pub trait WireSize {
    fn wire_size(&self) -> usize;
}

/// Keeps the leading items that fit within `budget` bytes (at least one); returns whether
/// any were cut.
pub fn cut<T: WireSize>(items: &mut Vec<T>, budget: usize) -> bool {
    let mut used = 0usize;
    let keep = items
        .iter()
        .position(|it| {
            used = used.saturating_add(it.wire_size());
            used > budget
        })
        .map_or(items.len(), |i| i.max(1));
    let cut = keep < items.len();
    items.truncate(keep);
    cut
}

impl WireSize for MessageRecord {
    fn wire_size(&self) -> usize {
        TABLE * 2 + self.body.len() + self.client_id.len() + self.from.as_str().len() * 2 + self.to.id_str().len()
    }
}

impl WireSize for ConvView {
    fn wire_size(&self) -> usize {
        TABLE * 2 + self.conv.id_str().len() + self.last.as_ref().map_or(0, |m| m.wire_size())
    }
}

impl WireSize for FriendEntry {
    fn wire_size(&self) -> usize {
        let i = &self.info;
        TABLE + self.peer.as_str().len() + i.remark.len() + i.add_source.len() + i.add_wording.len() + i.extra.len()
    }
}

impl WireSize for UserRecord {
    fn wire_size(&self) -> usize {
        TABLE
            + self.id.as_str().len()
            + self.nickname.len()
            + self.avatar.len()
            + self.birthday.len()
            + self.location.len()
            + self.signature.len()
            + self.extra.len()
    }
}

/// A sync change: its item id and its stored record, which the wire table mirrors.
impl WireSize for Change {
    fn wire_size(&self) -> usize {
        TABLE * 2 + self.item.wire_len() + self.payload.as_ref().map_or(0, |p| p.len() * 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sized(usize);
    impl WireSize for Sized {
        fn wire_size(&self) -> usize {
            self.0
        }
    }

    fn sizes(v: &[Sized]) -> Vec<usize> {
        v.iter().map(|s| s.0).collect()
    }

    #[test]
    fn keeps_what_fits_and_says_it_cut() {
        let mut v = vec![Sized(40), Sized(40), Sized(40)];
        assert!(cut(&mut v, 100));
        assert_eq!(sizes(&v), [40, 40]);
        let mut v = vec![Sized(40), Sized(60)];
        assert!(!cut(&mut v, 100), "exactly the budget fits");
        assert_eq!(sizes(&v), [40, 60]);
    }

    #[test]
    fn one_item_always_goes_and_an_empty_list_stays_empty() {
        let mut v = vec![Sized(500), Sized(1)];
        assert!(cut(&mut v, 100));
        assert_eq!(sizes(&v), [500]);
        let mut v: Vec<Sized> = vec![];
        assert!(!cut(&mut v, 100));
    }

    #[test]
    fn a_page_at_the_budget_plus_its_largest_item_stays_under_the_frame_bound() {
        // The largest item: a message with the largest body and ids.
        let m = MessageRecord {
            server_id: 1,
            client_id: "c".repeat(crate::domain::message::MAX_CLIENT_ID),
            from: crate::domain::ids::UserId::new(&"f".repeat(crate::domain::ids::MAX_USER_ID)).unwrap(),
            to: crate::domain::ids::ConvRef::P2p(
                crate::domain::ids::UserId::new(&"t".repeat(crate::domain::ids::MAX_USER_ID)).unwrap(),
            ),
            seq: 1,
            msg_type: 1,
            body: vec![0; 16 * 1024],
            ts_ms: 1,
            recalled: false,
        };
        assert!(PAGE_BYTES + m.wire_size() * 2 < MAX_SERVER_FRAME);
    }
}
