//! DescribeProducers: the idempotent (and later transactional) producers a partition knows.

use strom_protocol::ErrorCode;
use strom_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use strom_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};

use super::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DescribeProducers, 0, 0);

pub(crate) fn handle(
    ctx: &mut Ctx<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let local = ctx.shared.replicas.topics();
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let found = local.by_name(&topic.name);
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let response = PartitionResponse::default().with_partition_index(index);
                    match found.and_then(|t| t.partitions.get(&index)) {
                        None => response.with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
                        Some(p) => response.with_active_producers(
                            p.log
                                .active_producers()
                                .into_iter()
                                .map(|e| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(e.producer_id))
                                        .with_producer_epoch(i32::from(e.producer_epoch))
                                        .with_last_sequence(e.last_sequence)
                                        .with_last_timestamp(e.last_timestamp)
                                        .with_coordinator_epoch(e.coordinator_epoch)
                                        .with_current_txn_start_offset(e.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
