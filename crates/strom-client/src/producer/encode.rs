//! The v2 record batch format as the producer writes it: each record is encoded into its
//! batch when `send` appends it (so nothing of it but its bytes is kept), and the 61-byte
//! header with the producer id, sequence and CRC-32C is written when the batch is drained.
//! Going through `kafka-protocol`'s `Record` cost a struct, a header map and a copy of each
//! record's fields, which the profile of `strom perf-test producer` showed on every record.
//!
//! ```text
//!  base offset 0 | length | leader epoch -1 | magic 2 | crc | attributes | last offset delta
//!  | base timestamp | max timestamp | producer id | epoch | base sequence | count | records…
//!  record: length | attributes 0 | timestamp delta | offset delta | key | value | headers
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::batch::{Compression, HEADER_LEN, compute_crc};
use strom_protocol::compression::compress;
use strom_protocol::kafka_protocol::records::RecordBatchDecoder;

use super::idempotence::BatchSequence;
use crate::config::CompressionType;
use crate::error::{ClientError, Result};
use crate::record::Header;

/// Offset of the CRC in the header.
const CRC_OFFSET: usize = 17;

/// The fields of one record, borrowed from wherever it lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordFields<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [Header],
}

/// Appends one record, length prefix included, to a batch's records section.
///
/// Headers with the same key collapse into one (the last value wins, at the first one's
/// position), as the crate docs promise: what the `kafka-protocol` encoder used before did.
pub(crate) fn put_record(
    buf: &mut BytesMut,
    record: RecordFields<'_>,
    offset_delta: u32,
    timestamp_delta: i64,
) {
    let merged;
    let headers: &[Header] = if record.headers.len() > 1 {
        merged = unique_headers(record.headers);
        &merged
    } else {
        record.headers
    };
    let body = 1
        + varint_len(timestamp_delta)
        + varint_len(i64::from(offset_delta))
        + bytes_len(record.key)
        + bytes_len(record.value)
        + varint_len(headers.len() as i64)
        + headers
            .iter()
            .map(|h| bytes_len(Some(h.key.as_bytes())) + bytes_len(h.value.as_deref()))
            .sum::<usize>();
    buf.reserve(body + 5);
    put_varint(buf, body as i64);
    buf.put_u8(0); // attributes
    put_varint(buf, timestamp_delta);
    put_varint(buf, i64::from(offset_delta));
    put_bytes(buf, record.key);
    put_bytes(buf, record.value);
    put_varint(buf, headers.len() as i64);
    for h in headers {
        put_bytes(buf, Some(h.key.as_bytes()));
        put_bytes(buf, h.value.as_deref());
    }
}

/// What the header of a drained batch says besides its records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderFields {
    pub(crate) count: u32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    /// Producer id, epoch and base sequence; -1 without idempotence.
    pub(crate) sequence: Option<BatchSequence>,
}

/// Turns `HEADER_LEN` placeholder bytes plus the records section into the batch to send,
/// writing the header in place.
pub(crate) fn finish_batch(buf: BytesMut, fields: HeaderFields) -> Result<Bytes> {
    finish(buf, fields, Compression::None)
}

/// A new batch with `records` (an uncompressed records section) compressed with
/// `compression`; an uncompressed copy when `compression` is none.
pub(crate) fn compressed_batch(
    records: &[u8],
    fields: HeaderFields,
    compression: CompressionType,
) -> Result<Bytes> {
    let codec = codec(compression);
    let compressed;
    let section = if codec == Compression::None {
        records
    } else {
        compressed = compress(codec, records)
            .map_err(|e| ClientError::Protocol(format!("cannot compress record batch: {e}")))?;
        &compressed[..]
    };
    let mut buf = BytesMut::with_capacity(HEADER_LEN + section.len());
    buf.put_bytes(0, HEADER_LEN);
    buf.put_slice(section);
    finish(buf, fields, codec)
}

fn finish(mut buf: BytesMut, fields: HeaderFields, codec: Compression) -> Result<Bytes> {
    let (producer_id, producer_epoch, base_sequence) = fields
        .sequence
        .map_or((-1, -1, -1), |s| (s.producer.id, s.producer.epoch, s.base));
    let transactional = fields.sequence.is_some_and(|s| s.transactional);
    let count = i32::try_from(fields.count).unwrap_or(i32::MAX);
    let length = i32::try_from(buf.len() - 12)
        .map_err(|_| ClientError::Protocol("record batch too large".into()))?;
    let mut header = &mut buf[..HEADER_LEN];
    header.put_i64(0);
    header.put_i32(length);
    header.put_i32(-1);
    header.put_i8(2);
    header.put_u32(0);
    header.put_i16(attributes(codec) | if transactional { TRANSACTIONAL } else { 0 });
    header.put_i32(count - 1);
    header.put_i64(fields.base_timestamp);
    header.put_i64(fields.max_timestamp);
    header.put_i64(producer_id);
    header.put_i16(producer_epoch);
    header.put_i32(base_sequence);
    header.put_i32(count);
    let crc = compute_crc(&buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
}

/// A record taken back out of a sent batch (to split it after MESSAGE_TOO_LARGE).
#[derive(Debug)]
pub(crate) struct OwnedRecord {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<Header>,
    pub(crate) timestamp: i64,
}

/// The records of a batch [`finish_batch`] or [`compressed_batch`] made, in order.
pub(crate) fn decode_batch(batch: &Bytes) -> Result<Vec<OwnedRecord>> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| ClientError::Protocol(format!("cannot decode own record batch: {e}")))?;
    Ok(set
        .records
        .into_iter()
        .map(|r| OwnedRecord {
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| Header {
                    key: k.to_string(),
                    value: v,
                })
                .collect(),
            timestamp: r.timestamp,
        })
        .collect())
}

/// The headers with repeated keys merged: first position, last value.
fn unique_headers(headers: &[Header]) -> Vec<Header> {
    let mut out: Vec<Header> = Vec::with_capacity(headers.len());
    for h in headers {
        match out.iter_mut().find(|o| o.key == h.key) {
            Some(slot) => slot.value = h.value.clone(),
            None => out.push(h.clone()),
        }
    }
    out
}

fn put_bytes(out: &mut impl BufMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.put_slice(b);
        }
        None => put_varint(out, -1),
    }
}

fn bytes_len(bytes: Option<&[u8]>) -> usize {
    match bytes {
        Some(b) => varint_len(b.len() as i64) + b.len(),
        None => 1,
    }
}

/// Zig-zag varint (Kafka's `varint` and `varlong` share the encoding).
fn put_varint(out: &mut impl BufMut, n: i64) {
    let mut v = zigzag(n);
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn varint_len(n: i64) -> usize {
    let bits = 64 - zigzag(n).leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn codec(compression: CompressionType) -> Compression {
    use strom_protocol::kafka_protocol::records::Compression as Codec;
    match compression.codec() {
        Codec::None => Compression::None,
        Codec::Gzip => Compression::Gzip,
        Codec::Snappy => Compression::Snappy,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd => Compression::Zstd,
    }
}

/// Attribute bit 4: the batch belongs to a transaction.
const TRANSACTIONAL: i16 = 0x10;

/// Batch attributes: the codec in bits 0-2, create time (bit 4, transactional, is added by
/// the caller).
fn attributes(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::idempotence::ProducerIdAndEpoch;

    struct Input {
        ts: i64,
        key: Option<Bytes>,
        value: Bytes,
        headers: Vec<Header>,
    }

    fn input(ts: i64, key: Option<&str>, value: &str, headers: Vec<Header>) -> Input {
        Input {
            ts,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Bytes::copy_from_slice(value.as_bytes()),
            headers,
        }
    }

    fn encode(
        records: &[Input],
        sequence: Option<BatchSequence>,
        compression: CompressionType,
    ) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_bytes(0, HEADER_LEN);
        let base = records[0].ts;
        for (i, r) in records.iter().enumerate() {
            let fields = RecordFields {
                key: r.key.as_deref(),
                value: Some(&r.value),
                headers: &r.headers,
            };
            put_record(&mut buf, fields, i as u32, r.ts - base);
        }
        let fields = HeaderFields {
            count: records.len() as u32,
            base_timestamp: base,
            max_timestamp: records.iter().map(|r| r.ts).max().unwrap(),
            sequence,
        };
        if compression == CompressionType::None {
            finish_batch(buf, fields).unwrap()
        } else {
            compressed_batch(&buf[HEADER_LEN..], fields, compression).unwrap()
        }
    }

    #[test]
    fn varint_lengths_match_encoding() {
        for n in [
            0,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            8191,
            8192,
            i64::MAX,
            i64::MIN,
            1 << 40,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(varint_len(n), out.len(), "{n}");
        }
    }

    #[test]
    fn decodes_with_kafka_protocol() {
        for compression in [
            CompressionType::None,
            CompressionType::Gzip,
            CompressionType::Lz4,
            CompressionType::Snappy,
            CompressionType::Zstd,
        ] {
            let records = vec![
                input(1_000, Some("k"), "v0", Vec::new()),
                input(
                    990,
                    None,
                    "v1",
                    vec![
                        Header::new("a", Some("1")),
                        Header::new("b", None::<Bytes>),
                        Header::new("a", Some("2")),
                    ],
                ),
                input(1_500, None, &"x".repeat(300), Vec::new()),
            ];
            let sequence = BatchSequence {
                producer: ProducerIdAndEpoch { id: 7, epoch: 3 },
                base: 41,
                // Every other codec in a transaction: the bit must survive compression.
                transactional: matches!(
                    compression,
                    CompressionType::Gzip | CompressionType::Snappy
                ),
            };
            let mut bytes = encode(&records, Some(sequence), compression);
            let header = strom_protocol::batch::BatchHeader::parse(&bytes).unwrap();
            strom_protocol::batch::verify_crc(&header, &bytes).unwrap();
            assert_eq!(header.max_timestamp, 1_500);
            let again = decode_batch(&bytes).unwrap();
            let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let decoded = decoded.records;
            assert_eq!(decoded.len(), 3, "{compression:?}");
            for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
                assert_eq!(d.offset, i as i64);
                assert_eq!(d.timestamp, r.ts);
                assert_eq!(d.key, r.key);
                assert_eq!(d.value.as_ref(), Some(&r.value));
                assert_eq!(d.producer_id, 7);
                assert_eq!(d.producer_epoch, 3);
                assert_eq!(d.sequence, 41 + i as i32);
                assert_eq!(d.transactional, sequence.transactional);
                assert_eq!(again[i].timestamp, r.ts);
                assert_eq!(again[i].value.as_ref(), Some(&r.value));
            }
            let headers: Vec<(String, Option<Bytes>)> = decoded[1]
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            assert_eq!(
                headers,
                vec![
                    ("a".to_string(), Some(Bytes::from_static(b"2"))),
                    ("b".to_string(), None)
                ]
            );
        }
    }

    #[test]
    fn without_idempotence_ids_are_minus_one() {
        let records = vec![input(5, None, "v", Vec::new())];
        let mut bytes = encode(&records, None, CompressionType::None);
        let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap().records;
        assert_eq!(decoded[0].producer_id, -1);
        assert!(!decoded[0].transactional);
        assert_eq!(decoded[0].sequence, -1);
    }
}
