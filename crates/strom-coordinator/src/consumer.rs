//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe.
//!
//! A heartbeat runs Kafka's three steps, each persisted as records that are applied through
//! replay as they are emitted:
//!
//! ```text
//!  1. member + subscription    ConsumerGroupMemberMetadata, RegularExpression,
//!     changed?                 PartitionMetadata ──► group epoch + 1 (ConsumerGroupMetadata)
//!  2. group epoch > assignment ──► assignor ──► TargetAssignmentMember (changed members)
//!     epoch?                                    TargetAssignmentMetadata (epoch)
//!  3. member not reconciled    ──► CurrentMemberAssignment: revoke first (same epoch,
//!     to the target?               UNREVOKED_PARTITIONS), then take the target's epoch and
//!                                  the partitions nobody else still owns
//! ```
//!
//! A member only gets a partition once no other member owns it, so two consumers never hold a
//! partition at the same time. Sessions (`group.consumer.session.timeout.ms`) and revocations
//! (the member's rebalance timeout) are deadlines; a member that misses one is fenced: its
//! records are tombstoned and the group epoch is bumped.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use strom_protocol::ErrorCode;
use strom_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribeAssignment, DescribedGroup, Member,
    TopicPartitions as DescribeTopicPartitions,
};
use strom_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as HeartbeatTopicPartitions,
};
use strom_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use tracing::debug;
use uuid::Uuid;

use crate::assignor::{self, Assignment, AssignmentSpec, MemberSpec};
use crate::classic::s;
use crate::records::{
    ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataValue, ConsumerGroupPartitionMetadataValue,
    ConsumerGroupRegularExpressionValue, ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataValue, CoordinatorRecord, RecordKey, RecordValue,
    TopicMetadata, TopicPartitions,
};
use crate::shard::{
    ClientInfo, Group, GroupCoordinatorShard, Outcome, RequestToken, ShardResponse,
};
use crate::timer::TimerKey;
use crate::topics::TopicsView;

/// `memberEpoch` of a member leaving for good.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// `memberEpoch` of a static member leaving temporarily (it keeps its assignment).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Kafka's `ConsumerGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Kafka's `MemberState` (its byte is what `ConsumerGroupCurrentMemberAssignmentValue`
/// stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
    Unknown,
}

impl MemberState {
    fn from_byte(b: i8) -> Self {
        match b {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }

    fn byte(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) subscribed_topic_names: Vec<String>,
    pub(crate) subscribed_topic_regex: Option<String>,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) server_assignor: Option<String>,
    pub(crate) member_epoch: i32,
    pub(crate) previous_member_epoch: i32,
    pub(crate) state: MemberState,
    pub(crate) assigned: Assignment,
    pub(crate) pending_revocation: Assignment,
}

impl ConsumerMember {
    fn new(member_id: String) -> Self {
        Self {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
        }
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == epoch
    }

    fn metadata_value(&self) -> ConsumerGroupMemberMetadataValue {
        ConsumerGroupMemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.clone(),
            subscribed_topic_regex: self.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
        }
    }

    fn assignment_value(&self) -> ConsumerGroupCurrentMemberAssignmentValue {
        ConsumerGroupCurrentMemberAssignmentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.byte(),
            assigned_partitions: to_topic_partitions(&self.assigned),
            partitions_pending_revocation: to_topic_partitions(&self.pending_revocation),
        }
    }
}

/// Where a regular expression subscription resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegexResolution {
    pub(crate) topics: BTreeSet<String>,
    pub(crate) version: i64,
    pub(crate) timestamp: i64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerGroup {
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    pub(crate) target: BTreeMap<String, Assignment>,
    /// Subscribed topics that exist, by name: (id, partition count).
    pub(crate) subscription_metadata: BTreeMap<String, (Uuid, i32)>,
    pub(crate) regexes: BTreeMap<String, RegexResolution>,
}

impl ConsumerGroup {
    fn new() -> Self {
        Self::default()
    }

    pub(crate) fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Topic names some member subscribes to, by name or through a regular expression.
    fn subscribed_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for m in self.members.values() {
            names.extend(m.subscribed_topic_names.iter().cloned());
            if let Some(r) = m
                .subscribed_topic_regex
                .as_ref()
                .and_then(|r| self.regexes.get(r))
            {
                names.extend(r.topics.iter().cloned());
            }
        }
        names
    }

    pub(crate) fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_names().contains(topic)
    }

    fn static_member(&self, instance: &str) -> Option<&ConsumerMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// The assignor most members asked for, else the configured default.
    fn preferred_assignor(&self, default: &str) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *counts.entry(a).or_default() += 1;
            }
        }
        let best = counts.values().copied().max();
        counts
            .iter()
            .find(|(_, c)| Some(**c) == best)
            .map(|(a, _)| a.to_string())
            .unwrap_or_else(|| default.to_string())
    }
}

fn to_topic_partitions(a: &Assignment) -> Vec<TopicPartitions> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| TopicPartitions {
            topic_id: *t,
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn from_topic_partitions(tps: &[TopicPartitions]) -> Assignment {
    let mut a = Assignment::new();
    for tp in tps {
        if !tp.partitions.is_empty() {
            a.entry(tp.topic_id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
    }
    a
}

/// A subscription regex matches whole topic names (RE2 syntax, as Kafka's RE2/J).
fn compile_regex(regex: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{regex})$"))
}

fn resolve_regex(regex: &str, topics: &TopicsView) -> BTreeSet<String> {
    match compile_regex(regex) {
        Ok(re) => topics
            .iter()
            .filter(|t| !t.internal && re.is_match(&t.name))
            .map(|t| t.name.clone())
            .collect(),
        // Checked when the member sent it; a pattern that no longer compiles matches nothing.
        Err(_) => BTreeSet::new(),
    }
}

fn heartbeat_error(code: ErrorCode, message: impl Into<String>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(s(&message.into())))
}

/// The partitions of a heartbeat request, `None` when the field was null.
type Owned = Option<Vec<(Uuid, Vec<i32>)>>;

impl GroupCoordinatorShard {
    fn consumer(&self, id: &str) -> Option<&ConsumerGroup> {
        match self.groups.get(id) {
            Some(Group::Consumer(g)) => Some(g),
            _ => None,
        }
    }

    /// Runs `f` on the consumer group `id`, creating it (or replacing a classic group of that
    /// id, whose records the log has already tombstoned) first.
    fn with_consumer(&mut self, id: &str, f: impl FnOnce(&mut ConsumerGroup)) {
        let entry = self
            .groups
            .entry(id.to_string())
            .or_insert_with(|| Group::Consumer(ConsumerGroup::new()));
        if let Group::Classic(_) = entry {
            *entry = Group::Consumer(ConsumerGroup::new());
        }
        if let Group::Consumer(g) = entry {
            f(g);
        }
    }

    pub(crate) fn replay_consumer(&mut self, record: &CoordinatorRecord) {
        let group_id = record.key.group_id().to_string();
        match (&record.key, &record.value) {
            (
                RecordKey::ConsumerGroupMetadata { .. },
                Some(RecordValue::ConsumerGroupMetadata(v)),
            ) => {
                self.with_consumer(&group_id, |g| g.group_epoch = v.epoch);
            }
            (RecordKey::ConsumerGroupMetadata { .. }, None)
                if self.consumer(&group_id).is_some() =>
            {
                self.groups.remove(&group_id);
            }
            (
                RecordKey::ConsumerGroupPartitionMetadata { .. },
                Some(RecordValue::ConsumerGroupPartitionMetadata(v)),
            ) => {
                self.with_consumer(&group_id, |g| {
                    g.subscription_metadata = v
                        .topics
                        .iter()
                        .map(|t| (t.topic_name.clone(), (t.topic_id, t.num_partitions)))
                        .collect();
                });
            }
            (RecordKey::ConsumerGroupPartitionMetadata { .. }, None) => {
                if let Some(Group::Consumer(g)) = self.groups.get_mut(&group_id) {
                    g.subscription_metadata.clear();
                }
            }
            (
                RecordKey::ConsumerGroupMemberMetadata { member_id, .. },
                Some(RecordValue::ConsumerGroupMemberMetadata(v)),
            ) => {
                self.with_consumer(&group_id, |g| {
                    let m = g
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ConsumerMember::new(member_id.clone()));
                    m.instance_id = v.instance_id.clone();
                    m.rack_id = v.rack_id.clone();
                    m.client_id = v.client_id.clone();
                    m.client_host = v.client_host.clone();
                    m.subscribed_topic_names = v.subscribed_topic_names.clone();
                    m.subscribed_topic_regex = v.subscribed_topic_regex.clone();
                    m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                    m.server_assignor = v.server_assignor.clone();
                });
            }
            (RecordKey::ConsumerGroupMemberMetadata { member_id, .. }, None) => {
                if let Some(Group::Consumer(g)) = self.groups.get_mut(&group_id) {
                    g.members.remove(member_id);
                }
            }
            (
                RecordKey::ConsumerGroupTargetAssignmentMetadata { .. },
                Some(RecordValue::ConsumerGroupTargetAssignmentMetadata(v)),
            ) => {
                self.with_consumer(&group_id, |g| g.assignment_epoch = v.assignment_epoch);
            }
            (RecordKey::ConsumerGroupTargetAssignmentMetadata { .. }, None) => {}
            (
                RecordKey::ConsumerGroupTargetAssignmentMember { member_id, .. },
                Some(RecordValue::ConsumerGroupTargetAssignmentMember(v)),
            ) => {
                self.with_consumer(&group_id, |g| {
                    g.target.insert(
                        member_id.clone(),
                        from_topic_partitions(&v.topic_partitions),
                    );
                });
            }
            (RecordKey::ConsumerGroupTargetAssignmentMember { member_id, .. }, None) => {
                if let Some(Group::Consumer(g)) = self.groups.get_mut(&group_id) {
                    g.target.remove(member_id);
                }
            }
            (
                RecordKey::ConsumerGroupCurrentMemberAssignment { member_id, .. },
                Some(RecordValue::ConsumerGroupCurrentMemberAssignment(v)),
            ) => {
                self.with_consumer(&group_id, |g| {
                    let m = g
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ConsumerMember::new(member_id.clone()));
                    m.member_epoch = v.member_epoch;
                    m.previous_member_epoch = v.previous_member_epoch;
                    m.state = MemberState::from_byte(v.state);
                    m.assigned = from_topic_partitions(&v.assigned_partitions);
                    m.pending_revocation = from_topic_partitions(&v.partitions_pending_revocation);
                });
            }
            (RecordKey::ConsumerGroupCurrentMemberAssignment { member_id, .. }, None) => {
                if let Some(Group::Consumer(g)) = self.groups.get_mut(&group_id)
                    && let Some(m) = g.members.get_mut(member_id)
                {
                    m.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                    m.previous_member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                    m.state = MemberState::Stable;
                    m.assigned.clear();
                    m.pending_revocation.clear();
                }
            }
            (
                RecordKey::ConsumerGroupRegularExpression { regex, .. },
                Some(RecordValue::ConsumerGroupRegularExpression(v)),
            ) => {
                self.with_consumer(&group_id, |g| {
                    g.regexes.insert(
                        regex.clone(),
                        RegexResolution {
                            topics: v.topics.iter().cloned().collect(),
                            version: v.version,
                            timestamp: v.timestamp,
                        },
                    );
                });
            }
            (RecordKey::ConsumerGroupRegularExpression { regex, .. }, None) => {
                if let Some(Group::Consumer(g)) = self.groups.get_mut(&group_id) {
                    g.regexes.remove(regex);
                }
            }
            // A value of another type under this key cannot be decoded; nothing to apply.
            _ => {}
        }
    }

    /// Tombstones for every record of a consumer group (its offsets excepted).
    pub(crate) fn delete_consumer_group_records(&mut self, group_id: &str, out: &mut Outcome) {
        let Some(g) = self.consumer(group_id) else {
            return;
        };
        let members: Vec<String> = g.members.keys().cloned().collect();
        let regexes: Vec<String> = g.regexes.keys().cloned().collect();
        for m in &members {
            self.remove_member_records(group_id, m, out);
            self.cancel_consumer_timers(group_id, m);
        }
        let gid = group_id.to_string();
        for regex in regexes {
            self.emit(
                out,
                CoordinatorRecord::tombstone(RecordKey::ConsumerGroupRegularExpression {
                    group_id: gid.clone(),
                    regex,
                }),
            );
        }
        for key in [
            RecordKey::ConsumerGroupTargetAssignmentMetadata {
                group_id: gid.clone(),
            },
            RecordKey::ConsumerGroupPartitionMetadata {
                group_id: gid.clone(),
            },
            RecordKey::ConsumerGroupMetadata { group_id: gid },
        ] {
            self.emit(out, CoordinatorRecord::tombstone(key));
        }
    }

    fn remove_member_records(&mut self, group_id: &str, member_id: &str, out: &mut Outcome) {
        let (g, m) = (group_id.to_string(), member_id.to_string());
        for key in [
            RecordKey::ConsumerGroupCurrentMemberAssignment {
                group_id: g.clone(),
                member_id: m.clone(),
            },
            RecordKey::ConsumerGroupTargetAssignmentMember {
                group_id: g.clone(),
                member_id: m.clone(),
            },
            RecordKey::ConsumerGroupMemberMetadata {
                group_id: g,
                member_id: m,
            },
        ] {
            self.emit(out, CoordinatorRecord::tombstone(key));
        }
    }

    fn cancel_consumer_timers(&mut self, group_id: &str, member_id: &str) {
        self.timers.cancel(&TimerKey::ConsumerSession {
            group: group_id.to_string(),
            member: member_id.to_string(),
        });
        self.timers.cancel(&TimerKey::ConsumerRevocation {
            group: group_id.to_string(),
            member: member_id.to_string(),
        });
    }

    pub(crate) fn schedule_consumer_session(&mut self, group_id: &str, member_id: &str, now: i64) {
        self.timers.schedule(
            TimerKey::ConsumerSession {
                group: group_id.to_string(),
                member: member_id.to_string(),
            },
            now + i64::from(self.config.consumer_session_timeout_ms),
        );
    }

    pub(crate) fn maybe_schedule_revocation(
        &mut self,
        group_id: &str,
        m: &ConsumerMember,
        now: i64,
    ) {
        let key = TimerKey::ConsumerRevocation {
            group: group_id.to_string(),
            member: m.member_id.clone(),
        };
        if m.state == MemberState::UnrevokedPartitions {
            self.timers
                .schedule(key, now + i64::from(m.rebalance_timeout_ms.max(0)));
        } else {
            self.timers.cancel(&key);
        }
    }

    /// ConsumerGroupHeartbeat (KIP-848). `topics` is the broker's current view of the topics.
    pub fn consumer_group_heartbeat(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: ConsumerGroupHeartbeatRequest,
        client: ClientInfo,
        topics: &TopicsView,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let response = match self.validate_heartbeat(version, &request) {
            Err((code, message)) => heartbeat_error(code, message),
            Ok(()) => {
                let epoch = request.member_epoch;
                let result = if epoch == LEAVE_GROUP_MEMBER_EPOCH
                    || epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
                {
                    self.consumer_group_leave(&request, &mut out)
                } else {
                    self.consumer_group_join_or_heartbeat(now_ms, request, client, topics, &mut out)
                };
                match result {
                    Ok(r) => r,
                    Err((code, message)) => heartbeat_error(code, message),
                }
            }
        };
        out.responses
            .push((token, ShardResponse::ConsumerGroupHeartbeat(response)));
        out
    }

    /// Kafka's request validation (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
    fn validate_heartbeat(
        &self,
        version: i16,
        r: &ConsumerGroupHeartbeatRequest,
    ) -> Result<(), (ErrorCode, String)> {
        let invalid = |m: &str| Err((ErrorCode::InvalidRequest, m.to_string()));
        if r.group_id.0.is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if r.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
            return invalid("InstanceId can't be empty.");
        }
        if r.rack_id.as_ref().is_some_and(|i| i.is_empty()) {
            return invalid("RackId can't be empty.");
        }
        let epoch = r.member_epoch;
        if epoch > 0 || epoch == LEAVE_GROUP_MEMBER_EPOCH {
            if r.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        } else if epoch == 0 {
            // From v1 the client generates its member id (KIP-1082).
            if version >= 1 && r.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
            if r.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if r.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if r.subscribed_topic_names.is_none() && r.subscribed_topic_regex.is_none() {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            if r.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
            if r.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        } else {
            return invalid("MemberEpoch is invalid.");
        }
        if let Some(a) = &r.server_assignor
            && !self
                .config
                .consumer_assignors
                .iter()
                .any(|x| x.as_str() == a.as_str())
        {
            return Err((
                ErrorCode::UnsupportedAssignor,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    self.config.consumer_assignors.join(", ")
                ),
            ));
        }
        if let Some(re) = &r.subscribed_topic_regex
            && let Err(e) = compile_regex(re)
        {
            return Err((
                ErrorCode::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{re}` is not a valid regular expression: {e}."),
            ));
        }
        Ok(())
    }

    fn group_not_found(&self, group_id: &str) -> (ErrorCode, String) {
        match self.groups.get(group_id) {
            Some(Group::Classic(_)) => (
                ErrorCode::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            ),
            _ => (
                ErrorCode::GroupIdNotFound,
                format!("Consumer group {group_id} not found."),
            ),
        }
    }

    fn consumer_group_leave(
        &mut self,
        r: &ConsumerGroupHeartbeatRequest,
        out: &mut Outcome,
    ) -> Result<ConsumerGroupHeartbeatResponse, (ErrorCode, String)> {
        let group_id = r.group_id.0.to_string();
        let member_id = r.member_id.to_string();
        let Some(g) = self.consumer(&group_id) else {
            return Err(self.group_not_found(&group_id));
        };
        let member = match &r.instance_id {
            None => g.members.get(&member_id).cloned().ok_or((
                ErrorCode::UnknownMemberId,
                format!("Member {member_id} is not a member of group {group_id}."),
            ))?,
            Some(instance) => {
                let m = g.static_member(instance).cloned().ok_or((
                    ErrorCode::UnknownMemberId,
                    format!("Instance id {instance} is unknown."),
                ))?;
                if m.member_id != member_id {
                    return Err((
                        ErrorCode::FencedInstanceId,
                        format!(
                            "Static member {member_id} with instance id {instance} is fenced by member {}.",
                            m.member_id
                        ),
                    ));
                }
                m
            }
        };
        let response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(&member_id)))
            .with_member_epoch(r.member_epoch);
        if r.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // The static member keeps its partitions while it is away (until its session
            // expires), so that it can come back without a rebalance.
            let mut leaving = member;
            leaving.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            leaving.pending_revocation.clear();
            self.emit(
                out,
                CoordinatorRecord::new(
                    RecordKey::ConsumerGroupCurrentMemberAssignment {
                        group_id: group_id.clone(),
                        member_id: member_id.clone(),
                    },
                    RecordValue::ConsumerGroupCurrentMemberAssignment(leaving.assignment_value()),
                ),
            );
            self.timers.cancel(&TimerKey::ConsumerRevocation {
                group: group_id,
                member: member_id,
            });
        } else {
            self.fence_consumer_member(&group_id, &member.member_id, out);
        }
        Ok(response)
    }

    /// Removes a member: tombstones its records, drops what only it subscribed to from the
    /// subscription metadata, and bumps the group epoch so that the others get a new target.
    pub(crate) fn fence_consumer_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        out: &mut Outcome,
    ) {
        debug!(
            group = group_id,
            member = member_id,
            "fencing consumer group member"
        );
        self.remove_member_records(group_id, member_id, out);
        self.cancel_consumer_timers(group_id, member_id);
        self.drop_unused_regexes(group_id, out);
        let Some(g) = self.consumer(group_id) else {
            return;
        };
        let names = g.subscribed_names();
        let metadata: BTreeMap<String, (Uuid, i32)> = g
            .subscription_metadata
            .iter()
            .filter(|(n, _)| names.contains(*n))
            .map(|(n, v)| (n.clone(), *v))
            .collect();
        let changed = metadata != g.subscription_metadata;
        let epoch = g.group_epoch + 1;
        if changed {
            self.emit(out, partition_metadata_record(group_id, &metadata));
        }
        self.emit(out, group_epoch_record(group_id, epoch));
    }

    fn drop_unused_regexes(&mut self, group_id: &str, out: &mut Outcome) {
        let Some(g) = self.consumer(group_id) else {
            return;
        };
        let used: BTreeSet<&String> = g
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_ref())
            .collect();
        let unused: Vec<String> = g
            .regexes
            .keys()
            .filter(|r| !used.contains(r))
            .cloned()
            .collect();
        for regex in unused {
            self.emit(
                out,
                CoordinatorRecord::tombstone(RecordKey::ConsumerGroupRegularExpression {
                    group_id: group_id.to_string(),
                    regex,
                }),
            );
        }
    }

    /// Resolves the group's regular expressions and subscribed topics against `topics`,
    /// writing what changed. True when the subscription metadata changed (the group epoch
    /// must be bumped).
    fn refresh_subscriptions(
        &mut self,
        group_id: &str,
        topics: &TopicsView,
        now: i64,
        out: &mut Outcome,
    ) -> bool {
        self.drop_unused_regexes(group_id, out);
        let Some(g) = self.consumer(group_id) else {
            return false;
        };
        let used: BTreeSet<String> = g
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.clone())
            .collect();
        let mut changed_regexes = Vec::new();
        for regex in used {
            let resolved = resolve_regex(&regex, topics);
            if g.regexes.get(&regex).is_none_or(|r| r.topics != resolved) {
                changed_regexes.push((regex, resolved));
            }
        }
        for (regex, resolved) in changed_regexes {
            self.emit(
                out,
                CoordinatorRecord::new(
                    RecordKey::ConsumerGroupRegularExpression {
                        group_id: group_id.to_string(),
                        regex,
                    },
                    RecordValue::ConsumerGroupRegularExpression(
                        ConsumerGroupRegularExpressionValue {
                            topics: resolved.into_iter().collect(),
                            version: topics.version,
                            timestamp: now,
                        },
                    ),
                ),
            );
        }
        let Some(g) = self.consumer(group_id) else {
            return false;
        };
        let metadata: BTreeMap<String, (Uuid, i32)> = g
            .subscribed_names()
            .into_iter()
            .filter_map(|n| topics.by_name(&n).map(|t| (n, (t.id, t.partitions))))
            .collect();
        if metadata != g.subscription_metadata {
            self.emit(out, partition_metadata_record(group_id, &metadata));
            true
        } else {
            false
        }
    }

    fn consumer_group_join_or_heartbeat(
        &mut self,
        now: i64,
        r: ConsumerGroupHeartbeatRequest,
        client: ClientInfo,
        topics: &TopicsView,
        out: &mut Outcome,
    ) -> Result<ConsumerGroupHeartbeatResponse, (ErrorCode, String)> {
        let group_id = r.group_id.0.to_string();
        let epoch = r.member_epoch;
        let joining = epoch == 0;
        let owned: Owned = r.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.clone()))
                .collect()
        });
        // The group: created by a first heartbeat; an empty classic group (e.g. one only
        // holding offsets) gives way, a classic group with members does not.
        let replace_classic = match self.groups.get(&group_id) {
            None if joining => false,
            None => return Err(self.group_not_found(&group_id)),
            Some(Group::Classic(g)) if joining && g.is_empty() => true,
            Some(Group::Classic(_)) => return Err(self.group_not_found(&group_id)),
            Some(Group::Consumer(_)) => false,
        };
        let mut member_id = r.member_id.to_string();
        let empty = ConsumerGroup::new();
        let g = self.consumer(&group_id).unwrap_or(&empty);
        let max = usize::try_from(self.config.consumer_max_size).unwrap_or(usize::MAX);
        if g.members.len() >= max && (member_id.is_empty() || !g.members.contains_key(&member_id)) {
            return Err((
                ErrorCode::GroupMaxSizeReached,
                format!("The consumer group has reached its maximum capacity of {max} members."),
            ));
        }
        if member_id.is_empty() {
            // v0: the coordinator names the member.
            member_id = Uuid::new_v4().to_string();
        }
        // Who the member is (and which existing member it replaces, for static members).
        let mut replaces: Option<ConsumerMember> = None;
        let existing: Option<ConsumerMember> = match &r.instance_id {
            None => match g.members.get(&member_id) {
                Some(m) if !joining => {
                    check_epoch(m, epoch, &owned)?;
                    Some(m.clone())
                }
                Some(m) => Some(m.clone()),
                None if joining => None,
                None => {
                    return Err((
                        ErrorCode::UnknownMemberId,
                        format!("Member {member_id} is not a member of group {group_id}."),
                    ));
                }
            },
            Some(instance) => match g.static_member(instance) {
                None if joining => None,
                None => {
                    return Err((
                        ErrorCode::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    ));
                }
                Some(m) if m.member_id != member_id => {
                    if !joining {
                        return Err((
                            ErrorCode::FencedInstanceId,
                            format!(
                                "Static member {member_id} with instance id {instance} is fenced by member {}.",
                                m.member_id
                            ),
                        ));
                    }
                    if m.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        return Err((
                            ErrorCode::UnreleasedInstanceId,
                            format!(
                                "Static member with instance id {instance} is still in use by member {}; it must leave first.",
                                m.member_id
                            ),
                        ));
                    }
                    replaces = Some(m.clone());
                    None
                }
                Some(m) => {
                    if !joining {
                        check_epoch(m, epoch, &owned)?;
                    }
                    Some(m.clone())
                }
            },
        };
        // Validation is over: from here on, records.
        if replace_classic {
            self.emit(
                out,
                CoordinatorRecord::tombstone(RecordKey::GroupMetadata {
                    group: group_id.clone(),
                }),
            );
        }
        let mut member = match (existing, &replaces) {
            (Some(m), _) => m,
            (None, Some(old)) => {
                // KIP-848 static rejoin: the new member id takes the old member's place,
                // its target and its partitions, at epoch 0.
                let mut m = old.clone();
                m.member_id = member_id.clone();
                m.member_epoch = 0;
                m.previous_member_epoch = 0;
                let old_target = self
                    .consumer(&group_id)
                    .and_then(|g| g.target.get(&old.member_id).cloned())
                    .unwrap_or_default();
                self.remove_member_records(&group_id, &old.member_id, out);
                self.cancel_consumer_timers(&group_id, &old.member_id);
                self.emit(out, member_metadata_record(&group_id, &m));
                self.emit(
                    out,
                    target_member_record(&group_id, &member_id, &old_target),
                );
                self.emit(out, current_assignment_record(&group_id, &m));
                m
            }
            (None, None) => ConsumerMember::new(member_id.clone()),
        };
        let is_new = self
            .consumer(&group_id)
            .is_none_or(|g| !g.members.contains_key(&member_id));
        if joining
            && !is_new
            && replaces.is_none()
            && (member.member_epoch != 0 || !member.assigned.is_empty())
        {
            // A member rejoining with epoch 0 owns nothing (its request says so): start its
            // reconciliation over, releasing what it held.
            member.member_epoch = 0;
            member.previous_member_epoch = 0;
            member.state = MemberState::Stable;
            member.assigned.clear();
            member.pending_revocation.clear();
            self.emit(out, current_assignment_record(&group_id, &member));
        }
        let previous = member.clone();
        // Step 1: the member's subscription.
        if let Some(i) = &r.instance_id {
            member.instance_id = Some(i.to_string());
        }
        if let Some(rack) = &r.rack_id {
            member.rack_id = Some(rack.to_string());
        }
        if r.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = r.rebalance_timeout_ms;
        }
        if let Some(a) = &r.server_assignor {
            member.server_assignor = Some(a.to_string());
        }
        if let Some(names) = &r.subscribed_topic_names {
            let mut names: Vec<String> = names.iter().map(|n| n.0.to_string()).collect();
            names.sort();
            names.dedup();
            member.subscribed_topic_names = names;
        }
        if let Some(re) = &r.subscribed_topic_regex {
            member.subscribed_topic_regex = (!re.is_empty()).then(|| re.to_string());
        }
        member.client_id = client.client_id;
        member.client_host = client.client_host;
        let mut bump = false;
        if is_new || member.metadata_value() != previous.metadata_value() {
            self.emit(out, member_metadata_record(&group_id, &member));
            bump = is_new
                || member.subscribed_topic_names != previous.subscribed_topic_names
                || member.subscribed_topic_regex != previous.subscribed_topic_regex;
        }
        if self.refresh_subscriptions(&group_id, topics, now, out) {
            bump = true;
        }
        if bump {
            let epoch = self.consumer(&group_id).map_or(0, |g| g.group_epoch) + 1;
            self.emit(out, group_epoch_record(&group_id, epoch));
        }
        // Step 2: a new target assignment when the group epoch moved past it.
        let needs_target = self
            .consumer(&group_id)
            .is_some_and(|g| g.group_epoch > g.assignment_epoch);
        if needs_target {
            self.compute_target_assignment(&group_id, out);
        }
        // Step 3: move the member towards its target.
        let before = self
            .consumer(&group_id)
            .and_then(|g| g.members.get(&member_id).cloned())
            .unwrap_or_else(|| member.clone());
        let reconciled = self.reconcile(&group_id, &before, &owned);
        if reconciled != before {
            self.emit(out, current_assignment_record(&group_id, &reconciled));
            self.maybe_schedule_revocation(&group_id, &reconciled, now);
        }
        self.schedule_consumer_session(&group_id, &member_id, now);
        let full_request = joining
            || (r.rebalance_timeout_ms != -1
                && (r.subscribed_topic_names.is_some() || r.subscribed_topic_regex.is_some())
                && owned.is_some());
        let mut response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(&member_id)))
            .with_member_epoch(reconciled.member_epoch)
            .with_heartbeat_interval_ms(self.config.consumer_heartbeat_interval_ms);
        if full_request || reconciled.assigned != previous.assigned {
            response.assignment = Some(
                HeartbeatAssignment::default().with_topic_partitions(
                    reconciled
                        .assigned
                        .iter()
                        .map(|(t, ps)| {
                            HeartbeatTopicPartitions::default()
                                .with_topic_id(*t)
                                .with_partitions(ps.iter().copied().collect())
                        })
                        .collect(),
                ),
            );
        }
        Ok(response)
    }

    /// Runs the group's assignor and writes the members whose target changed, then the new
    /// assignment epoch.
    fn compute_target_assignment(&mut self, group_id: &str, out: &mut Outcome) {
        let default = self
            .config
            .consumer_assignors
            .first()
            .cloned()
            .unwrap_or_else(|| crate::config::UNIFORM_ASSIGNOR.to_string());
        let Some(g) = self.consumer(group_id) else {
            return;
        };
        let name = g.preferred_assignor(&default);
        let mut spec = AssignmentSpec {
            members: BTreeMap::new(),
            topics: g.subscription_metadata.values().copied().collect(),
        };
        for (id, m) in &g.members {
            let mut names: BTreeSet<&String> = m.subscribed_topic_names.iter().collect();
            if let Some(r) = m
                .subscribed_topic_regex
                .as_ref()
                .and_then(|r| g.regexes.get(r))
            {
                names.extend(r.topics.iter());
            }
            spec.members.insert(
                id.clone(),
                MemberSpec {
                    subscribed_topics: names
                        .into_iter()
                        .filter_map(|n| g.subscription_metadata.get(n).map(|(tid, _)| *tid))
                        .collect(),
                    current: g.target.get(id).cloned().unwrap_or_default(),
                },
            );
        }
        let epoch = g.group_epoch;
        let new_target = assignor::assign(&name, &spec);
        let changed: Vec<(String, Assignment)> = new_target
            .into_iter()
            .filter(|(id, a)| {
                g.target
                    .get(id)
                    .map_or(!a.values().all(|p| p.is_empty()), |old| old != a)
            })
            .collect();
        for (id, a) in changed {
            self.emit(out, target_member_record(group_id, &id, &a));
        }
        self.emit(
            out,
            CoordinatorRecord::new(
                RecordKey::ConsumerGroupTargetAssignmentMetadata {
                    group_id: group_id.to_string(),
                },
                RecordValue::ConsumerGroupTargetAssignmentMetadata(
                    ConsumerGroupTargetAssignmentMetadataValue {
                        assignment_epoch: epoch,
                    },
                ),
            ),
        );
    }

    /// Kafka's `CurrentAssignmentBuilder`: the member's next step towards its target.
    fn reconcile(&self, group_id: &str, member: &ConsumerMember, owned: &Owned) -> ConsumerMember {
        let Some(g) = self.consumer(group_id) else {
            return member.clone();
        };
        let target_epoch = g.assignment_epoch;
        if member.is_reconciled_to(target_epoch) || member.member_epoch < 0 {
            return member.clone();
        }
        let target = g.target.get(&member.member_id).cloned().unwrap_or_default();
        // Partitions other members still hold (assigned or being revoked).
        let mut held: BTreeSet<(Uuid, i32)> = BTreeSet::new();
        for (id, m) in &g.members {
            if *id == member.member_id {
                continue;
            }
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    held.extend(ps.iter().map(|p| (*t, *p)));
                }
            }
        }
        let owns_any = |pending: &Assignment| match owned {
            None => true,
            Some(owned) => owned.iter().any(|(t, ps)| {
                pending
                    .get(t)
                    .is_some_and(|set| ps.iter().any(|p| set.contains(p)))
            }),
        };
        let next = |epoch: i32, assigned_now: &Assignment| -> ConsumerMember {
            let mut assigned = Assignment::new();
            let mut revoke = Assignment::new();
            let mut to_assign = Assignment::new();
            let mut unreleased = false;
            let topics: BTreeSet<&Uuid> = target.keys().chain(assigned_now.keys()).collect();
            for t in topics {
                let tgt = target.get(t).cloned().unwrap_or_default();
                let cur = assigned_now.get(t).cloned().unwrap_or_default();
                let keep: BTreeSet<i32> = cur.intersection(&tgt).copied().collect();
                let gone: BTreeSet<i32> = cur.difference(&keep).copied().collect();
                let mut add: BTreeSet<i32> = tgt.difference(&keep).copied().collect();
                let before = add.len();
                add.retain(|p| !held.contains(&(*t, *p)));
                unreleased |= add.len() != before;
                if !keep.is_empty() {
                    assigned.insert(*t, keep);
                }
                if !gone.is_empty() {
                    revoke.insert(*t, gone);
                }
                if !add.is_empty() {
                    to_assign.insert(*t, add);
                }
            }
            let mut m = member.clone();
            // Kafka's `updateMemberEpoch`: the previous epoch is always the one replaced.
            let set_epoch = |m: &mut ConsumerMember, e: i32| {
                m.previous_member_epoch = m.member_epoch;
                m.member_epoch = e;
            };
            if !revoke.is_empty() && owns_any(&revoke) {
                // Revoke first, at the current epoch.
                set_epoch(&mut m, epoch);
                m.state = MemberState::UnrevokedPartitions;
                m.assigned = assigned;
                m.pending_revocation = revoke;
            } else {
                for (t, ps) in to_assign {
                    assigned.entry(t).or_default().extend(ps);
                }
                set_epoch(&mut m, target_epoch);
                m.state = if unreleased {
                    MemberState::UnreleasedPartitions
                } else {
                    MemberState::Stable
                };
                m.assigned = assigned;
                m.pending_revocation = Assignment::new();
            }
            m
        };
        match member.state {
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                next(member.member_epoch, &member.assigned)
            }
            MemberState::UnrevokedPartitions => {
                if owns_any(&member.pending_revocation) {
                    member.clone()
                } else {
                    next(member.member_epoch + 1, &member.assigned)
                }
            }
            MemberState::Unknown => next(target_epoch, &member.assigned),
        }
    }

    pub(crate) fn expire_consumer_session(
        &mut self,
        group_id: &str,
        member_id: &str,
        _now: i64,
        out: &mut Outcome,
    ) {
        if self
            .consumer(group_id)
            .is_some_and(|g| g.members.contains_key(member_id))
        {
            debug!(
                group = group_id,
                member = member_id,
                "consumer member session expired"
            );
            self.fence_consumer_member(group_id, member_id, out);
        }
    }

    pub(crate) fn expire_consumer_revocation(
        &mut self,
        group_id: &str,
        member_id: &str,
        _now: i64,
        out: &mut Outcome,
    ) {
        let unrevoked = self
            .consumer(group_id)
            .and_then(|g| g.members.get(member_id))
            .is_some_and(|m| m.state == MemberState::UnrevokedPartitions);
        if unrevoked {
            debug!(
                group = group_id,
                member = member_id,
                "consumer member failed to revoke in time"
            );
            self.fence_consumer_member(group_id, member_id, out);
        }
    }

    /// Topic metadata changed: groups whose subscribed topics (or regex matches) changed get a
    /// new group epoch, and so a new target assignment at their next heartbeat.
    pub fn on_topics_changed(&mut self, now_ms: i64, topics: &TopicsView) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let ids: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, g)| matches!(g, Group::Consumer(c) if !c.members.is_empty()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if self.refresh_subscriptions(&id, topics, now_ms, &mut out) {
                let epoch = self.consumer(&id).map_or(0, |g| g.group_epoch) + 1;
                self.emit(&mut out, group_epoch_record(&id, epoch));
            }
        }
        out
    }

    /// ConsumerGroupDescribe for one group; topic names come from `topics`.
    pub fn consumer_group_describe(
        &self,
        version: i16,
        group_id: &str,
        topics: &TopicsView,
    ) -> DescribedGroup {
        let base = DescribedGroup::default().with_group_id(GroupId(s(group_id)));
        let Some(g) = self.consumer(group_id) else {
            let (code, message) = match self.groups.get(group_id) {
                Some(Group::Classic(_)) => (
                    ErrorCode::GroupIdNotFound,
                    format!("Group {group_id} is not a consumer group."),
                ),
                _ => (
                    ErrorCode::GroupIdNotFound,
                    format!("Group {group_id} not found."),
                ),
            };
            return base
                .with_error_code(code.code())
                .with_error_message(Some(s(&message)));
        };
        let names: BTreeMap<Uuid, String> = g
            .subscription_metadata
            .iter()
            .map(|(n, (id, _))| (*id, n.clone()))
            .collect();
        let describe = |a: &Assignment| {
            DescribeAssignment::default().with_topic_partitions(
                a.iter()
                    .filter_map(|(t, ps)| {
                        let name = topics
                            .name_of(t)
                            .map(str::to_string)
                            .or_else(|| names.get(t).cloned())?;
                        Some(
                            DescribeTopicPartitions::default()
                                .with_topic_id(*t)
                                .with_topic_name(TopicName(s(&name)))
                                .with_partitions(ps.iter().copied().collect()),
                        )
                    })
                    .collect(),
            )
        };
        let default = self
            .config
            .consumer_assignors
            .first()
            .cloned()
            .unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| {
                let mut d = Member::default()
                    .with_member_id(s(&m.member_id))
                    .with_instance_id(m.instance_id.as_deref().map(s))
                    .with_rack_id(m.rack_id.as_deref().map(s))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(s(&m.client_id))
                    .with_client_host(s(&m.client_host))
                    .with_subscribed_topic_names(
                        m.subscribed_topic_names
                            .iter()
                            .map(|n| TopicName(s(n)))
                            .collect(),
                    )
                    .with_subscribed_topic_regex(m.subscribed_topic_regex.as_deref().map(s))
                    .with_assignment(describe(&m.assigned))
                    .with_target_assignment(describe(
                        &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                    ));
                if version >= 1 {
                    // KIP-1099: 1 = a member of the consumer protocol.
                    d.member_type = 1;
                }
                d
            })
            .collect();
        base.with_group_state(s(g.state().name()))
            .with_group_epoch(g.group_epoch)
            .with_assignment_epoch(g.assignment_epoch)
            .with_assignor_name(s(&g.preferred_assignor(&default)))
            .with_members(members)
    }
}

/// Kafka's member-epoch check: an epoch ahead of ours, or behind it other than the previous
/// epoch with a subset of the assignment (a lost response), is fenced.
fn check_epoch(
    m: &ConsumerMember,
    received: i32,
    owned: &Owned,
) -> Result<(), (ErrorCode, String)> {
    let fenced = |what: &str| {
        Err((
            ErrorCode::FencedMemberEpoch,
            format!(
                "The consumer group member has a {what} member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                m.member_epoch
            ),
        ))
    };
    if received > m.member_epoch {
        return fenced("greater");
    }
    if received < m.member_epoch {
        let subset = owned.as_ref().is_some_and(|owned| {
            owned.iter().all(|(t, ps)| {
                m.assigned
                    .get(t)
                    .is_some_and(|set| ps.iter().all(|p| set.contains(p)))
            })
        });
        if received != m.previous_member_epoch || !subset {
            return fenced("smaller");
        }
    }
    Ok(())
}

fn group_epoch_record(group_id: &str, epoch: i32) -> CoordinatorRecord {
    CoordinatorRecord::new(
        RecordKey::ConsumerGroupMetadata {
            group_id: group_id.to_string(),
        },
        RecordValue::ConsumerGroupMetadata(ConsumerGroupMetadataValue { epoch }),
    )
}

fn partition_metadata_record(
    group_id: &str,
    metadata: &BTreeMap<String, (Uuid, i32)>,
) -> CoordinatorRecord {
    CoordinatorRecord::new(
        RecordKey::ConsumerGroupPartitionMetadata {
            group_id: group_id.to_string(),
        },
        RecordValue::ConsumerGroupPartitionMetadata(ConsumerGroupPartitionMetadataValue {
            topics: metadata
                .iter()
                .map(|(name, (id, n))| TopicMetadata {
                    topic_id: *id,
                    topic_name: name.clone(),
                    num_partitions: *n,
                    partition_metadata: Vec::new(),
                })
                .collect(),
        }),
    )
}

fn member_metadata_record(group_id: &str, m: &ConsumerMember) -> CoordinatorRecord {
    CoordinatorRecord::new(
        RecordKey::ConsumerGroupMemberMetadata {
            group_id: group_id.to_string(),
            member_id: m.member_id.clone(),
        },
        RecordValue::ConsumerGroupMemberMetadata(m.metadata_value()),
    )
}

fn target_member_record(group_id: &str, member_id: &str, a: &Assignment) -> CoordinatorRecord {
    CoordinatorRecord::new(
        RecordKey::ConsumerGroupTargetAssignmentMember {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
        },
        RecordValue::ConsumerGroupTargetAssignmentMember(
            ConsumerGroupTargetAssignmentMemberValue {
                topic_partitions: to_topic_partitions(a),
            },
        ),
    )
}

fn current_assignment_record(group_id: &str, m: &ConsumerMember) -> CoordinatorRecord {
    CoordinatorRecord::new(
        RecordKey::ConsumerGroupCurrentMemberAssignment {
            group_id: group_id.to_string(),
            member_id: m.member_id.clone(),
        },
        RecordValue::ConsumerGroupCurrentMemberAssignment(m.assignment_value()),
    )
}
