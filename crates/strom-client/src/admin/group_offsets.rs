//! A group's committed offsets: read (OffsetFetch), overwrite (OffsetCommit outside the group,
//! as `kafka-consumer-groups.sh --reset-offsets` does) and delete (OffsetDelete).

use std::collections::BTreeMap;

use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use strom_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use strom_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use strom_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use tracing::warn;

use super::Admin;
use super::coordinator::{is_coordinator_error, split_group_error};
use super::groups::no_answer;
use super::partitions::PartitionResult;
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// OffsetFetch v10 and OffsetCommit v10 name topics by id; we name them, so stay below.
const OFFSET_FETCH_MAX_VERSION: i16 = 9;
const OFFSET_COMMIT_MAX_VERSION: i16 = 9;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the record before `offset`, when the committer knew it.
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> Self {
        Self {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }
}

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Partitions grouped by topic, in topic order.
fn grouped(partitions: impl IntoIterator<Item = TopicPartition>) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        out.entry(tp.topic).or_default().push(tp.partition);
    }
    out
}

impl Admin {
    /// The offsets `group` committed: for `partitions` when given (`None` for the ones
    /// without a commit), else for every partition it committed. A group that does not exist
    /// has no offsets; it is not an error, as in Kafka.
    pub async fn list_consumer_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        self.with_coordinator(group, |conn, _| async move {
            let version = conn.version::<OffsetFetchRequest>(Some(OFFSET_FETCH_MAX_VERSION))?;
            let wanted = partitions.map(|ps| grouped(ps.iter().cloned()));
            let request = if version >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(group_id(group))
                        .with_topics(wanted.map(|w| {
                            w.into_iter()
                                .map(|(t, ps)| {
                                    OffsetFetchRequestTopics::default()
                                        .with_name(topic_name(&t))
                                        .with_partition_indexes(ps)
                                })
                                .collect()
                        })),
                ])
            } else {
                if version < 2 && wanted.is_none() {
                    return Err(ClientError::UnsupportedVersion {
                        addr: conn.addr().to_string(),
                        api: strom_protocol::messages::ApiKey::OffsetFetch,
                        reason: "fetching all of a group's offsets needs OffsetFetch v2".into(),
                    });
                }
                OffsetFetchRequest::default()
                    .with_group_id(group_id(group))
                    .with_topics(wanted.map(|w| {
                        w.into_iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopic::default()
                                    .with_name(topic_name(&t))
                                    .with_partition_indexes(ps)
                            })
                            .collect()
                    }))
            };
            let response = conn
                .call_at(&request, version, self.cluster.config().request_timeout())
                .await?;
            // (topic, partition, offset, leader epoch, metadata, error code)
            let mut rows: Vec<(String, i32, i64, i32, Option<StrBytes>, i16)> = Vec::new();
            if version >= 8 {
                let g = response
                    .groups
                    .into_iter()
                    .find(|g| g.group_id.0.as_str() == group)
                    .ok_or_else(|| no_answer("OffsetFetch", group))?;
                split_group_error(g.error_code, None)??;
                for t in g.topics {
                    for p in t.partitions {
                        rows.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            } else {
                split_group_error(response.error_code, None)??;
                for t in response.topics {
                    for p in t.partitions {
                        rows.push((
                            t.name.0.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata,
                            p.error_code,
                        ));
                    }
                }
            }
            let mut out = BTreeMap::new();
            for (topic, partition, offset, epoch, metadata, code) in rows {
                let tp = TopicPartition::new(topic, partition);
                match ErrorCode::try_from_code(code) {
                    None => {}
                    // Pending transactional commits settle soon: ask again.
                    Some(c @ ErrorCode::UnstableOffsetCommit) => {
                        return Err(ClientError::kafka_described(c, None));
                    }
                    Some(c) if is_coordinator_error(c) => {
                        return Err(ClientError::kafka_described(c, None));
                    }
                    // Kafka's admin client skips such partitions the same way.
                    Some(c) => {
                        warn!(%tp, error = ?c, "skipping the offset of a partition");
                        continue;
                    }
                }
                let committed = (offset >= 0).then(|| OffsetAndMetadata {
                    offset,
                    leader_epoch: (version >= 5 && epoch >= 0).then_some(epoch),
                    metadata: metadata.map(|m| m.to_string()).unwrap_or_default(),
                });
                out.insert(tp, committed);
            }
            Ok(out)
        })
        .await
    }

    /// Commits `offsets` for `group` from outside it (generation -1, no member id), as
    /// Kafka's `alterConsumerGroupOffsets` does; the coordinator accepts that only while the
    /// group has no members (else UNKNOWN_MEMBER_ID per partition).
    pub async fn alter_consumer_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<Vec<PartitionResult<()>>> {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, o) in offsets {
            by_topic.entry(&tp.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(o.offset)
                    .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
                    .with_committed_metadata(Some(StrBytes::from_string(o.metadata.clone()))),
            );
        }
        let topics: Vec<OffsetCommitRequestTopic> = by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(ps)
            })
            .collect();
        let found = self
            .with_coordinator(group, |conn, _| {
                let topics = topics.clone();
                async move {
                    let version =
                        conn.version::<OffsetCommitRequest>(Some(OFFSET_COMMIT_MAX_VERSION))?;
                    let mut request = OffsetCommitRequest::default()
                        .with_group_id(group_id(group))
                        .with_generation_id_or_member_epoch(-1)
                        .with_member_id(StrBytes::default())
                        .with_topics(topics);
                    if version < 6 {
                        // The leader epoch is a v6 field.
                        for t in &mut request.topics {
                            for p in &mut t.partitions {
                                p.committed_leader_epoch = -1;
                            }
                        }
                    }
                    let response = conn
                        .call_at(&request, version, self.cluster.config().request_timeout())
                        .await?;
                    let mut found: BTreeMap<TopicPartition, Result<()>> = BTreeMap::new();
                    for t in response.topics {
                        for p in t.partitions {
                            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                            let code = ErrorCode::try_from_code(p.error_code);
                            // Kafka retries the whole commit on these.
                            if let Some(
                                c @ (ErrorCode::NotCoordinator
                                | ErrorCode::CoordinatorNotAvailable
                                | ErrorCode::CoordinatorLoadInProgress
                                | ErrorCode::RebalanceInProgress),
                            ) = code
                            {
                                return Err(ClientError::kafka_described(c, None));
                            }
                            found.insert(
                                tp,
                                code.map_or(Ok(()), |c| Err(ClientError::kafka_described(c, None))),
                            );
                        }
                    }
                    Ok(found)
                }
            })
            .await?;
        Ok(in_order(offsets.keys().cloned(), found, "OffsetCommit"))
    }

    /// Deletes `group`'s offsets of `partitions`; refused per partition
    /// (GROUP_SUBSCRIBED_TO_TOPIC) for topics the group still consumes. A group-level refusal
    /// (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP) fails the call.
    pub async fn delete_consumer_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<PartitionResult<()>>> {
        let request = OffsetDeleteRequest::default()
            .with_group_id(group_id(group))
            .with_topics(
                grouped(partitions.iter().cloned())
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(&t))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let found = self
            .with_coordinator(group, |conn, _| {
                let request = request.clone();
                async move {
                    let response = conn.call(&request).await?;
                    split_group_error(response.error_code, None)??;
                    let mut found: BTreeMap<TopicPartition, Result<()>> = BTreeMap::new();
                    for t in response.topics {
                        for p in t.partitions {
                            let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                            found.insert(
                                tp,
                                ErrorCode::try_from_code(p.error_code)
                                    .map_or(Ok(()), |c| Err(ClientError::kafka_described(c, None))),
                            );
                        }
                    }
                    Ok(found)
                }
            })
            .await?;
        Ok(in_order(partitions.iter().cloned(), found, "OffsetDelete"))
    }
}

/// Per-partition results in the caller's order (duplicates once); a partition the broker did
/// not answer for gets a protocol error.
pub(crate) fn in_order<T>(
    asked: impl IntoIterator<Item = TopicPartition>,
    mut found: BTreeMap<TopicPartition, Result<T>>,
    api: &str,
) -> Vec<PartitionResult<T>> {
    let mut seen = std::collections::BTreeSet::new();
    asked
        .into_iter()
        .filter(|tp| seen.insert(tp.clone()))
        .map(|tp| {
            let result = found.remove(&tp).unwrap_or_else(|| {
                Err(ClientError::Protocol(format!(
                    "the {api} response has no answer for {tp}"
                )))
            });
            PartitionResult {
                partition: tp,
                result,
            }
        })
        .collect()
}
