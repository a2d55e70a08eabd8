//! The producer: `send` returns a future that completes when the broker has the record (per
//! `acks`), records are partitioned like Kafka's Java client, batched per partition and sent by
//! one background task. Idempotent by default, as Java's client since Kafka 3.0: each batch
//! carries a producer id, epoch and sequence so that retries are written exactly once and in
//! order (see `idempotence`'s module docs). With `transactional.id` it is transactional:
//! records go out in transactions that commit or abort as a whole, with consumer offsets
//! (see `transaction`'s module docs).
//!
//! ```text
//!  Producer::send ── under the producer's lock (`front`): partition (murmur2 / sticky /
//!        │           explicit / custom), encode the record into its partition's open batch;
//!        │           the future points at the batch's completion
//!        ▼
//!  accumulator: per-partition batches ── ready: full / linger.ms / flush / close
//!        │
//!        ▼  sender task (woken when a batch starts or fills)
//!  one Produce request per leader ──► response ──► publish each batch's outcome
//!                                 └─► retriable error: back to the front of its
//!                                     partition, backoff, metadata refresh
//! ```
//!
//! `send` appends the record before it returns, so the order of `send` calls is the order
//! of records in each partition, whether or not the caller awaits in between. A record whose
//! topic has no metadata yet waits in the lock's state until the sender task has fetched it
//! (up to `max.block.ms`).
//!
//! `buffer.memory` bounds the bytes of records accepted and not yet completed. Java's `send`
//! blocks its thread up to `max.block.ms` when the buffer is full; an async client must not
//! block, so the waiting form is [`Producer::queue`] (awaits room, then returns the delivery
//! future), while [`Producer::send`] never waits and fails a record at once with
//! [`ClientError::BufferExhausted`] when there is no room (librdkafka's `QUEUE_FULL`).

mod accumulator;
mod encode;
mod front;
mod idempotence;
pub mod partitioner;
mod sender;
mod transaction;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use crate::admin::coordinator::CoordinatorCache;
use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::interceptor::{ProducerInterceptor, ProducerInterceptors};
use crate::record::{ProducerRecord, RecordMetadata};
use accumulator::{Accumulator, BATCH_OVERHEAD, Callback, Completion, estimate_record_size};
use front::{Front, Sent};
pub use transaction::ConsumerGroupMetadata;
use transaction::TxnManager;

pub(crate) enum Command {
    /// Complete once every record with a sequence number below `upto` is done.
    Flush {
        upto: u64,
        done: oneshot::Sender<()>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

/// A Kafka producer. Cheap to clone; all clones share one sender task and one set of
/// connections. Dropping every clone without [`Producer::close`] still delivers what was sent
/// (the task finishes its queue), but nobody learns the outcome.
#[derive(Debug, Clone)]
pub struct Producer {
    /// Batches and partitioning state, shared with the sender task.
    front: Arc<Mutex<Front>>,
    /// Tells the sender task that a batch started or filled up.
    wake: Arc<Notify>,
    /// Flush and close requests; when every handle is gone the sender task sees it closed.
    commands: mpsc::UnboundedSender<Command>,
    max_request_size: usize,
    /// One permit per byte of `buffer.memory`; the sender task gives them back as records
    /// complete. The semaphore is fair, so a waiting `queue` is not overtaken by later sends.
    memory: Arc<Semaphore>,
    buffer_memory: u64,
    max_block: Duration,
    interceptors: ProducerInterceptors,
    /// For the transactional calls, which talk to coordinators from the caller's task.
    cluster: Arc<Cluster>,
    /// Transaction and group coordinators, shared with the sender task (AddPartitionsToTxn).
    coordinators: Arc<CoordinatorCache>,
    transaction_timeout: Duration,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flush { upto, .. } => write!(f, "Flush(upto {upto})"),
            Self::Close { .. } => f.write_str("Close"),
        }
    }
}

impl Producer {
    /// Connects to the cluster (fails fast if no bootstrap server answers) and starts the
    /// sender task. Must be called within a tokio runtime.
    ///
    /// With idempotence (the default) the producer id is requested in the background; records
    /// wait in their batches until it arrives.
    pub async fn connect(config: ClientConfig) -> Result<Producer> {
        Self::connect_with_interceptors(config, Vec::new()).await
    }

    /// [`Producer::connect`] with interceptors that see every record and its outcome, in
    /// order (Kafka's `interceptor.classes`).
    pub async fn connect_with_interceptors(
        config: ClientConfig,
        interceptors: Vec<Arc<dyn ProducerInterceptor>>,
    ) -> Result<Producer> {
        let max_request_size = config.max_request_size();
        let buffer_memory = config.buffer_memory();
        let max_block = config.max_block();
        let accumulator = Accumulator::new(
            config.batch_size(),
            config.linger(),
            usize::try_from(config.max_in_flight_requests_per_connection()).unwrap_or(usize::MAX),
        );
        let partitioner = config.partitioner().cloned();
        let transaction_timeout = config.transaction_timeout();
        let txn = config
            .transactional_id()
            .map(|id| TxnManager::new(id.to_string()));
        let cluster = Cluster::connect(config, true).await?;
        let front = Arc::new(Mutex::new(Front::new(
            accumulator,
            cluster.snapshot(),
            partitioner,
            txn,
        )));
        let coordinators = Arc::new(CoordinatorCache::default());
        let wake = Arc::new(Notify::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = usize::try_from(buffer_memory)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let memory = Arc::new(Semaphore::new(permits));
        let interceptors = ProducerInterceptors::new(interceptors);
        tokio::spawn(sender::run(
            cluster.clone(),
            rx,
            sender::Shared {
                interceptors: interceptors.clone(),
                memory: memory.clone(),
                front: front.clone(),
                wake: wake.clone(),
                coordinators: coordinators.clone(),
            },
        ));
        Ok(Producer {
            front,
            wake,
            commands: tx,
            max_request_size,
            memory,
            buffer_memory,
            max_block,
            interceptors,
            cluster,
            coordinators,
            transaction_timeout,
        })
    }

    /// Queues a record without waiting. The returned future resolves once the record is
    /// acknowledged (or failed for good); it need not be awaited for the record to be sent.
    ///
    /// When `buffer.memory` is full the record fails at once with
    /// [`ClientError::BufferExhausted`]; use [`Producer::queue`] to wait for room instead.
    pub fn send(&self, record: ProducerRecord) -> DeliveryFuture {
        let (record, size) = match self.admit(record) {
            Ok(admitted) => admitted,
            Err(failed) => return failed,
        };
        // `try_acquire` fails while a `queue` call waits, which keeps the send order.
        match self.memory.try_acquire_many(permits(size)) {
            Ok(permit) => permit.forget(),
            Err(_) => {
                return self.refuse(
                    &record,
                    ClientError::BufferExhausted {
                        requested: size,
                        total: self.buffer_memory,
                        waited: Duration::ZERO,
                    },
                );
            }
        }
        self.enqueue(record, size)
    }

    /// [`Producer::send`] with a callback, Java's `send(record, callback)`: `callback` runs
    /// once with the record's outcome, on the producer's background task in the order of the
    /// partition's records (at once when the record is refused). It must be quick and must
    /// not block. See [`DeliveryFuture::on_completion`] to add one to any future.
    pub fn send_with_callback(
        &self,
        record: ProducerRecord,
        callback: impl FnOnce(Result<RecordMetadata>) + Send + 'static,
    ) -> DeliveryFuture {
        let future = self.send(record);
        future.on_completion(callback);
        future
    }

    /// Like Java's `send`: waits up to `max.block.ms` for room in `buffer.memory` (failing
    /// with [`ClientError::BufferExhausted`] after that), then queues the record and returns
    /// the future of its delivery. Awaiting this is how a fast writer is slowed down to what
    /// the brokers take.
    pub async fn queue(&self, record: ProducerRecord) -> DeliveryFuture {
        let (record, size) = match self.admit(record) {
            Ok(admitted) => admitted,
            Err(failed) => return failed,
        };
        if self.commands.is_closed() {
            return self.refuse(&record, ClientError::Closed);
        }
        // Room now (the usual case): no timer. `try_acquire` fails while another `queue`
        // waits, so this does not overtake it.
        if let Ok(permit) = self.memory.try_acquire_many(permits(size)) {
            permit.forget();
            return self.enqueue(record, size);
        }
        let acquire = self.memory.acquire_many(permits(size));
        match tokio::time::timeout(self.max_block, acquire).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return self.refuse(&record, ClientError::Closed),
            Err(_) => {
                let e = ClientError::BufferExhausted {
                    requested: size,
                    total: self.buffer_memory,
                    waited: self.max_block,
                };
                return self.refuse(&record, e);
            }
        }
        self.enqueue(record, size)
    }

    /// Runs the interceptors and checks the record; returns it with its estimated size.
    fn admit(
        &self,
        record: ProducerRecord,
    ) -> std::result::Result<(ProducerRecord, usize), DeliveryFuture> {
        let record = if self.interceptors.is_empty() {
            record
        } else {
            self.interceptors.on_send(record)
        };
        if record.topic.is_empty() {
            let e = ClientError::InvalidArgument("a record needs a topic".into());
            return Err(self.refuse(&record, e));
        }
        let size =
            estimate_record_size(record.key.as_ref(), record.value.as_ref(), &record.headers);
        if size + BATCH_OVERHEAD > self.max_request_size {
            let e = ClientError::RecordTooLarge {
                size: size + BATCH_OVERHEAD,
                limit: self.max_request_size,
                setting: "max.request.size",
            };
            return Err(self.refuse(&record, e));
        }
        if size as u64 > self.buffer_memory {
            let e = ClientError::RecordTooLarge {
                size,
                limit: usize::try_from(self.buffer_memory).unwrap_or(usize::MAX),
                setting: "buffer.memory",
            };
            return Err(self.refuse(&record, e));
        }
        Ok((record, size))
    }

    /// A record that never reached the sender task: interceptors hear of the failure (Java's
    /// `onSendError`), and the future is already resolved.
    fn refuse(&self, record: &ProducerRecord, error: ClientError) -> DeliveryFuture {
        if !self.interceptors.is_empty() {
            let metadata = RecordMetadata {
                topic: record.topic.clone(),
                partition: record.partition.unwrap_or(-1),
                offset: -1,
                timestamp: -1,
            };
            self.interceptors
                .on_acknowledgement(&metadata, Some(&error));
        }
        DeliveryFuture::ready(Err(error))
    }

    /// Appends an admitted record, whose `size` bytes of memory are reserved, to its batch.
    fn enqueue(&self, record: ProducerRecord, size: usize) -> DeliveryFuture {
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let sent = self.front().send(record, size, timestamp);
        match sent {
            Sent::Queued {
                completion,
                index,
                wake,
            } => {
                if wake {
                    self.wake.notify_one();
                }
                DeliveryFuture::pending(completion, index, timestamp)
            }
            Sent::Refused(record, error) => {
                self.memory.add_permits(size);
                self.refuse(&record, error)
            }
        }
    }

    fn front(&self) -> MutexGuard<'_, Front> {
        self.front.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends everything queued now at once (ignoring `linger.ms`) and waits until each record
    /// sent before this call is acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        let upto = self.front().next_seq;
        self.commands
            .send(Command::Flush { upto, done })
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Delivers everything queued, then stops the sender task. Later sends fail with
    /// [`ClientError::Closed`]. A transactional producer first aborts the transaction it has
    /// open, as Java's does.
    pub async fn close(&self) -> Result<()> {
        self.abort_on_close().await;
        self.front().closing = true;
        let (done, rx) = oneshot::channel();
        if self.commands.send(Command::Close { done }).is_err() {
            return Ok(());
        }
        // The task answers when it is done, or is already gone (closed by another clone).
        let _ = rx.await;
        Ok(())
    }
}

/// The outcome of one [`Producer::send`].
#[derive(Debug)]
#[must_use = "a send's outcome is only known by awaiting its future"]
pub struct DeliveryFuture {
    state: DeliveryState,
}

#[derive(Debug)]
enum DeliveryState {
    /// Record `index` of a batch's (or a waiting record's) completion.
    Pending {
        completion: Arc<Completion>,
        index: u32,
        timestamp: i64,
    },
    Ready(Option<Result<RecordMetadata>>),
}

impl DeliveryFuture {
    fn pending(completion: Arc<Completion>, index: u32, timestamp: i64) -> Self {
        Self {
            state: DeliveryState::Pending {
                completion,
                index,
                timestamp,
            },
        }
    }

    fn ready(result: Result<RecordMetadata>) -> Self {
        Self {
            state: DeliveryState::Ready(Some(result)),
        }
    }

    /// Runs `callback` once with the record's outcome, whether or not this future is
    /// awaited: at once when it is known, otherwise on the producer's background task when
    /// it arrives (so it must be quick and must not block).
    pub fn on_completion(&self, callback: impl FnOnce(Result<RecordMetadata>) + Send + 'static) {
        let callback: Callback = Box::new(callback);
        match &self.state {
            DeliveryState::Pending {
                completion,
                index,
                timestamp,
            } => completion.on_done(*index, *timestamp, callback),
            DeliveryState::Ready(Some(result)) => callback(result.clone()),
            DeliveryState::Ready(None) => callback(Err(ClientError::Closed)),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            DeliveryState::Pending {
                completion,
                index,
                timestamp,
            } => match completion.poll(*index, *timestamp, cx.waker()) {
                Some(result) => Poll::Ready(result),
                None => Poll::Pending,
            },
            DeliveryState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(ClientError::Closed)))
            }
        }
    }
}

/// Permits for a record of `size` bytes (sizes are below `max.request.size`, an `i32`).
fn permits(size: usize) -> u32 {
    u32::try_from(size).unwrap_or(u32::MAX)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
