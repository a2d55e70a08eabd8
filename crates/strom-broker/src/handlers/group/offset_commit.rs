//! OffsetCommit: partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION here (as Kafka's
//! request handler does before the coordinator sees them); the rest go to the coordinator.

use strom_coordinator::ShardResponse;
use strom_protocol::ErrorCode;
use strom_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use strom_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::OffsetCommit, 2, 9);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    mut req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let image = ctx.shared.controller.image();
    let mut unknown: Vec<OffsetCommitResponseTopic> = Vec::new();
    for topic in &mut req.topics {
        let known = image.topic_by_name(&topic.name);
        let (valid, invalid): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| known.is_some_and(|t| t.partitions.contains_key(&p.partition_index)));
        topic.partitions = valid;
        if !invalid.is_empty() {
            unknown.push(
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        invalid
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            })
                            .collect(),
                    ),
            );
        }
    }
    req.topics.retain(|t| !t.partitions.is_empty());
    if req.topics.is_empty() {
        return OffsetCommitResponse::default().with_topics(unknown);
    }

    let version = ctx.version;
    let group_id = req.group_id.0.to_string();
    // Every partition gets the same error when the request cannot reach the coordinator.
    let all_failed = |req: &OffsetCommitRequest, code: ErrorCode| {
        req.topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect::<Vec<_>>()
    };
    let failed_topics = |code: ErrorCode| all_failed(&req, code);
    let fallback = failed_topics(ErrorCode::UnknownServerError);
    let not_available = failed_topics(ErrorCode::CoordinatorNotAvailable);
    let not_coordinator = failed_topics(ErrorCode::NotCoordinator);
    let mut response = match call(ctx, &group_id, |s, now, token, client| {
        s.offset_commit(now, token, version, req, client)
    })
    .await
    {
        Ok(ShardResponse::OffsetCommit(r)) => r,
        Ok(other) => {
            unexpected(&other);
            OffsetCommitResponse::default().with_topics(fallback)
        }
        Err(ErrorCode::NotCoordinator) => {
            OffsetCommitResponse::default().with_topics(not_coordinator)
        }
        Err(_) => OffsetCommitResponse::default().with_topics(not_available),
    };
    response.topics.extend(unknown);
    response
}
