//! InitProducerId for idempotent (non-transactional) producers: a fresh producer id with epoch
//! 0, as Kafka's coordinator answers when there is no transactional id — also when a v3+
//! client sends its current id and epoch after UNKNOWN_PRODUCER_ID (KIP-360). Transactional
//! ids need the transaction coordinator, which strom does not have yet.

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
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        tracing::debug!(transactional_id = ?req.transactional_id, "transactions are not supported yet");
        return error(ErrorCode::CoordinatorNotAvailable);
    }
    match ctx
        .shared
        .producer_ids
        .next(&ctx.shared.controller, ctx.shared.node_id)
        .await
    {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            error(e.code)
        }
    }
}
