//! The group APIs (classic protocol, KIP-848, offsets, admin). Each handler finds the shard of
//! the group's `__consumer_offsets` partition and runs the request through the coordinator state
//! machine (see `crate::groups`); a group whose shard this node does not host gets
//! NOT_COORDINATOR, and clients look the coordinator up again.

pub(crate) mod consumer_describe;
pub(crate) mod consumer_heartbeat;
pub(crate) mod delete;
pub(crate) mod describe;
pub(crate) mod heartbeat;
pub(crate) mod join;
pub(crate) mod leave;
pub(crate) mod list;
pub(crate) mod offset_commit;
pub(crate) mod offset_delete;
pub(crate) mod offset_fetch;
pub(crate) mod sync;
pub(crate) mod txn_offset_commit;

use strom_coordinator::{ClientInfo, GroupCoordinatorShard, Outcome, RequestToken, ShardResponse};
use strom_protocol::ErrorCode;

use super::Ctx;

/// Who is asking, as DescribeGroups shows it (Kafka prints the host as `/<ip>`).
pub(super) fn client_info(ctx: &Ctx<'_>) -> ClientInfo {
    ClientInfo {
        client_id: ctx.client_id.unwrap_or_default().to_string(),
        client_host: format!("/{}", ctx.conn.peer.ip()),
    }
}

/// Runs one request of `group_id` through its shard and waits for the response.
pub(super) async fn call(
    ctx: &Ctx<'_>,
    group_id: &str,
    f: impl FnOnce(&mut GroupCoordinatorShard, i64, RequestToken, ClientInfo) -> Outcome,
) -> Result<ShardResponse, ErrorCode> {
    let shard = ctx.shared.groups.shard_for(group_id)?;
    let token = ctx.shared.groups.next_token();
    let client = client_info(ctx);
    let now = crate::now_ms();
    shard.call(token, |s| f(s, now, token, client)).await
}

/// Authorized operations of a group when a client asks (no authorizer: every operation the
/// resource supports — READ, DELETE, DESCRIBE — as Kafka reports it).
pub(super) const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// A response variant that is not the one the request expects: a bug in the state machine.
pub(super) fn unexpected(response: &ShardResponse) -> ErrorCode {
    tracing::error!(
        ?response,
        "coordinator answered with the wrong response type"
    );
    ErrorCode::UnknownServerError
}
