//! Produce: validate each partition's batch (header only, see `strom_protocol::batch`), append
//! it, answer per partition. One bad partition never fails the others.

use strom_metadata::topic_name;
use strom_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use strom_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, ResponseKind};
use strom_protocol::{ApiError, ErrorCode};

use super::{ApiSpec, Ctx, Reply, now_ms, str_bytes};
use crate::replica_manager::LocalTopic;

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::Produce, 3, 13);

/// A transactional batch may only go to a partition of the producer's ongoing transaction
/// (KIP-890 part 1: the check that keeps a late or stray write from hanging the partition's
/// last stable offset). Malformed batches pass here and are refused by the append's validation.
fn verify_transaction(
    ctx: &Ctx<'_>,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: &[u8],
) -> Result<(), ApiError> {
    let Ok(header) = strom_protocol::batch::BatchHeader::parse(records) else {
        return Ok(());
    };
    if !header.is_transactional() {
        return Ok(());
    }
    let Some(id) = transactional_id else {
        return Err(ApiError::new(
            ErrorCode::InvalidTxnState,
            "a transactional batch needs the producer's transactional id in the request",
        ));
    };
    ctx.shared.txns.verify(
        id,
        header.producer_id,
        header.producer_epoch,
        topic,
        partition,
    )
}

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: ProduceRequest) -> Reply {
    let acks = req.acks;
    let transactional_id = req
        .transactional_id
        .as_ref()
        .map(|t| t.0.to_string())
        .filter(|t| !t.is_empty());
    let local = ctx.shared.replicas.topics();
    let now = now_ms();
    let mut any_error = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let found: Option<&std::sync::Arc<LocalTopic>> = if ctx.version >= 13 {
            local.by_id(&topic.topic_id)
        } else {
            local.by_name(&topic.name)
        };
        let unknown = if ctx.version >= 13 {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let result = if !matches!(acks, -1..=1) {
                Err(ApiError::bare(ErrorCode::InvalidRequiredAcks))
            } else {
                let records = data.records.as_deref().unwrap_or_default();
                match found.and_then(|t| t.partitions.get(&data.index).map(|p| (t, p))) {
                    None => Err(ApiError::bare(unknown)),
                    // The coordinators' state: a client's record there would be replayed as
                    // theirs (Kafka's ReplicaManager refuses these appends the same way).
                    Some((t, _)) if topic_name::is_internal(&t.name) => Err(ApiError::new(
                        ErrorCode::InvalidTopicException,
                        format!("Cannot append to internal topic {}", t.name),
                    )),
                    Some((t, partition)) => verify_transaction(
                        ctx,
                        transactional_id.as_deref(),
                        &t.name,
                        data.index,
                        records,
                    )
                    .and_then(|()| partition.append_produced(records, acks, now)),
                }
            };
            let response = PartitionProduceResponse::default().with_index(data.index);
            partitions.push(match result {
                Ok((info, append_time)) => response
                    .with_base_offset(info.base_offset)
                    .with_log_append_time_ms(append_time.unwrap_or(-1))
                    .with_log_start_offset(info.log_start_offset),
                Err(e) => {
                    any_error = true;
                    tracing::debug!(partition = data.index, error = %e, "produce refused");
                    response
                        .with_error_code(e.code.code())
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(e.message.map(str_bytes))
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        // The client reads no response, so closing the connection is the only way it learns
        // that something was refused (Kafka does the same).
        return if any_error {
            Reply::Close("produce with acks=0 refused some records".into())
        } else {
            Reply::None
        };
    }
    Reply::Response(Box::new(ResponseKind::Produce(
        ProduceResponse::default().with_responses(responses),
    )))
}
