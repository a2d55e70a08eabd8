//! The transaction coordinator of strom, as a pure state machine over the records of
//! `__transaction_state` (Kafka's `TransactionCoordinator` + `TransactionStateManager`): no
//! I/O, no async, no clock. The broker hosts one [`TransactionCoordinatorShard`] per
//! `__transaction_state` partition it leads, hands it requests with the current time, writes
//! the records it emits, then delivers the responses and carries out the marker requests.
//!
//! ```text
//!   request (now_ms, token)      on_timer(now_ms)      on_markers_written(now_ms, request, results)
//!          │                            │                            │
//!          ▼                            ▼                            ▼
//!   ┌──────────────────────── TransactionCoordinatorShard ─────────────────────────┐
//!   │ transactional ids · epochs · partitions · marker progress · deadlines         │
//!   └───────────┬──────────────────────────────────────────────────────────────────┘
//!               │ TxnOutcome { records, responses, markers }
//!               ▼
//!   append records to __transaction_state[p] ──fails──► answer the tokens with an error,
//!               │ ok                                     rebuild the shard by replay + on_loaded
//!               ▼
//!   send responses; for each MarkerRequest write COMMIT/ABORT control batches
//!   (producer id/epoch, coordinator epoch) to its partitions, then report back
//!   per partition ──► on_markers_written ──► CompleteCommit/CompleteAbort record
//!
//!   failover / start-up: read __transaction_state[p] ──► TxnRecord::decode ──► replay(record)
//!                        ──► on_loaded(now_ms): markers of Prepare* transactions again
//! ```
//!
//! States of a transactional id (Kafka's `TransactionState`; Dead and PrepareEpochFence are
//! never written: expiry writes a tombstone, and fencing writes PrepareAbort with the bumped
//! epoch in the same step):
//!
//! ```text
//!                InitProducerId (epoch + 1, or a new producer id once the epoch is exhausted)
//!                 ┌──────┐
//!                 ▼      │
//!  InitProducerId ┌───────┐      AddPartitionsToTxn / AddOffsetsToTxn       ┌─────────┐ ◄─┐ more
//!  (new id) ────► │ Empty │ ──────────────────────────────────────────────► │ Ongoing │ ──┘ partitions
//!                 └───────┘                                                 └─────────┘
//!                   ▲   │ transactional.id.expiration.ms     EndTxn(commit)  │       │ EndTxn(abort), or
//!                   │   ▼ tombstone (Dead)                                   │       │ PrepareEpochFence: epoch + 1
//!                   │  gone                                                  ▼       ▼ on timeout / new instance
//!                   │                                          ┌───────────────┐ ┌──────────────┐
//!                   │                                          │ PrepareCommit │ │ PrepareAbort │
//!                   │                                          └───────────────┘ └──────────────┘
//!                   │                       all COMMIT markers written │                │ all ABORT markers written
//!                   │ InitProducerId                                   ▼                ▼
//!                   │                                         ┌────────────────┐ ┌───────────────┐
//!                   └──────────────────────────────────────── │ CompleteCommit │ │ CompleteAbort │
//!                                                             └────────────────┘ └───────────────┘
//!   Complete*: AddPartitions starts the next transaction (Ongoing); InitProducerId ──► Empty;
//!              expiration as from Empty.
//!   Prepare*:  everything but a retry of the same EndTxn gets CONCURRENT_TRANSACTIONS.
//! ```
//!
//! Entry points (see [`TransactionCoordinatorShard`]): `init_producer_id`,
//! `add_partitions_to_txn`, `add_offsets_to_txn`, `end_txn`, `verify_partition`,
//! `describe_transaction`, `list_transactions`, `on_markers_written`, `on_timer` /
//! `next_deadline`, `replay` / `on_loaded`; free functions [`init_idempotent_producer`],
//! [`add_partitions_transactions`] / [`add_partitions_response`] and
//! [`transaction_partition_for`].
//!
//! The group side of transactions (TxnOffsetCommit, pending offsets and the end markers in
//! `__consumer_offsets`) lives with the group coordinator, in the `offsets` module.

mod config;
mod records;
mod shard;
mod state;

pub use config::TxnConfig;
pub use records::{TxnLogValue, TxnRecord};
pub use shard::{
    CONSUMER_OFFSETS_TOPIC, MarkerRequest, PartitionVerification, ProducerIdAllocator,
    TransactionCoordinatorShard, TxnOutcome, TxnResponse, TxnResult, add_partitions_response,
    add_partitions_transactions, init_idempotent_producer, transaction_partition_for,
};
pub use state::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TxnState};

#[cfg(test)]
mod tests;
