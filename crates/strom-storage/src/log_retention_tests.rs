//! Tests of segment deletion on a live log: retention, DeleteRecords, the `.deleted` lifecycle,
//! preallocation, and write failures taking the dir offline.

use std::fs;
use std::path::{Path, PathBuf};

use strom_protocol::ErrorCode;

use super::*;
use crate::retention::DeletionReason;
use crate::test_util::batch;

const TS: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn tp() -> TopicPartition {
    TopicPartition::new("ret", 0)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 200,
        producer_id_expiration_ms: i64::MAX,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, tp(), config, 0, 0, true).unwrap()
}

/// Appends `n` batches of 3 records (~230 bytes) at timestamp `ts`.
fn fill(log: &Log, n: usize, ts: i64) {
    for _ in 0..n {
        log.append(&batch(3, 50, ts), 7, None).unwrap();
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn deleted_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|n| n.ends_with(".deleted"))
        .collect()
}

#[test]
fn time_retention_deletes_old_segments_and_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.retention_ms = 10 * HOUR;
    let log = open(dir.path(), cfg);
    fill(&log, 8, TS); // old: several segments
    fill(&log, 8, TS + 20 * HOUR); // young
    let bases = log.segment_bases();
    let now = TS + 25 * HOUR;
    let deleted = log.enforce_retention(now).unwrap().unwrap();
    assert_eq!(deleted.reasons, [DeletionReason::RetentionMs]);
    assert!(!deleted.base_offsets.is_empty());
    let kept = log.segment_bases();
    assert_eq!(kept[0], log.log_start_offset());
    assert_eq!(
        bases.len(),
        kept.len() + deleted.base_offsets.len(),
        "{bases:?} -> {kept:?}"
    );
    // Nothing older than retention is left except in the segment where young records start.
    let err = log.read(0, 1000, i64::MAX, true).unwrap_err();
    assert!(matches!(err, StorageError::OffsetOutOfRange { .. }));
    // Files wait as .deleted for file.delete.delay.ms: the segments' and their producer
    // snapshots (one is taken at every roll).
    let waiting = deleted_files(dir.path());
    let logs = waiting
        .iter()
        .filter(|n| n.ends_with(".log.deleted"))
        .count();
    assert_eq!(logs, deleted.base_offsets.len());
    assert!(waiting.iter().any(|n| n.ends_with(".snapshot.deleted")));
    assert_eq!(log.delete_pending_files(now + 59_999).unwrap(), 0);
    assert_eq!(
        log.delete_pending_files(now + 60_000).unwrap(),
        waiting.len()
    );
    assert!(deleted_files(dir.path()).is_empty());
    // Nothing more to do.
    assert!(log.enforce_retention(now).unwrap().is_none());
}

#[test]
fn when_everything_expires_the_active_segment_goes_too_after_a_roll() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.retention_ms = HOUR;
    cfg.file_delete_delay_ms = 0;
    let log = open(dir.path(), cfg);
    fill(&log, 6, TS);
    let leo = log.log_end_offset();
    let deleted = log.enforce_retention(TS + 2 * HOUR).unwrap().unwrap();
    assert!(deleted.base_offsets.len() >= 2);
    assert_eq!(log.segment_bases(), [leo]);
    assert_eq!(log.log_start_offset(), leo);
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(log.size_in_bytes(), 0);
    // Deleted at once with file.delete.delay.ms = 0; the new active segment stays empty.
    assert!(deleted_files(dir.path()).is_empty());
    assert!(log.enforce_retention(TS + 3 * HOUR).unwrap().is_none());
    assert_eq!(
        log.append(&batch(1, 5, TS), 0, None).unwrap().base_offset,
        leo
    );
}

#[test]
fn retention_never_passes_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.retention_ms = HOUR;
    let log = open(dir.path(), cfg);
    fill(&log, 10, TS);
    let bases = log.segment_bases();
    // Only the first segment is entirely below the high watermark.
    log.set_high_watermark(bases[1]);
    let deleted = log.enforce_retention(TS + 2 * HOUR).unwrap().unwrap();
    assert_eq!(deleted.base_offsets, [bases[0]]);
    assert_eq!(log.log_start_offset(), bases[1]);
}

#[test]
fn size_retention_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.retention_bytes = 1500;
    let log = open(dir.path(), cfg);
    fill(&log, 20, TS);
    let before = log.size_in_bytes();
    let deleted = log.enforce_retention(TS).unwrap().unwrap();
    assert_eq!(deleted.reasons, [DeletionReason::RetentionBytes]);
    assert!(log.size_in_bytes() >= 1500);
    assert_eq!(before - deleted.bytes, log.size_in_bytes());
}

#[test]
fn compact_only_logs_ignore_time_and_size_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.retention_ms = 0;
    cfg.retention_bytes = 0;
    cfg.cleanup_policy = crate::CleanupPolicy::Compact;
    let log = open(dir.path(), cfg);
    for _ in 0..10 {
        // Keyless test batches: appended as a follower would, which skips the key check.
        log.append_as(&batch(3, 50, TS), 7, None, AppendOrigin::Replication)
            .unwrap();
    }
    assert!(log.segment_bases().len() > 1);
    assert!(log.enforce_retention(TS + 100 * HOUR).unwrap().is_none());
}

#[test]
fn delete_records_moves_the_log_start_and_deletes_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    fill(&log, 12, TS);
    let bases = log.segment_bases();
    let target = bases[2] + 1; // inside the third segment
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_bases()[0], bases[2]);
    let err = log.read(target - 1, 1000, i64::MAX, true).unwrap_err();
    assert!(matches!(err, StorageError::OffsetOutOfRange { .. }));
    let first = &log.read(target, 1000, i64::MAX, true).unwrap().records;
    assert!(!first.is_empty());
    // Offsets below the current start change nothing; past the end is out of range.
    assert_eq!(log.delete_records_before(1).unwrap(), target);
    let leo = log.log_end_offset();
    assert!(matches!(
        log.delete_records_before(leo + 1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    log.set_high_watermark(leo - 3);
    assert!(log.delete_records_before(leo - 2).is_err());
    // Up to the end: the active segment stays (nothing past it), reads at the end are empty.
    log.set_high_watermark(leo);
    assert_eq!(log.delete_records_before(leo).unwrap(), leo);
    assert!(
        log.read(leo, 1000, i64::MAX, true)
            .unwrap()
            .records
            .is_empty()
    );
    assert_eq!(log.segment_bases().len(), 1);
}

#[test]
fn leftover_deleted_files_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.retention_ms = HOUR;
    let log = open(dir.path(), cfg.clone());
    fill(&log, 10, TS);
    fill(&log, 1, TS + 10 * HOUR);
    log.enforce_retention(TS + 2 * HOUR).unwrap().unwrap();
    assert!(!deleted_files(dir.path()).is_empty());
    let lso = log.log_start_offset();
    drop(log); // stopped before file.delete.delay.ms
    let log = Log::open(dir.path(), tp(), cfg, 0, lso, false).unwrap();
    assert!(deleted_files(dir.path()).is_empty());
    assert_eq!(log.log_start_offset(), lso);
}

#[test]
fn preallocated_segments_are_trimmed_at_roll_and_recovered_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.preallocate = true;
    cfg.segment_bytes = 2000;
    let log = open(dir.path(), cfg.clone());
    // The first segment was created before preallocation applied (at open); roll to get one.
    fill(&log, 1, TS);
    log.roll_for_test();
    let active = *log.segment_bases().last().unwrap();
    let active_path = dir.path().join(format!("{active:020}.log"));
    assert_eq!(fs::metadata(&active_path).unwrap().len(), 2000);
    fill(&log, 3, TS);
    let leo = log.log_end_offset();
    let data = log.size_in_bytes();
    // A crash: the zero-filled tail is still there; recovery stops at it.
    drop(log);
    let log = Log::open(dir.path(), tp(), cfg.clone(), 0, 0, false).unwrap();
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(log.size_in_bytes(), data);
    assert!(fs::metadata(&active_path).unwrap().len() < 2000);
    // A roll trims the sealed segment.
    fill(&log, 10, TS);
    for base in &log.segment_bases()[..log.segment_bases().len() - 1] {
        let path = dir.path().join(format!("{base:020}.log"));
        let len = fs::metadata(&path).unwrap().len();
        assert!(len < 2000, "{} is {len} bytes", path.display());
    }
    // A clean close trims the active one.
    log.close().unwrap();
    let last = *log.segment_bases().last().unwrap();
    let len = fs::metadata(dir.path().join(format!("{last:020}.log")))
        .unwrap()
        .len();
    assert!(len < 2000);
}

fn segment_len(dir: &Path, base: i64) -> u64 {
    fs::metadata(dir.join(format!("{base:020}.log")))
        .unwrap()
        .len()
}

#[test]
fn a_failed_write_leaves_nothing_and_takes_the_dir_offline() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    fill(&log, 2, TS);
    let leo = log.log_end_offset();
    let base = *log.segment_bases().last().unwrap();
    let len = segment_len(dir.path(), base);
    log.health()
        .inject_write_failure
        .store(true, std::sync::atomic::Ordering::Release);
    let err = log.append(&batch(3, 50, TS), 0, None).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::KafkaStorageError);
    log.health()
        .inject_write_failure
        .store(false, std::sync::atomic::Ordering::Release);
    // The half-written batch was cut.
    assert_eq!(segment_len(dir.path(), base), len);
    assert_eq!(log.log_end_offset(), leo);
    // Offline from now on, for appends and reads alike.
    assert!(log.is_offline());
    for e in [
        log.append(&batch(1, 5, TS), 0, None).unwrap_err(),
        log.read(0, 1000, i64::MAX, true).unwrap_err(),
        log.flush().unwrap_err(),
    ] {
        assert!(matches!(e, StorageError::LogDirOffline(_)), "{e}");
        assert_eq!(e.error_code(), ErrorCode::KafkaStorageError);
    }
    // The next start finds exactly the whole batches.
    drop(log);
    let log = Log::open(dir.path(), tp(), config(), 0, 0, false).unwrap();
    assert_eq!(log.log_end_offset(), leo);
    assert_eq!(
        log.append(&batch(1, 5, TS), 0, None).unwrap().base_offset,
        leo
    );
}

#[test]
fn sealed_segment_paths_follow_renames() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), config());
    fill(&log, 10, TS);
    let bases = log.segment_bases();
    log.delete_records_before(bases[1]).unwrap();
    let names = files(dir.path());
    let deleted: Vec<PathBuf> = names
        .iter()
        .filter(|n| n.ends_with(".deleted"))
        .map(|n| dir.path().join(n))
        .collect();
    assert!(
        deleted
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".log.deleted"))
    );
    assert!(
        deleted
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".index.deleted"))
    );
    assert!(
        deleted
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".timeindex.deleted"))
    );
}

#[test]
fn segment_jitter_shortens_segment_ms_within_its_bound() {
    let mut cfg = config();
    cfg.segment_ms = 1000;
    cfg.segment_jitter_ms = 400;
    for _ in 0..200 {
        let j = random_jitter(&cfg);
        assert!((0..400).contains(&j), "{j}");
    }
    // Jitter is capped by segment.ms itself.
    cfg.segment_jitter_ms = 5000;
    for _ in 0..200 {
        assert!((0..1000).contains(&random_jitter(&cfg)));
    }
    cfg.segment_jitter_ms = 0;
    assert_eq!(random_jitter(&cfg), 0);

    // A segment rolls once its first batch is older than segment.ms minus its jitter, and time
    // retention then applies to the rolled segment.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.segment_ms = 1000;
    cfg.segment_jitter_ms = 400;
    cfg.retention_ms = 10_000;
    let log = open(dir.path(), cfg);
    log.lock().roll_jitter_ms = 400;
    log.append(&batch(1, 5, TS), 0, None).unwrap();
    log.append(&batch(1, 5, TS + 600), 0, None).unwrap();
    assert_eq!(
        log.segment_bases().len(),
        1,
        "600 ms is not past 1000 - 400"
    );
    log.append(&batch(1, 5, TS + 601), 0, None).unwrap();
    assert_eq!(log.segment_bases(), [0, 2]);
    // The rolled segment's newest record is at TS + 600.
    assert!(log.enforce_retention(TS + 10_600).unwrap().is_none());
    let deleted = log.enforce_retention(TS + 10_601).unwrap().unwrap();
    assert_eq!(deleted.base_offsets, [0]);
}
