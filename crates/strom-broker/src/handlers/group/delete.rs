//! DeleteGroups: empty groups only (NON_EMPTY_GROUP otherwise), with all their offsets.

use std::collections::BTreeMap;

use strom_coordinator::ShardResponse;
use strom_protocol::ErrorCode;
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use super::unexpected;
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DeleteGroups, 0, 2);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let groups = &ctx.shared.groups;
    // One call per shard with that shard's groups.
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for id in &req.groups_names {
        by_partition
            .entry(groups.partition_for(id))
            .or_default()
            .push(id.to_string());
    }
    let mut results = Vec::new();
    for ids in by_partition.into_values() {
        let failed = |code: ErrorCode| {
            ids.iter()
                .map(|id| {
                    DeletableGroupResult::default()
                        .with_group_id(GroupId(id.clone().into()))
                        .with_error_code(code.code())
                })
                .collect::<Vec<_>>()
        };
        let shard = match groups.shard_for(&ids[0]) {
            Ok(shard) => shard,
            Err(code) => {
                results.extend(failed(code));
                continue;
            }
        };
        let token = groups.next_token();
        let now = crate::now_ms();
        let version = ctx.version;
        match shard
            .call(token, |s| s.delete_groups(now, token, version, &ids))
            .await
        {
            Ok(ShardResponse::DeleteGroups(r)) => results.extend(r),
            Ok(other) => results.extend(failed(unexpected(&other))),
            Err(code) => results.extend(failed(code)),
        }
    }
    DeleteGroupsResponse::default().with_results(results)
}
