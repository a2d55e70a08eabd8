//! Partition logs in Kafka's on-disk layout.
//!
//! A [`Log`] is one topic partition: a directory `<topic>-<partition>/` of segments
//! (`<20-digit base offset>.log` with its sparse `.index` and `.timeindex`, a `.txnindex` of
//! aborted transactions when it has any, and `.snapshot` files of producer state). Batches arrive validated by the broker (see `strom_protocol::batch`); the
//! log checks idempotent producers' epochs and sequences, assigns offsets by patching the base
//! offset in place and appends each batch with one write. Reads return whole stored batches,
//! byte for byte. After an unclean stop the segments past the recovery point are rescanned and
//! the log is cut at the first torn batch.
//!
//! Old data goes by retention (`retention.ms`, `retention.bytes`, the log start offset moved by
//! DeleteRecords) or by compaction ([`LogCleaner`]: the latest record per key, tombstones until
//! `delete.retention.ms`).
//!
//! The [`LogManager`] owns the `log.dirs`: it finds and opens every partition directory at start,
//! keeps `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
//! `cleaner-offset-checkpoint`, writes and clears the clean-shutdown marker, creates and deletes
//! logs as topics come and go, and takes a log dir offline after an I/O error there.
//!
//! [`dump`] reads segment, index and snapshot files for `strom dump-log`.
//!
//! This crate knows nothing of the network or of cluster metadata.

mod checkpoint;
mod cleaner;
mod config;
mod dir_failure;
pub mod dump;
mod error;
mod index;
mod load;
mod log;
mod manager;
pub mod meta_properties;
mod partition_metadata;
mod producer_state;
mod records;
mod retention;
mod segment;
#[cfg(test)]
mod test_util;
mod txn_index;

pub use cleaner::{CleanStats, CleanSummary, LogCleaner};
pub use config::{CleanerConfig, CleanupPolicy, LogConfig};
pub use error::StorageError;
pub use log::{CommittedRead, DeletedSegments, Log, LogAppendInfo, LogReadResult, TimestampOffset};
pub use manager::{LogDirDescription, LogDirPartition, LogManager, LogManagerConfig};
pub use producer_state::{AppendOrigin, ProducerSnapshotEntry};
pub use retention::DeletionReason;
pub use txn_index::{ABORTED_TXN_SIZE, AbortedTxn};

use std::fmt;

/// A topic partition, named as Kafka names its directory: `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
