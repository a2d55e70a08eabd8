//! Membership of a KIP-848 consumer group (`group.protocol=consumer`): one
//! ConsumerGroupHeartbeat carries the join, the subscription, the acknowledgement of
//! reconciled partitions and the leave, and the broker's assignor decides the assignment, as
//! Java's `ConsumerHeartbeatRequestManager` and `ConsumerMembershipManager` do it.
//!
//! ```text
//!  heartbeat task                                 poll (drive_group)
//!  ──────────────                                 ──────────────────
//!  epoch 0 + subscription ──> member id, epoch,
//!                             target assignment ──> reconcile: revoke owned-not-target
//!                                                   (auto-commit, on_partitions_revoked),
//!  owned partitions (the ack) <── send now ───────  add target-not-owned once their topic
//!  every heartbeat interval                         ids resolve (committed offsets,
//!                                                   on_partitions_assigned)
//!  FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID ──> lost ──> on_partitions_lost, rejoin at epoch 0
//!  no poll for max.poll.interval.ms ──> leave (epoch -1, static -2) ──> lost, rejoin at poll
//!  close / unsubscribe: epoch -1 (static members -2, keeping their partitions for a while)
//! ```
//!
//! The task never touches the consumer's partitions; it only records what the broker said in
//! [`Kip848State`] and wakes `poll`, which reconciles and tells the task to acknowledge.
//!
//! Commits carry the member epoch the last heartbeat brought. A `commit_sync` or
//! `commit_async` answered STALE_MEMBER_EPOCH or UNKNOWN_MEMBER_ID fails, as in Java (whose
//! `commitSync` throws `CommitFailedException` then), and the heartbeat alone decides about
//! the membership; only the auto-commit before a revocation is sent again with the newer
//! epoch (`Committer::commit_before_revocation`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use strom_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use strom_protocol::{ErrorCode, StrBytes};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::group::Shared;
use crate::admin::Admin;
use crate::admin::coordinator::split_group_error;
use crate::error::{ClientError, Result};

/// `memberEpoch` of a member leaving for good.
const LEAVE_EPOCH: i32 = -1;
/// `memberEpoch` of a static member leaving for now (the broker keeps its partitions until
/// its session times out).
const LEAVE_STATIC_EPOCH: i32 = -2;

/// Partitions by topic id, as ConsumerGroupHeartbeat names them.
pub(crate) type IdAssignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What the member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeartbeatSubscription {
    Topics(Vec<String>),
    /// A regular expression the broker resolves (re2 syntax, ConsumerGroupHeartbeat v1).
    Regex(String),
}

/// The KIP-848 side of [`Shared`]: written by the heartbeat task and by `poll`.
#[derive(Debug, Default)]
pub(crate) struct Kip848State {
    pub(crate) subscription: Option<HeartbeatSubscription>,
    /// Bumped on every change of `subscription`; the heartbeat sends the subscription until
    /// an answer to a request carrying the newest one arrives.
    subscription_version: u64,
    subscription_sent: u64,
    /// What the consumer owns now: sent with every heartbeat, which is how the broker learns
    /// that revoked partitions were given up.
    pub(crate) owned: IdAssignment,
    /// The broker's latest assignment for this member; `None` until the first one (and after
    /// the member lost its partitions).
    pub(crate) target: Option<IdAssignment>,
}

impl Kip848State {
    pub(crate) fn new(subscription: HeartbeatSubscription) -> Self {
        Self {
            subscription: Some(subscription),
            subscription_version: 1,
            ..Self::default()
        }
    }

    pub(crate) fn set_subscription(&mut self, subscription: HeartbeatSubscription) {
        if self.subscription.as_ref() != Some(&subscription) {
            self.subscription = Some(subscription);
            self.subscription_version += 1;
        }
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Who the heartbeats speak for.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeater {
    pub(crate) admin: Admin,
    pub(crate) group_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) shared: Arc<Shared>,
}

/// One request as built from the shared state.
struct Outgoing {
    request: ConsumerGroupHeartbeatRequest,
    subscription_version: Option<u64>,
}

impl Heartbeater {
    fn build(&self, version: i16) -> Result<Outgoing> {
        let config = self.admin.config();
        let mut state = self.shared.state();
        let k = self.shared.kip848();
        if state.member_id.is_empty() && version >= 1 {
            // KIP-1082: the client names itself, once per consumer.
            state.member_id = Uuid::new_v4().to_string();
        }
        let epoch = state.generation.max(0);
        let joining = epoch == 0;
        let mut request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group_id)))
            .with_member_id(str_bytes(&state.member_id))
            .with_member_epoch(epoch)
            .with_instance_id(self.instance_id.as_deref().map(str_bytes));
        let mut subscription_version = None;
        if joining {
            request.rebalance_timeout_ms = ms(config.max_poll_interval());
            let rack = config.client_rack();
            if !rack.is_empty() {
                request.rack_id = Some(str_bytes(rack));
            }
            request.server_assignor = config.group_remote_assignor().map(str_bytes);
        }
        if joining || k.subscription_sent != k.subscription_version {
            match &k.subscription {
                Some(HeartbeatSubscription::Topics(topics)) => {
                    request.subscribed_topic_names =
                        Some(topics.iter().map(|t| TopicName(str_bytes(t))).collect());
                    if version >= 1 && !joining {
                        // Drops a regular expression subscribed before.
                        request.subscribed_topic_regex = Some(StrBytes::default());
                    }
                }
                Some(HeartbeatSubscription::Regex(re)) => {
                    if version < 1 {
                        return Err(ClientError::Protocol(
                            "pattern subscriptions with group.protocol=consumer need \
                             ConsumerGroupHeartbeat v1, which the coordinator does not support"
                                .into(),
                        ));
                    }
                    request.subscribed_topic_regex = Some(str_bytes(re));
                    if !joining {
                        request.subscribed_topic_names = Some(Vec::new());
                    }
                }
                None => {}
            }
            subscription_version = Some(k.subscription_version);
        }
        // Joining, the member owns nothing (it gave everything up before rejoining).
        let owned = if joining {
            IdAssignment::new()
        } else {
            k.owned.clone()
        };
        request.topic_partitions = Some(
            owned
                .iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_partitions(ps.iter().copied().collect())
                })
                .collect(),
        );
        Ok(Outgoing {
            request,
            subscription_version,
        })
    }

    async fn send(
        &self,
        build: impl Fn(i16) -> Result<Outgoing>,
    ) -> Result<(ConsumerGroupHeartbeatResponse, Option<u64>)> {
        let config = self.admin.config().clone();
        self.admin
            .with_coordinator(&self.group_id, |conn, _| {
                let config = &config;
                let build = &build;
                async move {
                    let version = conn.version::<ConsumerGroupHeartbeatRequest>(None)?;
                    let out = build(version)?;
                    let response = conn
                        .call_at(&out.request, version, config.request_timeout())
                        .await?;
                    let _ =
                        split_group_error(response.error_code, response.error_message.as_deref())?;
                    Ok((response, out.subscription_version))
                }
            })
            .await
    }

    /// Leaves the group: epoch -1, or -2 for a static member (which keeps its place until its
    /// session times out, so that a restart does not move its partitions).
    pub(crate) async fn leave(&self, reason: &str) {
        let (member_id, epoch) = {
            let mut state = self.shared.state();
            let out = (state.member_id.clone(), state.generation);
            state.generation = -1;
            state.stable = false;
            out
        };
        self.shared.kip848().target = None;
        if member_id.is_empty() || epoch < 0 {
            return;
        }
        let leave_epoch = if self.instance_id.is_some() {
            LEAVE_STATIC_EPOCH
        } else {
            LEAVE_EPOCH
        };
        let result = self
            .send(|_| {
                Ok(Outgoing {
                    request: ConsumerGroupHeartbeatRequest::default()
                        .with_group_id(GroupId(str_bytes(&self.group_id)))
                        .with_member_id(str_bytes(&member_id))
                        .with_member_epoch(leave_epoch)
                        .with_instance_id(self.instance_id.as_deref().map(str_bytes)),
                    subscription_version: None,
                })
            })
            .await;
        match result {
            Ok((r, _)) if r.error_code == 0 => {
                info!(group = %self.group_id, member = %member_id, reason, "left the group");
            }
            Ok((r, _)) => debug!(group = %self.group_id, code = r.error_code, "leave refused"),
            Err(e) => debug!(group = %self.group_id, error = %e, "leaving the group failed"),
        }
    }

    /// Records an answer. Returns the heartbeat interval to wait next.
    fn on_response(
        &self,
        response: ConsumerGroupHeartbeatResponse,
        subscription_version: Option<u64>,
        fallback: Duration,
    ) -> Duration {
        let interval = u64::try_from(response.heartbeat_interval_ms)
            .ok()
            .filter(|&i| i > 0)
            .map_or(fallback, Duration::from_millis);
        let Some(code) = ErrorCode::try_from_code(response.error_code) else {
            let mut state = self.shared.state();
            if let Some(id) = response.member_id.as_ref().filter(|id| !id.is_empty()) {
                state.member_id = id.to_string();
            }
            let was = state.generation;
            state.generation = response.member_epoch;
            state.stable = true;
            let mut k = self.shared.kip848();
            if let Some(v) = subscription_version {
                k.subscription_sent = v;
            }
            if let Some(assignment) = response.assignment {
                let target: IdAssignment = assignment
                    .topic_partitions
                    .into_iter()
                    .map(|t| (t.topic_id, t.partitions.into_iter().collect()))
                    .filter(|(_, ps): &(Uuid, BTreeSet<i32>)| !ps.is_empty())
                    .collect();
                debug!(group = %self.group_id, epoch = response.member_epoch, ?target, "new target assignment");
                k.target = Some(target);
                drop(k);
                drop(state);
                self.shared.wake.notify_one();
            } else if was != response.member_epoch {
                debug!(group = %self.group_id, epoch = response.member_epoch, "member epoch moved");
            }
            return interval;
        };
        let message = response.error_message.map(|m| m.to_string());
        match code {
            ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId => {
                warn!(group = %self.group_id, error = ?code, message = message.as_deref().unwrap_or(""), "the member was fenced; its partitions are lost, rejoining");
                let mut state = self.shared.state();
                state.generation = -1;
                state.stable = false;
                state.lost = true;
                self.shared.kip848().target = None;
            }
            code if code.is_retriable() => {
                debug!(group = %self.group_id, error = ?code, "heartbeat failed, will retry");
                return self.admin.config().retry_backoff();
            }
            code => {
                let mut state = self.shared.state();
                state.fatal = Some(ClientError::kafka_described(code, message));
                state.stable = false;
            }
        }
        self.shared.wake.notify_one();
        interval
    }
}

/// Heartbeats while the member is in the group (and not waiting for `poll` to give up lost
/// partitions); leaves when `poll` has not been called for `max.poll.interval.ms`.
pub(crate) async fn heartbeat_loop(hb: Heartbeater) {
    let config = hb.admin.config().clone();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = hb.shared.send_now.notified() => {}
        }
        let (lost, fatal, stable) = {
            let s = hb.shared.state();
            (s.lost, s.fatal.is_some(), s.stable)
        };
        if lost || fatal {
            // `poll` reports the error, or releases the partitions and then wakes us.
            wait = Duration::from_secs(3600);
            continue;
        }
        let idle = hb
            .shared
            .last_poll
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if stable && idle > config.max_poll_interval() {
            warn!(group = %hb.group_id, idle_ms = idle.as_millis() as u64, "poll was not called within max.poll.interval.ms; leaving the group");
            hb.leave("consumer poll timeout has expired").await;
            hb.shared.state().lost = true;
            hb.shared.wake.notify_one();
            continue;
        }
        let sent_at = Instant::now();
        match hb.send(|v| hb.build(v)).await {
            Ok((response, version)) => {
                let interval = hb.on_response(response, version, config.retry_backoff());
                wait = interval.saturating_sub(sent_at.elapsed());
            }
            Err(e) if e.is_retriable() => {
                debug!(group = %hb.group_id, error = %e, "heartbeat failed");
                wait = config.retry_backoff();
            }
            Err(e) => {
                warn!(group = %hb.group_id, error = %e, "heartbeat failed");
                hb.shared.state().fatal = Some(e);
                hb.shared.wake.notify_one();
                wait = Duration::from_secs(3600);
            }
        }
    }
}
