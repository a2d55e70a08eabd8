//! Membership of a consumer group (KIP-848 members: see `kip848.rs`). Classic groups, on the
//! wire: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and OffsetCommit with the member's generation, as Java's `AbstractCoordinator`
//! and `ConsumerCoordinator` send them. The rebalance itself (revoking, assigning, positions)
//! is driven by the consumer's `poll`; this module only talks to the coordinator and keeps
//! the member's identity.
//!
//! ```text
//!  poll ──> join ──(MEMBER_ID_REQUIRED: again with the id)──> JoinGroup answer
//!             leader: run the voted assignor ─┐
//!             follower: nothing ──────────────┴──> SyncGroup ──> assignment ──> stable
//!  heartbeat task: Heartbeat every heartbeat.interval.ms while stable;
//!    REBALANCE_IN_PROGRESS ──> rejoin;  ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID ──> lost + rejoin
//!    no poll for max.poll.interval.ms ──> leave (dynamic members) + lost
//! ```
//!
//! The heartbeat runs on its own task because a slow `poll` caller must not look dead to
//! the coordinator; it never touches the assignment, it only flags what `poll` must do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::leave_group_request::MemberIdentity;
use strom_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    SyncGroupRequest, TopicName,
};
use strom_protocol::{ErrorCode, StrBytes};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::assignor::GroupMember;
use super::kip848::{self, HeartbeatSubscription, Heartbeater, Kip848State};
use crate::admin::coordinator::split_group_error;
use crate::admin::{Admin, OffsetAndMetadata};
use crate::config::GroupProtocol;
use crate::error::{ClientError, Result};
use crate::group_protocol::{CONSUMER_PROTOCOL_TYPE, ConsumerSubscription};
use crate::record::TopicPartition;

/// OffsetCommit v10 names topics by id; we name them.
const OFFSET_COMMIT_MAX_VERSION: i16 = 9;

/// The member's identity and what the heartbeat task found out.
#[derive(Debug, Clone)]
pub(crate) struct MemberState {
    /// -1 until the first SyncGroup, and after the coordinator forgot us.
    pub(crate) generation: i32,
    pub(crate) member_id: String,
    pub(crate) protocol: Option<String>,
    /// Heartbeats are sent only between a completed SyncGroup and the next rebalance.
    pub(crate) stable: bool,
    /// The consumer must rejoin at its next chance.
    pub(crate) rejoin: bool,
    /// The generation was reset: the owned partitions may belong to someone else now.
    pub(crate) lost: bool,
    /// An error that ends the membership (FENCED_INSTANCE_ID); `poll` returns it.
    pub(crate) fatal: Option<ClientError>,
}

impl Default for MemberState {
    fn default() -> Self {
        Self {
            generation: -1,
            member_id: String::new(),
            protocol: None,
            stable: false,
            rejoin: true,
            lost: false,
            fatal: None,
        }
    }
}

impl MemberState {
    /// Forgets the generation (and the member id, when the coordinator does not know it).
    fn reset(&mut self, forget_member_id: bool) {
        self.generation = -1;
        self.protocol = None;
        self.stable = false;
        self.rejoin = true;
        if forget_member_id {
            self.member_id.clear();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<MemberState>,
    /// Wakes a waiting `poll` when the heartbeat task asks for a rejoin.
    pub(crate) wake: Notify,
    /// When `poll` last ran, for `max.poll.interval.ms`.
    pub(crate) last_poll: Mutex<Instant>,
    /// KIP-848 members only: the subscription, owned and target partitions. Lock it after
    /// `state` when both are needed.
    pub(crate) kip848: Mutex<Kip848State>,
    /// KIP-848 members only: asks the heartbeat task to heartbeat now (to acknowledge a
    /// reconciliation, or to rejoin).
    pub(crate) send_now: Notify,
}

impl Shared {
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, MemberState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn kip848(&self) -> std::sync::MutexGuard<'_, Kip848State> {
        self.kip848.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What JoinGroup answered.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) generation: i32,
    pub(crate) member_id: String,
    pub(crate) protocol: String,
    pub(crate) leader: String,
    /// A static leader that rejoined without a rebalance: it must not reassign (KIP-814).
    pub(crate) skip_assignment: bool,
    pub(crate) members: BTreeMap<String, GroupMember>,
}

impl Joined {
    pub(crate) fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

/// One consumer's membership of one group.
#[derive(Debug)]
pub(crate) struct Membership {
    admin: Admin,
    pub(crate) group_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) protocol: GroupProtocol,
    pub(crate) shared: Arc<Shared>,
    heartbeat: JoinHandle<()>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Membership {
    /// A classic membership (`kip848: None`) or a KIP-848 one with its first subscription;
    /// either way its heartbeat task starts at once.
    pub(crate) fn new(
        admin: Admin,
        group_id: String,
        instance_id: Option<String>,
        kip848: Option<HeartbeatSubscription>,
    ) -> Self {
        let protocol = if kip848.is_some() {
            GroupProtocol::Consumer
        } else {
            GroupProtocol::Classic
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(MemberState::default()),
            wake: Notify::new(),
            last_poll: Mutex::new(Instant::now()),
            kip848: Mutex::new(kip848.map(Kip848State::new).unwrap_or_default()),
            send_now: Notify::new(),
        });
        let heartbeat = match protocol {
            GroupProtocol::Classic => tokio::spawn(heartbeat_loop(
                admin.clone(),
                group_id.clone(),
                instance_id.clone(),
                shared.clone(),
            )),
            GroupProtocol::Consumer => tokio::spawn(kip848::heartbeat_loop(Heartbeater {
                admin: admin.clone(),
                group_id: group_id.clone(),
                instance_id: instance_id.clone(),
                shared: shared.clone(),
            })),
        };
        Self {
            admin,
            group_id,
            instance_id,
            protocol,
            shared,
            heartbeat,
        }
    }

    /// KIP-848: a new subscription, sent with the next heartbeat (sent at once).
    pub(crate) fn set_kip848_subscription(&self, subscription: HeartbeatSubscription) {
        self.shared.kip848().set_subscription(subscription);
        self.shared.send_now.notify_one();
    }

    pub(crate) fn admin(&self) -> &Admin {
        &self.admin
    }

    /// JoinGroup until the coordinator accepts us: with KIP-394's round trip for a member id,
    /// and again after UNKNOWN_MEMBER_ID with no id.
    pub(crate) async fn join(&self, protocols: &[(String, Bytes)]) -> Result<Joined> {
        let config = self.admin.config().clone();
        {
            let mut state = self.shared.state();
            state.stable = false;
        }
        let mut attempt = 0u32;
        loop {
            let member_id = self.shared.state().member_id.clone();
            let request_protocols: Vec<JoinGroupRequestProtocol> = protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(str_bytes(name))
                        .with_metadata(metadata.clone())
                })
                .collect();
            // The coordinator may hold the request until every member rejoined.
            let timeout =
                config.max_poll_interval() + config.request_timeout() + Duration::from_secs(5);
            let response = self
                .admin
                .with_coordinator(&self.group_id, |conn, _| {
                    let request_protocols = request_protocols.clone();
                    let member_id = member_id.clone();
                    let config = &config;
                    async move {
                        let version = conn.version::<JoinGroupRequest>(None)?;
                        let mut request = JoinGroupRequest::default()
                            .with_group_id(group_id(&self.group_id))
                            .with_session_timeout_ms(ms(config.session_timeout()))
                            .with_member_id(str_bytes(&member_id))
                            .with_protocol_type(str_bytes(CONSUMER_PROTOCOL_TYPE))
                            .with_protocols(request_protocols);
                        if version >= 1 {
                            request =
                                request.with_rebalance_timeout_ms(ms(config.max_poll_interval()));
                        }
                        if version >= 5 {
                            request = request
                                .with_group_instance_id(self.instance_id.as_deref().map(str_bytes));
                        }
                        let response = conn.call_at(&request, version, timeout).await?;
                        let _ = split_group_error(response.error_code, None)?;
                        Ok(response)
                    }
                })
                .await?;
            match ErrorCode::try_from_code(response.error_code) {
                None => {
                    let mut members = BTreeMap::new();
                    for m in &response.members {
                        let subscription = match ConsumerSubscription::decode(&m.metadata) {
                            Ok(s) => s,
                            Err(e) => {
                                warn!(member = %m.member_id, error = %e, "unreadable subscription, treating as empty");
                                ConsumerSubscription::new(Vec::<String>::new())
                            }
                        };
                        members.insert(
                            m.member_id.to_string(),
                            GroupMember {
                                member_id: m.member_id.to_string(),
                                group_instance_id: m
                                    .group_instance_id
                                    .as_ref()
                                    .map(|s| s.to_string()),
                                subscription,
                            },
                        );
                    }
                    let joined = Joined {
                        generation: response.generation_id,
                        member_id: response.member_id.to_string(),
                        protocol: response
                            .protocol_name
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        leader: response.leader.to_string(),
                        skip_assignment: response.skip_assignment,
                        members,
                    };
                    self.shared.state().member_id = joined.member_id.clone();
                    debug!(group = %self.group_id, generation = joined.generation, member = %joined.member_id, leader = joined.is_leader(), "joined");
                    return Ok(joined);
                }
                Some(ErrorCode::MemberIdRequired) => {
                    self.shared.state().member_id = response.member_id.to_string();
                }
                Some(ErrorCode::UnknownMemberId) => self.shared.state().reset(true),
                Some(code @ (ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration)) => {
                    debug!(error = ?code, "JoinGroup answered, trying again");
                    tokio::time::sleep(self.admin.config().retry_backoff()).await;
                }
                Some(code) => {
                    let e = ClientError::kafka_described(code, None);
                    if code == ErrorCode::FencedInstanceId {
                        self.shared.state().fatal = Some(e.clone());
                    }
                    return Err(e);
                }
            }
            attempt += 1;
            if attempt > 100 {
                return Err(ClientError::Protocol(format!(
                    "group {}: JoinGroup did not complete after {attempt} attempts",
                    self.group_id
                )));
            }
        }
    }

    /// SyncGroup: sends the leader's assignments (empty for followers) and returns this
    /// member's. A refusal that means "rejoin" is returned as the Kafka error after the
    /// member state was updated for it.
    pub(crate) async fn sync(
        &self,
        joined: &Joined,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes> {
        let config = self.admin.config().clone();
        let assignments: Vec<SyncGroupRequestAssignment> = assignments
            .into_iter()
            .map(|(m, a)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&m))
                    .with_assignment(a)
            })
            .collect();
        let response = self
            .admin
            .with_coordinator(&self.group_id, |conn, _| {
                let assignments = assignments.clone();
                let config = &config;
                async move {
                    let version = conn.version::<SyncGroupRequest>(None)?;
                    let mut request = SyncGroupRequest::default()
                        .with_group_id(group_id(&self.group_id))
                        .with_generation_id(joined.generation)
                        .with_member_id(str_bytes(&joined.member_id))
                        .with_assignments(assignments);
                    if version >= 3 {
                        request = request
                            .with_group_instance_id(self.instance_id.as_deref().map(str_bytes));
                    }
                    if version >= 5 {
                        request = request
                            .with_protocol_type(Some(str_bytes(CONSUMER_PROTOCOL_TYPE)))
                            .with_protocol_name(Some(str_bytes(&joined.protocol)));
                    }
                    let timeout = config.max_poll_interval() + config.request_timeout();
                    let response = conn.call_at(&request, version, timeout).await?;
                    let _ = split_group_error(response.error_code, None)?;
                    Ok(response)
                }
            })
            .await?;
        match ErrorCode::try_from_code(response.error_code) {
            None => {
                let mut state = self.shared.state();
                state.generation = joined.generation;
                state.member_id = joined.member_id.clone();
                state.protocol = Some(joined.protocol.clone());
                state.stable = true;
                state.rejoin = false;
                state.lost = false;
                Ok(response.assignment)
            }
            Some(code) => {
                match code {
                    ErrorCode::UnknownMemberId => self.shared.state().reset(true),
                    ErrorCode::IllegalGeneration => self.shared.state().reset(false),
                    ErrorCode::FencedInstanceId => {
                        self.shared.state().fatal = Some(ClientError::kafka_described(code, None));
                    }
                    _ => self.shared.state().rejoin = true,
                }
                Err(ClientError::kafka_described(code, None))
            }
        }
    }

    /// LeaveGroup (dynamic members only: a static member keeps its place until its session
    /// times out, so that a restart does not rebalance).
    pub(crate) async fn leave(&self, reason: &str) {
        if self.protocol == GroupProtocol::Consumer {
            // The heartbeat task must not rejoin behind the leave.
            self.heartbeat.abort();
            let hb = Heartbeater {
                admin: self.admin.clone(),
                group_id: self.group_id.clone(),
                instance_id: self.instance_id.clone(),
                shared: self.shared.clone(),
            };
            hb.leave(reason).await;
            return;
        }
        let member_id = {
            let mut state = self.shared.state();
            let id = state.member_id.clone();
            state.reset(self.instance_id.is_none());
            state.rejoin = false;
            id
        };
        if self.instance_id.is_some() || member_id.is_empty() {
            return;
        }
        let config = self.admin.config().clone();
        let result = self
            .admin
            .with_coordinator(&self.group_id, |conn, _| {
                let member_id = member_id.clone();
                let config = &config;
                async move {
                    let version = conn.version::<LeaveGroupRequest>(None)?;
                    let request = if version >= 3 {
                        let mut identity =
                            MemberIdentity::default().with_member_id(str_bytes(&member_id));
                        if version >= 5 {
                            identity = identity.with_reason(Some(str_bytes(reason)));
                        }
                        LeaveGroupRequest::default()
                            .with_group_id(group_id(&self.group_id))
                            .with_members(vec![identity])
                    } else {
                        LeaveGroupRequest::default()
                            .with_group_id(group_id(&self.group_id))
                            .with_member_id(str_bytes(&member_id))
                    };
                    let response = conn
                        .call_at(&request, version, config.request_timeout())
                        .await?;
                    let _ = split_group_error(response.error_code, None)?;
                    Ok(response.error_code)
                }
            })
            .await;
        match result {
            Ok(0) => info!(group = %self.group_id, member = %member_id, reason, "left the group"),
            Ok(code) => debug!(group = %self.group_id, code, "LeaveGroup refused"),
            Err(e) => debug!(group = %self.group_id, error = %e, "LeaveGroup failed"),
        }
    }
}

/// Who commits: the member identity an OffsetCommit carries.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    pub(crate) admin: Admin,
    pub(crate) group_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) protocol: GroupProtocol,
    pub(crate) shared: Arc<Shared>,
}

impl Committer {
    /// OffsetCommit with the current generation and member id. ILLEGAL_GENERATION and
    /// UNKNOWN_MEMBER_ID (Java's `CommitFailedException`) also ask for a rejoin.
    pub(crate) async fn commit(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (generation, member_id) = {
            let s = self.shared.state();
            (s.generation, s.member_id.clone())
        };
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, o) in offsets {
            by_topic.entry(&tp.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(o.offset)
                    .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
                    .with_committed_metadata(Some(str_bytes(&o.metadata))),
            );
        }
        let topics: Vec<OffsetCommitRequestTopic> = by_topic
            .into_iter()
            .map(|(t, ps)| {
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partitions(ps)
            })
            .collect();
        let config = self.admin.config().clone();
        let codes: Vec<(TopicPartition, i16)> = self
            .admin
            .with_coordinator(&self.group_id, |conn, _| {
                let mut topics = topics.clone();
                let member_id = member_id.clone();
                let config = &config;
                async move {
                    let version =
                        conn.version::<OffsetCommitRequest>(Some(OFFSET_COMMIT_MAX_VERSION))?;
                    if version < 6 {
                        for t in &mut topics {
                            for p in &mut t.partitions {
                                p.committed_leader_epoch = -1;
                            }
                        }
                    }
                    let mut request = OffsetCommitRequest::default()
                        .with_group_id(group_id(&self.group_id))
                        .with_generation_id_or_member_epoch(generation)
                        .with_member_id(str_bytes(&member_id))
                        .with_topics(topics);
                    if version >= 7 {
                        request = request
                            .with_group_instance_id(self.instance_id.as_deref().map(str_bytes));
                    }
                    if (2..=4).contains(&version) {
                        request = request.with_retention_time_ms(-1);
                    }
                    let response = conn
                        .call_at(&request, version, config.request_timeout())
                        .await?;
                    let mut codes = Vec::new();
                    for t in response.topics {
                        for p in t.partitions {
                            // Coordinator moves are retried by with_coordinator.
                            let _ = split_group_error(p.error_code, None)?;
                            codes.push((
                                TopicPartition::new(t.name.0.to_string(), p.partition_index),
                                p.error_code,
                            ));
                        }
                    }
                    Ok(codes)
                }
            })
            .await?;
        for (tp, code) in codes {
            let Some(code) = ErrorCode::try_from_code(code) else {
                continue;
            };
            // KIP-848 members learn of fencing from their heartbeat (STALE_MEMBER_EPOCH or
            // UNKNOWN_MEMBER_ID here only fail the commit, as in Java).
            let classic = self.protocol == GroupProtocol::Classic;
            match code {
                _ if !classic => {}
                ErrorCode::UnknownMemberId => self.shared.state().reset(true),
                ErrorCode::IllegalGeneration => self.shared.state().reset(false),
                ErrorCode::RebalanceInProgress => self.shared.state().rejoin = true,
                ErrorCode::FencedInstanceId => {
                    self.shared.state().fatal = Some(ClientError::kafka_described(code, None));
                }
                _ => {}
            }
            self.shared.wake.notify_one();
            return Err(ClientError::kafka(
                code,
                Some(format!(
                    "committing the offset of {tp} for group {} failed: {}",
                    self.group_id,
                    crate::error::error_code_description(code).unwrap_or("")
                )),
            ));
        }
        Ok(())
    }

    /// KIP-848 members with `enable.auto.commit`: the commit of the consumed offsets before
    /// partitions are revoked (Java's `CommitRequestManager.maybeAutoCommitSyncBeforeRevocation`,
    /// with the rebalance timeout as `deadline`). Unlike `commit_sync`, which fails at once on
    /// STALE_MEMBER_EPOCH (Java's `CommitFailedException`), this one is tried again until
    /// `deadline`: after STALE_MEMBER_EPOCH (the heartbeat moved the member epoch on while the
    /// reconciliation ran; each attempt carries the epoch known by then) and after retriable
    /// errors, but not after UNKNOWN_TOPIC_OR_PARTITION (a deleted topic would hold the
    /// revocation up until the deadline), and not once the member left the group or was
    /// fenced (it gives its partitions up as lost then, and the commit would fail anyway).
    pub(crate) async fn commit_before_revocation(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        deadline: Instant,
    ) -> Result<()> {
        let config = self.admin.config();
        let backoff = |attempt| {
            crate::cluster::backoff(config.retry_backoff(), config.retry_backoff_max(), attempt)
        };
        let in_group = || {
            let s = self.shared.state();
            s.generation >= 0 && !s.lost && s.fatal.is_none()
        };
        retry_before_revocation(deadline, backoff, in_group, || self.commit(offsets)).await
    }
}

/// The retry policy of [`Committer::commit_before_revocation`], apart from the coordinator
/// so that it can be tested on its own: `attempt` until it succeeds, fails for good, the
/// member is no longer `in_group`, or the next try would start after `deadline` (then a
/// timeout, as Java's `maybeWrapAsTimeoutException`).
async fn retry_before_revocation<F, Fut>(
    deadline: Instant,
    backoff: impl Fn(u32) -> Duration,
    in_group: impl Fn() -> bool,
    mut attempt: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        let error = match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let code = error.code();
        let again = (code == Some(ErrorCode::StaleMemberEpoch) || error.is_retriable())
            && code != Some(ErrorCode::UnknownTopicOrPartition)
            && in_group();
        if !again {
            return Err(error);
        }
        let wait = backoff(attempts);
        if Instant::now() + wait >= deadline {
            return Err(ClientError::timeout(
                format!("committing offsets before revoking partitions (last error: {error})"),
                started.elapsed(),
            ));
        }
        debug!(error = %error, attempts, "committing before revoking partitions failed, trying again");
        tokio::time::sleep(wait).await;
        attempts += 1;
    }
}

impl Membership {
    pub(crate) fn committer(&self) -> Committer {
        Committer {
            admin: self.admin.clone(),
            group_id: self.group_id.clone(),
            instance_id: self.instance_id.clone(),
            protocol: self.protocol,
            shared: self.shared.clone(),
        }
    }
}

/// Sends heartbeats while the member is stable, and leaves when `poll` has not been called
/// for `max.poll.interval.ms` (the member is presumed stuck, as in Java).
async fn heartbeat_loop(
    admin: Admin,
    group: String,
    instance_id: Option<String>,
    shared: Arc<Shared>,
) {
    let config = admin.config().clone();
    loop {
        tokio::time::sleep(config.heartbeat_interval()).await;
        let (generation, member_id, stable) = {
            let s = shared.state();
            (s.generation, s.member_id.clone(), s.stable)
        };
        if !stable {
            continue;
        }
        let idle = shared
            .last_poll
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if idle > config.max_poll_interval() {
            warn!(group = %group, idle_ms = idle.as_millis() as u64, "poll was not called within max.poll.interval.ms; leaving the group");
            let membership = Membership {
                admin: admin.clone(),
                group_id: group.clone(),
                instance_id: instance_id.clone(),
                protocol: GroupProtocol::Classic,
                shared: shared.clone(),
                heartbeat: tokio::spawn(async {}),
            };
            membership.leave("consumer poll timeout has expired").await;
            let mut s = shared.state();
            s.lost = true;
            s.rejoin = true;
            drop(s);
            shared.wake.notify_one();
            continue;
        }
        let result = admin
            .with_coordinator(&group, |conn, _| {
                let member_id = member_id.clone();
                let instance_id = instance_id.clone();
                let group = group.clone();
                let config = &config;
                async move {
                    let version = conn.version::<HeartbeatRequest>(None)?;
                    let mut request = HeartbeatRequest::default()
                        .with_group_id(group_id(&group))
                        .with_generation_id(generation)
                        .with_member_id(str_bytes(&member_id));
                    if version >= 3 {
                        request =
                            request.with_group_instance_id(instance_id.as_deref().map(str_bytes));
                    }
                    let response = conn
                        .call_at(&request, version, config.request_timeout())
                        .await?;
                    let _ = split_group_error(response.error_code, None)?;
                    Ok(response.error_code)
                }
            })
            .await;
        let code = match result {
            Ok(code) => ErrorCode::try_from_code(code),
            Err(e) => {
                debug!(group = %group, error = %e, "heartbeat failed");
                continue;
            }
        };
        let Some(code) = code else { continue };
        let mut s = shared.state();
        // A rejoin may have completed meanwhile; then this answer is about the old generation.
        if s.generation != generation {
            continue;
        }
        debug!(group = %group, error = ?code, "heartbeat answered");
        match code {
            ErrorCode::RebalanceInProgress => s.rejoin = true,
            ErrorCode::IllegalGeneration => {
                s.reset(false);
                s.lost = true;
            }
            ErrorCode::UnknownMemberId => {
                s.reset(true);
                s.lost = true;
            }
            ErrorCode::FencedInstanceId => {
                s.fatal = Some(ClientError::kafka_described(code, None));
                s.stable = false;
            }
            _ => continue,
        }
        drop(s);
        shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI32, Ordering};

    fn error(code: ErrorCode) -> ClientError {
        ClientError::kafka(code, None)
    }

    /// Runs the policy against a coordinator whose member epoch is `coordinator_epoch`, with
    /// a member that starts at `member_epoch`; `answer` gives the coordinator's answer to a
    /// commit at the right epoch. Returns the outcome and the epoch of every attempt.
    async fn run(
        member_epoch: i32,
        coordinator_epoch: i32,
        in_group: bool,
        deadline: Duration,
        answer: impl Fn() -> Result<()>,
    ) -> (Result<()>, Vec<i32>) {
        let member = AtomicI32::new(member_epoch);
        let sent = Mutex::new(Vec::new());
        let result = retry_before_revocation(
            Instant::now() + deadline,
            |_| Duration::from_millis(1),
            || in_group,
            || {
                let epoch = member.load(Ordering::SeqCst);
                sent.lock().unwrap().push(epoch);
                let outcome = if epoch == coordinator_epoch {
                    answer()
                } else {
                    // The heartbeat brings the new epoch while the commit is answered.
                    member.store(coordinator_epoch, Ordering::SeqCst);
                    Err(error(ErrorCode::StaleMemberEpoch))
                };
                async move { outcome }
            },
        )
        .await;
        (result, sent.into_inner().unwrap())
    }

    #[tokio::test]
    async fn a_stale_member_epoch_is_retried_with_the_new_one() {
        let (result, epochs) = run(5, 6, true, Duration::from_secs(30), || Ok(())).await;
        result.unwrap();
        assert_eq!(epochs, [5, 6]);
    }

    #[tokio::test]
    async fn a_member_out_of_the_group_does_not_retry_a_stale_epoch() {
        let (result, epochs) = run(5, 6, false, Duration::from_secs(30), || Ok(())).await;
        assert_eq!(
            result.unwrap_err().code(),
            Some(ErrorCode::StaleMemberEpoch)
        );
        assert_eq!(epochs, [5]);
    }

    #[tokio::test]
    async fn fatal_errors_and_deleted_topics_are_not_retried() {
        for code in [
            ErrorCode::UnknownMemberId,
            ErrorCode::FencedMemberEpoch,
            ErrorCode::GroupAuthorizationFailed,
            ErrorCode::UnknownTopicOrPartition,
        ] {
            let (result, epochs) =
                run(6, 6, true, Duration::from_secs(30), || Err(error(code))).await;
            assert_eq!(result.unwrap_err().code(), Some(code));
            assert_eq!(epochs, [6], "{code:?}");
        }
    }

    #[tokio::test]
    async fn retriable_errors_are_retried_until_the_deadline() {
        let (result, epochs) = run(6, 6, true, Duration::from_millis(200), || {
            Err(error(ErrorCode::RequestTimedOut))
        })
        .await;
        assert!(
            matches!(result, Err(ClientError::Timeout { .. })),
            "{result:?}"
        );
        assert!(epochs.len() > 1, "{epochs:?}");
    }
}
