//! Tests of the log side of transactions: markers, the last stable offset, the `.txnindex`,
//! read_committed reads, and what survives restarts, recovery and retention.

use std::fs;
use std::path::{Path, PathBuf};

use strom_protocol::batch::{BatchHeader, Batches};

use super::*;
use crate::records::{ControlType, control_marker};
use crate::test_util::{KeyedRecord, batch, end_txn, txn_batch};
use crate::txn_index::ABORTED_TXN_SIZE;

const TS: i64 = 1_700_000_000_000;

fn tp() -> TopicPartition {
    TopicPartition::new("txns", 0)
}

fn config() -> LogConfig {
    LogConfig {
        producer_id_expiration_ms: i64::MAX,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Log {
    Log::open(dir, tp(), config(), 0, 0, true).unwrap()
}

/// Appends a transactional batch of `n` records for `pid` (epoch 0) starting at sequence `seq`.
fn txn_write(log: &Log, pid: i64, seq: i32, n: usize) -> LogAppendInfo {
    let records: Vec<KeyedRecord> = (0..n)
        .map(|i| KeyedRecord::new(Some(format!("k{i}").as_bytes()), Some(b"v")))
        .collect();
    log.append(&txn_batch(&records, pid, 0, seq), 3, None)
        .unwrap()
}

fn plain_write(log: &Log) -> LogAppendInfo {
    log.append(&batch(1, 10, TS), 3, None).unwrap()
}

fn commit(log: &Log, pid: i64) -> LogAppendInfo {
    log.append_control_marker(&end_txn(pid, 0, 0, true), 3)
        .unwrap()
}

fn abort(log: &Log, pid: i64) -> LogAppendInfo {
    log.append_control_marker(&end_txn(pid, 0, 0, false), 3)
        .unwrap()
}

fn txn_index_file(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.txnindex"))
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    Batches::new(bytes).map(|b| b.unwrap().0).collect()
}

#[test]
fn markers_end_transactions_and_move_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    plain_write(&log);
    assert_eq!(log.last_stable_offset(), 1);
    let first = txn_write(&log, 7, 0, 2);
    assert_eq!(first.base_offset, 1);
    plain_write(&log);
    txn_write(&log, 7, 2, 1);
    // The open transaction holds the LSO at its first offset while the log grows.
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(log.active_producers()[0].current_txn_start_offset, 1);

    let marker = commit(&log, 7);
    assert_eq!((marker.base_offset, marker.last_offset), (5, 5));
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(log.active_producers()[0].current_txn_start_offset, -1);
    assert_eq!(log.active_producers()[0].coordinator_epoch, 0);

    // The stored marker is Kafka's control batch, stamped with the leader epoch.
    let read = log.read(5, 1 << 20, i64::MAX, false).unwrap();
    let h = BatchHeader::parse(&read.records).unwrap();
    assert!(h.is_control() && h.is_transactional());
    assert_eq!((h.base_offset, h.partition_leader_epoch), (5, 3));
    let m = control_marker(&read.records).unwrap();
    assert_eq!(m.kind, ControlType::Commit);
    // A commit writes no transaction index.
    assert!(!txn_index_file(dir.path(), 0).exists());
}

#[test]
fn overlapping_transactions_bound_the_lso_by_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    txn_write(&log, 1, 0, 2); // 0-1
    txn_write(&log, 2, 0, 1); // 2
    txn_write(&log, 3, 0, 1); // 3
    assert_eq!(log.last_stable_offset(), 0);
    // Aborting 1 while 2 and 3 are open: the entry's LSO is 2's first offset.
    abort(&log, 1); // 4
    assert_eq!(log.last_stable_offset(), 2);
    commit(&log, 3); // 5
    assert_eq!(log.last_stable_offset(), 2);
    abort(&log, 2); // 6
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(
        log.collect_aborted_transactions(0, 7),
        vec![aborted(1, 0, 4, 2), aborted(2, 2, 6, 7)]
    );
    // The index file appeared with the first abort, in Kafka's 34-byte entries.
    let bytes = fs::read(txn_index_file(dir.path(), 0)).unwrap();
    assert_eq!(bytes.len(), 2 * ABORTED_TXN_SIZE);
    assert_eq!(&bytes[..ABORTED_TXN_SIZE], &aborted(1, 0, 4, 2).encode());
}

#[test]
fn markers_are_checked_against_the_producer_and_coordinator_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let records = [KeyedRecord::new(Some(b"k"), Some(b"v"))];
    log.append(&txn_batch(&records, 9, 4, 0), 0, None).unwrap();
    log.append_control_marker(&end_txn(9, 4, 5, true), 0)
        .unwrap();
    let end = log.log_end_offset();

    let zombie_producer = log.append_control_marker(&end_txn(9, 3, 5, false), 0);
    assert!(matches!(
        zombie_producer,
        Err(StorageError::InvalidProducerEpoch {
            epoch: 3,
            current_epoch: 4,
            ..
        })
    ));
    let zombie_coordinator = log.append_control_marker(&end_txn(9, 4, 4, false), 0);
    assert!(matches!(
        zombie_coordinator,
        Err(StorageError::CoordinatorFenced(_))
    ));
    assert_eq!(
        zombie_coordinator.unwrap_err().error_code(),
        strom_protocol::ErrorCode::TransactionCoordinatorFenced
    );
    assert_eq!(log.log_end_offset(), end, "nothing written");

    // A marker for a producer without an open transaction is written (Kafka does) and only
    // moves its epochs; it records no aborted transaction.
    let info = log
        .append_control_marker(&end_txn(9, 5, 6, false), 0)
        .unwrap();
    assert_eq!(info.base_offset, end);
    assert_eq!(log.last_stable_offset(), end + 1);
    let p = &log.active_producers()[0];
    assert_eq!((p.producer_epoch, p.coordinator_epoch), (5, 6));
    assert!(log.collect_aborted_transactions(0, i64::MAX).is_empty());
    // An unknown producer's marker too.
    log.append_control_marker(&end_txn(77, 0, 0, true), 0)
        .unwrap();
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

#[test]
fn read_committed_stops_at_the_lso_and_lists_the_aborted_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    txn_write(&log, 1, 0, 2); // 0-1 aborted
    plain_write(&log); // 2
    abort(&log, 1); // 3
    txn_write(&log, 2, 0, 1); // 4 committed
    commit(&log, 2); // 5
    txn_write(&log, 3, 0, 1); // 6 open
    plain_write(&log); // 7
    assert_eq!(log.last_stable_offset(), 6);

    let read = log.read_committed(0, 1 << 20, i64::MAX, false).unwrap();
    assert_eq!(read.last_stable_offset, 6);
    let offsets: Vec<i64> = headers(&read.read.records)
        .iter()
        .map(|h| h.base_offset)
        .collect();
    assert_eq!(offsets, [0, 2, 3, 4, 5]);
    assert_eq!(read.aborted, vec![aborted(1, 0, 3, 4)]);
    // From past the aborted transaction's marker it is not listed.
    let read = log.read_committed(4, 1 << 20, i64::MAX, false).unwrap();
    assert!(read.aborted.is_empty());
    assert_eq!(headers(&read.read.records).len(), 2);
    // The caller's bound (its high watermark) still applies; at the LSO nothing is returned.
    let read = log.read_committed(0, 1 << 20, 2, false).unwrap();
    assert_eq!(read.last_stable_offset, 2);
    assert_eq!(headers(&read.read.records).len(), 1);
    assert_eq!(read.aborted, vec![aborted(1, 0, 3, 4)]);
    let read = log.read_committed(6, 1 << 20, i64::MAX, false).unwrap();
    assert!(read.read.records.is_empty() && read.aborted.is_empty());
    // read_uncommitted still sees everything.
    assert_eq!(
        headers(&log.read(0, 1 << 20, i64::MAX, false).unwrap().records).len(),
        7
    );
}

#[test]
fn collecting_spans_segments_and_stops_at_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    txn_write(&log, 1, 0, 1); // 0
    txn_write(&log, 2, 0, 1); // 1
    log.roll_for_test();
    abort(&log, 1); // 2, LSO after = 1 (2 still open)
    log.roll_for_test();
    abort(&log, 2); // 3
    txn_write(&log, 1, 1, 1); // 4
    abort(&log, 1); // 5
    assert_eq!(log.segment_bases(), [0, 2, 3]);
    assert!(!txn_index_file(dir.path(), 0).exists());
    assert!(txn_index_file(dir.path(), 2).exists());
    assert_eq!(
        log.collect_aborted_transactions(0, 2),
        vec![aborted(1, 0, 2, 1), aborted(2, 1, 3, 4)]
    );
    assert_eq!(
        log.collect_aborted_transactions(3, 6),
        vec![aborted(2, 1, 3, 4), aborted(1, 4, 5, 6)]
    );
    assert_eq!(
        log.collect_aborted_transactions(4, 5),
        vec![aborted(1, 4, 5, 6)]
    );
}

#[test]
fn an_open_transaction_survives_clean_and_unclean_restarts() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path());
            plain_write(&log); // 0
            txn_write(&log, 5, 0, 2); // 1-2
            log.roll_for_test();
            plain_write(&log); // 3
            assert_eq!(log.last_stable_offset(), 1);
            if clean {
                log.close().unwrap();
            }
        }
        let log = Log::open(dir.path(), tp(), config(), 0, 0, clean).unwrap();
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(log.last_stable_offset(), 1, "clean shutdown: {clean}");
        assert_eq!(log.active_producers()[0].current_txn_start_offset, 1);
        let marker = commit(&log, 5);
        assert_eq!(marker.base_offset, 4);
        assert_eq!(log.last_stable_offset(), 5);
        log.close().unwrap();
        let log = Log::open(dir.path(), tp(), config(), 0, 0, true).unwrap();
        assert_eq!(log.last_stable_offset(), 5);
    }
}

#[test]
fn recovery_rebuilds_the_transaction_index() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let log = open(dir.path());
        txn_write(&log, 1, 0, 1); // 0
        txn_write(&log, 2, 0, 1); // 1
        abort(&log, 1); // 2
        log.roll_for_test();
        abort(&log, 2); // 3
        txn_write(&log, 3, 0, 1); // 4
        abort(&log, 3); // 5
        let all = log.collect_aborted_transactions(0, i64::MAX);
        assert_eq!(all.len(), 3);
        all
    };
    let before = [
        fs::read(txn_index_file(dir.path(), 0)).unwrap(),
        fs::read(txn_index_file(dir.path(), 3)).unwrap(),
    ];
    // Unclean: every segment is rescanned and its index rebuilt the same.
    let log = Log::open(dir.path(), tp(), config(), 0, 0, false).unwrap();
    assert_eq!(log.collect_aborted_transactions(0, i64::MAX), expected);
    log.close().unwrap();
    drop(log);
    assert_eq!(fs::read(txn_index_file(dir.path(), 0)).unwrap(), before[0]);
    assert_eq!(fs::read(txn_index_file(dir.path(), 3)).unwrap(), before[1]);

    // A garbage index on a clean start is rebuilt too.
    fs::write(txn_index_file(dir.path(), 3), b"garbage").unwrap();
    let log = Log::open(dir.path(), tp(), config(), 6, 0, true).unwrap();
    assert_eq!(log.collect_aborted_transactions(0, i64::MAX), expected);
    log.close().unwrap();
    drop(log);
    assert_eq!(fs::read(txn_index_file(dir.path(), 3)).unwrap(), before[1]);

    // A torn last marker: the log is cut before it, its entry goes and the transaction is open
    // again.
    let log_path = dir.path().join(format!("{:020}.log", 3));
    let len = fs::metadata(&log_path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let log = Log::open(dir.path(), tp(), config(), 3, 0, false).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.collect_aborted_transactions(0, i64::MAX), expected[..2]);
    assert_eq!(log.last_stable_offset(), 4);
    assert_eq!(
        fs::metadata(txn_index_file(dir.path(), 3)).unwrap().len(),
        ABORTED_TXN_SIZE as u64
    );
}

#[test]
fn a_marker_not_yet_replicated_keeps_its_transaction_unstable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    plain_write(&log); // 0
    txn_write(&log, 1, 0, 1); // 1
    log.set_high_watermark(2);
    assert_eq!(log.last_stable_offset(), 1);
    commit(&log, 1); // 2
    // The marker is not below the high watermark: a new leader might not have it.
    assert_eq!(log.last_stable_offset(), 1);
    log.set_high_watermark(2);
    assert_eq!(log.last_stable_offset(), 1);
    log.set_high_watermark(3);
    assert_eq!(log.last_stable_offset(), 3);
    // With the LSO bounded by the high watermark.
    plain_write(&log); // 3
    assert_eq!(log.last_stable_offset(), 3);
    log.set_high_watermark(4);
    assert_eq!(log.last_stable_offset(), 4);
}

#[test]
fn txn_indexes_go_with_their_segments_and_the_lso_stays_above_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    txn_write(&log, 1, 0, 1); // 0
    abort(&log, 1); // 1
    log.roll_for_test();
    txn_write(&log, 2, 0, 1); // 2
    log.roll_for_test();
    plain_write(&log); // 3
    log.roll_for_test();
    plain_write(&log); // 4
    assert!(txn_index_file(dir.path(), 0).exists());
    assert_eq!(log.last_stable_offset(), 2);
    // DeleteRecords past the open transaction's start: the LSO never goes below the log start.
    assert_eq!(log.delete_records_before(4).unwrap(), 4);
    assert!(!txn_index_file(dir.path(), 0).exists());
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains("txnindex")
    }));
    assert_eq!(log.last_stable_offset(), 4);
    assert!(log.collect_aborted_transactions(4, 5).is_empty());
    // The transaction is still open: its marker ends it.
    commit(&log, 2);
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}
