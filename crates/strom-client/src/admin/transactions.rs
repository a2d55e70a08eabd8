//! Transactions as Kafka's admin client shows them: ListTransactions (asked of every broker,
//! each listing the transactions it coordinates), DescribeTransactions (asked of each id's
//! coordinator) and aborting a hanging transaction (WriteTxnMarkers sent to the partition's
//! leader, as `kafka-transactions.sh abort` does).

use strom_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use strom_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, ProducerId, TransactionalId,
    WriteTxnMarkersRequest,
};
use strom_protocol::{ErrorCode, StrBytes};

use super::Admin;
use super::coordinator::{CoordinatorKey, split_group_error};
use crate::cluster::Topics;
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// One transaction of a ListTransactions answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    /// Kafka's state name: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit,
    /// CompleteAbort, PrepareEpochFence, Dead.
    pub state: String,
    /// The broker coordinating it.
    pub coordinator: i32,
}

/// Filters of [`Admin::list_transactions`]; empty ones match everything.
#[derive(Debug, Clone, Default)]
pub struct ListTransactionsOptions {
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// Only transactions running longer than this (ListTransactions v1).
    pub duration_filter_ms: Option<i64>,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub coordinator: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    /// When the ongoing transaction started (-1 when none is).
    pub transaction_start_time_ms: i64,
    pub partitions: Vec<TopicPartition>,
}

/// What aborting a hanging transaction on one partition needs (Kafka's `AbortTransactionSpec`):
/// the producer and the epochs its marker must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    pub partition: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

impl Admin {
    /// Every transaction of the cluster through `options`, sorted by transactional id. Fails
    /// when a broker cannot be asked (a partial list would silently miss transactions).
    pub async fn list_transactions(
        &self,
        options: &ListTransactionsOptions,
    ) -> Result<Vec<TransactionListing>> {
        let metadata = self
            .cluster
            .retry(&[], || self.cluster.refresh(Topics::None))
            .await?;
        let request = ListTransactionsRequest::default()
            .with_state_filters(
                options
                    .states
                    .iter()
                    .map(|s| StrBytes::from_string(s.clone()))
                    .collect(),
            )
            .with_producer_id_filters(
                options
                    .producer_ids
                    .iter()
                    .map(|&p| ProducerId(p))
                    .collect(),
            )
            .with_duration_filter(options.duration_filter_ms.unwrap_or(-1));
        let mut out = Vec::new();
        for &node in metadata.brokers.keys() {
            let response = self
                .cluster
                .retry(&[], || async {
                    let conn = self.cluster.connection(node).await?;
                    let version = conn.version::<ListTransactionsRequest>(None)?;
                    if options.duration_filter_ms.is_some() && version < 1 {
                        return Err(ClientError::InvalidArgument(
                            "filtering transactions by duration needs ListTransactions v1".into(),
                        ));
                    }
                    let response = conn
                        .call_at(&request, version, self.cluster.config().request_timeout())
                        .await?;
                    ClientError::check(response.error_code, None)?;
                    Ok(response)
                })
                .await?;
            if let Some(unknown) = response.unknown_state_filters.first() {
                return Err(ClientError::InvalidArgument(format!(
                    "unknown transaction state '{unknown}'"
                )));
            }
            out.extend(
                response
                    .transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id.0.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                        coordinator: node,
                    }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describes each transactional id, asked of its coordinator; one result per id, in order.
    pub async fn describe_transactions(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, Result<TransactionDescription>)>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let result = self
                .with_coordinator_of(CoordinatorKey::Transaction(id), |conn, node| async move {
                    let request =
                        DescribeTransactionsRequest::default().with_transactional_ids(vec![
                            TransactionalId(StrBytes::from_string(id.clone())),
                        ]);
                    let response = conn.call(&request).await?;
                    let state = response
                        .transaction_states
                        .into_iter()
                        .find(|s| s.transactional_id.as_str() == id.as_str())
                        .ok_or_else(|| {
                            ClientError::Protocol(format!(
                                "the DescribeTransactions response has no answer for '{id}'"
                            ))
                        })?;
                    // Coordinator errors are retried; the id's own come back as its result.
                    if let Err(e) = split_group_error(state.error_code, None)? {
                        return Ok(Err(e));
                    }
                    let mut partitions = Vec::new();
                    for t in &state.topics {
                        for &p in &t.partitions {
                            partitions.push(TopicPartition::new(t.topic.0.to_string(), p));
                        }
                    }
                    Ok(Ok(TransactionDescription {
                        coordinator: node.id,
                        state: state.transaction_state.to_string(),
                        producer_id: state.producer_id.0,
                        producer_epoch: state.producer_epoch,
                        transaction_timeout_ms: state.transaction_timeout_ms,
                        transaction_start_time_ms: state.transaction_start_time_ms,
                        partitions,
                    }))
                })
                .await;
            out.push((id.clone(), result.and_then(|r| r)));
        }
        Ok(out)
    }

    /// Aborts a hanging transaction on one partition: an ABORT marker for the producer, written
    /// by the partition's leader (WriteTxnMarkers). Use it only for a transaction its
    /// coordinator no longer knows; the partition's last stable offset moves past it.
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec) -> Result<()> {
        let request = WriteTxnMarkersRequest::default().with_markers(vec![
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(spec.producer_id))
                .with_producer_epoch(spec.producer_epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(spec.coordinator_epoch)
                .with_topics(vec![
                    WritableTxnMarkerTopic::default()
                        .with_name(super::partitions::topic_name(&spec.partition.topic))
                        .with_partition_indexes(vec![spec.partition.partition]),
                ]),
        ]);
        let found = self
            .per_leader(vec![(spec.partition.clone(), ())], |conn, _| {
                let request = request.clone();
                async move {
                    let response = conn.call(&request).await?;
                    let mut out = Vec::new();
                    for m in response.markers {
                        for t in m.topics {
                            for p in t.partitions {
                                let tp =
                                    TopicPartition::new(t.name.0.to_string(), p.partition_index);
                                let result = match ErrorCode::try_from_code(p.error_code) {
                                    Some(c) => Err(ClientError::kafka_described(c, None)),
                                    None => Ok(()),
                                };
                                out.push((tp, result));
                            }
                        }
                    }
                    Ok(out)
                }
            })
            .await?;
        found.into_iter().next().map(|(_, r)| r).unwrap_or_else(|| {
            Err(ClientError::Protocol(
                "the WriteTxnMarkers response has no answer for the partition".into(),
            ))
        })
    }
}
