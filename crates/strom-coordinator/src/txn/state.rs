//! The states of a transactional id and what the coordinator keeps about it (Kafka's
//! `TransactionState` and `TransactionMetadata`).

use std::collections::BTreeSet;

use crate::txn::records::TxnLogValue;

/// No producer id; the value of a field that has none.
pub const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// The state of a transactional id. The ids are the `TransactionStatus` byte of
/// `TransactionLogValue`; the names are what DescribeTransactions and ListTransactions show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    /// No transaction in progress (after InitProducerId).
    Empty,
    /// Partitions were added; the transaction is open.
    Ongoing,
    /// EndTxn(commit) was accepted; COMMIT markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fencing InitProducerId; ABORT markers are being written.
    PrepareAbort,
    /// Every COMMIT marker is written.
    CompleteCommit,
    /// Every ABORT marker is written.
    CompleteAbort,
    /// The id expired and is being removed. Never persisted: its record is the tombstone.
    Dead,
    /// An old producer is being fenced (its epoch bumped) before its transaction is aborted.
    /// Never persisted: the same step writes PrepareAbort with the bumped epoch.
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// By exact name, as Kafka's `TransactionState.fromName` (ListTransactions filters).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The states a transition into `self` may start from (Kafka's `validPreviousStates`).
    pub fn valid_previous_states(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether an idle id in this state may expire (`transactional.id.expiration.ms`).
    pub fn is_expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// PrepareCommit or PrepareAbort: markers are being written.
    pub fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// Whether a producer epoch leaves no room for another bump: Kafka keeps `i16::MAX` free so
/// that the coordinator can always fence the current producer.
pub(crate) fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// What the coordinator knows about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    pub(crate) producer_id: i64,
    /// The producer id before the last rotation (KIP-360 retries of an InitProducerId that
    /// exhausted the epoch). Not in a version 0 record: -1 after a reload, as in Kafka.
    pub(crate) previous_producer_id: i64,
    pub(crate) producer_epoch: i16,
    /// The epoch before the last InitProducerId bump, so that a retry of that InitProducerId
    /// (KIP-360) gets the same answer. In memory only, as in Kafka.
    pub(crate) last_producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TxnState,
    /// The partitions of the transaction. In a Prepare state, those whose marker is still to
    /// be written (a written marker removes its partition, as Kafka's `removePartition`).
    pub(crate) partitions: BTreeSet<(String, i32)>,
    pub(crate) start_timestamp_ms: i64,
    pub(crate) last_update_timestamp_ms: i64,
    /// The TransactionLogValue v1 fields strom does not use, kept so that nothing read is lost.
    pub(crate) next_producer_id: i64,
    pub(crate) client_transaction_version: i16,
}

impl TxnMetadata {
    pub(crate) fn from_value(v: &TxnLogValue) -> Self {
        Self {
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.transaction_timeout_ms,
            state: v.state,
            partitions: v.partitions.clone(),
            start_timestamp_ms: v.start_timestamp_ms,
            last_update_timestamp_ms: v.last_update_timestamp_ms,
            next_producer_id: v.next_producer_id,
            client_transaction_version: v.client_transaction_version,
        }
    }

    /// The record of this metadata moved to `state` at `now`, everything else unchanged; the
    /// `prepare_*` helpers of the shard adjust the fields a transition changes.
    pub(crate) fn to_value(&self, state: TxnState, now_ms: i64) -> TxnLogValue {
        TxnLogValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.timeout_ms,
            state,
            partitions: self.partitions.clone(),
            last_update_timestamp_ms: now_ms,
            start_timestamp_ms: self.start_timestamp_ms,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: self.next_producer_id,
            client_transaction_version: self.client_transaction_version,
        }
    }
}
