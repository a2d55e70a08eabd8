//! The producer: `send` returns a future that completes when the broker has the record (per
//! `acks`), records are partitioned like Kafka's Java client, batched per partition and sent by
//! one background task.
//!
//! ```text
//!  Producer::send ──(ordered channel)──► sender task
//!                                          │ waits for topic metadata (max.block.ms)
//!                                          │ partitions (murmur2 / sticky / explicit)
//!                                          ▼
//!                                       accumulator: per-partition batches
//!                                          │ ready: full / linger.ms / flush / close
//!                                          ▼
//!                        one Produce request per leader ──► response ──► complete futures
//!                                                       └─► retriable error: back to the
//!                                                           front of its partition, backoff,
//!                                                           metadata refresh
//! ```
//!
//! `send` hands the record to the task synchronously, so the order of `send` calls is the order
//! of records in each partition, whether or not the caller awaits in between.

mod accumulator;
pub mod partitioner;
mod sender;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::record::{ProducerRecord, RecordMetadata};
use accumulator::{BATCH_OVERHEAD, PendingRecord, estimate_record_size};

pub(crate) enum Command {
    Send(PendingRecord),
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
    commands: mpsc::UnboundedSender<Command>,
    next_seq: Arc<AtomicU64>,
    max_request_size: usize,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send(r) => write!(f, "Send(seq {})", r.seq),
            Self::Flush { upto, .. } => write!(f, "Flush(upto {upto})"),
            Self::Close { .. } => f.write_str("Close"),
        }
    }
}

impl Producer {
    /// Connects to the cluster (fails fast if no bootstrap server answers) and starts the
    /// sender task. Must be called within a tokio runtime.
    pub async fn connect(config: ClientConfig) -> Result<Producer> {
        let max_request_size = config.max_request_size();
        let cluster = Cluster::connect(config, true).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(sender::run(cluster, rx));
        Ok(Producer {
            commands: tx,
            next_seq: Arc::new(AtomicU64::new(0)),
            max_request_size,
        })
    }

    /// Queues a record. The returned future resolves once the record is acknowledged (or
    /// failed for good); it need not be awaited for the record to be sent.
    pub fn send(&self, record: ProducerRecord) -> DeliveryFuture {
        if record.topic.is_empty() {
            return DeliveryFuture::ready(Err(ClientError::InvalidArgument(
                "a record needs a topic".into(),
            )));
        }
        let size =
            estimate_record_size(record.key.as_ref(), record.value.as_ref(), &record.headers);
        if size + BATCH_OVERHEAD > self.max_request_size {
            return DeliveryFuture::ready(Err(ClientError::RecordTooLarge {
                size: size + BATCH_OVERHEAD,
                limit: self.max_request_size,
                setting: "max.request.size",
            }));
        }
        let (done, rx) = oneshot::channel();
        let pending = PendingRecord {
            seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
            timestamp: record.timestamp.unwrap_or_else(now_ms),
            topic: record.topic,
            partition: record.partition,
            key: record.key,
            value: record.value,
            headers: record.headers,
            size,
            done,
        };
        match self.commands.send(Command::Send(pending)) {
            Ok(()) => DeliveryFuture::pending(rx),
            Err(_) => DeliveryFuture::ready(Err(ClientError::Closed)),
        }
    }

    /// Sends everything queued now at once (ignoring `linger.ms`) and waits until each record
    /// sent before this call is acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        let upto = self.next_seq.load(Ordering::SeqCst);
        self.commands
            .send(Command::Flush { upto, done })
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Delivers everything queued, then stops the sender task. Later sends fail with
    /// [`ClientError::Closed`].
    pub async fn close(&self) -> Result<()> {
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
    Pending(oneshot::Receiver<Result<RecordMetadata>>),
    Ready(Option<Result<RecordMetadata>>),
}

impl DeliveryFuture {
    fn pending(rx: oneshot::Receiver<Result<RecordMetadata>>) -> Self {
        Self {
            state: DeliveryState::Pending(rx),
        }
    }

    fn ready(result: Result<RecordMetadata>) -> Self {
        Self {
            state: DeliveryState::Ready(Some(result)),
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            DeliveryState::Pending(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(ClientError::Closed))),
            DeliveryState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(ClientError::Closed)))
            }
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
