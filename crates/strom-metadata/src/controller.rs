//! The controller: the only writer of metadata. Validates requests, turns them into records,
//! appends them to the metadata log and publishes the new image.
//!
//! ```text
//! request ──> lock the writer ──> validate against the current image ──> records
//!                                                                          │
//!   subscribers <── publish the new image <── apply <── append + fsync <───┘
//! ```
//!
//! Writers are serialised by one async mutex, so each operation validates against the image
//! its records will be applied to. The append, apply and publish run in a task of their own:
//! a caller that gives up (a dropped future) can never leave a durable batch unapplied.
//!
//! Validation follows Kafka's `ReplicationControlManager` (rules, error codes and messages);
//! placement follows Kafka's rack-unaware assignment. Config changes follow
//! `ConfigurationControlManager` (see [`crate::config_control`]) and producer-id blocks
//! `ProducerIdControlManager`. All records of one request form one batch, committed atomically.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use rand::Rng;
use strom_protocol::{ApiError, ErrorCode};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use tracing::{error, info};
use uuid::Uuid;

use crate::config;
use crate::config_control::{self, ConfigChange};
use crate::log::MetadataLog;
use crate::records::{
    ConfigRecord, ConfigResourceType, MetadataRecord, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, RemoveTopicRecord, TopicRecord,
};
use crate::topic_name;
use crate::{MetadataError, MetadataImage};

/// Kafka's reserved id of the metadata topic (`Uuid.METADATA_TOPIC_ID`); never given to a topic.
pub const METADATA_TOPIC_ID: Uuid = Uuid::from_u64_pair(0, 1);

/// Most partitions one CreateTopics or CreatePartitions request may create (Kafka's
/// `MAX_PARTITIONS_PER_BATCH`): bounds the memory and the size of one metadata batch.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Producer ids per block handed to a broker (Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// A block of producer ids for one broker: `first_producer_id ..= last_producer_id()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdsBlock {
    pub first_producer_id: i64,
    pub size: i32,
}

impl ProducerIdsBlock {
    pub fn last_producer_id(&self) -> i64 {
        self.first_producer_id + i64::from(self.size) - 1
    }
}

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
    config: ControllerConfig,
    /// The log, behind the lock that serialises all writers.
    writer: Arc<Mutex<MetadataLog>>,
    /// The current image. Only a writer holding `writer` replaces it.
    image: Arc<watch::Sender<Arc<MetadataImage>>>,
}

impl Controller {
    /// Opens (or creates) the metadata log and replays it into an image. A torn last entry (a
    /// crash mid-write) is cut off; corruption before the end is an error.
    pub async fn open(config: ControllerConfig) -> Result<Controller, MetadataError> {
        let dir = config.metadata_log_dir.clone();
        let (log, entries) = tokio::task::spawn_blocking(move || MetadataLog::open(&dir))
            .await
            .map_err(|join| MetadataError::Io {
                path: config.metadata_log_dir.display().to_string(),
                source: Arc::new(std::io::Error::other(join.to_string())),
            })??;
        let mut image = MetadataImage::empty();
        for entry in &entries {
            image.apply_in_place(&entry.records, entry.last_offset());
        }
        info!(
            offset = image.offset,
            topics = image.topic_count(),
            brokers = image.brokers.len(),
            "metadata replayed"
        );
        let (image, _) = watch::channel(Arc::new(image));
        Ok(Controller {
            config,
            writer: Arc::new(Mutex::new(log)),
            image: Arc::new(image),
        })
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.borrow())
    }

    /// Receives every new image after each committed change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    /// Registers (or re-registers, with a new incarnation) a broker and unfences it.
    pub async fn register_broker(
        &self,
        registration: RegisterBrokerRecord,
    ) -> Result<(), ApiError> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        if registration.broker_id < 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Invalid broker id {}.", registration.broker_id),
            ));
        }
        let record = RegisterBrokerRecord {
            fenced: false,
            ..registration
        };
        let image = self.image();
        if let Some(current) = image.brokers.get(&record.broker_id) {
            let same = current.incarnation_id == record.incarnation_id
                && current.listeners == record.listeners
                && current.rack == record.rack
                && !current.fenced;
            if same {
                // A retried registration: nothing changes.
                return Ok(());
            }
        }
        info!(broker = record.broker_id, incarnation = %record.incarnation_id, "registering broker");
        self.commit(writer, vec![MetadataRecord::RegisterBroker(record)])
            .await
            .map(drop)
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
        if self.requested_partitions(&topics) > MAX_PARTITIONS_PER_REQUEST {
            let error = ApiError::new(ErrorCode::PolicyViolation, TOO_MANY_PARTITIONS);
            return topics.iter().map(|_| Err(error.clone())).collect();
        }
        let writer = Arc::clone(&self.writer).lock_owned().await;
        // Scratch image: a topic created earlier in the request is visible to later ones, so
        // two entries for one name cannot both succeed.
        let mut working = (*self.image()).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        for spec in &topics {
            let result = self.plan_topic(&working, spec);
            if let Ok((_, topic_records)) = &result {
                working.apply_in_place(topic_records, working.offset + topic_records.len() as i64);
            }
            results.push(result.map(|(created, topic_records)| {
                records.extend(topic_records);
                created
            }));
        }
        for (spec, result) in topics.iter().zip(&results) {
            match result {
                Ok(created) => info!(topic = %created.name, topic_id = %created.topic_id,
                    partitions = created.num_partitions, replication_factor = created.replication_factor,
                    validate_only, "CreateTopics: success"),
                Err(e) => {
                    info!(topic = %spec.name, error = %e, validate_only, "CreateTopics: failed")
                }
            }
        }
        if validate_only || records.is_empty() {
            return results;
        }
        match self.commit(writer, records).await {
            Ok(_) => results,
            Err(e) => fail_successes(results, &e),
        }
    }

    /// Deletes topics (UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID when absent).
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
    ) -> Vec<Result<DeletedTopic, ApiError>> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        let mut working = (*self.image()).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        for topic in &topics {
            let found = match topic {
                TopicRef::Name(name) => working.topic_by_name(name).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    )
                }),
                TopicRef::Id(id) if id.is_nil() => Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "Attempt to find topic with invalid topicId {}",
                        kafka_uuid(id)
                    ),
                )),
                TopicRef::Id(id) => working.topic_by_id(id).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownTopicId,
                        "This server does not host this topic ID.",
                    )
                }),
            };
            let result = found.map(|t| DeletedTopic {
                name: t.name.clone(),
                topic_id: t.id,
            });
            if let Ok(deleted) = &result {
                info!(topic = %deleted.name, topic_id = %deleted.topic_id, "DeleteTopics: deleting");
                let record = MetadataRecord::RemoveTopic(RemoveTopicRecord {
                    topic_id: deleted.topic_id,
                });
                working.apply_in_place(std::slice::from_ref(&record), working.offset + 1);
                records.push(record);
            }
            results.push(result);
        }
        if records.is_empty() {
            return results;
        }
        match self.commit(writer, records).await {
            Ok(_) => results,
            Err(e) => fail_successes(results, &e),
        }
    }

    /// Adds partitions (INVALID_PARTITIONS when the count does not grow, etc.).
    pub async fn create_partitions(
        &self,
        topics: Vec<NewPartitionsSpec>,
        validate_only: bool,
    ) -> Vec<Result<(), ApiError>> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        let mut working = (*self.image()).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        let mut budget = MAX_PARTITIONS_PER_REQUEST;
        for spec in &topics {
            let result = plan_partitions(&working, spec, &mut budget);
            match &result {
                Ok(new) => {
                    info!(topic = %spec.name, count = spec.count, validate_only,
                        "CreatePartitions: success");
                    working.apply_in_place(new, working.offset + new.len() as i64);
                }
                Err(e) => info!(topic = %spec.name, error = %e, validate_only,
                    "CreatePartitions: failed"),
            }
            results.push(result.map(|new| records.extend(new)));
        }
        if validate_only || records.is_empty() {
            return results;
        }
        match self.commit(writer, records).await {
            Ok(_) => results,
            Err(e) => fail_successes(results, &e),
        }
    }

    /// IncrementalAlterConfigs: one result per resource, each independent of the others. A
    /// resource's ops are all applied or none; the records of every successful resource are
    /// committed as one batch. Errors are Kafka's (codes and messages, see
    /// [`crate::config_control`]): INVALID_REQUEST for a resource named twice, duplicate keys,
    /// null values, another broker's id or a config that cannot be changed dynamically;
    /// INVALID_CONFIG for bad topic configs and APPEND/SUBTRACT on a non-LIST config;
    /// UNKNOWN_TOPIC_OR_PARTITION for a missing topic. With `validate_only` nothing is written.
    pub async fn incremental_alter_configs(
        &self,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> Vec<Result<(), ApiError>> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        let image = self.image();
        let duplicated = config_control::duplicated(
            changes
                .iter()
                .map(|c| (c.resource_type, c.resource_name.as_str())),
        );
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(changes.len());
        for (change, duplicated) in changes.iter().zip(duplicated) {
            let result = if duplicated {
                Err(config_control::duplicate_resource_error())
            } else {
                config_control::plan_incremental(&image, self.config.node_id, change)
            };
            log_config_result(
                "IncrementalAlterConfigs",
                change.resource_type,
                &change.resource_name,
                &result,
                validate_only,
            );
            results.push(result.map(|planned| {
                records.extend(planned.into_iter().map(MetadataRecord::Config));
            }));
        }
        self.commit_results(writer, records, results, validate_only)
            .await
    }

    /// AlterConfigs (the legacy API): each resource's dynamic configs become exactly the given
    /// ones, so stored keys not given are deleted, as in Kafka. A `None` value is refused
    /// (INVALID_REQUEST "Null value not supported for : ..."); other errors as in
    /// [`incremental_alter_configs`](Self::incremental_alter_configs).
    pub async fn alter_configs(
        &self,
        changes: Vec<(ConfigResourceType, String, BTreeMap<String, Option<String>>)>,
        validate_only: bool,
    ) -> Vec<Result<(), ApiError>> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        let image = self.image();
        let duplicated = config_control::duplicated(
            changes
                .iter()
                .map(|(resource_type, name, _)| (*resource_type, name.as_str())),
        );
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(changes.len());
        for ((resource_type, name, configs), duplicated) in changes.iter().zip(duplicated) {
            let result = if duplicated {
                Err(config_control::duplicate_resource_error())
            } else {
                config_control::plan_legacy(
                    &image,
                    self.config.node_id,
                    *resource_type,
                    name,
                    configs,
                )
            };
            log_config_result("AlterConfigs", *resource_type, name, &result, validate_only);
            results.push(result.map(|planned| {
                records.extend(planned.into_iter().map(MetadataRecord::Config));
            }));
        }
        self.commit_results(writer, records, results, validate_only)
            .await
    }

    /// Hands broker `broker_id` the next block of [`PRODUCER_ID_BLOCK_SIZE`] producer ids
    /// (Kafka's AllocateProducerIds). The block is durable before it is returned, so no id is
    /// handed out twice, across restarts included.
    ///
    /// `broker_epoch` is Kafka's: the epoch of the broker's registration
    /// ([`crate::BrokerImage::epoch`]), checked as Kafka does (STALE_BROKER_EPOCH for an
    /// unregistered broker or another epoch). A single node that has no epoch at hand passes -1,
    /// which skips the check. Ids running out near `i64::MAX` is UNKNOWN_SERVER_ERROR, as in Kafka.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<ProducerIdsBlock, ApiError> {
        let writer = Arc::clone(&self.writer).lock_owned().await;
        let image = self.image();
        if broker_epoch != -1 {
            let Some(broker) = image.brokers.get(&broker_id) else {
                return Err(ApiError::new(
                    ErrorCode::StaleBrokerEpoch,
                    format!("No broker registration found for broker id {broker_id}"),
                ));
            };
            if broker.epoch != broker_epoch {
                return Err(ApiError::new(
                    ErrorCode::StaleBrokerEpoch,
                    format!(
                        "Expected broker epoch {}, but got broker epoch {broker_epoch}",
                        broker.epoch
                    ),
                ));
            }
        }
        let first = image.next_producer_id();
        let size = i64::from(PRODUCER_ID_BLOCK_SIZE);
        if first > i64::MAX - size {
            error!(next = first, "producer ids exhausted");
            // Kafka's message, word for word.
            return Err(ApiError::new(
                ErrorCode::UnknownServerError,
                "Exhausted all producerIds as the next block's end producerId is will has exceeded long type limit",
            ));
        }
        let record = MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id,
            broker_epoch,
            next_producer_id: first + size,
        });
        self.commit(writer, vec![record]).await?;
        info!(
            broker = broker_id,
            first, size, "AllocateProducerIds: block handed out"
        );
        Ok(ProducerIdsBlock {
            first_producer_id: first,
            size: PRODUCER_ID_BLOCK_SIZE,
        })
    }

    /// Commits the records of a request's successful parts (unless `validate_only` or there are
    /// none); when the commit fails, every success becomes its error.
    async fn commit_results(
        &self,
        writer: OwnedMutexGuard<MetadataLog>,
        records: Vec<MetadataRecord>,
        results: Vec<Result<(), ApiError>>,
        validate_only: bool,
    ) -> Vec<Result<(), ApiError>> {
        if validate_only || records.is_empty() {
            return results;
        }
        match self.commit(writer, records).await {
            Ok(_) => results,
            Err(e) => fail_successes(results, &e),
        }
    }

    /// Partitions a CreateTopics request would create, counted before anything else as Kafka's
    /// `validateTotalNumberOfPartitions` does.
    fn requested_partitions(&self, topics: &[CreateTopicSpec]) -> i64 {
        topics
            .iter()
            .map(|spec| {
                if !spec.assignments.is_empty() {
                    spec.assignments.len() as i64
                } else if spec.num_partitions == -1 {
                    i64::from(self.config.num_partitions)
                } else {
                    i64::from(spec.num_partitions.max(0))
                }
            })
            .sum()
    }

    /// Validates one topic of a CreateTopics request against `image` and builds its records.
    fn plan_topic(
        &self,
        image: &MetadataImage,
        spec: &CreateTopicSpec,
    ) -> Result<(CreatedTopic, Vec<MetadataRecord>), ApiError> {
        let name = spec.name.as_str();
        if name == topic_name::CLUSTER_METADATA_TOPIC_NAME {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("Creation of internal topic {name} is prohibited."),
            ));
        }
        // Precedence as in Kafka: an existing topic beats a collision beats a bad name.
        if image.topic_by_name(name).is_some() {
            return Err(ApiError::new(
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if topic_name::has_collision_chars(name)
            && let Some(existing) = image
                .topics()
                .into_iter()
                .find(|t| topic_name::collide(&t.name, name))
        {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{name}' collides with existing topic: {}",
                    existing.name
                ),
            ));
        }
        topic_name::validate(name)
            .map_err(|message| ApiError::new(ErrorCode::InvalidTopicException, message))?;
        config::validate_topic_configs(&spec.configs)?;

        let assignment = if spec.assignments.is_empty() {
            self.placed_assignment(image, spec)?
        } else {
            manual_assignment(image, spec)?
        };

        let topic_id = new_topic_id(image);
        let mut records = Vec::with_capacity(1 + spec.configs.len() + assignment.len());
        records.push(MetadataRecord::Topic(TopicRecord {
            name: name.to_string(),
            topic_id,
        }));
        // ConfigRecords between the TopicRecord and the PartitionRecords, as Kafka writes them.
        records.extend(spec.configs.iter().map(|(key, value)| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: name.to_string(),
                name: key.clone(),
                value: Some(value.clone()),
            })
        }));
        let replication_factor = assignment.first().map_or(0, |plan| plan.replicas.len());
        let num_partitions = assignment.len();
        records.extend(
            assignment
                .into_iter()
                .enumerate()
                .map(|(index, plan)| partition_record(topic_id, index as i32, plan)),
        );
        Ok((
            CreatedTopic {
                name: name.to_string(),
                topic_id,
                num_partitions: i32::try_from(num_partitions).unwrap_or(i32::MAX),
                replication_factor: i16::try_from(replication_factor).unwrap_or(i16::MAX),
            },
            records,
        ))
    }

    /// Checks the counts of a CreateTopics entry without manual assignment and places it.
    fn placed_assignment(
        &self,
        image: &MetadataImage,
        spec: &CreateTopicSpec,
    ) -> Result<Vec<PartitionPlan>, ApiError> {
        if spec.replication_factor == 0 || spec.replication_factor < -1 {
            return Err(ApiError::new(
                ErrorCode::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            ));
        }
        if spec.num_partitions == 0 || spec.num_partitions < -1 {
            return Err(invalid_partition_count());
        }
        let num_partitions = if spec.num_partitions == -1 {
            self.config.num_partitions
        } else {
            spec.num_partitions
        };
        if num_partitions <= 0 {
            // A nonsensical `num.partitions`, which start-up validation should have refused.
            return Err(invalid_partition_count());
        }
        let replication_factor = if spec.replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            spec.replication_factor
        };
        let placed = place_replicas(image, num_partitions as usize, replication_factor)?;
        Ok(placed.into_iter().map(PartitionPlan::all_in_sync).collect())
    }

    /// Appends `records` as one batch, applies them and publishes the new image. Runs in its
    /// own task so that the caller going away cannot stop between append and publish.
    async fn commit(
        &self,
        mut writer: OwnedMutexGuard<MetadataLog>,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, ApiError> {
        let image = Arc::clone(&self.image);
        let committed = tokio::spawn(async move {
            let entry = writer.append(records).await?;
            let current = Arc::clone(&image.borrow());
            let next = Arc::new(current.apply(&entry.records, entry.last_offset()));
            image.send_replace(Arc::clone(&next));
            drop(writer);
            Ok::<_, MetadataError>(next)
        })
        .await;
        match committed {
            Ok(Ok(next)) => Ok(next),
            Ok(Err(e)) => {
                error!(error = %e, "metadata commit failed");
                Err(ApiError::new(
                    ErrorCode::UnknownServerError,
                    format!("Failed to write the metadata log: {e}"),
                ))
            }
            Err(join) => {
                error!(error = %join, "metadata commit task failed");
                Err(ApiError::new(
                    ErrorCode::UnknownServerError,
                    "The metadata commit did not complete.",
                ))
            }
        }
    }
}

/// Where the replicas of one new partition go.
#[derive(Debug)]
struct PartitionPlan {
    replicas: Vec<i32>,
    /// The replicas on unfenced brokers, in replica order; the first one leads.
    isr: Vec<i32>,
}

impl PartitionPlan {
    /// A placement on unfenced brokers only: every replica starts in sync.
    fn all_in_sync(replicas: Vec<i32>) -> Self {
        Self {
            isr: replicas.clone(),
            replicas,
        }
    }
}

fn invalid_partition_count() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidPartitions,
        "Number of partitions was set to an invalid non-positive value.",
    )
}

/// One log line per resource of a config change; values stay out (they may be secrets).
fn log_config_result<T>(
    api: &str,
    resource_type: ConfigResourceType,
    name: &str,
    result: &Result<T, ApiError>,
    validate_only: bool,
) {
    match result {
        Ok(_) => {
            info!(api, ?resource_type, resource = %name, validate_only, "config change accepted")
        }
        Err(e) => info!(api, ?resource_type, resource = %name, error = %e, validate_only,
            "config change refused"),
    }
}

/// Turns every success of a request into the commit's error: nothing of it was applied.
fn fail_successes<T>(
    results: Vec<Result<T, ApiError>>,
    error: &ApiError,
) -> Vec<Result<T, ApiError>> {
    results
        .into_iter()
        .map(|result| result.and_then(|_| Err(error.clone())))
        .collect()
}

fn partition_record(topic_id: Uuid, partition_id: i32, plan: PartitionPlan) -> MetadataRecord {
    let leader = plan.isr.first().copied().unwrap_or(-1);
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition_id,
        replicas: plan.replicas,
        isr: plan.isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// A CreateTopics entry with a manual assignment: partitions and replication factor must be -1,
/// each partition's replicas valid, and the partition indexes 0..n.
fn manual_assignment(
    image: &MetadataImage,
    spec: &CreateTopicSpec,
) -> Result<Vec<PartitionPlan>, ApiError> {
    if spec.replication_factor != -1 {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "A manual partition assignment was specified, but replication factor was not set to -1.",
        ));
    }
    if spec.num_partitions != -1 {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "A manual partition assignment was specified, but numPartitions was not set to -1.",
        ));
    }
    let mut replication_factor = None;
    let mut partitions = Vec::with_capacity(spec.assignments.len());
    for (&index, replicas) in &spec.assignments {
        let isr = validate_manual_replicas(image, replicas, replication_factor, index)?;
        replication_factor = Some(replicas.len());
        partitions.push((
            index,
            PartitionPlan {
                replicas: replicas.clone(),
                isr,
            },
        ));
    }
    // Keys are sorted and unique: they are 0..n exactly when each sits at its own position.
    if partitions
        .iter()
        .enumerate()
        .any(|(position, (index, _))| i64::from(*index) != position as i64)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence",
        ));
    }
    Ok(partitions
        .into_iter()
        .map(|(_, assignment)| assignment)
        .collect())
}

/// Kafka's `validateManualPartitionAssignment` plus its fenced-ISR check. Returns the ISR: the
/// replicas that are unfenced, in replica order.
fn validate_manual_replicas(
    image: &MetadataImage,
    replicas: &[i32],
    replication_factor: Option<usize>,
    partition: i32,
) -> Result<Vec<i32>, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, message);
    if replicas.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".to_string(),
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for &broker in &sorted {
        if !image.brokers.contains_key(&broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            )));
        }
        if previous == Some(broker) {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        previous = Some(broker);
    }
    if let Some(expected) = replication_factor
        && replicas.len() != expected
    {
        return Err(invalid(format!(
            "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {expected} replica(s).",
            replicas.len()
        )));
    }
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|id| image.brokers.get(id).is_some_and(|b| !b.fenced))
        .collect();
    if isr.is_empty() {
        return Err(invalid(format!(
            "All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."
        )));
    }
    Ok(isr)
}

/// Validates one CreatePartitions entry against `image` and builds the new PartitionRecords.
/// `budget` is what is left of the request's partition limit.
fn plan_partitions(
    image: &MetadataImage,
    spec: &NewPartitionsSpec,
    budget: &mut i64,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let topic = image
        .topic_by_name(&spec.name)
        .ok_or_else(|| ApiError::bare(ErrorCode::UnknownTopicOrPartition))?;
    let current = topic.partitions.len() as i64;
    let count = i64::from(spec.count);
    if count == current {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    if count < current {
        return Err(ApiError::new(
            ErrorCode::InvalidPartitions,
            format!(
                "The topic {} currently has {current} partition(s); {count} would not be an increase.",
                spec.name
            ),
        ));
    }
    let additional = count - current;
    if !spec.assignments.is_empty() && spec.assignments.len() as i64 != additional {
        return Err(ApiError::new(
            ErrorCode::InvalidReplicaAssignment,
            format!(
                "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                spec.assignments.len()
            ),
        ));
    }
    if additional > *budget {
        return Err(ApiError::new(
            ErrorCode::PolicyViolation,
            TOO_MANY_PARTITIONS,
        ));
    }
    let replication_factor = topic.replication_factor();
    if replication_factor == 0 {
        return Err(ApiError::new(
            ErrorCode::UnknownServerError,
            format!(
                "Invalid state: topic {} appears to have no partitions.",
                spec.name
            ),
        ));
    }
    let start = current as i32;
    let assignment: Vec<PartitionPlan> = if spec.assignments.is_empty() {
        let replication_factor = i16::try_from(replication_factor).unwrap_or(i16::MAX);
        place_replicas(image, additional as usize, replication_factor)?
            .into_iter()
            .map(PartitionPlan::all_in_sync)
            .collect()
    } else {
        spec.assignments
            .iter()
            .enumerate()
            .map(|(i, replicas)| {
                validate_manual_replicas(
                    image,
                    replicas,
                    Some(replication_factor),
                    start + i as i32,
                )
                .map(|isr| PartitionPlan {
                    replicas: replicas.clone(),
                    isr,
                })
            })
            .collect::<Result<_, _>>()?
    };
    *budget -= additional;
    Ok(assignment
        .into_iter()
        .enumerate()
        .map(|(i, plan)| partition_record(topic.id, start + i as i32, plan))
        .collect())
}

/// Places `num_partitions` partitions of `replication_factor` replicas on the unfenced brokers.
///
/// Kafka's rack-unaware assignment: the first replica of partition p goes to broker
/// `(start + p) % n`, the followers after it at a shift that grows by one every n partitions,
/// both starting at random. Leaders and followers spread evenly, and no broker holds two
/// replicas of one partition. Racks come with the cluster issue.
fn place_replicas(
    image: &MetadataImage,
    num_partitions: usize,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ApiError> {
    let unable = |reason: String| {
        ApiError::new(
            ErrorCode::InvalidReplicationFactor,
            format!("Unable to replicate the partition {replication_factor} time(s): {reason}"),
        )
    };
    if replication_factor <= 0 {
        return Err(unable(format!(
            "Invalid replication factor {replication_factor}: the replication factor must be positive."
        )));
    }
    let brokers: Vec<i32> = image.unfenced_brokers().map(|b| b.id).collect();
    if brokers.is_empty() {
        return Err(unable("All brokers are currently fenced.".to_string()));
    }
    let rf = replication_factor as usize;
    let n = brokers.len();
    if rf > n {
        return Err(unable(format!(
            "The target replication factor of {rf} cannot be reached because only {n} broker(s) are registered."
        )));
    }
    let mut rng = rand::rng();
    let start = rng.random_range(0..n);
    let mut shift = rng.random_range(0..n);
    let mut placed = Vec::with_capacity(num_partitions);
    for p in 0..num_partitions {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (start + p) % n;
        let mut replicas = Vec::with_capacity(rf);
        replicas.push(brokers[first]);
        for j in 0..rf - 1 {
            replicas.push(brokers[(first + 1 + (shift + j) % (n - 1)) % n]);
        }
        placed.push(replicas);
    }
    Ok(placed)
}

/// A fresh topic id: random, never Kafka's reserved ids, never one in use, and (like Kafka's
/// `Uuid.randomUuid`) never one whose text form starts with '-', which tools would take for a
/// command-line flag.
fn new_topic_id(image: &MetadataImage) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if id.is_nil()
            || id == METADATA_TOPIC_ID
            || image.topic_by_id(&id).is_some()
            || kafka_uuid(&id).starts_with('-')
        {
            continue;
        }
        return id;
    }
}

/// Kafka's text form of a UUID (`Uuid.toString`): URL-safe base64 without padding.
pub fn kafka_uuid(id: &Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerImage;
    use crate::records::Endpoint;
    use std::collections::BTreeSet;

    fn brokers_of(assignments: &[Vec<i32>]) -> BTreeSet<i32> {
        assignments.iter().flatten().copied().collect()
    }

    fn image_with_brokers(unfenced: &[i32], fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::empty();
        for (&id, is_fenced) in unfenced
            .iter()
            .map(|id| (id, false))
            .chain(fenced.iter().map(|id| (id, true)))
        {
            image.brokers.insert(
                id,
                BrokerImage {
                    id,
                    incarnation_id: Uuid::new_v4(),
                    listeners: vec![Endpoint {
                        name: "PLAINTEXT".into(),
                        host: "localhost".into(),
                        port: 9092,
                        security_protocol: "PLAINTEXT".into(),
                    }],
                    rack: None,
                    fenced: is_fenced,
                    epoch: 0,
                },
            );
        }
        image
    }

    #[test]
    fn placement_spreads_leaders_and_never_repeats_a_broker() {
        let image = image_with_brokers(&[1, 2, 3, 4, 5], &[9]);
        for rf in 1..=5i16 {
            let placed = place_replicas(&image, 20, rf).unwrap();
            assert_eq!(placed.len(), 20);
            let mut leaders = BTreeMap::<i32, usize>::new();
            for replicas in &placed {
                assert_eq!(replicas.len(), rf as usize);
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), replicas.len(), "{replicas:?}");
                assert!(!replicas.contains(&9), "fenced broker used: {replicas:?}");
                *leaders.entry(replicas[0]).or_default() += 1;
            }
            // 20 partitions over 5 brokers: 4 leaders each.
            assert!(leaders.values().all(|&n| n == 4), "{leaders:?}");
            assert_eq!(brokers_of(&placed).len(), 5);
        }
    }

    #[test]
    fn placement_errors() {
        let image = image_with_brokers(&[1], &[2]);
        let err = place_replicas(&image, 1, 2).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidReplicationFactor);
        assert_eq!(
            err.message.as_deref(),
            Some(
                "Unable to replicate the partition 2 time(s): The target replication factor of 2 cannot be reached because only 1 broker(s) are registered."
            )
        );
        let none = image_with_brokers(&[], &[1]);
        assert_eq!(
            place_replicas(&none, 1, 1).unwrap_err().message.as_deref(),
            Some("Unable to replicate the partition 1 time(s): All brokers are currently fenced.")
        );
        assert!(
            place_replicas(&image, 1, 0)
                .unwrap_err()
                .message
                .unwrap()
                .contains("must be positive")
        );
    }

    #[test]
    fn topic_ids_avoid_reserved_values() {
        let image = MetadataImage::empty();
        for _ in 0..1000 {
            let id = new_topic_id(&image);
            assert!(!id.is_nil());
            assert_ne!(id, METADATA_TOPIC_ID);
            assert!(!kafka_uuid(&id).starts_with('-'));
        }
        assert_eq!(kafka_uuid(&Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(kafka_uuid(&METADATA_TOPIC_ID), "AAAAAAAAAAAAAAAAAAAAAQ");
    }
}
