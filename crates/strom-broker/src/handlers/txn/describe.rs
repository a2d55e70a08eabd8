//! DescribeTransactions: the state of each named transactional id, from its shard.

use strom_protocol::messages::describe_transactions_response::TransactionState;
use strom_protocol::messages::{ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse};

use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::DescribeTransactions, 0, 0);

pub(crate) fn handle(
    ctx: &mut Ctx<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| match ctx.shared.txns.shard_for(id.as_str()) {
            Ok(shard) => shard.read(|s| s.describe_transaction(id.as_str())),
            Err(code) => TransactionState::default()
                .with_transactional_id(id.clone())
                .with_error_code(code.code()),
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
