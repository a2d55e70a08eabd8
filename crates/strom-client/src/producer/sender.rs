//! The producer's background task: owner of the idempotence state and of the requests in
//! flight. It waits on four things — the nudge `send` gives when a batch starts or fills up,
//! flush and close requests, completions of the requests (Produce, Metadata, InitProducerId)
//! it spawned, and the next time a batch becomes sendable. After each wakeup it takes the
//! producer's lock once to route records whose topic metadata arrived, expire batches past
//! `delivery.timeout.ms` and take the ready batches (at most
//! `max.in.flight.requests.per.connection` requests per broker); then, without the lock, it
//! sends them, publishes outcomes, answers flushes and gives the memory of completed records
//! back to `buffer.memory`.
//!
//! For a transactional producer the drain also gates on the transaction: a partition's
//! batches wait until the partition is in the transaction; the partitions each round finds
//! waiting go in one AddPartitionsToTxn (one at a time, retried with backoff), whose answer
//! opens the gate. While a transaction aborts (or can only be aborted) the batches never
//! sent are failed instead of drained.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};
use uuid::Uuid;

use super::Command;
use super::accumulator::{Accumulator, Batch, PerRecord};
use super::front::{Front, WaitingRecord};
use super::idempotence::{Idempotence, ProducerIdAndEpoch, Verdict};
use super::transaction::{TxnManager, add_partitions};
use crate::admin::coordinator::CoordinatorCache;
use crate::cluster::{Cluster, Topics};
use crate::config::{Acks, ClientConfig};
use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::interceptor::ProducerInterceptors;
use crate::record::{RecordMetadata, TopicPartition};

type AddResult = Result<Vec<(TopicPartition, Option<ClientError>)>>;

/// Highest Produce version that addresses topics by name; v13 uses topic ids.
const LAST_PRODUCE_VERSION_BY_NAME: i16 = 12;

enum Event {
    Metadata(Result<()>),
    ProducerId(Result<ProducerIdAndEpoch>),
    /// The answer to an AddPartitionsToTxn.
    PartitionsAdded {
        partitions: Vec<TopicPartition>,
        result: AddResult,
    },
    Produced {
        node: i32,
        batches: Vec<Batch>,
        /// One outcome per batch, in order: (base offset, log append time).
        outcome: Outcomes,
    },
}

/// A batch's final outcome: (base offset, log append time) or why it failed.
type Final = std::result::Result<(i64, i64), ClientError>;

struct Sender {
    cluster: Arc<Cluster>,
    config: Arc<ClientConfig>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    front: Arc<Mutex<Front>>,
    wake: Arc<Notify>,
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
    coordinators: Arc<CoordinatorCache>,
}

/// What the sender task shares with the `Producer` handles.
pub(super) struct Shared {
    pub(super) interceptors: ProducerInterceptors,
    pub(super) memory: Arc<Semaphore>,
    pub(super) front: Arc<Mutex<Front>>,
    pub(super) wake: Arc<Notify>,
    pub(super) coordinators: Arc<CoordinatorCache>,
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
        idempotence: config
            .idempotence()
            .then(|| Idempotence::new(config.transactional_id().is_some())),
        coordinators: shared.coordinators,
        in_flight: HashMap::new(),
        dispatchers: HashMap::new(),
        max_in_flight,
        interceptors: shared.interceptors,
        memory: shared.memory,
        front: shared.front,
        wake: shared.wake,
        to_release: 0,
        cluster,
        config,
        commands,
        commands_open: true,
        events_tx,
        events,
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

fn lock(front: &Mutex<Front>) -> MutexGuard<'_, Front> {
    front.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sender {
    async fn run(&mut self) {
        loop {
            let wakeup = self.next_wakeup();
            tokio::select! {
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.on_command(command),
                    None => {
                        // Every handle is gone: deliver what was sent, then stop.
                        self.commands_open = false;
                        self.start_closing();
                    }
                },
                Some(event) = self.events.recv() => {
                    self.on_event(event);
                    while let Ok(event) = self.events.try_recv() {
                        self.on_event(event);
                    }
                }
                () = self.wake.notified() => {}
                () = sleep_until(wakeup) => {}
            }
            let closed = self.step();
            self.release_memory();
            if closed {
                for waiter in self.close_waiters.drain(..) {
                    let _ = waiter.send(());
                }
                debug!("producer closed");
                // Refuse what arrives after the close.
                self.commands.close();
                while let Ok(command) = self.commands.try_recv() {
                    match command {
                        Command::Flush { done, .. } | Command::Close { done } => {
                            let _ = done.send(());
                        }
                    }
                }
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

    fn start_closing(&mut self) {
        self.closing = true;
        lock(&self.front).closing = true;
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Flush { upto, done } => self.flushes.push((upto, done)),
            Command::Close { done } => {
                self.start_closing();
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
                    // A fatal outcome fails the queued batches in the next step.
                    idempotence.init_finished(result, |attempt| cluster.backoff(attempt));
                }
            }
            Event::PartitionsAdded { partitions, result } => {
                let cluster = &self.cluster;
                if let Some(txn) = lock(&self.front).txn.as_mut() {
                    txn.add_finished(partitions, result, |attempt| cluster.backoff(attempt));
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
        let results = match outcome {
            Ok(results) => results,
            Err(e) => vec![Err(e); batches.len()],
        };
        let mut finished = Vec::with_capacity(batches.len());
        {
            let front = self.front.clone();
            let mut front = lock(&front);
            for (batch, result) in batches.into_iter().zip(results) {
                let outcome = match result {
                    Ok(result) => Some((batch, Ok(result))),
                    Err(e) => self.batch_failed(&mut front.accumulator, batch, e),
                };
                if let Some((batch, result)) = outcome {
                    if let (Some(txn), Err(e)) = (front.txn.as_mut(), &result) {
                        txn.batch_failed(e);
                    }
                    front.accumulator.finished(batch.queue);
                    front.accumulator.done(&batch);
                    if let Some(idempotence) = &mut self.idempotence {
                        match &result {
                            Ok(_) => idempotence.acknowledged(&batch),
                            Err(_) => idempotence.failed(&batch),
                        }
                    }
                    finished.push((batch, result));
                }
            }
        }
        for (batch, result) in finished {
            self.publish(batch, result);
        }
    }

    /// Decides what becomes of a batch the broker refused: back into the accumulator for a
    /// retry (whole or split), or its final outcome.
    fn batch_failed(
        &mut self,
        accumulator: &mut Accumulator,
        mut batch: Batch,
        mut error: ClientError,
    ) -> Option<(Batch, Final)> {
        let tp = batch.tp.clone();
        if error.code() == Some(ErrorCode::DuplicateSequenceNumber) {
            // The broker has this batch but no longer the metadata of its first write, so
            // the offsets are unknown (Java completes it the same way).
            debug!(%tp, "duplicate sequence: already written");
            return Some((batch, Ok((-1, -1))));
        }
        if error.invalidates_metadata() {
            self.metadata_wanted = true;
        }
        if error.code() == Some(ErrorCode::MessageTooLarge) && batch.len() > 1 {
            match batch.records(self.config.compression()) {
                Ok(records) => {
                    debug!(%tp, records = batch.len(), "batch too large, splitting");
                    let queue = batch.queue;
                    accumulator.requeue(queue, batch.split(records));
                    return None;
                }
                Err(e) => error = e,
            }
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
            let queue = batch.queue;
            accumulator.requeue(queue, vec![batch]);
            return None;
        }
        warn!(%tp, records = batch.len(), error = %error, "batch failed");
        Some((batch, Err(error)))
    }

    /// Publishes a batch's final outcome: its memory goes back, interceptors hear of each
    /// record, its futures resolve. The batch is already out of the accumulator.
    fn publish(&mut self, batch: Batch, result: Final) {
        self.to_release += batch.reserved;
        let interceptors = &self.interceptors;
        let mut each =
            |m: &RecordMetadata, e: Option<&ClientError>| interceptors.on_acknowledgement(m, e);
        let each: Option<&mut PerRecord<'_>> = if interceptors.is_empty() {
            None
        } else {
            Some(&mut each)
        };
        batch.complete(result.as_ref().copied(), each);
    }

    /// Fails a record that never reached a batch.
    fn fail_waiting(&mut self, waiting: WaitingRecord, error: ClientError, partition: i32) {
        self.to_release += waiting.size;
        if !self.interceptors.is_empty() {
            let metadata = RecordMetadata {
                topic: waiting.record.topic.clone(),
                partition,
                offset: -1,
                timestamp: -1,
            };
            self.interceptors
                .on_acknowledgement(&metadata, Some(&error));
        }
        waiting.completion.fail_one(partition, error);
    }

    /// One round of work after a wakeup; true once the producer is closed and has nothing
    /// left to deliver.
    fn step(&mut self) -> bool {
        let now = Instant::now();
        let front = self.front.clone();
        let mut front = lock(&front);
        if let Some(txn) = front.txn.as_mut() {
            if let Some(producer) = txn.take_new_producer()
                && let Some(idempotence) = &mut self.idempotence
            {
                idempotence.set_producer(producer);
            }
            txn.epoch_bump_needed = self
                .idempotence
                .as_ref()
                .is_some_and(Idempotence::reset_wanted);
        }
        front.set_metadata(self.cluster.snapshot());
        let mut failed_waiting = front.route_waiting(now, self.config.max_block());
        if std::mem::take(&mut front.metadata_wanted) {
            self.metadata_wanted = true;
        }
        let mut failed: Vec<(Batch, ClientError)> = Vec::new();
        if let Some(cutoff) = now.checked_sub(self.config.delivery_timeout()) {
            for batch in front.accumulator.expire(cutoff) {
                front.accumulator.done(&batch);
                let error = ClientError::timeout(
                    format!(
                        "Expiring {} record(s) for {}: delivery.timeout.ms has passed since batch creation",
                        batch.len(),
                        batch.tp
                    ),
                    self.config.delivery_timeout(),
                );
                failed.push((batch, error));
            }
        }
        let fatal = self
            .idempotence
            .as_ref()
            .and_then(|i| i.fatal().cloned())
            .or_else(|| front.txn.as_ref().and_then(|t| t.fatal_error().cloned()));
        if let Some(fatal) = fatal {
            front.fatal = Some(fatal.clone());
            for batch in front.accumulator.take_all_queued() {
                front.accumulator.done(&batch);
                failed.push((batch, fatal.clone()));
            }
        } else if let Some(error) = front.txn.as_ref().and_then(TxnManager::undrained_error) {
            for batch in front.accumulator.take_undrained() {
                front.accumulator.done(&batch);
                failed.push((batch, error.clone()));
            }
            for (waiting, partition) in front.take_waiting() {
                failed_waiting.push((waiting, error.clone(), partition));
            }
        }
        let mut add_request = None;
        {
            let Front {
                accumulator, txn, ..
            } = &mut *front;
            if let Some(txn) = txn.as_mut() {
                for (_, error) in &failed {
                    txn.batch_failed(error);
                }
                for (_, error, _) in &failed_waiting {
                    txn.batch_failed(error);
                }
                if txn.adds_partitions() {
                    for tp in accumulator.queued_partitions() {
                        txn.want(tp);
                    }
                    add_request = txn
                        .take_add_request(now)
                        .map(|(producer, partitions)| (txn.id.clone(), producer, partitions));
                }
            }
        }
        let requests = {
            let Front {
                accumulator, txn, ..
            } = &mut *front;
            self.take_ready(accumulator, txn.as_ref(), now)
        };
        if front.has_topics()
            && self
                .cluster
                .snapshot()
                .is_stale(self.config.metadata_max_age())
        {
            self.metadata_wanted = true;
        }
        let refresh =
            self.metadata_wanted && !self.metadata_in_flight && now >= self.metadata_not_before;
        let topics = if refresh { front.topics() } else { Vec::new() };
        let mut answered = Vec::new();
        let outstanding = &front.accumulator.outstanding;
        // A commit or abort flushes first: its EndTxn must not overtake an AddPartitionsToTxn.
        let adding = front.txn.as_ref().is_some_and(TxnManager::adding);
        self.flushes.retain_mut(|(upto, done)| {
            if adding || outstanding.any_below(*upto) {
                return true;
            }
            let (placeholder, _) = oneshot::channel();
            answered.push(std::mem::replace(done, placeholder));
            false
        });
        let closed = self.closing && outstanding.is_empty();
        drop(front);

        for (waiting, error, partition) in failed_waiting {
            self.fail_waiting(waiting, error, partition);
        }
        for (batch, error) in failed {
            if let Some(idempotence) = &mut self.idempotence {
                idempotence.failed(&batch);
            }
            self.publish(batch, Err(error));
        }
        for (node, batches) in requests {
            *self.in_flight.entry(node).or_default() += 1;
            self.dispatch(node, batches);
        }
        if let Some((id, producer, partitions)) = add_request {
            self.spawn_add_partitions(id, producer, partitions);
        }
        if self
            .idempotence
            .as_ref()
            .and_then(Idempotence::init_due)
            .is_some_and(|due| due <= now)
        {
            self.spawn_init_producer_id();
        }
        if refresh {
            self.spawn_metadata_refresh(topics);
        }
        for done in answered {
            let _ = done.send(());
        }
        closed
    }

    /// Takes the ready batches, grouped by leader into Produce requests of at most
    /// `max.request.size`, leaving batches queued for brokers with
    /// `max.in.flight.requests.per.connection` requests outstanding.
    fn take_ready(
        &mut self,
        accumulator: &mut Accumulator,
        txn: Option<&TxnManager>,
        now: Instant,
    ) -> Vec<(i32, Vec<Batch>)> {
        let force = self.closing || !self.flushes.is_empty();
        let idempotence = &self.idempotence;
        let gate = |tp: &TopicPartition, front: &Batch, in_flight: usize| {
            txn.is_none_or(|t| t.in_transaction(tp))
                && idempotence
                    .as_ref()
                    .is_none_or(|i| i.may_drain(tp, front, in_flight))
        };
        let ready = accumulator.ready(now, force, &gate);
        if ready.is_empty() {
            return Vec::new();
        }
        let metadata = self.cluster.snapshot();
        let limit = self.config.max_request_size();
        let mut requests: HashMap<i32, Vec<(usize, Vec<Batch>)>> = HashMap::new();
        for queue in ready {
            let Some(leader) = metadata.leader(accumulator.tp(queue)) else {
                // Wait for metadata to name a leader; checking again right away would spin.
                self.metadata_wanted = true;
                accumulator.delay_front(queue, now + self.config.retry_backoff());
                continue;
            };
            let size = accumulator.front(queue).map_or(0, Batch::encoded_size);
            let in_flight = self.in_flight.get(&leader).copied().unwrap_or(0);
            let node_requests = requests.entry(leader).or_default();
            let open = node_requests
                .last()
                .is_some_and(|(bytes, _)| bytes + size <= limit);
            if !open && in_flight + node_requests.len() >= self.max_in_flight {
                continue;
            }
            if let Some(idempotence) = &mut self.idempotence
                && let Some(front) = accumulator.front(queue)
                && idempotence.prepare(&front.tp, front)
            {
                accumulator.clear_sequences(queue);
            }
            let Some(mut batch) = accumulator.take_front(queue) else {
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
        requests
            .into_iter()
            .flat_map(|(node, node_requests)| {
                node_requests
                    .into_iter()
                    .map(move |(_, batches)| (node, batches))
            })
            .collect()
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

    /// Asks the transaction coordinator to add `partitions` to the transaction.
    fn spawn_add_partitions(
        &mut self,
        id: String,
        producer: ProducerIdAndEpoch,
        partitions: Vec<TopicPartition>,
    ) {
        let cluster = self.cluster.clone();
        let coordinators = self.coordinators.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result =
                add_partitions(cluster, coordinators, id, producer, partitions.clone()).await;
            let _ = events.send(Event::PartitionsAdded { partitions, result });
        });
    }

    fn spawn_metadata_refresh(&mut self, topics: Vec<String>) {
        self.metadata_wanted = false;
        self.metadata_in_flight = true;
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
        let has_topics = {
            let front = lock(&self.front);
            let txn = front.txn.as_ref();
            let gate = |tp: &TopicPartition, front: &Batch, in_flight: usize| {
                txn.is_none_or(|t| t.in_transaction(tp))
                    && idempotence
                        .as_ref()
                        .is_none_or(|i| i.may_drain(tp, front, in_flight))
            };
            if let Some(t) = txn.and_then(TxnManager::next_add_time) {
                wakeup = wakeup.min(t);
            }
            let accumulator = &front.accumulator;
            if let Some(t) = accumulator.next_ready_time(force, &gate) {
                wakeup = wakeup.min(t);
            }
            if let Some(t) = front.waiting_deadline(self.config.max_block()) {
                wakeup = wakeup.min(t);
            }
            if let Some(oldest) = accumulator.oldest_batch() {
                wakeup = wakeup.min(oldest + self.config.delivery_timeout());
            }
            front.has_topics()
        };
        if let Some(due) = self.idempotence.as_ref().and_then(Idempotence::init_due) {
            wakeup = wakeup.min(due);
        }
        if !self.metadata_in_flight {
            let stale_at = self
                .cluster
                .snapshot()
                .updated
                .filter(|_| has_topics)
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

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t).await
}

/// One outcome per batch of a Produce request: (base offset, log append time) or the error.
type Outcomes = Result<Vec<Result<(i64, i64)>>>;

/// A request's batches with their outcome, once its response is in.
type Answered = Pin<Box<dyn Future<Output = (Vec<Batch>, Outcomes)> + Send>>;

/// Writes `node`'s Produce requests one after the other, in the order the sender drained
/// them, and lets their responses be awaited concurrently (up to
/// `max.in.flight.requests.per.connection`, which the sender enforces). Spawning a task per
/// request would let a later request reach the socket first: the broker would then see
/// sequence numbers out of order, and without idempotence records would be reordered.
///
/// Outcomes go back to the sender in the same order (a response awaited by a task of its own
/// could overtake an earlier one), so a partition's batches complete, and their callbacks
/// run, in the order they were sent. After a request could not be written, the requests
/// already queued behind it fail too (and are retried in order by the sender) rather than
/// overtaking it on a new connection.
async fn dispatcher(
    cluster: Arc<Cluster>,
    node: i32,
    mut queue: mpsc::UnboundedReceiver<Vec<Batch>>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut answers: FuturesOrdered<Answered> = FuturesOrdered::new();
    let mut open = true;
    while open || !answers.is_empty() {
        tokio::select! {
            request = queue.recv(), if open => {
                let Some(mut batches) = request else {
                    open = false;
                    continue;
                };
                let started = match cluster.connection(node).await {
                    Ok(conn) => start_produce(&cluster, &conn, &mut batches).await,
                    Err(e) => Err(e),
                };
                match started {
                    Ok(response) => {
                        answers.push_back(Box::pin(async move { (batches, response.await) }));
                    }
                    Err(e) => {
                        let failed = |batches| -> Answered {
                            Box::pin(std::future::ready((batches, Err(e.clone()))))
                        };
                        answers.push_back(failed(batches));
                        while let Ok(batches) = queue.try_recv() {
                            answers.push_back(failed(batches));
                        }
                    }
                }
            }
            Some((batches, outcome)) = answers.next(), if !answers.is_empty() => {
                let _ = events.send(Event::Produced {
                    node,
                    batches,
                    outcome,
                });
            }
        }
    }
}

/// Writes one Produce request with `batches` on `conn`; the returned future gives one
/// outcome per batch. With `acks=0` the request is written before this returns.
async fn start_produce(
    cluster: &Cluster,
    conn: &Arc<Connection>,
    batches: &mut [Batch],
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
    for (i, batch) in batches.iter_mut().enumerate() {
        let records = match batch.wire(config.compression()) {
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
        .with_transactional_id(
            config
                .transactional_id()
                .map(|id| TransactionalId(StrBytes::from_string(id.to_string()))),
        )
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
    let conn = cluster.any_connection().await?;
    let timeout = cluster.config().request_timeout();
    super::idempotence::init_producer_id(&conn, None, Duration::MAX, current, timeout).await
}
