//! The transaction coordinator of one `__transaction_state` partition: request handlers, marker
//! bookkeeping, timers, replay and the admin views (Kafka's `TransactionCoordinator` and
//! `TransactionStateManager`, minus their I/O).

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use strom_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use strom_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use strom_protocol::messages::describe_transactions_response::{self, TopicData as DescribedTopic};
use strom_protocol::messages::list_transactions_response;
use strom_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId,
};
use strom_protocol::{ErrorCode, StrBytes};
use tracing::{debug, info, warn};

use crate::partition::partition_for;
use crate::shard::{RequestToken, code_of};
use crate::timer::Timers;
use crate::txn::config::TxnConfig;
use crate::txn::records::{TxnLogValue, TxnRecord};
use crate::txn::state::{
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TxnMetadata, TxnState, is_epoch_exhausted,
};

/// The name of the topic whose partitions hold group offsets (AddOffsetsToTxn).
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Hands out producer ids. The broker provides it (over the cluster's producer-id blocks);
/// an id must never be handed out twice, across the whole cluster and its restarts.
pub trait ProducerIdAllocator {
    /// A fresh producer id, or the error to answer with (e.g. COORDINATOR_LOAD_IN_PROGRESS
    /// while no block is available yet).
    fn next_producer_id(&mut self) -> Result<i64, ErrorCode>;
}

impl<F: FnMut() -> Result<i64, ErrorCode>> ProducerIdAllocator for F {
    fn next_producer_id(&mut self) -> Result<i64, ErrorCode> {
        self()
    }
}

/// How a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnResult {
    Commit,
    Abort,
}

impl TxnResult {
    fn prepare_state(self) -> TxnState {
        match self {
            TxnResult::Commit => TxnState::PrepareCommit,
            TxnResult::Abort => TxnState::PrepareAbort,
        }
    }
}

/// A side effect for the broker: write a COMMIT or ABORT control marker for a producer to
/// each of `partitions` (WriteTxnMarkers to their leaders, or a local append), then report
/// per partition with [`TransactionCoordinatorShard::on_markers_written`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The leader epoch of this `__transaction_state` partition (WriteTxnMarkers'
    /// `coordinator_epoch`), so that partition leaders refuse markers of a deposed coordinator.
    pub coordinator_epoch: i32,
    pub result: TxnResult,
    pub partitions: Vec<(String, i32)>,
}

/// A response for a request made with a [`RequestToken`].
#[derive(Debug, Clone, PartialEq)]
pub enum TxnResponse {
    InitProducerId(InitProducerIdResponse),
    /// One transaction of an AddPartitionsToTxn request (see [`add_partitions_response`]).
    AddPartitionsToTxn(AddPartitionsToTxnResult),
    AddOffsetsToTxn(AddOffsetsToTxnResponse),
    EndTxn(EndTxnResponse),
}

/// What a call produced: records to append to the shard's `__transaction_state` partition,
/// responses to deliver once (and only if) that append succeeded, and marker requests to
/// start once (and only if) that append succeeded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TxnOutcome {
    pub records: Vec<TxnRecord>,
    pub responses: Vec<(RequestToken, TxnResponse)>,
    pub markers: Vec<MarkerRequest>,
}

impl TxnOutcome {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.responses.is_empty() && self.markers.is_empty()
    }

    /// Appends another outcome (records keep their order).
    pub fn extend(&mut self, other: TxnOutcome) {
        self.records.extend(other.records);
        self.responses.extend(other.responses);
        self.markers.extend(other.markers);
    }
}

/// Deadlines of the transaction shard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TxnTimer {
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    AbortTimedOut,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    RemoveExpired,
    /// Markers of a transaction that failed retriably are asked for again.
    MarkerRetry(String),
}

/// What a produce to a partition inside a transaction may do (see
/// [`TransactionCoordinatorShard::verify_partition`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionVerification {
    /// The partition is in the producer's ongoing transaction: the write may go ahead.
    InTransaction,
    /// The producer's epoch is current but the partition was never added (or the transaction
    /// is not open): Kafka answers TRANSACTION_ABORTABLE (INVALID_TXN_STATE to older clients).
    NotInTransaction,
}

/// In-memory bookkeeping of a transaction whose markers are being written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MarkerProgress {
    /// Asked for and not reported yet.
    outstanding: BTreeSet<(String, i32)>,
    /// A partition leader refused a marker for good (newer producer or coordinator epoch):
    /// as Kafka, this coordinator stops sending; the next coordinator resumes from the log.
    abandoned: bool,
}

/// The transaction coordinator state of one `__transaction_state` partition: a pure state
/// machine. Every change is a [`TxnRecord`] applied through [`replay`](Self::replay) as it is
/// emitted, so the live state and the state reloaded from the log are the same (except for the
/// in-memory fields Kafka does not persist either: the previous epoch used by KIP-360 retries,
/// and the progress of markers).
#[derive(Debug, Clone)]
pub struct TransactionCoordinatorShard {
    config: TxnConfig,
    /// The `__transaction_state` partition this shard owns.
    partition: i32,
    /// Its leader epoch, sent with every marker.
    coordinator_epoch: i32,
    /// Ordered so that timers and listings are deterministic.
    pub(super) txns: BTreeMap<String, TxnMetadata>,
    markers: BTreeMap<String, MarkerProgress>,
    timers: Timers<TxnTimer>,
}

/// Maps PRODUCER_FENCED to INVALID_PRODUCER_EPOCH for request versions that predate it.
fn fenced_for(code: ErrorCode, version: i16, first_version_with_fenced: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < first_version_with_fenced {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}

/// The `__transaction_state` partition of a transactional id: Kafka's
/// `Utils.abs(transactionalId.hashCode) % transaction.state.log.num.partitions`.
pub fn transaction_partition_for(transactional_id: &str, num_partitions: i32) -> i32 {
    partition_for(transactional_id, num_partitions)
}

/// InitProducerId without a transactional id (an idempotent producer): a fresh producer id
/// at epoch 0, nothing persisted. Any broker answers it, not only a coordinator.
pub fn init_idempotent_producer(alloc: &mut dyn ProducerIdAllocator) -> InitProducerIdResponse {
    match alloc.next_producer_id() {
        Ok(pid) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0),
        Err(code) => init_error(code),
    }
}

fn init_error(code: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(NO_PRODUCER_ID))
        .with_producer_epoch(NO_PRODUCER_EPOCH)
}

/// The transactions of an AddPartitionsToTxn request of any version: v0-v3 (from clients)
/// carry one at top level, which becomes a non-verifying transaction; v4+ (from brokers)
/// carry a list.
pub fn add_partitions_transactions(
    version: i16,
    request: &AddPartitionsToTxnRequest,
) -> Vec<AddPartitionsToTxnTransaction> {
    if version >= 4 {
        return request.transactions.clone();
    }
    vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(request.v3_and_below_transactional_id.clone())
            .with_producer_id(request.v3_and_below_producer_id)
            .with_producer_epoch(request.v3_and_below_producer_epoch)
            .with_verify_only(false)
            .with_topics(request.v3_and_below_topics.clone()),
    ]
}

/// Lays out per-transaction results as the AddPartitionsToTxn response of `version`: v4+ as
/// a list, v0-v3 as the single transaction's topics.
pub fn add_partitions_response(
    version: i16,
    mut results: Vec<AddPartitionsToTxnResult>,
) -> AddPartitionsToTxnResponse {
    if version >= 4 {
        return AddPartitionsToTxnResponse::default().with_results_by_transaction(results);
    }
    let topics = if results.is_empty() {
        Vec::new()
    } else {
        results.swap_remove(0).topic_results
    };
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}

/// A result for every partition of `topics`, in request order, with the code `code_for`
/// gives each.
fn partition_results(
    transactional_id: &TransactionalId,
    topics: &[AddPartitionsToTxnTopic],
    mut code_for: impl FnMut(&str, i32) -> Option<ErrorCode>,
) -> AddPartitionsToTxnResult {
    let topic_results = topics
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
                                .with_partition_error_code(code_of(code_for(t.name.as_str(), *p)))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResult::default()
        .with_transactional_id(transactional_id.clone())
        .with_topic_results(topic_results)
}

impl TransactionCoordinatorShard {
    /// A shard for `__transaction_state[partition]`, led at `coordinator_epoch`. Load it with
    /// [`replay`](Self::replay), then call [`on_loaded`](Self::on_loaded).
    pub fn new(config: TxnConfig, partition: i32, coordinator_epoch: i32) -> Self {
        Self {
            config,
            partition,
            coordinator_epoch,
            txns: BTreeMap::new(),
            markers: BTreeMap::new(),
            timers: Timers::default(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// Transactional ids this shard knows, in order.
    pub fn transactional_ids(&self) -> Vec<String> {
        self.txns.keys().cloned().collect()
    }

    /// The state of a transactional id, if known.
    pub fn state_of(&self, transactional_id: &str) -> Option<TxnState> {
        self.txns.get(transactional_id).map(|m| m.state)
    }

    /// The producer id and epoch of a transactional id, if known.
    pub fn producer_of(&self, transactional_id: &str) -> Option<(i64, i16)> {
        self.txns
            .get(transactional_id)
            .map(|m| (m.producer_id, m.producer_epoch))
    }

    fn owns(&self, transactional_id: &str) -> bool {
        transaction_partition_for(
            transactional_id,
            self.config.transaction_state_log_num_partitions,
        ) == self.partition
    }

    /// Applies one record of the partition: used while loading, and live for every record as
    /// it is emitted (the broker must not replay the records of an outcome again).
    pub fn replay(&mut self, record: &TxnRecord) {
        let id = &record.transactional_id;
        self.markers.remove(id);
        self.timers.cancel(&TxnTimer::MarkerRetry(id.clone()));
        match &record.value {
            Some(v) => {
                self.txns.insert(id.clone(), TxnMetadata::from_value(v));
            }
            None => {
                self.txns.remove(id);
            }
        }
    }

    /// Called once the partition is loaded: starts the periodic passes and asks for the
    /// markers of every transaction found in PrepareCommit or PrepareAbort (Kafka's
    /// `loadTransactionsForTxnTopicPartition`); a transaction left without partitions to mark
    /// completes at once.
    pub fn on_loaded(&mut self, now_ms: i64) -> TxnOutcome {
        self.timers = Timers::default();
        self.markers.clear();
        self.ensure_timers(now_ms);
        let mut out = TxnOutcome::default();
        let prepared: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, m)| m.state.is_prepare())
            .map(|(id, _)| id.clone())
            .collect();
        for id in prepared {
            info!(transactional_id = %id, "resuming the markers of a prepared transaction");
            self.send_markers(&id, now_ms, &mut out);
        }
        out
    }

    fn ensure_timers(&mut self, now_ms: i64) {
        if !self.timers.contains(&TxnTimer::AbortTimedOut) {
            self.timers.schedule(
                TxnTimer::AbortTimedOut,
                now_ms + self.config.abort_timed_out_transaction_cleanup_interval_ms,
            );
        }
        if !self.timers.contains(&TxnTimer::RemoveExpired) {
            self.timers.schedule(
                TxnTimer::RemoveExpired,
                now_ms + self.config.remove_expired_transaction_cleanup_interval_ms,
            );
        }
    }

    /// The earliest deadline; the broker calls [`on_timer`](Self::on_timer) once it passed.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    /// Runs every timer due at `now_ms`: aborting transactions past their timeout (with an
    /// epoch bump that fences their producer), removing expired transactional ids, and asking
    /// again for markers that failed retriably.
    pub fn on_timer(&mut self, now_ms: i64) -> TxnOutcome {
        let mut out = TxnOutcome::default();
        while let Some(key) = self.timers.pop_due(now_ms) {
            match key {
                TxnTimer::AbortTimedOut => {
                    self.abort_timed_out(now_ms, &mut out);
                    self.timers.schedule(
                        TxnTimer::AbortTimedOut,
                        now_ms + self.config.abort_timed_out_transaction_cleanup_interval_ms,
                    );
                }
                TxnTimer::RemoveExpired => {
                    self.remove_expired(now_ms, &mut out);
                    self.timers.schedule(
                        TxnTimer::RemoveExpired,
                        now_ms + self.config.remove_expired_transaction_cleanup_interval_ms,
                    );
                }
                TxnTimer::MarkerRetry(id) => self.send_markers(&id, now_ms, &mut out),
            }
        }
        out
    }

    /// Emits a record and applies it. `last_epoch` is the in-memory previous epoch to keep
    /// after the transition (Kafka's `lastProducerEpoch`), `previous_producer_id` likewise;
    /// `None` keeps what the id had.
    fn write(
        &mut self,
        out: &mut TxnOutcome,
        id: &str,
        value: TxnLogValue,
        last_epoch: Option<i16>,
        previous_producer_id: Option<i64>,
    ) {
        let old = self
            .txns
            .get(id)
            .map(|m| (m.last_producer_epoch, m.previous_producer_id));
        let record = TxnRecord::new(id, value);
        self.replay(&record);
        if let Some(m) = self.txns.get_mut(id) {
            m.last_producer_epoch = last_epoch.or(old.map(|o| o.0)).unwrap_or(NO_PRODUCER_EPOCH);
            m.previous_producer_id = previous_producer_id
                .or(old.map(|o| o.1))
                .unwrap_or(NO_PRODUCER_ID);
        }
        out.records.push(record);
    }

    /// The record of `m` in `state` at `now`: persisted fields only (the version-1 extras
    /// take their defaults, as a version 0 record reads back).
    fn value(m: &TxnMetadata, state: TxnState, now_ms: i64) -> TxnLogValue {
        let mut v = m.to_value(state, now_ms);
        v.previous_producer_id = NO_PRODUCER_ID;
        v.next_producer_id = NO_PRODUCER_ID;
        v.client_transaction_version = 0;
        v
    }

    /// Moves an Ongoing transaction to PrepareCommit/PrepareAbort (with `epoch`, bumped when
    /// fencing) and asks for its markers.
    fn prepare_end(
        &mut self,
        id: &str,
        result: TxnResult,
        epoch: i16,
        fencing: bool,
        now_ms: i64,
        out: &mut TxnOutcome,
    ) {
        let Some(m) = self.txns.get(id) else {
            return;
        };
        let mut v = Self::value(m, result.prepare_state(), now_ms);
        v.producer_epoch = epoch;
        // Fencing forgets the previous epoch: the fenced producer can no longer claim to retry.
        let last_epoch = fencing.then_some(NO_PRODUCER_EPOCH);
        self.write(out, id, v, last_epoch, None);
        self.send_markers(id, now_ms, out);
    }

    /// Asks for the markers of a prepared transaction's partitions that are neither written
    /// nor already asked for; completes the transaction when none is left.
    fn send_markers(&mut self, id: &str, now_ms: i64, out: &mut TxnOutcome) {
        let Some(m) = self.txns.get(id) else {
            return;
        };
        let result = match m.state {
            TxnState::PrepareCommit => TxnResult::Commit,
            TxnState::PrepareAbort => TxnResult::Abort,
            _ => return,
        };
        let progress = self.markers.entry(id.to_string()).or_default();
        if progress.abandoned {
            return;
        }
        if m.partitions.is_empty() {
            if progress.outstanding.is_empty() {
                self.complete(id, now_ms, out);
            }
            return;
        }
        let partitions: Vec<(String, i32)> = m
            .partitions
            .iter()
            .filter(|tp| !progress.outstanding.contains(*tp))
            .cloned()
            .collect();
        if partitions.is_empty() {
            return;
        }
        progress.outstanding.extend(partitions.iter().cloned());
        out.markers.push(MarkerRequest {
            transactional_id: id.to_string(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: self.coordinator_epoch,
            result,
            partitions,
        });
    }

    /// PrepareX -> CompleteX once every marker is written (Kafka's `prepareComplete`).
    fn complete(&mut self, id: &str, now_ms: i64, out: &mut TxnOutcome) {
        let Some(m) = self.txns.get(id) else {
            return;
        };
        let state = match m.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return,
        };
        let mut v = Self::value(m, state, now_ms);
        v.partitions.clear();
        debug!(transactional_id = %id, state = state.name(), "transaction complete");
        self.write(out, id, v, None, None);
    }

    /// The broker's report on a [`MarkerRequest`]: per partition, `None` when the marker is
    /// written, else the error. Written partitions leave the transaction; when none is left the
    /// CompleteCommit/CompleteAbort record is emitted. Errors, as Kafka's
    /// `TransactionMarkerRequestCompletionHandler`:
    /// - UNSUPPORTED_FOR_MESSAGE_FORMAT, UNSUPPORTED_VERSION: the partition is dropped from
    ///   the transaction as if written (the producer could not have written there);
    /// - INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED: a newer producer or
    ///   coordinator owns the partition; this shard stops sending markers for the transaction;
    /// - anything else (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS,
    ///   REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR, ...): asked for again after
    ///   `marker_retry_backoff_ms`.
    ///
    /// A partition whose topic was deleted should be reported as written (Kafka's marker
    /// channel skips partitions that have no leader because their topic is gone). Reports that
    /// no longer match the transaction (another epoch, already complete) are ignored.
    pub fn on_markers_written(
        &mut self,
        now_ms: i64,
        request: &MarkerRequest,
        results: &[((String, i32), Option<ErrorCode>)],
    ) -> TxnOutcome {
        let mut out = TxnOutcome::default();
        let id = request.transactional_id.as_str();
        let current = self.txns.get(id).is_some_and(|m| {
            m.producer_id == request.producer_id
                && m.producer_epoch == request.producer_epoch
                && m.state == request.result.prepare_state()
        });
        if !current || request.coordinator_epoch != self.coordinator_epoch {
            debug!(transactional_id = %id, "ignoring a stale marker report");
            return out;
        }
        let Some(progress) = self.markers.get_mut(id) else {
            return out;
        };
        if progress.abandoned {
            return out;
        }
        let mut retry = false;
        let mut written = Vec::new();
        for (tp, error) in results {
            if !progress.outstanding.remove(tp) {
                continue;
            }
            match error {
                None
                | Some(ErrorCode::UnsupportedForMessageFormat)
                | Some(ErrorCode::UnsupportedVersion) => written.push(tp.clone()),
                Some(ErrorCode::InvalidProducerEpoch)
                | Some(ErrorCode::TransactionCoordinatorFenced) => {
                    warn!(transactional_id = %id, topic = %tp.0, partition = tp.1, error = ?error,
                        "marker refused for good; no more markers are sent for this transaction");
                    progress.abandoned = true;
                    progress.outstanding.clear();
                    self.timers.cancel(&TxnTimer::MarkerRetry(id.to_string()));
                    return out;
                }
                Some(code) => {
                    debug!(transactional_id = %id, topic = %tp.0, partition = tp.1, error = ?code,
                        "marker failed; retrying");
                    retry = true;
                }
            }
        }
        let outstanding = progress.outstanding.len();
        if let Some(m) = self.txns.get_mut(id) {
            for tp in &written {
                m.partitions.remove(tp);
            }
            if m.partitions.is_empty() && outstanding == 0 {
                self.complete(id, now_ms, &mut out);
                return out;
            }
        }
        if retry {
            self.timers.schedule(
                TxnTimer::MarkerRetry(id.to_string()),
                now_ms + self.config.marker_retry_backoff_ms,
            );
        }
        out
    }

    /// InitProducerId with a transactional id (`transactional_id: None` is answered as
    /// [`init_idempotent_producer`]). A new id gets a fresh producer id at epoch 0; a known id
    /// gets its epoch bumped (or a fresh producer id when the epoch is exhausted). An ongoing
    /// transaction of the previous instance is aborted first with a bumped epoch that fences
    /// that instance, and the caller gets CONCURRENT_TRANSACTIONS to retry; so does a caller
    /// that finds the transaction's markers being written. v3+ may name the producer id and
    /// epoch it had (KIP-360): the same values again is a retry answered with the same result.
    pub fn init_producer_id(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: &InitProducerIdRequest,
        alloc: &mut dyn ProducerIdAllocator,
    ) -> TxnOutcome {
        self.ensure_timers(now_ms);
        let mut out = TxnOutcome::default();
        let reply = |out: &mut TxnOutcome, r: InitProducerIdResponse| {
            out.responses.push((token, TxnResponse::InitProducerId(r)));
        };
        let error = |out: &mut TxnOutcome, code: ErrorCode| {
            reply(out, init_error(fenced_for(code, version, 4)));
        };
        let Some(id) = request.transactional_id.as_ref().map(|i| i.0.to_string()) else {
            reply(&mut out, init_idempotent_producer(alloc));
            return out;
        };
        if id.is_empty() {
            error(&mut out, ErrorCode::InvalidRequest);
            return out;
        }
        let expected = match (request.producer_id.0, request.producer_epoch) {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
            (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => {
                error(&mut out, ErrorCode::InvalidRequest);
                return out;
            }
            (pid, epoch) => Some((pid, epoch)),
        };
        if !self.owns(&id) {
            error(&mut out, ErrorCode::NotCoordinator);
            return out;
        }
        let timeout = request.transaction_timeout_ms;
        if timeout <= 0 || timeout > self.config.max_timeout_ms {
            error(&mut out, ErrorCode::InvalidTransactionTimeout);
            return out;
        }
        let m = match self.txns.get(&id) {
            Some(m) => m.clone(),
            None => match alloc.next_producer_id() {
                Ok(pid) => TxnMetadata {
                    producer_id: pid,
                    previous_producer_id: NO_PRODUCER_ID,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                    timeout_ms: timeout,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_timestamp_ms: -1,
                    last_update_timestamp_ms: now_ms,
                    next_producer_id: NO_PRODUCER_ID,
                    client_transaction_version: 0,
                },
                Err(code) => {
                    error(&mut out, code);
                    return out;
                }
            },
        };
        let valid_producer = expected.is_none_or(|(pid, epoch)| {
            m.producer_epoch == NO_PRODUCER_EPOCH
                || pid == m.producer_id
                || (pid == m.previous_producer_id && is_epoch_exhausted(epoch))
        });
        if !valid_producer {
            error(&mut out, ErrorCode::ProducerFenced);
            return out;
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                error(&mut out, ErrorCode::ConcurrentTransactions);
            }
            TxnState::Ongoing => {
                // PrepareEpochFence: bump the epoch so that the old instance is fenced, abort
                // its transaction with that epoch, and let the caller retry (its retry bumps
                // again, or rotates the producer id if this bump exhausted the epoch).
                if m.producer_epoch == i16::MAX {
                    error(&mut out, ErrorCode::UnknownServerError);
                    return out;
                }
                info!(transactional_id = %id, "fencing the previous producer and aborting its transaction");
                self.prepare_end(
                    &id,
                    TxnResult::Abort,
                    m.producer_epoch + 1,
                    true,
                    now_ms,
                    &mut out,
                );
                error(&mut out, ErrorCode::ConcurrentTransactions);
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut v = Self::value(&m, TxnState::Empty, now_ms);
                v.transaction_timeout_ms = timeout;
                v.partitions.clear();
                v.start_timestamp_ms = -1;
                let last_epoch;
                if is_epoch_exhausted(m.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == m.producer_epoch)
                {
                    // Rotate to a new producer id (Kafka's `prepareProducerIdRotation`).
                    match alloc.next_producer_id() {
                        Ok(pid) => {
                            v.producer_id = pid;
                            v.producer_epoch = 0;
                            last_epoch = if expected.is_some() {
                                m.producer_epoch
                            } else {
                                NO_PRODUCER_EPOCH
                            };
                        }
                        Err(code) => {
                            error(&mut out, code);
                            return out;
                        }
                    }
                } else {
                    // Kafka's `prepareIncrementProducerEpoch`.
                    let (epoch, last) = match expected {
                        None => (m.producer_epoch + 1, NO_PRODUCER_EPOCH),
                        Some((_, e))
                            if m.producer_epoch == NO_PRODUCER_EPOCH || e == m.producer_epoch =>
                        {
                            (m.producer_epoch + 1, m.producer_epoch)
                        }
                        // A retry of a bump whose answer was lost.
                        Some((_, e)) if e == m.last_producer_epoch => {
                            (m.producer_epoch, m.last_producer_epoch)
                        }
                        Some(_) => {
                            error(&mut out, ErrorCode::ProducerFenced);
                            return out;
                        }
                    };
                    if is_epoch_exhausted(m.producer_epoch) && epoch != m.producer_epoch {
                        // Cannot happen by construction: an exhausted epoch rotates above.
                        error(&mut out, ErrorCode::UnknownServerError);
                        return out;
                    }
                    v.producer_epoch = epoch;
                    last_epoch = last;
                }
                let (pid, epoch) = (v.producer_id, v.producer_epoch);
                self.write(&mut out, &id, v, Some(last_epoch), Some(m.producer_id));
                info!(transactional_id = %id, producer_id = pid, epoch, "initialized transactional producer");
                reply(
                    &mut out,
                    InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch),
                );
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                warn!(transactional_id = %id, state = m.state.name(), "transactional id in a state it should never be in");
                error(&mut out, ErrorCode::UnknownServerError);
            }
        }
        out
    }

    /// Validates a producer's access to its transaction for AddPartitions/AddOffsets and
    /// returns the record to write, `None` when the partitions are already in the transaction.
    fn prepare_add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &BTreeSet<(String, i32)>,
        now_ms: i64,
    ) -> Result<Option<TxnLogValue>, ErrorCode> {
        if id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if !self.owns(id) {
            return Err(ErrorCode::NotCoordinator);
        }
        let m = self
            .txns
            .get(id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Ongoing if partitions.is_subset(&m.partitions) => Ok(None),
            TxnState::Ongoing
            | TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort => {
                let mut v = Self::value(m, TxnState::Ongoing, now_ms);
                if m.state != TxnState::Ongoing {
                    v.start_timestamp_ms = now_ms;
                    v.partitions.clear();
                }
                v.partitions.extend(partitions.iter().cloned());
                Ok(Some(v))
            }
            TxnState::Dead | TxnState::PrepareEpochFence => Err(ErrorCode::UnknownServerError),
        }
    }

    /// One transaction of AddPartitionsToTxn (see [`add_partitions_transactions`]; the broker
    /// routes each to the shard of its transactional id and lays the results out with
    /// [`add_partitions_response`]). `rejected` is the broker's verdict on each partition
    /// (TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PARTITION): if any is rejected, nothing is
    /// added and the others get OPERATION_NOT_ATTEMPTED, as Kafka. With `verify_only` (v4+,
    /// KIP-890) nothing is added either: each partition is answered with whether it is already
    /// in the ongoing transaction (NONE, else TRANSACTION_ABORTABLE; INVALID_TXN_STATE for v4).
    pub fn add_partitions_to_txn(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        txn: &AddPartitionsToTxnTransaction,
        rejected: &dyn Fn(&str, i32) -> Option<ErrorCode>,
    ) -> TxnOutcome {
        self.ensure_timers(now_ms);
        let mut out = TxnOutcome::default();
        let id = txn.transactional_id.0.to_string();
        let reply = |out: &mut TxnOutcome,
                     code_for: &mut dyn FnMut(&str, i32) -> Option<ErrorCode>| {
            let r = partition_results(&txn.transactional_id, &txn.topics, code_for);
            out.responses
                .push((token, TxnResponse::AddPartitionsToTxn(r)));
        };
        let all = |code: ErrorCode| move |_: &str, _: i32| Some(code);
        if id.is_empty() {
            reply(&mut out, &mut all(ErrorCode::InvalidRequest));
            return out;
        }
        let any_rejected = txn.topics.iter().any(|t| {
            t.partitions
                .iter()
                .any(|p| rejected(t.name.as_str(), *p).is_some())
        });
        if any_rejected {
            reply(&mut out, &mut |t: &str, p: i32| {
                Some(rejected(t, p).unwrap_or(ErrorCode::OperationNotAttempted))
            });
            return out;
        }
        let partitions: BTreeSet<(String, i32)> = txn
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
            .collect();
        if txn.verify_only {
            match self.verify(&id, txn.producer_id.0, txn.producer_epoch) {
                Err(code) => reply(&mut out, &mut all(code)),
                Ok(m) => {
                    let missing = if version >= 5 {
                        ErrorCode::TransactionAbortable
                    } else {
                        ErrorCode::InvalidTxnState
                    };
                    let m = m.clone();
                    reply(&mut out, &mut |t: &str, p: i32| {
                        (!m.contains(&(t.to_string(), p))).then_some(missing)
                    });
                }
            }
            return out;
        }
        match self.prepare_add_partitions(
            &id,
            txn.producer_id.0,
            txn.producer_epoch,
            &partitions,
            now_ms,
        ) {
            Err(code) => reply(&mut out, &mut all(fenced_for(code, version, 2))),
            Ok(value) => {
                if let Some(v) = value {
                    self.write(&mut out, &id, v, None, None);
                }
                reply(&mut out, &mut |_: &str, _: i32| None);
            }
        }
        out
    }

    /// The partitions of a producer's ongoing transaction, after Kafka's checks of
    /// `handleVerifyPartitionsInTransaction`.
    fn verify(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&BTreeSet<(String, i32)>, ErrorCode> {
        if id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if !self.owns(id) {
            return Err(ErrorCode::NotCoordinator);
        }
        let m = self
            .txns
            .get(id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if m.state.is_prepare() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        Ok(&m.partitions)
    }

    /// Produce-time verification (KIP-890) when the coordinator is local: is `topic-partition`
    /// in the ongoing transaction of `transactional_id` with this producer id and epoch? No
    /// record, no side effect. `Err` is the code to refuse the produce with
    /// (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS, NOT_COORDINATOR).
    pub fn verify_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionVerification, ErrorCode> {
        let partitions = self.verify(transactional_id, producer_id, producer_epoch)?;
        let ongoing = self
            .txns
            .get(transactional_id)
            .is_some_and(|m| m.state == TxnState::Ongoing);
        Ok(
            if ongoing && partitions.contains(&(topic.to_string(), partition)) {
                PartitionVerification::InTransaction
            } else {
                PartitionVerification::NotInTransaction
            },
        )
    }

    /// AddOffsetsToTxn: adds `__consumer_offsets[partition_for(group_id)]` to the transaction,
    /// so that the group coordinator's transactional offset commit is covered by the markers.
    pub fn add_offsets_to_txn(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: &AddOffsetsToTxnRequest,
    ) -> TxnOutcome {
        self.ensure_timers(now_ms);
        let mut out = TxnOutcome::default();
        let id = request.transactional_id.0.to_string();
        let partition = partition_for(
            request.group_id.0.as_str(),
            self.config.offsets_topic_num_partitions,
        );
        let partitions = BTreeSet::from([(CONSUMER_OFFSETS_TOPIC.to_string(), partition)]);
        let code = match self.prepare_add_partitions(
            &id,
            request.producer_id.0,
            request.producer_epoch,
            &partitions,
            now_ms,
        ) {
            Err(code) => Some(fenced_for(code, version, 2)),
            Ok(value) => {
                if let Some(v) = value {
                    self.write(&mut out, &id, v, None, None);
                }
                None
            }
        };
        out.responses.push((
            token,
            TxnResponse::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_error_code(code_of(code)),
            ),
        ));
        out
    }

    /// EndTxn: commits or aborts the ongoing transaction. The PrepareCommit/PrepareAbort record
    /// is emitted with the response (success is answered once it is written, as Kafka) and the
    /// markers requested; the Complete record follows from
    /// [`on_markers_written`](Self::on_markers_written). A retry finds the transaction in the
    /// matching Prepare state (CONCURRENT_TRANSACTIONS until the markers are written) or
    /// Complete state (success); any other combination is INVALID_TXN_STATE. Transaction
    /// version 1 semantics for every request version: the epoch is not bumped per
    /// transaction (strom does not advertise `transaction.version` 2).
    pub fn end_txn(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: &EndTxnRequest,
    ) -> TxnOutcome {
        self.ensure_timers(now_ms);
        let mut out = TxnOutcome::default();
        let id = request.transactional_id.0.to_string();
        let result = if request.committed {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        let reply =
            |out: &mut TxnOutcome, code: Option<ErrorCode>, pid_epoch: Option<(i64, i16)>| {
                let mut r = EndTxnResponse::default()
                    .with_error_code(code_of(code.map(|c| fenced_for(c, version, 2))));
                if version >= 5
                    && let Some((pid, epoch)) = pid_epoch
                {
                    r.producer_id = ProducerId(pid);
                    r.producer_epoch = epoch;
                }
                out.responses.push((token, TxnResponse::EndTxn(r)));
            };
        let checked: Result<&TxnMetadata, ErrorCode> = if id.is_empty() {
            Err(ErrorCode::InvalidRequest)
        } else if !self.owns(&id) {
            Err(ErrorCode::NotCoordinator)
        } else {
            match self.txns.get(&id) {
                None => Err(ErrorCode::InvalidProducerIdMapping),
                Some(m) if m.producer_id != request.producer_id.0 => {
                    Err(ErrorCode::InvalidProducerIdMapping)
                }
                Some(m) if m.producer_epoch != request.producer_epoch => {
                    Err(ErrorCode::ProducerFenced)
                }
                Some(m) => Ok(m),
            }
        };
        let (state, current) = match checked {
            Err(code) => {
                reply(&mut out, Some(code), None);
                return out;
            }
            Ok(m) => (m.state, (m.producer_id, m.producer_epoch)),
        };
        match (state, result) {
            (TxnState::Ongoing, _) => {
                self.prepare_end(&id, result, current.1, false, now_ms, &mut out);
                reply(&mut out, None, Some(current));
            }
            (TxnState::CompleteCommit, TxnResult::Commit)
            | (TxnState::CompleteAbort, TxnResult::Abort) => reply(&mut out, None, Some(current)),
            (TxnState::PrepareCommit, TxnResult::Commit)
            | (TxnState::PrepareAbort, TxnResult::Abort) => {
                reply(&mut out, Some(ErrorCode::ConcurrentTransactions), None);
            }
            (state, _) => {
                debug!(transactional_id = %id, state = state.name(), ?result, "EndTxn in a state that does not allow it");
                reply(&mut out, Some(ErrorCode::InvalidTxnState), None);
            }
        }
        out
    }

    /// Aborts every Ongoing transaction past its `transaction.timeout.ms`, fencing its
    /// producer with a bumped epoch (Kafka's `abortTimedOutTransactions`).
    fn abort_timed_out(&mut self, now_ms: i64, out: &mut TxnOutcome) {
        let timed_out: Vec<(String, i16)> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && m.start_timestamp_ms.saturating_add(i64::from(m.timeout_ms)) < now_ms
            })
            .map(|(id, m)| (id.clone(), m.producer_epoch))
            .collect();
        for (id, epoch) in timed_out {
            if epoch == i16::MAX {
                warn!(transactional_id = %id, "cannot fence a producer at the largest epoch");
                continue;
            }
            info!(transactional_id = %id, "aborting a transaction past its timeout");
            self.prepare_end(&id, TxnResult::Abort, epoch + 1, true, now_ms, out);
        }
    }

    /// Tombstones idle ids (Empty or Complete*) not updated for
    /// `transactional.id.expiration.ms` (Kafka's `removeExpiredTransactionalIds`).
    fn remove_expired(&mut self, now_ms: i64, out: &mut TxnOutcome) {
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                m.state.is_expiration_allowed()
                    && m.last_update_timestamp_ms
                        <= now_ms.saturating_sub(self.config.transactional_id_expiration_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            debug!(transactional_id = %id, "transactional id expired");
            let record = TxnRecord::tombstone(id);
            self.replay(&record);
            out.records.push(record);
        }
    }

    /// DescribeTransactions for one id of this shard.
    pub fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> describe_transactions_response::TransactionState {
        let base = describe_transactions_response::TransactionState::default()
            .with_transactional_id(TransactionalId(s(transactional_id)));
        let code = if transactional_id.is_empty() {
            Some(ErrorCode::InvalidRequest)
        } else if !self.owns(transactional_id) {
            Some(ErrorCode::NotCoordinator)
        } else {
            match self.txns.get(transactional_id) {
                None => Some(ErrorCode::TransactionalIdNotFound),
                Some(m) if m.state == TxnState::Dead => Some(ErrorCode::TransactionalIdNotFound),
                Some(_) => None,
            }
        };
        if let Some(code) = code {
            return base.with_error_code(code.code());
        }
        let Some(m) = self.txns.get(transactional_id) else {
            return base.with_error_code(ErrorCode::TransactionalIdNotFound.code());
        };
        let mut topics: Vec<DescribedTopic> = Vec::new();
        for (topic, p) in &m.partitions {
            if topics.last().is_none_or(|t| t.topic.as_str() != topic) {
                topics.push(DescribedTopic::default().with_topic(TopicName(s(topic))));
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(*p);
            }
        }
        base.with_producer_id(ProducerId(m.producer_id))
            .with_producer_epoch(m.producer_epoch)
            .with_transaction_state(s(m.state.name()))
            .with_transaction_timeout_ms(m.timeout_ms)
            .with_transaction_start_time_ms(m.start_timestamp_ms)
            .with_topics(topics)
    }

    /// ListTransactions over this shard. State filters are exact names (unknown ones come back
    /// in `unknown_state_filters`), producer id filters match the current producer id, the
    /// duration filter (v1+) keeps transactions running longer than it, and the id pattern
    /// (v2) must match the whole id. Empty filters match everything. The broker concatenates
    /// the states of all its shards.
    pub fn list_transactions(
        &self,
        now_ms: i64,
        version: i16,
        request: &ListTransactionsRequest,
    ) -> ListTransactionsResponse {
        let mut response = ListTransactionsResponse::default();
        let mut states = BTreeSet::new();
        for name in &request.state_filters {
            match TxnState::from_name(name.as_str()) {
                Some(state) => {
                    states.insert(state);
                }
                None => response.unknown_state_filters.push(name.clone()),
            }
        }
        let pattern = match request.transactional_id_pattern.as_deref() {
            Some(p) if version >= 2 && !p.is_empty() => match Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => Some(re),
                Err(_) => {
                    response.error_code = ErrorCode::InvalidRegularExpression.code();
                    return response;
                }
            },
            _ => None,
        };
        let duration = if version >= 1 {
            request.duration_filter
        } else {
            -1
        };
        let pids: BTreeSet<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
        response.transaction_states = self
            .txns
            .iter()
            .filter(|(_, m)| m.state != TxnState::Dead)
            .filter(|(_, m)| pids.is_empty() || pids.contains(&m.producer_id))
            .filter(|(_, m)| request.state_filters.is_empty() || states.contains(&m.state))
            .filter(|(_, m)| duration < 0 || now_ms - m.start_timestamp_ms > duration)
            .filter(|(id, _)| pattern.as_ref().is_none_or(|re| re.is_match(id)))
            .map(|(id, m)| {
                list_transactions_response::TransactionState::default()
                    .with_transactional_id(TransactionalId(s(id)))
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_transaction_state(s(m.state.name()))
            })
            .collect();
        response
    }
}
