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
