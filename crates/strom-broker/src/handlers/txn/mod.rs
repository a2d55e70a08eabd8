//! The transaction APIs. Each handler finds the shard of the transactional id's
//! `__transaction_state` partition and runs the request through the coordinator state machine
//! (see `crate::txn`); an id whose shard this node does not host gets NOT_COORDINATOR, and the
//! client looks the coordinator up again. WriteTxnMarkers is the partition leaders' side.

pub(crate) mod add_offsets;
pub(crate) mod add_partitions;
pub(crate) mod describe;
pub(crate) mod end_txn;
pub(crate) mod list;
pub(crate) mod write_markers;

use strom_coordinator::RequestToken;
use strom_coordinator::txn::{TransactionCoordinatorShard, TxnOutcome, TxnResponse};
use strom_protocol::ErrorCode;

use super::Ctx;

/// Runs one request of `transactional_id` through its shard and waits for the response.
pub(super) async fn call(
    ctx: &Ctx<'_>,
    transactional_id: &str,
    f: impl FnOnce(&mut TransactionCoordinatorShard, i64, RequestToken) -> TxnOutcome,
) -> Result<TxnResponse, ErrorCode> {
    let shard = ctx.shared.txns.shard_for(transactional_id)?;
    let token = ctx.shared.txns.next_token();
    let now = crate::now_ms();
    shard.call(token, |s| f(s, now, token)).await
}

/// A response variant that is not the one the request expects: a bug in the state machine.
pub(super) fn unexpected(response: &TxnResponse) -> ErrorCode {
    tracing::error!(
        ?response,
        "transaction coordinator answered with the wrong response type"
    );
    ErrorCode::UnknownServerError
}
