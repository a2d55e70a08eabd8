//! Cluster metadata: what topics, partitions, brokers and configs exist.
//!
//! State is a log of typed [`MetadataRecord`]s applied, in order, to an immutable
//! [`MetadataImage`]. Readers hold an `Arc<MetadataImage>` snapshot and never lock; each committed
//! batch of records produces a new image (copy-on-write per topic) that is published to
//! subscribers. The [`Controller`] is the only writer: it validates a request (topic names,
//! partition counts, replication factors, configs), turns it into records, makes them durable in
//! the [`log::MetadataLog`] and applies them.
//!
//! In single-node mode the log is a local file; the cluster issue puts the same records behind an
//! openraft quorum, which is why records carry everything needed to rebuild the image by replay.
//!
//! [`config`] is the table of Kafka config definitions (names, types, defaults, validators,
//! broker synonyms of topic configs) used to validate and describe broker and topic configs;
//! [`config_control`] turns IncrementalAlterConfigs / AlterConfigs requests into records.

pub mod config;
pub mod config_control;
pub mod controller;
pub mod image;
pub mod log;
pub mod records;
pub mod topic_name;

pub use config_control::{AlterConfigOp, ConfigChange, OpType};
pub use controller::{
    Controller, ControllerConfig, CreateTopicSpec, CreatedTopic, DeletedTopic, NewPartitionsSpec,
    PRODUCER_ID_BLOCK_SIZE, ProducerIdsBlock, TopicRef,
};
pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use records::MetadataRecord;

/// Errors of the metadata layer that are not a Kafka error for a client (those are
/// `strom_protocol::ApiError`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata log I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    #[error("corrupt metadata log {path}: {reason}")]
    Corrupt { path: String, reason: String },
}
