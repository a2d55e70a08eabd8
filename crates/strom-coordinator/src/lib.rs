//! The group and transaction coordinators of strom. The transaction coordinator
//! ([`TransactionCoordinatorShard`], over `__transaction_state`) is described in the [`txn`]
//! module; the group side of transactions (TxnOffsetCommit, pending offsets settled by the
//! COMMIT/ABORT markers written to `__consumer_offsets`) is part of the group coordinator.
//!
//! The group coordinator of strom, as a pure state machine over the records of
//! `__consumer_offsets` (Kafka's `GroupCoordinatorShard`): no I/O, no async, no clock. The
//! broker hosts one [`GroupCoordinatorShard`] per `__consumer_offsets` partition it leads,
//! hands it requests with the current time, writes the records it emits, and delivers the
//! responses once the write succeeded.
//!
//! ```text
//!   request (now_ms, token)                       on_timer(now_ms)
//!          │                                             │
//!          ▼                                             ▼
//!   ┌───────────────────── GroupCoordinatorShard ─────────────────────┐
//!   │ classic groups · KIP-848 groups · offsets · deadlines            │
//!   └──────────────┬──────────────────────────────────────────────────┘
//!                  │ Outcome { records, responses (maybe for earlier tokens) }
//!                  ▼
//!   broker appends records to __consumer_offsets[p] ──fails──► answer tokens with an error,
//!                  │ ok                                         reload the shard by replay
//!                  ▼
//!   broker sends the responses
//!
//!   failover / start-up:  read __consumer_offsets[p] from the start
//!                         ──► CoordinatorRecord::decode ──► shard.replay(record) ...
//!                         ──► shard.on_loaded(now_ms) (sessions and expiration restart)
//! ```
//!
//! Offsets and KIP-848 groups change only through their records (applied with `replay` as they
//! are emitted), so a reloaded shard is the live one. Classic groups, like in Kafka, persist one
//! snapshot per generation; an interrupted rebalance is not persisted and its members rejoin.
//!
//! The classic group state machine (Kafka's `ClassicGroupState`):
//!
//! ```text
//!            JoinGroup (first member)            every known member rejoined
//!   ┌───────┐ ───────────────────► ┌────────────────────┐ ─────────────────► ┌─────────────────────┐
//!   │ Empty │                      │ PreparingRebalance │  or rebalance      │ CompletingRebalance │
//!   └───────┘ ◄─────────────────── └────────────────────┘  timeout (others  └─────────────────────┘
//!      ▲  ▲    all members gone         ▲      ▲              removed)              │  │
//!      │  │    (join completes empty)   │      │ join / leave / session expiry      │  │ leader's
//!      │  │                             │      └────────────────────────────────────┘  │ SyncGroup
//!      │  │                             │ join with new metadata, leader rejoin,        ▼
//!      │  │                             │ leave, session expiry              ┌────────┐
//!      │  │                             └────────────────────────────────────│ Stable │
//!      │  └──────────────────────────────────────────────────────────────────└────────┘
//!      │     (replay of an empty GroupMetadataValue)
//!   DeleteGroups / expiration: Empty ──► Dead (the group is removed)
//! ```
//!
//! Entry points (see [`GroupCoordinatorShard`]): `join_group`, `sync_group`, `heartbeat`,
//! `leave_group`, `offset_commit`, `txn_offset_commit`, `offset_fetch`, `offset_delete`,
//! `delete_groups`, `list_groups`, `describe_group`, `consumer_group_heartbeat`,
//! `consumer_group_describe`,
//! `on_topics_changed`, `on_timer` / `next_deadline`, `replay` / `replay_transactional` /
//! `replay_end_transaction` / `on_loaded`.

pub mod assignor;
mod classic;
pub mod config;
mod consumer;
mod error;
mod offsets;
mod partition;
pub mod records;
mod shard;
mod timer;
mod topics;
pub mod txn;

pub use classic::ClassicState;
pub use config::{ConfigError, GroupConfig};
pub use consumer::{ConsumerGroupState, LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH};
pub use error::CodecError;
pub use offsets::{offset_fetch_groups, offset_fetch_response};
pub use partition::{java_string_hash, partition_for};
pub use records::{CoordinatorRecord, RecordKey, RecordValue};
pub use shard::{
    ClientInfo, GroupCoordinatorShard, GroupType, Outcome, RequestToken, ShardResponse,
    TransactionalWrite,
};
pub use topics::{TopicInfo, TopicsView};
pub use txn::{
    MarkerRequest, PartitionVerification, ProducerIdAllocator, TransactionCoordinatorShard,
    TxnConfig, TxnOutcome, TxnRecord, TxnResponse, TxnResult, TxnState,
};
