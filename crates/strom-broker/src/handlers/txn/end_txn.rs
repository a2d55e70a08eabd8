//! EndTxn: commit or abort the producer's ongoing transaction. The answer comes once the
//! PrepareCommit/PrepareAbort record is written; the markers follow in the background and the
//! producer's next request gets CONCURRENT_TRANSACTIONS until they are all written (Kafka).

use strom_coordinator::txn::TxnResponse;
use strom_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

/// v5 means transactions v2 (KIP-890), which strom does not advertise as a feature.
pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::EndTxn, 0, 4);

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let version = ctx.version;
    let id = req.transactional_id.0.to_string();
    match call(ctx, &id, |s, now, token| {
        s.end_txn(now, token, version, &req)
    })
    .await
    {
        Ok(TxnResponse::EndTxn(r)) => r,
        Ok(other) => EndTxnResponse::default().with_error_code(unexpected(&other).code()),
        Err(code) => EndTxnResponse::default().with_error_code(code.code()),
    }
}
