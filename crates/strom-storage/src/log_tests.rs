//! Tests of one partition log: appends, rolls, reads, timestamp lookups, flushes and recovery.

use std::fs;
use std::path::{Path, PathBuf};

use strom_protocol::batch::{BatchHeader, Batches, set_log_append_time, verify_crc};

use super::*;
use crate::test_util::{Codec, batch, batch_with_timestamps};

const TS: i64 = 1_700_000_000_000;

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, tp(), config, 0, 0, true).unwrap()
}

fn reopen(dir: &Path, config: LogConfig, recovery_point: i64, clean: bool) -> Log {
    Log::open(dir, tp(), config, recovery_point, 0, clean).unwrap()
}

fn append(log: &Log, records: usize, value_len: usize, ts: i64) -> LogAppendInfo {
    let b = batch(records, value_len, ts);
    log.append(&b, 7, None).unwrap()
}

fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    Batches::new(bytes)
        .map(|b| {
            let (h, whole) = b.expect("only whole batches are returned");
            verify_crc(&h, whole).expect("stored batches keep their CRC");
            h
        })
        .collect()
}

fn log_file(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Reads everything from `offset` and returns the batch headers.
fn read_all(log: &Log, offset: i64) -> Vec<BatchHeader> {
    headers(
        &log.read(offset, usize::MAX / 2, i64::MAX, false)
            .unwrap()
            .records,
    )
}

/// Appends `n` batches of 3 records (~230 bytes each) with growing timestamps.
fn fill(log: &Log, n: usize) -> Vec<LogAppendInfo> {
    (0..n)
        .map(|i| append(log, 3, 50, TS + i as i64 * 10))
        .collect()
}

#[test]
fn append_assigns_offsets_and_stamps_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 0);
    let first = append(&log, 3, 10, TS);
    assert_eq!((first.base_offset, first.last_offset), (0, 2));
    assert_eq!(first.max_timestamp, TS);
    assert_eq!(first.log_start_offset, 0);
    let second = append(&log, 1, 10, TS + 5);
    assert_eq!((second.base_offset, second.last_offset), (3, 3));
    assert_eq!(log.log_end_offset(), 4);
    let read = log.read(0, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!((read.log_start_offset, read.log_end_offset), (0, 4));
    let hs = headers(&read.records);
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[1].base_offset, 3);
    assert!(hs.iter().all(|h| h.partition_leader_epoch == 7));
}

#[test]
fn round_trip_across_segments_with_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    let infos = fill(&log, 30);
    assert!(log.segment_bases().len() > 5, "{:?}", log.segment_bases());
    let leo = log.log_end_offset();
    assert_eq!(leo, 90);
    for offset in 0..leo {
        let hs = read_all(&log, offset);
        assert!(hs[0].base_offset <= offset && offset <= hs[0].last_offset());
        // Everything up to the end, contiguous, across segment boundaries.
        for pair in hs.windows(2) {
            assert_eq!(pair[0].next_offset(), pair[1].base_offset);
        }
        assert_eq!(hs.last().unwrap().next_offset(), leo);
    }
    let sizes: u64 = infos.len() as u64 * batch(3, 50, TS).len() as u64;
    assert_eq!(log.size_in_bytes(), sizes);
}

#[test]
fn read_stops_at_max_bytes_with_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 20);
    let one = batch(3, 50, TS).len();
    for max_bytes in [one, one + 1, 2 * one - 1, 2 * one, 5 * one + 7, 13 * one] {
        let records = log.read(0, max_bytes, i64::MAX, false).unwrap().records;
        assert_eq!(
            records.len(),
            max_bytes / one * one,
            "max_bytes {max_bytes}"
        );
        assert_eq!(headers(&records).len(), max_bytes / one);
    }
    // From the middle of a batch in a later segment.
    let records = log.read(31, 3 * one, i64::MAX, false).unwrap().records;
    let hs = headers(&records);
    assert_eq!(hs.len(), 3);
    assert_eq!(hs[0].base_offset, 30);
}

#[test]
fn min_one_batch_returns_an_oversized_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 5);
    let r = log.read(4, 10, i64::MAX, false).unwrap();
    assert!(r.records.is_empty());
    let r = log.read(4, 10, i64::MAX, true).unwrap();
    let hs = headers(&r.records);
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0].base_offset, 3);
    let r = log.read(4, 0, i64::MAX, true).unwrap();
    assert_eq!(headers(&r.records).len(), 1);
}

#[test]
fn read_stops_before_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 10);
    // Batches start at 0, 3, 6, ...: a bound of 7 keeps the batch starting at 6.
    let hs = headers(&log.read(0, 1 << 20, 7, false).unwrap().records);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        [0, 3, 6]
    );
    let hs = headers(&log.read(0, 1 << 20, 6, false).unwrap().records);
    assert_eq!(hs.last().unwrap().base_offset, 3);
    // At or past the bound: nothing, even inside the log.
    assert!(log.read(6, 1 << 20, 6, true).unwrap().records.is_empty());
    assert!(log.read(20, 1 << 20, 6, true).unwrap().records.is_empty());
}

#[test]
fn reads_outside_the_log_are_out_of_range_and_the_end_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    assert!(log.read(0, 100, i64::MAX, true).unwrap().records.is_empty());
    fill(&log, 3);
    let end = log.read(9, 100, i64::MAX, true).unwrap();
    assert!(end.records.is_empty());
    assert_eq!(end.log_end_offset, 9);
    for offset in [-1, 10, i64::MAX] {
        let err = log.read(offset, 100, i64::MAX, true).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::OffsetOutOfRange {
                    log_start_offset: 0,
                    log_end_offset: 9,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn rolls_when_the_segment_would_pass_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let one = batch(3, 50, TS).len() as u64;
    let config = LogConfig {
        segment_bytes: 3 * one,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    fill(&log, 7);
    assert_eq!(log.segment_bases(), [0, 9, 18]);
    for base in [0, 9, 18] {
        assert!(log_file(dir.path(), base).exists());
        assert!(dir.path().join(format!("{base:020}.index")).exists());
        assert!(dir.path().join(format!("{base:020}.timeindex")).exists());
    }
    assert_eq!(
        fs::metadata(log_file(dir.path(), 0)).unwrap().len(),
        3 * one
    );
}

#[test]
fn a_batch_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 100,
            ..LogConfig::default()
        },
    );
    let big = batch(1, 200, TS);
    let err = log.append(&big, 0, None).unwrap_err();
    assert!(
        matches!(err, StorageError::RecordListTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.error_code(),
        strom_protocol::ErrorCode::RecordListTooLarge
    );
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn rolls_when_the_offset_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        // Room for 3 offset entries (and 2 time entries, which a constant timestamp never fills).
        segment_index_bytes: 24,
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    // First append: no entry (nothing since the segment start); every later one adds one.
    for _ in 0..4 {
        append(&log, 3, 50, TS);
    }
    assert_eq!(log.active_index_entries(), (3, 1));
    assert_eq!(log.segment_bases(), [0]);
    append(&log, 3, 50, TS);
    assert_eq!(log.segment_bases(), [0, 12]);
}

#[test]
fn rolls_when_the_time_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_index_bytes: 24,
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    fill(&log, 3);
    assert_eq!(log.active_index_entries(), (2, 2));
    assert_eq!(log.segment_bases(), [0]);
    fill(&log, 1);
    assert_eq!(log.segment_bases(), [0, 9]);
}

#[test]
fn rolls_when_the_segment_is_older_than_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    append(&log, 1, 10, TS);
    append(&log, 1, 10, TS + 1000);
    assert_eq!(log.segment_bases(), [0]);
    append(&log, 1, 10, TS + 1001);
    assert_eq!(log.segment_bases(), [0, 2]);
    // Measured from the new segment's first batch.
    append(&log, 1, 10, TS + 1500);
    assert_eq!(log.segment_bases(), [0, 2]);
}

#[test]
fn without_timestamps_segment_ms_counts_wall_clock_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 20,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config);
    append(&log, 1, 10, -1);
    std::thread::sleep(std::time::Duration::from_millis(60));
    append(&log, 1, 10, -1);
    assert_eq!(log.segment_bases(), [0, 1]);
}

#[test]
fn sealed_segments_persist_trimmed_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 10);
    let index = fs::read(dir.path().join(format!("{:020}.index", 0))).unwrap();
    let time_index = fs::read(dir.path().join(format!("{:020}.timeindex", 0))).unwrap();
    assert!(
        !index.is_empty() && index.len().is_multiple_of(8),
        "{}",
        index.len()
    );
    assert!(!time_index.is_empty() && time_index.len().is_multiple_of(12));
    // The last time index entry of a sealed segment is its largest timestamp.
    let last = &time_index[time_index.len() - 12..];
    let ts = i64::from_be_bytes(last[..8].try_into().unwrap());
    let bases = log.segment_bases();
    let batches_in_first = (bases[1] / 3) as i64;
    assert_eq!(ts, TS + (batches_in_first - 1) * 10);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    for codec in [Codec::None, Codec::Gzip] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config());
        // Batch i holds offsets 3i..3i+2 with timestamps 1000 + 10i + {0, 2, 4}.
        for i in 0..30i64 {
            let t = 1000 + 10 * i;
            let b = batch_with_timestamps(&[t, t + 2, t + 4], 40, codec);
            log.append(&b, 0, None).unwrap();
        }
        assert!(log.segment_bases().len() > 3);
        let at = |ts| log.offset_for_timestamp(ts).unwrap();
        assert_eq!(
            at(0),
            Some(TimestampOffset {
                timestamp: 1000,
                offset: 0
            })
        );
        assert_eq!(
            at(1000),
            Some(TimestampOffset {
                timestamp: 1000,
                offset: 0
            })
        );
        assert_eq!(
            at(1001),
            Some(TimestampOffset {
                timestamp: 1002,
                offset: 1
            })
        );
        assert_eq!(
            at(1004),
            Some(TimestampOffset {
                timestamp: 1004,
                offset: 2
            })
        );
        assert_eq!(
            at(1005),
            Some(TimestampOffset {
                timestamp: 1010,
                offset: 3
            })
        );
        for i in 0..30i64 {
            let t = 1000 + 10 * i;
            assert_eq!(
                at(t + 3),
                Some(TimestampOffset {
                    timestamp: t + 4,
                    offset: 3 * i + 2
                }),
                "{codec:?} batch {i}"
            );
        }
        assert_eq!(at(1000 + 10 * 29 + 5), None);
    }
}

#[test]
fn offset_for_timestamp_with_out_of_order_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let a = batch_with_timestamps(&[100, 300], 10, Codec::None);
    let b = batch_with_timestamps(&[200], 10, Codec::None);
    log.append(&a, 0, None).unwrap();
    log.append(&b, 0, None).unwrap();
    let found = log.offset_for_timestamp(150).unwrap();
    assert_eq!(
        found,
        Some(TimestampOffset {
            timestamp: 300,
            offset: 1
        })
    );
    let found = log.offset_for_timestamp(301).unwrap();
    assert_eq!(found, None);
}

#[test]
fn append_with_log_append_time_stamps_the_stored_batch_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    let b = batch_with_timestamps(&[10, 20, 30], 10, Codec::Gzip);
    let original = b.clone();
    let info = log.append(&b, 3, Some(5000)).unwrap();
    assert_eq!(info.max_timestamp, 5000);
    assert_eq!(b, original, "the caller's bytes are not modified");
    let read = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let h = BatchHeader::parse(&read.records).unwrap();
    verify_crc(&h, &read.records).unwrap();
    assert_eq!(h.max_timestamp, 5000);
    assert_eq!(h.partition_leader_epoch, 3);
    assert_eq!(
        h.timestamp_type(),
        strom_protocol::batch::TimestampType::LogAppendTime
    );
    assert_eq!(
        &read.records[strom_protocol::batch::HEADER_LEN..],
        &original[strom_protocol::batch::HEADER_LEN..]
    );
    assert_eq!(
        log.offset_for_timestamp(4000).unwrap(),
        Some(TimestampOffset {
            timestamp: 5000,
            offset: 0
        })
    );
}

#[test]
fn log_append_time_batches_use_the_batch_timestamp_for_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    append(&log, 2, 10, 100);
    let mut b = batch_with_timestamps(&[10, 20, 30], 10, Codec::Gzip);
    set_log_append_time(&mut b, 5000);
    log.append(&b, 0, None).unwrap();
    let found = log.offset_for_timestamp(4000).unwrap();
    assert_eq!(
        found,
        Some(TimestampOffset {
            timestamp: 5000,
            offset: 2
        })
    );
    let max = log.max_timestamp_offset().unwrap();
    assert_eq!(
        max,
        Some(TimestampOffset {
            timestamp: 5000,
            offset: 2
        })
    );
}

#[test]
fn max_timestamp_offset_is_the_earliest_record_with_the_largest_timestamp() {
    for codec in [Codec::None, Codec::Gzip] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(
            dir.path(),
            LogConfig {
                segment_bytes: 200,
                ..LogConfig::default()
            },
        );
        assert_eq!(log.max_timestamp_offset().unwrap(), None);
        for timestamps in [&[10, 20][..], &[30, 50, 20], &[40, 50], &[45]] {
            let b = batch_with_timestamps(timestamps, 10, codec);
            log.append(&b, 0, None).unwrap();
        }
        assert!(log.segment_bases().len() > 1, "{:?}", log.segment_bases());
        assert_eq!(
            log.max_timestamp_offset().unwrap(),
            Some(TimestampOffset {
                timestamp: 50,
                offset: 3
            })
        );
        // Survives a restart (the time index keeps each segment's largest timestamp).
        log.close().unwrap();
        let log = open(dir.path(), LogConfig::default());
        assert_eq!(
            log.max_timestamp_offset().unwrap(),
            Some(TimestampOffset {
                timestamp: 50,
                offset: 3
            })
        );
        assert_eq!(
            log.offset_for_timestamp(41).unwrap(),
            Some(TimestampOffset {
                timestamp: 50,
                offset: 3
            })
        );
    }
}

#[test]
fn flush_advances_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.recovery_point(), 0);
    fill(&log, 10);
    log.flush_rolled_segments().unwrap();
    let active_base = *log.segment_bases().last().unwrap();
    assert_eq!(log.recovery_point(), active_base);
    let before = log.last_flush_ms();
    std::thread::sleep(std::time::Duration::from_millis(2));
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 30);
    assert!(log.last_flush_ms() > before);
}

#[test]
fn flush_messages_triggers_a_flush_from_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            flush_messages: 5,
            ..LogConfig::default()
        },
    );
    append(&log, 2, 10, TS);
    append(&log, 2, 10, TS);
    assert_eq!(log.recovery_point(), 0);
    append(&log, 2, 10, TS);
    assert_eq!(log.recovery_point(), 6);
}

#[test]
fn closed_log_refuses_appends_but_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    fill(&log, 2);
    log.close().unwrap();
    let b = batch(1, 1, TS);
    let err = log.append(&b, 0, None).unwrap_err();
    assert!(matches!(err, StorageError::Closed(_)));
    assert_eq!(read_all(&log, 0).len(), 2);
}

#[test]
fn a_new_log_in_an_empty_or_missing_dir() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("orders-0");
    let log = Log::open(&dir, tp(), LogConfig::default(), 0, 42, false).unwrap();
    assert_eq!(log.log_start_offset(), 42);
    assert_eq!(log.log_end_offset(), 42);
    assert!(log_file(&dir, 42).exists());
    assert_eq!(append(&log, 1, 1, TS).base_offset, 42);
    assert!(matches!(
        log.read(0, 10, i64::MAX, false),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reopen_after_clean_shutdown_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 25);
    let bases = log.segment_bases();
    let before = log.read(0, 1 << 20, i64::MAX, false).unwrap().records;
    log.close().unwrap();
    drop(log);
    let log = reopen(dir.path(), small_config(), 0, true);
    assert_eq!(log.log_end_offset(), 75);
    assert_eq!(log.recovery_point(), 75);
    assert_eq!(log.segment_bases(), bases);
    assert_eq!(
        log.read(0, 1 << 20, i64::MAX, false).unwrap().records,
        before
    );
    // The active segment goes on where it was.
    let info = append(&log, 1, 1, TS + 1000);
    assert_eq!(info.base_offset, 75);
    assert_eq!(log.segment_bases(), bases);
}

#[test]
fn torn_tail_is_truncated_at_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    fill(&log, 5);
    let one = batch(3, 50, TS).len() as u64;
    drop(log); // a crash: no close, no flush
    let path = log_file(dir.path(), 0);
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(5 * one - 10).unwrap();
    let log = reopen(dir.path(), LogConfig::default(), 0, false);
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(fs::metadata(&path).unwrap().len(), 4 * one);
    assert_eq!(append(&log, 1, 1, TS).base_offset, 12);
    assert_eq!(read_all(&log, 0).len(), 5);
}

/// Flips a byte inside the records of the `nth` batch of a segment file.
fn corrupt_batch(path: &Path, nth: usize) -> (i64, u64) {
    let mut bytes = fs::read(path).unwrap();
    let mut it = Batches::new(&bytes);
    let mut position = 0;
    let mut header = None;
    for _ in 0..=nth {
        position = it.position();
        header = Some(it.next().unwrap().unwrap().0);
    }
    let header = header.unwrap();
    let at = position + header.size() - 3;
    bytes[at] ^= 0x55;
    fs::write(path, bytes).unwrap();
    (header.base_offset, position as u64)
}

#[test]
fn crc_error_in_the_last_segment_truncates_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 20);
    let last = *log.segment_bases().last().unwrap();
    drop(log);
    let path = log_file(dir.path(), last);
    let (bad_offset, position) = corrupt_batch(&path, 1);
    let log = reopen(dir.path(), small_config(), 0, false);
    assert_eq!(log.log_end_offset(), bad_offset);
    assert_eq!(fs::metadata(&path).unwrap().len(), position);
    assert_eq!(*log.segment_bases().last().unwrap(), last);
    assert_eq!(read_all(&log, 0).last().unwrap().next_offset(), bad_offset);
}

#[test]
fn crc_error_in_an_earlier_segment_deletes_the_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 20);
    let bases = log.segment_bases();
    assert!(bases.len() >= 4);
    drop(log);
    let (bad_offset, _) = corrupt_batch(&log_file(dir.path(), bases[1]), 1);
    let log = reopen(dir.path(), small_config(), 0, false);
    assert_eq!(log.log_end_offset(), bad_offset);
    assert_eq!(log.segment_bases(), bases[..2]);
    for &base in &bases[2..] {
        assert!(!log_file(dir.path(), base).exists());
        assert!(!dir.path().join(format!("{base:020}.index")).exists());
    }
    // Appends continue in the truncated segment.
    assert_eq!(append(&log, 1, 1, TS).base_offset, bad_offset);
}

#[test]
fn segments_below_the_recovery_point_are_not_rescanned() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 20);
    let bases = log.segment_bases();
    log.flush().unwrap();
    drop(log);
    corrupt_batch(&log_file(dir.path(), bases[0]), 1);
    // Recovery starts at the segment holding offset bases[1]: the damage in the first segment
    // is not looked at (it was flushed, so Kafka trusts it too).
    let log = reopen(dir.path(), small_config(), bases[1], false);
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.recovery_point(), bases[1]);
    drop(log);
    // From an earlier recovery point the damage is found and everything after it goes.
    let log = reopen(dir.path(), small_config(), 0, false);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.segment_bases(), [0]);
}

#[test]
fn missing_indexes_are_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 25);
    log.close().unwrap();
    drop(log);
    let index = dir.path().join(format!("{:020}.index", 0));
    let time_index = dir.path().join(format!("{:020}.timeindex", 0));
    let (index_bytes, time_bytes) = (fs::read(&index).unwrap(), fs::read(&time_index).unwrap());
    assert!(!index_bytes.is_empty());
    fs::remove_file(&index).unwrap();
    fs::remove_file(&time_index).unwrap();
    let log = reopen(dir.path(), small_config(), 75, true);
    assert_eq!(log.log_end_offset(), 75);
    assert_eq!(fs::read(&index).unwrap(), index_bytes);
    assert_eq!(fs::read(&time_index).unwrap(), time_bytes);
    for offset in 0..75 {
        let hs = read_all(&log, offset);
        assert!(hs[0].base_offset <= offset && offset <= hs[0].last_offset());
    }
}

#[test]
fn garbage_indexes_are_rebuilt() {
    let garbage: [&[u8]; 4] = [
        &[0xff; 16],                                       // positions past the end of the log
        &[0x01; 13],                                       // not whole entries
        &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 2], // decreasing
        &[0, 0, 0, 1, 0, 0, 0, 5],                         // points into the middle of a batch
    ];
    for bad in garbage {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_config());
        fill(&log, 25);
        log.close().unwrap();
        drop(log);
        let index = dir.path().join(format!("{:020}.index", 0));
        let time_index = dir.path().join(format!("{:020}.timeindex", 0));
        let (index_bytes, time_bytes) = (fs::read(&index).unwrap(), fs::read(&time_index).unwrap());
        fs::write(&index, bad).unwrap();
        fs::write(&time_index, [0x7f; 24]).unwrap();
        let log = reopen(dir.path(), small_config(), 75, true);
        assert_eq!(fs::read(&index).unwrap(), index_bytes, "{bad:?}");
        assert_eq!(fs::read(&time_index).unwrap(), time_bytes, "{bad:?}");
        assert_eq!(log.log_end_offset(), 75);
        for offset in 0..75 {
            let hs = read_all(&log, offset);
            assert!(hs[0].base_offset <= offset && offset <= hs[0].last_offset());
        }
    }
}

#[test]
fn a_garbage_time_index_alone_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 25);
    log.close().unwrap();
    drop(log);
    let time_index = dir.path().join(format!("{:020}.timeindex", 0));
    let time_bytes = fs::read(&time_index).unwrap();
    // Decreasing timestamps.
    let mut bad = Vec::new();
    for (ts, rel) in [(500i64, 1u32), (400, 2)] {
        bad.extend_from_slice(&ts.to_be_bytes());
        bad.extend_from_slice(&rel.to_be_bytes());
    }
    fs::write(&time_index, bad).unwrap();
    let _log = reopen(dir.path(), small_config(), 75, true);
    assert_eq!(fs::read(&time_index).unwrap(), time_bytes);
}

#[test]
fn leftover_files_are_cleaned_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config());
    fill(&log, 3);
    log.close().unwrap();
    drop(log);
    let orphan = dir.path().join(format!("{:020}.index", 999));
    let deleted = dir.path().join(format!("{:020}.log.deleted", 5));
    fs::write(&orphan, [0u8; 8]).unwrap();
    fs::write(&deleted, b"x").unwrap();
    fs::write(dir.path().join("partition.metadata"), b"kept").unwrap();
    let log = reopen(dir.path(), small_config(), 0, true);
    assert!(!orphan.exists());
    assert!(!deleted.exists());
    assert!(dir.path().join("partition.metadata").exists());
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn unclean_open_of_an_empty_segment_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(log_file(dir.path(), 0), b"").unwrap();
    let log = reopen(dir.path(), LogConfig::default(), 0, false);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(append(&log, 2, 1, TS).last_offset, 1);
}

#[test]
fn concurrent_appends_and_reads() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), small_config()));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    append(&log, 2, 30, TS);
                }
            })
        })
        .collect();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                let leo = log.log_end_offset();
                if leo > 0 {
                    let hs = headers(&log.read(leo - 1, 1 << 16, i64::MAX, true).unwrap().records);
                    assert!(hs[0].last_offset() >= leo - 1);
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    assert_eq!(log.log_end_offset(), 400);
    let hs = read_all(&log, 0);
    assert_eq!(hs.len(), 200);
}

#[test]
fn log_and_manager_are_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Log>();
    shared::<crate::LogManager>();
}

#[test]
fn update_config_applies_from_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    fill(&log, 3);
    assert_eq!(log.segment_bases(), [0]);
    let config = LogConfig {
        segment_bytes: 500,
        ..LogConfig::default()
    };
    log.update_config(config.clone());
    assert_eq!(log.config(), config);
    fill(&log, 1);
    assert_eq!(log.segment_bases(), [0, 9]);
}
