//! What the client knows about the cluster: brokers, topics (with ids), partition leaders, and
//! one connection per broker.
//!
//! Bootstrapping tries each `bootstrap.servers` address once, in order, and fails fast with the
//! last connection error — a client pointed at the wrong address should say so at once, not
//! after minutes of retries. Afterwards metadata is fetched from any live broker (falling back
//! to the bootstrap addresses, Kafka 4's `metadata.recovery.strategy=rebootstrap`), on demand:
//! when a topic is first used, when it is older than `metadata.max.age.ms`, and after errors
//! that say the client's view is stale (see [`ClientError::invalidates_metadata`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::metadata_request::MetadataRequestTopic;
use strom_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use tokio::time::Instant;
use tracing::debug;
use uuid::Uuid;

use crate::config::ClientConfig;
use crate::connection::{ConnectOptions, Connection};
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// A broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Node {
    pub fn addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic, as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: i32,
    /// `None` while the partition has no leader.
    pub leader: Option<i32>,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// A partition-level error (LEADER_NOT_AVAILABLE while electing...).
    pub error: Option<ErrorCode>,
}

/// A topic as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    /// `None` for brokers too old to have topic ids (Metadata < v10).
    pub topic_id: Option<Uuid>,
    pub internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionDescription>,
}

/// The cached cluster view; replaced as a whole on every refresh, so readers get a consistent
/// snapshot without holding a lock.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metadata {
    pub(crate) cluster_id: Option<String>,
    pub(crate) controller_id: Option<i32>,
    pub(crate) brokers: BTreeMap<i32, Node>,
    pub(crate) topics: HashMap<String, TopicDescription>,
    /// Topics the last refresh that asked for them reported an error for.
    pub(crate) topic_errors: HashMap<String, ErrorCode>,
    pub(crate) updated: Option<Instant>,
}

impl Metadata {
    pub(crate) fn topic(&self, name: &str) -> Option<&TopicDescription> {
        self.topics.get(name)
    }

    pub(crate) fn leader(&self, tp: &TopicPartition) -> Option<i32> {
        self.topics
            .get(&tp.topic)?
            .partitions
            .iter()
            .find(|p| p.partition == tp.partition)?
            .leader
    }

    pub(crate) fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.topics.get(name)?.topic_id
    }

    pub(crate) fn is_stale(&self, max_age: Duration) -> bool {
        self.updated.is_none_or(|t| t.elapsed() >= max_age)
    }
}

/// Which topics a metadata request asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Topics<'a> {
    /// Brokers only.
    None,
    All,
    Named(&'a [String]),
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

#[derive(Debug)]
pub(crate) struct Cluster {
    config: Arc<ClientConfig>,
    options: ConnectOptions,
    /// Whether Metadata requests may create topics (producer and consumer yes, admin no).
    auto_create: bool,
    metadata: RwLock<Arc<Metadata>>,
    /// One slot per broker address; the async lock inside makes concurrent callers share one
    /// connection attempt instead of racing several.
    connections: Mutex<HashMap<String, Slot>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// Validates the configuration, connects to a bootstrap server and loads the broker list.
    pub(crate) async fn connect(config: ClientConfig, auto_create: bool) -> Result<Arc<Cluster>> {
        config.validate()?;
        let options = ConnectOptions::from_config(&config);
        let cluster = Arc::new(Cluster {
            auto_create: auto_create && config.allow_auto_create_topics(),
            config: Arc::new(config),
            options,
            metadata: RwLock::new(Arc::new(Metadata::default())),
            connections: Mutex::new(HashMap::new()),
            refresh_lock: tokio::sync::Mutex::new(()),
        });
        cluster.bootstrap().await?;
        Ok(cluster)
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) fn config_arc(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    pub(crate) fn snapshot(&self) -> Arc<Metadata> {
        self.metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn bootstrap(&self) -> Result<()> {
        let mut last_error = None;
        for addr in self.config.bootstrap_servers() {
            match self.connection_to(addr).await {
                Ok(conn) => match self.fetch_metadata(&conn, Topics::None).await {
                    Ok(response) => {
                        self.apply(response, Topics::None);
                        return Ok(());
                    }
                    Err(e) => last_error = Some(e),
                },
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| ClientError::config("bootstrap.servers", "no broker address given")))
    }

    /// Fetches metadata for `topics` from any broker and merges it into the cache.
    pub(crate) async fn refresh(&self, topics: Topics<'_>) -> Result<Arc<Metadata>> {
        let started = Instant::now();
        let _guard = self.refresh_lock.lock().await;
        // Someone else refreshed while we waited for the lock: their answer is as fresh.
        let current = self.snapshot();
        if matches!(topics, Topics::None) && current.updated.is_some_and(|t| t >= started) {
            return Ok(current);
        }
        let conn = self.any_connection().await?;
        let response = self.fetch_metadata(&conn, topics).await?;
        Ok(self.apply(response, topics))
    }

    /// Refreshes when any of `topics` is unknown or the cache is older than
    /// `metadata.max.age.ms`.
    pub(crate) async fn metadata_for(&self, topics: &[String]) -> Result<Arc<Metadata>> {
        let current = self.snapshot();
        if !current.is_stale(self.config.metadata_max_age())
            && topics.iter().all(|t| current.topics.contains_key(t))
        {
            return Ok(current);
        }
        self.refresh(Topics::Named(topics)).await
    }

    async fn fetch_metadata(
        &self,
        conn: &Connection,
        topics: Topics<'_>,
    ) -> Result<MetadataResponse> {
        let version = conn.version::<MetadataRequest>(None)?;
        let mut request = MetadataRequest::default().with_topics(match topics {
            Topics::None => Some(Vec::new()),
            Topics::All => None,
            Topics::Named(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                    })
                    .collect(),
            ),
        });
        if version >= 4 {
            request = request.with_allow_auto_topic_creation(self.auto_create);
        }
        let response = conn
            .call_at(&request, version, self.config.request_timeout())
            .await?;
        ClientError::check(response.error_code, None)?;
        Ok(response)
    }

    fn apply(&self, response: MetadataResponse, asked: Topics<'_>) -> Arc<Metadata> {
        let mut guard = self.metadata.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Metadata::clone(&guard);
        next.cluster_id = response.cluster_id.map(|c| c.to_string());
        next.controller_id = Some(response.controller_id.0).filter(|&id| id >= 0);
        next.brokers = response
            .brokers
            .into_iter()
            .map(|b| {
                let node = Node {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                };
                (node.id, node)
            })
            .collect();
        if matches!(asked, Topics::All) {
            next.topics.clear();
            next.topic_errors.clear();
        }
        for topic in response.topics {
            let Some(name) = topic.name.map(|n| n.0.to_string()) else {
                continue;
            };
            match ErrorCode::try_from_code(topic.error_code) {
                // LEADER_NOT_AVAILABLE on a topic being created still lists what is known.
                Some(code)
                    if topic.partitions.is_empty() || code != ErrorCode::LeaderNotAvailable =>
                {
                    next.topics.remove(&name);
                    next.topic_errors.insert(name, code);
                }
                _ => {
                    let mut partitions: Vec<PartitionDescription> = topic
                        .partitions
                        .into_iter()
                        .map(|p| PartitionDescription {
                            partition: p.partition_index,
                            leader: Some(p.leader_id.0).filter(|&l| l >= 0),
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                            offline_replicas: p.offline_replicas.into_iter().map(|b| b.0).collect(),
                            error: ErrorCode::try_from_code(p.error_code),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    next.topic_errors.remove(&name);
                    next.topics.insert(
                        name.clone(),
                        TopicDescription {
                            name,
                            topic_id: Some(topic.topic_id).filter(|id| !id.is_nil()),
                            internal: topic.is_internal,
                            partitions,
                        },
                    );
                }
            }
        }
        next.updated = Some(Instant::now());
        let next = Arc::new(next);
        *guard = next.clone();
        next
    }

    /// A connection to broker `node`, opened if needed.
    pub(crate) async fn connection(&self, node: i32) -> Result<Arc<Connection>> {
        let addr = self
            .snapshot()
            .brokers
            .get(&node)
            .map(Node::addr)
            .ok_or_else(|| {
                ClientError::kafka(
                    ErrorCode::LeaderNotAvailable,
                    Some(format!("broker {node} is not in the cluster metadata")),
                )
            })?;
        self.connection_to(&addr).await
    }

    /// A connection to `addr`, reusing a live one.
    pub(crate) async fn connection_to(&self, addr: &str) -> Result<Arc<Connection>> {
        let slot = {
            let mut map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(addr.to_string()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref().filter(|c| c.is_alive()) {
            return Ok(conn.clone());
        }
        *guard = None;
        let conn = Arc::new(Connection::connect(addr, &self.options).await?);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Any usable connection: a live one if there is one, else a new one to a known broker,
    /// else to a bootstrap address.
    pub(crate) async fn any_connection(&self) -> Result<Arc<Connection>> {
        let slots: Vec<Slot> = {
            let map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
            map.values().cloned().collect()
        };
        for slot in slots {
            let live = slot
                .try_lock()
                .ok()
                .and_then(|guard| guard.as_ref().filter(|c| c.is_alive()).cloned());
            if let Some(conn) = live {
                return Ok(conn);
            }
        }
        let mut candidates: Vec<String> =
            self.snapshot().brokers.values().map(Node::addr).collect();
        for addr in self.config.bootstrap_servers() {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        let mut last_error = None;
        for addr in &candidates {
            match self.connection_to(addr).await {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    debug!(addr, error = %e, "broker unreachable");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| ClientError::config("bootstrap.servers", "no broker address given")))
    }

    /// A connection to the controller as metadata names it (where Kafka's admin client sends
    /// topic changes), else any broker.
    pub(crate) async fn controller_connection(&self) -> Result<Arc<Connection>> {
        match self.snapshot().controller_id {
            Some(id) => match self.connection(id).await {
                Ok(conn) => Ok(conn),
                Err(_) => self.any_connection().await,
            },
            None => self.any_connection().await,
        }
    }

    /// Backoff before retry number `attempt` (0-based): `retry.backoff.ms` doubling up to
    /// `retry.backoff.max.ms`, with Kafka's ±20 % jitter so clients do not retry in lockstep.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        backoff(
            self.config.retry_backoff(),
            self.config.retry_backoff_max(),
            attempt,
        )
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or
    /// `default.api.timeout.ms` / `retries` run out; refreshes metadata (brokers and `topics`)
    /// between attempts when the error says it is stale.
    pub(crate) async fn retry<T, F, Fut>(&self, topics: &[String], mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.config.default_api_timeout();
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && attempt < self.config.retries() => {
                    let wait = self.backoff(attempt);
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    debug!(error = %e, attempt, "retrying");
                    if e.invalidates_metadata() {
                        let which = if topics.is_empty() {
                            Topics::None
                        } else {
                            Topics::Named(topics)
                        };
                        let _ = self.refresh(which).await;
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.min(30)));
    let capped = exp.min(max.max(base));
    let jitter = rand::rng().random_range(0.8..=1.2);
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max_with_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let b0 = backoff(base, max, 0);
        assert!(b0 >= Duration::from_millis(80) && b0 <= Duration::from_millis(120));
        let b2 = backoff(base, max, 2);
        assert!(b2 >= Duration::from_millis(320) && b2 <= Duration::from_millis(480));
        let b10 = backoff(base, max, 10);
        assert!(b10 >= Duration::from_millis(800) && b10 <= Duration::from_millis(1200));
        assert!(backoff(base, max, u32::MAX) <= Duration::from_millis(1200));
    }

    #[test]
    fn ipv6_node_address_is_bracketed() {
        let n = Node {
            id: 1,
            host: "::1".into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(n.addr(), "[::1]:9092");
    }
}
