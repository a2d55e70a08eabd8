//! TxnOffsetCommit: offsets committed inside a transaction. The group's `__consumer_offsets`
//! partition must be in the producer's ongoing transaction (AddOffsetsToTxn first; checked as
//! KIP-890 does); the coordinator then writes the offsets as a transactional batch of the
//! producer, and they become visible only with the transaction's COMMIT marker.

use strom_coordinator::ShardResponse;
use strom_protocol::ErrorCode;
use strom_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use strom_protocol::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::{call, unexpected};
use crate::groups::GROUP_METADATA_TOPIC;
use crate::handlers::{ApiSpec, Ctx};

/// v5 belongs to transactions v2 (KIP-890 part 2), which strom does not advertise.
pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::TxnOffsetCommit, 0, 4);

pub(crate) async fn handle(
    ctx: &mut Ctx<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let all = |req: &TxnOffsetCommitRequest, code: ErrorCode| {
        TxnOffsetCommitResponse::default().with_topics(
            req.topics
                .iter()
                .map(|t| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code.code())
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    let group_id = req.group_id.0.to_string();
    let txn_id = req.transactional_id.0.to_string();
    let offsets_partition = ctx.shared.groups.partition_for(&group_id);
    if let Err(e) = ctx.shared.txns.verify(
        &txn_id,
        req.producer_id.0,
        req.producer_epoch,
        GROUP_METADATA_TOPIC,
        offsets_partition,
    ) {
        tracing::debug!(transactional_id = %txn_id, error = %e, "TxnOffsetCommit refused");
        return all(&req, e.code);
    }
    let version = ctx.version;
    match call(ctx, &group_id, |s, now, token, _| {
        s.txn_offset_commit(now, token, version, &req)
    })
    .await
    {
        Ok(ShardResponse::TxnOffsetCommit(r)) => r,
        Ok(other) => all(&req, unexpected(&other)),
        Err(code) => all(&req, code),
    }
}
