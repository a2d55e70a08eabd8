//! Partition logs in Kafka's on-disk layout.
//!
//! A [`Log`] is one topic partition: a directory `<topic>-<partition>/` of segments
//! (`<20-digit base offset>.log` with its sparse `.index` and `.timeindex`). Batches arrive
//! validated by the broker (see `strom_protocol::batch`); the log assigns their offsets by patching
//! the base offset in place and appends each with one write. Reads return whole stored batches,
//! byte for byte. After an unclean stop the segments past the recovery point are rescanned and
//! the log is cut at the first torn batch.
//!
//! The [`LogManager`] owns the `log.dirs`: it finds and opens every partition directory at start,
//! keeps `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint`, writes and clears the
//! clean-shutdown marker, and creates and deletes logs as topics come and go.
//!
//! This crate knows nothing of the network or of cluster metadata.

mod checkpoint;
mod error;
mod index;
mod log;
mod manager;
pub mod meta_properties;
mod partition_metadata;
mod segment;
#[cfg(test)]
mod test_util;

pub use error::StorageError;
pub use log::{Log, LogAppendInfo, LogConfig, LogReadResult, TimestampOffset};
pub use manager::{LogManager, LogManagerConfig};

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
