//! Hosting of the transaction coordinator: one [`TransactionCoordinatorShard`] per local
//! partition of `__transaction_state`, and the writing of transaction markers.
//!
//! ```text
//! handler ──► TxnShard::call(token, |shard| shard.end_txn(..))
//!               lock ─► state machine ─► TxnOutcome { records, responses, markers }
//!                        │ records appended to __transaction_state[p] as one batch
//!                        │   ok:   responses delivered; marker requests queued
//!                        │   fail: waiting requests get COORDINATOR_NOT_AVAILABLE, the shard
//!                        │         is rebuilt from its log
//!               unlock ─► await own response
//! marker task: for each queued MarkerRequest write a COMMIT/ABORT control batch to every
//!              partition (under the group shard's lock for __consumer_offsets, which settles
//!              the transaction's offsets), then report per partition ─► on_markers_written
//!              ─► CompleteCommit/CompleteAbort record
//! timer task per shard: transaction timeouts, id expiration, marker retries
//! ```
//!
//! The hosting itself (the shard lock, waiting requests, the timer task) is
//! `coordinator_log::Host`, shared with the group coordinator.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use strom_coordinator::RequestToken;
use strom_coordinator::txn::{
    MarkerRequest, PartitionVerification, TransactionCoordinatorShard, TxnConfig, TxnOutcome,
    TxnRecord, TxnResponse, TxnResult,
};
use strom_metadata::{CreateTopicSpec, MetadataImage};
use strom_protocol::batch::EndTxnMarker;
use strom_protocol::{ApiError, ErrorCode};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::config::ServerConfig;
use crate::coordinator_log::{self, Host, HostState, Hosted, Hosts};
use crate::groups::{CoordinatorResult, GROUP_METADATA_TOPIC, GroupCoordinator};
use crate::replica_manager::{Partition, ReplicaManager};

/// Kafka's internal topic of transaction coordinator state.
pub(crate) const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// A marker request of the shard of a `__transaction_state` partition.
type QueuedMarkers = (i32, MarkerRequest);

#[derive(Debug)]
pub(crate) struct TxnCoordinator {
    replication_factor: i16,
    segment_bytes: i64,
    config: TxnConfig,
    shards: Hosts<TxnKind>,
    tokens: AtomicU64,
    markers: mpsc::UnboundedSender<QueuedMarkers>,
    /// Taken once by the broker, which runs the marker task.
    marker_queue: Mutex<Option<mpsc::UnboundedReceiver<QueuedMarkers>>>,
}

/// The transaction coordinator of one `__transaction_state` partition.
pub(crate) type TxnShard = Host<TxnKind>;

/// The transaction coordinator kind of [`Host`]: which partition it is (marker reports come
/// back by partition) and where its marker requests go.
#[derive(Debug)]
pub(crate) struct TxnKind {
    index: i32,
    markers: mpsc::UnboundedSender<QueuedMarkers>,
}

impl TxnCoordinator {
    pub(crate) fn new(config: &ServerConfig) -> Result<Self, String> {
        let d = TxnConfig::default();
        let txn = TxnConfig {
            max_timeout_ms: config.number("transaction.max.timeout.ms", i64::from(d.max_timeout_ms))
                as i32,
            transactional_id_expiration_ms: config.number(
                "transactional.id.expiration.ms",
                d.transactional_id_expiration_ms,
            ),
            abort_timed_out_transaction_cleanup_interval_ms: config.number(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                d.abort_timed_out_transaction_cleanup_interval_ms,
            ),
            remove_expired_transaction_cleanup_interval_ms: config.number(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                d.remove_expired_transaction_cleanup_interval_ms,
            ),
            transaction_state_log_num_partitions: config.number(
                "transaction.state.log.num.partitions",
                i64::from(d.transaction_state_log_num_partitions),
            ) as i32,
            offsets_topic_num_partitions: config.number(
                "offsets.topic.num.partitions",
                i64::from(d.offsets_topic_num_partitions),
            ) as i32,
            ..d
        };
        txn.validate().map_err(|e| e.to_string())?;
        let (markers, queue) = mpsc::unbounded_channel();
        Ok(Self {
            replication_factor: config.number("transaction.state.log.replication.factor", 1) as i16,
            segment_bytes: config.number("transaction.state.log.segment.bytes", 104_857_600),
            config: txn,
            shards: RwLock::new(HashMap::new()),
            tokens: AtomicU64::new(1),
            markers,
            marker_queue: Mutex::new(Some(queue)),
        })
    }

    pub(crate) fn partition_for(&self, transactional_id: &str) -> i32 {
        strom_coordinator::txn::transaction_partition_for(
            transactional_id,
            self.config.transaction_state_log_num_partitions,
        )
    }

    /// The CreateTopics entry for `__transaction_state`, as Kafka creates it on first use.
    pub(crate) fn topic_spec(&self) -> CreateTopicSpec {
        CreateTopicSpec {
            name: TRANSACTION_STATE_TOPIC.to_string(),
            num_partitions: self.config.transaction_state_log_num_partitions,
            replication_factor: self.replication_factor,
            assignments: BTreeMap::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), self.segment_bytes.to_string()),
                ("compression.type".to_string(), "uncompressed".to_string()),
                (
                    "unclean.leader.election.enable".to_string(),
                    "false".to_string(),
                ),
            ]),
        }
    }

    pub(crate) fn next_token(&self) -> RequestToken {
        RequestToken(self.tokens.fetch_add(1, Ordering::Relaxed))
    }

    /// The shard of `transactional_id`'s partition, if this node hosts and has loaded it.
    pub(crate) fn shard_for(&self, transactional_id: &str) -> CoordinatorResult<Arc<TxnShard>> {
        self.shard_at(self.partition_for(transactional_id))
            .ok_or(ErrorCode::NotCoordinator)
    }

    fn shard_at(&self, partition: i32) -> Option<Arc<TxnShard>> {
        coordinator_log::host_at(&self.shards, partition)
    }

    /// Every loaded shard, by partition (ListTransactions asks them all).
    pub(crate) fn shards(&self) -> Vec<Arc<TxnShard>> {
        coordinator_log::all_hosts(&self.shards)
    }

    /// KIP-890's check before a transactional write to `topic`-`partition`: the producer's
    /// ongoing transaction must contain the partition. Kafka answers an unverified write with
    /// INVALID_TXN_STATE to clients that predate TRANSACTION_ABORTABLE, and turns coordinator
    /// trouble into NOT_ENOUGH_REPLICAS, an error every producer retries.
    pub(crate) fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ApiError> {
        let shard = self.shard_for(transactional_id).map_err(|code| {
            ApiError::new(
                ErrorCode::NotEnoughReplicas,
                format!("cannot verify the transaction of '{transactional_id}': {code:?}"),
            )
        })?;
        let verdict = shard.read(|s| {
            s.verify_partition(
                transactional_id,
                producer_id,
                producer_epoch,
                topic,
                partition,
            )
        });
        match verdict {
            Ok(PartitionVerification::InTransaction) => Ok(()),
            Ok(PartitionVerification::NotInTransaction) => Err(ApiError::new(
                ErrorCode::InvalidTxnState,
                format!(
                    "{topic}-{partition} is not in the ongoing transaction of '{transactional_id}'"
                ),
            )),
            Err(code) => Err(ApiError::new(
                code,
                format!("the transaction of '{transactional_id}' refused the write"),
            )),
        }
    }

    /// Follows the metadata: loads the shards of local `__transaction_state` partitions (by
    /// replaying their logs) and stops the shards of partitions no longer here.
    pub(crate) fn sync(&self, replicas: &ReplicaManager) {
        coordinator_log::sync_hosts(
            &self.shards,
            replicas,
            TRANSACTION_STATE_TOPIC,
            |p, partition| load_shard(p, partition, self.config.clone(), self.markers.clone()),
        );
    }

    /// The receiving end of the marker queue, for [`run_markers`]; `None` after the first call.
    pub(crate) fn take_marker_queue(&self) -> Option<mpsc::UnboundedReceiver<QueuedMarkers>> {
        self.marker_queue.lock().expect("marker queue lock").take()
    }

    /// Stops every shard's timer (broker shutdown).
    pub(crate) fn shutdown(&self) {
        coordinator_log::stop_all(&self.shards);
    }
}

fn load_shard(
    index: i32,
    partition: Arc<Partition>,
    config: TxnConfig,
    markers: mpsc::UnboundedSender<QueuedMarkers>,
) -> Result<TxnShard, String> {
    let started = std::time::Instant::now();
    let machine = replay_log(index, &partition, config)?;
    let shard = Host::new(partition, TxnKind { index, markers }, machine);
    let now = crate::now_ms();
    shard.run(|s| s.on_loaded(now));
    info!(tp = %shard.partition.tp, elapsed = ?started.elapsed(), "transaction coordinator state loaded");
    Ok(shard)
}

impl Hosted for TxnKind {
    type Machine = TransactionCoordinatorShard;
    type Outcome = TxnOutcome;
    type Response = TxnResponse;

    fn next_deadline(machine: &TransactionCoordinatorShard) -> Option<i64> {
        machine.next_deadline()
    }

    fn on_timer(machine: &mut TransactionCoordinatorShard, now_ms: i64) -> TxnOutcome {
        machine.on_timer(now_ms)
    }

    /// Writes an outcome's records; then answers its responses and queues its markers.
    fn commit(
        &self,
        partition: &Partition,
        state: &mut HostState<TransactionCoordinatorShard, TxnResponse>,
        outcome: TxnOutcome,
    ) {
        if !outcome.records.is_empty()
            && let Err(e) = append(partition, &outcome.records)
        {
            error!(tp = %partition.tp, error = %e, "cannot write transaction coordinator records; reloading");
            state.waiting.clear();
            match replay_log(self.index, partition, state.machine.config().clone()) {
                Ok(mut shard) => {
                    // Resumes the transactions whose markers were due; its own records (if
                    // any) would hit the same failure, so only the markers are taken.
                    let resumed = shard.on_loaded(crate::now_ms());
                    state.machine = shard;
                    self.queue_markers(resumed.markers);
                }
                Err(e) => error!(tp = %partition.tp, error = %e, "reload failed"),
            }
            return;
        }
        state.answer(outcome.responses);
        self.queue_markers(outcome.markers);
    }
}

impl TxnKind {
    fn queue_markers(&self, markers: Vec<MarkerRequest>) {
        for m in markers {
            if self.markers.send((self.index, m)).is_err() {
                warn!("the marker task has stopped; markers are resumed at the next start");
            }
        }
    }
}

fn append(partition: &Partition, records: &[TxnRecord]) -> Result<(), String> {
    let batch =
        coordinator_log::encode_batch(records.iter().map(|r| r.encode()), None, crate::now_ms())?;
    partition
        .append_internal(&batch)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Reads a whole `__transaction_state` partition into a fresh state machine.
fn replay_log(
    index: i32,
    partition: &Partition,
    config: TxnConfig,
) -> Result<TransactionCoordinatorShard, String> {
    let mut shard = TransactionCoordinatorShard::new(config, index, partition.leader_epoch);
    coordinator_log::for_each_record(partition, |record| {
        let Some(key) = record.key.as_deref() else {
            return;
        };
        if record.control {
            return;
        }
        match TxnRecord::decode(key, record.value.as_deref()) {
            Ok(Some(r)) => shard.replay(&r),
            Ok(None) => {}
            Err(e) => {
                warn!(tp = %partition.tp, offset = record.offset, error = %e, "skipping an unreadable record")
            }
        }
    })?;
    Ok(shard)
}

/// Writes one marker to a hosted partition. `__consumer_offsets` partitions go through their
/// group shard, which settles the transaction's offsets with it.
pub(crate) fn write_marker(
    replicas: &ReplicaManager,
    groups: &GroupCoordinator,
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    marker: &EndTxnMarker,
) -> Result<(), ApiError> {
    let local = replicas.topics();
    let Some(hosted) = local
        .by_name(topic)
        .and_then(|t| t.partitions.get(&partition))
    else {
        return Err(if image.topic_by_name(topic).is_none() {
            ApiError::bare(ErrorCode::UnknownTopicOrPartition)
        } else {
            ApiError::bare(ErrorCode::NotLeaderOrFollower)
        });
    };
    if topic == GROUP_METADATA_TOPIC
        && let Some(shard) = groups.shard_at(partition)
    {
        return shard.write_marker(marker);
    }
    hosted.append_marker(marker).map(|_| ())
}

/// The marker task: writes the markers the transaction shards ask for, and reports back.
pub(crate) async fn run_markers(
    shared: Arc<crate::server::Shared>,
    mut queue: mpsc::UnboundedReceiver<QueuedMarkers>,
) {
    while let Some((index, request)) = queue.recv().await {
        let image = shared.controller.image();
        let marker = EndTxnMarker {
            producer_id: request.producer_id,
            producer_epoch: request.producer_epoch,
            coordinator_epoch: request.coordinator_epoch,
            commit: request.result == TxnResult::Commit,
            timestamp: crate::now_ms(),
        };
        let results: Vec<((String, i32), Option<ErrorCode>)> = request
            .partitions
            .iter()
            .map(|(topic, p)| {
                let result = write_marker(
                    &shared.replicas,
                    &shared.groups,
                    &image,
                    topic,
                    *p,
                    &marker,
                );
                let error = match result {
                    Ok(()) => None,
                    // A deleted topic has nothing left to end (Kafka skips it too).
                    Err(e) if e.code == ErrorCode::UnknownTopicOrPartition => None,
                    Err(e) => {
                        warn!(topic, partition = p, error = %e, "cannot write a transaction marker");
                        Some(e.code)
                    }
                };
                ((topic.clone(), *p), error)
            })
            .collect();
        match shared.txns.shard_at(index) {
            Some(shard) => shard.run(|s| s.on_markers_written(crate::now_ms(), &request, &results)),
            None => warn!(
                partition = index,
                "the transaction shard moved away before its markers were reported"
            ),
        }
    }
}
