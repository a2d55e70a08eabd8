//! The transactional producer (the transactional half of Java's `TransactionManager`): with a
//! `transactional.id`, records are written in transactions that the id's coordinator commits
//! or aborts as a whole, together with consumer offsets.
//!
//! ```text
//!  init_transactions ── FindCoordinator(key type 1) + InitProducerId(id) ──► READY
//!  begin_transaction ── local ──► IN_TRANSACTION (send is allowed only here)
//!  send ── appends as usual; the sender drains a partition's batches only once it is in the
//!          transaction: new partitions of a drain round go in one AddPartitionsToTxn
//!  send_offsets_to_transaction ── AddOffsetsToTxn, then TxnOffsetCommit to the group's
//!          coordinator (FindCoordinator key type 0)
//!  commit_transaction ── COMMITTING: no more sends; flush; EndTxn(commit) ──► READY
//!  abort_transaction  ── ABORTING: queued batches never sent fail; wait for those in flight;
//!          EndTxn(abort); new epoch if sequences need a reset ──► READY
//!
//!  a batch fails for good, TxnOffsetCommit fails ──► ABORTABLE_ERROR: commit fails, queued
//!          batches fail; abort_transaction leads back to READY
//!  PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, authorization, unsupported versions
//!          ──► FATAL_ERROR: every later call and send fails with it
//! ```
//!
//! The state ([`TxnManager`]) lives in the producer's lock with the batches (`Front`), so
//! `send` checks it in the same critical section that appends the record, and the sender task
//! reads it when it drains. The calls above run their coordinator requests in the caller's
//! task; only AddPartitionsToTxn is sent by the sender task, which knows which partitions
//! have batches to drain.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use strom_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use strom_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use tokio::time::Instant;
use tracing::debug;

use super::idempotence::ProducerIdAndEpoch;
use super::{Front, Producer};
use crate::admin::OffsetAndMetadata;
use crate::admin::coordinator::{CoordinatorCache, CoordinatorKey, lookup_coordinator};
use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// AddPartitionsToTxn v4+ is the broker-to-broker form (KIP-890); producers send v0-v3.
const LAST_CLIENT_ADD_PARTITIONS_VERSION: i16 = 3;

/// A consumer's group membership, sent with [`Producer::send_offsets_to_transaction`] so
/// that the group coordinator can refuse offsets from a member that was fenced (Java's
/// `ConsumerGroupMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub group_id: String,
    /// -1 when unknown (the coordinator then does not check the member).
    pub generation_id: i32,
    /// Empty when unknown.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata of `group_id` without a member: generation -1, no member id.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }

    /// The member's generation and id, as `Consumer::group_metadata` returns them.
    pub fn with_member(mut self, generation_id: i32, member_id: impl Into<String>) -> Self {
        self.generation_id = generation_id;
        self.member_id = member_id.into();
        self
    }

    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }
}

/// Java's `TransactionManager.State` (the names appear in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Uninitialized,
    Initializing,
    Ready,
    InTransaction,
    Committing,
    Aborting,
    AbortableError,
    FatalError,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Uninitialized => "UNINITIALIZED",
            Self::Initializing => "INITIALIZING",
            Self::Ready => "READY",
            Self::InTransaction => "IN_TRANSACTION",
            Self::Committing => "COMMITTING_TRANSACTION",
            Self::Aborting => "ABORTING_TRANSACTION",
            Self::AbortableError => "ABORTABLE_ERROR",
            Self::FatalError => "FATAL_ERROR",
        })
    }
}

/// The transaction state shared by the producer's calls and its sender task, under the
/// producer's lock.
#[derive(Debug)]
pub(crate) struct TxnManager {
    pub(crate) id: String,
    state: State,
    /// What ABORTABLE_ERROR or FATAL_ERROR calls fail with ([`ClientError::Abortable`] or
    /// [`ClientError::Fatal`]).
    last_error: Option<ClientError>,
    producer: Option<ProducerIdAndEpoch>,
    /// A new id/epoch the sender task has not given to its `Idempotence` yet.
    new_producer: Option<ProducerIdAndEpoch>,
    /// Partitions the coordinator has in the current transaction: their batches may go.
    added: HashSet<TopicPartition>,
    /// Partitions with batches waiting for the next AddPartitionsToTxn.
    wanted: BTreeSet<TopicPartition>,
    /// An AddPartitionsToTxn is in flight (with the partitions it carries).
    adding: bool,
    add_not_before: Instant,
    add_failures: u32,
    /// Something was added (partitions or offsets): the transaction needs an EndTxn.
    started: bool,
    /// Some partition's sequences broke (set by the sender task): the abort bumps the epoch.
    pub(crate) epoch_bump_needed: bool,
    /// The transactional call under way; a second one at the same time is refused.
    busy: Option<&'static str>,
}

/// Errors after which the producer cannot go on (Java's fatal transactional errors).
fn is_fatal(e: &ClientError) -> bool {
    match e {
        ClientError::Fatal(_) | ClientError::UnsupportedVersion { .. } => true,
        ClientError::Abortable(_) | ClientError::TransactionAborted => false,
        _ => matches!(
            e.code(),
            Some(
                ErrorCode::ProducerFenced
                    | ErrorCode::InvalidProducerEpoch
                    | ErrorCode::TransactionalIdAuthorizationFailed
                    | ErrorCode::ClusterAuthorizationFailed
                    | ErrorCode::InvalidTxnState
                    | ErrorCode::UnsupportedVersion
                    | ErrorCode::UnsupportedForMessageFormat
            )
        ),
    }
}

/// Worth trying again at a transaction coordinator: Kafka's retriable errors, and
/// CONCURRENT_TRANSACTIONS (the previous transaction's markers are still being written).
fn is_retriable(e: &ClientError) -> bool {
    e.is_retriable() || e.code() == Some(ErrorCode::ConcurrentTransactions)
}

fn not_transactional() -> ClientError {
    ClientError::IllegalState(
        "Transactional method invoked on a non-transactional producer.".into(),
    )
}

fn fatal(e: ClientError) -> ClientError {
    match e {
        ClientError::Fatal(_) => e,
        e => ClientError::Fatal(Box::new(e)),
    }
}

fn abortable(e: ClientError) -> ClientError {
    match e {
        ClientError::Abortable(_) | ClientError::Fatal(_) => e,
        e => ClientError::Abortable(Box::new(e)),
    }
}

impl TxnManager {
    pub(crate) fn new(id: String) -> Self {
        Self {
            id,
            state: State::Uninitialized,
            last_error: None,
            producer: None,
            new_producer: None,
            added: HashSet::new(),
            wanted: BTreeSet::new(),
            adding: false,
            add_not_before: Instant::now(),
            add_failures: 0,
            started: false,
            epoch_bump_needed: false,
            busy: None,
        }
    }

    /// Why `send` must refuse a record now (Java's `failIfNotReadyForSend`), `None` inside a
    /// transaction.
    pub(crate) fn refuse_send(&self) -> Option<ClientError> {
        if self.state == State::InTransaction {
            return None;
        }
        if let Some(e) = &self.last_error {
            return Some(e.clone());
        }
        Some(ClientError::IllegalState(if self.producer.is_none() {
            "Cannot perform a 'send' before completing a call to initTransactions when \
             transactions are enabled."
                .into()
        } else {
            format!("Cannot call send in state {}", self.state)
        }))
    }

    /// The error every queued batch and every later call fails with, once fatal.
    pub(crate) fn fatal_error(&self) -> Option<&ClientError> {
        self.last_error
            .as_ref()
            .filter(|_| self.state == State::FatalError)
    }

    /// What the batches queued and never sent fail with now: the transaction is being
    /// aborted or can only be aborted (Java's `abortUndrainedBatches`).
    pub(crate) fn undrained_error(&self) -> Option<ClientError> {
        match self.state {
            State::Aborting => Some(ClientError::TransactionAborted),
            State::AbortableError => self.last_error.clone(),
            _ => None,
        }
    }

    /// A new id/epoch for the sender task's sequence numbers.
    pub(crate) fn take_new_producer(&mut self) -> Option<ProducerIdAndEpoch> {
        self.new_producer.take()
    }

    /// Whether the batches of `tp` may be drained (its partition is in the transaction).
    pub(crate) fn in_transaction(&self, tp: &TopicPartition) -> bool {
        self.added.contains(tp)
    }

    /// Notes that `tp` has batches to send, so it must join the transaction.
    pub(crate) fn want(&mut self, tp: &TopicPartition) {
        if !self.added.contains(tp) && !self.wanted.contains(tp) {
            self.wanted.insert(tp.clone());
        }
    }

    /// Whether partitions are added now (inside a transaction, also while it commits).
    pub(crate) fn adds_partitions(&self) -> bool {
        matches!(self.state, State::InTransaction | State::Committing)
    }

    /// An AddPartitionsToTxn is in flight: an EndTxn must wait for it (flushes do).
    pub(crate) fn adding(&self) -> bool {
        self.adding
    }

    /// When the next AddPartitionsToTxn may be sent, if one is wanted.
    pub(crate) fn next_add_time(&self) -> Option<Instant> {
        (self.adds_partitions() && !self.adding && !self.wanted.is_empty())
            .then_some(self.add_not_before)
    }

    /// The partitions for an AddPartitionsToTxn to send now, with the producer to send it
    /// for.
    pub(crate) fn take_add_request(
        &mut self,
        now: Instant,
    ) -> Option<(ProducerIdAndEpoch, Vec<TopicPartition>)> {
        if self.next_add_time().is_none_or(|t| t > now) {
            return None;
        }
        let producer = self.producer?;
        self.adding = true;
        Some((
            producer,
            std::mem::take(&mut self.wanted).into_iter().collect(),
        ))
    }

    /// The answer to an AddPartitionsToTxn: each partition's error, or the request's.
    pub(crate) fn add_finished(
        &mut self,
        partitions: Vec<TopicPartition>,
        result: Result<Vec<(TopicPartition, Option<ClientError>)>>,
        backoff: impl FnOnce(u32) -> Duration,
    ) {
        self.adding = false;
        let mut results: HashMap<TopicPartition, Option<ClientError>> = match result {
            Ok(results) => results.into_iter().collect(),
            Err(e) => partitions
                .iter()
                .map(|tp| (tp.clone(), Some(e.clone())))
                .collect(),
        };
        let mut retry = false;
        let mut failure = None;
        for tp in partitions {
            // A partition the answer left out is asked for again.
            let error = results.remove(&tp).unwrap_or_else(|| {
                Some(ClientError::kafka(ErrorCode::OperationNotAttempted, None))
            });
            match error {
                None => {
                    self.started = true;
                    self.added.insert(tp);
                }
                Some(e)
                    if is_retriable(&e) || e.code() == Some(ErrorCode::OperationNotAttempted) =>
                {
                    retry = true;
                    self.wanted.insert(tp);
                }
                Some(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            debug!(error = %e, "AddPartitionsToTxn failed");
            self.fail(e);
        } else if retry {
            self.add_not_before = Instant::now() + backoff(self.add_failures);
            self.add_failures += 1;
        } else {
            self.add_failures = 0;
        }
    }

    /// A batch of the transaction failed for good.
    pub(crate) fn batch_failed(&mut self, e: &ClientError) {
        if !matches!(e, ClientError::TransactionAborted) {
            self.fail(e.clone());
        }
    }

    /// Moves to FATAL_ERROR or ABORTABLE_ERROR, as `e` deserves; returns what the caller
    /// should fail with.
    fn fail(&mut self, e: ClientError) -> ClientError {
        if self.state == State::FatalError {
            return self.last_error.clone().unwrap_or(e);
        }
        if is_fatal(&e) {
            let e = fatal(e);
            tracing::warn!(error = %e, id = self.id, "transactional producer failed");
            self.state = State::FatalError;
            self.last_error = Some(e.clone());
            return e;
        }
        let e = abortable(e);
        // Java: an abort under way stays one.
        if self.state != State::Aborting {
            debug!(error = %e, id = self.id, "transaction must be aborted");
            self.state = State::AbortableError;
            self.last_error = Some(e.clone());
        }
        e
    }

    /// Java's `maybeFailWithError`: calls in an error state fail with its error.
    fn check_error(&self) -> Result<()> {
        match (&self.state, &self.last_error) {
            (State::FatalError | State::AbortableError, Some(e)) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn invalid_transition(&self, to: State) -> ClientError {
        ClientError::IllegalState(format!(
            "Invalid transition attempted from state {} to state {to}",
            self.state
        ))
    }

    /// The transaction is over (committed or aborted): ready for the next one.
    fn completed(&mut self) {
        self.state = State::Ready;
        self.last_error = None;
        self.added.clear();
        self.wanted.clear();
        self.started = false;
        self.add_failures = 0;
    }

    /// True while a transaction is open or completing (`close` aborts it).
    fn has_ongoing(&self) -> bool {
        matches!(
            self.state,
            State::InTransaction | State::Committing | State::Aborting | State::AbortableError
        )
    }
}

/// Clears the transaction's busy mark when the call ends (also when its future is dropped).
struct Busy<'a>(&'a Mutex<Front>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut front = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(txn) = front.txn.as_mut() {
            txn.busy = None;
        }
    }
}

impl Producer {
    /// Runs `start` on the transaction state under the lock, marking the call `name` as under
    /// way until the returned guard is dropped.
    fn txn_call<T>(
        &self,
        name: &'static str,
        start: impl FnOnce(&mut TxnManager) -> Result<T>,
    ) -> Result<(Busy<'_>, T)> {
        let mut front = self.front();
        let txn = front.txn.as_mut().ok_or_else(not_transactional)?;
        if let Some(other) = txn.busy {
            return Err(ClientError::IllegalState(format!(
                "Cannot call {name} while {other} is under way"
            )));
        }
        let value = start(txn)?;
        txn.busy = Some(name);
        Ok((Busy(&self.front), value))
    }

    /// Updates the transaction state under the lock.
    fn with_txn<T>(&self, f: impl FnOnce(&mut TxnManager) -> T) -> Result<T> {
        let mut front = self.front();
        let txn = front.txn.as_mut().ok_or_else(not_transactional)?;
        Ok(f(txn))
    }

    /// Gets the producer id and epoch of `transactional.id` from its coordinator, fencing any
    /// older producer with the same id and aborting (or completing) the transaction it left
    /// open. Must be called once before the first transaction; waits up to `max.block.ms`.
    /// After a timeout it may be called again.
    pub async fn init_transactions(&self) -> Result<()> {
        let (_busy, id) = self.txn_call("init_transactions", |txn| {
            txn.check_error()?;
            match txn.state {
                State::Uninitialized | State::Initializing => {
                    txn.state = State::Initializing;
                    Ok(txn.id.clone())
                }
                _ => Err(txn.invalid_transition(State::Initializing)),
            }
        })?;
        let result = self.init_producer_id(&id, None).await;
        self.with_txn(|txn| match result {
            Ok(producer) => {
                txn.producer = Some(producer);
                txn.new_producer = Some(producer);
                txn.completed();
                Ok(())
            }
            // Timed out: the state stays INITIALIZING and the call may be repeated.
            Err(e) if is_retriable(&e) => Err(e),
            Err(e) => Err(txn.fail(e)),
        })?
    }

    /// Starts a transaction: records may be sent until it is committed or aborted.
    pub async fn begin_transaction(&self) -> Result<()> {
        self.with_txn(|txn| {
            if let Some(other) = txn.busy {
                return Err(ClientError::IllegalState(format!(
                    "Cannot call begin_transaction while {other} is under way"
                )));
            }
            txn.check_error()?;
            if txn.state != State::Ready {
                return Err(txn.invalid_transition(State::InTransaction));
            }
            txn.state = State::InTransaction;
            Ok(())
        })?
    }

    /// Adds consumed offsets to the transaction: `group`'s committed offsets become these
    /// when (and only if) the transaction commits. `offsets` are the next offsets to consume.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let (_busy, (id, producer)) = self.txn_call("send_offsets_to_transaction", |txn| {
            txn.check_error()?;
            if txn.state != State::InTransaction {
                return Err(ClientError::IllegalState(format!(
                    "Cannot send offsets if a transaction is not in progress (currentState= {})",
                    txn.state
                )));
            }
            let producer = txn.producer.ok_or_else(not_transactional)?;
            Ok((txn.id.clone(), producer))
        })?;
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.max_block;
        let key = CoordinatorKey::Transaction(&id);
        let add = self
            .coordinator_call(key, deadline, "AddOffsetsToTxn", |conn| {
                add_offsets(conn, &id, producer, &group.group_id)
            })
            .await;
        let result = match add {
            Ok(()) => {
                self.with_txn(|txn| txn.started = true)?;
                let key = CoordinatorKey::Group(&group.group_id);
                self.coordinator_call(key, deadline, "TxnOffsetCommit", |conn| {
                    txn_offset_commit(conn, &id, producer, offsets, group)
                })
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Ok(()),
            // Timed out: the transaction may still commit, as the offsets may not be in it.
            Err(e) if is_retriable(&e) => Err(e),
            Err(e) => self.with_txn(|txn| Err(txn.fail(e)))?,
        }
    }

    /// Sends every record of the transaction, then commits it. Fails when a record or the
    /// offsets could not be written ([`ClientError::Abortable`]: call
    /// [`Producer::abort_transaction`]) or the producer was fenced ([`ClientError::Fatal`]).
    /// Waits up to `max.block.ms`; after a timeout it may be called again.
    pub async fn commit_transaction(&self) -> Result<()> {
        let (_busy, id) = self.txn_call("commit_transaction", |txn| {
            txn.check_error()?;
            match txn.state {
                State::InTransaction | State::Committing => {
                    txn.state = State::Committing;
                    Ok(txn.id.clone())
                }
                _ => Err(txn.invalid_transition(State::Committing)),
            }
        })?;
        self.finish_transaction(&id, true).await
    }

    /// Aborts the transaction: records queued and not yet sent fail with
    /// [`ClientError::TransactionAborted`], those already sent are discarded by the
    /// brokers, and a new transaction may begin. Waits up to `max.block.ms`.
    pub async fn abort_transaction(&self) -> Result<()> {
        let (_busy, id) = self.txn_call("abort_transaction", |txn| {
            if let Some(e) = txn.fatal_error() {
                return Err(e.clone());
            }
            match txn.state {
                State::InTransaction | State::AbortableError | State::Aborting => {
                    txn.state = State::Aborting;
                    Ok(txn.id.clone())
                }
                _ => Err(txn.invalid_transition(State::Aborting)),
            }
        })?;
        self.finish_transaction(&id, false).await
    }

    /// Aborts an open transaction before the producer closes (as Java's sender does).
    pub(super) async fn abort_on_close(&self) {
        let ongoing = self
            .front()
            .txn
            .as_ref()
            .is_some_and(|t| t.has_ongoing() && t.busy.is_none());
        if ongoing && let Err(e) = self.abort_transaction().await {
            debug!(error = %e, "aborting the open transaction on close failed");
        }
    }

    /// Commit or abort after the state changed: wait for the batches (the sender fails the
    /// unsent ones of an abort), then EndTxn if anything joined the transaction.
    async fn finish_transaction(&self, id: &str, commit: bool) -> Result<()> {
        let what = if commit { "commit" } else { "abort" };
        let deadline = Instant::now() + self.max_block;
        self.wake.notify_one();
        match tokio::time::timeout_at(deadline, self.flush()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ClientError::timeout(
                    format!(
                        "Timeout expired while awaiting the records of the transaction to {what}"
                    ),
                    self.max_block,
                ));
            }
        }
        let (producer, started, bump) = self.with_txn(|txn| {
            if commit {
                txn.check_error()?;
            } else if let Some(e) = txn.fatal_error() {
                return Err(e.clone());
            }
            let producer = txn.producer.ok_or_else(not_transactional)?;
            Ok((producer, txn.started, txn.epoch_bump_needed))
        })??;
        if started {
            let key = CoordinatorKey::Transaction(id);
            let ended = self
                .coordinator_call(key, deadline, "EndTxn", |conn| {
                    end_txn(conn, id, producer, commit)
                })
                .await;
            if let Err(e) = ended {
                return if is_retriable(&e) {
                    Err(e)
                } else {
                    self.with_txn(|txn| Err(txn.fail(e)))?
                };
            }
        }
        // KIP-360: sequences broke during the aborted transaction; a new epoch resets them.
        let bumped = if !commit && bump {
            match self.init_producer_id(id, Some(producer)).await {
                Ok(p) => Some(p),
                Err(e) if is_retriable(&e) => return Err(e),
                Err(e) => return self.with_txn(|txn| Err(txn.fail(e)))?,
            }
        } else {
            None
        };
        self.with_txn(|txn| {
            if let Some(p) = bumped {
                txn.producer = Some(p);
                txn.new_producer = Some(p);
                txn.epoch_bump_needed = false;
            }
            txn.completed();
        })
    }

    /// InitProducerId for the transactional id, retried until `max.block.ms`.
    async fn init_producer_id(
        &self,
        id: &str,
        current: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch> {
        let deadline = Instant::now() + self.max_block;
        let timeout = self.transaction_timeout;
        self.coordinator_call(
            CoordinatorKey::Transaction(id),
            deadline,
            "InitProducerId",
            |conn| init_producer_id(conn, id, timeout, current),
        )
        .await
    }

    /// Runs `op` at `key`'s coordinator until it succeeds, fails for good, or `deadline`
    /// passes (then a timeout naming `what`, which is retriable).
    async fn coordinator_call<T, F, Fut>(
        &self,
        key: CoordinatorKey<'_>,
        deadline: Instant,
        what: &str,
        op: F,
    ) -> Result<T>
    where
        F: FnMut(Arc<Connection>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        coordinator_call(
            &self.cluster,
            &self.coordinators,
            key,
            deadline,
            self.max_block,
            what,
            op,
        )
        .await
    }
}

/// See [`Producer::coordinator_call`].
async fn coordinator_call<T, F, Fut>(
    cluster: &Cluster,
    coordinators: &CoordinatorCache,
    key: CoordinatorKey<'_>,
    deadline: Instant,
    max_block: Duration,
    what: &str,
    mut op: F,
) -> Result<T>
where
    F: FnMut(Arc<Connection>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match at_coordinator(cluster, coordinators, key, &mut op).await {
            Ok(v) => return Ok(v),
            Err(e) if is_retriable(&e) => {
                let wait = cluster.backoff(attempt);
                if Instant::now() + wait >= deadline {
                    return Err(ClientError::timeout(
                        format!("Timeout expired while awaiting {what} (last error: {e})"),
                        max_block,
                    ));
                }
                debug!(error = %e, attempt, what, "retrying transactional request");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One attempt of `op` at `key`'s coordinator (looked up unless cached); the coordinator is
/// forgotten after a retriable error unless it said it is the right one, only busy.
async fn at_coordinator<T, F, Fut>(
    cluster: &Cluster,
    coordinators: &CoordinatorCache,
    key: CoordinatorKey<'_>,
    op: &mut F,
) -> Result<T>
where
    F: FnMut(Arc<Connection>) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let result = async {
        let node = match coordinators.get(key) {
            Some(node) => node,
            None => {
                let node = lookup_coordinator(cluster, key).await?;
                coordinators.put(key, node.clone());
                node
            }
        };
        let conn = cluster.connection_to(&node.addr()).await?;
        op(conn).await
    }
    .await;
    if let Err(e) = &result
        && is_retriable(e)
    {
        forget_if_moved(coordinators, key, e);
    }
    result
}

/// Forgets the coordinator unless the error says it is the right one, only busy.
fn forget_if_moved(coordinators: &CoordinatorCache, key: CoordinatorKey<'_>, e: &ClientError) {
    if !matches!(
        e.code(),
        Some(ErrorCode::CoordinatorLoadInProgress | ErrorCode::ConcurrentTransactions)
    ) {
        coordinators.forget(key);
    }
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

async fn init_producer_id(
    conn: Arc<Connection>,
    id: &str,
    timeout: Duration,
    current: Option<ProducerIdAndEpoch>,
) -> Result<ProducerIdAndEpoch> {
    let request_timeout = conn_timeout(&conn);
    super::idempotence::init_producer_id(&conn, Some(id), timeout, current, request_timeout).await
}

/// The request timeout the connection was opened with.
fn conn_timeout(conn: &Connection) -> Duration {
    conn.request_timeout()
}

async fn end_txn(
    conn: Arc<Connection>,
    id: &str,
    producer: ProducerIdAndEpoch,
    commit: bool,
) -> Result<()> {
    let version = conn.version::<EndTxnRequest>(None)?;
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_committed(commit);
    let response = conn.call_at(&request, version, conn_timeout(&conn)).await?;
    ClientError::check(response.error_code, None)
}

async fn add_offsets(
    conn: Arc<Connection>,
    id: &str,
    producer: ProducerIdAndEpoch,
    group: &str,
) -> Result<()> {
    let version = conn.version::<AddOffsetsToTxnRequest>(None)?;
    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())));
    let response = conn.call_at(&request, version, conn_timeout(&conn)).await?;
    ClientError::check(response.error_code, None)
}

async fn txn_offset_commit(
    conn: Arc<Connection>,
    id: &str,
    producer: ProducerIdAndEpoch,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    group: &ConsumerGroupMetadata,
) -> Result<()> {
    let version = conn.version::<TxnOffsetCommitRequest>(None)?;
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (tp, o) in offsets {
        let partition = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(tp.partition)
            .with_committed_offset(o.offset)
            .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
            .with_committed_metadata(Some(StrBytes::from_string(o.metadata.clone())));
        match topics.last_mut().filter(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())))
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_generation_id(group.generation_id)
        .with_member_id(StrBytes::from_string(group.member_id.clone()))
        .with_group_instance_id(group.group_instance_id.clone().map(StrBytes::from_string))
        .with_topics(topics);
    let response = conn.call_at(&request, version, conn_timeout(&conn)).await?;
    // The first error wins; a retriable one (coordinator moved, loading) retries the request.
    for t in response.topics {
        for p in t.partitions {
            if let Err(e) = ClientError::check(p.error_code, None) {
                return Err(ClientError::kafka(
                    e.code().unwrap_or(ErrorCode::UnknownServerError),
                    Some(format!("{}-{}", t.name.0, p.partition_index)),
                ));
            }
        }
    }
    Ok(())
}

/// One AddPartitionsToTxn (v0-v3) for the sender task: each partition's outcome, or the
/// request's error. The coordinator is forgotten when it moved.
pub(crate) async fn add_partitions(
    cluster: Arc<Cluster>,
    coordinators: Arc<CoordinatorCache>,
    id: String,
    producer: ProducerIdAndEpoch,
    partitions: Vec<TopicPartition>,
) -> Result<Vec<(TopicPartition, Option<ClientError>)>> {
    let key = CoordinatorKey::Transaction(&id);
    // One attempt: the sender task retries with its own backoff, draining meanwhile.
    let mut op = |conn: Arc<Connection>| {
        let partitions = &partitions;
        let id = &id;
        async move {
            let version = conn
                .version::<AddPartitionsToTxnRequest>(Some(LAST_CLIENT_ADD_PARTITIONS_VERSION))?;
            let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
            for tp in partitions {
                match topics.last_mut().filter(|t| t.name.0.as_str() == tp.topic) {
                    Some(t) => t.partitions.push(tp.partition),
                    None => topics.push(
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                            .with_partitions(vec![tp.partition]),
                    ),
                }
            }
            let request = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(id))
                .with_v3_and_below_producer_id(ProducerId(producer.id))
                .with_v3_and_below_producer_epoch(producer.epoch)
                .with_v3_and_below_topics(topics);
            let response = conn.call_at(&request, version, conn_timeout(&conn)).await?;
            let mut out = Vec::with_capacity(partitions.len());
            for t in response.results_by_topic_v3_and_below {
                for p in t.results_by_partition {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    out.push((tp, ClientError::check(p.partition_error_code, None).err()));
                }
            }
            // A coordinator that moved answers every partition with the same error.
            if let Some((_, Some(e))) = out.first()
                && e.code()
                    .is_some_and(crate::admin::coordinator::is_coordinator_error)
            {
                return Err(e.clone());
            }
            Ok(out)
        }
    };
    at_coordinator(&cluster, &coordinators, key, &mut op).await
}
