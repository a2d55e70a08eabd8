//! Cleaner throughput: compacts a log of keyed 1 KiB batches (100-byte values, every key written
//! ten times) and prints MB/s of log cleaned.
//!
//! `cargo bench --bench cleaner` cleans a 64 MiB log; `STROM_BENCH_CLEANER_MB=1024` makes it the
//! 1 GiB case. Under `cargo test --all-targets` (no `--bench` argument) it cleans 2 MiB, as a
//! smoke test. `STROM_BENCH_DIR` places the log.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use strom_storage::{CleanupPolicy, LogConfig, LogManager, LogManagerConfig, TopicPartition};

const TS: i64 = 1_700_000_000_000;
const VALUE_LEN: usize = 100;
const RECORDS_PER_BATCH: usize = 8;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let mb: u64 = std::env::var("STROM_BENCH_CLEANER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 64 } else { 2 });
    let dir = match std::env::var_os("STROM_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(PathBuf::from(d)).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let manager = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![dir.path().to_path_buf()],
        },
        &|_| LogConfig::default(),
    )
    .unwrap();
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        segment_bytes: (mb << 20).div_ceil(8).clamp(1 << 20, 128 << 20),
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    };
    let tp = TopicPartition::new("bench-compacted", 0);
    let log = manager
        .get_or_create(&tp, uuid_like(), config.clone())
        .unwrap();
    let target = mb << 20;
    let probe = common::keyed_batch(&[0; RECORDS_PER_BATCH], VALUE_LEN, TS);
    let batches = (target / probe.len() as u64).max(1);
    let keys = (batches * RECORDS_PER_BATCH as u64 / 10).max(1);
    let mut next = 0u64;
    let build = Instant::now();
    for _ in 0..batches {
        let ks: Vec<u64> = (0..RECORDS_PER_BATCH as u64)
            .map(|i| (next + i).wrapping_mul(0x9e37_79b9_7f4a_7c15) % keys)
            .collect();
        next += RECORDS_PER_BATCH as u64;
        log.append(&common::keyed_batch(&ks, VALUE_LEN, TS), 0, None)
            .unwrap();
    }
    // A batch far enough in time to roll: everything before it becomes cleanable.
    log.update_config(LogConfig {
        segment_ms: 1,
        ..config.clone()
    });
    log.append(
        &common::keyed_batch(&[u64::MAX], VALUE_LEN, TS + 1000),
        0,
        None,
    )
    .unwrap();
    log.update_config(config);
    let size = log.size_in_bytes();
    eprintln!(
        "built a {:.1} MiB log ({} batches, {} keys) in {:.2?}",
        size as f64 / 1048576.0,
        batches,
        keys,
        build.elapsed()
    );
    let started = Instant::now();
    let summary = manager
        .clean_dirtiest(TS + 2000, 128 << 20)
        .unwrap()
        .expect("the log is dirty");
    let elapsed = started.elapsed();
    println!(
        "cleaner: {:.1} MiB log cleaned in {:.2?} = {:.1} MB/s of log ({:.1} MB read in two \
         passes, {:.1} MB written, {} of {} records kept)",
        size as f64 / 1048576.0,
        elapsed,
        size as f64 / 1e6 / elapsed.as_secs_f64(),
        summary.stats.bytes_read as f64 / 1e6,
        summary.stats.bytes_written as f64 / 1e6,
        summary.stats.messages_retained,
        summary.stats.messages_read,
    );
    assert!(summary.stats.messages_retained <= keys + 1);
}

/// A fixed topic id: the bench needs one, not a random one (no uuid dependency here).
fn uuid_like() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x5354_524f_4d5f_4245_4e43_485f_434c_4e52)
}
