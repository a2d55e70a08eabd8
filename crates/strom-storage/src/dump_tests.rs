//! Tests of `dump-log` on segments written by the log: exact Kafka-style lines, and index
//! verification catching corruption.

use std::fs;
use std::path::Path;

use super::*;
use crate::test_util::{Codec, KeyedRecord, keyed_batch};
use crate::{Log, LogConfig, TopicPartition};

fn write_known_log(dir: &Path) {
    let config = LogConfig {
        index_interval_bytes: 50,
        producer_id_expiration_ms: i64::MAX,
        ..LogConfig::default()
    };
    let log = Log::open(dir, TopicPartition::new("dump", 0), config, 0, 0, true).unwrap();
    let a = keyed_batch(
        &[
            KeyedRecord::new(Some(b"k1"), Some(b"hello")).header("h", b"1"),
            KeyedRecord::new(Some(b"k2"), None),
        ],
        Codec::None,
        -1,
        -1,
        -1,
    );
    log.append(&a, 5, None).unwrap();
    let b = keyed_batch(
        &[KeyedRecord::new(None, Some(b"world"))],
        Codec::Gzip,
        42,
        1,
        0,
    );
    log.append(&b, 5, None).unwrap();
    let c = keyed_batch(
        &[KeyedRecord::new(Some(b"k3"), Some(b"x")).at(1_700_000_000_500)],
        Codec::None,
        42,
        1,
        1,
    );
    log.append(&c, 6, Some(1_700_000_001_000)).unwrap();
    log.close().unwrap();
}

fn run(options: &DumpOptions) -> (String, String, DumpReport) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let report = dump(options, &mut out, &mut err).unwrap();
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
        report,
    )
}

fn file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(name)
}

const EXPECTED: &str = "\
Dumping DIR/00000000000000000000.log
Log starting offset: 0
baseOffset: 0 lastOffset: 1 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 5 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000001 size: 88 magic: 2 compresscodec: none crc: 4088405248 isvalid: true
| offset: 0 CreateTime: 1700000000000 keySize: 2 valueSize: 5 sequence: -1 headerKeys: [h] key: k1 payload: hello
| offset: 1 CreateTime: 1700000000001 keySize: 2 valueSize: -1 sequence: -1 headerKeys: [] key: k2
baseOffset: 2 lastOffset: 2 count: 1 baseSequence: 0 lastSequence: 0 producerId: 42 producerEpoch: 1 partitionLeaderEpoch: 5 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 88 CreateTime: 1700000000000 size: 93 magic: 2 compresscodec: gzip crc: 3020690752 isvalid: true
| offset: 2 CreateTime: 1700000000000 keySize: -1 valueSize: 5 sequence: 0 headerKeys: [] payload: world
baseOffset: 3 lastOffset: 3 count: 1 baseSequence: 1 lastSequence: 1 producerId: 42 producerEpoch: 1 partitionLeaderEpoch: 6 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 181 LogAppendTime: 1700000001000 size: 71 magic: 2 compresscodec: none crc: 3921422910 isvalid: true
| offset: 3 LogAppendTime: 1700000001000 keySize: 2 valueSize: 1 sequence: 1 headerKeys: [] key: k3 payload: x
Dumping DIR/00000000000000000000.index
offset: 2 position: 88
offset: 3 position: 181
Dumping DIR/00000000000000000000.timeindex
timestamp: 1700000000001 offset: 1
timestamp: 1700000001000 offset: 3
Dumping DIR/00000000000000000004.snapshot
producerId: 42 producerEpoch: 1 coordinatorEpoch: -1 currentTxnFirstOffset: OptionalLong.empty lastTimestamp: 1700000001000 firstSequence: 1 lastSequence: 1 lastOffset: 3 offsetDelta: 0 timestamp: 1700000001000
";

fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    [
        "00000000000000000000.log",
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
        "00000000000000000004.snapshot",
    ]
    .iter()
    .map(|n| file(dir, n))
    .collect()
}

#[test]
fn dumps_known_segments_in_kafkas_layout() {
    let dir = tempfile::tempdir().unwrap();
    write_known_log(dir.path());
    let options = DumpOptions {
        files: all_files(dir.path()),
        print_data_log: true,
        ..DumpOptions::default()
    };
    let (out, err, report) = run(&options);
    let out = out.replace(&dir.path().display().to_string(), "DIR");
    assert_eq!(out, EXPECTED);
    assert_eq!(err, "");
    assert_eq!(report.errors, 0);
    // Shallow: batch lines only.
    let (out, _, _) = run(&DumpOptions {
        files: vec![file(dir.path(), "00000000000000000000.log")],
        ..DumpOptions::default()
    });
    assert_eq!(out.lines().count(), 5);
    assert!(!out.contains("| offset"));
    // Deep without data: metadata, no payloads.
    let (out, _, _) = run(&DumpOptions {
        files: vec![file(dir.path(), "00000000000000000000.log")],
        deep_iteration: true,
        ..DumpOptions::default()
    });
    assert!(out.contains("| offset: 2 CreateTime: 1700000000000 keySize: -1 valueSize: 5 sequence: 0 headerKeys: []\n"));
    assert!(!out.contains("payload"));
}

#[test]
fn verify_index_only_catches_a_corrupted_index() {
    let dir = tempfile::tempdir().unwrap();
    write_known_log(dir.path());
    let index = file(dir.path(), "00000000000000000000.index");
    let options = DumpOptions {
        files: vec![
            index.clone(),
            file(dir.path(), "00000000000000000000.timeindex"),
        ],
        verify_index_only: true,
        ..DumpOptions::default()
    };
    let (out, err, report) = run(&options);
    assert_eq!(report.errors, 0, "{err}");
    assert!(
        !out.contains("offset: 2 position"),
        "verify-only prints no entries"
    );
    // Point the first entry at the first batch: it ends at offset 1, not 2.
    let mut bytes = fs::read(&index).unwrap();
    bytes[4..8].copy_from_slice(&0u32.to_be_bytes());
    fs::write(&index, &bytes).unwrap();
    let (_, err, report) = run(&options);
    assert_eq!(report.errors, 1);
    assert_eq!(
        err,
        format!(
            "Mismatches in :{}\n  Index offset: 2, log offset: 1\n",
            index.display()
        )
    );
    // The sanity check (what loading runs) catches it too: positions no longer increase...
    let (_, err, report) = run(&DumpOptions {
        files: vec![index.clone()],
        index_sanity_check: true,
        ..DumpOptions::default()
    });
    assert_eq!(report.errors, 0, "positions 0 < 181 still increase: {err}");
    // ...but not a torn entry.
    fs::write(&index, &bytes[..13]).unwrap();
    let (_, err, report) = run(&DumpOptions {
        files: vec![index],
        index_sanity_check: true,
        ..DumpOptions::default()
    });
    assert_eq!(report.errors, 1);
    assert!(err.contains("failed sanity check"), "{err}");
}

#[test]
fn a_corrupted_time_index_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_known_log(dir.path());
    let path = file(dir.path(), "00000000000000000000.timeindex");
    let mut bytes = fs::read(&path).unwrap();
    // First entry: a timestamp no record has; second: an offset no batch ends at.
    bytes[..8].copy_from_slice(&1_700_000_000_777i64.to_be_bytes());
    bytes[20..24].copy_from_slice(&2u32.to_be_bytes());
    bytes[12..20].copy_from_slice(&1_600_000_000_000i64.to_be_bytes());
    fs::write(&path, &bytes).unwrap();
    let (_, err, report) = run(&DumpOptions {
        files: vec![path.clone()],
        verify_index_only: true,
        ..DumpOptions::default()
    });
    assert!(report.errors >= 2, "{err}");
    assert!(err.contains(&format!("Found timestamp mismatch in :{}", path.display())));
    assert!(err.contains("  Index timestamp: 1700000000777, log timestamp: 1700000000001"));
    assert!(err.contains("Found out of order timestamp"), "{err}");
}

#[test]
fn corrupt_batches_snapshots_and_unknown_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_known_log(dir.path());
    let log = file(dir.path(), "00000000000000000000.log");
    let mut bytes = fs::read(&log).unwrap();
    bytes[160] ^= 0xff; // inside the second batch's records (88 + 61 header bytes)
    bytes.extend_from_slice(&[0u8; 7]);
    fs::write(&log, &bytes).unwrap();
    let snapshot = file(dir.path(), "00000000000000000004.snapshot");
    fs::write(&snapshot, b"garbage!!!!").unwrap();
    let (out, err, report) = run(&DumpOptions {
        files: vec![log, snapshot, file(dir.path(), "leader-epoch-checkpoint")],
        ..DumpOptions::default()
    });
    assert!(out.contains("isvalid: false"));
    assert!(out.contains("Found 7 invalid bytes at the end of 00000000000000000000.log"));
    assert!(err.contains("Ignoring unknown file"));
    assert_eq!(report.errors, 3, "{err}");
}

#[test]
fn offsets_decoder_prints_consumer_offsets_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        TopicPartition::new("__consumer_offsets", 0),
        LogConfig::default(),
        0,
        0,
        true,
    )
    .unwrap();
    let mut key = 1i16.to_be_bytes().to_vec();
    for s in ["group", "orders"] {
        key.extend_from_slice(&(s.len() as i16).to_be_bytes());
        key.extend_from_slice(s.as_bytes());
    }
    key.extend_from_slice(&0i32.to_be_bytes());
    let mut value = 1i16.to_be_bytes().to_vec();
    value.extend_from_slice(&7i64.to_be_bytes());
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&5i64.to_be_bytes());
    value.extend_from_slice(&6i64.to_be_bytes());
    log.append(
        &keyed_batch(
            &[
                KeyedRecord::new(Some(&key), Some(&value)),
                KeyedRecord::new(Some(&key), None),
            ],
            Codec::None,
            -1,
            -1,
            -1,
        ),
        0,
        None,
    )
    .unwrap();
    log.close().unwrap();
    let (out, _, _) = run(&DumpOptions {
        files: vec![file(dir.path(), "00000000000000000000.log")],
        print_data_log: true,
        offsets_decoder: true,
        skip_record_metadata: true,
        ..DumpOptions::default()
    });
    assert!(out.contains(r#"| key: {"type":"1","data":{"group":"group","topic":"orders","partition":0}} payload: {"version":"1","data":{"offset":7,"metadata":"","commitTimestamp":5,"expireTimestamp":6}}"#), "{out}");
    assert!(out.contains(r#"payload: <DELETE>"#));
}

#[test]
fn transaction_markers_and_txn_indexes_are_dumped() {
    use crate::test_util::{end_txn, txn_batch};
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: i64::MAX,
        ..LogConfig::default()
    };
    let log = Log::open(
        dir.path(),
        TopicPartition::new("dump", 0),
        config,
        0,
        0,
        true,
    )
    .unwrap();
    let records = [KeyedRecord::new(Some(b"k"), Some(b"v"))];
    log.append(&txn_batch(&records, 7, 2, 0), 0, None).unwrap(); // 0
    log.append(&txn_batch(&records, 8, 0, 0), 0, None).unwrap(); // 1
    log.append_control_marker(&end_txn(7, 2, 3, false), 0)
        .unwrap(); // 2
    log.append_control_marker(&end_txn(8, 0, 4, true), 0)
        .unwrap(); // 3
    log.close().unwrap();

    let (out, _, report) = run(&DumpOptions {
        files: vec![file(dir.path(), "00000000000000000000.log")],
        deep_iteration: true,
        ..DumpOptions::default()
    });
    assert_eq!(report.errors, 0);
    assert!(out.contains(
        "baseOffset: 2 lastOffset: 2 count: 1 baseSequence: -1 lastSequence: -1 producerId: 7 \
         producerEpoch: 2 partitionLeaderEpoch: 0 isTransactional: true isControl: true"
    ));
    assert!(out.contains(
        "| offset: 2 CreateTime: 1700000000000 keySize: 4 valueSize: 6 sequence: -1 \
         headerKeys: [] endTxnMarker: ABORT coordinatorEpoch: 3"
    ));
    assert!(out.contains("endTxnMarker: COMMIT coordinatorEpoch: 4"));

    let txn_index = file(dir.path(), "00000000000000000000.txnindex");
    let (out, err, report) = run(&DumpOptions {
        files: vec![txn_index.clone()],
        ..DumpOptions::default()
    });
    assert_eq!((report.errors, err.as_str()), (0, ""));
    assert_eq!(
        out.lines().nth(1),
        Some("version: 0 producerId: 7 firstOffset: 0 lastOffset: 2 lastStableOffset: 1")
    );
    // A torn entry is reported after the whole ones.
    let mut bytes = fs::read(&txn_index).unwrap();
    bytes.extend_from_slice(&[0; 5]);
    fs::write(&txn_index, bytes).unwrap();
    let (out, err, report) = run(&DumpOptions {
        files: vec![txn_index],
        ..DumpOptions::default()
    });
    assert_eq!(report.errors, 1);
    assert!(out.contains("producerId: 7"));
    assert!(err.contains("5 bytes after the last whole entry"), "{err}");
}
