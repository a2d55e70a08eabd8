//! Tests of idempotent producer state: duplicates, fencing, sequences, snapshots, rebuild.

use std::path::Path;

use strom_protocol::ErrorCode;

use super::*;
use crate::test_util::{Codec, KeyedRecord, keyed_batch};
use crate::{Log, LogConfig, TopicPartition};

const PID: i64 = 1000;

fn tp() -> TopicPartition {
    TopicPartition::new("idem", 0)
}

/// The test batches carry 2023 timestamps: without this, reloading would expire them.
fn never_expire() -> LogConfig {
    LogConfig {
        producer_id_expiration_ms: i64::MAX,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, clean: bool) -> Log {
    Log::open(dir, tp(), never_expire(), 0, 0, clean).unwrap()
}

fn open_with(dir: &Path, config: LogConfig, clean: bool) -> Log {
    Log::open(dir, tp(), config, 0, 0, clean).unwrap()
}

/// A batch of `n` keyed records from producer `pid` at `epoch` starting at sequence `seq`.
fn idem(n: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let records: Vec<KeyedRecord> = (0..n)
        .map(|i| KeyedRecord::new(Some(format!("k{i}").as_bytes()), Some(b"v")))
        .collect();
    keyed_batch(&records, Codec::None, pid, epoch, seq)
}

fn append(log: &Log, batch: &[u8]) -> Result<crate::LogAppendInfo, StorageError> {
    log.append(batch, 0, None)
}

#[test]
fn sequence_arithmetic_wraps_like_kafka() {
    assert_eq!(increment_sequence(5, 3), 8);
    assert_eq!(increment_sequence(i32::MAX, 1), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 2), 0);
    assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    assert_eq!(decrement_sequence(8, 3), 5);
    assert_eq!(decrement_sequence(0, 1), i32::MAX);
    assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
    assert!(in_sequence(i32::MAX, 0));
    assert!(in_sequence(-1, 0));
    assert!(in_sequence(4, 5));
    assert!(!in_sequence(4, 6));
    assert!(!in_sequence(i32::MAX, 1));
}

#[test]
fn duplicates_of_each_of_the_last_five_batches_return_their_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    // Six batches of two records: sequences 0-1, 2-3, ..., 10-11.
    let mut originals = Vec::new();
    for i in 0..6 {
        let b = idem(2, PID, 0, i * 2);
        let info = append(&log, &b).unwrap();
        assert!(!info.duplicate);
        originals.push((b, info));
    }
    let leo = log.log_end_offset();
    assert_eq!(leo, 12);
    for (b, info) in &originals[1..] {
        let again = append(&log, b).unwrap();
        assert!(again.duplicate);
        assert_eq!(
            (again.base_offset, again.last_offset),
            (info.base_offset, info.last_offset)
        );
        assert_eq!(again.max_timestamp, info.max_timestamp);
    }
    // The sixth-newest is no longer cached: Kafka answers OUT_OF_ORDER_SEQUENCE_NUMBER.
    let err = append(&log, &originals[0].0).unwrap_err();
    assert!(
        matches!(err, StorageError::OutOfOrderSequence { .. }),
        "{err}"
    );
    assert_eq!(err.error_code(), ErrorCode::OutOfOrderSequenceNumber);
    assert_eq!(log.log_end_offset(), leo, "nothing was written");
    // The producer goes on.
    assert_eq!(append(&log, &idem(1, PID, 0, 12)).unwrap().base_offset, 12);
}

#[test]
fn a_gap_is_out_of_order_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    append(&log, &idem(3, PID, 0, 0)).unwrap();
    for bad in [4, 2, 1, 100] {
        let err = append(&log, &idem(1, PID, 0, bad)).unwrap_err();
        assert!(
            matches!(err, StorageError::OutOfOrderSequence { first_sequence, last_sequence: 2, .. } if first_sequence == bad)
        );
    }
    assert_eq!(log.log_end_offset(), 3);
    let size = log.size_in_bytes();
    append(&log, &idem(1, PID, 0, 3)).unwrap();
    assert!(log.size_in_bytes() > size);
}

#[test]
fn epochs_fence_and_a_new_epoch_starts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    append(&log, &idem(2, PID, 3, 0)).unwrap();
    // Older epoch: fenced.
    let err = append(&log, &idem(1, PID, 2, 2)).unwrap_err();
    assert!(matches!(
        err,
        StorageError::InvalidProducerEpoch {
            epoch: 2,
            current_epoch: 3,
            ..
        }
    ));
    assert_eq!(err.error_code(), ErrorCode::InvalidProducerEpoch);
    // Newer epoch must restart the sequence.
    let err = append(&log, &idem(1, PID, 4, 2)).unwrap_err();
    assert!(matches!(err, StorageError::OutOfOrderSequence { .. }));
    append(&log, &idem(1, PID, 4, 0)).unwrap();
    // The old epoch is now fenced too, and its cached batches are gone.
    let err = append(&log, &idem(2, PID, 3, 0)).unwrap_err();
    assert!(matches!(err, StorageError::InvalidProducerEpoch { .. }));
    assert_eq!(log.log_end_offset(), 3);
    let entry = log.producer_state_entry(PID).unwrap();
    assert_eq!(entry.epoch, 4);
    assert_eq!(entry.batches.len(), 1);
}

#[test]
fn an_unknown_producer_may_start_at_any_sequence_as_in_kafka_4() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    append(&log, &idem(1, PID, 0, 57)).unwrap();
    append(&log, &idem(1, PID, 0, 58)).unwrap();
    assert!(append(&log, &idem(1, PID, 0, 60)).is_err());
    // Another producer id is independent.
    append(&log, &idem(1, PID + 1, 0, 0)).unwrap();
}

#[test]
fn sequences_wrap_at_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    // Sequences MAX-1, MAX, 0.
    let first = idem(3, PID, 0, i32::MAX - 1);
    append(&log, &first).unwrap();
    let entry = log.producer_state_entry(PID).unwrap();
    assert_eq!(entry.last_seq(), 0);
    assert_eq!(entry.batches[0].first_seq(), i32::MAX - 1);
    append(&log, &idem(1, PID, 0, 1)).unwrap();
    assert!(append(&log, &first).unwrap().duplicate);
    // Exactly at the edge: last sequence MAX, next batch starts at 0.
    let pid = PID + 1;
    append(&log, &idem(2, pid, 0, i32::MAX - 1)).unwrap();
    append(&log, &idem(2, pid, 0, 0)).unwrap();
    assert!(append(&log, &idem(1, pid, 0, 3)).is_err());
}

#[test]
fn non_idempotent_batches_are_not_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    let b = idem(2, -1, -1, -1);
    append(&log, &b).unwrap();
    assert!(!append(&log, &b).unwrap().duplicate);
    assert!(log.active_producers().is_empty());
}

#[test]
fn active_producers_report_what_describe_producers_needs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    append(&log, &idem(3, PID, 2, 0)).unwrap();
    append(&log, &idem(1, 7, 0, 0)).unwrap();
    let producers = log.active_producers();
    assert_eq!(producers.len(), 2);
    assert_eq!(
        producers[1],
        ProducerSnapshotEntry {
            producer_id: PID,
            producer_epoch: 2,
            last_sequence: 2,
            last_timestamp: 1_700_000_000_002,
            coordinator_epoch: -1,
            current_txn_start_offset: -1,
        }
    );
    assert_eq!(producers[0].producer_id, 7);
}

#[test]
fn idle_producers_expire() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: 1000,
        ..LogConfig::default()
    };
    let log = open_with(dir.path(), config, true);
    append(&log, &idem(1, PID, 0, 0)).unwrap();
    let last = log.active_producers()[0].last_timestamp;
    assert_eq!(log.remove_expired_producers(last + 999), 0);
    assert_eq!(log.remove_expired_producers(last + 1000), 1);
    assert!(log.active_producers().is_empty());
    // Forgotten: any sequence is accepted again.
    append(&log, &idem(1, PID, 0, 40)).unwrap();
}

#[test]
fn snapshot_format_is_kafkas_producer_snapshot_v1() {
    let entry = ProducerStateEntry {
        producer_id: 0x0102,
        epoch: 3,
        batches: VecDeque::from([
            BatchMetadata {
                last_seq: 1,
                last_offset: 5,
                offset_delta: 1,
                timestamp: 10,
            },
            BatchMetadata {
                last_seq: 9,
                last_offset: 20,
                offset_delta: 4,
                timestamp: 30,
            },
        ]),
        coordinator_epoch: -1,
        last_timestamp: 30,
        current_txn_first_offset: None,
    };
    let bytes = encode_snapshot(&[&entry]);
    assert_eq!(bytes.len(), 2 + 4 + 4 + SNAPSHOT_ENTRY_SIZE);
    assert_eq!(&bytes[..2], &1i16.to_be_bytes());
    assert_eq!(&bytes[6..10], &1i32.to_be_bytes());
    let mut expected = Vec::new();
    expected.extend_from_slice(&0x0102i64.to_be_bytes());
    expected.extend_from_slice(&3i16.to_be_bytes());
    expected.extend_from_slice(&9i32.to_be_bytes()); // last sequence
    expected.extend_from_slice(&20i64.to_be_bytes()); // last offset
    expected.extend_from_slice(&4i32.to_be_bytes()); // offset delta
    expected.extend_from_slice(&30i64.to_be_bytes()); // timestamp
    expected.extend_from_slice(&(-1i32).to_be_bytes()); // coordinator epoch
    expected.extend_from_slice(&(-1i64).to_be_bytes()); // current txn first offset
    assert_eq!(&bytes[10..], &expected[..]);
    assert_eq!(
        u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]),
        crc32c::crc32c(&bytes[6..])
    );
    // Round trip: Kafka keeps only the last batch.
    let decoded = decode_snapshot(&bytes).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].batches.len(), 1);
    assert_eq!(decoded[0].batches[0], entry.batches[1]);
    assert_eq!((decoded[0].epoch, decoded[0].last_timestamp), (3, 30));
    // Any flipped byte is caught.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(decode_snapshot(&bad).is_err(), "byte {i}");
    }
    assert!(decode_snapshot(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn snapshots_at_roll_and_close_reload_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        ..never_expire()
    };
    let log = open_with(dir.path(), config.clone(), true);
    let mut last = None;
    for i in 0..8 {
        let b = idem(2, PID, 1, i * 2);
        last = Some((b.clone(), append(&log, &b).unwrap()));
    }
    let rolled: Vec<i64> = log.producer_snapshot_offsets();
    assert!(rolled.len() >= 2, "a snapshot per roll: {rolled:?}");
    log.close().unwrap();
    let leo = log.log_end_offset();
    drop(log);
    assert!(
        producer_state_snapshot_exists(dir.path(), leo),
        "clean shutdown snapshot at the log end"
    );
    let log = open_with(dir.path(), config, true);
    let (b, info) = last.unwrap();
    let again = append(&log, &b).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, info.base_offset);
    append(&log, &idem(1, PID, 1, 16)).unwrap();
    assert!(append(&log, &idem(1, PID, 0, 17)).is_err());
}

fn producer_state_snapshot_exists(dir: &Path, offset: i64) -> bool {
    snapshot_file(dir, offset).exists()
}

fn remove_snapshots(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
}

#[test]
fn after_an_unclean_stop_the_state_is_rebuilt_from_snapshot_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        ..never_expire()
    };
    let log = open_with(dir.path(), config.clone(), true);
    let mut batches = Vec::new();
    for i in 0..10 {
        let b = idem(2, PID, 0, i * 2);
        batches.push((b.clone(), append(&log, &b).unwrap()));
        append(&log, &idem(1, 77, 5, i)).unwrap();
    }
    drop(log); // crash: no close, no final snapshot
    let log = open_with(dir.path(), config.clone(), false);
    let (b, info) = batches.last().unwrap();
    let again = append(&log, b).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, info.base_offset);
    assert_eq!(log.producer_state_entry(77).unwrap().last_seq(), 9);
    assert_eq!(log.producer_state_entry(77).unwrap().epoch, 5);
    append(&log, &idem(1, 77, 5, 10)).unwrap();
    drop(log);

    // Without any snapshot the whole log is replayed.
    remove_snapshots(dir.path());
    let log = open_with(dir.path(), config, false);
    assert_eq!(log.producer_state_entry(77).unwrap().last_seq(), 10);
    assert_eq!(log.producer_state_entry(PID).unwrap().last_seq(), 19);
    assert!(append(&log, &idem(1, 77, 5, 12)).is_err());
    append(&log, &idem(1, 77, 5, 11)).unwrap();
}

#[test]
fn a_corrupt_snapshot_is_dropped_and_the_state_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true);
    append(&log, &idem(2, PID, 0, 0)).unwrap();
    log.close().unwrap();
    drop(log);
    let path = snapshot_file(dir.path(), 2);
    assert!(path.exists());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let log = open(dir.path(), false);
    assert_eq!(log.producer_state_entry(PID).unwrap().last_seq(), 1);
    assert!(append(&log, &idem(2, PID, 0, 0)).unwrap().duplicate);
}

#[test]
fn retention_deletes_the_snapshots_of_deleted_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        file_delete_delay_ms: 0,
        ..never_expire()
    };
    let log = open_with(dir.path(), config, true);
    for i in 0..8 {
        append(&log, &idem(2, PID, 0, i * 2)).unwrap();
    }
    let before = log.producer_snapshot_offsets();
    let target = before[1];
    log.delete_records_before(target).unwrap();
    let after = log.producer_snapshot_offsets();
    assert!(
        after.iter().all(|&o| o >= target),
        "{before:?} -> {after:?}"
    );
    // The producer is still known: its state is not dropped with the segments.
    append(&log, &idem(1, PID, 0, 16)).unwrap();
}

#[test]
fn producers_expired_at_load_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), tp(), LogConfig::default(), 0, 0, true).unwrap();
    append(&log, &idem(2, PID, 0, 0)).unwrap();
    log.close().unwrap();
    drop(log);
    // The batch's timestamp is from 2023: more than producer.id.expiration.ms ago.
    let log = Log::open(dir.path(), tp(), LogConfig::default(), 0, 0, true).unwrap();
    assert!(log.active_producers().is_empty());
}
