//! WriteTxnMarkers: a partition leader writes COMMIT/ABORT markers. strom's own coordinator
//! writes its markers in-process (`crate::txn::run_markers`); this is the wire form, which
//! admin tools use to abort a hanging transaction (`kafka-transactions.sh abort`,
//! `strom transactions abort`).

use strom_protocol::batch::EndTxnMarker;
use strom_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use strom_protocol::messages::{ApiKey, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::handlers::{ApiSpec, Ctx};

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::WriteTxnMarkers, 1, 1);

pub(crate) fn handle(ctx: &mut Ctx<'_>, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let shared = ctx.shared;
    let image = shared.controller.image();
    let markers = req
        .markers
        .iter()
        .map(|m| {
            let marker = EndTxnMarker {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                coordinator_epoch: m.coordinator_epoch,
                commit: m.transaction_result,
                timestamp: crate::now_ms(),
            };
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let code = match crate::txn::write_marker(
                                &shared.replicas,
                                &shared.groups,
                                &image,
                                t.name.as_str(),
                                p,
                                &marker,
                            ) {
                                Ok(()) => 0,
                                Err(e) => {
                                    tracing::debug!(topic = %t.name.as_str(), partition = p, error = %e, "marker refused");
                                    e.code.code()
                                }
                            };
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
