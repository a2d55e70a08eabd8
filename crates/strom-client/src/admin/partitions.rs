//! Calls answered by each partition's leader: ListOffsets, DeleteRecords, DescribeProducers.
//!
//! They share one driver ([`Admin::per_leader`]): group the partitions by leader, send one
//! request per leader, and retry only the partitions whose answer says the leader moved or is
//! not ready (after a metadata refresh), until `default.api.timeout.ms`. A partition of a
//! topic that metadata does not know fails at once with UNKNOWN_TOPIC_OR_PARTITION.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use strom_protocol::messages::describe_producers_request::TopicRequest;
use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::{
    ApiKey, BrokerId, DeleteRecordsRequest, DescribeProducersRequest, ListOffsetsRequest, TopicName,
};
use tokio::time::Instant;
use tracing::debug;

use super::Admin;
use super::group_offsets::in_order;
use crate::cluster::Topics;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// The outcome of an operation on one partition.
#[derive(Debug, Clone)]
pub struct PartitionResult<T> {
    pub partition: TopicPartition,
    pub result: Result<T>,
}

/// Which offset [`Admin::list_offsets`] asks for (Kafka's `OffsetSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The offset of the record with the largest timestamp (ListOffsets v7+).
    MaxTimestamp,
    /// The first offset whose timestamp is at or after this (ms since the epoch).
    ForTimestamp(i64),
}

impl OffsetSpec {
    fn wire_timestamp(self) -> i64 {
        match self {
            Self::Earliest => -2,
            Self::Latest => -1,
            Self::MaxTimestamp => -3,
            Self::ForTimestamp(ts) => ts,
        }
    }

    fn min_version(self) -> i16 {
        match self {
            Self::MaxTimestamp => 7,
            _ => 0,
        }
    }
}

/// One answer of [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOffsetsResultInfo {
    /// -1 when no record matches a `ForTimestamp` query.
    pub offset: i64,
    /// The record's timestamp for timestamp queries, -1 otherwise.
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

/// An active idempotent or transactional producer of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// Where its open transaction starts, if one is open.
    pub current_txn_start_offset: Option<i64>,
}

pub(super) fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Partitions grouped by topic, in topic order.
fn by_topic<T>(items: &[(TopicPartition, T)]) -> BTreeMap<&str, Vec<&(TopicPartition, T)>> {
    let mut out: BTreeMap<&str, Vec<&(TopicPartition, T)>> = BTreeMap::new();
    for item in items {
        out.entry(item.0.topic.as_str()).or_default().push(item);
    }
    out
}

/// True for per-partition errors that say "ask the (new) leader again".
fn retry_partition(code: ErrorCode) -> bool {
    code.is_retriable()
}

impl Admin {
    /// Sends `items` to their leaders with `send` (one call per leader, with that leader's
    /// items) and collects one result per partition. See the module docs for the retry rules.
    pub(super) async fn per_leader<I, T, F, Fut>(
        &self,
        items: Vec<(TopicPartition, I)>,
        mut send: F,
    ) -> Result<BTreeMap<TopicPartition, Result<T>>>
    where
        I: Clone,
        F: FnMut(Arc<Connection>, Vec<(TopicPartition, I)>) -> Fut,
        Fut: Future<Output = Result<Vec<(TopicPartition, Result<T>)>>>,
    {
        let config = self.cluster.config();
        let deadline = Instant::now() + config.default_api_timeout();
        let topics: Vec<String> = items
            .iter()
            .map(|(tp, _)| tp.topic.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut done: BTreeMap<TopicPartition, Result<T>> = BTreeMap::new();
        let mut pending = items;
        let mut last_errors: BTreeMap<TopicPartition, ClientError> = BTreeMap::new();
        let mut attempt = 0u32;
        loop {
            let metadata = if attempt == 0 {
                self.cluster.metadata_for(&topics).await
            } else {
                self.cluster.refresh(Topics::Named(&topics)).await
            };
            let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, I)>> = BTreeMap::new();
            let mut retry: Vec<(TopicPartition, I)> = Vec::new();
            match metadata {
                Err(e) => {
                    for (tp, item) in pending.drain(..) {
                        last_errors.insert(tp.clone(), e.clone());
                        retry.push((tp, item));
                    }
                }
                Ok(metadata) => {
                    for (tp, item) in pending.drain(..) {
                        let known = metadata.topic(&tp.topic).and_then(|t| {
                            t.partitions.iter().find(|p| p.partition == tp.partition)
                        });
                        match known {
                            None => {
                                done.insert(
                                    tp,
                                    Err(ClientError::kafka_described(
                                        ErrorCode::UnknownTopicOrPartition,
                                        None,
                                    )),
                                );
                            }
                            Some(p) => match p.leader {
                                Some(leader) => {
                                    by_leader.entry(leader).or_default().push((tp, item))
                                }
                                None => {
                                    last_errors.insert(
                                        tp.clone(),
                                        ClientError::kafka_described(
                                            ErrorCode::LeaderNotAvailable,
                                            None,
                                        ),
                                    );
                                    retry.push((tp, item));
                                }
                            },
                        }
                    }
                }
            }
            for (leader, batch) in by_leader {
                let outcome = match self.cluster.connection(leader).await {
                    Ok(conn) => send(conn, batch.clone()).await,
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(results) => {
                        let mut answered: BTreeMap<TopicPartition, Result<T>> =
                            results.into_iter().collect();
                        for (tp, item) in batch {
                            match answered.remove(&tp) {
                                Some(Err(e)) if e.code().is_some_and(retry_partition) => {
                                    last_errors.insert(tp.clone(), e);
                                    retry.push((tp, item));
                                }
                                Some(result) => {
                                    done.insert(tp, result);
                                }
                                None => {
                                    done.insert(
                                        tp.clone(),
                                        Err(ClientError::Protocol(format!(
                                            "the broker did not answer for {tp}"
                                        ))),
                                    );
                                }
                            }
                        }
                    }
                    Err(e) if e.is_retriable() => {
                        for (tp, item) in batch {
                            last_errors.insert(tp.clone(), e.clone());
                            retry.push((tp, item));
                        }
                    }
                    Err(e) => {
                        for (tp, _) in batch {
                            done.insert(tp, Err(e.clone()));
                        }
                    }
                }
            }
            if retry.is_empty() {
                return Ok(done);
            }
            let wait = self.cluster.backoff(attempt);
            if attempt >= config.retries() || Instant::now() + wait >= deadline {
                for (tp, _) in retry {
                    let e = last_errors.remove(&tp).unwrap_or_else(|| {
                        ClientError::timeout(
                            format!("waiting for the leader of {tp}"),
                            config.default_api_timeout(),
                        )
                    });
                    done.insert(tp, Err(e));
                }
                return Ok(done);
            }
            debug!(partitions = retry.len(), attempt, "retrying partitions");
            tokio::time::sleep(wait).await;
            attempt += 1;
            pending = retry;
        }
    }

    /// The offset `spec` names in each partition, asked of the leaders (read_uncommitted, as
    /// Kafka's `ListOffsetsOptions` default).
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<Vec<PartitionResult<ListOffsetsResultInfo>>> {
        let items: Vec<(TopicPartition, ())> =
            partitions.iter().map(|tp| (tp.clone(), ())).collect();
        let timeout = self.cluster.config().request_timeout();
        let found = self
            .per_leader(items, |conn, batch| async move {
                let version = conn.version::<ListOffsetsRequest>(None)?;
                if version < spec.min_version() {
                    return Err(ClientError::UnsupportedVersion {
                        addr: conn.addr().to_string(),
                        api: ApiKey::ListOffsets,
                        reason: format!("{spec:?} needs ListOffsets v{}", spec.min_version()),
                    });
                }
                let mut request = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(
                        by_topic(&batch)
                            .into_iter()
                            .map(|(t, ps)| {
                                ListOffsetsTopic::default()
                                    .with_name(topic_name(t))
                                    .with_partitions(
                                        ps.iter()
                                            .map(|(tp, _)| {
                                                ListOffsetsPartition::default()
                                                    .with_partition_index(tp.partition)
                                                    .with_timestamp(spec.wire_timestamp())
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                if version >= 10 {
                    request.timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
                }
                let response = conn.call_at(&request, version, timeout).await?;
                let mut out = Vec::new();
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                        let result = match ErrorCode::try_from_code(p.error_code) {
                            Some(c) => Err(ClientError::kafka_described(c, None)),
                            None => Ok(ListOffsetsResultInfo {
                                offset: p.offset,
                                timestamp: p.timestamp,
                                leader_epoch: (version >= 4 && p.leader_epoch >= 0)
                                    .then_some(p.leader_epoch),
                            }),
                        };
                        out.push((tp, result));
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(in_order(partitions.iter().cloned(), found, "ListOffsets"))
    }

    /// Deletes every record below the given offset of each partition (-1: below the high
    /// watermark) by moving its log start offset; answers the new low watermark.
    pub async fn delete_records(
        &self,
        before: &BTreeMap<TopicPartition, i64>,
    ) -> Result<Vec<PartitionResult<i64>>> {
        let items: Vec<(TopicPartition, i64)> =
            before.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        let timeout = self.cluster.config().request_timeout();
        let found = self
            .per_leader(items, |conn, batch| async move {
                let request = DeleteRecordsRequest::default()
                    .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
                    .with_topics(
                        by_topic(&batch)
                            .into_iter()
                            .map(|(t, ps)| {
                                DeleteRecordsTopic::default()
                                    .with_name(topic_name(t))
                                    .with_partitions(
                                        ps.iter()
                                            .map(|(tp, offset)| {
                                                DeleteRecordsPartition::default()
                                                    .with_partition_index(tp.partition)
                                                    .with_offset(*offset)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                let version = conn.version::<DeleteRecordsRequest>(None)?;
                // The broker may wait up to `timeout` for replicas; give the answer time to come.
                let response = conn.call_at(&request, version, timeout * 2).await?;
                let mut out = Vec::new();
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                        let result = match ErrorCode::try_from_code(p.error_code) {
                            Some(c) => Err(ClientError::kafka_described(c, None)),
                            None => Ok(p.low_watermark),
                        };
                        out.push((tp, result));
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(in_order(before.keys().cloned(), found, "DeleteRecords"))
    }

    /// The active producers of each partition, asked of the leaders.
    pub async fn describe_producers(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<PartitionResult<Vec<ProducerState>>>> {
        let items: Vec<(TopicPartition, ())> =
            partitions.iter().map(|tp| (tp.clone(), ())).collect();
        let found = self
            .per_leader(items, |conn, batch| async move {
                let request = DescribeProducersRequest::default().with_topics(
                    by_topic(&batch)
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicRequest::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(
                                    ps.iter().map(|(tp, _)| tp.partition).collect(),
                                )
                        })
                        .collect(),
                );
                let response = conn.call(&request).await?;
                let mut out = Vec::new();
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                        let result = match ErrorCode::try_from_code(p.error_code) {
                            Some(c) => Err(ClientError::kafka_described(
                                c,
                                p.error_message.map(|m| m.to_string()),
                            )),
                            None => Ok(p
                                .active_producers
                                .into_iter()
                                .map(|s| ProducerState {
                                    producer_id: s.producer_id.0,
                                    producer_epoch: s.producer_epoch,
                                    last_sequence: s.last_sequence,
                                    last_timestamp: s.last_timestamp,
                                    coordinator_epoch: s.coordinator_epoch,
                                    current_txn_start_offset: (s.current_txn_start_offset >= 0)
                                        .then_some(s.current_txn_start_offset),
                                })
                                .collect()),
                        };
                        out.push((tp, result));
                    }
                }
                Ok(out)
            })
            .await?;
        Ok(in_order(
            partitions.iter().cloned(),
            found,
            "DescribeProducers",
        ))
    }
}
