//! The load generator's hot path, kept lean so that it measures the server and not itself:
//! frames built once as templates and patched in place per message (no builder, no
//! allocation), and a reader that parses whole frames straight out of one read buffer (no
//! per-frame buffer, many frames per `read`).

use std::ops::Range;

use anyhow::bail;
use bytes::{Buf, BytesMut};
use imserver::protocol::{self, wire, LEN_PREFIX};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::conn::Reader;

/// A byte pattern that occurs once in a template: where a value is patched in.
const ID_MARK: u64 = 0x5ae1_d00d_f00d_1a7e;
const SERVER_ID_MARK: u64 = 0x5e1d_beef_0bad_cafe;
const SEQ_MARK: u64 = 0x5e9a_feed_c0de_7357;
const TIME_MARK: u64 = 0x71de_dead_abcd_0123;
/// A client id: `k` and the send time, each as 16 hex digits, with a `:` between.
pub const CLIENT_ID_LEN: usize = 33;
const CLIENT_ID_MARK: &[u8; CLIENT_ID_LEN] = b"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~";

/// Where `pat` is in `frame`; exactly once, or the template is unusable.
fn find_once(frame: &[u8], pat: &[u8]) -> anyhow::Result<usize> {
    let mut at = frame.windows(pat.len()).enumerate().filter(|(_, w)| *w == pat).map(|(i, _)| i);
    match (at.next(), at.next()) {
        (Some(i), None) => Ok(i),
        _ => bail!("a frame template's marker is not there exactly once"),
    }
}

fn put_hex(out: &mut [u8], v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate().take(16) {
        *b = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// The send time in a client id made by `SendTemplate::put`.
pub fn client_id_time(cid: &str) -> Option<u64> {
    let b = cid.as_bytes();
    if b.len() != CLIENT_ID_LEN || b[16] != b':' {
        return None;
    }
    u64::from_str_radix(&cid[17..], 16).ok()
}

/// A send request to one user or group, patched per message: request id, client id (`k` and
/// the send time) and the body's first 8 bytes (the send time, read by the receiver).
pub struct SendTemplate {
    frame: Vec<u8>,
    id: usize,
    cid: usize,
    time: usize,
}

impl SendTemplate {
    pub fn new(group: bool, to: &str, payload: usize) -> anyhow::Result<SendTemplate> {
        let mut body = vec![0u8; payload.max(8)];
        body[..8].copy_from_slice(&TIME_MARK.to_le_bytes());
        let cid = std::str::from_utf8(CLIENT_ID_MARK)?;
        let frame = crate::conn::send_to(ID_MARK, (group, to), cid, &body).to_vec();
        Ok(SendTemplate {
            id: find_once(&frame, &ID_MARK.to_le_bytes())?,
            cid: find_once(&frame, CLIENT_ID_MARK)?,
            time: find_once(&frame, &TIME_MARK.to_le_bytes())?,
            frame,
        })
    }

    /// Appends the send of message `k`, sent (or scheduled) at `t_ns`, to `out`.
    pub fn put(&self, out: &mut BytesMut, k: u64, t_ns: u64) {
        let at = out.len();
        out.extend_from_slice(&self.frame);
        let f = &mut out[at..];
        f[self.id..self.id + 8].copy_from_slice(&k.to_le_bytes());
        put_hex(&mut f[self.cid..self.cid + 16], k);
        f[self.cid + 16] = b':';
        put_hex(&mut f[self.cid + 17..self.cid + CLIENT_ID_LEN], t_ns);
        f[self.time..self.time + 8].copy_from_slice(&t_ns.to_le_bytes());
    }
}

/// A receive-ack for one conversation (a P2P peer, or a group), patched per ack.
pub struct AckTemplate {
    frame: Vec<u8>,
    id: usize,
    server_id: Option<usize>,
    seq: usize,
}

impl AckTemplate {
    pub fn new(group: bool, conv: &str) -> anyhow::Result<AckTemplate> {
        let frame = if group {
            crate::conn::group_receive_ack(ID_MARK, conv, SEQ_MARK)
        } else {
            crate::conn::receive_ack(ID_MARK, conv, SERVER_ID_MARK, SEQ_MARK)
        }
        .to_vec();
        Ok(AckTemplate {
            id: find_once(&frame, &ID_MARK.to_le_bytes())?,
            server_id: if group { None } else { Some(find_once(&frame, &SERVER_ID_MARK.to_le_bytes())?) },
            seq: find_once(&frame, &SEQ_MARK.to_le_bytes())?,
            frame,
        })
    }

    pub fn put(&self, out: &mut BytesMut, id: u64, server_id: u64, seq: u64) {
        let at = out.len();
        out.extend_from_slice(&self.frame);
        let f = &mut out[at..];
        f[self.id..self.id + 8].copy_from_slice(&id.to_le_bytes());
        if let Some(s) = self.server_id {
            f[s..s + 8].copy_from_slice(&server_id.to_le_bytes());
        }
        f[self.seq..self.seq + 8].copy_from_slice(&seq.to_le_bytes());
    }
}

/// Whole server frames out of one growing read buffer: `read` takes what the socket has (many
/// frames at a time), `pop` hands out each whole frame's range in it, and the next `read`
/// drops what was handed out.
pub struct FrameReader {
    rd: Box<dyn AsyncRead + Send + Unpin>,
    buf: BytesMut,
    pos: usize,
}

impl FrameReader {
    /// Takes over a login's reader, with whatever it had buffered.
    pub fn new(r: Reader) -> FrameReader {
        let parts = r.into_parts();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(&parts.read_buf);
        FrameReader { rd: parts.io, buf, pos: 0 }
    }

    /// Reads once (waiting for the socket); `Ok(false)` at the end of the stream.
    pub async fn read(&mut self) -> anyhow::Result<bool> {
        if self.pos > 0 {
            self.buf.advance(self.pos);
            self.pos = 0;
        }
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        Ok(self.rd.read_buf(&mut self.buf).await? > 0)
    }

    /// The next whole frame (the FlatBuffer after its length prefix) already read.
    pub fn pop(&mut self) -> anyhow::Result<Option<Range<usize>>> {
        let rest = &self.buf[self.pos..];
        if rest.len() < LEN_PREFIX {
            return Ok(None);
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if n > protocol::MAX_SERVER_FRAME {
            bail!("a server frame of {n} bytes");
        }
        if rest.len() < LEN_PREFIX + n {
            return Ok(None);
        }
        let r = self.pos + LEN_PREFIX..self.pos + LEN_PREFIX + n;
        self.pos = r.end;
        Ok(Some(r))
    }

    pub fn frame(&self, r: Range<usize>) -> &[u8] {
        &self.buf[r]
    }
}

/// A table in a FlatBuffer read field by field, each read bounds-checked: a frame that is
/// not what it should be gives `None`, never a panic or a wild read. The load connections
/// read a handful of fields of each frame this way instead of verifying all of it (the
/// verifier was a quarter of imload's CPU); the correctness tests verify every frame.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

impl<'a> Table<'a> {
    pub fn root(buf: &'a [u8]) -> Option<Table<'a>> {
        Some(Table { buf, pos: u32_at(buf, 0)? as usize })
    }

    /// Where the field at vtable offset `vt` (flatc's `VT_*` constants) is, if present.
    fn field(&self, vt: u16) -> Option<usize> {
        let soff = u32_at(self.buf, self.pos)? as i32 as i64;
        let vtable = usize::try_from(self.pos as i64 - soff).ok()?;
        if vt >= u16_at(self.buf, vtable)? {
            return None;
        }
        match u16_at(self.buf, vtable + vt as usize)? {
            0 => None,
            o => Some(self.pos + o as usize),
        }
    }

    pub fn u8(&self, vt: u16) -> u8 {
        self.field(vt).and_then(|at| self.buf.get(at).copied()).unwrap_or(0)
    }

    pub fn u64(&self, vt: u16) -> u64 {
        self.field(vt).and_then(|at| u64_at(self.buf, at)).unwrap_or(0)
    }

    pub fn table(&self, vt: u16) -> Option<Table<'a>> {
        let at = self.field(vt)?;
        Some(Table { buf: self.buf, pos: at.checked_add(u32_at(self.buf, at)? as usize)? })
    }

    /// A byte vector's or a string's bytes.
    pub fn bytes(&self, vt: u16) -> Option<&'a [u8]> {
        let at = self.field(vt)?;
        let v = at.checked_add(u32_at(self.buf, at)? as usize)?;
        let len = u32_at(self.buf, v)? as usize;
        self.buf.get(v + 4..v.checked_add(4 + len)?)
    }

    pub fn str(&self, vt: u16) -> Option<&'a str> {
        std::str::from_utf8(self.bytes(vt)?).ok()
    }
}

/// A pushed message, as much of it as the load scenarios read.
pub struct Pushed<'a>(Table<'a>);

impl<'a> Pushed<'a> {
    pub fn seq(&self) -> u64 {
        self.0.u64(wire::Message::VT_SEQ)
    }
    pub fn server_id(&self) -> u64 {
        self.0.u64(wire::Message::VT_SERVER_ID)
    }
    /// The send time imload wrote into the body's first 8 bytes.
    pub fn sent_ns(&self) -> Option<u64> {
        let b = self.0.bytes(wire::Message::VT_BODY)?;
        Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
    }
    pub fn sender(&self) -> Option<&'a str> {
        self.0.str(wire::Message::VT_FROM_USER)
    }
    pub fn to(&self) -> Option<&'a str> {
        self.0.str(wire::Message::VT_TO)
    }
}

/// What a load connection looks for in a frame.
pub enum Seen<'a> {
    /// A response: a send's ack (with the send time from its client id), or anything else.
    Answer { ok_send: bool, sent_ns: Option<u64> },
    /// A message pushed to us.
    Message(Pushed<'a>),
    /// Any other push.
    Other,
}

/// Picks out of a server frame what the load scenarios check.
pub fn see(f: &[u8]) -> Option<Seen<'_>> {
    let sf = Table::root(f)?;
    if sf.u64(wire::ServerFrame::VT_ID) != 0 {
        let ack = (sf.u8(wire::ServerFrame::VT_RESPONSE_TYPE) == wire::Response::SendAck.0)
            .then(|| sf.table(wire::ServerFrame::VT_RESPONSE))
            .flatten();
        let sent_ns = ack.and_then(|a| a.str(wire::SendAck::VT_CLIENT_ID)).and_then(client_id_time);
        return Some(Seen::Answer { ok_send: ack.is_some(), sent_ns });
    }
    if sf.u8(wire::ServerFrame::VT_EVENT_TYPE) != wire::Push::MessagePush.0 {
        return Some(Seen::Other);
    }
    let m = sf.table(wire::ServerFrame::VT_EVENT)?.table(wire::MessagePush::VT_MESSAGE)?;
    Some(Seen::Message(Pushed(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patched_send_is_the_frame_the_builder_makes() {
        let t = SendTemplate::new(false, "bob", 200).unwrap();
        let mut out = BytesMut::new();
        t.put(&mut out, 42, 0x1234_5678_9abc);
        let want_cid = format!("{:016x}:{:016x}", 42, 0x1234_5678_9abcu64);
        let mut body = vec![0u8; 200];
        body[..8].copy_from_slice(&0x1234_5678_9abcu64.to_le_bytes());
        assert_eq!(&out[..], &crate::conn::send_to(42, (false, "bob"), &want_cid, &body)[..]);
        assert_eq!(client_id_time(&want_cid), Some(0x1234_5678_9abc));
    }

    #[test]
    fn frames_are_read_as_the_verifier_reads_them() {
        let ack = protocol::response(5, |fbb| {
            let cid = fbb.create_string(&format!("{:016x}:{:016x}", 3, 777));
            let a =
                wire::SendAck::create(fbb, &wire::SendAckArgs { client_id: Some(cid), seq: 9, ..Default::default() });
            (wire::Response::SendAck, a.as_union_value())
        });
        match see(&ack[LEN_PREFIX..]) {
            Some(Seen::Answer { ok_send: true, sent_ns: Some(777) }) => {}
            _ => panic!("a send's ack"),
        }
        let err = protocol::error(6, wire::ErrorCode::RateLimited, "slow down");
        assert!(matches!(see(&err[LEN_PREFIX..]), Some(Seen::Answer { ok_send: false, .. })));
        let push = protocol::push(|fbb| {
            let (from, to) = (fbb.create_string("alice"), fbb.create_string("bob"));
            let body = fbb.create_vector(&42u64.to_le_bytes());
            let m = wire::Message::create(
                fbb,
                &wire::MessageArgs {
                    seq: 4,
                    server_id: 11,
                    from_user: Some(from),
                    to: Some(to),
                    body: Some(body),
                    ..Default::default()
                },
            );
            let p = wire::MessagePush::create(fbb, &wire::MessagePushArgs { message: Some(m) });
            (wire::Push::MessagePush, p.as_union_value())
        });
        let Some(Seen::Message(m)) = see(&push[LEN_PREFIX..]) else { panic!("a message push") };
        assert_eq!((m.seq(), m.server_id(), m.sent_ns()), (4, 11, Some(42)));
        assert_eq!((m.sender(), m.to()), (Some("alice"), Some("bob")));
        // Cut short or garbled frames read as nothing, without a panic.
        for n in 0..push.len() - LEN_PREFIX {
            let _ = see(&push[LEN_PREFIX..LEN_PREFIX + n]).map(|s| matches!(s, Seen::Message(m) if m.seq() == 4));
        }
        let mut bad = push[LEN_PREFIX..].to_vec();
        for i in 0..bad.len() {
            bad[i] ^= 0xff;
            if let Some(Seen::Message(m)) = see(&bad) {
                let _ = (m.seq(), m.sent_ns(), m.sender(), m.to());
            }
            bad[i] ^= 0xff;
        }
    }

    #[test]
    fn a_patched_ack_is_the_frame_the_builder_makes() {
        let mut out = BytesMut::new();
        AckTemplate::new(false, "alice").unwrap().put(&mut out, 7, 99, 5);
        assert_eq!(&out[..], &crate::conn::receive_ack(7, "alice", 99, 5)[..]);
        out.clear();
        AckTemplate::new(true, "g1").unwrap().put(&mut out, 8, 0, 6);
        assert_eq!(&out[..], &crate::conn::group_receive_ack(8, "g1", 6)[..]);
    }
}
