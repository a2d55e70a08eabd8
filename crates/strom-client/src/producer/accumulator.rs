//! Per-partition queues of record batches waiting to be sent.
//!
//! Records are appended to the open (last) batch of their partition until it would exceed
//! `batch.size`; a batch becomes sendable when it is full, when another batch queues behind
//! it, when it has waited `linger.ms`, or at once while the producer is flushing or closing.
//!
//! Up to `max.in.flight.requests.per.connection` batches of a partition may be in flight.
//! A batch that comes back for a retry is put back among the front batches in send order
//! and goes out alone (nothing else of its partition in flight), as Java's
//! `RecordAccumulator` does for the idempotent producer: with sequence numbers the broker
//! then writes the partition's records exactly once and in order. Without idempotence a
//! retried batch can land after batches that were in flight behind it, as in Java.
//! `buffer.memory` is accounted by the producer (see `Producer::send`), not here.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::idempotence::BatchSequence;
use crate::error::Result;
use crate::record::{Header, RecordMetadata, TopicPartition};

/// Size of a v2 batch header, counted once per batch against `batch.size`.
pub(crate) const BATCH_OVERHEAD: usize = 61;

/// A record accepted by `send`, until its future is completed.
#[derive(Debug)]
pub(crate) struct PendingRecord {
    /// Send order, used by `flush` to wait for exactly the records sent before it.
    pub(crate) seq: u64,
    pub(crate) topic: String,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<Header>,
    pub(crate) timestamp: i64,
    /// Upper bound of the encoded record's size (Kafka's `estimateSizeInBytesUpperBound`
    /// without the batch header).
    pub(crate) size: usize,
    pub(crate) done: oneshot::Sender<Result<RecordMetadata>>,
}

impl PendingRecord {
    pub(crate) fn complete(self, result: Result<RecordMetadata>) {
        // The caller may have dropped its future; that is its right.
        let _ = self.done.send(result);
    }

    /// True when nobody awaits the outcome any more (the future was dropped).
    pub(crate) fn abandoned(&self) -> bool {
        self.done.is_closed()
    }
}

/// Upper bound of a record's encoded size in a v2 batch (varints at their widest).
pub(crate) fn estimate_record_size(
    key: Option<&Bytes>,
    value: Option<&Bytes>,
    headers: &[Header],
) -> usize {
    // length varint (5) + attributes (1) + timestamp delta (10) + offset delta (5)
    // + key length (5) + value length (5) + header count (5)
    let mut size = 36 + key.map_or(0, Bytes::len) + value.map_or(0, Bytes::len);
    for h in headers {
        size += 10 + h.key.len() + h.value.as_ref().map_or(0, Bytes::len);
    }
    size
}

#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) tp: TopicPartition,
    pub(crate) records: Vec<PendingRecord>,
    /// Estimated bytes, batch header included.
    pub(crate) size: usize,
    pub(crate) created: Instant,
    /// Times this batch was sent and failed retriably.
    pub(crate) attempts: u32,
    pub(crate) retry_at: Option<Instant>,
    /// No more records may join: it was sent once (a retry must resend the same records) or
    /// it is full.
    pub(crate) sealed: bool,
    /// It was drained at least once: when it comes back it is a retry, sent alone.
    pub(crate) drained: bool,
    /// Producer id, epoch and base sequence, fixed at the first drain (idempotence).
    pub(crate) sequence: Option<BatchSequence>,
}

impl Batch {
    fn new(tp: TopicPartition, now: Instant, capacity: usize) -> Self {
        Self {
            tp,
            records: Vec::with_capacity(capacity),
            size: BATCH_OVERHEAD,
            created: now,
            attempts: 0,
            retry_at: None,
            sealed: false,
            drained: false,
            sequence: None,
        }
    }

    /// Send order of the batch's first record: retried batches are kept in this order.
    fn first_seq(&self) -> u64 {
        self.records.first().map_or(u64::MAX, |r| r.seq)
    }

    /// Splits a multi-record batch into one batch per record (after MESSAGE_TOO_LARGE),
    /// keeping their order and retry state. A numbered batch's pieces take its sequences
    /// one each, so the batches behind it keep theirs (Java's `splitAndReenqueue`).
    pub(crate) fn split(self) -> Vec<Batch> {
        let Batch {
            tp,
            records,
            created,
            attempts,
            drained,
            sequence,
            ..
        } = self;
        records
            .into_iter()
            .enumerate()
            .map(|(i, record)| Batch {
                tp: tp.clone(),
                size: BATCH_OVERHEAD + record.size,
                records: vec![record],
                created,
                attempts,
                retry_at: None,
                sealed: true,
                drained,
                sequence: sequence.map(|s| BatchSequence {
                    base: super::idempotence::increment_sequence(
                        s.base,
                        i32::try_from(i).unwrap_or(i32::MAX),
                    ),
                    ..s
                }),
            })
            .collect()
    }
}

#[derive(Debug, Default)]
pub(crate) struct PartitionQueue {
    batches: VecDeque<Batch>,
    in_flight: usize,
}

#[derive(Debug)]
pub(crate) struct Accumulator {
    batch_size: usize,
    linger: Duration,
    /// Batches of one partition in flight at most (`max.in.flight.requests.per.connection`).
    max_in_flight: usize,
    partitions: BTreeMap<TopicPartition, PartitionQueue>,
}

/// Decides whether a partition's front batch may go now, beyond the accumulator's own rules
/// (the idempotent producer's sequence state): `(partition, front batch, batches in flight)`.
pub(crate) trait DrainGate: Fn(&TopicPartition, &Batch, usize) -> bool {}
impl<F: Fn(&TopicPartition, &Batch, usize) -> bool> DrainGate for F {}

impl Accumulator {
    pub(crate) fn new(batch_size: usize, linger: Duration, max_in_flight: usize) -> Self {
        Self {
            batch_size,
            linger,
            max_in_flight: max_in_flight.max(1),
            partitions: BTreeMap::new(),
        }
    }

    /// True when a record of `size` bytes would join an existing open batch of `tp`.
    pub(crate) fn fits_open_batch(&self, tp: &TopicPartition, size: usize) -> bool {
        self.partitions
            .get(tp)
            .and_then(|q| q.batches.back())
            .is_some_and(|b| !b.sealed && b.size + size <= self.batch_size.max(BATCH_OVERHEAD))
    }

    /// Appends a record to `tp`'s open batch, or to a new batch (created at `now()`) if it
    /// does not fit. `tp` is cloned only for a partition not queued yet.
    pub(crate) fn append(
        &mut self,
        tp: &TopicPartition,
        record: PendingRecord,
        now: impl FnOnce() -> Instant,
    ) {
        let batch_size = self.batch_size;
        let limit = batch_size.max(BATCH_OVERHEAD);
        if !self.partitions.contains_key(tp) {
            self.partitions
                .insert(tp.clone(), PartitionQueue::default());
        }
        let Some(queue) = self.partitions.get_mut(tp) else {
            return;
        };
        let fits = queue
            .batches
            .back()
            .is_some_and(|b| !b.sealed && b.size + record.size <= limit);
        if !fits {
            if let Some(last) = queue.batches.back_mut() {
                last.sealed = true;
            }
            // Room for as many records like this one as fit, within reason: growing the
            // vector record by record showed up as copying in profiles.
            let expected = (limit / record.size.max(1)).min(4096);
            queue
                .batches
                .push_back(Batch::new(tp.clone(), now(), expected));
        }
        if let Some(batch) = queue.batches.back_mut() {
            batch.size += record.size;
            batch.records.push(record);
            if batch.size >= batch_size {
                batch.sealed = true;
            }
        }
    }

    /// When the front batch of `queue` may be sent (`None`: not now, nothing to send, too
    /// many in flight, or a retry waiting for the partition's other batches to return).
    fn send_time(
        &self,
        tp: &TopicPartition,
        queue: &PartitionQueue,
        force: bool,
        gate: &impl DrainGate,
    ) -> Option<Instant> {
        let front = queue.batches.front()?;
        let limit = if front.drained { 1 } else { self.max_in_flight };
        if queue.in_flight >= limit || !gate(tp, front, queue.in_flight) {
            return None;
        }
        let lingered = if force || front.sealed || queue.batches.len() > 1 {
            front.created
        } else {
            front.created + self.linger
        };
        Some(match front.retry_at {
            Some(retry) => retry.max(lingered),
            None => lingered,
        })
    }

    /// Partitions whose front batch may be sent now.
    pub(crate) fn ready(
        &self,
        now: Instant,
        force: bool,
        gate: &impl DrainGate,
    ) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(tp, q)| self.send_time(tp, q, force, gate).is_some_and(|t| t <= now))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The earliest time some batch becomes sendable.
    pub(crate) fn next_ready_time(&self, force: bool, gate: &impl DrainGate) -> Option<Instant> {
        self.partitions
            .iter()
            .filter_map(|(tp, q)| self.send_time(tp, q, force, gate))
            .min()
    }

    /// The partition's front batch, if any.
    pub(crate) fn front(&self, tp: &TopicPartition) -> Option<&Batch> {
        self.partitions.get(tp)?.batches.front()
    }

    /// Forgets the sequences of `tp`'s queued batches, to be numbered again when drained.
    pub(crate) fn clear_sequences(&mut self, tp: &TopicPartition) {
        if let Some(queue) = self.partitions.get_mut(tp) {
            for batch in &mut queue.batches {
                batch.sequence = None;
            }
        }
    }

    /// Removes every queued (not in-flight) batch.
    pub(crate) fn take_all_queued(&mut self) -> Vec<Batch> {
        let mut out = Vec::new();
        for queue in self.partitions.values_mut() {
            out.extend(queue.batches.drain(..));
        }
        self.partitions.retain(|_, q| q.in_flight > 0);
        out
    }

    /// Keeps `tp`'s front batch from being sent before `until` (no leader known yet).
    pub(crate) fn delay_front(&mut self, tp: &TopicPartition, until: Instant) {
        if let Some(batch) = self
            .partitions
            .get_mut(tp)
            .and_then(|q| q.batches.front_mut())
        {
            batch.retry_at = Some(batch.retry_at.map_or(until, |t| t.max(until)));
        }
    }

    /// Estimated size of `tp`'s front batch.
    pub(crate) fn front_size(&self, tp: &TopicPartition) -> Option<usize> {
        self.partitions.get(tp)?.batches.front().map(|b| b.size)
    }

    /// Takes `tp`'s front batch for sending; it counts as in flight until
    /// [`Accumulator::finished`] or [`Accumulator::requeue`].
    pub(crate) fn take_front(&mut self, tp: &TopicPartition) -> Option<Batch> {
        let queue = self.partitions.get_mut(tp)?;
        let mut batch = queue.batches.pop_front()?;
        batch.sealed = true;
        batch.drained = true;
        queue.in_flight += 1;
        Some(batch)
    }

    /// One in-flight batch of `tp` is done (acknowledged or failed for good).
    pub(crate) fn finished(&mut self, tp: &TopicPartition) {
        if let Some(queue) = self.partitions.get_mut(tp) {
            queue.in_flight = queue.in_flight.saturating_sub(1);
            if queue.batches.is_empty() && queue.in_flight == 0 {
                self.partitions.remove(tp);
            }
        }
    }

    /// An in-flight batch of `tp` came back for a retry (as one batch, or split into
    /// several): they go back among the drained batches at the front, in send order.
    pub(crate) fn requeue(&mut self, tp: &TopicPartition, batches: Vec<Batch>) {
        let queue = self.partitions.entry(tp.clone()).or_default();
        queue.in_flight = queue.in_flight.saturating_sub(1);
        for batch in batches.into_iter().rev() {
            let at = queue
                .batches
                .iter()
                .position(|b| !b.drained || b.first_seq() > batch.first_seq())
                .unwrap_or(queue.batches.len());
            queue.batches.insert(at, batch);
        }
    }

    /// Removes queued (not in-flight) batches created before `deadline`.
    pub(crate) fn expire(&mut self, created_before: Instant) -> Vec<Batch> {
        let mut expired = Vec::new();
        for queue in self.partitions.values_mut() {
            while queue
                .batches
                .front()
                .is_some_and(|b| b.created < created_before)
            {
                if let Some(batch) = queue.batches.pop_front() {
                    expired.push(batch);
                }
            }
        }
        self.partitions
            .retain(|_, q| q.in_flight > 0 || !q.batches.is_empty());
        expired
    }

    /// The creation time of the oldest queued batch.
    pub(crate) fn oldest_batch(&self) -> Option<Instant> {
        self.partitions
            .values()
            .filter_map(|q| q.batches.front().map(|b| b.created))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(_: &TopicPartition, _: &Batch, _: usize) -> bool {
        true
    }

    fn record(seq: u64, size: usize) -> PendingRecord {
        let (done, _) = oneshot::channel();
        PendingRecord {
            seq,
            topic: "t".into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: 0,
            size,
            done,
        }
    }

    #[tokio::test]
    async fn batches_fill_up_to_batch_size_and_linger() {
        let tp = TopicPartition::new("t", 0);
        let mut acc = Accumulator::new(1000, Duration::from_millis(50), 1);
        let t0 = Instant::now();
        acc.append(&tp, record(0, 400), || t0);
        acc.append(&tp, record(1, 400), || t0);
        // Not full, not lingered yet.
        assert!(acc.ready(t0, false, &open).is_empty());
        assert_eq!(
            acc.next_ready_time(false, &open),
            Some(t0 + Duration::from_millis(50))
        );
        assert_eq!(
            acc.ready(t0 + Duration::from_millis(50), false, &open),
            vec![tp.clone()]
        );
        assert_eq!(acc.ready(t0, true, &open), vec![tp.clone()]);
        // A third record does not fit: a second batch starts and the first is sendable.
        acc.append(&tp, record(2, 400), || t0);
        assert_eq!(acc.ready(t0, false, &open), vec![tp.clone()]);
        let first = acc.take_front(&tp).unwrap();
        assert_eq!(first.records.len(), 2);
        // One in flight per partition (the limit given to `new`).
        assert!(
            acc.ready(t0 + Duration::from_secs(1), true, &open)
                .is_empty()
        );
        acc.requeue(&tp, vec![first]);
        let again = acc.take_front(&tp).unwrap();
        assert_eq!(again.records[0].seq, 0, "a retried batch goes first");
        acc.finished(&tp);
        let second = acc.take_front(&tp).unwrap();
        assert_eq!(second.records[0].seq, 2);
        acc.finished(&tp);
        assert!(acc.partitions.is_empty());
    }

    #[tokio::test]
    async fn oversized_record_gets_its_own_batch_and_split_keeps_order() {
        let tp = TopicPartition::new("t", 0);
        let mut acc = Accumulator::new(100, Duration::from_secs(10), 1);
        let t0 = Instant::now();
        acc.append(&tp, record(0, 5000), || t0);
        assert_eq!(
            acc.ready(t0, false, &open),
            vec![tp.clone()],
            "full at once"
        );
        let mut acc = Accumulator::new(10_000, Duration::ZERO, 1);
        for i in 0..3 {
            acc.append(&tp, record(i, 10), || t0);
        }
        let batch = acc.take_front(&tp).unwrap();
        let parts = batch.split();
        assert_eq!(parts.len(), 3);
        acc.requeue(&tp, parts);
        let seqs: Vec<u64> = (0..3)
            .map(|_| {
                let b = acc.take_front(&tp).unwrap();
                acc.finished(&tp);
                b.records[0].seq
            })
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
    }

    #[tokio::test]
    async fn expiry_takes_old_queued_batches_only() {
        let tp = TopicPartition::new("t", 0);
        let mut acc = Accumulator::new(0, Duration::ZERO, 1);
        let t0 = Instant::now();
        acc.append(&tp, record(0, 10), || t0);
        acc.append(&tp, record(1, 10), || t0 + Duration::from_secs(5));
        let expired = acc.expire(t0 + Duration::from_secs(1));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].records[0].seq, 0);
        assert_eq!(acc.oldest_batch(), Some(t0 + Duration::from_secs(5)));
    }
}

#[cfg(test)]
mod pipelining_tests {
    use super::*;

    fn open(_: &TopicPartition, _: &Batch, _: usize) -> bool {
        true
    }

    fn record(seq: u64) -> PendingRecord {
        let (done, _) = oneshot::channel();
        PendingRecord {
            seq,
            topic: "t".into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: 0,
            size: 10,
            done,
        }
    }

    #[tokio::test]
    async fn several_in_flight_and_retries_go_alone_in_send_order() {
        let tp = TopicPartition::new("t", 0);
        // One record per batch.
        let mut acc = Accumulator::new(BATCH_OVERHEAD + 10, Duration::ZERO, 3);
        let t0 = Instant::now();
        for i in 0..5 {
            acc.append(&tp, record(i), || t0);
        }
        let mut out = Vec::new();
        while !acc.ready(t0, false, &open).is_empty() {
            out.push(acc.take_front(&tp).unwrap());
        }
        assert_eq!(out.len(), 3, "max in flight");
        // The second and then the first come back for a retry: they line up in send order,
        // before the never-sent batches, and wait for the third to return.
        let third = out.pop().unwrap();
        let second = out.pop().unwrap();
        let first = out.pop().unwrap();
        acc.requeue(&tp, vec![second]);
        acc.requeue(&tp, vec![first]);
        assert!(acc.ready(t0, false, &open).is_empty(), "a retry goes alone");
        acc.finished(&tp);
        drop(third);
        assert_eq!(acc.ready(t0, false, &open), vec![tp.clone()]);
        let retry = acc.take_front(&tp).unwrap();
        assert_eq!(retry.records[0].seq, 0);
        assert!(
            acc.ready(t0, false, &open).is_empty(),
            "one retry at a time"
        );
        acc.finished(&tp);
        assert_eq!(acc.take_front(&tp).unwrap().records[0].seq, 1);
        acc.finished(&tp);
        // Fresh batches pipeline again.
        assert_eq!(acc.take_front(&tp).unwrap().records[0].seq, 3);
        assert_eq!(acc.ready(t0, false, &open), vec![tp.clone()]);
        assert_eq!(acc.take_front(&tp).unwrap().records[0].seq, 4);
    }
}
