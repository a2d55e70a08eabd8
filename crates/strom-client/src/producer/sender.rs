//! The producer's background task: the only owner of the accumulator and of the idempotence
//! state, so no locks. It waits on three things — commands from `Producer` handles,
//! completions of the requests (Produce, Metadata, InitProducerId) it spawned, and the next
//! time a batch becomes sendable — and after each wakeup routes records whose topic metadata
//! arrived, expires batches past `delivery.timeout.ms`, sends ready batches (at most
//! `max.in.flight.requests.per.connection` requests per broker), answers flushes and gives
//! the memory of completed records back to `buffer.memory`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId, TopicName};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};
use uuid::Uuid;

use super::Command;
use super::accumulator::{Accumulator, Batch, PendingRecord};
use super::encode::encode_batch;
use super::idempotence::{Idempotence, ProducerIdAndEpoch, Verdict};
use super::partitioner::{StickyPartitioner, partition_for_key};
use crate::cluster::{Cluster, Metadata, Topics};
use crate::config::{Acks, ClientConfig};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::interceptor::ProducerInterceptors;
use crate::record::{RecordMetadata, TopicPartition};

/// Highest Produce version that addresses topics by name; v13 uses topic ids.
const LAST_PRODUCE_VERSION_BY_NAME: i16 = 12;
/// Commands handled per loop iteration at most.
const COMMAND_BURST: usize = 4096;

enum Event {
    Metadata(Result<()>),
    ProducerId(Result<ProducerIdAndEpoch>),
    Produced {
        node: i32,
        batches: Vec<Batch>,
        /// One outcome per batch, in order: (base offset, log append time).
        outcome: Outcomes,
    },
}

/// Records of one topic waiting for its metadata.
struct Waiting {
    records: VecDeque<PendingRecord>,
    since: Instant,
}

struct Sender {
    cluster: Arc<Cluster>,
    config: Arc<ClientConfig>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    accumulator: Accumulator,
    sticky: StickyPartitioner,
    /// Topics whose sticky partition already got a batch: the next new batch moves on.
    sticky_batch_started: BTreeSet<String>,
    /// Scratch key for routing, so that a record's partition is found without allocating.
    scratch_tp: TopicPartition,
    waiting: BTreeMap<String, Waiting>,
    topics_in_use: BTreeSet<String>,
    /// Sequence numbers of records not yet completed.
    outstanding: Outstanding,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    closing: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    metadata_in_flight: bool,
    metadata_wanted: bool,
    metadata_not_before: Instant,
    metadata_failures: u32,
    /// `None` without idempotence.
    idempotence: Option<Idempotence>,
    /// Produce requests in flight per broker, at most `max.in.flight.requests.per.connection`.
    in_flight: HashMap<i32, usize>,
    /// Per broker, the queue of its dispatcher task (see [`dispatcher`]).
    dispatchers: HashMap<i32, mpsc::UnboundedSender<Vec<Batch>>>,
    max_in_flight: usize,
    interceptors: ProducerInterceptors,
    /// `buffer.memory`; completed records' bytes go back to it once per loop iteration.
    memory: Arc<Semaphore>,
    to_release: usize,
}

/// What the sender task shares with the `Producer` handles.
pub(super) struct Shared {
    pub(super) interceptors: ProducerInterceptors,
    pub(super) memory: Arc<Semaphore>,
}

pub(super) async fn run(
    cluster: Arc<Cluster>,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Shared,
) {
    let config = cluster.config_arc();
    let (events_tx, events) = mpsc::unbounded_channel();
    let max_in_flight =
        usize::try_from(config.max_in_flight_requests_per_connection()).unwrap_or(usize::MAX);
    let mut sender = Sender {
        accumulator: Accumulator::new(config.batch_size(), config.linger(), max_in_flight),
        idempotence: config.idempotence().then(Idempotence::new),
        in_flight: HashMap::new(),
        dispatchers: HashMap::new(),
        max_in_flight,
        interceptors: shared.interceptors,
        memory: shared.memory,
        to_release: 0,
        cluster,
        config,
        commands,
        commands_open: true,
        events_tx,
        events,
        sticky: StickyPartitioner::default(),
        sticky_batch_started: BTreeSet::new(),
        scratch_tp: TopicPartition::new(String::new(), 0),
        waiting: BTreeMap::new(),
        topics_in_use: BTreeSet::new(),
        outstanding: Outstanding::default(),
        flushes: Vec::new(),
        closing: false,
        close_waiters: Vec::new(),
        metadata_in_flight: false,
        metadata_wanted: false,
        metadata_not_before: Instant::now(),
        metadata_failures: 0,
    };
    sender.run().await;
}

impl Sender {
    async fn run(&mut self) {
        loop {
            let wakeup = self.next_wakeup();
            tokio::select! {
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => {
                        let metadata = self.cluster.snapshot();
                        self.on_command(command, &metadata);
                        // Take more of what is queued in one go: a burst of sends should
                        // not cost one loop iteration each. Bounded, so a caller sending
                        // without pause cannot starve completions and sending.
                        for _ in 0..COMMAND_BURST {
                            match self.commands.try_recv() {
                                Ok(command) => self.on_command(command, &metadata),
                                Err(_) => break,
                            }
                        }
                    }
                    None => {
                        self.commands_open = false;
                        self.closing = true;
                    }
                },
                Some(event) = self.events.recv() => self.on_event(event),
                _ = sleep_until(wakeup) => {}
            }
            self.step();
            self.release_memory();
            if self.closing && self.outstanding.is_empty() {
                for waiter in self.close_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                debug!("producer closed");
                // Refuse what arrives after the close.
                self.commands.close();
                while let Ok(command) = self.commands.try_recv() {
                    self.reject(command);
                }
                self.release_memory();
                return;
            }
        }
    }

    fn release_memory(&mut self) {
        if self.to_release > 0 {
            self.memory
                .add_permits(std::mem::take(&mut self.to_release));
        }
    }

    /// Completes one record: its memory goes back, interceptors hear of it, its future
    /// resolves.
    fn finish(&mut self, record: PendingRecord, result: Result<RecordMetadata>, partition: i32) {
        self.outstanding.remove(record.seq);
        self.to_release += record.size;
        if !self.interceptors.is_empty() {
            match &result {
                Ok(metadata) => self.interceptors.on_acknowledgement(metadata, None),
                Err(e) => {
                    let metadata = RecordMetadata {
                        topic: record.topic.clone(),
                        partition,
                        offset: -1,
                        timestamp: -1,
                    };
                    self.interceptors.on_acknowledgement(&metadata, Some(e));
                }
            }
        }
        record.complete(result);
    }

    fn fail_batch(&mut self, batch: Batch, error: &ClientError) {
        if let Some(idempotence) = &mut self.idempotence {
            idempotence.failed(&batch);
        }
        let partition = batch.tp.partition;
        for record in batch.records {
            self.finish(record, Err(error.clone()), partition);
        }
    }

    fn reject(&mut self, command: Command) {
        match command {
            Command::Send(record) => self.finish(record, Err(ClientError::Closed), -1),
            Command::Flush { done, .. } | Command::Close { done } => {
                let _ = done.send(());
            }
        }
    }

    fn on_command(&mut self, command: Command, metadata: &Metadata) {
        match command {
            Command::Send(record) if self.closing => {
                self.finish(record, Err(ClientError::Closed), -1)
            }
            Command::Send(record)
                if self
                    .idempotence
                    .as_ref()
                    .is_some_and(|i| i.fatal().is_some()) =>
            {
                let e = self
                    .idempotence
                    .as_ref()
                    .and_then(|i| i.fatal().cloned())
                    .unwrap_or(ClientError::Closed);
                self.finish(record, Err(e), -1)
            }
            Command::Send(record) => {
                self.outstanding.insert(record.seq);
                if !self.topics_in_use.contains(&record.topic) {
                    self.topics_in_use.insert(record.topic.clone());
                }
                match self.waiting.get_mut(&record.topic) {
                    // Behind records already waiting, to keep the send order.
                    Some(waiting) => waiting.records.push_back(record),
                    None if has_partitions(metadata, &record.topic) => self.route(metadata, record),
                    None => {
                        self.metadata_wanted = true;
                        self.waiting.insert(
                            record.topic.clone(),
                            Waiting {
                                records: VecDeque::from([record]),
                                since: Instant::now(),
                            },
                        );
                    }
                }
            }
            Command::Flush { upto, done } => self.flushes.push((upto, done)),
            Command::Close { done } => {
                self.closing = true;
                self.close_waiters.push(done);
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Metadata(result) => {
                self.metadata_in_flight = false;
                let backoff = match &result {
                    Ok(()) => {
                        self.metadata_failures = 0;
                        self.config.retry_backoff()
                    }
                    Err(e) => {
                        debug!(error = %e, "metadata refresh failed");
                        self.metadata_wanted = true;
                        self.metadata_failures += 1;
                        self.cluster.backoff(self.metadata_failures - 1)
                    }
                };
                self.metadata_not_before = Instant::now() + backoff;
            }
            Event::ProducerId(result) => {
                let cluster = &self.cluster;
                if let Some(idempotence) = &mut self.idempotence {
                    if result
                        .as_ref()
                        .is_err_and(ClientError::invalidates_metadata)
                    {
                        self.metadata_wanted = true;
                    }
                    idempotence.init_finished(result, |attempt| cluster.backoff(attempt));
                    if let Some(fatal) = idempotence.fatal().cloned() {
                        for batch in self.accumulator.take_all_queued() {
                            self.fail_batch(batch, &fatal);
                        }
                    }
                }
            }
            Event::Produced {
                node,
                batches,
                outcome,
            } => {
                if let Some(n) = self.in_flight.get_mut(&node) {
                    *n = n.saturating_sub(1);
                }
                self.on_produced(batches, outcome);
            }
        }
    }

    fn on_produced(&mut self, batches: Vec<Batch>, outcome: Outcomes) {
        {
            match outcome {
                Ok(results) => {
                    for (batch, result) in batches.into_iter().zip(results) {
                        match result {
                            Ok((base_offset, append_time)) => {
                                self.complete_batch(batch, base_offset, append_time)
                            }
                            Err(e) => self.batch_failed(batch, e),
                        }
                    }
                }
                Err(e) => {
                    for batch in batches {
                        self.batch_failed(batch, e.clone());
                    }
                }
            }
        }
    }

    /// Routes a record whose topic has metadata to its partition's batch.
    fn route(&mut self, metadata: &Metadata, record: PendingRecord) {
        let Some(topic) = metadata.topic(&record.topic) else {
            let e = ClientError::Protocol(format!("no metadata for topic {}", record.topic));
            return self.fail_record(record, e);
        };
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < 0 || p >= count => {
                let e = ClientError::InvalidArgument(format!(
                    "Invalid partition given with record: {p} is not in the range [0...{count})."
                ));
                return self.fail_record(record, e);
            }
            (Some(p), _) => p,
            (None, _) if self.config.partitioner().is_some() => {
                let available: Vec<i32> = topic
                    .partitions
                    .iter()
                    .filter(|p| p.leader.is_some())
                    .map(|p| p.partition)
                    .collect();
                let chosen = self.config.partitioner().map_or(0, |custom| {
                    custom.partition(
                        &record.topic,
                        record.key.as_deref(),
                        record.value.as_deref(),
                        count,
                        &available,
                    )
                });
                if chosen < 0 || chosen >= count {
                    let e = ClientError::InvalidArgument(format!(
                        "the partitioner chose partition {chosen} of {} ({count} partitions)",
                        record.topic
                    ));
                    return self.fail_record(record, e);
                }
                chosen
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                let available = || -> Vec<i32> {
                    topic
                        .partitions
                        .iter()
                        .filter(|p| p.leader.is_some())
                        .map(|p| p.partition)
                        .collect()
                };
                let current = match self.sticky.current(&record.topic, count) {
                    Some(p) => p,
                    None => self.sticky.partition(&record.topic, count, &available()),
                };
                self.scratch_tp.topic.clear();
                self.scratch_tp.topic.push_str(&record.topic);
                self.scratch_tp.partition = current;
                if self
                    .accumulator
                    .fits_open_batch(&self.scratch_tp, record.size)
                {
                    current
                } else if !self.sticky_batch_started.contains(&record.topic) {
                    // First batch on this sticky partition.
                    self.sticky_batch_started.insert(record.topic.clone());
                    current
                } else {
                    // KIP-480: a new batch is needed, so switch partitions.
                    self.sticky
                        .next(&record.topic, count, &available(), Some(current))
                }
            }
        };
        // A reused key: looking the partition up needs no new `String` per record.
        self.scratch_tp.topic.clear();
        self.scratch_tp.topic.push_str(&record.topic);
        self.scratch_tp.partition = partition;
        self.accumulator
            .append(&self.scratch_tp, record, Instant::now);
    }

    fn fail_record(&mut self, record: PendingRecord, error: ClientError) {
        let partition = record.partition.unwrap_or(-1);
        self.finish(record, Err(error), partition);
    }

    fn complete_batch(&mut self, batch: Batch, base_offset: i64, append_time: i64) {
        self.accumulator.finished(&batch.tp);
        if let Some(idempotence) = &mut self.idempotence {
            idempotence.acknowledged(&batch);
        }
        // One metadata for the whole batch, updated per record: interceptors borrow it, and
        // a record's future gets its own copy only if somebody still awaits it.
        let mut metadata = RecordMetadata {
            topic: batch.tp.topic,
            partition: batch.tp.partition,
            offset: -1,
            timestamp: -1,
        };
        for (i, record) in batch.records.into_iter().enumerate() {
            metadata.offset = if base_offset >= 0 {
                base_offset + i as i64
            } else {
                -1
            };
            metadata.timestamp = if append_time >= 0 {
                append_time
            } else {
                record.timestamp
            };
            self.outstanding.remove(record.seq);
            self.to_release += record.size;
            if !self.interceptors.is_empty() {
                self.interceptors.on_acknowledgement(&metadata, None);
            }
            if !record.abandoned() {
                record.complete(Ok(metadata.clone()));
            }
        }
    }

    fn batch_failed(&mut self, mut batch: Batch, error: ClientError) {
        let tp = batch.tp.clone();
        if error.code() == Some(ErrorCode::DuplicateSequenceNumber) {
            // The broker has this batch but no longer the metadata of its first write, so
            // the offsets are unknown (Java completes it the same way).
            debug!(%tp, "duplicate sequence: already written");
            return self.complete_batch(batch, -1, -1);
        }
        if error.invalidates_metadata() {
            self.metadata_wanted = true;
        }
        if error.code() == Some(ErrorCode::MessageTooLarge) && batch.records.len() > 1 {
            debug!(%tp, records = batch.records.len(), "batch too large, splitting");
            return self.accumulator.requeue(&tp, batch.split());
        }
        let verdict = match &mut self.idempotence {
            Some(idempotence) => idempotence.on_error(&batch, error.code()),
            None => Verdict::Usual,
        };
        let retriable = verdict == Verdict::Retry || error.is_retriable();
        let now = Instant::now();
        let expired = now >= batch.created + self.config.delivery_timeout();
        if retriable && batch.attempts < self.config.retries() && !expired {
            let backoff = self.cluster.backoff(batch.attempts);
            batch.attempts += 1;
            batch.retry_at = Some(now + backoff);
            debug!(%tp, attempt = batch.attempts, error = %error, "retrying batch");
            return self.accumulator.requeue(&tp, vec![batch]);
        }
        warn!(%tp, records = batch.records.len(), error = %error, "batch failed");
        self.accumulator.finished(&tp);
        self.fail_batch(batch, &error);
    }

    fn step(&mut self) {
        let now = Instant::now();
        self.route_waiting(now);
        self.expire(now);
        if let Some(fatal) = self.idempotence.as_ref().and_then(|i| i.fatal().cloned()) {
            for batch in self.accumulator.take_all_queued() {
                self.fail_batch(batch, &fatal);
            }
        }
        self.send_ready(now);
        if self
            .idempotence
            .as_ref()
            .and_then(Idempotence::init_due)
            .is_some_and(|due| due <= now)
        {
            self.spawn_init_producer_id();
        }
        if self
            .cluster
            .snapshot()
            .is_stale(self.config.metadata_max_age())
            && !self.topics_in_use.is_empty()
        {
            self.metadata_wanted = true;
        }
        if self.metadata_wanted && !self.metadata_in_flight && now >= self.metadata_not_before {
            self.spawn_metadata_refresh();
        }
        let mut unfinished = Vec::with_capacity(self.flushes.len());
        for (upto, done) in std::mem::take(&mut self.flushes) {
            if self.outstanding.any_below(upto) {
                unfinished.push((upto, done));
            } else {
                let _ = done.send(());
            }
        }
        self.flushes = unfinished;
    }

    /// Moves records whose topic metadata is now known into batches; fails those whose topic
    /// cannot be used or did not appear within `max.block.ms`.
    fn route_waiting(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        let metadata = self.cluster.snapshot();
        let topics: Vec<String> = self.waiting.keys().cloned().collect();
        for topic in topics {
            let fatal = metadata.topic_errors.get(&topic).filter(|code| {
                !code.is_retriable() && **code != ErrorCode::UnknownTopicOrPartition
            });
            let timed_out = self
                .waiting
                .get(&topic)
                .is_some_and(|w| now >= w.since + self.config.max_block());
            if has_partitions(&metadata, &topic) {
                if let Some(waiting) = self.waiting.remove(&topic) {
                    for record in waiting.records {
                        self.route(&metadata, record);
                    }
                }
            } else if fatal.is_some() || timed_out {
                let error = match fatal {
                    Some(code) => ClientError::kafka(*code, Some(format!("topic {topic}"))),
                    None => ClientError::timeout(
                        format!("Topic {topic} not present in metadata"),
                        self.config.max_block(),
                    ),
                };
                if let Some(waiting) = self.waiting.remove(&topic) {
                    for record in waiting.records {
                        self.fail_record(record, error.clone());
                    }
                }
            } else {
                self.metadata_wanted = true;
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.config.delivery_timeout()) else {
            return;
        };
        for batch in self.accumulator.expire(cutoff) {
            let error = ClientError::timeout(
                format!(
                    "Expiring {} record(s) for {}: delivery.timeout.ms has passed since batch creation",
                    batch.records.len(),
                    batch.tp
                ),
                self.config.delivery_timeout(),
            );
            self.fail_batch(batch, &error);
        }
    }

    /// Groups ready batches by leader into Produce requests of at most `max.request.size`,
    /// leaving batches queued for brokers with `max.in.flight.requests.per.connection`
    /// requests outstanding.
    fn send_ready(&mut self, now: Instant) {
        let force = self.closing || !self.flushes.is_empty();
        let idempotence = &self.idempotence;
        let gate = |tp: &TopicPartition, front: &Batch, in_flight: usize| {
            idempotence
                .as_ref()
                .is_none_or(|i| i.may_drain(tp, front, in_flight))
        };
        let ready = self.accumulator.ready(now, force, &gate);
        if ready.is_empty() {
            return;
        }
        let metadata = self.cluster.snapshot();
        let limit = self.config.max_request_size();
        let mut requests: HashMap<i32, Vec<(usize, Vec<Batch>)>> = HashMap::new();
        for tp in ready {
            let Some(leader) = metadata.leader(&tp) else {
                // Wait for metadata to name a leader; checking again right away would spin.
                self.metadata_wanted = true;
                self.accumulator
                    .delay_front(&tp, now + self.config.retry_backoff());
                continue;
            };
            let size = self.accumulator.front_size(&tp).unwrap_or(0);
            let in_flight = self.in_flight.get(&leader).copied().unwrap_or(0);
            let node_requests = requests.entry(leader).or_default();
            let open = node_requests
                .last()
                .is_some_and(|(bytes, _)| bytes + size <= limit);
            if !open && in_flight + node_requests.len() >= self.max_in_flight {
                continue;
            }
            if let Some(idempotence) = &mut self.idempotence
                && let Some(front) = self.accumulator.front(&tp)
                && idempotence.prepare(&tp, front)
            {
                self.accumulator.clear_sequences(&tp);
            }
            let Some(mut batch) = self.accumulator.take_front(&tp) else {
                continue;
            };
            if let Some(idempotence) = &mut self.idempotence {
                idempotence.assign(&mut batch);
            }
            match node_requests.last_mut().filter(|_| open) {
                Some((bytes, batches)) => {
                    *bytes += size;
                    batches.push(batch);
                }
                None => node_requests.push((size, vec![batch])),
            }
        }
        for (node, node_requests) in requests {
            for (_, batches) in node_requests {
                *self.in_flight.entry(node).or_default() += 1;
                self.dispatch(node, batches);
            }
        }
    }

    /// Hands a request to `node`'s dispatcher, which writes requests in the order given.
    fn dispatch(&mut self, node: i32, batches: Vec<Batch>) {
        let queue = self.dispatchers.entry(node).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(dispatcher(
                self.cluster.clone(),
                node,
                rx,
                self.events_tx.clone(),
            ));
            tx
        });
        if let Err(mpsc::error::SendError(batches)) = queue.send(batches) {
            // The dispatcher is gone (cannot happen while the sender runs): retry the batches.
            self.dispatchers.remove(&node);
            let _ = self.events_tx.send(Event::Produced {
                node,
                batches,
                outcome: Err(ClientError::Disconnected {
                    addr: format!("node {node}"),
                }),
            });
        }
    }

    /// Asks any broker for a producer id (Java sends it to the least loaded node), with the
    /// current id and epoch when re-initialising after a sequence problem (KIP-360, v3+).
    fn spawn_init_producer_id(&mut self) {
        let Some(idempotence) = &mut self.idempotence else {
            return;
        };
        let current = idempotence.init_started();
        let cluster = self.cluster.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result = init_producer_id(&cluster, current).await;
            let _ = events.send(Event::ProducerId(result));
        });
    }

    fn spawn_metadata_refresh(&mut self) {
        self.metadata_wanted = false;
        self.metadata_in_flight = true;
        let topics: Vec<String> = self
            .topics_in_use
            .iter()
            .chain(self.waiting.keys())
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let cluster = self.cluster.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result = cluster.refresh(Topics::Named(&topics)).await.map(|_| ());
            let _ = events.send(Event::Metadata(result));
        });
    }

    fn next_wakeup(&self) -> Instant {
        let now = Instant::now();
        let force = self.closing || !self.flushes.is_empty();
        let mut wakeup = now + Duration::from_secs(3600);
        let idempotence = &self.idempotence;
        let gate = |tp: &TopicPartition, front: &Batch, in_flight: usize| {
            idempotence
                .as_ref()
                .is_none_or(|i| i.may_drain(tp, front, in_flight))
        };
        if let Some(t) = self.accumulator.next_ready_time(force, &gate) {
            wakeup = wakeup.min(t);
        }
        if let Some(due) = self.idempotence.as_ref().and_then(Idempotence::init_due) {
            wakeup = wakeup.min(due);
        }
        if let Some(w) = self.waiting.values().map(|w| w.since).min() {
            wakeup = wakeup.min(w + self.config.max_block());
        }
        if let Some(oldest) = self.accumulator.oldest_batch() {
            wakeup = wakeup.min(oldest + self.config.delivery_timeout());
        }
        if !self.metadata_in_flight {
            let stale_at = self
                .cluster
                .snapshot()
                .updated
                .filter(|_| !self.topics_in_use.is_empty())
                .map(|updated| updated + self.config.metadata_max_age());
            let due = if self.metadata_wanted {
                Some(now)
            } else {
                stale_at
            };
            // Never before the backoff after a failed refresh, or a stale cache that cannot
            // be refreshed would spin this loop.
            if let Some(due) = due {
                wakeup = wakeup.min(due.max(self.metadata_not_before));
            }
        }
        wakeup.max(now)
    }
}

/// Send sequence numbers of the records not yet completed. Records arrive in about send
/// order and complete in about that order, so a window of flags from the oldest outstanding
/// one does in O(1) what a `BTreeSet` did in a tree walk per record (a visible cost at a
/// million records a second).
#[derive(Debug, Default)]
struct Outstanding {
    /// Sequence number of `flags[0]`; `flags[0]` is true whenever `flags` is not empty.
    base: u64,
    flags: VecDeque<bool>,
    count: usize,
}

impl Outstanding {
    fn insert(&mut self, seq: u64) {
        if self.flags.is_empty() {
            self.base = seq;
        }
        while seq < self.base {
            self.flags.push_front(false);
            self.base -= 1;
        }
        let at = usize::try_from(seq - self.base).unwrap_or(usize::MAX);
        if at >= self.flags.len() {
            self.flags.resize(at + 1, false);
        }
        if !self.flags[at] {
            self.flags[at] = true;
            self.count += 1;
        }
    }

    fn remove(&mut self, seq: u64) {
        let Some(at) = seq
            .checked_sub(self.base)
            .and_then(|at| usize::try_from(at).ok())
        else {
            return;
        };
        if let Some(flag) = self.flags.get_mut(at)
            && *flag
        {
            *flag = false;
            self.count -= 1;
            while self.flags.front() == Some(&false) {
                self.flags.pop_front();
                self.base += 1;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// True when a record with a sequence number below `upto` is outstanding.
    fn any_below(&self, upto: u64) -> bool {
        !self.flags.is_empty() && self.base < upto
    }
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t).await
}

fn has_partitions(metadata: &Metadata, topic: &str) -> bool {
    metadata
        .topic(topic)
        .is_some_and(|t| !t.partitions.is_empty())
}

/// One outcome per batch of a Produce request: (base offset, log append time) or the error.
type Outcomes = Result<Vec<Result<(i64, i64)>>>;

/// Writes `node`'s Produce requests one after the other, in the order the sender drained
/// them, and lets their responses be awaited concurrently (up to
/// `max.in.flight.requests.per.connection`, which the sender enforces). Spawning a task per
/// request would let a later request reach the socket first: the broker would then see
/// sequence numbers out of order, and without idempotence records would be reordered.
///
/// After a request could not be written, the requests already queued behind it fail too
/// (and are retried in order by the sender) rather than overtaking it on a new connection.
async fn dispatcher(
    cluster: Arc<Cluster>,
    node: i32,
    mut queue: mpsc::UnboundedReceiver<Vec<Batch>>,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(batches) = queue.recv().await {
        let started = match cluster.connection(node).await {
            Ok(conn) => start_produce(&cluster, &conn, &batches).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(response) => {
                let events = events.clone();
                tokio::spawn(async move {
                    let outcome = response.await;
                    let _ = events.send(Event::Produced {
                        node,
                        batches,
                        outcome,
                    });
                });
            }
            Err(e) => {
                let _ = events.send(Event::Produced {
                    node,
                    batches,
                    outcome: Err(e.clone()),
                });
                while let Ok(batches) = queue.try_recv() {
                    let _ = events.send(Event::Produced {
                        node,
                        batches,
                        outcome: Err(e.clone()),
                    });
                }
            }
        }
    }
}

/// Writes one Produce request with `batches` on `conn`; the returned future gives one
/// outcome per batch. With `acks=0` the request is written before this returns.
async fn start_produce(
    cluster: &Cluster,
    conn: &Arc<Connection>,
    batches: &[Batch],
) -> Result<Pin<Box<dyn Future<Output = Outcomes> + Send>>> {
    let config = cluster.config();
    let metadata = cluster.snapshot();
    let ids: Option<Vec<Uuid>> = batches
        .iter()
        .map(|b| metadata.topic_id(&b.tp.topic))
        .collect();
    let cap = if ids.is_some() {
        None
    } else {
        Some(LAST_PRODUCE_VERSION_BY_NAME)
    };
    let version = conn.version::<ProduceRequest>(cap)?;
    let by_id = version > LAST_PRODUCE_VERSION_BY_NAME;

    let mut outcomes: Vec<Option<Result<(i64, i64)>>> = vec![None; batches.len()];
    // Topic key (name or id) -> partitions, in first-seen order.
    let mut topics: Vec<(String, Uuid, Vec<PartitionProduceData>)> = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        let records = match encode_batch(&batch.records, batch.sequence, config.compression()) {
            Ok(bytes) => bytes,
            Err(e) => {
                outcomes[i] = Some(Err(e));
                continue;
            }
        };
        let data = PartitionProduceData::default()
            .with_index(batch.tp.partition)
            .with_records(Some(records));
        let id = metadata.topic_id(&batch.tp.topic).unwrap_or_default();
        match topics
            .iter_mut()
            .find(|(name, _, _)| *name == batch.tp.topic)
        {
            Some((_, _, partitions)) => partitions.push(data),
            None => topics.push((batch.tp.topic.clone(), id, vec![data])),
        }
    }
    let topic_data = topics
        .into_iter()
        .map(|(name, id, partitions)| {
            let t = TopicProduceData::default().with_partition_data(partitions);
            if by_id {
                t.with_topic_id(id)
            } else {
                t.with_name(TopicName(StrBytes::from_string(name)))
            }
        })
        .collect();
    let timeout_ms = i32::try_from(config.request_timeout().as_millis()).unwrap_or(i32::MAX);
    let request = ProduceRequest::default()
        .with_acks(config.acks().wire_value())
        .with_timeout_ms(timeout_ms)
        .with_topic_data(topic_data);

    if config.acks() == Acks::None {
        conn.send_only(&request, version).await?;
        let done: Outcomes = Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Ok((-1, -1))))
            .collect());
        return Ok(Box::pin(std::future::ready(done)));
    }
    let response = conn.start_call(&request, version, config.request_timeout())?;
    let keys: Vec<(String, i32)> = batches
        .iter()
        .map(|b| (b.tp.topic.clone(), b.tp.partition))
        .collect();
    Ok(Box::pin(async move {
        let response = response.await?;
        let mut results: HashMap<(String, i32), Result<(i64, i64)>> = HashMap::new();
        for topic in response.responses {
            let name = if by_id {
                metadata
                    .topics
                    .values()
                    .find(|t| t.topic_id == Some(topic.topic_id))
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            } else {
                topic.name.0.to_string()
            };
            for p in topic.partition_responses {
                let result = ClientError::check(p.error_code, p.error_message.as_deref())
                    .map(|()| (p.base_offset, p.log_append_time_ms));
                results.insert((name.clone(), p.index), result);
            }
        }
        Ok(keys
            .into_iter()
            .zip(outcomes)
            .map(|(key, outcome)| {
                outcome.unwrap_or_else(|| {
                    results.remove(&key).unwrap_or_else(|| {
                        Err(ClientError::Protocol(format!(
                            "the Produce response has no answer for {}-{}",
                            key.0, key.1
                        )))
                    })
                })
            })
            .collect())
    }))
}

/// One InitProducerId round trip for an idempotent (non-transactional) producer.
async fn init_producer_id(
    cluster: &Cluster,
    current: Option<ProducerIdAndEpoch>,
) -> Result<ProducerIdAndEpoch> {
    let config = cluster.config();
    let conn = cluster.any_connection().await?;
    let version = conn.version::<InitProducerIdRequest>(None)?;
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        // What Java's client sends without a transactional id.
        .with_transaction_timeout_ms(i32::MAX);
    if version >= 3 {
        let (id, epoch) = current.map_or((-1, -1), |c| (c.id, c.epoch));
        request = request
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
    }
    let response = conn
        .call_at(&request, version, config.request_timeout())
        .await?;
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
