//! LeaveGroup (classic protocol), batched members from v3 (KIP-345).

use strom_coordinator::ShardResponse;
use strom_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::LeaveGroup, 0, 5);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let version = ctx.version;
    let group_id = req.group_id.0.to_string();
    let failed = |code: strom_protocol::ErrorCode| {
        LeaveGroupResponse::default().with_error_code(code.code())
    };
    match call(ctx, &group_id, |s, now, token, client| {
        s.leave_group(now, token, version, req, client)
    })
    .await
    {
        Ok(ShardResponse::LeaveGroup(r)) => r,
        Ok(other) => failed(unexpected(&other)),
        Err(code) => failed(code),
    }
}
