//! What `send` does under the producer's lock: pick the record's partition (Kafka's default
//! partitioning or the configured `Partitioner`) and encode the record into its batch. The
//! sender task takes the same lock to drain batches, to route the records that waited for
//! their topic's metadata and to hand over what it learned (new metadata, a fatal error).
//!
//! Doing this in the caller rather than in the sender task is what keeps `send` cheap: no
//! channel hop and no per-record allocation, and the record's bytes are copied once, into
//! the batch. The lock is never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::ErrorCode;
use tokio::time::Instant;

use super::accumulator::{Accumulator, Appended, Completion, NewRecord};
use super::encode::RecordFields;
use super::partitioner::{Partitioner, next_sticky, partition_for_key};
use super::transaction::TxnManager;
use crate::cluster::Metadata;
use crate::error::ClientError;
use crate::record::{ProducerRecord, TopicPartition};

/// A record whose topic had no metadata yet.
#[derive(Debug)]
pub(crate) struct WaitingRecord {
    pub(crate) record: ProducerRecord,
    pub(crate) timestamp: i64,
    pub(crate) size: usize,
    seq: u64,
    pub(crate) completion: Arc<Completion>,
}

#[derive(Debug)]
struct Waiting {
    records: VecDeque<WaitingRecord>,
    since: Instant,
}

/// What a topic's records need to be placed, computed once per metadata version.
#[derive(Debug)]
struct Route {
    topic: String,
    generation: u64,
    count: i32,
    /// Partitions with a leader.
    available: Vec<i32>,
    /// Accumulator queue per partition, `usize::MAX` until first used.
    queues: Vec<usize>,
    /// KIP-480: the partition records without a key go to now.
    sticky: Option<i32>,
    /// The sticky partition already started a batch: the next new batch moves on.
    sticky_started: bool,
}

/// The outcome of [`Front::send`].
#[derive(Debug)]
pub(crate) enum Sent {
    Queued {
        completion: Arc<Completion>,
        index: u32,
        /// The sender task must look: a new batch (linger deadline), a full one, or a
        /// topic without metadata.
        wake: bool,
    },
    Refused(ProducerRecord, ClientError),
}

/// The state `send` and the sender task share under one lock.
pub(crate) struct Front {
    pub(crate) accumulator: Accumulator,
    metadata: Arc<Metadata>,
    generation: u64,
    routes: Vec<Route>,
    route_ids: HashMap<String, usize>,
    last_route: usize,
    waiting: BTreeMap<String, Waiting>,
    /// Send number of the next record (`flush` waits for those below a number).
    pub(crate) next_seq: u64,
    /// Set by `close` (or when every handle is gone): later records are refused.
    pub(crate) closing: bool,
    /// The idempotent producer cannot go on: later records fail with this.
    pub(crate) fatal: Option<ClientError>,
    /// A record's topic has no metadata: the sender should refresh.
    pub(crate) metadata_wanted: bool,
    partitioner: Option<Arc<dyn Partitioner>>,
    /// The transaction state of a transactional producer: `send` checks it, the sender task
    /// adds partitions to the transaction before it drains their batches.
    pub(crate) txn: Option<TxnManager>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front")
            .field("routes", &self.routes.len())
            .field("waiting", &self.waiting.len())
            .field("next_seq", &self.next_seq)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl Front {
    pub(crate) fn new(
        accumulator: Accumulator,
        metadata: Arc<Metadata>,
        partitioner: Option<Arc<dyn Partitioner>>,
        txn: Option<TxnManager>,
    ) -> Self {
        Self {
            accumulator,
            metadata,
            generation: 0,
            routes: Vec::new(),
            route_ids: HashMap::new(),
            last_route: 0,
            waiting: BTreeMap::new(),
            next_seq: 0,
            closing: false,
            fatal: None,
            metadata_wanted: false,
            partitioner,
            txn,
        }
    }

    /// Accepts a record whose `size` bytes of `buffer.memory` are reserved.
    pub(crate) fn send(&mut self, record: ProducerRecord, size: usize, timestamp: i64) -> Sent {
        if self.closing {
            return Sent::Refused(record, ClientError::Closed);
        }
        if let Some(e) = &self.fatal {
            let e = e.clone();
            return Sent::Refused(record, e);
        }
        if let Some(e) = self.txn.as_ref().and_then(TxnManager::refuse_send) {
            return Sent::Refused(record, e);
        }
        let seq = self.next_seq;
        let route = if self.waiting.contains_key(&record.topic) {
            // Behind the records already waiting, to keep the send order.
            None
        } else {
            self.route(&record.topic)
        };
        let Some(route) = route else {
            self.next_seq += 1;
            let completion = Completion::new(&record.topic);
            self.accumulator.outstanding.insert(seq);
            let waiting = self
                .waiting
                .entry(record.topic.clone())
                .or_insert_with(|| Waiting {
                    records: VecDeque::new(),
                    since: Instant::now(),
                });
            let wake = waiting.records.is_empty();
            if wake {
                self.metadata_wanted = true;
            }
            waiting.records.push_back(WaitingRecord {
                record,
                timestamp,
                size,
                seq,
                completion: completion.clone(),
            });
            return Sent::Queued {
                completion,
                index: 0,
                wake,
            };
        };
        let placed = self.place(route, &record, timestamp, size, seq, None);
        match placed {
            Ok(appended) => {
                self.next_seq += 1;
                Sent::Queued {
                    wake: appended.new_batch || appended.full,
                    completion: appended.completion,
                    index: appended.index,
                }
            }
            Err(e) => Sent::Refused(record, e),
        }
    }

    /// Takes newer metadata for the next records.
    pub(crate) fn set_metadata(&mut self, metadata: Arc<Metadata>) {
        if !Arc::ptr_eq(&self.metadata, &metadata) {
            self.metadata = metadata;
            self.generation += 1;
        }
    }

    /// Topics records were sent to or wait for (what metadata refreshes ask about).
    pub(crate) fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .routes
            .iter()
            .map(|r| r.topic.clone())
            .chain(self.waiting.keys().cloned())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    pub(crate) fn has_topics(&self) -> bool {
        !self.routes.is_empty() || !self.waiting.is_empty()
    }

    /// The earliest time a waiting record gives up (`max.block.ms` after its topic began to
    /// wait).
    pub(crate) fn waiting_deadline(&self, max_block: Duration) -> Option<Instant> {
        self.waiting.values().map(|w| w.since + max_block).min()
    }

    /// Places records whose topic metadata is now known; returns those that failed
    /// (their topic cannot be used, did not appear within `max_block`, or the partition is
    /// invalid), with the partition to report.
    pub(crate) fn route_waiting(
        &mut self,
        now: Instant,
        max_block: Duration,
    ) -> Vec<(WaitingRecord, ClientError, i32)> {
        let mut failed = Vec::new();
        if self.waiting.is_empty() {
            return failed;
        }
        let topics: Vec<String> = self.waiting.keys().cloned().collect();
        for topic in topics {
            let fatal = self
                .metadata
                .topic_errors
                .get(&topic)
                .filter(|code| !code.is_retriable() && **code != ErrorCode::UnknownTopicOrPartition)
                .copied();
            let timed_out = self
                .waiting
                .get(&topic)
                .is_some_and(|w| now >= w.since + max_block);
            if let Some(route) = self.route(&topic) {
                let Some(waiting) = self.waiting.remove(&topic) else {
                    continue;
                };
                for w in waiting.records {
                    let placed = self.place(
                        route,
                        &w.record,
                        w.timestamp,
                        w.size,
                        w.seq,
                        Some(&w.completion),
                    );
                    match placed {
                        // The batch now counts the record as outstanding.
                        Ok(_) => self.accumulator.outstanding.remove(w.seq),
                        Err(e) => {
                            let partition = w.record.partition.unwrap_or(-1);
                            self.accumulator.outstanding.remove(w.seq);
                            failed.push((w, e, partition));
                        }
                    }
                }
            } else if fatal.is_some() || timed_out {
                let error = match fatal {
                    Some(code) => ClientError::kafka(code, Some(format!("topic {topic}"))),
                    None => ClientError::timeout(
                        format!("Topic {topic} not present in metadata"),
                        max_block,
                    ),
                };
                if let Some(waiting) = self.waiting.remove(&topic) {
                    for w in waiting.records {
                        self.accumulator.outstanding.remove(w.seq);
                        let partition = w.record.partition.unwrap_or(-1);
                        failed.push((w, error.clone(), partition));
                    }
                }
            } else {
                self.metadata_wanted = true;
            }
        }
        failed
    }

    /// Removes every record waiting for its topic's metadata (an aborted transaction), with
    /// the partition to report.
    pub(crate) fn take_waiting(&mut self) -> Vec<(WaitingRecord, i32)> {
        let mut taken = Vec::new();
        for (_, waiting) in std::mem::take(&mut self.waiting) {
            for w in waiting.records {
                self.accumulator.outstanding.remove(w.seq);
                let partition = w.record.partition.unwrap_or(-1);
                taken.push((w, partition));
            }
        }
        taken
    }

    /// The route of `topic` for the current metadata, `None` while it has no partitions.
    fn route(&mut self, topic: &str) -> Option<usize> {
        let id = match self.routes.get(self.last_route) {
            Some(r) if r.topic == topic => self.last_route,
            _ => match self.route_ids.get(topic) {
                Some(&id) => id,
                None => {
                    if !has_partitions(&self.metadata, topic) {
                        return None;
                    }
                    self.routes.push(Route {
                        topic: topic.to_string(),
                        generation: self.generation.wrapping_sub(1),
                        count: 0,
                        available: Vec::new(),
                        queues: Vec::new(),
                        sticky: None,
                        sticky_started: false,
                    });
                    self.route_ids
                        .insert(topic.to_string(), self.routes.len() - 1);
                    self.routes.len() - 1
                }
            },
        };
        self.last_route = id;
        let route = &mut self.routes[id];
        if route.generation != self.generation {
            let description = self
                .metadata
                .topic(topic)
                .filter(|t| !t.partitions.is_empty())?;
            route.generation = self.generation;
            route.count = i32::try_from(description.partitions.len()).unwrap_or(i32::MAX);
            route.available = description
                .partitions
                .iter()
                .filter(|p| p.leader.is_some())
                .map(|p| p.partition)
                .collect();
            route
                .queues
                .resize(description.partitions.len(), usize::MAX);
        }
        Some(id)
    }

    /// Picks the record's partition and appends it there.
    fn place(
        &mut self,
        route_id: usize,
        record: &ProducerRecord,
        timestamp: i64,
        size: usize,
        seq: u64,
        completion: Option<&Arc<Completion>>,
    ) -> Result<Appended, ClientError> {
        let route = &mut self.routes[route_id];
        let count = route.count;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < 0 || p >= count => {
                return Err(ClientError::InvalidArgument(format!(
                    "Invalid partition given with record: {p} is not in the range [0...{count})."
                )));
            }
            (Some(p), _) => p,
            (None, key) if self.partitioner.is_some() => {
                let chosen = self.partitioner.as_ref().map_or(0, |custom| {
                    custom.partition(
                        &record.topic,
                        key.as_deref(),
                        record.value.as_deref(),
                        count,
                        &route.available,
                    )
                });
                if chosen < 0 || chosen >= count {
                    return Err(ClientError::InvalidArgument(format!(
                        "the partitioner chose partition {chosen} of {} ({count} partitions)",
                        record.topic
                    )));
                }
                chosen
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                let current = match route.sticky.filter(|&p| p < count) {
                    Some(p) => p,
                    None => {
                        let p = next_sticky(count, &route.available, None);
                        route.sticky = Some(p);
                        p
                    }
                };
                let queue = queue_of(&mut self.accumulator, route, current);
                if self.accumulator.fits_open_batch(queue, size) {
                    current
                } else if !route.sticky_started {
                    // First batch on this sticky partition.
                    route.sticky_started = true;
                    current
                } else {
                    // KIP-480: a new batch is needed, so switch partitions.
                    let next = next_sticky(count, &route.available, Some(current));
                    route.sticky = Some(next);
                    next
                }
            }
        };
        let queue = queue_of(&mut self.accumulator, route, partition);
        let new = NewRecord {
            fields: RecordFields {
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &record.headers,
            },
            timestamp,
            size,
            seq,
        };
        Ok(self
            .accumulator
            .append(queue, new, completion, Instant::now))
    }
}

/// The accumulator queue of `partition` of the route's topic.
fn queue_of(accumulator: &mut Accumulator, route: &mut Route, partition: i32) -> usize {
    let at = usize::try_from(partition).unwrap_or(0);
    if route.queues.len() <= at {
        route.queues.resize(at + 1, usize::MAX);
    }
    if route.queues[at] == usize::MAX {
        route.queues[at] =
            accumulator.queue_id(&TopicPartition::new(route.topic.clone(), partition));
    }
    route.queues[at]
}

fn has_partitions(metadata: &Metadata, topic: &str) -> bool {
    metadata
        .topic(topic)
        .is_some_and(|t| !t.partitions.is_empty())
}
