//! Hosting of the group coordinator: one [`GroupCoordinatorShard`] per local partition of
//! `__consumer_offsets`.
//!
//! ```text
//! handler ──► Shard::call(token, |shard| shard.join_group(..))
//!               lock ─► state machine ─► Outcome { records, responses }
//!                        │ records encoded as one batch, appended to __consumer_offsets[p]
//!                        │   ok:   responses delivered to their waiting requests (maybe earlier ones)
//!                        │   fail: waiting requests get COORDINATOR_NOT_AVAILABLE, the shard
//!                        │         is rebuilt from its log (it may have applied what was not written)
//!               unlock ─► await own response
//! timer task per shard: sleep until next_deadline (or a wake-up) ─► on_timer ─► same commit
//! metadata change: load shards of new local partitions (replay the log), drop gone ones,
//!                  tell KIP-848 groups the topics changed
//! ```
//!
//! The hosting itself (the shard lock, waiting requests, the timer task) is
//! `coordinator_log::Host`, shared with the transaction coordinator.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use strom_coordinator::{
    CoordinatorRecord, GroupConfig, GroupCoordinatorShard, Outcome, RequestToken, ShardResponse,
    TopicInfo, TopicsView,
};
use strom_metadata::{CreateTopicSpec, MetadataImage, topic_name};
use strom_protocol::ErrorCode;
use tracing::{error, info, warn};

use crate::config::ServerConfig;
use crate::coordinator_log::{self, BatchProducer, Host, HostState, Hosted, Hosts};
use crate::replica_manager::{Partition, ReplicaManager};

/// Kafka's internal topic of group metadata and committed offsets.
pub(crate) const GROUP_METADATA_TOPIC: &str = "__consumer_offsets";

/// What a coordinator request may fail with before the state machine answers it.
pub(crate) type CoordinatorResult<T> = Result<T, ErrorCode>;

#[derive(Debug)]
pub(crate) struct GroupCoordinator {
    num_partitions: i32,
    replication_factor: i16,
    segment_bytes: i64,
    config: GroupConfig,
    shards: Hosts<GroupShard>,
    /// The topics as KIP-848 groups see them, rebuilt on every metadata change.
    topics: RwLock<Arc<TopicsView>>,
    tokens: AtomicU64,
}

/// The group coordinator of one `__consumer_offsets` partition.
pub(crate) type Shard = Host<GroupShard>;

/// The group coordinator kind of [`Host`].
#[derive(Debug)]
pub(crate) struct GroupShard;

impl GroupCoordinator {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        let defaults = GroupConfig::default();
        let int = |key: &str, default: i32| config.number(key, i64::from(default)) as i32;
        let group = GroupConfig {
            min_session_timeout_ms: int(
                "group.min.session.timeout.ms",
                defaults.min_session_timeout_ms,
            ),
            max_session_timeout_ms: int(
                "group.max.session.timeout.ms",
                defaults.max_session_timeout_ms,
            ),
            max_size: int("group.max.size", defaults.max_size),
            initial_rebalance_delay_ms: int(
                "group.initial.rebalance.delay.ms",
                defaults.initial_rebalance_delay_ms,
            ),
            offset_metadata_max_bytes: config
                .number(
                    "offset.metadata.max.bytes",
                    defaults.offset_metadata_max_bytes as i64,
                )
                .max(0) as usize,
            offsets_retention_ms: config.number("offsets.retention.minutes", 10_080) * 60_000,
            offsets_retention_check_interval_ms: config.number(
                "offsets.retention.check.interval.ms",
                defaults.offsets_retention_check_interval_ms,
            ),
            consumer_heartbeat_interval_ms: int(
                "group.consumer.heartbeat.interval.ms",
                defaults.consumer_heartbeat_interval_ms,
            ),
            consumer_session_timeout_ms: int(
                "group.consumer.session.timeout.ms",
                defaults.consumer_session_timeout_ms,
            ),
            consumer_min_session_timeout_ms: int(
                "group.consumer.min.session.timeout.ms",
                defaults.consumer_min_session_timeout_ms,
            ),
            consumer_max_session_timeout_ms: int(
                "group.consumer.max.session.timeout.ms",
                defaults.consumer_max_session_timeout_ms,
            ),
            consumer_assignors: config
                .value("group.consumer.assignors")
                .map(|v| {
                    v.split(',')
                        .map(|a| a.trim().to_string())
                        .filter(|a| !a.is_empty())
                        .collect()
                })
                .unwrap_or(defaults.consumer_assignors),
            consumer_max_size: int("group.consumer.max.size", defaults.consumer_max_size),
            ..defaults
        };
        Self {
            num_partitions: config.number("offsets.topic.num.partitions", 50) as i32,
            replication_factor: config.number("offsets.topic.replication.factor", 1) as i16,
            segment_bytes: config.number("offsets.topic.segment.bytes", 104_857_600),
            config: group,
            shards: RwLock::new(HashMap::new()),
            topics: RwLock::new(Arc::new(TopicsView::new(-1, []))),
            tokens: AtomicU64::new(1),
        }
    }

    pub(crate) fn partition_for(&self, group_id: &str) -> i32 {
        strom_coordinator::partition_for(group_id, self.num_partitions)
    }

    /// The CreateTopics entry for `__consumer_offsets`, as Kafka creates it on first use.
    pub(crate) fn topic_spec(&self) -> CreateTopicSpec {
        CreateTopicSpec {
            name: GROUP_METADATA_TOPIC.to_string(),
            num_partitions: self.num_partitions,
            replication_factor: self.replication_factor,
            assignments: BTreeMap::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), self.segment_bytes.to_string()),
                ("compression.type".to_string(), "producer".to_string()),
            ]),
        }
    }

    pub(crate) fn next_token(&self) -> RequestToken {
        RequestToken(self.tokens.fetch_add(1, Ordering::Relaxed))
    }

    /// The shard of `group_id`'s partition, if this node hosts and has loaded it.
    pub(crate) fn shard_for(&self, group_id: &str) -> CoordinatorResult<Arc<Shard>> {
        self.shard_at(self.partition_for(group_id))
            .ok_or(ErrorCode::NotCoordinator)
    }

    /// The shard of `__consumer_offsets` partition `partition`, if loaded here.
    pub(crate) fn shard_at(&self, partition: i32) -> Option<Arc<Shard>> {
        coordinator_log::host_at(&self.shards, partition)
    }

    /// Every loaded shard (ListGroups asks them all).
    pub(crate) fn shards(&self) -> Vec<Arc<Shard>> {
        coordinator_log::all_hosts(&self.shards)
    }

    pub(crate) fn topics_view(&self) -> Arc<TopicsView> {
        self.topics.read().expect("topics lock").clone()
    }

    /// Follows the metadata: loads the shards of local `__consumer_offsets` partitions (by
    /// replaying their logs), stops the shards of partitions no longer here, and tells KIP-848
    /// groups about topic changes.
    pub(crate) fn sync(&self, image: &MetadataImage, replicas: &ReplicaManager) {
        let view = Arc::new(topics_view(image));
        let topics_changed = {
            let mut current = self.topics.write().expect("topics lock");
            let changed = current.version != view.version;
            *current = view.clone();
            changed
        };
        coordinator_log::sync_hosts(
            &self.shards,
            replicas,
            GROUP_METADATA_TOPIC,
            |_, partition| load_shard(partition, self.config.clone(), &view),
        );
        if topics_changed {
            let now = crate::now_ms();
            for shard in self.shards() {
                shard.run(|s| s.on_topics_changed(now, &view));
            }
        }
    }

    /// Stops every shard's timer (broker shutdown).
    pub(crate) fn shutdown(&self) {
        coordinator_log::stop_all(&self.shards);
    }
}

/// The topics of an image as the coordinator needs them (KIP-848 subscriptions).
fn topics_view(image: &MetadataImage) -> TopicsView {
    TopicsView::new(
        image.offset,
        image.topics().into_iter().map(|t| TopicInfo {
            name: t.name.clone(),
            id: t.id,
            partitions: t.partitions.len() as i32,
            internal: topic_name::is_internal(&t.name),
        }),
    )
}

/// Rebuilds a shard from its partition's log.
fn load_shard(
    partition: Arc<Partition>,
    config: GroupConfig,
    topics: &TopicsView,
) -> Result<Shard, String> {
    let started = std::time::Instant::now();
    let machine = replay_log(&partition, config)?;
    let shard = Host::new(partition, GroupShard, machine);
    let now = crate::now_ms();
    shard.run(|s| {
        let mut out = s.on_loaded(now);
        out.extend(s.on_topics_changed(now, topics));
        out
    });
    info!(tp = %shard.partition.tp, elapsed = ?started.elapsed(), "group coordinator state loaded");
    Ok(shard)
}

impl Hosted for GroupShard {
    type Machine = GroupCoordinatorShard;
    type Outcome = Outcome;
    type Response = ShardResponse;

    fn next_deadline(machine: &GroupCoordinatorShard) -> Option<i64> {
        machine.next_deadline()
    }

    fn on_timer(machine: &mut GroupCoordinatorShard, now_ms: i64) -> Outcome {
        machine.on_timer(now_ms)
    }

    fn commit(
        &self,
        partition: &Partition,
        state: &mut HostState<GroupCoordinatorShard, ShardResponse>,
        outcome: Outcome,
    ) {
        if !outcome.records.is_empty()
            && let Err(e) = append(partition, &outcome)
        {
            error!(tp = %partition.tp, error = %e, "cannot write group coordinator records; reloading");
            state.waiting.clear();
            match replay_log(partition, state.machine.config().clone()) {
                Ok(shard) => state.machine = shard,
                Err(e) => error!(tp = %partition.tp, error = %e, "reload failed"),
            }
            return;
        }
        state.answer(outcome.responses);
    }
}

fn append(partition: &Partition, outcome: &Outcome) -> Result<(), String> {
    let producer = outcome.transactional.as_ref().map(|w| BatchProducer {
        producer_id: w.producer_id,
        producer_epoch: w.producer_epoch,
    });
    let batch = coordinator_log::encode_batch(
        outcome.records.iter().map(|r| r.encode()),
        producer,
        crate::now_ms(),
    )?;
    partition
        .append_internal(&batch)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Shard {
    /// Writes a transaction marker to this partition and settles the producer's pending
    /// transactional offsets with it. Under the shard lock, so that the state machine sees the
    /// marker in log order relative to its own records (a plain commit after the marker wins
    /// over the transaction's offset, as it does when the log is replayed).
    pub(crate) fn write_marker(
        &self,
        marker: &strom_protocol::batch::EndTxnMarker,
    ) -> Result<(), strom_protocol::ApiError> {
        let mut state = self.lock();
        self.partition.append_marker(marker)?;
        state
            .machine
            .replay_end_transaction(marker.producer_id, marker.commit);
        Ok(())
    }
}

/// Reads a whole `__consumer_offsets` partition into a fresh state machine: offsets of
/// transactional batches stay pending until their producer's marker.
fn replay_log(
    partition: &crate::replica_manager::Partition,
    config: GroupConfig,
) -> Result<GroupCoordinatorShard, String> {
    let mut shard = GroupCoordinatorShard::new(config);
    coordinator_log::for_each_record(partition, |record| {
        if record.control {
            if let Some(commit) = coordinator_log::marker_is_commit(record) {
                shard.replay_end_transaction(record.producer_id, commit);
            }
            return;
        }
        let Some(key) = record.key.as_deref() else {
            return;
        };
        match CoordinatorRecord::decode(key, record.value.as_deref()) {
            Ok(Some(r)) if record.transactional => {
                shard.replay_transactional(record.producer_id, &r)
            }
            Ok(Some(r)) => shard.replay(&r),
            Ok(None) => {}
            Err(e) => {
                warn!(tp = %partition.tp, offset = record.offset, error = %e, "skipping an unreadable record")
            }
        }
    })?;
    Ok(shard)
}
