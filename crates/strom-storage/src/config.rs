//! Per-log settings ([`LogConfig`]) and the cleaner's settings ([`CleanerConfig`]), named after
//! the Kafka configs they come from, with Kafka's defaults.
//!
//! [`LogConfig::from_configs`] is the one table of topic-level keys and defaults: `Default` is
//! that table applied to an empty lookup, so the two can never disagree.

use std::fmt;

/// `cleanup.policy`: what happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// `delete`: segments past `retention.ms` / `retention.bytes` are deleted.
    Delete,
    /// `compact`: the cleaner keeps the latest record per key.
    Compact,
    /// `compact,delete` (or `delete,compact`): both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Parses Kafka's list syntax: `delete`, `compact`, `compact,delete` in any order and with
    /// spaces. `None` for anything else (the broker's config validation reports it).
    pub fn parse(value: &str) -> Option<Self> {
        let mut compact = false;
        let mut delete = false;
        for part in value.split(',').map(str::trim) {
            match part {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (true, true) => Some(Self::CompactDelete),
            (true, false) => Some(Self::Compact),
            (false, true) => Some(Self::Delete),
            (false, false) => None,
        }
    }

    pub fn compact(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }

    pub fn delete(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        })
    }
}

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
    /// `retention.ms`: segments whose newest record is older than this are deleted; -1 keeps
    /// them forever.
    pub retention_ms: i64,
    /// `retention.bytes`: oldest segments are deleted while the log is larger than this; -1 for
    /// no limit.
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `file.delete.delay.ms`: how long a deleted segment's files stay (renamed `.deleted`) so
    /// that reads already holding them finish.
    pub file_delete_delay_ms: i64,
    /// `delete.retention.ms`: how long the cleaner keeps tombstones after it first saw them.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: the cleaner leaves a log alone while the dirty share of it is
    /// below this.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: records older than this make the log cleanable whatever its ratio.
    pub max_compaction_lag_ms: i64,
    /// `preallocate`: allocate `segment.bytes` up front for each new segment (trimmed at roll).
    pub preallocate: bool,
    /// `max.message.bytes`: the cleaner's read buffer grows to at least this.
    pub max_message_bytes: i64,
    /// `producer.id.expiration.ms` (a broker config, carried here because each log applies it):
    /// producer state idle for longer is dropped.
    pub producer_id_expiration_ms: i64,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self::from_configs(|_| None)
    }
}

/// Kafka's `cleanup.policy` default.
const DEFAULT_CLEANUP_POLICY: CleanupPolicy = CleanupPolicy::Delete;

impl LogConfig {
    /// Builds a config from Kafka property values (`lookup("retention.ms")` → `"86400000"`), with
    /// Kafka's default for every key that is missing or does not parse. Validation with readable
    /// errors belongs to the broker's config layer; this only resolves.
    pub fn from_configs<'a>(lookup: impl Fn(&str) -> Option<&'a str>) -> Self {
        let int = |key: &str, default: i64| -> i64 {
            lookup(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        let float = |key: &str, default: f64| -> f64 {
            lookup(key)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .unwrap_or(default)
        };
        let boolean = |key: &str, default: bool| -> bool {
            lookup(key)
                .and_then(|v| v.trim().parse::<bool>().ok())
                .unwrap_or(default)
        };
        Self {
            segment_bytes: int("segment.bytes", 1 << 30).max(1) as u64,
            segment_ms: int("segment.ms", 7 * 24 * 60 * 60 * 1000),
            segment_jitter_ms: int("segment.jitter.ms", 0),
            segment_index_bytes: int("segment.index.bytes", 10 * 1024 * 1024).max(8) as u64,
            index_interval_bytes: int("index.interval.bytes", 4096).max(0) as u64,
            flush_messages: int("flush.messages", i64::MAX),
            flush_ms: int("flush.ms", i64::MAX),
            retention_ms: int("retention.ms", 7 * 24 * 60 * 60 * 1000),
            retention_bytes: int("retention.bytes", -1),
            cleanup_policy: lookup("cleanup.policy")
                .and_then(CleanupPolicy::parse)
                .unwrap_or(DEFAULT_CLEANUP_POLICY),
            file_delete_delay_ms: int("file.delete.delay.ms", 60_000),
            delete_retention_ms: int("delete.retention.ms", 24 * 60 * 60 * 1000),
            min_cleanable_dirty_ratio: float("min.cleanable.dirty.ratio", 0.5),
            min_compaction_lag_ms: int("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: int("max.compaction.lag.ms", i64::MAX),
            preallocate: boolean("preallocate", false),
            max_message_bytes: int("max.message.bytes", 1_048_588),
            producer_id_expiration_ms: int("producer.id.expiration.ms", 24 * 60 * 60 * 1000),
        }
    }
}

/// The broker-level `log.cleaner.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.threads`.
    pub threads: usize,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key → offset maps of all threads; it
    /// bounds how much of a dirty section one cleaning pass can take.
    pub dedupe_buffer_size: u64,
    /// `log.cleaner.io.buffer.size`: initial read buffer (it grows to the largest batch).
    pub io_buffer_size: usize,
    /// `log.cleaner.backoff.ms`: sleep when no log needs cleaning.
    pub backoff_ms: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        Self {
            enable: true,
            threads: 1,
            dedupe_buffer_size: 128 * 1024 * 1024,
            io_buffer_size: 512 * 1024,
            backoff_ms: 15_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_parses_kafka_lists() {
        assert_eq!(CleanupPolicy::parse("delete"), Some(CleanupPolicy::Delete));
        assert_eq!(
            CleanupPolicy::parse("compact"),
            Some(CleanupPolicy::Compact)
        );
        for both in ["compact,delete", "delete,compact", " compact , delete "] {
            assert_eq!(
                CleanupPolicy::parse(both),
                Some(CleanupPolicy::CompactDelete)
            );
        }
        for bad in ["", "keep", "compact,keep", ","] {
            assert_eq!(CleanupPolicy::parse(bad), None, "{bad:?}");
        }
        assert!(CleanupPolicy::CompactDelete.compact() && CleanupPolicy::CompactDelete.delete());
        assert!(!CleanupPolicy::Compact.delete() && !CleanupPolicy::Delete.compact());
    }

    #[test]
    fn defaults_are_kafkas_and_lookups_override_them() {
        let d = LogConfig::default();
        assert_eq!(d.retention_ms, 604_800_000);
        assert_eq!(d.retention_bytes, -1);
        assert_eq!(d.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(d.file_delete_delay_ms, 60_000);
        assert_eq!(d.delete_retention_ms, 86_400_000);
        assert_eq!(d.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(d.max_compaction_lag_ms, i64::MAX);
        assert_eq!(d.segment_bytes, 1 << 30);
        assert!(!d.preallocate);
        let c = LogConfig::from_configs(|k| match k {
            "retention.ms" => Some("1000"),
            "cleanup.policy" => Some("compact,delete"),
            "preallocate" => Some("true"),
            "min.cleanable.dirty.ratio" => Some("0.1"),
            "retention.bytes" => Some("not a number"),
            _ => None,
        });
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.cleanup_policy, CleanupPolicy::CompactDelete);
        assert!(c.preallocate);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(c.retention_bytes, -1);
    }
}
