//! AddPartitionsToTxn: v0-v3 from producers (one transaction), v4+ batched from brokers
//! (KIP-890), where `verify_only` asks whether a partition is already in the transaction.
//! Partitions of unknown topics are refused here, before the coordinator sees them, and then
//! the transaction's other partitions get OPERATION_NOT_ATTEMPTED.

use strom_coordinator::txn::{TxnResponse, add_partitions_response, add_partitions_transactions};
use strom_protocol::ErrorCode;
use strom_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use strom_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey};

use super::{call, unexpected};
use crate::handlers::{ApiSpec, Ctx};

/// v5 belongs to transactions v2 (KIP-890 part 2), which strom does not advertise.
pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::AddPartitionsToTxn, 0, 4);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let version = ctx.version;
    let image = ctx.shared.controller.image();
    let rejected = |topic: &str, partition: i32| {
        let known = image
            .topic_by_name(topic)
            .is_some_and(|t| t.partitions.contains_key(&partition));
        (!known).then_some(ErrorCode::UnknownTopicOrPartition)
    };
    let mut results = Vec::new();
    for txn in add_partitions_transactions(version, &req) {
        let id = txn.transactional_id.0.to_string();
        let result = match call(ctx, &id, |s, now, token| {
            s.add_partitions_to_txn(now, token, version, &txn, &rejected)
        })
        .await
        {
            Ok(TxnResponse::AddPartitionsToTxn(r)) => r,
            Ok(other) => failed(&txn, unexpected(&other)),
            Err(code) => failed(&txn, code),
        };
        results.push(result);
    }
    add_partitions_response(version, results)
}

/// Every partition of a transaction with the same error.
fn failed(
    txn: &strom_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction,
    code: ErrorCode,
) -> AddPartitionsToTxnResult {
    AddPartitionsToTxnResult::default()
        .with_transactional_id(txn.transactional_id.clone())
        .with_topic_results(
            txn.topics
                .iter()
                .map(|t| {
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_partition_error_code(code.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
