//! SyncGroup (classic protocol): followers wait for the leader's assignment.

use strom_coordinator::ShardResponse;
use strom_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::SyncGroup, 0, 5);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let version = ctx.version;
    let group_id = req.group_id.0.to_string();
    let failed =
        |code: strom_protocol::ErrorCode| SyncGroupResponse::default().with_error_code(code.code());
    match call(ctx, &group_id, |s, now, token, client| {
        s.sync_group(now, token, version, req, client)
    })
    .await
    {
        Ok(ShardResponse::SyncGroup(r)) => r,
        Ok(other) => failed(unexpected(&other)),
        Err(code) => failed(code),
    }
}
