//! The consumer: of explicitly assigned partitions (`assign`), or of the partitions a
//! consumer group hands out (`subscribe` with `group.id`, classic protocol; the group side is
//! in `rebalance.rs` and `group.rs`, the assignors in [`assignor`] and [`sticky`]).
//!
//! Like Kafka's Java consumer it is driven by `poll`: each call returns buffered records if
//! there are any, otherwise resolves missing positions (ListOffsets per
//! `auto.offset.reset`), sends one Fetch per leader for the partitions that have nothing
//! buffered, and waits for answers until records arrive or the timeout passes. Fetches left
//! in flight when a poll times out are picked up by the next poll, so short poll timeouts do
//! not waste the broker's long poll.

pub mod assignor;
mod fetch;
mod group;
mod kip848;
pub mod listener;
mod rebalance;
pub mod sticky;

pub use rebalance::CommitCallback;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::cluster::{Cluster, PartitionDescription, Topics};
use crate::config::{AutoOffsetReset, ClientConfig};
use crate::error::{ClientError, Result, code_invalidates_metadata};
use crate::interceptor::{ConsumerInterceptor, ConsumerInterceptors};
use crate::offsets::{
    EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, OffsetAndTimestamp, list_offsets, list_offsets_once,
};
use crate::record::{ConsumerRecord, TopicPartition};
use fetch::PartitionFetch;

/// Where to start (or go) in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The log start offset.
    Earliest,
    /// The end of the log: only records produced from now on.
    Latest,
    /// A specific offset; out of range resets per `auto.offset.reset`.
    At(i64),
}

#[derive(Debug)]
struct PartitionState {
    /// Offset of the next record `poll` returns; `None` until resolved from `reset`.
    position: Option<i64>,
    reset: Offset,
    buffer: VecDeque<ConsumerRecord>,
    /// Where the position goes once `buffer` is drained (past control batches and gaps).
    buffer_end: Option<i64>,
    /// Not fetched before this, after a retriable error (retry.backoff.ms).
    retry_at: Option<Instant>,
    /// `pause`d: neither fetched nor returned by `poll` (what is buffered stays) until
    /// `resume`. A seek keeps it paused, as in Java; so does a rebalance the partition stays
    /// through (cooperative, KIP-848), while one that revokes it (every eager rebalance)
    /// drops its state, pause included, as Java's `SubscriptionState` does.
    paused: bool,
}

impl PartitionState {
    fn new(start: Offset) -> Self {
        let mut state = Self {
            position: None,
            reset: Offset::Latest,
            buffer: VecDeque::new(),
            buffer_end: None,
            retry_at: None,
            paused: false,
        };
        state.seek(start);
        state
    }

    fn seek(&mut self, offset: Offset) {
        self.buffer.clear();
        self.buffer_end = None;
        self.retry_at = None;
        match offset {
            Offset::At(o) => self.position = Some(o),
            other => {
                self.position = None;
                self.reset = other;
            }
        }
    }
}

struct FetchDone {
    node: i32,
    partitions: Vec<TopicPartition>,
    result: Result<Vec<PartitionFetch>>,
}

/// A consumer of assigned partitions. Not shared between tasks (`&mut self`), like Kafka's.
pub struct Consumer {
    cluster: Arc<Cluster>,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    /// Partitions in the order they are drained and fetched; rotated so that none starves.
    order: VecDeque<TopicPartition>,
    in_flight: HashSet<i32>,
    fetches_tx: mpsc::UnboundedSender<FetchDone>,
    fetches: mpsc::UnboundedReceiver<FetchDone>,
    metadata_wanted: bool,
    interceptors: ConsumerInterceptors,
    /// Set by `subscribe`: the group membership that decides the assignment.
    group: Option<rebalance::GroupState>,
    /// Assignors from `set_assignors`, used instead of `partition.assignment.strategy`.
    custom_assignors: Option<Vec<Arc<dyn assignor::ConsumerPartitionAssignor>>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("assignment", &self.order)
            .field("in_flight", &self.in_flight)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Connects to the cluster; fails fast if no bootstrap server answers.
    pub async fn connect(config: ClientConfig) -> Result<Consumer> {
        Self::connect_with_interceptors(config, Vec::new()).await
    }

    /// [`Consumer::connect`] with interceptors that see every polled record, in order.
    pub async fn connect_with_interceptors(
        config: ClientConfig,
        interceptors: Vec<Arc<dyn ConsumerInterceptor>>,
    ) -> Result<Consumer> {
        let cluster = Cluster::connect(config, true).await?;
        let (fetches_tx, fetches) = mpsc::unbounded_channel();
        Ok(Consumer {
            cluster,
            partitions: BTreeMap::new(),
            order: VecDeque::new(),
            in_flight: HashSet::new(),
            fetches_tx,
            fetches,
            metadata_wanted: false,
            interceptors: ConsumerInterceptors::new(interceptors),
            group: None,
            custom_assignors: None,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        self.cluster.config()
    }

    /// Replaces the assignment with `partitions`, each starting at its offset. This also
    /// ends a subscription without leaving the group (use `unsubscribe` first to leave it).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = (TopicPartition, Offset)>) {
        self.group = None;
        self.partitions.clear();
        self.order.clear();
        for (tp, start) in partitions {
            if self
                .partitions
                .insert(tp.clone(), PartitionState::new(start))
                .is_none()
            {
                self.order.push_back(tp);
            }
        }
    }

    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.order.iter().cloned().collect()
    }

    /// Moves an assigned partition's position; buffered records of it are dropped.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<()> {
        self.state_mut(tp)?.seek(offset);
        Ok(())
    }

    /// Moves each partition to its log start offset (resolved at the next `poll` or
    /// `position`). Fails, changing nothing, if one of them is not assigned.
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.for_each_assigned(partitions, |s| s.seek(Offset::Earliest))
    }

    /// Moves each partition to its end (the high watermark, or the last stable offset with
    /// `isolation.level=read_committed`).
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.for_each_assigned(partitions, |s| s.seek(Offset::Latest))
    }

    /// Stops fetching `partitions` and returning their records from `poll` until `resume`;
    /// they stay assigned (and in the group). Fails, changing nothing, if one of them is not
    /// assigned.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.for_each_assigned(partitions, |s| s.paused = true)
    }

    /// Undoes `pause`; partitions that are not paused are left as they are.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.for_each_assigned(partitions, |s| s.paused = false)
    }

    /// The paused partitions, in assignment order.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.order
            .iter()
            .filter(|tp| self.partitions.get(*tp).is_some_and(|s| s.paused))
            .cloned()
            .collect()
    }

    fn for_each_assigned(
        &mut self,
        partitions: &[TopicPartition],
        mut f: impl FnMut(&mut PartitionState),
    ) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?;
        }
        for tp in partitions {
            f(self.state_mut(tp)?);
        }
        Ok(())
    }

    /// The offset of the next record `poll` will return for `tp`, resolving it first if the
    /// partition starts at earliest/latest.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        if let Some(p) = self.state_mut(tp)?.position {
            return Ok(p);
        }
        let reset = self.state_mut(tp)?.reset;
        let timestamp = reset_timestamp(reset);
        let found =
            list_offsets(&self.cluster, &[(tp.clone(), timestamp)], self.isolation()).await?;
        let offset = found.get(tp).copied().flatten().map_or(0, |o| o.offset);
        let state = self.state_mut(tp)?;
        state.position = Some(offset);
        Ok(offset)
    }

    /// The partitions of `topic`, waiting (up to `default.api.timeout.ms`) for a topic being
    /// created to have them.
    pub async fn partitions_for(&self, topic: &str) -> Result<Vec<PartitionDescription>> {
        let names = [topic.to_string()];
        let cluster = &self.cluster;
        cluster
            .retry(&names, || async {
                let metadata = cluster.refresh(Topics::Named(&names)).await?;
                if let Some(code) = metadata.topic_errors.get(topic) {
                    return Err(ClientError::kafka(*code, Some(format!("topic {topic}"))));
                }
                match metadata.topic(topic) {
                    Some(t) if !t.partitions.is_empty() => Ok(t.partitions.clone()),
                    _ => Err(ClientError::kafka(
                        strom_protocol::ErrorCode::LeaderNotAvailable,
                        Some(format!("topic {topic} has no partitions yet")),
                    )),
                }
            })
            .await
    }

    /// The log start offset of each partition.
    pub async fn beginning_offsets(
        &self,
        tps: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        self.offsets_at(tps, EARLIEST_TIMESTAMP).await
    }

    /// The end offset (high watermark) of each partition.
    pub async fn end_offsets(
        &self,
        tps: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        self.offsets_at(tps, LATEST_TIMESTAMP).await
    }

    /// For each partition, the earliest offset whose timestamp is at or after the given one,
    /// `None` if there is no such record.
    pub async fn offsets_for_times(
        &self,
        query: &HashMap<TopicPartition, i64>,
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        if let Some((tp, ts)) = query.iter().find(|(_, ts)| **ts < 0) {
            return Err(ClientError::InvalidArgument(format!(
                "the target time for partition {tp} is {ts}; it must be >= 0"
            )));
        }
        let query: Vec<(TopicPartition, i64)> =
            query.iter().map(|(tp, ts)| (tp.clone(), *ts)).collect();
        list_offsets(&self.cluster, &query, self.isolation()).await
    }

    async fn offsets_at(
        &self,
        tps: &[TopicPartition],
        timestamp: i64,
    ) -> Result<HashMap<TopicPartition, i64>> {
        let query: Vec<(TopicPartition, i64)> =
            tps.iter().map(|tp| (tp.clone(), timestamp)).collect();
        let found = list_offsets(&self.cluster, &query, self.isolation()).await?;
        Ok(found
            .into_iter()
            .map(|(tp, o)| (tp, o.map_or(0, |o| o.offset)))
            .collect())
    }

    fn isolation(&self) -> crate::config::IsolationLevel {
        self.cluster.config().isolation_level()
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState> {
        self.partitions
            .get_mut(tp)
            .ok_or_else(|| ClientError::InvalidArgument(format!("partition {tp} is not assigned")))
    }

    /// Returns the records available within `timeout` (up to `max.poll.records`); an empty
    /// vector when none arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.partitions.is_empty() && self.group.is_none() {
            return Err(ClientError::InvalidArgument(
                "the consumer is not assigned any partitions".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        loop {
            // A rebalance may run past the poll's timeout: it is not interrupted halfway.
            self.drive_group().await?;
            let records = self.drain();
            if !records.is_empty() {
                return Ok(self.interceptors.on_consume(records));
            }
            if self.metadata_wanted
                || self
                    .cluster
                    .snapshot()
                    .is_stale(self.cluster.config().metadata_max_age())
            {
                self.metadata_wanted = false;
                let (topics, all) = match self.group_metadata_topics() {
                    Some(None) => (Vec::new(), true),
                    Some(Some(topics)) => (topics, false),
                    None => (self.topics(), false),
                };
                let which = if all {
                    Topics::All
                } else {
                    Topics::Named(&topics)
                };
                match tokio::time::timeout_at(deadline, self.cluster.refresh(which)).await {
                    Ok(Err(e)) => {
                        debug!(error = %e, "metadata refresh failed");
                        self.metadata_wanted = true;
                    }
                    Ok(Ok(_)) => self.check_group_metadata(),
                    Err(_) => {}
                }
            }
            match tokio::time::timeout_at(deadline, self.reset_positions()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_retriable() => {
                    debug!(error = %e, "resetting positions failed, will retry");
                    if e.invalidates_metadata() {
                        self.metadata_wanted = true;
                    }
                }
                Ok(Err(e)) => return Err(e),
            }
            self.send_fetches();
            // With nothing in flight (no leader known, reset failed) wait a backoff, not the
            // whole timeout, before trying again.
            let wait_until = if self.in_flight.is_empty() {
                deadline.min(Instant::now() + self.cluster.config().retry_backoff())
            } else {
                deadline
            };
            let wake = self.group.as_ref().map(|g| g.membership.shared.clone());
            let next = async {
                match &wake {
                    // The heartbeat task asks for a rejoin: stop waiting for fetches.
                    Some(shared) => tokio::select! {
                        done = self.fetches.recv() => Some(done),
                        () = shared.wake.notified() => None,
                    },
                    None => Some(self.fetches.recv().await),
                }
            };
            let next = match tokio::time::timeout_at(wait_until, next).await {
                Ok(Some(done)) => Ok(done),
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            match next {
                Ok(Some(done)) => {
                    self.on_fetch(done)?;
                    // Take any other completed fetch too.
                    while let Ok(done) = self.fetches.try_recv() {
                        self.on_fetch(done)?;
                    }
                }
                Ok(None) => return Err(ClientError::Closed),
                Err(_) if Instant::now() >= deadline => {
                    let records = self.drain();
                    return Ok(self.interceptors.on_consume(records));
                }
                Err(_) => {}
            }
        }
    }

    fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.order.iter().map(|tp| tp.topic.clone()).collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Takes buffered records, up to `max.poll.records`, advancing positions.
    fn drain(&mut self) -> Vec<ConsumerRecord> {
        let max = self.cluster.config().max_poll_records();
        let mut out = Vec::new();
        for tp in &self.order {
            if out.len() >= max {
                break;
            }
            let Some(state) = self.partitions.get_mut(tp) else {
                continue;
            };
            if state.paused {
                continue;
            }
            while out.len() < max {
                let Some(record) = state.buffer.pop_front() else {
                    break;
                };
                state.position = Some(record.offset + 1);
                out.push(record);
            }
            let end = if state.buffer.is_empty() {
                state.buffer_end.take()
            } else {
                None
            };
            if let Some(end) = end.filter(|&e| state.position.is_none_or(|p| p < e)) {
                state.position = Some(end);
            }
        }
        if !out.is_empty() {
            // Start with the next partition next time, so one busy partition cannot starve
            // the others.
            self.order.rotate_left(1);
        }
        out
    }

    /// Resolves positions of partitions that start (or were reset) at earliest/latest.
    async fn reset_positions(&mut self) -> Result<()> {
        let query: Vec<(TopicPartition, i64)> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, s)| (tp.clone(), reset_timestamp(s.reset)))
            .collect();
        if query.is_empty() {
            return Ok(());
        }
        let found = list_offsets_once(&self.cluster, &query, self.isolation()).await?;
        for (tp, offset) in found {
            let unresolved = self
                .partitions
                .get_mut(&tp)
                .filter(|s| s.position.is_none());
            if let Some(state) = unresolved {
                state.position = Some(offset.map_or(0, |o| o.offset));
            }
        }
        Ok(())
    }

    fn send_fetches(&mut self) {
        let metadata = self.cluster.snapshot();
        let now = Instant::now();
        let mut by_leader: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
        for tp in &self.order {
            let Some(state) = self.partitions.get(tp) else {
                continue;
            };
            let Some(position) = state.position else {
                continue;
            };
            if state.paused
                || !state.buffer.is_empty()
                || state.buffer_end.is_some()
                || state.retry_at.is_some_and(|t| t > now)
            {
                continue;
            }
            match metadata.leader(tp) {
                Some(leader) if !self.in_flight.contains(&leader) => {
                    by_leader
                        .entry(leader)
                        .or_default()
                        .push((tp.clone(), position));
                }
                Some(_) => {}
                None => self.metadata_wanted = true,
            }
        }
        for (node, partitions) in by_leader {
            self.in_flight.insert(node);
            let cluster = self.cluster.clone();
            let tx = self.fetches_tx.clone();
            tokio::spawn(async move {
                let result = fetch::fetch(&cluster, node, &partitions).await;
                let partitions = partitions.into_iter().map(|(tp, _)| tp).collect();
                let _ = tx.send(FetchDone {
                    node,
                    partitions,
                    result,
                });
            });
        }
    }

    fn on_fetch(&mut self, done: FetchDone) -> Result<()> {
        self.in_flight.remove(&done.node);
        let retry_at = Instant::now() + self.cluster.config().retry_backoff();
        let partitions = match done.result {
            Ok(p) => p,
            Err(e) if e.is_retriable() => {
                debug!(node = done.node, error = %e, "fetch failed, will retry");
                self.metadata_wanted = true;
                for tp in &done.partitions {
                    if let Some(state) = self.partitions.get_mut(tp) {
                        state.retry_at = Some(retry_at);
                    }
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let reset_policy = self.cluster.config().auto_offset_reset();
        for fetched in partitions {
            let Some(state) = self.partitions.get_mut(&fetched.tp) else {
                continue;
            };
            // Stale: the position moved (seek) or data arrived meanwhile.
            if state.position != Some(fetched.fetch_offset)
                || !state.buffer.is_empty()
                || state.buffer_end.is_some()
            {
                continue;
            }
            match fetched.result {
                Ok(decoded) => {
                    state.buffer = decoded.records.into();
                    state.buffer_end = decoded.next_offset;
                }
                Err(ClientError::Kafka { code, .. })
                    if code == strom_protocol::ErrorCode::OffsetOutOfRange =>
                {
                    let target = match reset_policy {
                        AutoOffsetReset::Earliest => Offset::Earliest,
                        AutoOffsetReset::Latest => Offset::Latest,
                        AutoOffsetReset::None => {
                            return Err(ClientError::kafka(
                                code,
                                Some(format!(
                                    "fetch position {} is out of range for partition {} (high watermark {}) and auto.offset.reset is none",
                                    fetched.fetch_offset, fetched.tp, fetched.high_watermark
                                )),
                            ));
                        }
                    };
                    debug!(tp = %fetched.tp, offset = fetched.fetch_offset, "offset out of range, resetting");
                    state.seek(target);
                }
                Err(ClientError::Kafka { code, .. })
                    if code_invalidates_metadata(code) || code.is_retriable() =>
                {
                    debug!(tp = %fetched.tp, error = %code, "fetch error, will retry");
                    state.retry_at = Some(retry_at);
                    if code_invalidates_metadata(code) {
                        self.metadata_wanted = true;
                    }
                }
                Err(e) => {
                    return Err(match e {
                        ClientError::Kafka { code, message } => ClientError::kafka(
                            code,
                            Some(message.unwrap_or_else(|| format!("fetching {}", fetched.tp))),
                        ),
                        other => other,
                    });
                }
            }
        }
        Ok(())
    }
}

fn reset_timestamp(offset: Offset) -> i64 {
    match offset {
        Offset::Earliest => EARLIEST_TIMESTAMP,
        Offset::Latest | Offset::At(_) => LATEST_TIMESTAMP,
    }
}
