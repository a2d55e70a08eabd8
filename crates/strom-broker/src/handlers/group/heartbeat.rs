//! Heartbeat (classic protocol): REBALANCE_IN_PROGRESS tells a member to rejoin.

use strom_coordinator::ShardResponse;
use strom_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::Heartbeat, 0, 4);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let version = ctx.version;
    let group_id = req.group_id.0.to_string();
    let failed =
        |code: strom_protocol::ErrorCode| HeartbeatResponse::default().with_error_code(code.code());
    match call(ctx, &group_id, |s, now, token, client| {
        s.heartbeat(now, token, version, req, client)
    })
    .await
    {
        Ok(ShardResponse::Heartbeat(r)) => r,
        Ok(other) => failed(unexpected(&other)),
        Err(code) => failed(code),
    }
}
