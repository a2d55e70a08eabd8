//! Primitive readers and writers for Kafka's generated-message encoding, as the record schemas of
//! `__consumer_offsets` use it: big-endian integers, `string`/`bytes`/arrays with fixed-width
//! lengths in non-flexible versions, and unsigned-varint "compact" lengths plus tagged fields in
//! flexible versions. Only what the coordinator records need is here.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::error::CodecError;

/// A cursor over a record key or value. Every read checks the remaining length first, so a
/// truncated or corrupt record is an error, never a panic.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, CodecError> {
        Ok(self.take(1)?[0] as i8)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, CodecError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, CodecError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, CodecError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub(crate) fn uuid(&mut self) -> Result<Uuid, CodecError> {
        let b = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(Uuid::from_bytes(a))
    }

    pub(crate) fn uvarint(&mut self) -> Result<u32, CodecError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1)?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::Malformed("unsigned varint longer than 5 bytes"))
    }

    fn utf8(&mut self, len: usize) -> Result<String, CodecError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| CodecError::Malformed("string is not UTF-8"))
    }

    /// `string` in a non-flexible version: i16 length, never null.
    pub(crate) fn string(&mut self) -> Result<String, CodecError> {
        self.nullable_string()?
            .ok_or(CodecError::Malformed("null in a non-nullable string"))
    }

    /// `string` with `nullableVersions` in a non-flexible version: length -1 is null.
    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, CodecError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.utf8(len as usize).map(Some)
    }

    /// `bytes` in a non-flexible version: i32 length.
    pub(crate) fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let len = self.i32()?;
        if len < 0 {
            return Err(CodecError::Malformed("null in non-nullable bytes"));
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }

    /// Array length in a non-flexible version: i32 count, never null here.
    pub(crate) fn array_len(&mut self) -> Result<usize, CodecError> {
        let n = self.i32()?;
        if n < 0 {
            return Err(CodecError::Malformed("null in a non-nullable array"));
        }
        // Each element takes at least one byte: refuse counts the input cannot hold before
        // anything is allocated for them.
        if n as usize > self.remaining() {
            return Err(CodecError::Truncated);
        }
        Ok(n as usize)
    }

    /// Compact string (flexible versions): uvarint length + 1, never null.
    pub(crate) fn compact_string(&mut self) -> Result<String, CodecError> {
        self.compact_nullable_string()?.ok_or(CodecError::Malformed(
            "null in a non-nullable compact string",
        ))
    }

    pub(crate) fn compact_nullable_string(&mut self) -> Result<Option<String>, CodecError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        self.utf8((n - 1) as usize).map(Some)
    }

    pub(crate) fn compact_bytes(&mut self) -> Result<Bytes, CodecError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Err(CodecError::Malformed("null in non-nullable compact bytes"));
        }
        Ok(Bytes::copy_from_slice(self.take((n - 1) as usize)?))
    }

    /// Compact array length (flexible versions), never null here.
    pub(crate) fn compact_array_len(&mut self) -> Result<usize, CodecError> {
        let n = self.uvarint()?;
        if n == 0 {
            return Err(CodecError::Malformed(
                "null in a non-nullable compact array",
            ));
        }
        let n = (n - 1) as usize;
        if n > self.remaining() {
            return Err(CodecError::Truncated);
        }
        Ok(n)
    }

    /// Skips `n` bytes (a tagged field the reader does not use).
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        self.take(n).map(|_| ())
    }

    /// Reads the tagged-field section of a flexible struct and skips every field. None of the
    /// tagged fields of the records strom reads changes its state (the only one, the
    /// `ClassicMemberMetadata` of a consumer-group member, belongs to online migration from the
    /// classic protocol, which strom does not do), and skipping unknown tags is what the schema
    /// rules require of a reader anyway.
    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), CodecError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }

    /// Refuses bytes left after the last field: a record we only half understood must not be
    /// replayed as if it were whole.
    pub(crate) fn finish(&self) -> Result<(), CodecError> {
        if self.remaining() != 0 {
            return Err(CodecError::TrailingBytes(self.remaining()));
        }
        Ok(())
    }
}

/// Writer side: thin helpers over `BytesMut` so the codecs read like their schemas.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: BytesMut,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    pub(crate) fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub(crate) fn uuid(&mut self, v: &Uuid) {
        self.buf.put_slice(v.as_bytes());
    }

    pub(crate) fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// Non-flexible `string`. Kafka's limit is i16::MAX bytes; longer strings are cut at a
    /// character boundary rather than written with a wrapped length (group ids, topics and
    /// client ids are far shorter in practice; the broker refuses longer ones earlier).
    pub(crate) fn string(&mut self, s: &str) {
        let s = clip(s, i16::MAX as usize);
        self.buf.put_i16(s.len() as i16);
        self.buf.put_slice(s.as_bytes());
    }

    pub(crate) fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.buf.put_i16(-1),
        }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.put_i32(b.len() as i32);
        self.buf.put_slice(b);
    }

    pub(crate) fn array_len(&mut self, n: usize) {
        self.buf.put_i32(n as i32);
    }

    pub(crate) fn compact_string(&mut self, s: &str) {
        self.uvarint(s.len() as u32 + 1);
        self.buf.put_slice(s.as_bytes());
    }

    pub(crate) fn compact_nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.compact_string(s),
            None => self.uvarint(0),
        }
    }

    pub(crate) fn compact_array_len(&mut self, n: usize) {
        self.uvarint(n as u32 + 1);
    }

    /// An empty tagged-field section: strom writes no tagged fields.
    pub(crate) fn no_tagged_fields(&mut self) {
        self.uvarint(0);
    }
}

/// The longest prefix of `s` that fits in `max` bytes and ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
