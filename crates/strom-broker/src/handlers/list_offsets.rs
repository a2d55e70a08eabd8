//! ListOffsets: earliest, latest, max-timestamp (KIP-734) and offset-by-timestamp through the
//! time index.

use strom_protocol::ErrorCode;
use strom_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use strom_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use strom_storage::TimestampOffset;

use super::{ApiSpec, Ctx};
use crate::replica_manager::Partition;

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::ListOffsets, 1, 10);

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let local = ctx.shared.replicas.topics();
    let version = ctx.version;
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let found = local.by_name(&topic.name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let mut result = match found.and_then(|t| t.partitions.get(&p.partition_index))
                    {
                        None => Err(ErrorCode::UnknownTopicOrPartition),
                        Some(partition) => lookup(
                            partition,
                            p.timestamp,
                            p.current_leader_epoch,
                            read_committed,
                        ),
                    };
                    if version < 4 {
                        // The leader epoch field exists from v4 on.
                        result = result.map(|(found, _)| (found, -1));
                    }
                    match result {
                        Ok((found, epoch)) => {
                            let found = found.unwrap_or(TimestampOffset {
                                timestamp: -1,
                                offset: -1,
                            });
                            response
                                .with_timestamp(found.timestamp)
                                .with_offset(found.offset)
                                .with_leader_epoch(epoch)
                        }
                        Err(code) => response
                            .with_error_code(code.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The offset (and timestamp) for one partition, with the leader epoch to report.
fn lookup(
    partition: &Partition,
    timestamp: i64,
    current_leader_epoch: i32,
    read_committed: bool,
) -> Result<(Option<TimestampOffset>, i32), ErrorCode> {
    if current_leader_epoch >= 0 && current_leader_epoch != partition.leader_epoch {
        return Err(if current_leader_epoch > partition.leader_epoch {
            ErrorCode::UnknownLeaderEpoch
        } else {
            ErrorCode::FencedLeaderEpoch
        });
    }
    let epoch = partition.leader_epoch;
    // What a consumer of this isolation level may read up to (Kafka's `lastFetchableOffset`).
    let fetchable = if read_committed {
        partition.log.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    let at = |offset| {
        Some(TimestampOffset {
            timestamp: -1,
            offset,
        })
    };
    let storage = |e: strom_storage::StorageError| {
        tracing::error!(tp = %partition.tp, error = %e, "offset lookup failed");
        e.error_code()
    };
    Ok(match timestamp {
        LATEST => (at(fetchable), epoch),
        EARLIEST | EARLIEST_LOCAL => (at(partition.log.log_start_offset()), epoch),
        LATEST_TIERED => (None, -1),
        MAX_TIMESTAMP => match partition.log.max_timestamp_offset().map_err(storage)? {
            Some(found) => (Some(found), epoch),
            None => (None, -1),
        },
        t if t >= 0 => match partition.log.offset_for_timestamp(t).map_err(storage)? {
            Some(found) if found.offset < fetchable => (Some(found), epoch),
            _ => (None, -1),
        },
        _ => return Err(ErrorCode::InvalidRequest),
    })
}
