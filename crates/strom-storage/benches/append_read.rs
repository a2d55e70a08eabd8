//! Hot-path benchmarks of the partition log: appending 1 KiB and 16 KiB batches (page cache, no
//! fsync, as with Kafka's default flush settings) and reading 1 MiB fetches.
//!
//! Set `STROM_BENCH_DIR` to put the logs somewhere other than the system temp dir.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strom_protocol::batch::BatchHeader;
use strom_storage::{Log, LogConfig, TopicPartition};

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("STROM_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(PathBuf::from(dir)).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// A batch of about `size` bytes made of 1 KiB-ish records, as a producer with linger sends.
fn batch_of(size: usize) -> Vec<u8> {
    let records = (size / 1024).max(1);
    // 61 bytes of batch header; about 9 bytes of framing per record.
    let value = (size - 61) / records - 9;
    common::batch(records, value, 1_700_000_000_000)
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for size in [1024usize, 16 * 1024] {
        let template = batch_of(size);
        group.throughput(Throughput::Bytes(template.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(size),
            &template,
            |b, template| {
                b.iter_custom(|iters| {
                    // A fresh log per sample keeps the disk use to one sample's worth.
                    let dir = bench_dir();
                    let log = Log::open(
                        dir.path(),
                        TopicPartition::new("bench", 0),
                        LogConfig::default(),
                        0,
                        0,
                        true,
                    )
                    .unwrap();
                    let batch = template.clone();
                    let start = Instant::now();
                    for _ in 0..iters {
                        log.append(&batch, 0, None).unwrap();
                    }
                    start.elapsed()
                });
            },
        );
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    const LOG_BYTES: usize = 64 << 20;
    const FETCH: usize = 1 << 20;
    let dir = bench_dir();
    let log = Log::open(
        dir.path(),
        TopicPartition::new("bench", 0),
        LogConfig {
            segment_bytes: 16 << 20,
            ..LogConfig::default()
        },
        0,
        0,
        true,
    )
    .unwrap();
    let batch = batch_of(1024);
    let batch_records = BatchHeader::parse(&batch).unwrap().records_count as i64;
    for _ in 0..LOG_BYTES / batch.len() {
        log.append(&batch, 0, None).unwrap();
    }
    let leo = log.log_end_offset();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(FETCH as u64));
    group.bench_function("1MiB_of_1KiB_batches", |b| {
        // Consumer-like: each fetch starts where the previous one ended, wrapping at the end.
        let mut offset = 0i64;
        b.iter(|| {
            let result = log.read(offset, FETCH, i64::MAX, true).unwrap();
            let len = result.records.len();
            offset += (len / batch.len()) as i64 * batch_records;
            if offset + (FETCH / batch.len()) as i64 * batch_records >= leo {
                offset = 0;
            }
            result
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = append, read
}
criterion_main!(benches);
