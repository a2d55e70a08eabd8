//! JoinGroup (classic protocol): parked in the coordinator until the join phase completes.

use strom_coordinator::ShardResponse;
use strom_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::JoinGroup, 0, 9);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let version = ctx.version;
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.clone();
    let failed = |code: strom_protocol::ErrorCode| {
        JoinGroupResponse::default()
            .with_error_code(code.code())
            .with_member_id(member_id.clone())
    };
    match call(ctx, &group_id, |s, now, token, client| {
        s.join_group(now, token, version, req, client)
    })
    .await
    {
        Ok(ShardResponse::JoinGroup(r)) => r,
        Ok(other) => failed(unexpected(&other)),
        Err(code) => failed(code),
    }
}
