//! Batch builders for this crate's unit tests.

use bytes::BytesMut;
use strom_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub(crate) use strom_protocol::kafka_protocol::records::Compression as Codec;

/// One v2 batch with base offset 0 holding a record per timestamp, each value `value_len` bytes.
pub(crate) fn batch_with_timestamps(
    timestamps: &[i64],
    value_len: usize,
    compression: Compression,
) -> Vec<u8> {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while offset - sequence is constant.
            sequence: i as i32 - 1,
            timestamp: ts,
            key: None,
            value: Some(bytes::Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode batch");
    buf.to_vec()
}

/// `records` records, all at `timestamp`, uncompressed.
pub(crate) fn batch(records: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    batch_with_timestamps(&vec![timestamp; records], value_len, Compression::None)
}

/// A record for [`keyed_batch`]: key, value (None is a tombstone) and headers.
#[derive(Debug, Clone)]
pub(crate) struct KeyedRecord {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) timestamp: Option<i64>,
}

impl KeyedRecord {
    pub(crate) fn new(key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        Self {
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    pub(crate) fn header(mut self, key: &str, value: &[u8]) -> Self {
        self.headers.push((key.to_string(), value.to_vec()));
        self
    }

    pub(crate) fn at(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

fn varlong(out: &mut Vec<u8>, v: i64) {
    crate::records::write_varlong(out, v);
}

fn bytes_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        Some(b) => {
            varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => varlong(out, -1),
    }
}

/// A v2 batch at base offset 0 written byte by byte (so tests control what `kafka-protocol`'s
/// encoder cannot express: duplicate header keys, any producer id/epoch/base sequence). Record
/// `i` has offset delta `i` and timestamp `TS + i` unless given one.
pub(crate) fn keyed_batch(
    records: &[KeyedRecord],
    codec: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    const TS: i64 = 1_700_000_000_000;
    let timestamps: Vec<i64> = records
        .iter()
        .enumerate()
        .map(|(i, r)| r.timestamp.unwrap_or(TS + i as i64))
        .collect();
    let base_ts = timestamps.first().copied().unwrap_or(-1);
    let mut raw = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut body = vec![0u8];
        varlong(&mut body, timestamps[i] - base_ts);
        varlong(&mut body, i as i64);
        bytes_field(&mut body, r.key.as_deref());
        bytes_field(&mut body, r.value.as_deref());
        varlong(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            bytes_field(&mut body, Some(k.as_bytes()));
            bytes_field(&mut body, Some(v));
        }
        varlong(&mut raw, body.len() as i64);
        raw.extend_from_slice(&body);
    }
    let codec_id: i16 = match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    };
    let ours = match codec {
        Compression::None => strom_protocol::batch::Compression::None,
        Compression::Gzip => strom_protocol::batch::Compression::Gzip,
        Compression::Snappy => strom_protocol::batch::Compression::Snappy,
        Compression::Lz4 => strom_protocol::batch::Compression::Lz4,
        Compression::Zstd => strom_protocol::batch::Compression::Zstd,
    };
    let data = crate::records::compress(ours, &raw).expect("compress");
    let mut out = Vec::new();
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&((49 + data.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&codec_id.to_be_bytes());
    out.extend_from_slice(&((records.len() as i32 - 1).max(0)).to_be_bytes());
    out.extend_from_slice(&base_ts.to_be_bytes());
    let max_ts = timestamps.iter().copied().max().unwrap_or(-1);
    out.extend_from_slice(&max_ts.to_be_bytes());
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&base_sequence.to_be_bytes());
    out.extend_from_slice(&(records.len() as i32).to_be_bytes());
    out.extend_from_slice(&data);
    let crc = strom_protocol::batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// [`keyed_batch`] with the transactional attribute set (a transactional producer's batch).
pub(crate) fn txn_batch(
    records: &[KeyedRecord],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let mut out = keyed_batch(
        records,
        Compression::None,
        producer_id,
        producer_epoch,
        base_sequence,
    );
    let attributes = i16::from_be_bytes([out[21], out[22]]) | 0x10;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = strom_protocol::batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A transaction marker for `producer_id` at `timestamp` 1_700_000_000_000.
pub(crate) fn end_txn(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
) -> strom_protocol::batch::EndTxnMarker {
    strom_protocol::batch::EndTxnMarker {
        producer_id,
        producer_epoch,
        coordinator_epoch,
        commit,
        timestamp: 1_700_000_000_000,
    }
}
