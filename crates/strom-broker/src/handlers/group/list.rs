//! ListGroups across every shard this node hosts, with the state (v4) and type (v5) filters.

use strom_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse};

use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::ListGroups, 0, 5);

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string()).collect();
    let groups = ctx
        .shared
        .groups
        .shards()
        .iter()
        .flat_map(|shard| shard.read(|s| s.list_groups(ctx.version, &states, &types)))
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
