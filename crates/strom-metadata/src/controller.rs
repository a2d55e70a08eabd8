//! The controller: the only writer of metadata. Validates requests, turns them into records,
//! appends them to the metadata log and publishes the new image.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use strom_protocol::ApiError;
use tokio::sync::watch;
use uuid::Uuid;

use crate::records::RegisterBrokerRecord;
use crate::{MetadataError, MetadataImage};

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `node.id` of this (single) node.
    pub node_id: i32,
    /// Directory of the metadata log (`metadata.log.dir`, else the first `log.dirs` entry):
    /// records live in `<dir>/__cluster_metadata-0/`.
    pub metadata_log_dir: PathBuf,
    /// `num.partitions`: used when a CreateTopics entry asks for -1 partitions and for
    /// auto-created topics.
    pub num_partitions: i32,
    /// `default.replication.factor`: likewise for the replication factor.
    pub default_replication_factor: i16,
}

/// One topic of a CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicSpec {
    pub name: String,
    /// -1: `num.partitions`.
    pub num_partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition index -> broker ids. Empty: the controller places replicas.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    /// Topic config overrides, validated against the topic config definitions.
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// A topic named in DeleteTopics: by name (older versions) or by id (v6+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedTopic {
    pub name: String,
    pub topic_id: Uuid,
}

/// One topic of a CreatePartitions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartitionsSpec {
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// Replicas of each new partition, in order; empty: the controller places them.
    pub assignments: Vec<Vec<i32>>,
}

/// Single-node controller over a local metadata log.
#[derive(Debug)]
pub struct Controller {
    // Filled in by the implementation.
    _image: watch::Sender<Arc<MetadataImage>>,
}

impl Controller {
    /// Opens (or creates) the metadata log and replays it into an image. A torn last entry (a
    /// crash mid-write) is cut off; corruption before the end is an error.
    pub async fn open(config: ControllerConfig) -> Result<Controller, MetadataError> {
        let _ = config;
        unimplemented!()
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        unimplemented!()
    }

    /// Receives every new image after each committed change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        unimplemented!()
    }

    /// Registers (or re-registers, with a new incarnation) a broker and unfences it.
    pub async fn register_broker(&self, registration: RegisterBrokerRecord) -> Result<(), ApiError> {
        let _ = registration;
        unimplemented!()
    }

    /// Creates topics, each independently: one bad topic does not fail the others. Errors are
    /// Kafka's: INVALID_TOPIC_EXCEPTION (name rules), TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
    /// INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG, each with a
    /// message. With `validate_only` nothing is written.
    pub async fn create_topics(
        &self,
        topics: Vec<CreateTopicSpec>,
        validate_only: bool,
    ) -> Vec<Result<CreatedTopic, ApiError>> {
        let _ = (topics, validate_only);
        unimplemented!()
    }

    /// Deletes topics (UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID when absent).
    pub async fn delete_topics(&self, topics: Vec<TopicRef>) -> Vec<Result<DeletedTopic, ApiError>> {
        let _ = topics;
        unimplemented!()
    }

    /// Adds partitions (INVALID_PARTITIONS when the count does not grow, etc.).
    pub async fn create_partitions(
        &self,
        topics: Vec<NewPartitionsSpec>,
        validate_only: bool,
    ) -> Vec<Result<(), ApiError>> {
        let _ = (topics, validate_only);
        unimplemented!()
    }
}
