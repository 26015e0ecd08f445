//! A small, checked binary encoding for stored values: little helpers that domain records use
//! to turn themselves into bytes and back. Every read is bounds-checked; a value that does not
//! decode is an error, never a panic.

/// Appends fields to a buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Writer {
        Writer { buf: Vec::with_capacity(n) }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Length-prefixed bytes (u32 length).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        // Stored values come from frames bounded far below 4 GiB.
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored value is corrupt")]
pub struct Corrupt;

/// Reads fields back, in the order they were written.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        if self.buf.len() < n {
            return Err(Corrupt);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, Corrupt> {
        Ok(self.u8()? != 0)
    }
    pub fn u32(&mut self) -> Result<u32, Corrupt> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Corrupt)?))
    }
    pub fn u64(&mut self) -> Result<u64, Corrupt> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Corrupt)?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, Corrupt> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Corrupt)
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = Writer::default();
        w.u8(7).bool(true).u32(9).u64(u64::MAX).str("héllo").bytes(&[1, 2, 3]);
        let v = w.finish();
        let mut r = Reader::new(&v);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.u32(), Ok(9));
        assert_eq!(r.u64(), Ok(u64::MAX));
        assert_eq!(r.str(), Ok("héllo"));
        assert_eq!(r.bytes(), Ok(&[1u8, 2, 3][..]));
        assert!(r.is_empty());
        for cut in 0..v.len() {
            let mut r = Reader::new(&v[..cut]);
            let all = (|| -> Result<(), Corrupt> {
                r.u8()?;
                r.bool()?;
                r.u32()?;
                r.u64()?;
                r.str()?;
                r.bytes()?;
                Ok(())
            })();
            assert_eq!(all, Err(Corrupt), "cut at {cut}");
        }
    }
}
