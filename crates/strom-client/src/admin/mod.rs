//! The admin client: topics, partitions, configs, consumer groups and their offsets, records,
//! log directories, producers, cluster description.
//!
//! Calls that name several items (topics, groups, partitions, config resources) return one
//! result per item, each with its own Kafka error code and message, as Kafka's
//! `CreateTopicsResult` & co. do; the outer `Result` fails only when the call as a whole did
//! (no broker reachable, ...). Whole calls are retried on retriable errors within
//! `default.api.timeout.ms`; per-item errors are returned as the broker gave them, except the
//! ones that only say "ask elsewhere or later" (a moved leader or coordinator), which are
//! retried for that item.
//!
//! ```text
//!   topics, configs ─────────► controller / any broker / the named broker
//!   groups, group offsets ───► the group's coordinator (coordinator.rs: FindCoordinator, cache)
//!   transactions ────────────► the id's coordinator; listing: every broker
//!   offsets, records, producers, transaction aborts ► each partition's leader (partitions.rs)
//!   log dirs, group listing ──► every broker
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use strom_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use strom_protocol::messages::delete_topics_request::DeleteTopicState;
use strom_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    TopicName,
};
use strom_protocol::{ErrorCode, StrBytes};
use uuid::Uuid;

use crate::cluster::{Cluster, Node, TopicDescription, Topics};
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

mod configs;
pub(crate) mod coordinator;
mod group_offsets;
mod groups;
mod log_dirs;
mod partitions;
mod transactions;

pub use configs::{
    AlterConfigOp, AlterConfigOpType, AlterConfigResult, AlterConfigsOptions, ConfigEntry,
    ConfigResource, ConfigResourceType, ConfigResult, ConfigSource, ConfigSynonym,
    DescribeConfigsOptions,
};
pub use group_offsets::OffsetAndMetadata;
pub use groups::{
    GroupDescription, GroupListing, GroupResult, GroupState, GroupType, MemberAssignment,
    MemberDescription, MemberSubscription,
};
pub use log_dirs::{LogDirDescription, ReplicaInfo};
pub use partitions::{ListOffsetsResultInfo, OffsetSpec, PartitionResult, ProducerState};
pub use transactions::{
    AbortTransactionSpec, ListTransactionsOptions, TransactionDescription, TransactionListing,
};

/// The outcome of an operation on one topic.
#[derive(Debug, Clone)]
pub struct TopicResult<T> {
    pub name: String,
    pub result: Result<T>,
}

/// A topic to create. `None` partitions or replication factor take the broker's defaults
/// (`num.partitions`, `default.replication.factor`; KIP-464).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    pub fn with_partitions(mut self, n: i32) -> Self {
        self.num_partitions = Some(n);
        self
    }

    pub fn with_replication_factor(mut self, n: i16) -> Self {
        self.replication_factor = Some(n);
        self
    }

    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// Options of `create_topics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateTopicsOptions {
    /// Check the request without creating anything.
    pub validate_only: bool,
    /// How long the broker may take; `request.timeout.ms` when `None`.
    pub timeout: Option<Duration>,
}

/// What the broker reports about a created topic (fields are -1/None when its version does
/// not say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: Option<Uuid>,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<ConfigEntry>,
}

/// One topic in `list_topics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    pub name: String,
    pub topic_id: Option<Uuid>,
    pub internal: bool,
}

/// The cluster as `describe_cluster` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller_id: Option<i32>,
    pub nodes: Vec<Node>,
}

/// The admin client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
    /// Group id -> its coordinator, as FindCoordinator last said; dropped when the
    /// coordinator answers that it no longer is one, or cannot be reached.
    coordinators: Arc<coordinator::CoordinatorCache>,
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn timeout_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Admin {
    /// Connects to the cluster; fails fast if no bootstrap server answers. Metadata requests
    /// of the admin client never create topics.
    pub async fn connect(config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            cluster: Cluster::connect(config, false).await?,
            coordinators: Arc::default(),
        })
    }

    /// An admin client over an existing cluster handle: the group consumer uses it to reach
    /// its coordinator with the same lookup, cache and retries.
    pub(crate) fn from_cluster(cluster: Arc<Cluster>) -> Admin {
        Admin {
            cluster,
            coordinators: Arc::default(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        self.cluster.config()
    }

    async fn controller(&self) -> Result<Arc<Connection>> {
        self.cluster.controller_connection().await
    }

    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        options: CreateTopicsOptions,
    ) -> Result<Vec<TopicResult<CreatedTopic>>> {
        let timeout = options
            .timeout
            .unwrap_or_else(|| self.cluster.config().request_timeout());
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(timeout_ms(timeout))
            .with_validate_only(options.validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(topic_name(&t.name))
                            .with_num_partitions(t.num_partitions.unwrap_or(-1))
                            .with_replication_factor(t.replication_factor.unwrap_or(-1))
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response = self
            .cluster
            .retry(&[], || async {
                let conn = self.controller().await?;
                let version = conn.version::<CreateTopicsRequest>(None)?;
                conn.call_at(
                    &request,
                    version,
                    timeout + self.cluster.config().request_timeout(),
                )
                .await
            })
            .await?;
        let mut by_name: BTreeMap<String, TopicResult<CreatedTopic>> = BTreeMap::new();
        for t in response.topics {
            let name = t.name.0.to_string();
            let result = ClientError::check(t.error_code, t.error_message.as_deref()).map(|()| {
                CreatedTopic {
                    topic_id: Some(t.topic_id).filter(|id| !id.is_nil()),
                    num_partitions: t.num_partitions,
                    replication_factor: t.replication_factor,
                    configs: t
                        .configs
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| ConfigEntry {
                            name: c.name.to_string(),
                            value: c.value.map(|v| v.to_string()),
                            source: ConfigSource::from_wire(c.config_source),
                            read_only: c.read_only,
                            sensitive: c.is_sensitive,
                            synonyms: Vec::new(),
                            documentation: None,
                        })
                        .collect(),
                }
            });
            by_name.insert(name.clone(), TopicResult { name, result });
        }
        Ok(in_request_order(
            topics.iter().map(|t| t.name.as_str()),
            by_name,
        ))
    }

    pub async fn delete_topics(&self, names: &[String]) -> Result<Vec<TopicResult<()>>> {
        let timeout = self.cluster.config().request_timeout();
        let response = self
            .cluster
            .retry(&[], || async {
                let conn = self.controller().await?;
                let version = conn.version::<DeleteTopicsRequest>(None)?;
                let mut request =
                    DeleteTopicsRequest::default().with_timeout_ms(timeout_ms(timeout));
                request = if version >= 6 {
                    request.with_topics(
                        names
                            .iter()
                            .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                            .collect(),
                    )
                } else {
                    request.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
                };
                conn.call_at(&request, version, timeout * 2).await
            })
            .await?;
        let mut by_name = BTreeMap::new();
        for t in response.responses {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let result = ClientError::check(t.error_code, t.error_message.as_deref());
            by_name.insert(name.clone(), TopicResult { name, result });
        }
        Ok(in_request_order(names.iter().map(String::as_str), by_name))
    }

    /// Every topic, sorted by name; internal topics only when asked for.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicListing>> {
        let mut topics: Vec<TopicListing> = self
            .describe_all_topics(include_internal)
            .await?
            .into_iter()
            .map(|t| TopicListing {
                name: t.name,
                topic_id: t.topic_id,
                internal: t.internal,
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Descriptions of every topic, sorted by name.
    pub async fn describe_all_topics(
        &self,
        include_internal: bool,
    ) -> Result<Vec<TopicDescription>> {
        let metadata = self
            .cluster
            .retry(&[], || self.cluster.refresh(Topics::All))
            .await?;
        let mut topics: Vec<TopicDescription> = metadata
            .topics
            .values()
            .filter(|t| include_internal || !t.internal)
            .cloned()
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Partitions, leaders, replicas, ISR and topic id of each named topic.
    pub async fn describe_topics(
        &self,
        names: &[String],
    ) -> Result<Vec<TopicResult<TopicDescription>>> {
        let metadata = self
            .cluster
            .retry(&[], || self.cluster.refresh(Topics::Named(names)))
            .await?;
        Ok(names
            .iter()
            .map(|name| {
                let result = match metadata.topic(name) {
                    Some(t) => Ok(t.clone()),
                    None => {
                        let code = metadata
                            .topic_errors
                            .get(name)
                            .copied()
                            .unwrap_or(ErrorCode::UnknownTopicOrPartition);
                        Err(ClientError::kafka(
                            code,
                            Some(format!("Topic '{name}' does not exist."))
                                .filter(|_| code == ErrorCode::UnknownTopicOrPartition),
                        ))
                    }
                };
                TopicResult {
                    name: name.clone(),
                    result,
                }
            })
            .collect())
    }

    /// Raises topics' partition counts to the given totals.
    pub async fn create_partitions(
        &self,
        totals: &[(String, i32)],
        validate_only: bool,
    ) -> Result<Vec<TopicResult<()>>> {
        let timeout = self.cluster.config().request_timeout();
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms(timeout))
            .with_validate_only(validate_only)
            .with_topics(
                totals
                    .iter()
                    .map(|(name, count)| {
                        CreatePartitionsTopic::default()
                            .with_name(topic_name(name))
                            .with_count(*count)
                            .with_assignments(None)
                    })
                    .collect(),
            );
        let response = self
            .cluster
            .retry(&[], || async {
                let conn = self.controller().await?;
                let version = conn.version::<CreatePartitionsRequest>(None)?;
                conn.call_at(&request, version, timeout * 2).await
            })
            .await?;
        let mut by_name = BTreeMap::new();
        for t in response.results {
            let name = t.name.0.to_string();
            let result = ClientError::check(t.error_code, t.error_message.as_deref());
            by_name.insert(name.clone(), TopicResult { name, result });
        }
        Ok(in_request_order(
            totals.iter().map(|(n, _)| n.as_str()),
            by_name,
        ))
    }

    /// Cluster id, controller and brokers: DescribeCluster when the broker serves it,
    /// Metadata otherwise.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        self.cluster
            .retry(&[], || async {
                let conn = self.cluster.any_connection().await?;
                if conn
                    .broker_versions(strom_protocol::messages::ApiKey::DescribeCluster)
                    .is_none()
                {
                    let m = self.cluster.refresh(Topics::None).await?;
                    return Ok(ClusterDescription {
                        cluster_id: m.cluster_id.clone(),
                        controller_id: m.controller_id,
                        nodes: m.brokers.values().cloned().collect(),
                    });
                }
                let response = conn.call(&DescribeClusterRequest::default()).await?;
                ClientError::check(response.error_code, response.error_message.as_deref())?;
                Ok(ClusterDescription {
                    cluster_id: Some(response.cluster_id.to_string()),
                    controller_id: Some(response.controller_id.0).filter(|&id| id >= 0),
                    nodes: response
                        .brokers
                        .into_iter()
                        .map(|b| Node {
                            id: b.broker_id.0,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.map(|r| r.to_string()),
                        })
                        .collect(),
                })
            })
            .await
    }
}

/// Orders per-topic results as the request named the topics; a topic the broker did not
/// answer for gets a protocol error.
fn in_request_order<'a, T>(
    names: impl Iterator<Item = &'a str>,
    mut by_name: BTreeMap<String, TopicResult<T>>,
) -> Vec<TopicResult<T>> {
    let mut seen = BTreeSet::new();
    names
        .filter(|n| seen.insert(n.to_string()))
        .map(|name| {
            by_name.remove(name).unwrap_or_else(|| TopicResult {
                name: name.to_string(),
                result: Err(ClientError::Protocol(format!(
                    "the broker did not answer for topic {name}"
                ))),
            })
        })
        .collect()
}
