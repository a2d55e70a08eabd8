//! ListTransactions: every shard of this node lists its transactions through the filters; the
//! lists are concatenated (unknown state filters are reported once).

use strom_protocol::messages::{ApiKey, ListTransactionsRequest, ListTransactionsResponse};

use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::ListTransactions, 0, 2);

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let now = crate::now_ms();
    let version = ctx.version;
    let mut response = ListTransactionsResponse::default();
    let mut first = true;
    for shard in ctx.shared.txns.shards() {
        let part = shard.read(|s| s.list_transactions(now, version, &req));
        if part.error_code != 0 {
            return part;
        }
        if first {
            response.unknown_state_filters = part.unknown_state_filters;
            first = false;
        }
        response.transaction_states.extend(part.transaction_states);
    }
    if first {
        // No shard here yet (no transaction ever): still report unknown filters.
        let empty =
            strom_coordinator::txn::TransactionCoordinatorShard::new(Default::default(), 0, 0);
        let part = empty.list_transactions(now, version, &req);
        if part.error_code != 0 {
            return part;
        }
        response.unknown_state_filters = part.unknown_state_filters;
    }
    response
}
