//! Hot-path benchmarks of the partition log: appending 100 B, 1 KiB and 16 KiB batches (page
//! cache, no fsync, as with Kafka's default flush settings), consumer-style 1 MiB reads over logs
//! of those batch sizes, and single-batch lookups at random offsets (offset index binary search,
//! header walk, one pread).
//!
//! Set `STROM_BENCH_DIR` to put the logs somewhere other than the system temp dir.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strom_protocol::batch::BatchHeader;
use strom_storage::{Log, LogConfig, TopicPartition};

const SIZES: [usize; 3] = [100, 1024, 16 * 1024];

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("STROM_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(PathBuf::from(dir)).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// A batch of about `size` bytes made of records of up to 1 KiB, as a producer with linger sends.
fn batch_of(size: usize) -> Vec<u8> {
    let records = (size / 1024).max(1);
    // 61 bytes of batch header; about 9 bytes of framing per record.
    let value = (size.saturating_sub(61) / records).saturating_sub(9);
    common::batch(records, value, 1_700_000_000_000)
}

fn open(dir: &std::path::Path, segment_bytes: u64) -> Log {
    Log::open(
        dir,
        TopicPartition::new("bench", 0),
        LogConfig {
            segment_bytes,
            ..LogConfig::default()
        },
        0,
        0,
        true,
    )
    .unwrap()
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for size in SIZES {
        let template = batch_of(size);
        group.throughput(Throughput::Bytes(template.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(size),
            &template,
            |b, template| {
                b.iter_custom(|iters| {
                    // A fresh log per sample keeps the disk use to one sample's worth.
                    let dir = bench_dir();
                    let log = open(dir.path(), 1 << 30);
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

/// A log of about `bytes` made of `size`-byte batches.
fn filled_log(size: usize, bytes: usize) -> (tempfile::TempDir, Log, Vec<u8>) {
    let dir = bench_dir();
    let log = open(dir.path(), 16 << 20);
    let batch = batch_of(size);
    for _ in 0..bytes / batch.len() {
        log.append(&batch, 0, None).unwrap();
    }
    (dir, log, batch)
}

fn read(c: &mut Criterion) {
    const LOG_BYTES: usize = 64 << 20;
    const FETCH: usize = 1 << 20;
    let mut group = c.benchmark_group("read_1MiB");
    group.throughput(Throughput::Bytes(FETCH as u64));
    for size in SIZES {
        let (_dir, log, batch) = filled_log(size, LOG_BYTES);
        let batch_records = i64::from(BatchHeader::parse(&batch).unwrap().records_count);
        let leo = log.log_end_offset();
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
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
    }
    group.finish();
}

fn lookup(c: &mut Criterion) {
    const LOG_BYTES: usize = 64 << 20;
    let mut group = c.benchmark_group("lookup_one_batch");
    for size in [100usize, 1024] {
        let (_dir, log, _) = filled_log(size, LOG_BYTES);
        let leo = log.log_end_offset();
        let random = RandomState::new();
        let mut i = 0u64;
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                i += 1;
                let offset = (random.hash_one(i) % leo as u64) as i64;
                log.read(offset, 1, i64::MAX, true).unwrap()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = append, read, lookup
}
criterion_main!(benches);
