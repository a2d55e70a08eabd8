//! DeleteRecords: advance a partition's log start offset (the low watermark), deleting the
//! segments entirely below it. -1 means the high watermark; past it is OFFSET_OUT_OF_RANGE.

use strom_protocol::ErrorCode;
use strom_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use strom_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use super::{ApiSpec, Ctx};
use crate::replica_manager::Partition;

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DeleteRecords, 0, 2);

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let local = ctx.shared.replicas.topics();
    let logs = ctx.shared.replicas.log_manager();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let found = local.by_name(&topic.name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match found.and_then(|t| t.partitions.get(&p.partition_index)) {
                        None => result
                            .with_low_watermark(-1)
                            .with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
                        Some(partition) => match delete(logs, partition, p.offset) {
                            Ok(low_watermark) => result.with_low_watermark(low_watermark),
                            Err(code) => result.with_low_watermark(-1).with_error_code(code.code()),
                        },
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

fn delete(
    logs: &strom_storage::LogManager,
    partition: &Partition,
    offset: i64,
) -> Result<i64, ErrorCode> {
    if !partition.log.config().cleanup_policy.delete() {
        // Kafka: records of compact-only topics cannot be deleted.
        return Err(ErrorCode::PolicyViolation);
    }
    let hw = partition.high_watermark();
    let target = if offset == -1 { hw } else { offset };
    if target < 0 || target > hw {
        return Err(ErrorCode::OffsetOutOfRange);
    }
    logs.delete_records(&partition.tp, target).map_err(|e| {
        let code = e.error_code();
        if code == ErrorCode::KafkaStorageError {
            tracing::error!(tp = %partition.tp, error = %e, "DeleteRecords failed");
        }
        code
    })
}
