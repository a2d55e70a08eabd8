//! Property tests of the record-batch view: whatever the bytes, it never panics; valid batches
//! validate with the header the encoder wrote; any corruption inside the CRC is caught.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use strom_protocol::batch::{self, BatchError, BatchHeader, Batches, ProduceLimits, TimestampType};
use strom_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KpTimestampType,
};

const NOW: i64 = 1_700_000_000_000;

fn limits() -> ProduceLimits {
    ProduceLimits {
        max_batch_bytes: usize::MAX,
        timestamp_type: TimestampType::CreateTime,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
    }
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

prop_compose! {
    fn records()(values in prop::collection::vec(
        (prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
         prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
         0i64..100_000),
        1..30)) -> Vec<Record> {
        values.into_iter().enumerate().map(|(i, (key, value, dt))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: KpTimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: NOW + dt,
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers: Default::default(),
        }).collect()
    }
}

fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn encoded_batches_validate_with_matching_header(recs in records(), c in compression()) {
        let bytes = encode(&recs, c);
        let h = batch::validate_produce(&bytes, &limits(), NOW).unwrap();
        prop_assert_eq!(h.records_count as usize, recs.len());
        prop_assert_eq!(h.size(), bytes.len());
        prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| r.timestamp).max().unwrap());
        prop_assert_eq!(h.base_sequence, -1);
    }

    #[test]
    fn offset_patching_is_seen_by_decoders(recs in records(), c in compression(), base in 0i64..1 << 40) {
        let mut bytes = encode(&recs, c);
        batch::set_base_offset(&mut bytes, base);
        let h = BatchHeader::parse(&bytes).unwrap();
        batch::verify_crc(&h, &bytes).unwrap();
        let mut buf = Bytes::from(bytes);
        let decoded = RecordBatchDecoder::decode(&mut buf).unwrap();
        let offsets: Vec<i64> = decoded.records.iter().map(|r| r.offset).collect();
        let expected: Vec<i64> = (0..recs.len() as i64).map(|i| base + i).collect();
        prop_assert_eq!(offsets, expected);
    }

    #[test]
    fn any_flipped_bit_after_the_crc_field_is_refused(recs in records(), c in compression(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&recs, c);
        let at = 21 + pos.index(bytes.len() - 21);
        bytes[at] ^= 1 << bit;
        prop_assert!(batch::validate_produce(&bytes, &limits(), NOW).is_err());
    }

    #[test]
    fn truncation_is_an_error_not_a_panic(recs in records(), c in compression(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&recs, c);
        let cut = cut.index(bytes.len());
        let err = batch::validate_produce(&bytes[..cut], &limits(), NOW).unwrap_err();
        let expected = matches!(err, BatchError::Truncated { .. } | BatchError::NotOneBatch(0) | BatchError::UnsupportedMagic(_));
        prop_assert!(expected, "unexpected error {:?}", err);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = batch::validate_produce(&bytes, &limits(), NOW);
        for item in Batches::new(&bytes) {
            let _ = item;
        }
        let _ = batch::count_uncompressed_records(&bytes);
    }

    #[test]
    fn concatenated_batches_iterate_back(batches in prop::collection::vec((records(), compression()), 1..6)) {
        let mut all = Vec::new();
        let mut sizes = Vec::new();
        for (recs, c) in &batches {
            let b = encode(recs, *c);
            sizes.push(b.len());
            all.extend_from_slice(&b);
        }
        let seen: Vec<usize> = Batches::new(&all).map(|r| r.unwrap().1.len()).collect();
        prop_assert_eq!(seen, sizes);
    }
}
