//! DescribeLogDirs: each broker's log directories, their state and space, and the size of
//! every partition replica in them. Asked of each broker, since only it knows its disks.

use std::collections::BTreeMap;

use strom_protocol::ErrorCode;
use strom_protocol::messages::DescribeLogDirsRequest;

use super::Admin;
use crate::cluster::Topics;
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// One replica in a log directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// Bytes on disk.
    pub size: i64,
    /// How far the replica is behind the log end (for a future replica: behind the current).
    pub offset_lag: i64,
    /// A replica being moved here by a reassignment between directories.
    pub is_future: bool,
}

/// One log directory of a broker.
#[derive(Debug, Clone)]
pub struct LogDirDescription {
    /// The absolute path.
    pub path: String,
    /// Set when the directory is offline (KAFKA_STORAGE_ERROR) or could not be described.
    pub error: Option<ClientError>,
    pub replicas: BTreeMap<TopicPartition, ReplicaInfo>,
    /// Space of the volume (DescribeLogDirs v4+).
    pub total_bytes: Option<i64>,
    pub usable_bytes: Option<i64>,
}

impl Admin {
    /// The log directories of `brokers` (every broker of the cluster when `None`), one result
    /// per broker in id order. A broker the cluster does not know fails at once.
    pub async fn describe_log_dirs(
        &self,
        brokers: Option<&[i32]>,
    ) -> Result<Vec<(i32, Result<Vec<LogDirDescription>>)>> {
        let known = self
            .cluster
            .retry(&[], || self.cluster.refresh(Topics::None))
            .await?;
        let ids: Vec<i32> = match brokers {
            Some(ids) => {
                let mut ids = ids.to_vec();
                ids.sort_unstable();
                ids.dedup();
                ids
            }
            None => known.brokers.keys().copied().collect(),
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if !known.brokers.contains_key(&id) {
                out.push((
                    id,
                    Err(ClientError::InvalidArgument(format!(
                        "broker {id} is not in the cluster"
                    ))),
                ));
                continue;
            }
            let result = self
                .cluster
                .retry(&[], || async {
                    let conn = self.cluster.connection(id).await?;
                    let version = conn.version::<DescribeLogDirsRequest>(None)?;
                    let response = conn
                        .call_at(
                            &DescribeLogDirsRequest::default().with_topics(None),
                            version,
                            self.cluster.config().request_timeout(),
                        )
                        .await?;
                    ClientError::check(response.error_code, None)?;
                    Ok((version, response))
                })
                .await
                .map(|(version, response)| {
                    response
                        .results
                        .into_iter()
                        .map(|d| LogDirDescription {
                            path: d.log_dir.to_string(),
                            error: ErrorCode::try_from_code(d.error_code)
                                .map(|c| ClientError::kafka_described(c, None)),
                            replicas: d
                                .topics
                                .iter()
                                .flat_map(|t| {
                                    t.partitions.iter().map(|p| {
                                        (
                                            TopicPartition::new(
                                                t.name.0.to_string(),
                                                p.partition_index,
                                            ),
                                            ReplicaInfo {
                                                size: p.partition_size,
                                                offset_lag: p.offset_lag,
                                                is_future: p.is_future_key,
                                            },
                                        )
                                    })
                                })
                                .collect(),
                            total_bytes: (version >= 4 && d.total_bytes >= 0)
                                .then_some(d.total_bytes),
                            usable_bytes: (version >= 4 && d.usable_bytes >= 0)
                                .then_some(d.usable_bytes),
                        })
                        .collect()
                });
            out.push((id, result));
        }
        Ok(out)
    }
}
