//! Encodes a drained batch as one v2 record batch, written straight from the pending records:
//! the records section in one pass, then the 61-byte header and its CRC-32C. Going through
//! `kafka-protocol`'s `Record` cost a struct, a header map and a copy of each record's
//! fields, which the profile of `strom perf-test producer` showed on every record.
//!
//! ```text
//!  base offset 0 | length | leader epoch -1 | magic 2 | crc | attributes | last offset delta
//!  | base timestamp | max timestamp | producer id | epoch | base sequence | count | records…
//!  record: length | attributes 0 | timestamp delta | offset delta | key | value | headers
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::batch::{Compression, HEADER_LEN, compute_crc};
use strom_protocol::compression::compress;

use super::accumulator::PendingRecord;
use super::idempotence::BatchSequence;
use crate::config::CompressionType;
use crate::error::{ClientError, Result};
use crate::record::Header;

/// Offset of the CRC in the header.
const CRC_OFFSET: usize = 17;

/// Encodes a v2 batch: offsets 0..n; producer id, epoch and base sequence from `sequence`,
/// or -1 without idempotence.
///
/// Headers with the same key collapse into one (the last value wins, at the first one's
/// position), as the crate docs promise: what the `kafka-protocol` encoder used before did.
pub(crate) fn encode_batch(
    records: &[PendingRecord],
    sequence: Option<BatchSequence>,
    compression: CompressionType,
) -> Result<Bytes> {
    let (producer_id, producer_epoch, base_sequence) =
        sequence.map_or((-1, -1, -1), |s| (s.producer.id, s.producer.epoch, s.base));
    let base_timestamp = records.first().map_or(-1, |r| r.timestamp);
    let max_timestamp = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(base_timestamp);
    let codec = codec(compression);

    let body_estimate: usize = records.iter().map(|r| r.size).sum();
    let mut buf = BytesMut::with_capacity(HEADER_LEN + body_estimate);
    buf.put_bytes(0, HEADER_LEN);
    let mut record_buf = Vec::new();
    for (i, r) in records.iter().enumerate() {
        record_buf.clear();
        encode_record(&mut record_buf, r, i, base_timestamp);
        put_varint(&mut buf, record_buf.len() as i64);
        buf.put_slice(&record_buf);
    }
    if codec != Compression::None {
        let compressed = compress(codec, &buf[HEADER_LEN..])
            .map_err(|e| ClientError::Protocol(format!("cannot compress record batch: {e}")))?;
        buf.truncate(HEADER_LEN);
        buf.put_slice(&compressed);
    }

    let count = i32::try_from(records.len()).unwrap_or(i32::MAX);
    let length = i32::try_from(buf.len() - 12)
        .map_err(|_| ClientError::Protocol("record batch too large".into()))?;
    let mut header = &mut buf[..HEADER_LEN];
    header.put_i64(0);
    header.put_i32(length);
    header.put_i32(-1);
    header.put_i8(2);
    header.put_u32(0);
    header.put_i16(attributes(codec));
    header.put_i32(count - 1);
    header.put_i64(base_timestamp);
    header.put_i64(max_timestamp);
    header.put_i64(producer_id);
    header.put_i16(producer_epoch);
    header.put_i32(base_sequence);
    header.put_i32(count);
    let crc = compute_crc(&buf);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(buf.freeze())
}

/// One record without its length prefix.
fn encode_record(out: &mut Vec<u8>, r: &PendingRecord, index: usize, base_timestamp: i64) {
    out.push(0); // attributes
    put_varint(out, r.timestamp.wrapping_sub(base_timestamp));
    put_varint(out, index as i64);
    put_bytes(out, r.key.as_deref());
    put_bytes(out, r.value.as_deref());
    match r.headers.as_slice() {
        [] => put_varint(out, 0),
        [one] => {
            put_varint(out, 1);
            put_header(out, one);
        }
        headers => {
            let unique = unique_headers(headers);
            put_varint(out, unique.len() as i64);
            for h in unique {
                put_header(out, h);
            }
        }
    }
}

fn put_header(out: &mut Vec<u8>, h: &Header) {
    put_bytes(out, Some(h.key.as_bytes()));
    put_bytes(out, h.value.as_deref());
}

/// The headers with repeated keys merged: first position, last value.
fn unique_headers(headers: &[Header]) -> Vec<&Header> {
    let mut out: Vec<&Header> = Vec::with_capacity(headers.len());
    for h in headers {
        match out.iter_mut().find(|o| o.key == h.key) {
            Some(slot) => *slot = h,
            None => out.push(h),
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

/// Zig-zag varint (Kafka's `varint` and `varlong` share the encoding).
fn put_varint(out: &mut impl BufMut, n: i64) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
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

/// Batch attributes: the codec in bits 0-2, create time, not transactional.
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
    use strom_protocol::kafka_protocol::records::RecordBatchDecoder;
    use tokio::sync::oneshot;

    fn record(ts: i64, key: Option<&str>, value: &str, headers: Vec<Header>) -> PendingRecord {
        let (done, _) = oneshot::channel();
        PendingRecord {
            seq: 0,
            topic: "t".into(),
            partition: None,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers,
            timestamp: ts,
            size: 100,
            done,
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
                record(1_000, Some("k"), "v0", Vec::new()),
                record(
                    990,
                    None,
                    "v1",
                    vec![
                        Header::new("a", Some("1")),
                        Header::new("b", None::<Bytes>),
                        Header::new("a", Some("2")),
                    ],
                ),
                record(1_500, None, &"x".repeat(300), Vec::new()),
            ];
            let sequence = BatchSequence {
                producer: ProducerIdAndEpoch { id: 7, epoch: 3 },
                base: 41,
            };
            let mut bytes = encode_batch(&records, Some(sequence), compression).unwrap();
            let header = strom_protocol::batch::BatchHeader::parse(&bytes).unwrap();
            strom_protocol::batch::verify_crc(&header, &bytes).unwrap();
            let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let decoded = decoded.records;
            assert_eq!(decoded.len(), 3, "{compression:?}");
            for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
                assert_eq!(d.offset, i as i64);
                assert_eq!(d.timestamp, r.timestamp);
                assert_eq!(d.key, r.key);
                assert_eq!(d.value, r.value);
                assert_eq!(d.producer_id, 7);
                assert_eq!(d.producer_epoch, 3);
                assert_eq!(d.sequence, 41 + i as i32);
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
        let records = vec![record(5, None, "v", Vec::new())];
        let mut bytes = encode_batch(&records, None, CompressionType::None).unwrap();
        let decoded = RecordBatchDecoder::decode(&mut bytes).unwrap().records;
        assert_eq!(decoded[0].producer_id, -1);
        assert_eq!(decoded[0].sequence, -1);
    }
}
