//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and their expiration, after
//! Kafka's `OffsetMetadataManager`. Every change is an `OffsetCommit` record (a tombstone to
//! delete) applied through replay, so the live and the reloaded state are the same by
//! construction.
//!
//! Transactional offsets (TxnOffsetCommit, after Kafka's `commitTransactionalOffset` and
//! `replayEndTransactionMarker`) are the same `OffsetCommit` records written in a
//! transactional batch of the producer: replayed with that producer id they stay *pending*,
//! invisible to OffsetFetch (which answers UNSTABLE_OFFSET_COMMIT for them when asked for
//! stable offsets), until the transaction's COMMIT marker materialises them or its ABORT
//! marker drops them.
//!
//! Whether a topic exists is the broker's question: the shard answers every partition it is
//! given, and the broker overrides the results for unknown topics.

use std::collections::{BTreeMap, BTreeSet};

use strom_protocol::ErrorCode;
use strom_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use strom_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use strom_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use strom_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use strom_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use strom_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

use crate::classic::{ClassicState, s};
use crate::records::{CoordinatorRecord, OffsetCommitValue, RecordKey, RecordValue};
use crate::shard::{
    ClientInfo, Group, GroupCoordinatorShard, Outcome, RequestToken, ShardResponse,
    TransactionalWrite, code_of,
};

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp: i64,
    pub(crate) expire_timestamp: Option<i64>,
    /// The position of the record in replay order (Kafka compares log offsets): when a
    /// transaction commits, its offset replaces a committed one only if it was written later.
    pub(crate) record_seq: u64,
}

/// Offsets of a group by partition.
type GroupOffsets = BTreeMap<(String, i32), OffsetEntry>;

/// Transactional offsets waiting for their transaction's marker.
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingOffsets {
    /// By producer id, then group.
    by_producer: BTreeMap<i64, BTreeMap<String, GroupOffsets>>,
    /// The producers with pending offsets for each group.
    open_by_group: BTreeMap<String, BTreeSet<i64>>,
}

impl PendingOffsets {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_producer.is_empty()
    }

    /// Whether some open transaction holds an offset of the group for this partition.
    pub(crate) fn has(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.open_by_group.get(group).is_some_and(|pids| {
            pids.iter().any(|pid| {
                self.by_producer
                    .get(pid)
                    .and_then(|g| g.get(group))
                    .is_some_and(|o| o.contains_key(&key))
            })
        })
    }

    /// Whether some open transaction committed offsets for the group.
    pub(crate) fn has_group(&self, group: &str) -> bool {
        self.open_by_group.contains_key(group)
    }

    /// The partitions of the group with a pending offset.
    pub(crate) fn partitions_of(&self, group: &str) -> BTreeSet<(String, i32)> {
        let mut out = BTreeSet::new();
        for pid in self.open_by_group.get(group).into_iter().flatten() {
            if let Some(o) = self.by_producer.get(pid).and_then(|g| g.get(group)) {
                out.extend(o.keys().cloned());
            }
        }
        out
    }

    fn insert(&mut self, producer_id: i64, group: &str, key: (String, i32), entry: OffsetEntry) {
        self.by_producer
            .entry(producer_id)
            .or_default()
            .entry(group.to_string())
            .or_default()
            .insert(key, entry);
        self.open_by_group
            .entry(group.to_string())
            .or_default()
            .insert(producer_id);
    }

    /// A tombstone deletes the partition's pending offsets too. As in Kafka the transactions
    /// stay open for the group (their markers still close them).
    fn remove(&mut self, group: &str, key: &(String, i32)) {
        for pid in self.open_by_group.get(group).into_iter().flatten() {
            if let Some(o) = self.by_producer.get_mut(pid).and_then(|g| g.get_mut(group)) {
                o.remove(key);
            }
        }
    }

    /// Removes and returns everything pending for a producer.
    fn take(&mut self, producer_id: i64) -> Option<BTreeMap<String, GroupOffsets>> {
        let groups = self.by_producer.remove(&producer_id)?;
        for group in groups.keys() {
            if let Some(pids) = self.open_by_group.get_mut(group) {
                pids.remove(&producer_id);
                if pids.is_empty() {
                    self.open_by_group.remove(group);
                }
            }
        }
        Some(groups)
    }
}

/// Gives the timestamp an offset's retention counts from.
type BaseTimestamp = Box<dyn Fn(&OffsetEntry) -> i64>;

/// OffsetCommit v2-v4 `retention_time_ms` meaning "use the broker's retention".
const DEFAULT_RETENTION: i64 = -1;

impl GroupCoordinatorShard {
    pub(crate) fn replay_offset(
        &mut self,
        producer_id: i64,
        group: &str,
        topic: &str,
        partition: i32,
        value: Option<&OffsetCommitValue>,
    ) {
        match value {
            Some(v) => {
                self.replayed += 1;
                // Offsets committed outside any group management create a "simple" group: an
                // empty classic group without a protocol type, as in Kafka.
                if !self.groups.contains_key(group) {
                    self.groups.insert(
                        group.to_string(),
                        Group::Classic(crate::classic::ClassicGroup::new(group.to_string(), -1)),
                    );
                }
                let key = (topic.to_string(), partition);
                let entry = OffsetEntry {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    commit_timestamp: v.commit_timestamp,
                    expire_timestamp: v.expire_timestamp,
                    record_seq: self.replayed,
                };
                if producer_id < 0 {
                    self.offsets
                        .entry(group.to_string())
                        .or_default()
                        .insert(key, entry);
                } else {
                    self.pending.insert(producer_id, group, key, entry);
                }
            }
            None => {
                self.pending.remove(group, &(topic.to_string(), partition));
                if let Some(offsets) = self.offsets.get_mut(group) {
                    offsets.remove(&(topic.to_string(), partition));
                    if offsets.is_empty() {
                        self.offsets.remove(group);
                    }
                }
            }
        }
    }

    /// Applies a COMMIT (`commit`) or ABORT control marker of `producer_id` found in the
    /// partition: the producer's pending offsets become committed (unless a plain commit of
    /// the same partition was written after them) or are dropped. Used live, once the broker
    /// wrote a marker to this partition, and while loading.
    pub fn replay_end_transaction(&mut self, producer_id: i64, commit: bool) {
        let Some(groups) = self.pending.take(producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for (group, offsets) in groups {
            for (key, entry) in offsets {
                let committed = self.offsets.entry(group.clone()).or_default();
                if committed
                    .get(&key)
                    .is_none_or(|e| e.record_seq < entry.record_seq)
                {
                    committed.insert(key, entry);
                }
            }
            if self.offsets.get(&group).is_some_and(|o| o.is_empty()) {
                self.offsets.remove(&group);
            }
        }
    }

    /// Kafka's offset-commit validation for the group the request names.
    fn validate_offset_commit(
        &self,
        version: i16,
        group_id: &str,
        generation_or_epoch: i32,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<(), ErrorCode> {
        match self.groups.get(group_id) {
            None if generation_or_epoch < 0 => Ok(()),
            // From v9 the error says what happened; older clients expect ILLEGAL_GENERATION.
            None if version >= 9 => Err(ErrorCode::GroupIdNotFound),
            None => Err(ErrorCode::IllegalGeneration),
            Some(Group::Classic(g)) => {
                if g.state == ClassicState::Dead {
                    return Err(ErrorCode::CoordinatorNotAvailable);
                }
                if generation_or_epoch < 0 && g.state == ClassicState::Empty {
                    return Ok(());
                }
                if generation_or_epoch >= 0 || !member_id.is_empty() || instance.is_some() {
                    g.validate_member(member_id, instance)?;
                    if generation_or_epoch != g.generation {
                        return Err(ErrorCode::IllegalGeneration);
                    }
                } else if g.state != ClassicState::Empty {
                    // A commit without member id and generation is only for groups no
                    // consumer manages.
                    return Err(ErrorCode::UnknownMemberId);
                }
                if g.state == ClassicState::CompletingRebalance {
                    return Err(ErrorCode::RebalanceInProgress);
                }
                Ok(())
            }
            Some(Group::Consumer(g)) => {
                if generation_or_epoch < 0 && g.members.is_empty() {
                    return Ok(());
                }
                let member = g.members.get(member_id).ok_or(ErrorCode::UnknownMemberId)?;
                if version < 9 {
                    // KIP-848 members must use OffsetCommit v9+.
                    return Err(ErrorCode::UnsupportedVersion);
                }
                if generation_or_epoch != member.member_epoch {
                    return Err(ErrorCode::StaleMemberEpoch);
                }
                Ok(())
            }
        }
    }

    /// OffsetCommit (answered at once, after its records are written).
    pub fn offset_commit(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: OffsetCommitRequest,
        _client: ClientInfo,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let instance = request.group_instance_id.as_ref().map(|i| i.to_string());
        let validation = if group_id.is_empty() {
            Err(ErrorCode::InvalidGroupId)
        } else {
            self.validate_offset_commit(
                version,
                &group_id,
                request.generation_id_or_member_epoch,
                &member_id,
                instance.as_deref(),
            )
        };
        if validation.is_ok() {
            self.touch_classic_member(&group_id, &member_id, now_ms);
        }
        let expire_timestamp = (version <= 4 && request.retention_time_ms != DEFAULT_RETENTION)
            .then(|| now_ms.saturating_add(request.retention_time_ms));
        let mut topics = Vec::with_capacity(request.topics.len());
        for t in &request.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let committed = validation.and_then(|()| {
                    self.offset_record(
                        &group_id,
                        t.name.as_str(),
                        p.partition_index,
                        OffsetCommitValue {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: p.committed_metadata.as_deref().unwrap_or("").to_string(),
                            commit_timestamp: now_ms,
                            expire_timestamp,
                        },
                    )
                });
                let code = match committed {
                    Err(code) => Some(code),
                    Ok(record) => {
                        self.emit(&mut out, record);
                        None
                    }
                };
                partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code_of(code)),
                );
            }
            topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        out.responses.push((
            token,
            ShardResponse::OffsetCommit(OffsetCommitResponse::default().with_topics(topics)),
        ));
        out
    }

    /// Kafka's TxnOffsetCommit validation (`validateTransactionalOffsetCommit`): like
    /// OffsetCommit's, except that a classic group's rebalance state is not enforced, a
    /// request without member id and generation (v0-v2) is accepted whatever the state, and a
    /// KIP-848 member's wrong epoch is ILLEGAL_GENERATION.
    fn validate_txn_offset_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<(), ErrorCode> {
        match self.groups.get(group_id) {
            None if generation < 0 => Ok(()),
            None => Err(ErrorCode::IllegalGeneration),
            Some(Group::Classic(g)) => {
                if g.state == ClassicState::Dead {
                    return Err(ErrorCode::CoordinatorNotAvailable);
                }
                if generation < 0 && g.state == ClassicState::Empty {
                    return Ok(());
                }
                if generation >= 0 || !member_id.is_empty() || instance.is_some() {
                    g.validate_member(member_id, instance)?;
                    if generation != g.generation {
                        return Err(ErrorCode::IllegalGeneration);
                    }
                }
                Ok(())
            }
            Some(Group::Consumer(g)) => {
                if generation < 0 && g.members.is_empty() {
                    return Ok(());
                }
                let member = g.members.get(member_id).ok_or(ErrorCode::UnknownMemberId)?;
                if generation != member.member_epoch {
                    return Err(ErrorCode::IllegalGeneration);
                }
                Ok(())
            }
        }
    }

    /// TxnOffsetCommit: the offsets become `OffsetCommit` records of the producer's
    /// transaction. The outcome's [`transactional`](Outcome::transactional) names the producer:
    /// the broker appends the records as one transactional batch with that producer id and
    /// epoch (after checking, as for any transactional produce, that this partition of
    /// `__consumer_offsets` is in the producer's transaction), and answers once it is written.
    /// The offsets stay pending until the transaction's marker reaches this partition.
    /// The OffsetCommit record of one partition, or OFFSET_METADATA_TOO_LARGE when its
    /// metadata string is over `offset.metadata.max.bytes` (plain and transactional commits).
    fn offset_record(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        value: OffsetCommitValue,
    ) -> Result<CoordinatorRecord, ErrorCode> {
        if value.metadata.len() > self.config.offset_metadata_max_bytes {
            return Err(ErrorCode::OffsetMetadataTooLarge);
        }
        Ok(CoordinatorRecord::new(
            RecordKey::OffsetCommit {
                group: group.to_string(),
                topic: topic.to_string(),
                partition,
            },
            RecordValue::OffsetCommit(value),
        ))
    }

    /// Partitions of unknown or unauthorized topics are the broker's to answer.
    pub fn txn_offset_commit(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: &TxnOffsetCommitRequest,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let group_id = request.group_id.0.to_string();
        let producer_id = request.producer_id.0;
        let validation = if group_id.is_empty() {
            Err(ErrorCode::InvalidGroupId)
        } else if producer_id < 0 {
            Err(ErrorCode::InvalidRequest)
        } else {
            // Member id, instance id and generation exist from v3; older requests carry the
            // defaults (no member, generation -1).
            let (generation, member_id, instance) = if version >= 3 {
                (
                    request.generation_id,
                    request.member_id.to_string(),
                    request.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            } else {
                (-1, String::new(), None)
            };
            self.validate_txn_offset_commit(&group_id, generation, &member_id, instance.as_deref())
        };
        let mut topics = Vec::with_capacity(request.topics.len());
        for t in &request.topics {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let committed = validation.and_then(|()| {
                    self.offset_record(
                        &group_id,
                        t.name.as_str(),
                        p.partition_index,
                        OffsetCommitValue {
                            offset: p.committed_offset,
                            leader_epoch: if version >= 2 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: p.committed_metadata.as_deref().unwrap_or("").to_string(),
                            commit_timestamp: now_ms,
                            expire_timestamp: None,
                        },
                    )
                });
                let code = match committed {
                    Err(code) => Some(code),
                    Ok(record) => {
                        self.replay_transactional(producer_id, &record);
                        out.records.push(record);
                        None
                    }
                };
                partitions.push(
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code_of(code)),
                );
            }
            topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        if !out.records.is_empty() {
            out.transactional = Some(TransactionalWrite {
                transactional_id: request.transactional_id.0.to_string(),
                producer_id,
                producer_epoch: request.producer_epoch,
            });
        }
        out.responses.push((
            token,
            ShardResponse::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics)),
        ));
        out
    }

    /// OffsetFetch for one group (the v8+ per-group form; [`offset_fetch_groups`] converts
    /// older requests). `topics: None` means every committed partition of the group. Pending
    /// transactional offsets are never returned; with `require_stable` (v7+) a partition that
    /// has one answers UNSTABLE_OFFSET_COMMIT instead of its committed offset, as Kafka.
    pub fn offset_fetch(
        &self,
        request: &OffsetFetchRequestGroup,
        require_stable: bool,
    ) -> OffsetFetchResponseGroup {
        let group_id = request.group_id.0.to_string();
        let mut response =
            OffsetFetchResponseGroup::default().with_group_id(request.group_id.clone());
        // KIP-848 members (v9) prove their membership; admin clients send neither field.
        if let Some(Group::Consumer(g)) = self.groups.get(&group_id)
            && (request.member_id.is_some() || request.member_epoch >= 0)
        {
            let member_id = request.member_id.as_deref().unwrap_or("");
            match g.members.get(member_id) {
                None => {
                    response.error_code = ErrorCode::UnknownMemberId.code();
                    return response;
                }
                Some(m) if m.member_epoch != request.member_epoch => {
                    response.error_code = ErrorCode::StaleMemberEpoch.code();
                    return response;
                }
                Some(_) => {}
            }
        }
        let offsets = self.offsets.get(&group_id);
        let partition = |topic: &str, p: i32| {
            if require_stable && self.pending.has(&group_id, topic, p) {
                return OffsetFetchResponsePartitions::default()
                    .with_partition_index(p)
                    .with_committed_offset(-1)
                    .with_committed_leader_epoch(-1)
                    .with_metadata(Some(s("")))
                    .with_error_code(ErrorCode::UnstableOffsetCommit.code());
            }
            let e = offsets.and_then(|o| o.get(&(topic.to_string(), p)));
            OffsetFetchResponsePartitions::default()
                .with_partition_index(p)
                .with_committed_offset(e.map_or(-1, |e| e.offset))
                .with_committed_leader_epoch(e.map_or(-1, |e| e.leader_epoch))
                .with_metadata(Some(s(e.map_or("", |e| e.metadata.as_str()))))
        };
        response.topics = match &request.topics {
            Some(topics) => topics
                .iter()
                .map(|t| {
                    OffsetFetchResponseTopics::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| partition(t.name.0.as_str(), *p))
                                .collect(),
                        )
                })
                .collect(),
            None => {
                let mut topics: Vec<OffsetFetchResponseTopics> = Vec::new();
                for (topic, p) in offsets.into_iter().flat_map(|o| o.keys()) {
                    if topics.last().is_none_or(|t| t.name.0.as_str() != topic) {
                        topics.push(
                            OffsetFetchResponseTopics::default().with_name(TopicName(s(topic))),
                        );
                    }
                    if let Some(t) = topics.last_mut() {
                        t.partitions.push(partition(topic, *p));
                    }
                }
                topics
            }
        };
        response
    }

    /// OffsetDelete: removes the offsets of partitions the group no longer consumes.
    pub fn offset_delete(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        _version: i16,
        request: OffsetDeleteRequest,
        _client: ClientInfo,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let group_id = request.group_id.0.to_string();
        let reply = |out: &mut Outcome, r: OffsetDeleteResponse| {
            out.responses.push((token, ShardResponse::OffsetDelete(r)));
        };
        let group_error = match self.groups.get(&group_id) {
            None => Some(ErrorCode::GroupIdNotFound),
            Some(Group::Classic(g)) => match g.state {
                ClassicState::Dead => Some(ErrorCode::GroupIdNotFound),
                ClassicState::Empty => None,
                // A classic group that is not a consumer group cannot say what it consumes.
                _ if !g.uses_consumer_protocol() => Some(ErrorCode::NonEmptyGroup),
                _ => None,
            },
            Some(Group::Consumer(_)) => None,
        };
        if let Some(code) = group_error {
            reply(
                &mut out,
                OffsetDeleteResponse::default().with_error_code(code.code()),
            );
            return out;
        }
        let mut topics = Vec::new();
        for t in &request.topics {
            let topic = t.name.0.to_string();
            let subscribed = match self.groups.get(&group_id) {
                Some(Group::Classic(g)) => g.is_subscribed_to(&topic),
                Some(Group::Consumer(g)) => g.is_subscribed_to(&topic),
                None => false,
            };
            let mut partitions = Vec::new();
            for p in &t.partitions {
                let code = if subscribed {
                    Some(ErrorCode::GroupSubscribedToTopic)
                } else {
                    // A pending transactional offset is deleted too (Kafka writes the
                    // tombstone if either exists).
                    let has = self
                        .offsets
                        .get(&group_id)
                        .is_some_and(|o| o.contains_key(&(topic.clone(), p.partition_index)))
                        || self.pending.has(&group_id, &topic, p.partition_index);
                    if has {
                        self.emit(
                            &mut out,
                            CoordinatorRecord::tombstone(RecordKey::OffsetCommit {
                                group: group_id.clone(),
                                topic: topic.clone(),
                                partition: p.partition_index,
                            }),
                        );
                    }
                    None
                };
                partitions.push(
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code_of(code)),
                );
            }
            topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        reply(
            &mut out,
            OffsetDeleteResponse::default().with_topics(topics),
        );
        out
    }

    /// Tombstones for every offset of a group (DeleteGroups), committed or pending (one
    /// tombstone per partition).
    pub(crate) fn delete_offsets_of(&mut self, group_id: &str, out: &mut Outcome) {
        let mut keys: BTreeSet<(String, i32)> = self
            .offsets
            .get(group_id)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.extend(self.pending.partitions_of(group_id));
        for (topic, partition) in keys {
            self.emit(
                out,
                CoordinatorRecord::tombstone(RecordKey::OffsetCommit {
                    group: group_id.to_string(),
                    topic,
                    partition,
                }),
            );
        }
    }

    /// The periodic pass of `offsets.retention.check.interval.ms`: expires offsets per Kafka's
    /// conditions, then deletes groups left empty without offsets.
    pub(crate) fn expire_offsets(&mut self, now: i64, out: &mut Outcome) {
        let retention = self.config.offsets_retention_ms;
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in group_ids {
            // The base timestamp an offset's retention counts from, if offsets of this group
            // expire at all right now.
            let base: Option<BaseTimestamp> = match self.groups.get(&group_id) {
                Some(Group::Classic(g)) => match (&g.protocol_type, g.state) {
                    // A simple group: retention counts from each commit.
                    (None, _) => Some(Box::new(|e: &OffsetEntry| e.commit_timestamp)),
                    // Empty: retention counts from when the group became empty.
                    (Some(_), ClassicState::Empty) => {
                        let ts = g.state_timestamp;
                        Some(Box::new(
                            move |e: &OffsetEntry| {
                                if ts >= 0 { ts } else { e.commit_timestamp }
                            },
                        ))
                    }
                    // A stable consumer group that knows its topics: offsets of topics it no
                    // longer consumes expire from their commit.
                    (Some(_), ClassicState::Stable)
                        if g.uses_consumer_protocol() && g.subscribed_topics.is_some() =>
                    {
                        Some(Box::new(|e: &OffsetEntry| e.commit_timestamp))
                    }
                    _ => None,
                },
                Some(Group::Consumer(_)) => Some(Box::new(|e: &OffsetEntry| e.commit_timestamp)),
                None => None,
            };
            let Some(base) = base else {
                continue;
            };
            let mut expired = Vec::new();
            let mut all_expired = true;
            if let Some(offsets) = self.offsets.get(&group_id) {
                for ((topic, partition), e) in offsets {
                    let subscribed = match self.groups.get(&group_id) {
                        Some(Group::Classic(g)) => g.is_subscribed_to(topic),
                        Some(Group::Consumer(g)) => g.is_subscribed_to(topic),
                        None => false,
                    };
                    // An offset with a pending transactional offset for its partition does not
                    // expire yet.
                    let is_expired = !subscribed
                        && !self.pending.has(&group_id, topic, *partition)
                        && match e.expire_timestamp {
                            Some(at) => now >= at,
                            None => now.saturating_sub(base(e)) >= retention,
                        };
                    if is_expired {
                        expired.push((topic.clone(), *partition));
                    } else {
                        all_expired = false;
                    }
                }
            }
            drop(base);
            for (topic, partition) in expired {
                self.emit(
                    out,
                    CoordinatorRecord::tombstone(RecordKey::OffsetCommit {
                        group: group_id.clone(),
                        topic,
                        partition,
                    }),
                );
            }
            // A group with open transactions is kept.
            if all_expired
                && !self.pending.has_group(&group_id)
                && self.groups.get(&group_id).is_some_and(|g| g.is_empty())
            {
                self.delete_group_records(&group_id, out);
            }
        }
    }
}

/// The per-group requests of an OffsetFetch of any version (v0-v7 name one group at top
/// level; v8+ carry a list).
pub fn offset_fetch_groups(
    version: i16,
    request: &OffsetFetchRequest,
) -> Vec<OffsetFetchRequestGroup> {
    if version >= 8 {
        return request.groups.clone();
    }
    let topics = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| {
                OffsetFetchRequestTopics::default()
                    .with_name(t.name.clone())
                    .with_partition_indexes(t.partition_indexes.clone())
            })
            .collect()
    });
    vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(request.group_id.clone())
            .with_member_id(None)
            .with_member_epoch(-1)
            .with_topics(topics),
    ]
}

/// Lays out per-group results as the OffsetFetch response of `version`: v8+ as a list of
/// groups; v0-v7 as the single group's topics, with its error at top level (v2+) or on every
/// partition (v0-v1), and no leader epoch before v5.
pub fn offset_fetch_response(
    version: i16,
    mut groups: Vec<OffsetFetchResponseGroup>,
) -> OffsetFetchResponse {
    if version >= 8 {
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group = if groups.is_empty() {
        OffsetFetchResponseGroup::default()
    } else {
        groups.swap_remove(0)
    };
    let topics = group
        .topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    p.committed_leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(p.metadata)
                                .with_error_code(if version < 2 && p.error_code == 0 {
                                    group.error_code
                                } else {
                                    p.error_code
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    let mut r = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        r.error_code = group.error_code;
    }
    r
}
