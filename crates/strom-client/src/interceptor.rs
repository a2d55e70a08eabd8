//! Interceptors: user hooks that see every record on its way through the producer or the
//! consumer, as Kafka's `ProducerInterceptor` and `ConsumerInterceptor` (registered there with
//! `interceptor.classes`, here with `Producer::connect_with_interceptors` and
//! `Consumer::connect_with_interceptors`).
//!
//! Several interceptors run in registration order, each getting what the previous returned.
//! Hooks run on the client's own tasks (`on_acknowledgement` on the producer's sender task),
//! so they must be quick: a slow hook delays every other record, as in Java, where they run on
//! the I/O thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::admin::OffsetAndMetadata;
use crate::error::ClientError;
use crate::record::{ConsumerRecord, ProducerRecord, RecordMetadata, TopicPartition};

/// Sees each record before it is partitioned, and its outcome.
pub trait ProducerInterceptor: Send + Sync {
    /// Called by `send` before anything else; may return a changed record (Java's `onSend`).
    fn on_send(&self, record: ProducerRecord) -> ProducerRecord {
        record
    }

    /// Called once per record when it is acknowledged or has failed for good, before its
    /// future completes. On failure `metadata` has offset -1 (and partition -1 when the
    /// record never got one), as Java passes it.
    fn on_acknowledgement(&self, metadata: &RecordMetadata, error: Option<&ClientError>) {
        let _ = (metadata, error);
    }
}

/// Sees the records `poll` returns and the offsets a commit writes.
pub trait ConsumerInterceptor: Send + Sync {
    /// Called by `poll` with the records it is about to return; may filter or change them
    /// (Java's `onConsume`).
    fn on_consume(&self, records: Vec<ConsumerRecord>) -> Vec<ConsumerRecord> {
        records
    }

    /// Called after offsets were committed (Java's `onCommit`): by `commit_sync`,
    /// `commit_async` and auto-commits, once the coordinator accepted them.
    fn on_commit(&self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) {
        let _ = offsets;
    }
}

/// The producer's registered interceptors.
#[derive(Clone, Default)]
pub(crate) struct ProducerInterceptors(Arc<[Arc<dyn ProducerInterceptor>]>);

impl std::fmt::Debug for ProducerInterceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} producer interceptor(s)", self.0.len())
    }
}

impl ProducerInterceptors {
    pub(crate) fn new(list: Vec<Arc<dyn ProducerInterceptor>>) -> Self {
        Self(list.into())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn on_send(&self, mut record: ProducerRecord) -> ProducerRecord {
        for i in self.0.iter() {
            record = i.on_send(record);
        }
        record
    }

    pub(crate) fn on_acknowledgement(
        &self,
        metadata: &RecordMetadata,
        error: Option<&ClientError>,
    ) {
        for i in self.0.iter() {
            i.on_acknowledgement(metadata, error);
        }
    }
}

/// The consumer's registered interceptors.
#[derive(Clone, Default)]
pub(crate) struct ConsumerInterceptors(Arc<[Arc<dyn ConsumerInterceptor>]>);

impl std::fmt::Debug for ConsumerInterceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} consumer interceptor(s)", self.0.len())
    }
}

impl ConsumerInterceptors {
    pub(crate) fn new(list: Vec<Arc<dyn ConsumerInterceptor>>) -> Self {
        Self(list.into())
    }

    pub(crate) fn on_consume(&self, mut records: Vec<ConsumerRecord>) -> Vec<ConsumerRecord> {
        for i in self.0.iter() {
            records = i.on_consume(records);
        }
        records
    }

    pub(crate) fn on_commit(&self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) {
        for i in self.0.iter() {
            i.on_commit(offsets);
        }
    }
}
