//! Per-partition queues of record batches waiting to be sent. `send` appends under the
//! producer's lock (see `front`), the sender task drains.
//!
//! A record is encoded into the open (last) batch of its partition as it is appended, until
//! the batch would exceed `batch.size`; a batch becomes sendable when it is full, when another
//! batch queues behind it, when it has waited `linger.ms`, or at once while the producer is
//! flushing or closing. Outcomes are published per batch, not per record: a record's
//! `DeliveryFuture` holds its batch's [`Completion`] and its index in it, so `send` costs
//! no channel and no allocation of its own.
//!
//! Up to `max.in.flight.requests.per.connection` batches of a partition may be in flight.
//! A batch that comes back for a retry is put back among the front batches in send order
//! and goes out alone (nothing else of its partition in flight), as Java's
//! `RecordAccumulator` does for the idempotent producer: with sequence numbers the broker
//! then writes the partition's records exactly once and in order. Without idempotence a
//! retried batch can land after batches that were in flight behind it, as in Java.
//! `buffer.memory` is accounted by the producer (see `Producer::send`), not here; a batch
//! only remembers how many of its bytes to give back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use strom_protocol::batch::HEADER_LEN;
use tokio::time::Instant;

use super::encode::{self, HeaderFields, OwnedRecord, RecordFields};
use super::idempotence::BatchSequence;
use crate::config::CompressionType;
use crate::error::{ClientError, Result};
use crate::record::{Header, RecordMetadata, TopicPartition};

/// Size of a v2 batch header, counted once per batch against `batch.size`.
pub(crate) const BATCH_OVERHEAD: usize = HEADER_LEN;

/// Upper bound of a record's encoded size in a v2 batch (varints at their widest): what
/// `buffer.memory` and `max.request.size` are checked against before the record is encoded
/// (Kafka's `estimateSizeInBytesUpperBound` without the batch header).
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

/// Where the outcomes of a run of records are published and their futures look for them:
/// one per batch for the records `send` appended to it, one per record that had to wait for
/// its topic's metadata. Records are numbered from 0 in the order they joined.
#[derive(Debug)]
pub(crate) struct Completion {
    topic: String,
    state: Mutex<CompletionState>,
}

/// Told once of a record's outcome (Java's `Callback`).
pub(crate) type Callback = Box<dyn FnOnce(Result<RecordMetadata>) + Send>;

#[derive(Default)]
struct CompletionState {
    done: Vec<SpanOutcome>,
    wakers: Vec<Waker>,
    /// (record index, its timestamp, callback) of records without an outcome yet.
    callbacks: Vec<(u32, i64, Callback)>,
}

impl std::fmt::Debug for CompletionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionState")
            .field("done", &self.done)
            .field("wakers", &self.wakers.len())
            .field("callbacks", &self.callbacks.len())
            .finish()
    }
}

/// The outcome of records `first..first + len` of a completion.
#[derive(Debug)]
struct SpanOutcome {
    first: u32,
    len: u32,
    partition: i32,
    /// (base offset of record `first`, log append time), both -1 when unknown.
    result: Result<(i64, i64)>,
}

impl Completion {
    pub(crate) fn new(topic: &str) -> Arc<Self> {
        Arc::new(Self {
            topic: topic.to_string(),
            state: Mutex::new(CompletionState::default()),
        })
    }

    fn publish(&self, outcome: SpanOutcome) {
        let (wakers, mut due) = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut due = Vec::new();
            if !state.callbacks.is_empty() {
                let (now, later) = std::mem::take(&mut state.callbacks)
                    .into_iter()
                    .partition(|(index, ..)| outcome.covers(*index));
                state.callbacks = later;
                due = now;
            }
            let wakers = std::mem::take(&mut state.wakers);
            let due: Vec<(u32, Result<RecordMetadata>, Callback)> = due
                .into_iter()
                .map(|(index, ts, cb)| (index, self.metadata(&outcome, index, ts), cb))
                .collect();
            state.done.push(outcome);
            (wakers, due)
        };
        for w in wakers {
            w.wake();
        }
        // In record order, as Java runs the callbacks of a partition's records.
        due.sort_by_key(|(index, ..)| *index);
        for (_, result, callback) in due {
            callback(result);
        }
    }

    /// Calls `callback` with record `index`'s outcome: now if it is known, otherwise when
    /// the outcome is published (on the producer's task).
    pub(crate) fn on_done(&self, index: u32, timestamp: i64, callback: Callback) {
        let known = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.done.iter().find(|s| s.covers(index)) {
                Some(span) => Some((self.metadata(span, index, timestamp), callback)),
                None => {
                    state.callbacks.push((index, timestamp, callback));
                    None
                }
            }
        };
        if let Some((result, callback)) = known {
            callback(result);
        }
    }

    fn metadata(&self, span: &SpanOutcome, index: u32, timestamp: i64) -> Result<RecordMetadata> {
        match &span.result {
            Ok((base_offset, append_time)) => Ok(RecordMetadata {
                topic: self.topic.clone(),
                partition: span.partition,
                offset: if *base_offset >= 0 {
                    base_offset + i64::from(index - span.first)
                } else {
                    -1
                },
                timestamp: if *append_time >= 0 {
                    *append_time
                } else {
                    timestamp
                },
            }),
            Err(e) => Err(e.clone()),
        }
    }

    /// Fails the only record of a completion made for one record.
    pub(crate) fn fail_one(&self, partition: i32, error: ClientError) {
        self.publish(SpanOutcome {
            first: 0,
            len: 1,
            partition,
            result: Err(error),
        });
    }

    /// Record `index`'s outcome if it is known; otherwise `waker` is woken when it may be.
    pub(crate) fn poll(
        &self,
        index: u32,
        timestamp: i64,
        waker: &Waker,
    ) -> Option<Result<RecordMetadata>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.done.iter().find(|s| s.covers(index)) {
            Some(span) => Some(self.metadata(span, index, timestamp)),
            None => {
                if !state.wakers.iter().any(|w| w.will_wake(waker)) {
                    state.wakers.push(waker.clone());
                }
                None
            }
        }
    }
}

impl SpanOutcome {
    fn covers(&self, index: u32) -> bool {
        self.first <= index && index - self.first < self.len
    }
}

/// Records `first..first + len` of `completion` are records `at..at + len` of a batch.
#[derive(Debug)]
struct Span {
    completion: Arc<Completion>,
    first: u32,
    len: u32,
}

/// The records section of a batch: being appended to, or frozen once drained (a retry and
/// a split read it again).
#[derive(Debug)]
enum Body {
    Open(BytesMut),
    Frozen(Bytes),
}

#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) tp: TopicPartition,
    /// The accumulator's queue of `tp`.
    pub(crate) queue: usize,
    /// `HEADER_LEN` bytes for the header, then the encoded records, uncompressed.
    body: Body,
    count: u32,
    /// Each record's timestamp, for interceptors and for splitting.
    timestamps: Vec<i64>,
    max_timestamp: i64,
    /// Whose futures the records answer, in record order.
    spans: Vec<Span>,
    /// The completion of records appended by `send`, created with the batch.
    own: Arc<Completion>,
    own_count: u32,
    /// Bytes of `buffer.memory` its records hold.
    pub(crate) reserved: usize,
    /// The lowest send number among its records (for `flush`).
    pub(crate) min_seq: u64,
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
    /// The bytes last sent and the sequence they carry: a retry with the same sequence
    /// sends them again as they are.
    wire: Option<(Option<BatchSequence>, Bytes)>,
}

/// Told about every record of a completed batch (interceptors' `on_acknowledgement`).
pub(crate) type PerRecord<'a> = dyn FnMut(&RecordMetadata, Option<&ClientError>) + 'a;

/// A record as `send` appends it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRecord<'a> {
    pub(crate) fields: RecordFields<'a>,
    pub(crate) timestamp: i64,
    /// Its estimated size, reserved in `buffer.memory`.
    pub(crate) size: usize,
    pub(crate) seq: u64,
}

/// Where an appended record's outcome will be found.
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) completion: Arc<Completion>,
    pub(crate) index: u32,
    /// The record started a new batch (the sender must learn of its linger deadline).
    pub(crate) new_batch: bool,
    /// The record's batch is full now (sendable at once).
    pub(crate) full: bool,
}

impl Batch {
    fn new(tp: TopicPartition, queue: usize, now: Instant, seq: u64, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity);
        buf.put_bytes(0, HEADER_LEN);
        Self {
            own: Completion::new(&tp.topic),
            tp,
            queue,
            body: Body::Open(buf),
            count: 0,
            timestamps: Vec::new(),
            max_timestamp: -1,
            spans: Vec::new(),
            own_count: 0,
            reserved: 0,
            min_seq: seq,
            created: now,
            attempts: 0,
            retry_at: None,
            sealed: false,
            drained: false,
            sequence: None,
            wire: None,
        }
    }

    /// Records in the batch.
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// Encoded bytes so far, header included (uncompressed).
    pub(crate) fn encoded_size(&self) -> usize {
        match &self.body {
            Body::Open(buf) => buf.len(),
            Body::Frozen(bytes) => bytes.len(),
        }
    }

    /// Encodes `record` at the end. `completion` is the record's own completion when it has
    /// one (it waited for metadata); otherwise it joins the batch's.
    fn push(&mut self, record: NewRecord<'_>, completion: Option<&Arc<Completion>>) -> Appended {
        let Body::Open(buf) = &mut self.body else {
            unreachable!("records are only appended to open batches");
        };
        let base_timestamp = self.timestamps.first().copied().unwrap_or(record.timestamp);
        encode::put_record(
            buf,
            record.fields,
            self.count,
            record.timestamp.wrapping_sub(base_timestamp),
        );
        self.count += 1;
        self.timestamps.push(record.timestamp);
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        self.reserved += record.size;
        self.min_seq = self.min_seq.min(record.seq);
        let (completion, index) = match completion {
            Some(c) => {
                self.spans.push(Span {
                    completion: c.clone(),
                    first: 0,
                    len: 1,
                });
                (c.clone(), 0)
            }
            None => {
                let index = self.own_count;
                self.own_count += 1;
                match self.spans.last_mut() {
                    Some(last) if Arc::ptr_eq(&last.completion, &self.own) => last.len += 1,
                    _ => self.spans.push(Span {
                        completion: self.own.clone(),
                        first: index,
                        len: 1,
                    }),
                }
                (self.own.clone(), index)
            }
        };
        Appended {
            completion,
            index,
            new_batch: false,
            full: false,
        }
    }

    /// The bytes to send, header written for the batch's current sequence. The records are
    /// encoded once; a retry with the same sequence resends the same bytes.
    pub(crate) fn wire(&mut self, compression: CompressionType) -> Result<Bytes> {
        if let Some((sequence, bytes)) = &self.wire
            && *sequence == self.sequence
        {
            return Ok(bytes.clone());
        }
        let fields = HeaderFields {
            count: self.count,
            base_timestamp: self.timestamps.first().copied().unwrap_or(-1),
            max_timestamp: self.max_timestamp,
            sequence: self.sequence,
        };
        let body = std::mem::replace(&mut self.body, Body::Frozen(Bytes::new()));
        let (wire, body) = match (body, compression) {
            // The usual case: the header goes in front of the records where they are.
            (Body::Open(buf), CompressionType::None) => {
                // Only fails for a batch over 2 GiB, which max.request.size rules out.
                let wire = encode::finish_batch(buf, fields)?;
                (Ok(wire.clone()), wire)
            }
            (Body::Open(buf), _) => {
                let body = buf.freeze();
                (
                    encode::compressed_batch(&body[HEADER_LEN..], fields, compression),
                    body,
                )
            }
            // Renumbered after a producer id reset: a new copy with the new header.
            (Body::Frozen(body), _) => (
                encode::compressed_batch(&body[HEADER_LEN..], fields, compression),
                body,
            ),
        };
        // Kept even when compression failed: the batch fails, its records stay readable.
        self.body = Body::Frozen(body);
        let wire = wire?;
        self.wire = Some((self.sequence, wire.clone()));
        Ok(wire)
    }

    /// Publishes the batch's outcome to its records' futures: offsets from `base_offset`
    /// (-1 when unknown) and `append_time` (-1: each record's own timestamp), or the error.
    /// Calls `each` first with every record's metadata (for interceptors) when asked to.
    pub(crate) fn complete(
        mut self,
        result: std::result::Result<(i64, i64), &ClientError>,
        each: Option<&mut PerRecord<'_>>,
    ) {
        if let Some(each) = each {
            let mut metadata = RecordMetadata {
                topic: self.tp.topic.clone(),
                partition: self.tp.partition,
                offset: -1,
                timestamp: -1,
            };
            for (i, ts) in self.timestamps.iter().enumerate() {
                match result {
                    Ok((base_offset, append_time)) => {
                        metadata.offset = if base_offset >= 0 {
                            base_offset + i as i64
                        } else {
                            -1
                        };
                        metadata.timestamp = if append_time >= 0 { append_time } else { *ts };
                        each(&metadata, None);
                    }
                    Err(e) => each(&metadata, Some(e)),
                }
            }
        }
        let mut at: i64 = 0;
        for span in std::mem::take(&mut self.spans) {
            let result = match result {
                Ok((base_offset, append_time)) => Ok((
                    if base_offset >= 0 {
                        base_offset + at
                    } else {
                        -1
                    },
                    append_time,
                )),
                Err(e) => Err(e.clone()),
            };
            at += i64::from(span.len);
            span.completion.publish(SpanOutcome {
                first: span.first,
                len: span.len,
                partition: self.tp.partition,
                result,
            });
        }
    }

    /// The batch's records decoded again, for [`Batch::split`].
    pub(crate) fn records(&mut self, compression: CompressionType) -> Result<Vec<OwnedRecord>> {
        let bytes = self.wire(compression)?;
        let records = encode::decode_batch(&bytes)?;
        if records.len() != self.len() {
            return Err(ClientError::Protocol(format!(
                "own batch of {} records decoded as {}",
                self.len(),
                records.len()
            )));
        }
        Ok(records)
    }

    /// Splits a multi-record batch into one batch per record (after MESSAGE_TOO_LARGE), given
    /// its [`Batch::records`], keeping their order, futures and retry state. A numbered
    /// batch's pieces take its sequences one each, so the batches behind it keep theirs
    /// (Java's `splitAndReenqueue`).
    pub(crate) fn split(mut self, records: Vec<OwnedRecord>) -> Vec<Batch> {
        // Each record's futures: the span it belongs to.
        let mut owners: Vec<(Arc<Completion>, u32)> = Vec::with_capacity(records.len());
        for span in std::mem::take(&mut self.spans) {
            for i in 0..span.len {
                owners.push((span.completion.clone(), span.first + i));
            }
        }
        let mut left = self.reserved;
        let last = records.len() - 1;
        let mut pieces = Vec::with_capacity(records.len());
        for (i, (record, (completion, first))) in records.into_iter().zip(owners).enumerate() {
            let OwnedRecord {
                key,
                value,
                headers,
                timestamp,
            } = record;
            let reserved = if i == last {
                left
            } else {
                estimate_record_size(key.as_ref(), value.as_ref(), &headers).min(left)
            };
            left -= reserved;
            let mut piece = Batch::new(
                self.tp.clone(),
                self.queue,
                self.created,
                self.min_seq,
                BATCH_OVERHEAD + reserved,
            );
            let fields = RecordFields {
                key: key.as_deref(),
                value: value.as_deref(),
                headers: &headers,
            };
            piece.push(
                NewRecord {
                    fields,
                    timestamp,
                    size: reserved,
                    seq: self.min_seq,
                },
                Some(&completion),
            );
            // The piece answers for record `first` of the original completion.
            if let Some(span) = piece.spans.last_mut() {
                span.first = first;
            }
            piece.attempts = self.attempts;
            piece.sealed = true;
            piece.drained = self.drained;
            piece.sequence = self.sequence.map(|s| BatchSequence {
                base: super::idempotence::increment_sequence(
                    s.base,
                    i32::try_from(i).unwrap_or(i32::MAX),
                ),
                ..s
            });
            pieces.push(piece);
        }
        pieces
    }
}

/// A batch dropped without an outcome (the producer's task is gone) fails its futures
/// rather than leave them waiting forever.
impl Drop for Batch {
    fn drop(&mut self) {
        if !self.spans.is_empty() {
            let spans = std::mem::take(&mut self.spans);
            for span in spans {
                span.completion.publish(SpanOutcome {
                    first: span.first,
                    len: span.len,
                    partition: self.tp.partition,
                    result: Err(ClientError::Closed),
                });
            }
        }
    }
}

#[derive(Debug)]
struct PartitionQueue {
    tp: TopicPartition,
    batches: VecDeque<Batch>,
    in_flight: usize,
    /// Encoded size of the last batch that was closed, to size the next one.
    last_size: usize,
}

/// Send numbers of the records not completed yet, counted per batch by the batch's lowest
/// one (and per record for those waiting for metadata): `flush` waits until nothing below
/// its number is left.
#[derive(Debug, Default)]
pub(crate) struct Outstanding(BTreeMap<u64, usize>);

impl Outstanding {
    pub(crate) fn insert(&mut self, seq: u64) {
        *self.0.entry(seq).or_default() += 1;
    }

    pub(crate) fn remove(&mut self, seq: u64) {
        if let Some(n) = self.0.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&seq);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when a record with a send number below `upto` is outstanding.
    pub(crate) fn any_below(&self, upto: u64) -> bool {
        self.0.keys().next().is_some_and(|&first| first < upto)
    }
}

#[derive(Debug)]
pub(crate) struct Accumulator {
    batch_size: usize,
    linger: Duration,
    /// Batches of one partition in flight at most (`max.in.flight.requests.per.connection`).
    max_in_flight: usize,
    /// One queue per partition ever produced to, never removed (as Java's `batches` map),
    /// so that `send` can keep a partition's queue number.
    queues: Vec<PartitionQueue>,
    ids: HashMap<TopicPartition, usize>,
    pub(crate) outstanding: Outstanding,
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
            queues: Vec::new(),
            ids: HashMap::new(),
            outstanding: Outstanding::default(),
        }
    }

    /// The queue number of `tp`, creating its queue.
    pub(crate) fn queue_id(&mut self, tp: &TopicPartition) -> usize {
        if let Some(&id) = self.ids.get(tp) {
            return id;
        }
        let id = self.queues.len();
        self.queues.push(PartitionQueue {
            tp: tp.clone(),
            batches: VecDeque::new(),
            in_flight: 0,
            last_size: 0,
        });
        self.ids.insert(tp.clone(), id);
        id
    }

    pub(crate) fn tp(&self, queue: usize) -> &TopicPartition {
        &self.queues[queue].tp
    }

    fn limit(&self) -> usize {
        self.batch_size.max(BATCH_OVERHEAD)
    }

    /// True when a record of `size` bytes would join an existing open batch of `queue`.
    pub(crate) fn fits_open_batch(&self, queue: usize, size: usize) -> bool {
        self.queues[queue]
            .batches
            .back()
            .is_some_and(|b| !b.sealed && b.encoded_size() + size <= self.limit())
    }

    /// Appends a record to `queue`'s open batch, or to a new batch (created at `now()`) if
    /// it does not fit. Records appended here count as outstanding until their batch is
    /// [`Accumulator::done`].
    pub(crate) fn append(
        &mut self,
        queue: usize,
        record: NewRecord<'_>,
        completion: Option<&Arc<Completion>>,
        now: impl FnOnce() -> Instant,
    ) -> Appended {
        let limit = self.limit();
        let batch_size = self.batch_size;
        let q = &mut self.queues[queue];
        let fits = q
            .batches
            .back()
            .is_some_and(|b| !b.sealed && b.encoded_size() + record.size <= limit);
        let new_batch = !fits;
        if new_batch {
            if let Some(last) = q.batches.back_mut() {
                last.sealed = true;
                q.last_size = last.encoded_size();
            }
            // Sized like the partition's previous batch: growing a batch record by record
            // would copy it, a buffer of `batch.size` each time would waste memory.
            let capacity = q
                .last_size
                .max(16 * 1024)
                .min(limit)
                .max(BATCH_OVERHEAD + record.size);
            q.batches
                .push_back(Batch::new(q.tp.clone(), queue, now(), record.seq, capacity));
            self.outstanding.insert(record.seq);
        }
        let batch = q.batches.back_mut().expect("a batch was just ensured");
        let old_min = batch.min_seq;
        let mut appended = batch.push(record, completion);
        if batch.min_seq != old_min {
            // A record that waited for metadata joined a batch of later records.
            self.outstanding.remove(old_min);
            self.outstanding.insert(batch.min_seq);
        }
        if batch.encoded_size() >= batch_size {
            batch.sealed = true;
        }
        appended.new_batch = new_batch;
        appended.full = batch.sealed;
        appended
    }

    /// When the front batch of `queue` may be sent (`None`: not now, nothing to send, too
    /// many in flight, or a retry waiting for the partition's other batches to return).
    fn send_time(
        &self,
        queue: &PartitionQueue,
        force: bool,
        gate: &impl DrainGate,
    ) -> Option<Instant> {
        let front = queue.batches.front()?;
        let limit = if front.drained { 1 } else { self.max_in_flight };
        if queue.in_flight >= limit || !gate(&queue.tp, front, queue.in_flight) {
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

    /// Queues whose front batch may be sent now.
    pub(crate) fn ready(&self, now: Instant, force: bool, gate: &impl DrainGate) -> Vec<usize> {
        self.queues
            .iter()
            .enumerate()
            .filter(|(_, q)| self.send_time(q, force, gate).is_some_and(|t| t <= now))
            .map(|(id, _)| id)
            .collect()
    }

    /// The earliest time some batch becomes sendable.
    pub(crate) fn next_ready_time(&self, force: bool, gate: &impl DrainGate) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|q| self.send_time(q, force, gate))
            .min()
    }

    /// The queue's front batch, if any.
    pub(crate) fn front(&self, queue: usize) -> Option<&Batch> {
        self.queues[queue].batches.front()
    }

    /// Forgets the sequences of the queue's batches, to be numbered again when drained.
    pub(crate) fn clear_sequences(&mut self, queue: usize) {
        for batch in &mut self.queues[queue].batches {
            batch.sequence = None;
        }
    }

    /// Removes every queued (not in-flight) batch.
    pub(crate) fn take_all_queued(&mut self) -> Vec<Batch> {
        self.queues
            .iter_mut()
            .flat_map(|q| q.batches.drain(..))
            .collect()
    }

    /// Removes every queued batch that was never sent (an aborted transaction); retries of
    /// sent batches stay.
    pub(crate) fn take_undrained(&mut self) -> Vec<Batch> {
        let mut taken = Vec::new();
        for q in &mut self.queues {
            if q.batches.iter().any(|b| !b.drained) {
                let (keep, take): (VecDeque<Batch>, VecDeque<Batch>) =
                    q.batches.drain(..).partition(|b| b.drained);
                q.batches = keep;
                taken.extend(take);
            }
        }
        taken
    }

    /// The partitions with batches queued.
    pub(crate) fn queued_partitions(&self) -> impl Iterator<Item = &TopicPartition> {
        self.queues
            .iter()
            .filter(|q| !q.batches.is_empty())
            .map(|q| &q.tp)
    }

    /// Keeps the queue's front batch from being sent before `until` (no leader known yet).
    pub(crate) fn delay_front(&mut self, queue: usize, until: Instant) {
        if let Some(batch) = self.queues[queue].batches.front_mut() {
            batch.retry_at = Some(batch.retry_at.map_or(until, |t| t.max(until)));
        }
    }

    /// Takes the queue's front batch for sending; it counts as in flight until
    /// [`Accumulator::finished`] or [`Accumulator::requeue`].
    pub(crate) fn take_front(&mut self, queue: usize) -> Option<Batch> {
        let q = &mut self.queues[queue];
        let mut batch = q.batches.pop_front()?;
        batch.sealed = true;
        batch.drained = true;
        q.in_flight += 1;
        Some(batch)
    }

    /// One in-flight batch of `queue` is done (acknowledged or failed for good).
    pub(crate) fn finished(&mut self, queue: usize) {
        let q = &mut self.queues[queue];
        q.in_flight = q.in_flight.saturating_sub(1);
    }

    /// A batch taken out of the accumulator is completed: its records are no longer
    /// outstanding.
    pub(crate) fn done(&mut self, batch: &Batch) {
        self.outstanding.remove(batch.min_seq);
    }

    /// An in-flight batch of `queue` came back for a retry (as one batch, or split into
    /// several): they go back among the drained batches at the front, in send order.
    pub(crate) fn requeue(&mut self, queue: usize, batches: Vec<Batch>) {
        // A split batch's pieces each count as outstanding until they complete.
        for _ in 1..batches.len() {
            if let Some(first) = batches.first() {
                self.outstanding.insert(first.min_seq);
            }
        }
        let q = &mut self.queues[queue];
        q.in_flight = q.in_flight.saturating_sub(1);
        // Pieces of one split batch share its `min_seq`: going in backwards, each lands
        // before the ones behind it.
        for batch in batches.into_iter().rev() {
            let at = q
                .batches
                .iter()
                .position(|b| !b.drained || b.min_seq >= batch.min_seq)
                .unwrap_or(q.batches.len());
            q.batches.insert(at, batch);
        }
    }

    /// Removes queued (not in-flight) batches created before `deadline`.
    pub(crate) fn expire(&mut self, created_before: Instant) -> Vec<Batch> {
        let mut expired = Vec::new();
        for q in &mut self.queues {
            while q
                .batches
                .front()
                .is_some_and(|b| b.created < created_before)
            {
                if let Some(batch) = q.batches.pop_front() {
                    expired.push(batch);
                }
            }
        }
        expired
    }

    /// The creation time of the oldest queued batch.
    pub(crate) fn oldest_batch(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|q| q.batches.front().map(|b| b.created))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Context;

    use super::*;

    fn open(_: &TopicPartition, _: &Batch, _: usize) -> bool {
        true
    }

    /// A record whose estimated size is `size` (at least 36 bytes).
    fn record(value: &[u8], seq: u64) -> NewRecord<'_> {
        NewRecord {
            fields: RecordFields {
                key: None,
                value: Some(value),
                headers: &[],
            },
            timestamp: 1_000 + seq as i64,
            size: 36 + value.len(),
            seq,
        }
    }

    /// The outcome a record's future would see now.
    fn outcome(appended: &Appended) -> Option<Result<RecordMetadata>> {
        let waker = futures::task::noop_waker();
        let cx = Context::from_waker(&waker);
        appended.completion.poll(appended.index, 7, cx.waker())
    }

    #[tokio::test]
    async fn batches_fill_up_to_batch_size_and_linger() {
        let tp = TopicPartition::new("t", 0);
        let mut acc = Accumulator::new(1000, Duration::from_millis(50), 1);
        let q = acc.queue_id(&tp);
        let v = [b'x'; 364];
        let t0 = Instant::now();
        let a = acc.append(q, record(&v, 0), None, || t0);
        assert!(a.new_batch && !a.full);
        let b = acc.append(q, record(&v, 1), None, || t0);
        assert!(!b.new_batch);
        // Not full, not lingered yet.
        assert!(acc.ready(t0, false, &open).is_empty());
        assert_eq!(
            acc.next_ready_time(false, &open),
            Some(t0 + Duration::from_millis(50))
        );
        assert_eq!(
            acc.ready(t0 + Duration::from_millis(50), false, &open),
            vec![q]
        );
        assert_eq!(acc.ready(t0, true, &open), vec![q]);
        // A third record does not fit: a second batch starts and the first is sendable.
        let c = acc.append(q, record(&v, 2), None, || t0);
        assert!(c.new_batch);
        assert_eq!(acc.ready(t0, false, &open), vec![q]);
        let first = acc.take_front(q).unwrap();
        assert_eq!(first.len(), 2);
        assert!(acc.outstanding.any_below(1));
        // One in flight per partition (the limit given to `new`).
        assert!(
            acc.ready(t0 + Duration::from_secs(1), true, &open)
                .is_empty()
        );
        acc.requeue(q, vec![first]);
        let again = acc.take_front(q).unwrap();
        assert_eq!(again.min_seq, 0, "a retried batch goes first");
        acc.finished(q);
        acc.done(&again);
        again.complete(Ok((40, -1)), None);
        let a = outcome(&a).unwrap().unwrap();
        assert_eq!((a.offset, a.timestamp, a.partition), (40, 7, 0));
        assert_eq!(outcome(&b).unwrap().unwrap().offset, 41);
        assert!(outcome(&c).is_none());
        assert!(!acc.outstanding.any_below(2));
        assert!(acc.outstanding.any_below(3));
        let second = acc.take_front(q).unwrap();
        assert_eq!(second.min_seq, 2);
        acc.finished(q);
        acc.done(&second);
        assert!(acc.outstanding.is_empty());
        second.complete(Err(&ClientError::Closed), None);
        assert!(matches!(outcome(&c), Some(Err(ClientError::Closed))));
    }

    #[tokio::test]
    async fn oversized_record_gets_its_own_batch_and_split_keeps_order_and_futures() {
        let tp = TopicPartition::new("t", 0);
        let mut acc = Accumulator::new(100, Duration::from_secs(10), 1);
        let q = acc.queue_id(&tp);
        let t0 = Instant::now();
        let big = [b'b'; 5000];
        acc.append(q, record(&big, 0), None, || t0);
        assert_eq!(acc.ready(t0, false, &open), vec![q], "full at once");

        let mut acc = Accumulator::new(10_000, Duration::ZERO, 1);
        let q = acc.queue_id(&tp);
        let values: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; 10]).collect();
        let appended: Vec<Appended> = values
            .iter()
            .enumerate()
            .map(|(i, v)| acc.append(q, record(v, i as u64), None, || t0))
            .collect();
        let mut batch = acc.take_front(q).unwrap();
        batch.sequence = Some(BatchSequence {
            producer: super::super::idempotence::ProducerIdAndEpoch { id: 1, epoch: 0 },
            base: 10,
            transactional: false,
        });
        let reserved = batch.reserved;
        let records = batch.records(CompressionType::Lz4).unwrap();
        let parts = batch.split(records);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.iter().map(|p| p.reserved).sum::<usize>(), reserved);
        let bases: Vec<i32> = parts.iter().map(|p| p.sequence.unwrap().base).collect();
        assert_eq!(bases, vec![10, 11, 12]);
        acc.requeue(q, parts);
        for (i, a) in appended.iter().enumerate() {
            let mut piece = acc.take_front(q).unwrap();
            acc.finished(q);
            acc.done(&piece);
            let wire = piece.wire(CompressionType::None).unwrap();
            let decoded = encode::decode_batch(&wire).unwrap();
            assert_eq!(decoded[0].value.as_deref(), Some(&values[i][..]));
            assert_eq!(decoded[0].timestamp, 1_000 + i as i64);
            piece.complete(Ok((100 + 10 * i as i64, -1)), None);
            assert_eq!(outcome(a).unwrap().unwrap().offset, 100 + 10 * i as i64);
        }
        assert!(acc.outstanding.is_empty());
    }

    #[tokio::test]
    async fn a_record_with_its_own_completion_keeps_it() {
        let tp = TopicPartition::new("t", 3);
        let mut acc = Accumulator::new(10_000, Duration::ZERO, 1);
        let q = acc.queue_id(&tp);
        let t0 = Instant::now();
        let own = Completion::new("t");
        let v = [b'v'; 20];
        let first = acc.append(q, record(&v, 5), Some(&own), || t0);
        assert!(Arc::ptr_eq(&first.completion, &own));
        let second = acc.append(q, record(&v, 6), None, || t0);
        let batch = acc.take_front(q).unwrap();
        let mut seen = Vec::new();
        let mut each = |m: &RecordMetadata, e: Option<&ClientError>| {
            seen.push((m.partition, m.offset, m.timestamp, e.is_some()))
        };
        batch.complete(Ok((9, 555)), Some(&mut each));
        assert_eq!(seen, vec![(3, 9, 555, false), (3, 10, 555, false)]);
        let first = outcome(&first).unwrap().unwrap();
        assert_eq!(
            (first.topic.as_str(), first.partition, first.offset),
            ("t", 3, 9)
        );
        assert_eq!(outcome(&second).unwrap().unwrap().timestamp, 555);
    }

    #[tokio::test]
    async fn expiry_takes_old_queued_batches_only() {
        let tp = TopicPartition::new("t", 0);
        let mut acc = Accumulator::new(0, Duration::ZERO, 1);
        let q = acc.queue_id(&tp);
        let t0 = Instant::now();
        let v = [b'v'; 10];
        acc.append(q, record(&v, 0), None, || t0);
        acc.append(q, record(&v, 1), None, || t0 + Duration::from_secs(5));
        let expired = acc.expire(t0 + Duration::from_secs(1));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].min_seq, 0);
        assert_eq!(acc.oldest_batch(), Some(t0 + Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn several_in_flight_and_retries_go_alone_in_send_order() {
        let tp = TopicPartition::new("t", 0);
        // One record per batch.
        let v = [b'v'; 10];
        let mut acc = Accumulator::new(BATCH_OVERHEAD + 46, Duration::ZERO, 3);
        let q = acc.queue_id(&tp);
        let t0 = Instant::now();
        for i in 0..5 {
            acc.append(q, record(&v, i), None, || t0);
        }
        let mut out = Vec::new();
        while !acc.ready(t0, false, &open).is_empty() {
            out.push(acc.take_front(q).unwrap());
        }
        assert_eq!(out.len(), 3, "max in flight");
        // The second and then the first come back for a retry: they line up in send order,
        // before the never-sent batches, and wait for the third to return.
        let third = out.pop().unwrap();
        let second = out.pop().unwrap();
        let first = out.pop().unwrap();
        acc.requeue(q, vec![second]);
        acc.requeue(q, vec![first]);
        assert!(acc.ready(t0, false, &open).is_empty(), "a retry goes alone");
        acc.finished(q);
        drop(third);
        assert_eq!(acc.ready(t0, false, &open), vec![q]);
        let retry = acc.take_front(q).unwrap();
        assert_eq!(retry.min_seq, 0);
        assert!(
            acc.ready(t0, false, &open).is_empty(),
            "one retry at a time"
        );
        acc.finished(q);
        assert_eq!(acc.take_front(q).unwrap().min_seq, 1);
        acc.finished(q);
        // Fresh batches pipeline again.
        assert_eq!(acc.take_front(q).unwrap().min_seq, 3);
        assert_eq!(acc.ready(t0, false, &open), vec![q]);
        assert_eq!(acc.take_front(q).unwrap().min_seq, 4);
    }
}
