//! InitProducerId. Without a transactional id (an idempotent producer) any broker answers with
//! a fresh producer id at epoch 0 — also when a v3+ client sends its current id and epoch after
//! UNKNOWN_PRODUCER_ID (KIP-360). With one, the transaction coordinator of the id answers
//! (epoch bumps, fencing of an older instance; see `strom_coordinator::txn`).

use strom_coordinator::txn::{TxnResponse, init_idempotent_producer};
use strom_protocol::ErrorCode;
use strom_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::InitProducerId, 0, 5);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let error = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let transactional_id = req
        .transactional_id
        .as_ref()
        .map(|t| t.0.to_string())
        .filter(|t| !t.is_empty());
    let shard = match &transactional_id {
        Some(id) => match ctx.shared.txns.shard_for(id) {
            Ok(shard) => Some(shard),
            Err(code) => return error(code),
        },
        None => None,
    };
    // Producer ids come from controller-allocated blocks (an await); the state machine takes
    // them synchronously, so one is drawn up front. A transactional id that keeps its producer
    // id leaves it unused — ids are 64-bit, and Kafka's blocks skip ids as well.
    let id = match ctx
        .shared
        .producer_ids
        .next(&ctx.shared.controller, ctx.shared.node_id)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            return error(e.code);
        }
    };
    let mut drawn = Some(id);
    let mut alloc = move || drawn.take().ok_or(ErrorCode::CoordinatorLoadInProgress);
    let Some(shard) = shard else {
        return init_idempotent_producer(&mut alloc);
    };
    let token = ctx.shared.txns.next_token();
    let version = ctx.version;
    let now = crate::now_ms();
    match shard
        .call(token, |s| {
            s.init_producer_id(now, token, version, &req, &mut alloc)
        })
        .await
    {
        Ok(TxnResponse::InitProducerId(r)) => r,
        Ok(other) => {
            tracing::error!(
                ?other,
                "transaction coordinator answered with the wrong response type"
            );
            error(ErrorCode::UnknownServerError)
        }
        Err(code) => error(code),
    }
}
