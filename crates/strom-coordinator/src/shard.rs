//! The shard: every group (and its offsets) of one `__consumer_offsets` partition, the
//! deadlines that drive them, and the entry points the broker calls. Request handling for each
//! family lives in its own module (`classic`, `offsets`, `consumer`) as `impl` blocks of
//! [`GroupCoordinatorShard`]; this module holds the shared types, replay, timers and the admin
//! APIs (ListGroups, DescribeGroups, DeleteGroups).

use std::collections::BTreeMap;

use strom_protocol::ErrorCode;
use strom_protocol::messages::delete_groups_response::DeletableGroupResult;
use strom_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use strom_protocol::messages::list_groups_response::ListedGroup;
use strom_protocol::messages::{
    ConsumerGroupHeartbeatResponse, GroupId, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse, SyncGroupResponse,
    TxnOffsetCommitResponse,
};
use tracing::warn;

use crate::classic::{ClassicGroup, ClassicState, s};
use crate::config::GroupConfig;
use crate::consumer::ConsumerGroup;
use crate::offsets::{OffsetEntry, PendingOffsets};
use crate::records::{CoordinatorRecord, RecordKey, RecordValue};
use crate::timer::{TimerKey, Timers};

/// The wire value of an optional error: 0 (NONE) when there is none. `ErrorCode` has no
/// variant for success.
pub(crate) fn code_of(code: Option<ErrorCode>) -> i16 {
    code.map_or(0, |c| c.code())
}

/// Identifies a request whose response may come later. Chosen by the broker (e.g. connection
/// id + correlation id); the shard only hands it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestToken(pub u64);

/// Who sent a request: stored with members and shown by DescribeGroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
}

/// A response for a request made with a [`RequestToken`].
#[derive(Debug, Clone, PartialEq)]
pub enum ShardResponse {
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    LeaveGroup(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    TxnOffsetCommit(TxnOffsetCommitResponse),
    OffsetDelete(OffsetDeleteResponse),
    /// One result per group given to [`GroupCoordinatorShard::delete_groups`], in order.
    DeleteGroups(Vec<DeletableGroupResult>),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse),
}

/// What a call produced: records to append to the shard's `__consumer_offsets` partition, and
/// responses to deliver once (and only if) that append succeeded. Responses may answer earlier
/// requests (parked JoinGroup and SyncGroup).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub records: Vec<CoordinatorRecord>,
    pub responses: Vec<(RequestToken, ShardResponse)>,
    /// Set by TxnOffsetCommit only: the records must be appended as one *transactional*
    /// batch of this producer (its id and epoch in the batch header, the transactional
    /// attribute set), so that the COMMIT or ABORT marker of the transaction settles them.
    pub transactional: Option<TransactionalWrite>,
}

/// The producer a transactional batch of coordinator records is written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionalWrite {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl Outcome {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.responses.is_empty()
    }

    /// Appends another outcome (records keep their order). Transactional outcomes are never
    /// merged with others: they go to the log in a batch of their own.
    pub fn extend(&mut self, other: Outcome) {
        debug_assert!(
            self.transactional.is_none() && other.transactional.is_none(),
            "a transactional outcome cannot be merged"
        );
        self.records.extend(other.records);
        self.responses.extend(other.responses);
    }
}

/// The protocol a group speaks, as ListGroups v5 filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    Classic,
    Consumer,
}

impl GroupType {
    pub fn name(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

impl Group {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Group::Classic(g) => g.is_empty(),
            Group::Consumer(g) => g.members.is_empty(),
        }
    }

    fn state_name(&self) -> &'static str {
        match self {
            Group::Classic(g) => g.state.name(),
            Group::Consumer(g) => g.state().name(),
        }
    }

    fn group_type(&self) -> GroupType {
        match self {
            Group::Classic(_) => GroupType::Classic,
            Group::Consumer(_) => GroupType::Consumer,
        }
    }
}

/// The group coordinator state of one `__consumer_offsets` partition: a pure state machine.
///
/// Live requests and replayed records must lead to the same state: records about offsets and
/// KIP-848 groups are applied through [`replay`](Self::replay) as they are emitted, and classic
/// groups persist their state at the points Kafka does (see the `classic` module).
#[derive(Debug, Clone)]
pub struct GroupCoordinatorShard {
    pub(crate) config: GroupConfig,
    /// Ordered so that enumeration (ListGroups, expiration) is deterministic.
    pub(crate) groups: BTreeMap<String, Group>,
    /// Committed offsets by group, then (topic, partition).
    pub(crate) offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetEntry>>,
    /// Transactional offsets not settled by a marker yet, by producer id (Kafka's
    /// `pendingTransactionalOffsets`, with `openTransactionsByGroup` as its index).
    pub(crate) pending: PendingOffsets,
    /// Counts replayed offset records: the position of a record in the log (up to a constant),
    /// which decides between a committed offset and a transactional one that commits later.
    pub(crate) replayed: u64,
    pub(crate) timers: Timers,
}

impl GroupCoordinatorShard {
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            pending: PendingOffsets::default(),
            replayed: 0,
            timers: Timers::default(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// True when the shard holds no group and no offset, committed or pending.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.offsets.is_empty() && self.pending.is_empty()
    }

    /// Ids of all groups of this shard.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Applies one record of the partition. Used while loading, and live for every record
    /// about offsets and KIP-848 groups. Records of transactional batches go through
    /// [`replay_transactional`](Self::replay_transactional) instead.
    pub fn replay(&mut self, record: &CoordinatorRecord) {
        self.replay_transactional(-1, record);
    }

    /// Applies one record that came in a batch of `producer_id` (-1 for a batch without a
    /// producer, which is [`replay`](Self::replay)). An offset commit of a transactional batch
    /// stays pending, invisible to OffsetFetch, until the producer's COMMIT or ABORT marker is
    /// replayed with [`replay_end_transaction`](Self::replay_end_transaction).
    pub fn replay_transactional(&mut self, producer_id: i64, record: &CoordinatorRecord) {
        match (&record.key, &record.value) {
            (
                RecordKey::OffsetCommit {
                    group,
                    topic,
                    partition,
                },
                value,
            ) => {
                let value = match value {
                    Some(RecordValue::OffsetCommit(v)) => Some(v),
                    None => None,
                    Some(_) => return,
                };
                self.replay_offset(producer_id, group, topic, *partition, value);
            }
            (RecordKey::GroupMetadata { group }, Some(RecordValue::GroupMetadata(v))) => {
                if let Some(Group::Consumer(_)) = self.groups.get(group) {
                    warn!(group, "classic group record replaces a consumer group");
                }
                self.groups.insert(
                    group.clone(),
                    Group::Classic(ClassicGroup::from_record(group.clone(), v)),
                );
            }
            (RecordKey::GroupMetadata { group }, None) => {
                if let Some(Group::Classic(_)) = self.groups.get(group) {
                    self.groups.remove(group);
                }
            }
            (RecordKey::GroupMetadata { .. }, Some(_)) => {}
            _ => self.replay_consumer(record),
        }
    }

    /// Called once the partition is loaded (all records replayed): starts the sessions of the
    /// members found in it and the periodic offset expiration, as Kafka's `onLoaded` does.
    pub fn on_loaded(&mut self, now_ms: i64) -> Outcome {
        self.timers.clear();
        self.ensure_expiration_timer(now_ms);
        let mut classic_sessions = Vec::new();
        let mut consumer_sessions = Vec::new();
        for (id, g) in &self.groups {
            match g {
                Group::Classic(g) => {
                    for m in &g.members {
                        classic_sessions.push((
                            id.clone(),
                            m.member_id.clone(),
                            now_ms + i64::from(m.session_timeout_ms),
                        ));
                    }
                }
                Group::Consumer(g) => {
                    for m in g.members.values() {
                        consumer_sessions.push((id.clone(), m.member_id.clone(), m.clone()));
                    }
                }
            }
        }
        for (group, member, deadline) in classic_sessions {
            self.timers
                .schedule(TimerKey::ClassicHeartbeat { group, member }, deadline);
        }
        for (group, member_id, member) in consumer_sessions {
            self.schedule_consumer_session(&group, &member_id, now_ms);
            self.maybe_schedule_revocation(&group, &member, now_ms);
        }
        Outcome::default()
    }

    /// The earliest deadline; the broker calls [`on_timer`](Self::on_timer) once it passed.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    /// Runs every timer due at `now_ms`: session expiry, join/sync phase ends, revocation
    /// timeouts and offset expiration.
    pub fn on_timer(&mut self, now_ms: i64) -> Outcome {
        let mut out = Outcome::default();
        while let Some(key) = self.timers.pop_due(now_ms) {
            match key {
                TimerKey::ClassicHeartbeat { group, member } => {
                    self.expire_classic_heartbeat(&group, &member, now_ms, &mut out);
                }
                TimerKey::ClassicJoin { group } => {
                    self.expire_classic_join(&group, now_ms, &mut out);
                }
                TimerKey::ClassicSync { group } => {
                    self.expire_classic_sync(&group, now_ms, &mut out);
                }
                TimerKey::ConsumerSession { group, member } => {
                    self.expire_consumer_session(&group, &member, now_ms, &mut out);
                }
                TimerKey::ConsumerRevocation { group, member } => {
                    self.expire_consumer_revocation(&group, &member, now_ms, &mut out);
                }
                TimerKey::OffsetExpiration => {
                    self.expire_offsets(now_ms, &mut out);
                    self.timers.schedule(
                        TimerKey::OffsetExpiration,
                        now_ms + self.config.offsets_retention_check_interval_ms,
                    );
                }
            }
        }
        out
    }

    pub(crate) fn ensure_expiration_timer(&mut self, now_ms: i64) {
        if !self.timers.contains(&TimerKey::OffsetExpiration) {
            self.timers.schedule(
                TimerKey::OffsetExpiration,
                now_ms + self.config.offsets_retention_check_interval_ms,
            );
        }
    }

    /// Records a record and applies it to the state (offsets, KIP-848 groups, deletions).
    pub(crate) fn emit(&mut self, out: &mut Outcome, record: CoordinatorRecord) {
        self.replay(&record);
        out.records.push(record);
    }

    /// ListGroups for this shard. `states_filter` (v4+) and `types_filter` (v5+) match
    /// case-insensitively; empty filters match everything.
    pub fn list_groups(
        &self,
        version: i16,
        states_filter: &[String],
        types_filter: &[String],
    ) -> Vec<ListedGroup> {
        let states: Vec<String> = states_filter.iter().map(|s| s.to_lowercase()).collect();
        let types: Vec<String> = types_filter.iter().map(|s| s.to_lowercase()).collect();
        self.groups
            .iter()
            .filter(|(_, g)| states.is_empty() || states.contains(&g.state_name().to_lowercase()))
            .filter(|(_, g)| types.is_empty() || types.contains(&g.group_type().name().to_string()))
            .map(|(id, g)| {
                let protocol_type = match g {
                    Group::Classic(c) => c.protocol_type.clone().unwrap_or_default(),
                    Group::Consumer(_) => "consumer".to_string(),
                };
                let mut l = ListedGroup::default()
                    .with_group_id(GroupId(s(id)))
                    .with_protocol_type(s(&protocol_type));
                if version >= 4 {
                    l.group_state = s(g.state_name());
                }
                if version >= 5 {
                    l.group_type = s(g.group_type().name());
                }
                l
            })
            .collect()
    }

    /// DescribeGroups for one group. Unknown groups (and KIP-848 groups, which this API does
    /// not describe) come back as Dead; from v6 also with GROUP_ID_NOT_FOUND (KIP-1043).
    pub fn describe_group(&self, version: i16, group_id: &str) -> DescribedGroup {
        let base = DescribedGroup::default().with_group_id(GroupId(s(group_id)));
        let not_found = |message: String| {
            let mut d = base.clone().with_group_state(s(ClassicState::Dead.name()));
            if version >= 6 {
                d.error_code = ErrorCode::GroupIdNotFound.code();
                d.error_message = Some(s(&message));
            }
            d
        };
        let g = match self.groups.get(group_id) {
            None => return not_found(format!("Group {group_id} not found.")),
            Some(Group::Consumer(_)) => {
                return not_found(format!("Group {group_id} is not a classic group."));
            }
            Some(Group::Classic(g)) => g,
        };
        let stable = g.state == ClassicState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let members = g
            .members
            .iter()
            .map(|m| {
                let mut d = DescribedGroupMember::default()
                    .with_member_id(s(&m.member_id))
                    .with_client_id(s(&m.client_id))
                    .with_client_host(s(&m.client_host));
                if version >= 4 {
                    d.group_instance_id = m.group_instance_id.as_deref().map(s);
                }
                if stable {
                    d.member_metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default();
                    d.member_assignment = m.assignment.clone();
                }
                d
            })
            .collect();
        base.with_group_state(s(g.state.name()))
            .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("")))
            .with_protocol_data(s(if stable { &protocol } else { "" }))
            .with_members(members)
    }

    /// DeleteGroups for the groups of this shard: refused for groups with members; otherwise
    /// the group and all its offsets are tombstoned.
    pub fn delete_groups(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        _version: i16,
        group_ids: &[String],
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let mut results = Vec::new();
        for id in group_ids {
            let code = match self.groups.get(id) {
                None => Some(ErrorCode::GroupIdNotFound),
                Some(g) if !g.is_empty() => Some(ErrorCode::NonEmptyGroup),
                Some(_) => {
                    self.delete_offsets_of(id, &mut out);
                    self.delete_group_records(id, &mut out);
                    None
                }
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(GroupId(s(id)))
                    .with_error_code(code_of(code)),
            );
        }
        out.responses
            .push((token, ShardResponse::DeleteGroups(results)));
        out
    }

    /// Tombstones for a whole group (not its offsets), applied as they are emitted.
    pub(crate) fn delete_group_records(&mut self, group_id: &str, out: &mut Outcome) {
        match self.groups.get(group_id) {
            Some(Group::Classic(_)) => {
                self.emit(
                    out,
                    CoordinatorRecord::tombstone(RecordKey::GroupMetadata {
                        group: group_id.to_string(),
                    }),
                );
            }
            Some(Group::Consumer(_)) => self.delete_consumer_group_records(group_id, out),
            None => {}
        }
    }
}
