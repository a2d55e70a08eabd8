//! ConsumerGroupDescribe (KIP-848 groups).

use strom_protocol::messages::consumer_group_describe_response::DescribedGroup;
use strom_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
};

use super::GROUP_AUTHORIZED_OPERATIONS;
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::ConsumerGroupDescribe, 0, 1);

pub(crate) fn handle(
    ctx: &mut Ctx<'_>,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let topics = ctx.shared.groups.topics_view();
    let groups = req
        .group_ids
        .iter()
        .map(|id| {
            let mut d = match ctx.shared.groups.shard_for(id) {
                Ok(shard) => shard.read(|s| s.consumer_group_describe(ctx.version, id, &topics)),
                Err(code) => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(code.code()),
            };
            if req.include_authorized_operations && d.error_code == 0 {
                d.authorized_operations = GROUP_AUTHORIZED_OPERATIONS;
            }
            d
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
