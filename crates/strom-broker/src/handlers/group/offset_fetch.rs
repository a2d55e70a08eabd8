//! OffsetFetch: one group (v1-7) or several (v8+), each answered by its shard.

use strom_coordinator::{offset_fetch_groups, offset_fetch_response};
use strom_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use strom_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse};

use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::OffsetFetch, 1, 9);

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let groups = offset_fetch_groups(ctx.version, &req)
        .iter()
        .map(|group| match ctx.shared.groups.shard_for(&group.group_id) {
            Ok(shard) => shard.read(|s| s.offset_fetch(group, req.require_stable)),
            Err(code) => OffsetFetchResponseGroup::default()
                .with_group_id(group.group_id.clone())
                .with_error_code(code.code()),
        })
        .collect();
    offset_fetch_response(ctx.version, groups)
}
