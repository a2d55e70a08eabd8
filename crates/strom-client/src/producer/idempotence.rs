//! The idempotent producer's bookkeeping (the non-transactional part of Java's
//! `TransactionManager`): the producer id and epoch, and per partition the next sequence
//! number, the last acknowledged one, and whether the partition must start over.
//!
//! ```text
//!   start ── InitProducerId (retried on COORDINATOR_NOT_AVAILABLE etc.) ──► (id, epoch)
//!   drain a new batch     ── base sequence = next; next += records
//!   retry a batch         ── same id, epoch and sequence, so the broker answers a duplicate
//!                            with the original offsets instead of writing it twice;
//!                            only with nothing else of its partition in flight
//!   OUT_OF_ORDER_SEQUENCE ── an earlier batch is still unresolved: retry as is
//!                         ── the batch *is* the next one (a real gap): reset the partition
//!   UNKNOWN_PRODUCER_ID   ── reset the partition
//!   a sequenced batch fails for good (timeout, fatal error) ── reset the partition: the
//!                            broker would refuse every later sequence as a gap
//!   reset                 ── InitProducerId again with the current id and epoch (KIP-360);
//!                            once the partition has nothing in flight, its queued batches
//!                            are renumbered from 0 under the new id/epoch
//! ```
//!
//! A transactional producer gets its id and epoch from `init_transactions` instead (see
//! [`super::transaction`]); it never re-initialises on its own: a partition that needs a reset
//! fails the transaction, and the epoch is bumped when that transaction is aborted.
//!
//! A partition whose sequences belong to an older id/epoch (another partition asked for the
//! new one) keeps retrying its already-numbered batches under the old id, which the broker
//! still knows, and moves to the new id when it has nothing numbered left.

use std::collections::HashMap;
use std::time::Duration;

use strom_protocol::messages::{InitProducerIdRequest, ProducerId, TransactionalId};
use strom_protocol::{ErrorCode, StrBytes};
use tokio::time::Instant;

use super::accumulator::Batch;
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// A producer id and epoch, as InitProducerId returns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIdAndEpoch {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

/// The idempotence fields a drained batch carries for all its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSequence {
    pub(crate) producer: ProducerIdAndEpoch,
    pub(crate) base: i32,
    /// Written by a transactional producer: the batch header's transactional bit.
    pub(crate) transactional: bool,
}

/// What to do with a batch that came back with an idempotence error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it again (within `retries` and `delivery.timeout.ms`) even though the error
    /// code is not retriable by itself.
    Retry,
    /// Not an idempotence matter: the usual retriable/fatal rules apply.
    Usual,
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub(crate) fn increment_sequence(sequence: i32, by: i32) -> i32 {
    if sequence > i32::MAX - by {
        by - (i32::MAX - sequence) - 1
    } else {
        sequence + by
    }
}

#[derive(Debug)]
struct PartitionSequence {
    producer: ProducerIdAndEpoch,
    next: i32,
    last_acked: Option<i32>,
    /// The broker's view of our sequences is broken (a gap, an unknown producer id): send
    /// nothing until a new id/epoch arrives and the partition has nothing in flight.
    reset_needed: bool,
}

impl PartitionSequence {
    fn new(producer: ProducerIdAndEpoch) -> Self {
        Self {
            producer,
            next: 0,
            last_acked: None,
            reset_needed: false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Idempotence {
    current: Option<ProducerIdAndEpoch>,
    init_wanted: bool,
    init_in_flight: bool,
    init_failures: u32,
    init_not_before: Instant,
    /// The last re-init with our current id/epoch was refused: ask for a fresh id instead.
    init_fresh: bool,
    fatal: Option<ClientError>,
    partitions: HashMap<TopicPartition, PartitionSequence>,
    /// The id and epoch come from `init_transactions`, never from this module's own
    /// InitProducerId.
    transactional: bool,
}

impl Idempotence {
    pub(crate) fn new(transactional: bool) -> Self {
        Self {
            transactional,
            current: None,
            init_wanted: !transactional,
            init_in_flight: false,
            init_failures: 0,
            init_not_before: Instant::now(),
            init_fresh: false,
            fatal: None,
            partitions: HashMap::new(),
        }
    }

    pub(crate) fn fatal(&self) -> Option<&ClientError> {
        self.fatal.as_ref()
    }

    /// When an InitProducerId should be sent (`None`: not wanted or already in flight).
    pub(crate) fn init_due(&self) -> Option<Instant> {
        (self.init_wanted && !self.init_in_flight && self.fatal.is_none() && !self.transactional)
            .then_some(self.init_not_before)
    }

    /// A transactional producer got a new id or epoch (`init_transactions`, or the epoch bump
    /// after an abort): every partition's sequences start again from 0.
    pub(crate) fn set_producer(&mut self, producer: ProducerIdAndEpoch) {
        tracing::debug!(
            id = producer.id,
            epoch = producer.epoch,
            "transactional producer id"
        );
        self.current = Some(producer);
        self.init_wanted = false;
        self.partitions.clear();
    }

    /// A transactional producer's sequences need a new epoch (Java's `epochBumpRequired`).
    pub(crate) fn reset_wanted(&self) -> bool {
        self.transactional && self.init_wanted
    }

    /// Marks an InitProducerId as sent; returns the id/epoch to send along (KIP-360), if any.
    pub(crate) fn init_started(&mut self) -> Option<ProducerIdAndEpoch> {
        self.init_wanted = false;
        self.init_in_flight = true;
        if self.init_fresh { None } else { self.current }
    }

    /// The answer to an InitProducerId; `backoff` is the wait before retrying a retriable
    /// failure.
    pub(crate) fn init_finished(
        &mut self,
        result: Result<ProducerIdAndEpoch, ClientError>,
        backoff: impl FnOnce(u32) -> Duration,
    ) {
        self.init_in_flight = false;
        match result {
            Ok(producer) => {
                tracing::debug!(id = producer.id, epoch = producer.epoch, "producer id");
                self.current = Some(producer);
                self.init_failures = 0;
                self.init_fresh = false;
            }
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "InitProducerId failed, will retry");
                self.init_wanted = true;
                self.init_not_before = Instant::now() + backoff(self.init_failures);
                self.init_failures += 1;
            }
            Err(e) if self.current.is_some() && !self.init_fresh => {
                tracing::debug!(error = %e, "re-initialising with the current producer id refused; asking for a new id");
                self.init_wanted = true;
                self.init_fresh = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot get a producer id");
                self.fatal = Some(ClientError::Fatal(Box::new(e)));
            }
        }
    }

    fn request_reset(&mut self, tp: &TopicPartition) {
        let current = self.current;
        if let Some(p) = self.partitions.get_mut(tp)
            && !p.reset_needed
        {
            p.reset_needed = true;
            // A partition still on an older id moves to the current one anyway; only the
            // current id needs replacing.
            if Some(p.producer) == current {
                tracing::debug!(%tp, "sequence reset needed: asking for a new producer epoch");
                self.init_wanted = true;
            }
        }
    }

    /// Whether `tp`'s front batch may be drained now, given how many of its batches are in
    /// flight. Read-only: [`Idempotence::prepare`] does what this promises.
    pub(crate) fn may_drain(&self, tp: &TopicPartition, front: &Batch, in_flight: usize) -> bool {
        let Some(current) = self.current else {
            return false;
        };
        match self.partitions.get(tp) {
            None => true,
            Some(p) if p.reset_needed => in_flight == 0 && p.producer != current,
            // A retry: one at a time, so that a failure cannot overtake an earlier batch.
            Some(_) if front.sequence.is_some() => in_flight == 0,
            Some(p) if p.producer != current => in_flight == 0,
            // Until the broker has acknowledged one batch it does not know this producer and
            // would take any sequence as the first: never let a second batch overtake it.
            Some(p) if p.last_acked.is_none() => in_flight == 0,
            Some(_) => true,
        }
    }

    /// Before draining `tp`: moves the partition to the current id/epoch when it is due.
    /// Returns true when the queued batches' sequences must be forgotten (renumbered).
    pub(crate) fn prepare(&mut self, tp: &TopicPartition, front: &Batch) -> bool {
        let Some(current) = self.current else {
            return false;
        };
        let p = self
            .partitions
            .entry(tp.clone())
            .or_insert_with(|| PartitionSequence::new(current));
        if p.reset_needed || (p.producer != current && front.sequence.is_none()) {
            let renumber = p.reset_needed;
            *p = PartitionSequence::new(current);
            return renumber;
        }
        false
    }

    /// Numbers a batch on its first drain; a retried batch keeps its sequence.
    pub(crate) fn assign(&mut self, batch: &mut Batch) {
        if batch.sequence.is_some() {
            return;
        }
        let Some(p) = self.partitions.get_mut(&batch.tp) else {
            return;
        };
        batch.sequence = Some(BatchSequence {
            producer: p.producer,
            base: p.next,
            transactional: self.transactional,
        });
        p.next = increment_sequence(p.next, record_count(batch));
    }

    pub(crate) fn acknowledged(&mut self, batch: &Batch) {
        let Some(seq) = batch.sequence else { return };
        if let Some(p) = self.partitions.get_mut(&batch.tp)
            && p.producer == seq.producer
        {
            p.last_acked = Some(increment_sequence(seq.base, record_count(batch) - 1));
        }
    }

    /// Java's `TransactionManager.canRetry` for the idempotent producer.
    pub(crate) fn on_error(&mut self, batch: &Batch, code: Option<ErrorCode>) -> Verdict {
        let Some(seq) = batch.sequence else {
            return Verdict::Usual;
        };
        let Some(p) = self.partitions.get(&batch.tp) else {
            return Verdict::Usual;
        };
        let ours = p.producer == seq.producer && !p.reset_needed;
        match code {
            Some(ErrorCode::OutOfOrderSequenceNumber) => {
                let expected = p.last_acked.map_or(0, |l| increment_sequence(l, 1));
                // Distance from this batch to the next expected sequence, modulo 2^31.
                let behind = (i64::from(expected) - i64::from(seq.base)).rem_euclid(1 << 31);
                if ours && (seq.base == expected || behind < (1 << 30)) {
                    // The broker lacks what came before although we have no earlier batch
                    // outstanding (a real gap, lost data), or it has later sequences than
                    // this batch: it can never be written as it is, so start over.
                    self.request_reset(&batch.tp);
                }
                Verdict::Retry
            }
            Some(ErrorCode::UnknownProducerId) => {
                if ours {
                    self.request_reset(&batch.tp);
                }
                Verdict::Retry
            }
            _ => Verdict::Usual,
        }
    }

    /// A numbered batch failed for good: the broker will see a gap after it.
    pub(crate) fn failed(&mut self, batch: &Batch) {
        let Some(seq) = batch.sequence else { return };
        if self
            .partitions
            .get(&batch.tp)
            .is_some_and(|p| p.producer == seq.producer)
        {
            self.request_reset(&batch.tp);
        }
    }
}

fn record_count(batch: &Batch) -> i32 {
    i32::try_from(batch.len()).unwrap_or(i32::MAX)
}

/// One InitProducerId round trip on `conn`: for a transactional id (at its coordinator) or
/// for a plain idempotent producer (any broker; Java then sends a timeout of `i32::MAX`). With
/// `current` the producer asks to keep its id with a new epoch (KIP-360, v3+).
pub(crate) async fn init_producer_id(
    conn: &Connection,
    transactional_id: Option<&str>,
    transaction_timeout: Duration,
    current: Option<ProducerIdAndEpoch>,
    request_timeout: Duration,
) -> Result<ProducerIdAndEpoch> {
    let version = conn.version::<InitProducerIdRequest>(None)?;
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(
            transactional_id.map(|id| TransactionalId(StrBytes::from_string(id.to_string()))),
        )
        .with_transaction_timeout_ms(
            i32::try_from(transaction_timeout.as_millis()).unwrap_or(i32::MAX),
        );
    if version >= 3 {
        let (id, epoch) = current.map_or((-1, -1), |c| (c.id, c.epoch));
        request = request
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
    }
    let response = conn.call_at(&request, version, request_timeout).await?;
    ClientError::check(response.error_code, None)?;
    if response.producer_id.0 < 0 {
        return Err(ClientError::Protocol(
            "InitProducerId answered without a producer id".into(),
        ));
    }
    Ok(ProducerIdAndEpoch {
        id: response.producer_id.0,
        epoch: response.producer_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_like_kafka() {
        assert_eq!(increment_sequence(0, 5), 5);
        assert_eq!(increment_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 2, 5), 2);
    }
}
