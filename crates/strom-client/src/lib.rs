//! An async (tokio) Rust client for strom and other Kafka-compatible brokers.
//!
//! - [`Producer`]: `send` records, get their offsets; Kafka's partitioner (murmur2 for keys,
//!   sticky for null keys), per-partition batching (`batch.size`, `linger.ms`), compression,
//!   `acks`, retries with backoff; idempotent by default (exactly once and in order per
//!   partition across retries, up to 5 requests in flight); `buffer.memory` back-pressure
//!   ([`Producer::queue`]); [`ProducerInterceptor`]s; transactions with `transactional.id`
//!   ([`Producer::init_transactions`], `begin_transaction`, `send_offsets_to_transaction`,
//!   `commit_transaction`, `abort_transaction`), fenced and aborted like Java's; callbacks
//!   ([`Producer::send_with_callback`]); typed keys and values through [`Serializer`]s
//!   ([`TypedProducer`]) and [`Deserializer`]s (`ConsumerRecord::deserialize`).
//! - [`Consumer`]: consume assigned partitions from an offset, the start or the end, or
//!   `subscribe` (topics or a pattern) as a member of a consumer group (`group.id`, classic
//!   protocol, assignors range, roundrobin, sticky, cooperative-sticky or your own
//!   [`ConsumerPartitionAssignor`], static membership, a [`ConsumerRebalanceListener`]);
//!   `poll`, `seek`, `seek_to_beginning`/`_end`, `pause`/`resume`, `position`, ListOffsets
//!   helpers; auto-commit, `commit_sync`, `commit_async`, `committed`;
//!   [`ConsumerInterceptor`]s.
//! - [`Admin`]: create, delete, list and describe topics, add partitions, describe and alter
//!   configs, describe the cluster; list, describe and delete consumer groups, read, reset and
//!   delete their committed offsets; list offsets, delete records, describe log directories
//!   and producers.
//!
//! All three take a [`ClientConfig`] with Kafka's property names and defaults, and return
//! [`ClientError`], which says whether an error is retriable.
//!
//! The examples run against an in-process broker (hidden lines start it); with a real
//! cluster, `bootstrap` is its `bootstrap.servers`.
//!
//! ```
//! use std::time::Duration;
//! use strom_client::{
//!     Admin, ClientConfig, Consumer, NewTopic, Offset, Producer, ProducerRecord, TopicPartition,
//! };
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), strom_client::ClientError> {
//! # let broker = strom_test_support::TestBroker::start().await;
//! # let bootstrap = broker.bootstrap_servers();
//! let config = ClientConfig::new(bootstrap);
//!
//! let admin = Admin::connect(config.clone()).await?;
//! for created in admin
//!     .create_topics(&[NewTopic::new("events").with_partitions(3)], Default::default())
//!     .await?
//! {
//!     created.result?;
//! }
//!
//! let producer = Producer::connect(config.clone()).await?;
//! let delivery = producer.send(ProducerRecord::new("events", "hello").with_key("user-1"));
//! let metadata = delivery.await?;
//! assert_eq!((metadata.topic.as_str(), metadata.offset), ("events", 0));
//! producer.close().await?;
//!
//! let mut consumer = Consumer::connect(config).await?;
//! consumer.assign([(TopicPartition::new("events", metadata.partition), Offset::Earliest)]);
//! let records = consumer.poll(Duration::from_secs(5)).await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! A consumer group member: `subscribe`, `poll`, commit what was processed.
//!
//! ```
//! use std::time::Duration;
//! use strom_client::{AutoOffsetReset, ClientConfig, Consumer, Producer, ProducerRecord};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), strom_client::ClientError> {
//! # let broker = strom_test_support::TestBroker::start().await;
//! # let bootstrap = broker.bootstrap_servers();
//! let producer = Producer::connect(ClientConfig::new(bootstrap)).await?;
//! for i in 0..10 {
//!     // The futures need not be awaited one by one: `flush` waits for all of them.
//!     drop(producer.send(ProducerRecord::new("orders", format!("order-{i}"))));
//! }
//! producer.flush().await?;
//!
//! let config = ClientConfig::new(bootstrap)
//!     .with_group_id("billing")
//!     .with_auto_offset_reset(AutoOffsetReset::Earliest)
//!     .with_enable_auto_commit(false);
//! let mut consumer = Consumer::connect(config).await?;
//! consumer.subscribe(["orders"])?;
//! let mut seen = 0;
//! while seen < 10 {
//!     seen += consumer.poll(Duration::from_secs(1)).await?.len();
//! }
//! consumer.commit_sync().await?;
//! consumer.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Known limitations: two record headers with the same key collapse into one (the last
//! value wins) when producing and when consuming (consumed records go through
//! `kafka-protocol`'s `IndexMap`). The transactional producer speaks transactions v1 (no
//! KIP-890 part 2) and does not abort a transaction left open when every handle is dropped
//! without `close` (the coordinator aborts it after `transaction.timeout.ms`).

pub mod admin;
mod cluster;
pub mod config;
mod connection;
pub mod consumer;
mod error;
pub mod group_protocol;
pub mod interceptor;
mod offsets;
pub mod producer;
mod producer_typed;
mod record;
pub mod serialization;

pub use admin::{
    AbortTransactionSpec, Admin, AlterConfigOp, AlterConfigOpType, AlterConfigResult,
    AlterConfigsOptions, ClusterDescription, ConfigEntry, ConfigResource, ConfigResourceType,
    ConfigResult, ConfigSource, ConfigSynonym, CreateTopicsOptions, CreatedTopic,
    DescribeConfigsOptions, GroupDescription, GroupListing, GroupResult, GroupState, GroupType,
    ListOffsetsResultInfo, ListTransactionsOptions, LogDirDescription, MemberAssignment,
    MemberDescription, MemberSubscription, NewTopic, OffsetAndMetadata, OffsetSpec,
    PartitionResult, ProducerState, ReplicaInfo, TopicListing, TopicResult, TransactionDescription,
    TransactionListing,
};
pub use cluster::{Node, PartitionDescription, TopicDescription};
pub use config::{
    Acks, AutoOffsetReset, ClientConfig, CompressionType, GroupProtocol, IsolationLevel,
};
pub use consumer::assignor::{
    ConsumerPartitionAssignor, GroupMember, RangeAssignor, RebalanceProtocol, RoundRobinAssignor,
};
pub use consumer::listener::ConsumerRebalanceListener;
pub use consumer::sticky::{CooperativeStickyAssignor, StickyAssignor};
pub use consumer::{CommitCallback, Consumer, Offset};
pub use error::{ClientError, Result, error_code_description, error_code_name};
pub use group_protocol::{ConsumerAssignment, ConsumerSubscription};
pub use interceptor::{ConsumerInterceptor, ProducerInterceptor};
pub use offsets::OffsetAndTimestamp;
pub use producer::partitioner::{Partitioner, RoundRobinPartitioner};
pub use producer::{ConsumerGroupMetadata, DeliveryFuture, Producer};
pub use producer_typed::{TypedProducer, TypedRecord};
pub use record::{
    ConsumerRecord, Header, ProducerRecord, RecordMetadata, TimestampType, TopicPartition,
};
pub use serialization::{Deserializer, Serializer, TypedConsumerRecord};
pub use strom_protocol::ErrorCode;
