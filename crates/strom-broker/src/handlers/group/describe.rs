//! DescribeGroups (classic groups): state, protocol, members with their assignments.

use strom_protocol::messages::describe_groups_response::DescribedGroup;
use strom_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};

use super::GROUP_AUTHORIZED_OPERATIONS;
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DescribeGroups, 0, 6);

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .iter()
        .map(|id| {
            let mut d = match ctx.shared.groups.shard_for(id) {
                Ok(shard) => shard.read(|s| s.describe_group(ctx.version, id)),
                Err(code) => DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_error_code(code.code()),
            };
            if ctx.version >= 3 && req.include_authorized_operations && d.error_code == 0 {
                d.authorized_operations = GROUP_AUTHORIZED_OPERATIONS;
            }
            d
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
