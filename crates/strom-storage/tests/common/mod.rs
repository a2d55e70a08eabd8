//! Batch builders shared by the integration tests and benchmarks.
#![allow(dead_code)]

use bytes::BytesMut;
use strom_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One uncompressed v2 batch with base offset 0: `records` records with `value_len`-byte values.
pub(crate) fn batch(records: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
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
            timestamp,
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
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf.to_vec()
}

/// One uncompressed v2 batch whose record `i` has key `key-<keys[i]>` and a `value_len`-byte value.
pub(crate) fn keyed_batch(keys: &[u64], value_len: usize, timestamp: i64) -> Vec<u8> {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp,
            key: Some(bytes::Bytes::from(format!("key-{k:012}"))),
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
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf.to_vec()
}
