//! ConsumerGroupHeartbeat (KIP-848): joining, reconciling and leaving in one API; the
//! coordinator computes assignments with its server-side assignors.

use strom_coordinator::ShardResponse;
use strom_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::ConsumerGroupHeartbeat, 0, 1);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let version = ctx.version;
    let group_id = req.group_id.0.to_string();
    let topics = ctx.shared.groups.topics_view();
    let failed = |code: strom_protocol::ErrorCode| {
        ConsumerGroupHeartbeatResponse::default().with_error_code(code.code())
    };
    match call(ctx, &group_id, |s, now, token, client| {
        s.consumer_group_heartbeat(now, token, version, req, client, &topics)
    })
    .await
    {
        Ok(ShardResponse::ConsumerGroupHeartbeat(r)) => r,
        Ok(other) => failed(unexpected(&other)),
        Err(code) => failed(code),
    }
}
