//! Fetch: stored batches returned as they are on disk, never decoded.
//!
//! A fetch is answered at once when it has `min_bytes` of data, an error, or `max_wait_ms` of
//! 0; otherwise it waits until an append to one of its partitions (or the deadline) and reads
//! again. Fetch sessions (KIP-227) are not kept: every request is served in full and answered
//! with session id 0, which tells clients that no session was created.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use strom_protocol::ErrorCode;
use strom_protocol::messages::fetch_request::FetchPartition;
use strom_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use strom_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use tokio::time::Instant;
use uuid::Uuid;

use super::{ApiSpec, Ctx};
use crate::replica_manager::Partition;

pub(crate) const API: ApiSpec = ApiSpec::new(ApiKey::Fetch, 4, 18);

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Slot {
    topic: usize,
    request: FetchPartition,
    partition: Result<Arc<Partition>, ErrorCode>,
}

pub(crate) async fn handle(ctx: &mut Ctx<'_>, req: FetchRequest) -> FetchResponse {
    let session_full = req.session_epoch == -1 || req.session_epoch == 0;
    if req.session_id != 0 || !session_full {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let local = ctx.shared.replicas.topics();
    let by_id = ctx.version >= 13;
    let mut topics: Vec<(TopicName, Uuid)> = Vec::with_capacity(req.topics.len());
    let mut slots = Vec::new();
    for (i, topic) in req.topics.into_iter().enumerate() {
        let found = if by_id {
            local.by_id(&topic.topic_id)
        } else {
            local.by_name(&topic.topic)
        };
        for p in topic.partitions {
            let partition = match found.map(|t| t.partitions.get(&p.partition)) {
                None if by_id => Err(ErrorCode::UnknownTopicId),
                None | Some(None) => Err(ErrorCode::UnknownTopicOrPartition),
                Some(Some(partition)) => {
                    check_epoch(partition, p.current_leader_epoch).map(|()| partition.clone())
                }
            };
            slots.push(Slot {
                topic: i,
                request: p,
                partition,
            });
        }
        topics.push((topic.topic, topic.topic_id));
    }

    let read_committed = req.isolation_level == READ_COMMITTED;
    let max_bytes = usize::try_from(req.max_bytes).unwrap_or(0);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let deadline =
        Instant::now() + Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    loop {
        // Subscribe before reading, so an append that lands between the read and the wait is
        // not missed.
        let mut watches: Vec<_> = slots
            .iter()
            .filter_map(|s| s.partition.as_ref().ok().map(|p| p.subscribe()))
            .collect();
        let (partitions, bytes, errors) = read_all(&slots, max_bytes, read_committed);
        if bytes >= min_bytes || errors || watches.is_empty() || Instant::now() >= deadline {
            return respond(topics, partitions, by_id);
        }
        let wait = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            let (partitions, _, _) = read_all(&slots, max_bytes, read_committed);
            return respond(topics, partitions, by_id);
        }
    }
}

fn check_epoch(partition: &Partition, requested: i32) -> Result<(), ErrorCode> {
    if requested < 0 || requested == partition.leader_epoch {
        Ok(())
    } else if requested > partition.leader_epoch {
        Err(ErrorCode::UnknownLeaderEpoch)
    } else {
        Err(ErrorCode::FencedLeaderEpoch)
    }
}

/// Reads every slot; returns the partition answers (with their topic index), the bytes read and
/// whether any partition has an error (which makes Kafka answer without waiting).
fn read_all(
    slots: &[Slot],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<(usize, PartitionData)>, usize, bool) {
    let mut out = Vec::with_capacity(slots.len());
    let mut total = 0usize;
    let mut errors = false;
    for slot in slots {
        let index = slot.request.partition;
        let data = match &slot.partition {
            Err(code) => {
                errors = true;
                error_partition(index, *code)
            }
            Ok(p) => {
                let limit = usize::try_from(slot.request.partition_max_bytes)
                    .unwrap_or(0)
                    .min(max_bytes.saturating_sub(total));
                // KIP-74: the first partition with data may exceed the limits by one batch, so a
                // batch larger than max_bytes can never block a consumer.
                let min_one_batch = total == 0;
                let hw = p.high_watermark();
                let read = if read_committed {
                    p.read_committed(slot.request.fetch_offset, limit, min_one_batch)
                } else {
                    p.read(slot.request.fetch_offset, limit, min_one_batch)
                        .map(|r| (r, p.log.last_stable_offset(), None))
                };
                match read {
                    Ok((r, lso, aborted)) => {
                        total += r.records.len();
                        PartitionData::default()
                            .with_partition_index(index)
                            .with_high_watermark(hw)
                            .with_last_stable_offset(lso)
                            .with_log_start_offset(r.log_start_offset)
                            .with_aborted_transactions(aborted)
                            .with_records(Some(r.records))
                    }
                    Err(e) => {
                        errors = true;
                        let code = e.error_code();
                        if code == ErrorCode::KafkaStorageError {
                            tracing::error!(tp = %p.tp, error = %e, "fetch failed");
                        }
                        error_partition(index, code)
                            .with_high_watermark(hw)
                            .with_last_stable_offset(p.log.last_stable_offset())
                            .with_log_start_offset(p.log.log_start_offset())
                    }
                }
            }
        };
        out.push((slot.topic, data));
    }
    (out, total, errors)
}

fn error_partition(index: i32, code: ErrorCode) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}

fn respond(
    topics: Vec<(TopicName, Uuid)>,
    partitions: Vec<(usize, PartitionData)>,
    by_id: bool,
) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = topics
        .into_iter()
        .map(|(name, id)| {
            let r = FetchableTopicResponse::default();
            if by_id {
                r.with_topic_id(id)
            } else {
                r.with_topic(name)
            }
        })
        .collect();
    for (topic, data) in partitions {
        responses[topic].partitions.push(data);
    }
    FetchResponse::default().with_responses(responses)
}
