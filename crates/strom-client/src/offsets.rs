//! ListOffsets: the offset of the first record at or after a timestamp, or the log start /
//! end, asked of each partition's leader.

use std::collections::{BTreeMap, HashMap};

use strom_protocol::StrBytes;
use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};

use crate::cluster::Cluster;
use crate::config::IsolationLevel;
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// ListOffsets "timestamp" meaning the log end (high watermark for consumers).
pub(crate) const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets "timestamp" meaning the log start.
pub(crate) const EARLIEST_TIMESTAMP: i64 = -2;

/// An offset and the timestamp of the record there, as `offsets_for_times` returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    pub offset: i64,
    pub timestamp: i64,
}

/// One attempt: asks each leader for its partitions; any partition error fails the call (so
/// that the caller's retry covers it).
pub(crate) async fn list_offsets_once(
    cluster: &Cluster,
    query: &[(TopicPartition, i64)],
    isolation: IsolationLevel,
) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>> {
    let topics: Vec<String> = query
        .iter()
        .map(|(tp, _)| tp.topic.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let metadata = cluster.metadata_for(&topics).await?;
    let mut by_leader: BTreeMap<i32, Vec<&(TopicPartition, i64)>> = BTreeMap::new();
    for entry in query {
        let leader = metadata.leader(&entry.0).ok_or_else(|| {
            let code = if metadata.topic(&entry.0.topic).is_some() {
                strom_protocol::ErrorCode::LeaderNotAvailable
            } else {
                strom_protocol::ErrorCode::UnknownTopicOrPartition
            };
            ClientError::kafka(code, Some(format!("no leader known for {}", entry.0)))
        })?;
        by_leader.entry(leader).or_default().push(entry);
    }
    let mut out = HashMap::with_capacity(query.len());
    for (leader, entries) in by_leader {
        let conn = cluster.connection(leader).await?;
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (tp, timestamp) in &entries {
            topics.entry(&tp.topic).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_timestamp(*timestamp),
            );
        }
        let version = conn.version::<ListOffsetsRequest>(None)?;
        let mut request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        if version >= 2 {
            request = request.with_isolation_level(isolation.wire_value());
        }
        if version >= 10 {
            let ms = cluster.config().request_timeout().as_millis();
            request = request.with_timeout_ms(i32::try_from(ms).unwrap_or(i32::MAX));
        }
        let response = conn
            .call_at(&request, version, cluster.config().request_timeout())
            .await?;
        for topic in response.topics {
            for p in topic.partitions {
                let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                ClientError::check(p.error_code, None).map_err(|e| match e {
                    ClientError::Kafka { code, .. } => {
                        ClientError::kafka(code, Some(format!("ListOffsets for {tp}")))
                    }
                    other => other,
                })?;
                let found = (p.offset >= 0).then_some(OffsetAndTimestamp {
                    offset: p.offset,
                    timestamp: p.timestamp,
                });
                out.insert(tp, found);
            }
        }
    }
    for (tp, _) in query {
        if !out.contains_key(tp) {
            return Err(ClientError::Protocol(format!(
                "the ListOffsets response has no answer for {tp}"
            )));
        }
    }
    Ok(out)
}

/// [`list_offsets_once`] with the cluster's retry policy.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    query: &[(TopicPartition, i64)],
    isolation: IsolationLevel,
) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>> {
    let topics: Vec<String> = query
        .iter()
        .map(|(tp, _)| tp.topic.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    cluster
        .retry(&topics, || list_offsets_once(cluster, query, isolation))
        .await
}
