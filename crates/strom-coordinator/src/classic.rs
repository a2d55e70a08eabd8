//! Classic groups: JoinGroup / SyncGroup / Heartbeat / LeaveGroup, with Kafka's
//! `ClassicGroup` state machine (see the crate docs for the diagram), static membership
//! (KIP-345), member ids required before joining (KIP-394) and the delayed first rebalance
//! (`group.initial.rebalance.delay.ms`).
//!
//! Classic state lives in memory and is persisted as one `GroupMetadataValue` per completed
//! generation (and when the group empties, or a static member is replaced without a rebalance).
//! Those records are *not* replayed live: like Kafka, the live path mutates the group directly,
//! and replay rebuilds a Stable (or Empty) group from the last record after a failover. What is
//! lost on failover is exactly what Kafka loses: an in-flight rebalance, whose members rejoin.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::join_group_response::JoinGroupResponseMember;
use strom_protocol::messages::leave_group_response::MemberResponse;
use strom_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use tracing::debug;

use crate::records::{
    CoordinatorRecord, GroupMemberMetadata, GroupMetadataValue, RecordKey, RecordValue,
};
use crate::shard::{
    ClientInfo, Group, GroupCoordinatorShard, Outcome, RequestToken, ShardResponse, code_of,
};
use crate::timer::TimerKey;

/// Kafka's `ClassicGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    /// The name clients see in ListGroups / DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// A parked request: answered when the join or sync phase completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) token: RequestToken,
    pub(crate) version: i16,
}

/// How the join-phase timer of a group ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinTimer {
    /// The first rebalance of an empty group waits `delay_ms`, extended while new members keep
    /// arriving, but never beyond the rebalance timeout (`remaining_ms` is what is left of it).
    InitialDelay { delay_ms: i64, remaining_ms: i64 },
    /// The rebalance timeout: members that have not rejoined by then are removed.
    Completion,
}

#[derive(Debug, Clone)]
pub(crate) struct ClassicMember {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) session_timeout_ms: i32,
    pub(crate) protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    pub(crate) awaiting_join: Option<Pending>,
    pub(crate) awaiting_sync: Option<Pending>,
    /// Joined but not yet through a join phase: may be expired while parked (it cannot
    /// heartbeat before it knows its generation).
    pub(crate) is_new: bool,
}

impl ClassicMember {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Kafka's `hasSatisfiedHeartbeat`: members parked in a join or sync do not need to
    /// heartbeat, except brand new ones.
    fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ClassicGroup {
    pub(crate) id: String,
    pub(crate) state: ClassicState,
    pub(crate) previous_state: ClassicState,
    /// When the group entered its state; -1 when unknown. Empty groups expire their offsets
    /// `offsets.retention.minutes` after this.
    pub(crate) state_timestamp: i64,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) generation: i32,
    pub(crate) leader: Option<String>,
    /// In join order: the first joiner leads, and a new leader is the first rejoined member.
    pub(crate) members: Vec<ClassicMember>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub(crate) pending_members: BTreeSet<String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub(crate) pending_sync: BTreeSet<String>,
    pub(crate) new_member_added: bool,
    pub(crate) join_timer: Option<JoinTimer>,
    /// Topics the members subscribe to (consumer protocol only), for offset expiry and
    /// OffsetDelete; `None` when unknown.
    pub(crate) subscribed_topics: Option<BTreeSet<String>>,
}

impl ClassicGroup {
    pub(crate) fn new(id: String, now: i64) -> Self {
        Self {
            id,
            state: ClassicState::Empty,
            previous_state: ClassicState::Empty,
            state_timestamp: now,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: Vec::new(),
            pending_members: BTreeSet::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            join_timer: None,
            subscribed_topics: None,
        }
    }

    /// Rebuilds a group from its last `GroupMetadataValue`: Stable with its members, or Empty.
    pub(crate) fn from_record(id: String, v: &GroupMetadataValue) -> Self {
        let members: Vec<ClassicMember> = v
            .members
            .iter()
            .map(|m| ClassicMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout,
                session_timeout_ms: m.session_timeout,
                protocol_type: v.protocol_type.clone(),
                protocols: vec![(
                    v.protocol.clone().unwrap_or_default(),
                    m.subscription.clone(),
                )],
                assignment: m.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            })
            .collect();
        let state = if members.is_empty() {
            ClassicState::Empty
        } else {
            ClassicState::Stable
        };
        let mut g = Self {
            id,
            state,
            previous_state: state,
            state_timestamp: v.current_state_timestamp,
            protocol_type: (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone()),
            protocol_name: v.protocol.clone(),
            generation: v.generation,
            leader: v.leader.clone(),
            members,
            pending_members: BTreeSet::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            join_timer: None,
            subscribed_topics: None,
        };
        g.subscribed_topics = g.compute_subscribed_topics();
        g
    }

    pub(crate) fn to_record(&self) -> CoordinatorRecord {
        let protocol = self.protocol_name.clone();
        CoordinatorRecord::new(
            RecordKey::GroupMetadata {
                group: self.id.clone(),
            },
            RecordValue::GroupMetadata(GroupMetadataValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation: self.generation,
                protocol: protocol.clone(),
                leader: self.leader.clone(),
                current_state_timestamp: self.state_timestamp,
                members: self
                    .members
                    .iter()
                    .map(|m| GroupMemberMetadata {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout: m.rebalance_timeout_ms,
                        session_timeout: m.session_timeout_ms,
                        subscription: protocol
                            .as_deref()
                            .map(|p| m.metadata(p))
                            .unwrap_or_default(),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            }),
        )
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.state == ClassicState::Empty
    }

    pub(crate) fn member(&self, id: &str) -> Option<&ClassicMember> {
        self.members.iter().find(|m| m.member_id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut ClassicMember> {
        self.members.iter_mut().find(|m| m.member_id == id)
    }

    pub(crate) fn has_member(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    pub(crate) fn static_member_id(&self, instance: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(instance))
            .map(|m| m.member_id.as_str())
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        )
    }

    fn transition(&mut self, to: ClassicState, now: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp = now;
    }

    fn supported_by_all(&self, name: &str) -> bool {
        self.members
            .iter()
            .all(|m| m.protocols.iter().any(|(n, _)| n == name))
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == ClassicState::Empty {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(n, _)| self.supported_by_all(n))
        }
    }

    /// Kafka's vote: among the protocols every member supports, each member votes for the
    /// first in its own preference order; the most votes win. Ties (which Kafka leaves to hash
    /// order) go to the protocol the earliest member prefers, so the choice is deterministic.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.supported_by_all(n))
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in &self.members {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        candidates
            .into_iter()
            .find(|c| votes.get(c).copied() == Some(best))
            .cloned()
    }

    fn add(&mut self, member: ClassicMember) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.push(member);
    }

    /// Removes a member (or a pending member id); a departing leader is replaced by the
    /// earliest remaining member, as Kafka does.
    pub(crate) fn remove(&mut self, id: &str) -> Option<ClassicMember> {
        self.pending_members.remove(id);
        self.pending_sync.remove(id);
        let pos = self.members.iter().position(|m| m.member_id == id)?;
        let m = self.members.remove(pos);
        if self.is_leader(id) {
            self.leader = self.members.first().map(|m| m.member_id.clone());
        }
        Some(m)
    }

    /// Topics of the consumer protocol's subscription (the version-0 prefix every version
    /// starts with: i16 version, then the topic array), as Kafka reads them.
    pub(crate) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut all = BTreeSet::new();
        for m in &self.members {
            all.extend(parse_subscription_topics(&m.metadata(protocol))?);
        }
        Some(all)
    }

    pub(crate) fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some("consumer")
    }

    pub(crate) fn is_subscribed_to(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(t) => t.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    /// Kafka's `validateMember`.
    pub(crate) fn validate_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<(), ErrorCode> {
        if let Some(instance) = instance {
            match self.static_member_id(instance) {
                None => return Err(ErrorCode::UnknownMemberId),
                Some(existing) if existing != member_id => {
                    return Err(ErrorCode::FencedInstanceId);
                }
                Some(_) => {}
            }
        }
        if !self.has_member(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        Ok(())
    }

    fn join_members(&self) -> Vec<JoinGroupResponseMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(s(&m.member_id))
                    .with_group_instance_id(m.group_instance_id.as_deref().map(s))
                    .with_metadata(m.metadata(&protocol))
            })
            .collect()
    }

    /// The JoinGroup answer describing the current generation.
    fn generation_response(&self, member_id: &str, with_members: bool) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_member_id(s(member_id))
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.as_deref().map(s))
            .with_protocol_name(self.protocol_name.as_deref().map(s))
            .with_leader(s(self.leader.as_deref().unwrap_or("")))
            .with_members(if with_members {
                self.join_members()
            } else {
                Vec::new()
            })
    }
}

/// Reads the topics of a `ConsumerProtocolSubscription` (any version: they share the v0
/// prefix). `None` when the bytes are not one.
fn parse_subscription_topics(b: &[u8]) -> Option<Vec<String>> {
    let mut pos = 2usize; // version
    let take = |pos: &mut usize, n: usize| -> Option<&[u8]> {
        let s = b.get(*pos..pos.checked_add(n)?)?;
        *pos += n;
        Some(s)
    };
    let n = take(&mut pos, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))?;
    if n < 0 || n as usize > b.len() {
        return None;
    }
    let mut topics = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = take(&mut pos, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))?;
        if len < 0 {
            return None;
        }
        let name = take(&mut pos, len as usize)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
    }
    Some(topics)
}

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_error(member_id: &str, code: ErrorCode) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_member_id(s(member_id))
        .with_error_code(code.code())
        .with_protocol_name(None)
}

/// Fits a JoinGroup response to the version it answers: fields the version cannot carry go
/// back to their defaults, and the protocol name, nullable only from v7, becomes "".
pub(crate) fn fit_join_response(version: i16, mut r: JoinGroupResponse) -> JoinGroupResponse {
    if version < 7 {
        r.protocol_type = None;
        if r.protocol_name.is_none() {
            r.protocol_name = Some(StrBytes::default());
        }
    }
    if version < 9 {
        r.skip_assignment = false;
    }
    if version < 5 {
        for m in &mut r.members {
            m.group_instance_id = None;
        }
    }
    r
}

/// `code: None` is success.
fn sync_response(
    version: i16,
    code: Option<ErrorCode>,
    group: Option<&ClassicGroup>,
    assignment: Bytes,
) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default()
        .with_error_code(code_of(code))
        .with_assignment(assignment);
    if version >= 5
        && code.is_none()
        && let Some(g) = group
    {
        r.protocol_type = g.protocol_type.as_deref().map(s);
        r.protocol_name = g.protocol_name.as_deref().map(s);
    }
    r
}

impl GroupCoordinatorShard {
    fn classic_mut(&mut self, id: &str) -> Option<&mut ClassicGroup> {
        match self.groups.get_mut(id) {
            Some(Group::Classic(g)) => Some(g),
            _ => None,
        }
    }

    fn reply_join(out: &mut Outcome, p: Pending, r: JoinGroupResponse) {
        out.responses.push((
            p.token,
            ShardResponse::JoinGroup(fit_join_response(p.version, r)),
        ));
    }

    fn reply_sync(out: &mut Outcome, p: Pending, r: SyncGroupResponse) {
        out.responses.push((p.token, ShardResponse::SyncGroup(r)));
    }

    fn schedule_heartbeat(&mut self, group: &str, member: &str, deadline: i64) {
        self.timers.schedule(
            TimerKey::ClassicHeartbeat {
                group: group.to_string(),
                member: member.to_string(),
            },
            deadline,
        );
    }

    fn cancel_heartbeat(&mut self, group: &str, member: &str) {
        self.timers.cancel(&TimerKey::ClassicHeartbeat {
            group: group.to_string(),
            member: member.to_string(),
        });
    }

    /// JoinGroup. The response is usually deferred until the join phase completes; it may
    /// come back in the `Outcome` of a later call (another member's join, a leave, a timer).
    pub fn join_group(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: JoinGroupRequest,
        client: ClientInfo,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let pending = Pending { token, version };
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        if group_id.is_empty() {
            Self::reply_join(
                &mut out,
                pending,
                join_error(&member_id, ErrorCode::InvalidGroupId),
            );
            return out;
        }
        if request.session_timeout_ms < self.config.min_session_timeout_ms
            || request.session_timeout_ms > self.config.max_session_timeout_ms
        {
            Self::reply_join(
                &mut out,
                pending,
                join_error(&member_id, ErrorCode::InvalidSessionTimeout),
            );
            return out;
        }
        match self.groups.get(&group_id) {
            Some(Group::Consumer(g)) if !g.members.is_empty() => {
                // Joining a KIP-848 group with the classic protocol is Kafka's online
                // migration, which strom does not do.
                Self::reply_join(
                    &mut out,
                    pending,
                    join_error(&member_id, ErrorCode::InconsistentGroupProtocol),
                );
                return out;
            }
            Some(Group::Consumer(_)) => {
                // An empty consumer group gives way to the classic group, as in Kafka.
                self.delete_consumer_group_records(&group_id, &mut out);
            }
            _ => {}
        }
        let is_unknown = member_id.is_empty();
        let is_new_group = !self.groups.contains_key(&group_id);
        if is_new_group {
            if !is_unknown {
                Self::reply_join(
                    &mut out,
                    pending,
                    join_error(&member_id, ErrorCode::UnknownMemberId),
                );
                return out;
            }
            self.groups.insert(
                group_id.clone(),
                Group::Classic(ClassicGroup::new(group_id.clone(), now_ms)),
            );
        }
        let records_before = out.records.len();
        let protocols: Vec<(String, Bytes)> = request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect();
        let join = JoinArgs {
            now: now_ms,
            pending,
            member_id: member_id.clone(),
            instance: request.group_instance_id.as_ref().map(|i| i.to_string()),
            protocol_type: request.protocol_type.to_string(),
            protocols,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            client,
        };
        if !self.accept_joining_member(&group_id, &member_id) {
            if let Some(g) = self.classic_mut(&group_id) {
                g.remove(&member_id);
            }
            self.cancel_heartbeat(&group_id, &member_id);
            Self::reply_join(
                &mut out,
                pending,
                join_error("", ErrorCode::GroupMaxSizeReached),
            );
        } else if is_unknown {
            self.join_new_member(&group_id, join, &mut out);
        } else {
            self.join_existing_member(&group_id, join, &mut out);
        }
        if is_new_group && out.records.len() == records_before {
            // Kafka writes the new (empty) group so that it survives a failover even when the
            // join itself produced nothing to write yet (e.g. MEMBER_ID_REQUIRED).
            if let Some(g) = self.classic_mut(&group_id) {
                let record = g.to_record();
                out.records.push(record);
            }
        }
        out
    }

    fn accept_joining_member(&self, group_id: &str, member_id: &str) -> bool {
        let Some(Group::Classic(g)) = self.groups.get(group_id) else {
            return true;
        };
        let max = usize::try_from(self.config.max_size).unwrap_or(usize::MAX);
        match g.state {
            ClassicState::Empty | ClassicState::Dead => true,
            // Counting the members awaiting a join (not all members) lets the last
            // re-joiners be refused when the group is over a lowered limit.
            ClassicState::PreparingRebalance => {
                g.member(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || g.num_awaiting_join() < max
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                g.has_member(member_id) || g.members.len() < max
            }
        }
    }

    fn join_new_member(&mut self, group_id: &str, join: JoinArgs, out: &mut Outcome) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if !g.supports_protocols(&join.protocol_type, &join.protocols) {
            Self::reply_join(
                out,
                join.pending,
                join_error("", ErrorCode::InconsistentGroupProtocol),
            );
            return;
        }
        let prefix = join.instance.as_deref().unwrap_or(&join.client.client_id);
        let new_member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = join.instance.clone() {
            let existing = g.static_member_id(&instance).map(str::to_string);
            match existing {
                Some(old) => self.replace_static_member(group_id, &old, new_member_id, join, out),
                None => self.add_member_and_rebalance(group_id, new_member_id, join, out),
            }
        } else if join.pending.version >= 4 {
            // KIP-394: the member must come back with this id; until it does it only holds a
            // place, which its session timeout releases.
            g.pending_members.insert(new_member_id.clone());
            let deadline = join.now + i64::from(join.session_timeout_ms);
            self.schedule_heartbeat(group_id, &new_member_id, deadline);
            Self::reply_join(
                out,
                join.pending,
                join_error(&new_member_id, ErrorCode::MemberIdRequired),
            );
        } else {
            self.add_member_and_rebalance(group_id, new_member_id, join, out);
        }
    }

    fn join_existing_member(&mut self, group_id: &str, join: JoinArgs, out: &mut Outcome) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        let member_id = join.member_id.clone();
        if !g.supports_protocols(&join.protocol_type, &join.protocols) {
            Self::reply_join(
                out,
                join.pending,
                join_error(&member_id, ErrorCode::InconsistentGroupProtocol),
            );
            return;
        }
        if g.pending_members.contains(&member_id) {
            self.add_member_and_rebalance(group_id, member_id, join, out);
            return;
        }
        if let Err(code) = g.validate_member(&member_id, join.instance.as_deref()) {
            Self::reply_join(out, join.pending, join_error(&member_id, code));
            return;
        }
        let (is_leader, matches) = match g.member(&member_id) {
            Some(m) => (g.is_leader(&member_id), m.matches(&join.protocols)),
            None => return,
        };
        match g.state {
            ClassicState::PreparingRebalance => {
                self.update_member_and_rebalance(group_id, join, out);
            }
            ClassicState::CompletingRebalance if matches => {
                // The member probably lost its JoinGroup response: give it the current
                // generation again.
                let r = g.generation_response(&member_id, is_leader);
                Self::reply_join(out, join.pending, r);
            }
            ClassicState::Stable if !is_leader && matches => {
                let r = g.generation_response(&member_id, false);
                Self::reply_join(out, join.pending, r);
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                // Changed metadata, or the leader asking for a rebalance (it does so when
                // topic metadata changes under an unchanged subscription).
                self.update_member_and_rebalance(group_id, join, out);
            }
            ClassicState::Empty | ClassicState::Dead => {
                Self::reply_join(
                    out,
                    join.pending,
                    join_error(&member_id, ErrorCode::UnknownMemberId),
                );
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        group_id: &str,
        member_id: String,
        join: JoinArgs,
        out: &mut Outcome,
    ) {
        let join_timeout = i64::from(self.config.new_member_join_timeout_ms);
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if g.state == ClassicState::PreparingRebalance && g.previous_state == ClassicState::Empty {
            g.new_member_added = true;
        }
        g.add(ClassicMember {
            member_id: member_id.clone(),
            group_instance_id: join.instance,
            client_id: join.client.client_id,
            client_host: join.client.client_host,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            session_timeout_ms: join.session_timeout_ms,
            protocol_type: join.protocol_type,
            protocols: join.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(join.pending),
            awaiting_sync: None,
            is_new: true,
        });
        // A parked new member cannot heartbeat; its JoinGroup times out instead, so that
        // clients that gave up (and retry with a new id) do not pile up in the group.
        self.schedule_heartbeat(group_id, &member_id, join.now + join_timeout);
        self.maybe_prepare_rebalance_or_complete_join(group_id, join.now, out);
    }

    fn update_member_and_rebalance(&mut self, group_id: &str, join: JoinArgs, out: &mut Outcome) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        let Some(m) = g.member_mut(&join.member_id) else {
            return;
        };
        m.protocols = join.protocols;
        m.rebalance_timeout_ms = join.rebalance_timeout_ms;
        m.session_timeout_ms = join.session_timeout_ms;
        m.client_id = join.client.client_id;
        m.client_host = join.client.client_host;
        if let Some(old) = m.awaiting_join.replace(join.pending) {
            // A second JoinGroup supersedes the first; answer the first so it is not left
            // hanging (its client already gave up on it).
            Self::reply_join(
                out,
                old,
                join_error(&join.member_id, ErrorCode::RebalanceInProgress),
            );
        }
        self.maybe_prepare_rebalance_or_complete_join(group_id, join.now, out);
    }

    /// KIP-345: a known `group.instance.id` joins with a new member id. The old id is fenced;
    /// in a Stable group whose protocol would not change, the member takes over the old one's
    /// assignment without a rebalance.
    fn replace_static_member(
        &mut self,
        group_id: &str,
        old_id: &str,
        new_id: String,
        join: JoinArgs,
        out: &mut Outcome,
    ) {
        self.cancel_heartbeat(group_id, old_id);
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        let current_leader = g.leader.clone();
        let Some(m) = g.member_mut(old_id) else {
            return;
        };
        m.member_id = new_id.clone();
        let fenced_join = m.awaiting_join.take();
        let fenced_sync = m.awaiting_sync.take();
        m.protocols = join.protocols;
        m.rebalance_timeout_ms = join.rebalance_timeout_ms;
        m.session_timeout_ms = join.session_timeout_ms;
        m.client_id = join.client.client_id;
        m.client_host = join.client.client_host;
        m.awaiting_join = Some(join.pending);
        let session = i64::from(m.session_timeout_ms);
        if g.leader.as_deref() == Some(old_id) {
            g.leader = Some(new_id.clone());
        }
        if g.pending_sync.remove(old_id) {
            g.pending_sync.insert(new_id.clone());
        }
        if let Some(p) = fenced_join {
            Self::reply_join(out, p, join_error(old_id, ErrorCode::FencedInstanceId));
        }
        if let Some(p) = fenced_sync {
            Self::reply_sync(
                out,
                p,
                sync_response(
                    p.version,
                    Some(ErrorCode::FencedInstanceId),
                    None,
                    Bytes::new(),
                ),
            );
        }
        let state = g.state;
        let unchanged_protocol = g.select_protocol() == g.protocol_name;
        self.schedule_heartbeat(group_id, &new_id, join.now + session);
        match state {
            ClassicState::Stable if unchanged_protocol => {
                let Some(g) = self.classic_mut(group_id) else {
                    return;
                };
                out.records.push(g.to_record());
                let is_leader = g.is_leader(&new_id);
                let response = if join.pending.version >= 9 {
                    g.generation_response(&new_id, is_leader)
                        .with_skip_assignment(is_leader)
                } else {
                    // Older clients would run the assignment if told they lead; tell them the
                    // leader they knew instead, so the current assignment stays.
                    g.generation_response(&new_id, false)
                        .with_leader(s(current_leader.as_deref().unwrap_or("")))
                };
                if let Some(m) = g.member_mut(&new_id) {
                    m.awaiting_join = None;
                }
                Self::reply_join(out, join.pending, response);
            }
            ClassicState::Stable => {
                self.maybe_prepare_rebalance_or_complete_join(group_id, join.now, out);
            }
            ClassicState::CompletingRebalance => {
                // The leader may already be computing an assignment for the old id.
                self.prepare_rebalance(group_id, join.now, out);
            }
            _ => self.maybe_complete_join_phase(group_id, join.now, out),
        }
    }

    pub(crate) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        group_id: &str,
        now: i64,
        out: &mut Outcome,
    ) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if g.can_rebalance() {
            self.prepare_rebalance(group_id, now, out);
        } else {
            self.maybe_complete_join_phase(group_id, now, out);
        }
    }

    fn prepare_rebalance(&mut self, group_id: &str, now: i64, out: &mut Outcome) {
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms);
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        let answered = if g.state == ClassicState::CompletingRebalance {
            Self::reset_and_propagate_error(g, ErrorCode::RebalanceInProgress, out)
        } else {
            Vec::new()
        };
        g.pending_sync.clear();
        let initial = g.state == ClassicState::Empty;
        let rebalance_timeout = g.rebalance_timeout_ms();
        g.transition(ClassicState::PreparingRebalance, now);
        debug!(
            group = group_id,
            generation = g.generation,
            "preparing rebalance"
        );
        // Members answered on SyncGroup start a new session, as after any answer Kafka gives
        // them.
        for (id, session) in answered {
            self.schedule_heartbeat(group_id, &id, now + session);
        }
        self.timers.cancel(&TimerKey::ClassicSync {
            group: group_id.to_string(),
        });
        if initial {
            let timer = JoinTimer::InitialDelay {
                delay_ms: initial_delay,
                remaining_ms: (rebalance_timeout - initial_delay).max(0),
            };
            if let Some(g) = self.classic_mut(group_id) {
                g.join_timer = Some(timer);
            }
            self.timers.schedule(
                TimerKey::ClassicJoin {
                    group: group_id.to_string(),
                },
                now + initial_delay,
            );
        } else {
            self.maybe_complete_join_else_schedule(group_id, now, out);
        }
    }

    /// Answers every parked SyncGroup with `code`; returns who was answered, with their
    /// session timeouts.
    fn reset_and_propagate_error(
        g: &mut ClassicGroup,
        code: ErrorCode,
        out: &mut Outcome,
    ) -> Vec<(String, i64)> {
        let mut answered = Vec::new();
        for m in &mut g.members {
            m.assignment = Bytes::new();
            if let Some(p) = m.awaiting_sync.take() {
                Self::reply_sync(
                    out,
                    p,
                    sync_response(p.version, Some(code), None, Bytes::new()),
                );
                answered.push((m.member_id.clone(), i64::from(m.session_timeout_ms)));
            }
        }
        answered
    }

    fn maybe_complete_join_else_schedule(&mut self, group_id: &str, now: i64, out: &mut Outcome) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if g.has_all_members_joined() {
            self.complete_join(group_id, now, out);
        } else {
            let deadline = now + g.rebalance_timeout_ms();
            g.join_timer = Some(JoinTimer::Completion);
            self.timers.schedule(
                TimerKey::ClassicJoin {
                    group: group_id.to_string(),
                },
                deadline,
            );
        }
    }

    pub(crate) fn maybe_complete_join_phase(
        &mut self,
        group_id: &str,
        now: i64,
        out: &mut Outcome,
    ) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if g.state != ClassicState::PreparingRebalance
            || g.previous_state == ClassicState::Empty
            || !g.has_all_members_joined()
        {
            return;
        }
        self.complete_join(group_id, now, out);
    }

    /// The join barrier: members that did not rejoin are dropped (static ones are kept), a
    /// leader is chosen among those that did, the generation is bumped and every parked
    /// JoinGroup is answered.
    fn complete_join(&mut self, group_id: &str, now: i64, out: &mut Outcome) {
        self.timers.cancel(&TimerKey::ClassicJoin {
            group: group_id.to_string(),
        });
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        g.join_timer = None;
        let dropped: Vec<String> = g
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &dropped {
            g.remove(id);
        }
        let elected = match g.leader.clone() {
            None => false,
            Some(leader) => {
                let leader_joined = g.member(&leader).is_some_and(|m| m.awaiting_join.is_some());
                if leader_joined {
                    true
                } else if let Some(m) = g.members.iter().find(|m| m.awaiting_join.is_some()) {
                    g.leader = Some(m.member_id.clone());
                    true
                } else {
                    false
                }
            }
        };
        let rebalance_timeout = g.rebalance_timeout_ms();
        if !elected && !g.members.is_empty() {
            // Nobody rejoined: wait another rebalance timeout for the sessions of the static
            // members that are still in the group to expire.
            g.join_timer = Some(JoinTimer::Completion);
            for id in &dropped {
                self.cancel_heartbeat(group_id, id);
            }
            self.timers.schedule(
                TimerKey::ClassicJoin {
                    group: group_id.to_string(),
                },
                now + rebalance_timeout,
            );
            return;
        }
        g.generation += 1;
        g.protocol_name = if g.members.is_empty() {
            None
        } else {
            g.select_protocol()
        };
        g.subscribed_topics = g.compute_subscribed_topics();
        g.pending_sync.clear();
        if g.members.is_empty() {
            g.transition(ClassicState::Empty, now);
            out.records.push(g.to_record());
        } else {
            g.transition(ClassicState::CompletingRebalance, now);
            let generation = g.generation;
            let mut replies = Vec::new();
            let mut sessions = Vec::new();
            for i in 0..g.members.len() {
                let id = g.members[i].member_id.clone();
                let leader = g.is_leader(&id);
                if let Some(p) = g.members[i].awaiting_join.take() {
                    replies.push((p, g.generation_response(&id, leader)));
                }
                g.members[i].is_new = false;
                sessions.push((id.clone(), i64::from(g.members[i].session_timeout_ms)));
                g.pending_sync.insert(id);
            }
            debug!(
                group = group_id,
                generation,
                members = sessions.len(),
                "join phase complete"
            );
            for (p, r) in replies {
                Self::reply_join(out, p, r);
            }
            for (id, session) in sessions {
                self.schedule_heartbeat(group_id, &id, now + session);
            }
            self.timers.schedule(
                TimerKey::ClassicSync {
                    group: group_id.to_string(),
                },
                now + rebalance_timeout,
            );
        }
        for id in &dropped {
            self.cancel_heartbeat(group_id, id);
        }
    }

    /// SyncGroup. The leader's request carries the assignment; followers wait for it.
    pub fn sync_group(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: SyncGroupRequest,
        _client: ClientInfo,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let pending = Pending { token, version };
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let err = |out: &mut Outcome, code| {
            Self::reply_sync(
                out,
                pending,
                sync_response(version, Some(code), None, Bytes::new()),
            );
        };
        let Some(g) = self.classic_mut(&group_id) else {
            err(&mut out, ErrorCode::UnknownMemberId);
            return out;
        };
        if g.state == ClassicState::Empty {
            err(&mut out, ErrorCode::UnknownMemberId);
            return out;
        }
        let instance = request.group_instance_id.as_ref().map(|i| i.to_string());
        if let Err(code) = g.validate_member(&member_id, instance.as_deref()) {
            err(&mut out, code);
            return out;
        }
        if request.generation_id != g.generation {
            err(&mut out, ErrorCode::IllegalGeneration);
            return out;
        }
        let inconsistent = |req: &Option<StrBytes>, group: &Option<String>| match (req, group) {
            (Some(r), Some(g)) => r.as_str() != g,
            _ => false,
        };
        if inconsistent(&request.protocol_type, &g.protocol_type)
            || inconsistent(&request.protocol_name, &g.protocol_name)
        {
            err(&mut out, ErrorCode::InconsistentGroupProtocol);
            return out;
        }
        match g.state {
            ClassicState::PreparingRebalance => err(&mut out, ErrorCode::RebalanceInProgress),
            ClassicState::CompletingRebalance => {
                g.pending_sync.remove(&member_id);
                if let Some(m) = g.member_mut(&member_id)
                    && let Some(old) = m.awaiting_sync.replace(pending)
                {
                    Self::reply_sync(
                        &mut out,
                        old,
                        sync_response(
                            old.version,
                            Some(ErrorCode::RebalanceInProgress),
                            None,
                            Bytes::new(),
                        ),
                    );
                }
                if g.pending_sync.is_empty() {
                    self.timers.cancel(&TimerKey::ClassicSync {
                        group: group_id.clone(),
                    });
                }
                let Some(g) = self.classic_mut(&group_id) else {
                    return out;
                };
                if g.is_leader(&member_id) {
                    let assignments: BTreeMap<String, Bytes> = request
                        .assignments
                        .into_iter()
                        .map(|a| (a.member_id.to_string(), a.assignment))
                        .collect();
                    for m in &mut g.members {
                        m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    g.transition(ClassicState::Stable, now_ms);
                    out.records.push(g.to_record());
                    let mut sessions = Vec::new();
                    for i in 0..g.members.len() {
                        if let Some(p) = g.members[i].awaiting_sync.take() {
                            let r = sync_response(
                                p.version,
                                None,
                                Some(g),
                                g.members[i].assignment.clone(),
                            );
                            Self::reply_sync(&mut out, p, r);
                            sessions.push((
                                g.members[i].member_id.clone(),
                                i64::from(g.members[i].session_timeout_ms),
                            ));
                        }
                    }
                    for (id, session) in sessions {
                        self.schedule_heartbeat(&group_id, &id, now_ms + session);
                    }
                }
            }
            ClassicState::Stable => {
                g.pending_sync.remove(&member_id);
                let assignment = g
                    .member(&member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                let r = sync_response(version, None, Some(g), assignment);
                if g.pending_sync.is_empty() {
                    self.timers.cancel(&TimerKey::ClassicSync {
                        group: group_id.clone(),
                    });
                }
                Self::reply_sync(&mut out, pending, r);
            }
            ClassicState::Empty | ClassicState::Dead => err(&mut out, ErrorCode::UnknownMemberId),
        }
        out
    }

    /// Heartbeat: keeps the session and tells members when to rejoin.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        _version: i16,
        request: HeartbeatRequest,
        _client: ClientInfo,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let instance = request.group_instance_id.as_ref().map(|i| i.to_string());
        let code = match self.classic_mut(&group_id) {
            None => Some(ErrorCode::UnknownMemberId),
            Some(g) => match g.validate_member(&member_id, instance.as_deref()) {
                Err(code) => Some(code),
                Ok(()) if request.generation_id != g.generation => {
                    Some(ErrorCode::IllegalGeneration)
                }
                Ok(()) => match g.state {
                    ClassicState::Empty | ClassicState::Dead => Some(ErrorCode::UnknownMemberId),
                    state => {
                        let session = g
                            .member(&member_id)
                            .map_or(0, |m| i64::from(m.session_timeout_ms));
                        self.schedule_heartbeat(&group_id, &member_id, now_ms + session);
                        if state == ClassicState::PreparingRebalance {
                            Some(ErrorCode::RebalanceInProgress)
                        } else {
                            None
                        }
                    }
                },
            },
        };
        Outcome {
            records: Vec::new(),
            responses: vec![(
                token,
                ShardResponse::Heartbeat(
                    HeartbeatResponse::default().with_error_code(code_of(code)),
                ),
            )],
            transactional: None,
        }
    }

    /// LeaveGroup; v3+ removes a batch of members (by member id or by instance id), each with
    /// its own error.
    pub fn leave_group(
        &mut self,
        now_ms: i64,
        token: RequestToken,
        version: i16,
        request: LeaveGroupRequest,
        _client: ClientInfo,
    ) -> Outcome {
        self.ensure_expiration_timer(now_ms);
        let mut out = Outcome::default();
        let group_id = request.group_id.0.to_string();
        let identities: Vec<(String, Option<String>)> = if version < 3 {
            vec![(request.member_id.to_string(), None)]
        } else {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        };
        let respond = |out: &mut Outcome, top: Option<ErrorCode>, members: Vec<MemberResponse>| {
            let mut r = LeaveGroupResponse::default().with_error_code(code_of(top));
            if version >= 3 {
                r.members = members;
            }
            out.responses.push((token, ShardResponse::LeaveGroup(r)));
        };
        if self.classic_mut(&group_id).is_none() {
            respond(&mut out, Some(ErrorCode::UnknownMemberId), Vec::new());
            return out;
        }
        let mut results = Vec::new();
        let mut any_left = false;
        for (member_id, instance) in identities {
            let Some(g) = self.classic_mut(&group_id) else {
                break;
            };
            let code = if member_id.is_empty() {
                // Administrative removal by instance id (e.g. from an admin client).
                match instance
                    .as_deref()
                    .and_then(|i| g.static_member_id(i))
                    .map(str::to_string)
                {
                    Some(id) => {
                        self.remove_current_member(&group_id, &id, &mut out);
                        any_left = true;
                        None
                    }
                    None => Some(ErrorCode::UnknownMemberId),
                }
            } else if g.pending_members.contains(&member_id) {
                g.remove(&member_id);
                self.cancel_heartbeat(&group_id, &member_id);
                None
            } else {
                match g.validate_member(&member_id, instance.as_deref()) {
                    Ok(()) => {
                        self.remove_current_member(&group_id, &member_id, &mut out);
                        any_left = true;
                        None
                    }
                    Err(code) => Some(code),
                }
            };
            results.push(
                MemberResponse::default()
                    .with_member_id(s(&member_id))
                    .with_group_instance_id(instance.as_deref().map(s))
                    .with_error_code(code_of(code)),
            );
        }
        if any_left && let Some(g) = self.classic_mut(&group_id) {
            match g.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(&group_id, now_ms, &mut out);
                }
                ClassicState::PreparingRebalance => {
                    self.maybe_complete_join_phase(&group_id, now_ms, &mut out);
                }
                _ => {}
            }
        }
        let top = if version < 3 {
            results
                .first()
                .and_then(|r| ErrorCode::try_from_code(r.error_code))
        } else {
            None
        };
        respond(&mut out, top, results);
        out
    }

    /// Removes a member; its parked JoinGroup (if any) gets UNKNOWN_MEMBER_ID so that a client
    /// still alive rejoins.
    fn remove_current_member(&mut self, group_id: &str, member_id: &str, out: &mut Outcome) {
        self.cancel_heartbeat(group_id, member_id);
        if let Some(g) = self.classic_mut(group_id)
            && let Some(m) = g.remove(member_id)
        {
            if let Some(p) = m.awaiting_join {
                Self::reply_join(out, p, join_error("", ErrorCode::UnknownMemberId));
            }
            if let Some(p) = m.awaiting_sync {
                Self::reply_sync(
                    out,
                    p,
                    sync_response(
                        p.version,
                        Some(ErrorCode::UnknownMemberId),
                        None,
                        Bytes::new(),
                    ),
                );
            }
        }
    }

    /// A classic heartbeat deadline passed.
    pub(crate) fn expire_classic_heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        now: i64,
        out: &mut Outcome,
    ) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if g.pending_members.remove(member_id) {
            if g.state == ClassicState::PreparingRebalance && g.has_all_members_joined() {
                self.complete_join(group_id, now, out);
            }
            return;
        }
        let Some(m) = g.member(member_id) else {
            return;
        };
        if m.has_satisfied_heartbeat() {
            return;
        }
        debug!(
            group = group_id,
            member = member_id,
            "classic member session expired"
        );
        self.remove_current_member(group_id, member_id, out);
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        match g.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(group_id, now, out);
            }
            ClassicState::PreparingRebalance if g.has_all_members_joined() => {
                self.complete_join(group_id, now, out);
            }
            _ => {}
        }
    }

    /// The join-phase deadline of a classic group passed.
    pub(crate) fn expire_classic_join(&mut self, group_id: &str, now: i64, out: &mut Outcome) {
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms);
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if g.state != ClassicState::PreparingRebalance {
            return;
        }
        match g.join_timer {
            Some(JoinTimer::InitialDelay {
                delay_ms,
                remaining_ms,
            }) if g.new_member_added && remaining_ms != 0 => {
                // Members are still arriving: wait a little longer, within the rebalance timeout.
                g.new_member_added = false;
                let next_delay = initial_delay.min(remaining_ms);
                let next_remaining = (remaining_ms - delay_ms).max(0);
                g.join_timer = Some(JoinTimer::InitialDelay {
                    delay_ms: next_delay,
                    remaining_ms: next_remaining,
                });
                self.timers.schedule(
                    TimerKey::ClassicJoin {
                        group: group_id.to_string(),
                    },
                    now + next_delay,
                );
            }
            _ => self.complete_join(group_id, now, out),
        }
    }

    /// Members of the generation that never sent SyncGroup are removed and the group
    /// rebalances without them.
    pub(crate) fn expire_classic_sync(&mut self, group_id: &str, now: i64, out: &mut Outcome) {
        let Some(g) = self.classic_mut(group_id) else {
            return;
        };
        if !matches!(
            g.state,
            ClassicState::CompletingRebalance | ClassicState::Stable
        ) || g.pending_sync.is_empty()
        {
            return;
        }
        let missing: Vec<String> = g.pending_sync.iter().cloned().collect();
        for id in &missing {
            self.remove_current_member(group_id, id, out);
        }
        self.prepare_rebalance(group_id, now, out);
    }

    /// Keeps a classic member's session alive on an offset commit, as Kafka does in Stable and
    /// PreparingRebalance.
    pub(crate) fn touch_classic_member(&mut self, group_id: &str, member_id: &str, now: i64) {
        let session = match self.classic_mut(group_id) {
            Some(g)
                if matches!(
                    g.state,
                    ClassicState::Stable | ClassicState::PreparingRebalance
                ) =>
            {
                g.member(member_id).map(|m| i64::from(m.session_timeout_ms))
            }
            _ => None,
        };
        if let Some(session) = session {
            self.schedule_heartbeat(group_id, member_id, now + session);
        }
    }
}

/// The pieces of a JoinGroup request the join paths need.
#[derive(Debug)]
struct JoinArgs {
    now: i64,
    pending: Pending,
    member_id: String,
    instance: Option<String>,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    client: ClientInfo,
}
