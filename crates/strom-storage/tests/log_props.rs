//! Property tests of the partition log through its public API: whatever the batch sizes,
//! segment size and index interval, every offset reads back, and recovery after a torn write
//! ends exactly at the last whole batch.

mod common;

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use strom_protocol::batch::{self, BatchHeader, Batches};
use strom_storage::{Log, LogConfig, TopicPartition};

const TS: i64 = 1_700_000_000_000;

fn config(segment_bytes: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> Log {
    Log::open(dir, TopicPartition::new("p", 0), config, 0, 0, clean).unwrap()
}

/// Appends batches of the given (record count, value size) and returns each stored batch.
fn append_all(log: &Log, shapes: &[(usize, usize)]) -> Vec<Vec<u8>> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, &(records, value_len))| {
            let b = common::batch(records, value_len, TS + i as i64);
            let info = log.append(&b, 1, None).unwrap();
            // What the log stores: the header with offset and epoch set, the records as sent.
            let mut stored = batch::patched_header(&b, info.base_offset, 1, None).to_vec();
            stored.extend_from_slice(&b[batch::HEADER_LEN..]);
            stored
        })
        .collect()
}

fn check_every_offset(
    log: &Log,
    stored: &[Vec<u8>],
    max_bytes: usize,
) -> Result<(), TestCaseError> {
    let leo = log.log_end_offset();
    let mut batch_of = Vec::new();
    for (i, b) in stored.iter().enumerate() {
        let h = BatchHeader::parse(b).unwrap();
        batch_of.extend(std::iter::repeat_n(i, h.records_count as usize));
    }
    prop_assert_eq!(leo, batch_of.len() as i64);
    for offset in 0..leo {
        let records = log.read(offset, max_bytes, i64::MAX, true).unwrap().records;
        let mut it = Batches::new(&records);
        let (first, bytes) = it.next().expect("at least one batch").unwrap();
        prop_assert!(first.base_offset <= offset && offset <= first.last_offset());
        prop_assert_eq!(bytes, &stored[batch_of[offset as usize]][..]);
        let mut total = first.size();
        let mut next = first.next_offset();
        for item in it {
            let (h, _) = item.expect("only whole batches");
            prop_assert_eq!(h.base_offset, next);
            next = h.next_offset();
            total += h.size();
        }
        prop_assert!(total <= max_bytes.max(first.size()));
    }
    prop_assert!(
        log.read(leo, max_bytes, i64::MAX, true)
            .unwrap()
            .records
            .is_empty()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_offset_reads_back(
        shapes in prop::collection::vec((1usize..6, 0usize..120), 1..60),
        segment_bytes in 800u64..3000,
        index_interval in 0u64..600,
        max_bytes in 1usize..4000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(segment_bytes, index_interval), true);
        let stored = append_all(&log, &shapes);
        check_every_offset(&log, &stored, max_bytes)?;
        // The same after a clean restart, with the indexes loaded from disk.
        log.close().unwrap();
        drop(log);
        let log = open(dir.path(), config(segment_bytes, index_interval), true);
        check_every_offset(&log, &stored, max_bytes)?;
    }

    #[test]
    fn recovery_ends_at_the_last_whole_batch(
        shapes in prop::collection::vec((1usize..6, 0usize..120), 1..40),
        segment_bytes in 800u64..3000,
        index_interval in 0u64..600,
        cut_fraction in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), config(segment_bytes, index_interval), true);
        append_all(&log, &shapes);
        drop(log); // a crash: nothing closed or flushed
        let mut segments: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        let last = segments.last().unwrap();
        let bytes = fs::read(last).unwrap();
        let cut = (bytes.len() as f64 * cut_fraction) as usize;
        let base: i64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let mut expected = base;
        let mut whole = 0;
        for item in Batches::new(&bytes[..cut]) {
            let Ok((h, _)) = item else { break };
            expected = h.next_offset();
            whole += h.size();
        }
        fs::OpenOptions::new().write(true).open(last).unwrap().set_len(cut as u64).unwrap();

        let log = open(dir.path(), config(segment_bytes, index_interval), false);
        prop_assert_eq!(log.log_end_offset(), expected);
        prop_assert_eq!(fs::metadata(last).unwrap().len(), whole as u64);
        // The log goes on from there.
        let b = common::batch(1, 10, TS);
        prop_assert_eq!(log.append(&b, 1, None).unwrap().base_offset, expected);
        if expected > 0 {
            let records = log.read(expected - 1, 1 << 20, i64::MAX, true).unwrap().records;
            let (first, _) = Batches::new(&records).next().unwrap().unwrap();
            prop_assert!(first.last_offset() >= expected - 1);
        }
    }
}
