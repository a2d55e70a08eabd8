//! OffsetDelete: partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION here; the
//! coordinator refuses partitions an active group still consumes.

use strom_coordinator::ShardResponse;
use strom_protocol::ErrorCode;
use strom_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use strom_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::OffsetDelete, 0, 0);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    mut req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let image = ctx.shared.controller.image();
    let mut unknown = Vec::new();
    for topic in &mut req.topics {
        let known = image.topic_by_name(&topic.name);
        let (valid, invalid): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| known.is_some_and(|t| t.partitions.contains_key(&p.partition_index)));
        topic.partitions = valid;
        if !invalid.is_empty() {
            unknown.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        invalid
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            })
                            .collect(),
                    ),
            );
        }
    }
    req.topics.retain(|t| !t.partitions.is_empty());
    let version = ctx.version;
    let group_id = req.group_id.0.to_string();
    let mut response = match call(ctx, &group_id, |s, now, token, client| {
        s.offset_delete(now, token, version, req, client)
    })
    .await
    {
        Ok(ShardResponse::OffsetDelete(r)) => r,
        Ok(other) => OffsetDeleteResponse::default().with_error_code(unexpected(&other).code()),
        Err(code) => OffsetDeleteResponse::default().with_error_code(code.code()),
    };
    response.topics.extend(unknown);
    response
}
