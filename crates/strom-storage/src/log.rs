//! One partition's log: an ordered map of segments, the active one last.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{StorageError, TopicPartition};

/// Per-log settings, resolved by the broker from topic configs over broker defaults.
/// Field names follow the topic-level Kafka config each comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: random reduction of `segment.ms` per segment, to spread rolls.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: maximum size of an offset index; roll when it is full.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes appended between two sparse index entries.
    pub index_interval_bytes: u64,
    /// `flush.messages`: fsync after this many messages (Kafka default: never, `i64::MAX`).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the last flush is older than this (checked by the caller).
    pub flush_ms: i64,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset given to the first record of the batch.
    pub base_offset: i64,
    /// Offset of the last record of the batch.
    pub last_offset: i64,
    /// Largest timestamp in the batch (its header's `max_timestamp`).
    pub max_timestamp: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// Whole stored batches, exactly as on disk.
#[derive(Debug, Clone)]
pub struct LogReadResult {
    /// Zero or more whole batches. The first one contains the requested offset (it may start
    /// before it: clients skip the records they did not ask for, as with Kafka).
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A record's offset and timestamp, as ListOffsets reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// One partition's log. Shared between request tasks: `append` calls are serialised inside,
/// reads only take a short lock to find the bytes and then read them without it.
#[derive(Debug)]
pub struct Log {
    // Filled in by the implementation.
}

impl Log {
    /// Opens (or creates) the log in `dir`. When `had_clean_shutdown` is false, every segment
    /// holding offsets at or past `recovery_point` is rescanned batch by batch (framing + CRC),
    /// the log is truncated at the first invalid batch and those segments' indexes are rebuilt.
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset: i64,
        had_clean_shutdown: bool,
    ) -> Result<Log, StorageError> {
        let _ = (dir, tp, config, recovery_point, log_start_offset, had_clean_shutdown);
        unimplemented!()
    }

    /// Appends one batch that the broker validated (`strom_protocol::batch::validate_produce`).
    /// Assigns it the next offsets by patching its base offset in place, stamps the partition
    /// leader epoch, rolls the segment first if the batch would not fit (or the segment is older
    /// than `segment.ms`, or its index is full), writes it with one write and adds sparse index
    /// entries every `index.interval.bytes`. Fsyncs when `flush.messages` is reached.
    pub fn append(&self, batch: &mut [u8], leader_epoch: i32) -> Result<LogAppendInfo, StorageError> {
        let _ = (batch, leader_epoch);
        unimplemented!()
    }

    /// Reads whole batches starting with the one containing `offset`, stopping before any batch
    /// that starts at or past `max_offset` (the high watermark for consumers) and once `max_bytes`
    /// is reached. If the first batch alone exceeds `max_bytes` it is returned whole when
    /// `min_one_batch` is set (KIP-74) and nothing is returned otherwise.
    /// `offset == log_end_offset` returns empty records; outside `[log_start, log_end]` is
    /// `OffsetOutOfRange`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<LogReadResult, StorageError> {
        let _ = (offset, max_bytes, max_offset, min_one_batch);
        unimplemented!()
    }

    pub fn log_start_offset(&self) -> i64 {
        unimplemented!()
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        unimplemented!()
    }

    /// Everything below this offset is known to be on disk (fsynced).
    pub fn recovery_point(&self) -> i64 {
        unimplemented!()
    }

    /// The earliest record whose timestamp is >= `timestamp` (ListOffsets by time): the time
    /// index finds the segment and position, then the matching batch's records are decoded to
    /// find the exact record. `None` when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>, StorageError> {
        let _ = timestamp;
        unimplemented!()
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP, KIP-734); on ties the
    /// earliest such record. `None` for an empty log.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>, StorageError> {
        unimplemented!()
    }

    /// Fsyncs everything appended so far and advances the recovery point.
    pub fn flush(&self) -> Result<(), StorageError> {
        unimplemented!()
    }

    /// Milliseconds since the epoch of the last flush (for `flush.ms`).
    pub fn last_flush_ms(&self) -> i64 {
        unimplemented!()
    }

    /// Flushes and trims the indexes; the log is not used afterwards.
    pub fn close(&self) -> Result<(), StorageError> {
        unimplemented!()
    }

    pub fn dir(&self) -> PathBuf {
        unimplemented!()
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        unimplemented!()
    }

    /// Total bytes of all segments (for DescribeLogDirs and retention).
    pub fn size_in_bytes(&self) -> u64 {
        unimplemented!()
    }

    pub fn config(&self) -> LogConfig {
        unimplemented!()
    }

    /// Applies new settings; they take effect from the next append.
    pub fn update_config(&self, config: LogConfig) {
        let _ = config;
        unimplemented!()
    }
}
