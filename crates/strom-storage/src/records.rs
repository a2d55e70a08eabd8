//! Record-level access to stored v2 batches, for the few features that need it: the cleaner
//! (keys, tombstones, re-encoding what it keeps), the compacted-topic key check at produce,
//! transaction markers for producer state, and `dump-log`.
//!
//! ```text
//!  record := length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//!            | keyLength varint | key | valueLength varint | value | headerCount varint | headers
//! ```
//!
//! Records are walked in place over the (decompressed) records section: a [`RecordView`] borrows
//! its key and value, and re-encoding copies everything after the timestamp delta byte for byte.
//! That keeps what `kafka-protocol`'s `RecordBatchEncoder` would lose: duplicate header keys
//! (its headers are an `IndexMap`), non-UTF-8 header keys, the `LogAppendTime` attribute, the
//! batch's base offset, last offset delta and base sequence (it derives them from the records), and
//! timestamps relative to a delete horizon. Only the codecs come from `kafka-protocol`.

use bytes::Bytes;
use strom_protocol::batch::{self, BatchHeader, Compression, HEADER_LEN};

use crate::index::NO_TIMESTAMP;

const COMPRESSION_MASK: i16 = 0x07;
const DELETE_HORIZON_FLAG: i16 = 0x40;
/// `length` of an empty batch: its header after `batch_length`.
const EMPTY_BATCH_LENGTH: i32 = (HEADER_LEN - batch::LOG_OVERHEAD) as i32;

/// Reads a zig-zag varint (32-bit range) at `*pos`.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let v = read_varlong(buf, pos)?;
    i32::try_from(v).ok()
}

/// Reads a zig-zag varlong at `*pos`.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

pub(crate) fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One record inside a batch, borrowed from the records section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) offset_delta: i32,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    attributes: u8,
    /// Everything after the timestamp delta: offset delta, key, value, headers.
    tail: &'a [u8],
    /// The header section (count + headers), for printing.
    pub(crate) headers: &'a [u8],
}

impl RecordView<'_> {
    /// The keys of the record's headers, in order (duplicates kept). Malformed headers end the
    /// list early.
    pub(crate) fn header_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let buf = self.headers;
        let mut pos = 0;
        let Some(count) = read_varint(buf, &mut pos) else {
            return keys;
        };
        for _ in 0..count.max(0) {
            let Some(klen) = read_varint(buf, &mut pos) else {
                break;
            };
            let Some(key) = usize::try_from(klen)
                .ok()
                .and_then(|l| buf.get(pos..pos + l))
            else {
                break;
            };
            pos += key.len();
            keys.push(String::from_utf8_lossy(key).into_owned());
            let Some(vlen) = read_varint(buf, &mut pos) else {
                break;
            };
            if vlen > 0 {
                pos += vlen as usize;
            }
        }
        keys
    }
}

/// A batch's records section, decompressed when needed.
#[derive(Debug, Clone)]
pub(crate) struct RecordsSection {
    pub(crate) header: BatchHeader,
    data: Bytes,
}

/// Most a stored batch may decompress to. Batches were bounded when they were produced
/// (`strom_protocol::compression`); this only keeps a corrupt file from exhausting memory.
const MAX_DECOMPRESSED: usize = 1 << 30;

/// Decompresses `bytes` with `codec` (a copy-free slice when uncompressed).
pub(crate) fn decompress(codec: Compression, bytes: Bytes) -> Result<Bytes, String> {
    if codec == Compression::None {
        return Ok(bytes);
    }
    strom_protocol::compression::decompress(codec, &bytes, MAX_DECOMPRESSED)
        .map(Bytes::from)
        .map_err(|e| format!("cannot decompress records: {e}"))
}

/// Compresses `raw` with `codec`.
pub(crate) fn compress(codec: Compression, raw: &[u8]) -> Result<Vec<u8>, String> {
    strom_protocol::compression::compress(codec, raw)
        .map_err(|e| format!("cannot compress records: {e}"))
}

impl RecordsSection {
    /// The records of one whole batch (header included in `batch`).
    pub(crate) fn new(batch: &[u8]) -> Result<Self, String> {
        let header = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
        if batch.len() < header.size() {
            return Err(format!(
                "batch of {} bytes, only {} available",
                header.size(),
                batch.len()
            ));
        }
        let codec = header.compression().ok_or_else(|| {
            format!(
                "unknown compression codec {}",
                header.attributes & COMPRESSION_MASK
            )
        })?;
        let raw = Bytes::copy_from_slice(&batch[HEADER_LEN..header.size()]);
        let data = if header.records_count == 0 {
            Bytes::new()
        } else {
            decompress(codec, raw)?
        };
        Ok(Self { header, data })
    }

    /// Walks the records. Stops with an error at the first malformed one or when the count does
    /// not match the header.
    pub(crate) fn records(&self) -> Result<Vec<RecordView<'_>>, String> {
        let buf = &self.data[..];
        let count = usize::try_from(self.header.records_count).unwrap_or(0);
        let mut out = Vec::with_capacity(count.min(1 << 16));
        let mut pos = 0;
        let malformed = |what: &str, i: usize| format!("malformed record {i}: {what}");
        for i in 0..count {
            let len = read_varint(buf, &mut pos).ok_or_else(|| malformed("length", i))?;
            let len = usize::try_from(len).map_err(|_| malformed("negative length", i))?;
            let body = buf
                .get(pos..pos + len)
                .ok_or_else(|| malformed("truncated", i))?;
            pos += len;
            let mut p = 0;
            let attributes = *body.first().ok_or_else(|| malformed("empty", i))?;
            p += 1;
            let ts_delta = read_varlong(body, &mut p).ok_or_else(|| malformed("timestamp", i))?;
            let tail = &body[p..];
            let offset_delta =
                read_varint(body, &mut p).ok_or_else(|| malformed("offset delta", i))?;
            let mut field = |name: &str| -> Result<Option<&[u8]>, String> {
                let len = read_varint(body, &mut p).ok_or_else(|| malformed(name, i))?;
                if len < 0 {
                    return Ok(None);
                }
                let bytes = body
                    .get(p..p + len as usize)
                    .ok_or_else(|| malformed(name, i))?;
                p += bytes.len();
                Ok(Some(bytes))
            };
            let key = field("key")?;
            let value = field("value")?;
            out.push(RecordView {
                offset: self.header.base_offset + i64::from(offset_delta),
                timestamp: self.header.base_timestamp.wrapping_add(ts_delta),
                offset_delta,
                key,
                value,
                attributes,
                tail,
                headers: &body[p..],
            });
        }
        if pos != buf.len() {
            return Err(format!(
                "{} bytes left after the {count} records the header announces",
                buf.len() - pos
            ));
        }
        Ok(out)
    }
}

/// Appends one record re-encoded against `base_timestamp` (its offset delta is unchanged, the
/// batch keeps its base offset).
fn encode_record(out: &mut Vec<u8>, record: &RecordView<'_>, base_timestamp: i64) {
    let mut body = Vec::with_capacity(record.tail.len() + 11);
    body.push(record.attributes);
    write_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
    body.extend_from_slice(record.tail);
    write_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// Writes a v2 header for `h` with the given changes and computes the CRC over `records`.
fn write_batch(
    h: &BatchHeader,
    attributes: i16,
    base_timestamp: i64,
    max_timestamp: i64,
    records_count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&h.base_offset.to_be_bytes());
    let length = EMPTY_BATCH_LENGTH + records.len() as i32;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    out.push(batch::CURRENT_MAGIC as u8);
    out.extend_from_slice(&[0; 4]); // CRC, below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&h.producer_id.to_be_bytes());
    out.extend_from_slice(&h.producer_epoch.to_be_bytes());
    out.extend_from_slice(&h.base_sequence.to_be_bytes());
    out.extend_from_slice(&records_count.to_be_bytes());
    out.extend_from_slice(records);
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Kafka's `MemoryRecords.buildRetainedRecordsInto`: a batch with `original`'s base offset, last
/// offset (so the last sequence survives), producer id/epoch/base sequence, leader epoch,
/// transactional/control flags, timestamp type and codec, holding only `retained`. With a delete
/// horizon, the base timestamp becomes the horizon (attribute bit 6) and record timestamps are
/// re-based on it, as Kafka 3.x+ does.
pub(crate) fn rebuild_batch(
    original: &BatchHeader,
    retained: &[RecordView<'_>],
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>, String> {
    let codec = original
        .compression()
        .ok_or_else(|| "unknown compression codec".to_string())?;
    let base_timestamp = delete_horizon
        .or_else(|| retained.first().map(|r| r.timestamp))
        .unwrap_or(NO_TIMESTAMP);
    let mut raw = Vec::new();
    for record in retained {
        encode_record(&mut raw, record, base_timestamp);
    }
    let records = compress(codec, &raw)?;
    let mut attributes = original.attributes & !DELETE_HORIZON_FLAG;
    if delete_horizon.is_some() {
        attributes |= DELETE_HORIZON_FLAG;
    }
    let max_timestamp = match original.timestamp_type() {
        batch::TimestampType::LogAppendTime => original.max_timestamp,
        batch::TimestampType::CreateTime => retained
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(original.max_timestamp),
    };
    Ok(write_batch(
        original,
        attributes,
        base_timestamp,
        max_timestamp,
        retained.len() as i32,
        &records,
    ))
}

/// Kafka's `DefaultRecordBatch.writeEmptyHeader`: a batch with no records that keeps the
/// original's offsets and producer metadata, so producer state survives compaction.
pub(crate) fn empty_batch(original: &BatchHeader) -> Vec<u8> {
    // Uncompressed, no delete horizon; timestamp type, transactional and control bits kept.
    let attributes = original.attributes & !(COMPRESSION_MASK | DELETE_HORIZON_FLAG);
    write_batch(
        original,
        attributes,
        NO_TIMESTAMP,
        original.max_timestamp,
        0,
        &[],
    )
}

/// The delete horizon a cleaned batch carries (its base timestamp when bit 6 is set).
pub(crate) fn delete_horizon(header: &BatchHeader) -> Option<i64> {
    header.has_delete_horizon().then_some(header.base_timestamp)
}

/// Kafka's `ControlRecordType`: the key of a control record is `version i16, type i16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlType {
    Abort,
    Commit,
    Other(i16),
}

/// A transaction marker (`EndTransactionMarker`): the control type and the coordinator epoch
/// from the value (`version i16, coordinator_epoch i32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ControlMarker {
    pub(crate) kind: ControlType,
    pub(crate) coordinator_epoch: i32,
}

/// Decodes the first record of a control batch; `None` for an empty (cleaned) control batch or
/// one that cannot be read.
pub(crate) fn control_marker(batch: &[u8]) -> Option<ControlMarker> {
    let section = RecordsSection::new(batch).ok()?;
    let records = section.records().ok()?;
    let record = records.first()?;
    let key = record.key?;
    if key.len() < 4 {
        return None;
    }
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    };
    let coordinator_epoch = record
        .value
        .filter(|v| v.len() >= 6)
        .map_or(-1, |v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]));
    Some(ControlMarker {
        kind,
        coordinator_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{Codec, KeyedRecord, keyed_batch};

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut buf = Vec::new();
            write_varlong(&mut buf, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
        // Eleven continuation bytes are not a varlong.
        let mut pos = 0;
        assert_eq!(read_varlong(&[0xff; 11], &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_varlong(&[0x80], &mut pos), None);
    }

    #[test]
    fn rebuild_keeps_offsets_producer_metadata_and_codec() {
        let records = [
            KeyedRecord::new(Some(b"a"), Some(b"1")),
            KeyedRecord::new(Some(b"b"), None),
            KeyedRecord::new(Some(b"c"), Some(b"3"))
                .header("h", b"x")
                .header("h", b"y"),
        ];
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Lz4,
            Codec::Zstd,
            Codec::Snappy,
        ] {
            let original = keyed_batch(&records, codec, 42, 3, 100);
            let section = RecordsSection::new(&original).unwrap();
            let all = section.records().unwrap();
            let kept = [all[1], all[2]];
            let rebuilt = rebuild_batch(&section.header, &kept, Some(999)).unwrap();
            let h = BatchHeader::parse(&rebuilt).unwrap();
            batch::verify_crc(&h, &rebuilt).unwrap();
            assert_eq!(h.base_offset, section.header.base_offset);
            assert_eq!(h.last_offset_delta, 2);
            assert_eq!(h.records_count, 2);
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, 100)
            );
            assert_eq!(h.compression(), section.header.compression());
            assert_eq!(delete_horizon(&h), Some(999));
            let again = RecordsSection::new(&rebuilt).unwrap();
            let out = again.records().unwrap();
            assert_eq!(out.len(), 2);
            for (a, b) in out.iter().zip(&kept) {
                assert_eq!(
                    (a.offset, a.timestamp, a.key, a.value),
                    (b.offset, b.timestamp, b.key, b.value)
                );
            }
            // Duplicate header keys survive.
            assert_eq!(out[1].header_keys(), ["h", "h"]);
        }
    }

    #[test]
    fn empty_batch_keeps_the_producer_state_fields() {
        let original = keyed_batch(
            &vec![KeyedRecord::new(Some(b"a"), Some(b"1")); 3],
            Codec::Gzip,
            7,
            1,
            5,
        );
        let h = BatchHeader::parse(&original).unwrap();
        let empty = empty_batch(&h);
        let e = BatchHeader::parse(&empty).unwrap();
        assert_eq!(empty.len(), HEADER_LEN);
        batch::verify_crc(&e, &empty).unwrap();
        assert_eq!(
            (e.base_offset, e.last_offset(), e.records_count),
            (h.base_offset, h.last_offset(), 0)
        );
        assert_eq!(
            (e.producer_id, e.producer_epoch, e.base_sequence),
            (7, 1, 5)
        );
        assert_eq!(e.max_timestamp, h.max_timestamp);
        assert_eq!(e.compression(), Some(Compression::None));
        assert!(
            RecordsSection::new(&empty)
                .unwrap()
                .records()
                .unwrap()
                .is_empty()
        );
    }
}
