//! AddOffsetsToTxn: puts the group's `__consumer_offsets` partition into the transaction, so
//! that TxnOffsetCommit may write there and the markers settle the offsets.

use strom_coordinator::txn::TxnResponse;
use strom_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::AddOffsetsToTxn, 0, 4);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let version = ctx.version;
    let id = req.transactional_id.0.to_string();
    match call(ctx, &id, |s, now, token| {
        s.add_offsets_to_txn(now, token, version, &req)
    })
    .await
    {
        Ok(TxnResponse::AddOffsetsToTxn(r)) => r,
        Ok(other) => AddOffsetsToTxnResponse::default().with_error_code(unexpected(&other).code()),
        Err(code) => AddOffsetsToTxnResponse::default().with_error_code(code.code()),
    }
}
