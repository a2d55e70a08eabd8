//! Tests of compaction: what survives, tombstones and their horizon, producer metadata, codecs,
//! crash safety of the swap, and the cleaner's choice of logs.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use proptest::prelude::*;
use strom_protocol::batch::{BatchHeader, Batches};

use super::*;
use crate::test_util::{Codec, KeyedRecord, keyed_batch};
use crate::{AppendOrigin, CleanupPolicy, LogConfig, TopicPartition};

const DAY: i64 = 86_400_000;
/// After the test batches' timestamps (2023), before any delete horizon set "now".
const NOW: i64 = 1_800_000_000_000;

fn compact_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 128,
        cleanup_policy: CleanupPolicy::Compact,
        producer_id_expiration_ms: i64::MAX,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, TopicPartition::new("compacted", 0), config, 0, 0, true).unwrap()
}

/// One stored record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

/// Every batch (header) and record from the log start to the end.
fn read_everything(log: &Log) -> (Vec<BatchHeader>, Vec<Seen>) {
    let bytes = log
        .read(log.log_start_offset(), usize::MAX / 2, i64::MAX, true)
        .unwrap()
        .records;
    let mut headers = Vec::new();
    let mut seen = Vec::new();
    for item in Batches::new(&bytes) {
        let (h, whole) = item.unwrap();
        strom_protocol::batch::verify_crc(&h, whole).unwrap();
        let section = RecordsSection::new(whole).unwrap();
        for r in section.records().unwrap() {
            seen.push(Seen {
                offset: r.offset,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                timestamp: r.timestamp,
            });
        }
        headers.push(h);
    }
    (headers, seen)
}

/// Cleans from `checkpoint` (the log start when `None`) whatever the dirty ratio.
fn clean(log: &Log, checkpoint: Option<i64>, now: i64) -> (i64, CleanStats) {
    let view = log.cleaning_view().unwrap().unwrap();
    let range = cleanable(&view, checkpoint, now);
    let mut map = OffsetMap::new(1 << 20);
    let summary = run_one(log, &view, &range, now, &mut map, &AtomicBool::new(false))
        .unwrap()
        .unwrap();
    (summary.end_offset, summary.stats)
}

fn kv(key: &str, value: Option<&str>) -> KeyedRecord {
    KeyedRecord::new(Some(key.as_bytes()), value.map(str::as_bytes))
}

#[test]
fn keeps_the_latest_record_per_key_with_offsets_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(300));
    for round in 0..6 {
        let value = format!("v{round}");
        let records = [
            kv("a", Some(&value)),
            kv("b", Some(&value)),
            kv("c", Some(&value)),
        ];
        log.append(&keyed_batch(&records, Codec::None, -1, -1, -1), 0, None)
            .unwrap();
    }
    log.roll_for_test();
    let (_, before) = read_everything(&log);
    let (end, stats) = clean(&log, None, NOW);
    assert_eq!(end, 18);
    let (_, after) = read_everything(&log);
    assert_eq!(
        after.iter().map(|s| s.offset).collect::<Vec<_>>(),
        [15, 16, 17]
    );
    for s in &after {
        assert_eq!(s.value.as_deref(), Some(&b"v5"[..]));
        assert!(before.contains(s));
    }
    assert_eq!(stats.messages_read, 18);
    assert_eq!(stats.messages_retained, 3);
    assert!(stats.bytes_written < stats.bytes_read);
    assert_eq!(log.log_end_offset(), 18);
    // Appends go on at the same offsets.
    let info = log
        .append(
            &keyed_batch(&[kv("a", Some("new"))], Codec::None, -1, -1, -1),
            0,
            None,
        )
        .unwrap();
    assert_eq!(info.base_offset, 18);
}

#[test]
fn keyless_records_are_dropped_and_the_uncleanable_section_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(10_000));
    // Keyless records only get into a compacted log from before it was compacted (or from a
    // leader that let them in): replicated appends are not checked.
    let unkeyed = KeyedRecord::new(None, Some(b"x"));
    log.append_as(
        &keyed_batch(
            &[unkeyed.clone(), kv("a", Some("1"))],
            Codec::None,
            -1,
            -1,
            -1,
        ),
        0,
        None,
        AppendOrigin::Replication,
    )
    .unwrap();
    log.roll_for_test();
    log.append_as(
        &keyed_batch(&[kv("a", Some("2")), unkeyed], Codec::None, -1, -1, -1),
        0,
        None,
        AppendOrigin::Replication,
    )
    .unwrap();
    clean(&log, None, NOW);
    let (_, after) = read_everything(&log);
    // The active segment (offsets 2, 3) is not cleaned: its keyless record stays.
    assert_eq!(
        after.iter().map(|s| s.offset).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn tombstones_stay_until_the_delete_horizon_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config(10_000);
    config.delete_retention_ms = DAY;
    let log = open(dir.path(), config);
    log.append(
        &keyed_batch(
            &[kv("a", Some("1")), kv("b", Some("1"))],
            Codec::None,
            -1,
            -1,
            -1,
        ),
        0,
        None,
    )
    .unwrap();
    log.append(
        &keyed_batch(&[kv("a", None)], Codec::Gzip, -1, -1, -1),
        0,
        None,
    )
    .unwrap();
    log.roll_for_test();
    let (end, _) = clean(&log, None, NOW);
    let (headers, after) = read_everything(&log);
    // The tombstone for a is kept, and its batch now carries the delete horizon.
    assert_eq!(after.iter().map(|s| s.offset).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(after[1].value, None);
    let tomb_batch = headers.iter().find(|h| h.base_offset == 2).unwrap();
    assert_eq!(records::delete_horizon(tomb_batch), Some(NOW + DAY));
    assert_eq!(
        tomb_batch.compression(),
        Some(strom_protocol::batch::Compression::Gzip)
    );
    // Record timestamps survive the re-basing on the horizon.
    assert_eq!(after[1].timestamp, 1_700_000_000_000);

    // More data, a later cleaning before the horizon: still there.
    log.append(
        &keyed_batch(&[kv("c", Some("1"))], Codec::None, -1, -1, -1),
        0,
        None,
    )
    .unwrap();
    log.roll_for_test();
    let (end2, _) = clean(&log, Some(end), NOW + DAY - 1);
    let (_, after) = read_everything(&log);
    assert!(after.iter().any(|s| s.offset == 2 && s.value.is_none()));
    // And after it: gone.
    log.append(
        &keyed_batch(&[kv("d", Some("1"))], Codec::None, -1, -1, -1),
        0,
        None,
    )
    .unwrap();
    log.roll_for_test();
    let (_, stats) = clean(&log, Some(end2), NOW + DAY);
    let (_, after) = read_everything(&log);
    assert!(after.iter().all(|s| s.value.is_some()), "{after:?}");
    assert_eq!(stats.tombstones_removed, 1);
    assert_eq!(
        after.iter().map(|s| s.offset).collect::<Vec<_>>(),
        [1, 3, 4]
    );
}

#[test]
fn the_last_batch_of_a_live_producer_is_kept_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(10_000));
    // Producer 5 writes a once, then producer 6 overwrites it.
    log.append(
        &keyed_batch(&[kv("a", Some("1"))], Codec::Lz4, 5, 2, 0),
        0,
        None,
    )
    .unwrap();
    log.append(
        &keyed_batch(&[kv("x", Some("1"))], Codec::None, -1, -1, -1),
        0,
        None,
    )
    .unwrap();
    log.append(
        &keyed_batch(&[kv("a", Some("2"))], Codec::None, 6, 0, 0),
        0,
        None,
    )
    .unwrap();
    log.append(
        &keyed_batch(&[kv("x", Some("2"))], Codec::None, -1, -1, -1),
        0,
        None,
    )
    .unwrap();
    log.roll_for_test();
    clean(&log, None, NOW);
    let (headers, after) = read_everything(&log);
    assert_eq!(after.iter().map(|s| s.offset).collect::<Vec<_>>(), [2, 3]);
    // The producer's batch stays, empty, with its metadata, so its state survives a reload.
    let empty = headers.iter().find(|h| h.base_offset == 0).unwrap();
    assert_eq!(empty.records_count, 0);
    assert_eq!(
        (empty.producer_id, empty.producer_epoch, empty.base_sequence),
        (5, 2, 0)
    );
    // The non-idempotent superseded batch at 1 is gone.
    assert!(headers.iter().all(|h| h.base_offset != 1));
    drop(log);
    let log = open(dir.path(), compact_config(10_000));
    assert!(
        log.append(
            &keyed_batch(&[kv("a", Some("1"))], Codec::Lz4, 5, 2, 0),
            0,
            None
        )
        .unwrap()
        .duplicate
    );
}

#[test]
fn an_offset_map_too_small_for_the_dirty_section_cleans_part_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(400));
    for i in 0..40 {
        let key = format!("k{}", i % 20);
        log.append(
            &keyed_batch(&[kv(&key, Some("v"))], Codec::None, -1, -1, -1),
            0,
            None,
        )
        .unwrap();
    }
    log.roll_for_test();
    let view = log.cleaning_view().unwrap().unwrap();
    let range = cleanable(&view, None, NOW);
    // Room for 5 keys.
    let mut map = OffsetMap::new(6 * BYTES_PER_ENTRY);
    let first = run_one(&log, &view, &range, NOW, &mut map, &AtomicBool::new(false))
        .unwrap()
        .unwrap();
    assert!(
        first.end_offset > 0 && first.end_offset < 40,
        "{}",
        first.end_offset
    );
    // The rest on later passes, each starting where the previous one ended.
    let mut next = first.end_offset;
    for _ in 0..20 {
        if next >= 40 {
            break;
        }
        let view = log.cleaning_view().unwrap().unwrap();
        let range = cleanable(&view, Some(next), NOW);
        next = run_one(&log, &view, &range, NOW, &mut map, &AtomicBool::new(false))
            .unwrap()
            .unwrap()
            .end_offset;
    }
    assert_eq!(next, 40);
    let (_, after) = read_everything(&log);
    let keys: Vec<_> = after.iter().map(|s| s.key.clone()).collect();
    let mut dedup = keys.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 20);
    // Each key's last occurrence is its latest write (offsets 20..40).
    let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
    for s in &after {
        last.insert(s.key.clone().unwrap(), s.offset);
    }
    assert!(last.values().all(|&o| o >= 20));
}

#[test]
fn stopping_the_cleaner_leaves_no_output_behind() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(300));
    for i in 0..20 {
        let key = format!("k{}", i % 3);
        log.append(
            &keyed_batch(&[kv(&key, Some("v"))], Codec::None, -1, -1, -1),
            0,
            None,
        )
        .unwrap();
    }
    log.roll_for_test();
    let view = log.cleaning_view().unwrap().unwrap();
    let range = cleanable(&view, None, NOW);
    let mut map = OffsetMap::new(1 << 20);
    let stopped = run_one(&log, &view, &range, NOW, &mut map, &AtomicBool::new(true)).unwrap();
    assert_eq!(stopped.unwrap_err(), Aborted::Stopped);
    for entry in fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".cleaned") && !name.ends_with(".swap"),
            "{name}"
        );
    }
}

#[test]
fn a_log_changed_by_retention_meanwhile_is_not_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(300));
    for i in 0..20 {
        let key = format!("k{}", i % 3);
        log.append(
            &keyed_batch(&[kv(&key, Some("v"))], Codec::None, -1, -1, -1),
            0,
            None,
        )
        .unwrap();
    }
    log.roll_for_test();
    let view = log.cleaning_view().unwrap().unwrap();
    let range = cleanable(&view, None, NOW);
    // DeleteRecords removes the first segment between the view and the swap.
    let second = log.segment_bases()[1];
    log.delete_records_before(second).unwrap();
    let (_, before) = read_everything(&log);
    let mut map = OffsetMap::new(1 << 20);
    let outcome = run_one(&log, &view, &range, NOW, &mut map, &AtomicBool::new(false)).unwrap();
    assert_eq!(outcome.unwrap_err(), Aborted::LogChanged);
    let (_, after) = read_everything(&log);
    assert_eq!(before, after);
    for entry in fs::read_dir(dir.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".cleaned") && !name.ends_with(".swap"),
            "{name}"
        );
    }
}

/// Copies the regular files of `from` into a new temp dir.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::copy(&path, to.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    to
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_crash_at_every_stage_of_the_swap_recovers_to_before_or_after() {
    // Small segments, then a large segment.bytes so that one group merges several of them.
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(250));
    for i in 0..24 {
        let key = format!("k{}", i % 4);
        log.append(
            &keyed_batch(&[kv(&key, Some(&format!("v{i}")))], Codec::Zstd, -1, -1, -1),
            0,
            None,
        )
        .unwrap();
    }
    log.roll_for_test();
    let mut big = compact_config(1 << 20);
    big.file_delete_delay_ms = 60_000;
    log.update_config(big.clone());
    let old_bases = log.segment_bases();
    assert!(old_bases.len() >= 4, "{old_bases:?}");
    let (_, expected_before) = read_everything(&log);
    let before_dir = copy_dir(dir.path());
    clean(&log, None, NOW);
    let (_, expected_after) = read_everything(&log);
    assert_ne!(expected_before, expected_after);
    let new_bases = log.segment_bases();
    assert_eq!(
        new_bases.len(),
        2,
        "one cleaned segment and the active one: {new_bases:?}"
    );
    let after_dir = copy_dir(dir.path());
    drop(log);
    let cleaned_files: Vec<String> = [".log", ".index", ".timeindex"]
        .iter()
        .map(|s| format!("{:020}{s}", new_bases[0]))
        .collect();

    let check = |stage: &str, setup: &dyn Fn(&Path), expected: &[Seen]| {
        let d = copy_dir(before_dir.path());
        setup(d.path());
        let log = Log::open(
            d.path(),
            TopicPartition::new("compacted", 0),
            big.clone(),
            0,
            0,
            false,
        )
        .unwrap_or_else(|e| panic!("{stage}: {e}"));
        let (_, seen) = read_everything(&log);
        assert_eq!(seen, expected, "{stage}: {:?}", names(d.path()));
        for name in names(d.path()) {
            assert!(
                !name.ends_with(".cleaned")
                    && !name.ends_with(".swap")
                    && !name.ends_with(".deleted"),
                "{stage}: {name} left behind"
            );
        }
    };
    let put = |d: &Path, suffixes: [&str; 3]| {
        for (file, suffix) in cleaned_files.iter().zip(suffixes) {
            fs::copy(
                after_dir.path().join(file),
                d.join(format!("{file}{suffix}")),
            )
            .unwrap();
        }
    };
    check(
        "cleaned files written",
        &|d| put(d, [".cleaned"; 3]),
        &expected_before,
    );
    check(
        "half renamed to swap",
        &|d| put(d, [".swap", ".cleaned", ".cleaned"]),
        &expected_before,
    );
    check(
        "all renamed to swap",
        &|d| put(d, [".swap"; 3]),
        &expected_after,
    );
    check(
        "old segments partly renamed to deleted",
        &|d| {
            put(d, [".swap"; 3]);
            for suffix in [".log", ".index", ".timeindex"] {
                let name = format!("{:020}{suffix}", old_bases[0]);
                fs::rename(d.join(&name), d.join(format!("{name}.deleted"))).unwrap();
            }
        },
        &expected_after,
    );
    // Swap complete, old files still waiting for file.delete.delay.ms.
    let d = copy_dir(after_dir.path());
    assert!(names(d.path()).iter().any(|n| n.ends_with(".deleted")));
    let log = Log::open(
        d.path(),
        TopicPartition::new("compacted", 0),
        big.clone(),
        0,
        0,
        false,
    )
    .unwrap();
    assert_eq!(read_everything(&log).1, expected_after);
    assert!(!names(d.path()).iter().any(|n| n.ends_with(".deleted")));
}

#[test]
fn the_manager_cleans_the_dirtiest_compacted_log_and_checkpoints_it() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(
        crate::LogManagerConfig {
            log_dirs: vec![dir.path().to_path_buf()],
        },
        &|_| LogConfig::default(),
    )
    .unwrap();
    let compacted = manager
        .get_or_create(
            &TopicPartition::new("c", 0),
            uuid::Uuid::new_v4(),
            compact_config(300),
        )
        .unwrap();
    let plain = manager
        .get_or_create(
            &TopicPartition::new("d", 0),
            uuid::Uuid::new_v4(),
            LogConfig {
                segment_bytes: 300,
                ..LogConfig::default()
            },
        )
        .unwrap();
    for i in 0..20 {
        let b = keyed_batch(
            &[kv(&format!("k{}", i % 2), Some("v"))],
            Codec::None,
            -1,
            -1,
            -1,
        );
        compacted.append(&b, 0, None).unwrap();
        plain.append(&b, 0, None).unwrap();
    }
    compacted.roll_for_test();
    plain.roll_for_test();
    let summary = manager.clean_dirtiest(NOW, 1 << 20).unwrap().unwrap();
    assert_eq!(summary.topic_partition, TopicPartition::new("c", 0));
    assert_eq!(summary.end_offset, 20);
    assert_eq!(
        manager.cleaner_checkpoint(&summary.topic_partition),
        Some(20)
    );
    let text = fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n1\nc 0 20\n");
    // Nothing dirty left; the delete-policy log is never a candidate.
    assert!(manager.clean_dirtiest(NOW, 1 << 20).unwrap().is_none());
    assert_eq!(read_everything(&plain).1.len(), 20);
    // Below min.cleanable.dirty.ratio: not cleaned.
    compacted
        .append(
            &keyed_batch(&[kv("k0", Some("w"))], Codec::None, -1, -1, -1),
            0,
            None,
        )
        .unwrap();
    compacted.roll_for_test();
    assert!(manager.clean_dirtiest(NOW, 1 << 20).unwrap().is_none());
    // min.compaction.lag.ms keeps young segments out; max.compaction.lag.ms forces old ones in.
    let mut lagged = compact_config(300);
    lagged.min_cleanable_dirty_ratio = 0.99;
    lagged.max_compaction_lag_ms = 1000;
    compacted.update_config(lagged);
    let summary = manager.clean_dirtiest(NOW, 1 << 20).unwrap().unwrap();
    assert_eq!(summary.end_offset, 21);
    // A deleted log leaves the checkpoint.
    manager.delete(&TopicPartition::new("c", 0)).unwrap();
    let text = fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n0\n");
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config(300);
    config.min_compaction_lag_ms = DAY;
    let log = open(dir.path(), config);
    for i in 0..20 {
        let b = keyed_batch(
            &[kv(&format!("k{}", i % 2), Some("v")).at(NOW - 2 * DAY + i * 14_400_000)],
            Codec::None,
            -1,
            -1,
            -1,
        );
        log.append(&b, 0, None).unwrap();
    }
    log.roll_for_test();
    let view = log.cleaning_view().unwrap().unwrap();
    let range = cleanable(&view, None, NOW);
    // Records from the last day are in segments past the first uncleanable one.
    assert!(
        range.first_uncleanable > 0 && range.first_uncleanable < 20,
        "{range:?}"
    );
    let lag_bound = view
        .segments
        .iter()
        .find(|s| s.base_offset == range.first_uncleanable)
        .unwrap();
    assert!(lag_bound.largest_timestamp > NOW - DAY);
}

#[test]
fn the_cleaner_threads_clean_in_the_background_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let manager = std::sync::Arc::new(
        LogManager::open(
            crate::LogManagerConfig {
                log_dirs: vec![dir.path().to_path_buf()],
            },
            &|_| LogConfig::default(),
        )
        .unwrap(),
    );
    let tp = TopicPartition::new("bg", 0);
    let log = manager
        .get_or_create(&tp, uuid::Uuid::new_v4(), compact_config(300))
        .unwrap();
    for i in 0..30 {
        let b = keyed_batch(
            &[kv(&format!("k{}", i % 2), Some("v"))],
            Codec::None,
            -1,
            -1,
            -1,
        );
        log.append(&b, 0, None).unwrap();
    }
    log.roll_for_test();
    let mut cleaner = LogCleaner::start(
        manager.clone(),
        crate::CleanerConfig {
            backoff_ms: 10,
            ..crate::CleanerConfig::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while manager.cleaner_checkpoint(&tp) != Some(30) {
        assert!(Instant::now() < deadline, "the cleaner did not run");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Appends and reads go on meanwhile.
    log.append(
        &keyed_batch(&[kv("k0", Some("z"))], Codec::None, -1, -1, -1),
        0,
        None,
    )
    .unwrap();
    cleaner.shutdown();
    assert_eq!(read_everything(&log).1.len(), 3);
}

/// One batch of a random workload: (key index, value or tombstone) records, a codec index, and
/// whether an idempotent producer wrote it.
type WorkloadBatch = (Vec<(u8, Option<u8>)>, u8, bool);

fn workload() -> impl Strategy<Value = Vec<WorkloadBatch>> {
    prop::collection::vec(
        (
            prop::collection::vec((0u8..8, prop::option::weighted(0.8, any::<u8>())), 1..5),
            0u8..5,
            any::<bool>(),
        ),
        1..40,
    )
}

fn codec(i: u8) -> Codec {
    match i {
        0 => Codec::None,
        1 => Codec::Gzip,
        2 => Codec::Snappy,
        3 => Codec::Lz4,
        _ => Codec::Zstd,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cleaning_keeps_exactly_the_latest_record_per_key(
        batches in workload(),
        segment_bytes in 200u64..1200,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = compact_config(segment_bytes);
        config.delete_retention_ms = DAY;
        let log = open(dir.path(), config);
        let mut written: BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)> = BTreeMap::new();
        let mut originals: HashMap<i64, BatchHeader> = HashMap::new();
        let mut seq = 0i32;
        for (records, codec_id, idempotent) in &batches {
            let keyed: Vec<KeyedRecord> = records
                .iter()
                .map(|(k, v)| {
                    let key = vec![b'k', *k];
                    KeyedRecord::new(Some(&key), v.map(|v| vec![v]).as_deref())
                })
                .collect();
            let (pid, epoch, base_seq) = if *idempotent { (9, 0, seq) } else { (-1, -1, -1) };
            let b = keyed_batch(&keyed, codec(*codec_id), pid, epoch, base_seq);
            if *idempotent {
                seq += keyed.len() as i32;
            }
            let info = log.append(&b, 0, None).unwrap();
            let mut h = BatchHeader::parse(&b).unwrap();
            h.base_offset = info.base_offset;
            originals.insert(info.base_offset, h);
            for (i, r) in keyed.iter().enumerate() {
                written.insert(info.base_offset + i as i64, (r.key.clone().unwrap(), r.value.clone()));
            }
        }
        log.roll_for_test();
        let end = log.log_end_offset();
        let (first_end, _) = clean(&log, None, NOW);
        prop_assert_eq!(first_end, end);
        let (headers, seen) = read_everything(&log);
        // Exactly the latest record of each key survives, tombstones included (horizon ahead).
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        for (&offset, (key, _)) in &written {
            latest.insert(key.clone(), offset);
        }
        let mut expected: Vec<i64> = latest.values().copied().collect();
        expected.sort_unstable();
        prop_assert_eq!(seen.iter().map(|s| s.offset).collect::<Vec<_>>(), expected);
        for s in &seen {
            let (key, value) = &written[&s.offset];
            prop_assert_eq!(s.key.as_ref(), Some(key));
            prop_assert_eq!(&s.value, value);
        }
        // Batches: offsets strictly increasing, each keeps its original base offset, last
        // offset, producer metadata and codec.
        for pair in headers.windows(2) {
            prop_assert!(pair[0].last_offset() < pair[1].base_offset);
        }
        for h in &headers {
            let o = &originals[&h.base_offset];
            prop_assert_eq!(h.last_offset(), o.last_offset());
            prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (o.producer_id, o.producer_epoch, o.base_sequence));
            if h.records_count > 0 {
                prop_assert_eq!(h.compression(), o.compression());
            }
        }
        // The idempotent producer's last batch is still there (possibly empty).
        if let Some(last) = originals.values().filter(|h| h.producer_id == 9).map(|h| h.last_offset()).max() {
            prop_assert!(headers.iter().any(|h| h.last_offset() == last && h.producer_id == 9));
        }
        // Past the delete horizon, with new dirty data: every tombstone is gone, values stay.
        log.append(&keyed_batch(&[KeyedRecord::new(Some(b"fresh"), Some(b"1"))], Codec::None, -1, -1, -1), 0, None).unwrap();
        log.roll_for_test();
        clean(&log, Some(first_end), NOW + DAY);
        let (_, seen) = read_everything(&log);
        let mut expected: Vec<i64> = latest
            .values()
            .copied()
            .filter(|o| written[o].1.is_some())
            .collect();
        expected.push(end);
        expected.sort_unstable();
        prop_assert_eq!(seen.iter().map(|s| s.offset).collect::<Vec<_>>(), expected);
        // A restart reads the same.
        drop(log);
        let log = open(dir.path(), compact_config(segment_bytes));
        prop_assert_eq!(read_everything(&log).1, seen);
    }
}

#[test]
fn appends_and_reads_go_on_while_the_cleaner_works() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), compact_config(600)));
    let done = Arc::new(AtomicBool::new(false));
    let appender = {
        let log = log.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..1500u32 {
                let key = format!("k{}", i % 40);
                let b = keyed_batch(&[kv(&key, Some(&i.to_string()))], Codec::None, -1, -1, -1);
                log.append(&b, 0, None).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    let reader = {
        let log = log.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Acquire) {
                let (headers, _) = read_everything(&log);
                for pair in headers.windows(2) {
                    assert!(pair[0].last_offset() < pair[1].base_offset);
                }
                reads += 1;
            }
            reads
        })
    };
    let mut checkpoint = None;
    let mut cleanings = 0;
    while !done.load(Ordering::Acquire) {
        let view = log.cleaning_view().unwrap().unwrap();
        let range = cleanable(&view, checkpoint, NOW);
        let mut map = OffsetMap::new(1 << 20);
        if let Ok(summary) =
            run_one(&log, &view, &range, NOW, &mut map, &AtomicBool::new(false)).unwrap()
        {
            checkpoint = Some(summary.end_offset);
            cleanings += 1;
        }
    }
    appender.join().unwrap();
    assert!(reader.join().unwrap() > 0);
    assert!(cleanings > 0);
    log.roll_for_test();
    clean(&log, checkpoint, NOW);
    let (_, seen) = read_everything(&log);
    assert_eq!(seen.len(), 40);
    for s in &seen {
        // The latest value of key k is the last i < 1500 with i % 40 == k.
        let k: u32 = std::str::from_utf8(&s.key.as_ref().unwrap()[1..])
            .unwrap()
            .parse()
            .unwrap();
        let v: u32 = std::str::from_utf8(s.value.as_ref().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(v, k + 40 * ((1499 - k) / 40));
        assert_eq!(i64::from(v), s.offset);
    }
}

#[test]
fn a_log_deleted_while_being_cleaned_does_not_take_the_dir_offline() {
    let dir = tempfile::tempdir().unwrap();
    let manager = LogManager::open(
        crate::LogManagerConfig {
            log_dirs: vec![dir.path().to_path_buf()],
        },
        &|_| LogConfig::default(),
    )
    .unwrap();
    let tp = TopicPartition::new("gone", 0);
    let log = manager
        .get_or_create(&tp, uuid::Uuid::new_v4(), compact_config(300))
        .unwrap();
    for i in 0..20 {
        let b = keyed_batch(
            &[kv(&format!("k{}", i % 2), Some("v"))],
            Codec::None,
            -1,
            -1,
            -1,
        );
        log.append(&b, 0, None).unwrap();
    }
    log.roll_for_test();
    let view = log.cleaning_view().unwrap().unwrap();
    let range = cleanable(&view, None, NOW);
    manager.delete(&tp).unwrap();
    let mut map = OffsetMap::new(1 << 20);
    let outcome = run_one(&log, &view, &range, NOW, &mut map, &AtomicBool::new(false)).unwrap();
    assert_eq!(outcome.unwrap_err(), Aborted::LogChanged);
    assert!(manager.offline_log_dirs().is_empty());
}

/// The data records (not transaction markers) the log holds, as offset and `key=value`.
fn data_records(log: &Log) -> Vec<(i64, String)> {
    let (headers, seen) = read_everything(log);
    let markers: Vec<i64> = headers
        .iter()
        .filter(|h| h.is_control())
        .map(|h| h.base_offset)
        .collect();
    let text = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap_or_default()).unwrap();
    seen.into_iter()
        .filter(|s| !markers.contains(&s.offset))
        .map(|s| (s.offset, format!("{}={}", text(s.key), text(s.value))))
        .collect()
}

/// Base offsets of the control batches that still hold their marker record.
fn markers(log: &Log) -> Vec<i64> {
    read_everything(log)
        .0
        .iter()
        .filter(|h| h.is_control() && h.records_count > 0)
        .map(|h| h.base_offset)
        .collect()
}

#[test]
fn aborted_transactions_are_cleaned_away_and_markers_stay_until_their_data_is_gone() {
    use crate::test_util::{end_txn, txn_batch};
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(1 << 20));
    let txn = |records: &[KeyedRecord], pid: i64, seq: i32| {
        log.append(&txn_batch(records, pid, 0, seq), 0, None)
            .unwrap()
    };
    let plain = |records: &[KeyedRecord]| {
        log.append(&keyed_batch(records, Codec::None, -1, -1, -1), 0, None)
            .unwrap()
    };
    let marker = |pid: i64, commit: bool| {
        log.append_control_marker(&end_txn(pid, 0, 0, commit), 0)
            .unwrap()
    };
    txn(&[kv("k1", Some("a1")), kv("k2", Some("a2"))], 1, 0); // 0-1
    marker(1, true); // 2
    txn(&[kv("k1", Some("x")), kv("k3", Some("x"))], 2, 0); // 3-4
    plain(&[kv("k2", Some("b2"))]); // 5
    marker(2, false); // 6
    txn(&[kv("k1", Some("c1"))], 1, 2); // 7
    marker(1, true); // 8
    txn(&[kv("k5", Some("y"))], 2, 2); // 9
    marker(2, true); // 10
    plain(&[kv("k4", Some("d"))]); // 11
    log.roll_for_test();
    assert_eq!(log.last_stable_offset(), 12);
    assert_eq!(log.collect_aborted_transactions(0, 12).len(), 1);

    let (end, _) = clean(&log, None, NOW);
    assert_eq!(end, 12);
    let expected = vec![
        (5, "k2=b2".to_string()),
        (7, "k1=c1".to_string()),
        (9, "k5=y".to_string()),
        (11, "k4=d".to_string()),
    ];
    // Committed latest values stay, the aborted ones are gone (k3 had only an aborted value),
    // and every marker stays while batches of its transaction were there to clean.
    assert_eq!(data_records(&log), expected);
    assert_eq!(markers(&log), [2, 6, 8, 10]);
    assert_eq!((log.log_end_offset(), log.last_stable_offset()), (12, 12));
    // The kept ABORT marker keeps its entry in the cleaned segment's index.
    assert_eq!(
        log.collect_aborted_transactions(0, 12),
        vec![AbortedTxn {
            producer_id: 2,
            first_offset: 3,
            last_offset: 6,
            last_stable_offset: 7,
        }]
    );
    let (headers, _) = read_everything(&log);
    let committed = headers.iter().find(|h| h.base_offset == 7).unwrap();
    assert!(committed.is_transactional() && !committed.is_control());
    assert_eq!(
        (
            committed.producer_id,
            committed.producer_epoch,
            committed.base_sequence
        ),
        (1, 0, 2)
    );

    // The next cleaning finds nothing left of the first two transactions: their markers get a
    // delete horizon and go at the first cleaning after it; the others stay.
    clean(&log, None, NOW);
    assert_eq!(markers(&log), [2, 6, 8, 10]);
    assert!(log.collect_aborted_transactions(0, 12).is_empty());
    let horizon = NOW + log.config().delete_retention_ms;
    clean(&log, None, horizon - 1);
    assert_eq!(markers(&log), [2, 6, 8, 10]);
    clean(&log, None, horizon);
    assert_eq!(markers(&log), [8, 10]);
    assert_eq!(data_records(&log), expected);
    assert_eq!((log.log_end_offset(), log.last_stable_offset()), (12, 12));

    // The cleaned log reloads with no transaction left open.
    let dir_path = log.dir();
    drop(log);
    let log = Log::open(
        &dir_path,
        TopicPartition::new("compacted", 0),
        compact_config(1 << 20),
        0,
        0,
        false,
    )
    .unwrap();
    assert_eq!(log.last_stable_offset(), 12);
    assert!(
        log.active_producers()
            .iter()
            .all(|p| p.current_txn_start_offset == -1)
    );
}

#[test]
fn cleaning_stops_before_an_open_transaction() {
    use crate::test_util::txn_batch;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), compact_config(1 << 20));
    let plain = |value: &str| {
        log.append(
            &keyed_batch(&[kv("k", Some(value))], Codec::None, -1, -1, -1),
            0,
            None,
        )
        .unwrap()
    };
    plain("1");
    plain("2");
    log.roll_for_test();
    log.append(&txn_batch(&[kv("k", Some("open"))], 5, 0, 0), 0, None)
        .unwrap(); // 2
    plain("3");
    log.roll_for_test();
    plain("4");
    log.roll_for_test();
    assert_eq!(log.last_stable_offset(), 2);
    let (end, _) = clean(&log, None, NOW);
    // Only the segment below the open transaction was cleaned.
    assert_eq!(end, 2);
    let offsets: Vec<i64> = data_records(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, [1, 2, 3, 4]);
}
