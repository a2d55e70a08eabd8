//! The group-managed side of the consumer: `subscribe`, the rebalance `poll` drives
//! (Java's `ConsumerCoordinator.onJoinPrepare` / `onLeaderElected` / `onJoinComplete`),
//! commits and committed offsets.
//!
//! A rebalance, as `poll` runs it:
//! ```text
//!  prepare:  lost generation ──> on_partitions_lost(all)
//!            eager            ──> auto-commit, on_partitions_revoked(all)
//!            cooperative      ──> auto-commit, revoke only partitions no longer subscribed
//!  join + sync (leader: voted assignor over all members' subscriptions)
//!  complete: revoke owned-but-not-assigned (cooperative: then rejoin at once, so the
//!            withheld partitions reach their new owner), take added partitions at their
//!            committed offsets (else auto.offset.reset), on_partitions_assigned(added)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use regex::Regex;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::assignor::{ConsumerPartitionAssignor, RebalanceProtocol, builtin_assignor};
use super::group::{Committer, Joined, Membership};
use super::kip848::HeartbeatSubscription;
use super::listener::{ConsumerRebalanceListener, NoopListener};
use super::{Consumer, Offset, PartitionState};
use crate::admin::{Admin, OffsetAndMetadata};
use crate::cluster::{Metadata, Topics};
use crate::config::{AutoOffsetReset, GroupProtocol};
use crate::error::{ClientError, Result};
use crate::group_protocol::{ConsumerAssignment, ConsumerSubscription};
use crate::producer::ConsumerGroupMetadata;
use crate::record::TopicPartition;
use strom_protocol::ErrorCode;
use uuid::Uuid;

/// The consumer protocol version we write (Kafka 4's newest: owned partitions, generation,
/// rack).
const SUBSCRIPTION_VERSION: i16 = 3;
const ASSIGNMENT_VERSION: i16 = 3;

/// Called once an async commit finished, with the offsets and the outcome.
pub type CommitCallback =
    Box<dyn FnOnce(&BTreeMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send>;

/// What the consumer subscribed to.
#[derive(Debug, Clone)]
pub(super) enum Subscription {
    Topics(BTreeSet<String>),
    /// Matched against whole topic names, as Java's `Pattern.matcher().matches()`; the
    /// pattern as given is what a KIP-848 member sends the broker.
    Pattern(Regex, String),
}

/// The state of a subscribed consumer.
pub(super) struct GroupState {
    pub(super) membership: Membership,
    subscription: Subscription,
    /// The subscribed topics (the pattern's matches for a pattern subscription).
    pub(super) topics: BTreeSet<String>,
    /// In a mutex only so that the consumer stays `Sync` (its futures are `Send`); it is
    /// reached through `&mut self`, never locked concurrently.
    listener: std::sync::Mutex<Box<dyn ConsumerRebalanceListener>>,
    assignors: Vec<Arc<dyn ConsumerPartitionAssignor>>,
    /// The highest protocol every configured assignor supports.
    protocol: RebalanceProtocol,
    /// Partition counts of the topics whose change calls for a rebalance, as of the last
    /// assignment: our own topics, and every member's when we lead.
    watched: BTreeMap<String, i32>,
    /// As leader: the topics of all members, so that their metadata is refreshed too.
    pub(super) group_topics: BTreeSet<String>,
    next_auto_commit: Instant,
    /// KIP-848: names of the topic ids assignments named so far.
    topic_names: BTreeMap<Uuid, String>,
    /// KIP-848: no metadata refresh for unknown assigned topic ids before this.
    next_resolve: Instant,
}

impl std::fmt::Debug for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupState")
            .field("group", &self.membership.group_id)
            .field("subscription", &self.subscription)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl GroupState {
    fn listener(&mut self) -> &mut dyn ConsumerRebalanceListener {
        self.listener
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
    }
}

/// The highest rebalance protocol all of `assignors` support (Java picks it the same way:
/// one eager-only assignor makes the consumer eager).
fn common_protocol(assignors: &[Arc<dyn ConsumerPartitionAssignor>]) -> RebalanceProtocol {
    let mut common: Option<BTreeSet<RebalanceProtocol>> = None;
    for a in assignors {
        let supported: BTreeSet<RebalanceProtocol> = a.supported_protocols().into_iter().collect();
        common = Some(match common {
            None => supported,
            Some(c) => c.intersection(&supported).copied().collect(),
        });
    }
    common
        .and_then(|c| c.last().copied())
        .unwrap_or(RebalanceProtocol::Eager)
}

fn partition_counts(metadata: &Metadata, topics: &BTreeSet<String>) -> BTreeMap<String, i32> {
    topics
        .iter()
        .map(|t| {
            let n = metadata.topic(t).map_or(0, |d| d.partitions.len() as i32);
            (t.clone(), n)
        })
        .collect()
}

impl Consumer {
    /// Replaces the assignors the group may vote for (Java's `partition.assignment.strategy`
    /// with custom classes), in preference order. Takes effect at the next `subscribe`.
    pub fn set_assignors(&mut self, assignors: Vec<Arc<dyn ConsumerPartitionAssignor>>) {
        self.custom_assignors = Some(assignors);
    }

    /// Joins `group.id` and consumes the partitions the group assigns from `topics`.
    pub fn subscribe(&mut self, topics: impl IntoIterator<Item = impl Into<String>>) -> Result<()> {
        self.subscribe_with_listener(topics, Box::new(NoopListener))
    }

    /// [`subscribe`](Self::subscribe) with a rebalance listener.
    pub fn subscribe_with_listener(
        &mut self,
        topics: impl IntoIterator<Item = impl Into<String>>,
        listener: Box<dyn ConsumerRebalanceListener>,
    ) -> Result<()> {
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        if topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ClientError::InvalidArgument(
                "topic names to subscribe to must not be empty".into(),
            ));
        }
        self.start_subscription(Subscription::Topics(topics), listener)
    }

    /// Joins `group.id` and consumes every topic whose whole name matches `pattern` (topics
    /// created later join at the next metadata refresh, every `metadata.max.age.ms`).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.subscribe_pattern_with_listener(pattern, Box::new(NoopListener))
    }

    /// [`subscribe_pattern`](Self::subscribe_pattern) with a rebalance listener.
    pub fn subscribe_pattern_with_listener(
        &mut self,
        pattern: &str,
        listener: Box<dyn ConsumerRebalanceListener>,
    ) -> Result<()> {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            ClientError::InvalidArgument(format!("invalid topic pattern `{pattern}`: {e}"))
        })?;
        self.start_subscription(Subscription::Pattern(regex, pattern.to_string()), listener)
    }

    fn start_subscription(
        &mut self,
        subscription: Subscription,
        listener: Box<dyn ConsumerRebalanceListener>,
    ) -> Result<()> {
        let config = self.cluster.config();
        let Some(group) = config.group_id().map(str::to_string) else {
            return Err(ClientError::config(
                "group.id",
                "is required to subscribe (use assign without a group)",
            ));
        };
        let assignors = match &self.custom_assignors {
            Some(list) if !list.is_empty() => list.clone(),
            _ => config
                .partition_assignment_strategy()
                .iter()
                .map(|name| {
                    builtin_assignor(name).ok_or_else(|| {
                        ClientError::config(
                            "partition.assignment.strategy",
                            format!("unknown assignor `{name}`"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let topics = match &subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(..) => BTreeSet::new(),
        };
        let kip848 =
            (config.group_protocol() == GroupProtocol::Consumer).then(|| match &subscription {
                Subscription::Topics(t) => {
                    HeartbeatSubscription::Topics(t.iter().cloned().collect())
                }
                Subscription::Pattern(_, p) => HeartbeatSubscription::Regex(p.clone()),
            });
        // A new subscription on a member keeps the membership and rejoins with it.
        let (membership, topic_names) = match self.group.take() {
            Some(old) if old.membership.group_id == group => {
                if let Some(sub) = kip848 {
                    old.membership.set_kip848_subscription(sub);
                }
                (old.membership, old.topic_names)
            }
            _ => {
                self.partitions.clear();
                self.order.clear();
                let membership = Membership::new(
                    Admin::from_cluster(self.cluster.clone()),
                    group,
                    config.group_instance_id().map(str::to_string),
                    kip848,
                );
                (membership, BTreeMap::new())
            }
        };
        membership.shared.state().rejoin = true;
        let protocol = common_protocol(&assignors);
        self.group = Some(GroupState {
            membership,
            subscription,
            topics,
            listener: std::sync::Mutex::new(listener),
            assignors,
            protocol,
            watched: BTreeMap::new(),
            group_topics: BTreeSet::new(),
            next_auto_commit: Instant::now() + self.cluster.config().auto_commit_interval(),
            topic_names,
            next_resolve: Instant::now(),
        });
        self.metadata_wanted = true;
        Ok(())
    }

    /// The subscribed topics (a pattern's current matches); empty without a subscription.
    pub fn subscription(&self) -> BTreeSet<String> {
        self.group
            .as_ref()
            .map(|g| g.topics.clone())
            .unwrap_or_default()
    }

    /// The member's group, generation (member epoch with KIP-848), member id and instance
    /// id, once it joined (`None` before, and for consumers without a subscription): what
    /// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
    /// takes so that the coordinator can fence a zombie member (Java's `groupMetadata()`).
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let g = self.group.as_ref()?;
        let s = g.membership.shared.state();
        let config = self.cluster.config();
        let metadata = ConsumerGroupMetadata::new(config.group_id()?)
            .with_member(s.generation, s.member_id.clone());
        let metadata = match config.group_instance_id() {
            Some(id) => metadata.with_group_instance_id(id),
            None => metadata,
        };
        (s.generation >= 0).then_some(metadata)
    }

    /// Leaves the group (committing first, with `enable.auto.commit`) and drops the
    /// assignment.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        self.leave_group("the consumer unsubscribed").await;
        self.group = None;
        self.partitions.clear();
        self.order.clear();
        Ok(())
    }

    /// Commits (with `enable.auto.commit`), revokes the assignment through the listener and
    /// leaves the group (dynamic members), then drops the consumer. Dropping a consumer
    /// without `close` leaves its group only when its session times out.
    pub async fn close(mut self) -> Result<()> {
        self.leave_group("the consumer is being closed").await;
        Ok(())
    }

    async fn leave_group(&mut self, reason: &str) {
        if self.group.is_none() {
            return;
        }
        let owned = self.assignment();
        let (generation, lost) = {
            let g = self.group.as_ref().expect("checked");
            let s = g.membership.shared.state();
            (s.generation, s.lost)
        };
        if generation >= 0 && !lost {
            if self.cluster.config().enable_auto_commit()
                && let Err(e) = self.commit_sync().await
            {
                warn!(error = %e, "committing offsets on leaving the group failed");
            }
            if !owned.is_empty() {
                let g = self.group.as_mut().expect("checked");
                g.listener().on_partitions_revoked(&owned);
            }
        } else if !owned.is_empty() {
            let g = self.group.as_mut().expect("checked");
            g.listener().on_partitions_lost(&owned);
        }
        let g = self.group.as_ref().expect("checked");
        g.membership.leave(reason).await;
    }

    /// The positions of all assigned partitions, as offsets to commit.
    fn consumed_offsets(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.partitions
            .iter()
            .filter_map(|(tp, s)| Some((tp.clone(), OffsetAndMetadata::new(s.position?))))
            .collect()
    }

    fn committer(&self) -> Result<Committer> {
        match &self.group {
            Some(g) => Ok(g.membership.committer()),
            None => Err(ClientError::InvalidArgument(
                "committing offsets needs a group subscription (subscribe with group.id)".into(),
            )),
        }
    }

    /// Commits the positions of all assigned partitions (what `poll` returned so far) and
    /// waits for the answer.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.consumed_offsets();
        self.commit_sync_offsets(offsets).await
    }

    /// Commits `offsets` (each the next offset to read) and waits for the answer.
    pub async fn commit_sync_offsets(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let committer = self.committer()?;
        committer.commit(&offsets).await?;
        self.interceptors.on_commit(&offsets);
        Ok(())
    }

    /// Commits the positions of all assigned partitions in the background; `callback` (if
    /// any) gets the outcome. Commits go out in call order on the coordinator connection.
    pub fn commit_async(&mut self, callback: Option<CommitCallback>) -> Result<()> {
        let offsets = self.consumed_offsets();
        self.commit_async_offsets(offsets, callback)
    }

    /// [`commit_async`](Self::commit_async) of explicit offsets.
    pub fn commit_async_offsets(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        callback: Option<CommitCallback>,
    ) -> Result<()> {
        let committer = self.committer()?;
        let interceptors = self.interceptors.clone();
        tokio::spawn(async move {
            let result = committer.commit(&offsets).await;
            if result.is_ok() {
                interceptors.on_commit(&offsets);
            } else if let Err(e) = &result {
                debug!(error = %e, "async commit failed");
            }
            if let Some(cb) = callback {
                cb(&offsets, result);
            }
        });
        Ok(())
    }

    /// The group's committed offsets of `partitions` (`None` where nothing is committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        let group = self
            .group
            .as_ref()
            .map(|g| g.membership.group_id.clone())
            .or_else(|| self.cluster.config().group_id().map(str::to_string))
            .ok_or_else(|| {
                ClientError::config("group.id", "is required to read committed offsets")
            })?;
        let admin = match &self.group {
            Some(g) => g.membership.admin().clone(),
            None => Admin::from_cluster(self.cluster.clone()),
        };
        let mut found = admin
            .list_consumer_group_offsets(&group, Some(partitions))
            .await?;
        for tp in partitions {
            found.entry(tp.clone()).or_insert(None);
        }
        Ok(found)
    }

    /// Called at the start of every `poll` round: notes the poll for
    /// `max.poll.interval.ms`, auto-commits when due, and rebalances when needed.
    pub(super) async fn drive_group(&mut self) -> Result<()> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        *g.membership
            .shared
            .last_poll
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let (rejoin, fatal, stable) = {
            let s = g.membership.shared.state();
            (s.rejoin || s.lost, s.fatal.clone(), s.stable)
        };
        if let Some(e) = fatal {
            return Err(e);
        }
        let kip848 = g.membership.protocol == GroupProtocol::Consumer;
        let config = self.cluster.config();
        if stable && config.enable_auto_commit() && Instant::now() >= g.next_auto_commit {
            g.next_auto_commit = Instant::now() + config.auto_commit_interval();
            let offsets = self.consumed_offsets();
            if !offsets.is_empty() {
                self.commit_async_offsets(offsets, None)?;
            }
        }
        if kip848 {
            self.reconcile_kip848().await?;
        } else if rejoin {
            self.rebalance().await?;
        }
        Ok(())
    }

    /// Follows metadata changes that call for a rebalance: new topics matching the pattern,
    /// partition counts of watched topics.
    pub(super) fn check_group_metadata(&mut self) {
        let exclude_internal = self.cluster.config().exclude_internal_topics();
        let metadata = self.cluster.snapshot();
        let Some(g) = self.group.as_mut() else {
            return;
        };
        let mut changed = false;
        if let Subscription::Pattern(regex, _) = &g.subscription {
            let matched: BTreeSet<String> = metadata
                .topics
                .values()
                .filter(|t| !(exclude_internal && t.internal) && regex.is_match(&t.name))
                .map(|t| t.name.clone())
                .collect();
            if matched != g.topics {
                info!(topics = ?matched, "the subscription pattern matches other topics now");
                g.topics = matched;
                changed = true;
            }
        }
        let stable = g.membership.shared.state().stable;
        if stable && !changed {
            let watch: BTreeSet<String> = g.topics.union(&g.group_topics).cloned().collect();
            let now = partition_counts(&metadata, &watch);
            if now != g.watched {
                debug!(before = ?g.watched, now = ?now, "subscribed topics changed");
                changed = true;
            }
        }
        if changed {
            g.membership.shared.state().rejoin = true;
        }
    }

    /// The topics whose metadata a subscribed consumer keeps fresh; `None` for "all
    /// topics" (pattern subscriptions).
    pub(super) fn group_metadata_topics(&self) -> Option<Option<Vec<String>>> {
        let g = self.group.as_ref()?;
        Some(match g.subscription {
            Subscription::Pattern(..) => None,
            Subscription::Topics(_) => Some(g.topics.union(&g.group_topics).cloned().collect()),
        })
    }

    async fn rebalance(&mut self) -> Result<()> {
        // Prepare: give up what must be given up before rejoining.
        if matches!(
            self.group.as_ref().map(|g| &g.subscription),
            Some(Subscription::Pattern(..))
        ) {
            let metadata = self.cluster.refresh(Topics::All).await?;
            drop(metadata);
            self.check_group_metadata();
        }
        let owned = self.assignment();
        let (lost, generation) = {
            let g = self.group.as_ref().expect("subscribed");
            let s = g.membership.shared.state();
            (s.lost, s.generation)
        };
        if lost {
            if !owned.is_empty() {
                self.group
                    .as_mut()
                    .expect("subscribed")
                    .listener()
                    .on_partitions_lost(&owned);
            }
            self.remove_partitions(&owned);
            self.group
                .as_ref()
                .expect("subscribed")
                .membership
                .shared
                .state()
                .lost = false;
        } else {
            if generation >= 0
                && self.cluster.config().enable_auto_commit()
                && let Err(e) = self.commit_sync().await
            {
                warn!(error = %e, "auto-commit before the rebalance failed");
            }
            let g = self.group.as_mut().expect("subscribed");
            let revoke: Vec<TopicPartition> = match g.protocol {
                RebalanceProtocol::Eager => owned,
                RebalanceProtocol::Cooperative => owned
                    .into_iter()
                    .filter(|tp| !g.topics.contains(&tp.topic))
                    .collect(),
            };
            if !revoke.is_empty() {
                g.listener().on_partitions_revoked(&revoke);
                self.remove_partitions(&revoke);
            }
        }

        // Join and sync until an assignment arrives.
        let mut attempt = 0u32;
        let (joined, assignment) = loop {
            let protocols = self.join_protocols()?;
            let g = self.group.as_ref().expect("subscribed");
            let joined = g.membership.join(&protocols).await?;
            let assignments = if joined.is_leader() && !joined.skip_assignment {
                self.perform_assignment(&joined).await?
            } else {
                Vec::new()
            };
            let g = self.group.as_ref().expect("subscribed");
            match g.membership.sync(&joined, assignments).await {
                Ok(bytes) => break (joined, ConsumerAssignment::decode(&bytes)?),
                Err(e)
                    if matches!(
                        e.code(),
                        Some(
                            ErrorCode::RebalanceInProgress
                                | ErrorCode::UnknownMemberId
                                | ErrorCode::IllegalGeneration
                        )
                    ) || e.is_retriable() =>
                {
                    debug!(error = %e, "SyncGroup failed, rejoining");
                    tokio::time::sleep(self.cluster.backoff(attempt.min(5))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };

        // Complete: apply the assignment.
        let g = self.group.as_mut().expect("subscribed");
        if let Some(a) = g.assignors.iter().find(|a| a.name() == joined.protocol) {
            a.on_assignment(&assignment, joined.generation);
        }
        let assigned: BTreeSet<TopicPartition> = assignment.partitions.iter().cloned().collect();
        let owned: BTreeSet<TopicPartition> = self.order.iter().cloned().collect();
        let revoked: Vec<TopicPartition> = owned.difference(&assigned).cloned().collect();
        let added: Vec<TopicPartition> = assigned.difference(&owned).cloned().collect();
        info!(
            group = %g.membership.group_id,
            generation = joined.generation,
            assigned = ?assignment.partitions,
            "joined the group"
        );
        if !revoked.is_empty() {
            g.listener().on_partitions_revoked(&revoked);
            self.remove_partitions(&revoked);
            // Cooperative: the revoked partitions go to their new owner in the next round.
            let g = self.group.as_ref().expect("subscribed");
            g.membership.shared.state().rejoin = true;
        }
        self.add_partitions_at_committed(&added).await?;
        let g = self.group.as_mut().expect("subscribed");
        if !joined.is_leader() {
            g.group_topics.clear();
        }
        let watch: BTreeSet<String> = g.topics.union(&g.group_topics).cloned().collect();
        // Metadata that knows the watched topics: a member that joined without running the
        // assignment (a follower, or a static member taking its place back) may not have
        // asked for them yet, and "0 partitions" would look like a change and rebalance.
        let names: Vec<String> = watch.iter().cloned().collect();
        let metadata = self.cluster.metadata_for(&names).await?;
        let g = self.group.as_mut().expect("subscribed");
        g.watched = partition_counts(&metadata, &watch);
        g.listener().on_partitions_assigned(&added);
        Ok(())
    }

    /// KIP-848: gives up lost partitions (then rejoins), and moves the assignment towards the
    /// broker's target: revoke what is no longer assigned (committing first with
    /// `enable.auto.commit`), add what is newly assigned once its topic id has a name, then
    /// heartbeat at once so the broker learns what the member owns (Java's
    /// `ConsumerMembershipManager` reconciliation).
    async fn reconcile_kip848(&mut self) -> Result<()> {
        let owned = self.assignment();
        let g = self.group.as_mut().expect("subscribed");
        let shared = g.membership.shared.clone();
        if shared.state().lost {
            if !owned.is_empty() {
                g.listener().on_partitions_lost(&owned);
            }
            self.remove_partitions(&owned);
            {
                let mut state = shared.state();
                state.lost = false;
                state.generation = -1;
                let mut k = shared.kip848();
                k.owned.clear();
                k.target = None;
            }
            shared.send_now.notify_one();
            return Ok(());
        }
        let (target, owned_ids) = {
            let k = shared.kip848();
            match &k.target {
                Some(t) => (t.clone(), k.owned.clone()),
                None => return Ok(()),
            }
        };
        if target == owned_ids {
            return Ok(());
        }
        // Names for the topic ids, from metadata (refreshed when some are unknown).
        let unknown =
            |names: &BTreeMap<Uuid, String>| target.keys().any(|id| !names.contains_key(id));
        let learn = |names: &mut BTreeMap<Uuid, String>, metadata: &Metadata| {
            for t in metadata.topics.values() {
                if let Some(id) = t.topic_id {
                    names.insert(id, t.name.clone());
                }
            }
        };
        learn(&mut g.topic_names, &self.cluster.snapshot());
        if unknown(&g.topic_names) && Instant::now() >= g.next_resolve {
            g.next_resolve = Instant::now() + self.cluster.config().retry_backoff();
            let topics: Vec<String> = match &g.subscription {
                Subscription::Topics(t) => t.iter().cloned().collect(),
                Subscription::Pattern(..) => Vec::new(),
            };
            let which = if topics.is_empty() {
                Topics::All
            } else {
                Topics::Named(&topics)
            };
            match self.cluster.refresh(which).await {
                Ok(metadata) => {
                    let g = self.group.as_mut().expect("subscribed");
                    learn(&mut g.topic_names, &metadata);
                }
                Err(e) => debug!(error = %e, "resolving assigned topic ids failed"),
            }
        }
        let g = self.group.as_mut().expect("subscribed");
        let name_of = |id: &Uuid| g.topic_names.get(id).cloned();
        let mut revoked = Vec::new();
        for (id, ps) in &owned_ids {
            let keep = target.get(id);
            for p in ps {
                if keep.is_none_or(|k| !k.contains(p))
                    && let Some(name) = name_of(id)
                {
                    revoked.push((*id, TopicPartition::new(name, *p)));
                }
            }
        }
        let mut added = Vec::new();
        for (id, ps) in &target {
            let Some(name) = name_of(id) else { continue };
            let have = owned_ids.get(id);
            for p in ps {
                if have.is_none_or(|h| !h.contains(p)) {
                    added.push((*id, TopicPartition::new(name.clone(), *p)));
                }
            }
        }
        if revoked.is_empty() && added.is_empty() {
            return Ok(());
        }
        let epoch = shared.state().generation;
        info!(
            group = %g.membership.group_id,
            epoch,
            revoked = ?revoked.iter().map(|(_, tp)| tp).collect::<Vec<_>>(),
            added = ?added.iter().map(|(_, tp)| tp).collect::<Vec<_>>(),
            "reconciling the assignment"
        );
        if !revoked.is_empty() {
            if self.cluster.config().enable_auto_commit() {
                self.auto_commit_before_revocation().await;
            }
            let tps: Vec<TopicPartition> = revoked.iter().map(|(_, tp)| tp.clone()).collect();
            let g = self.group.as_mut().expect("subscribed");
            g.listener().on_partitions_revoked(&tps);
            self.remove_partitions(&tps);
            let mut k = shared.kip848();
            for (id, tp) in &revoked {
                if let Some(ps) = k.owned.get_mut(id) {
                    ps.remove(&tp.partition);
                    if ps.is_empty() {
                        k.owned.remove(id);
                    }
                }
            }
        }
        let tps: Vec<TopicPartition> = added.iter().map(|(_, tp)| tp.clone()).collect();
        self.add_partitions_at_committed(&tps).await?;
        {
            let mut k = shared.kip848();
            for (id, tp) in &added {
                k.owned.entry(*id).or_default().insert(tp.partition);
            }
        }
        shared.send_now.notify_one();
        let g = self.group.as_mut().expect("subscribed");
        g.listener().on_partitions_assigned(&tps);
        Ok(())
    }

    /// KIP-848: commits all consumed positions before revoking partitions, retrying a stale
    /// member epoch until the rebalance timeout (`max.poll.interval.ms`, the time the
    /// coordinator gives the member to revoke), as Java's `signalReconciliationStarted`. A
    /// failure does not stop the revocation.
    async fn auto_commit_before_revocation(&mut self) {
        let offsets = self.consumed_offsets();
        let Some(g) = self.group.as_ref() else {
            return;
        };
        if offsets.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.cluster.config().max_poll_interval();
        match g
            .membership
            .committer()
            .commit_before_revocation(&offsets, deadline)
            .await
        {
            Ok(()) => self.interceptors.on_commit(&offsets),
            Err(e) => {
                warn!(error = %e, "auto-commit before revoking partitions failed; revoking them anyway")
            }
        }
    }

    /// JoinGroup's protocols: one per assignor, each with our subscription and the
    /// assignor's user data.
    fn join_protocols(&self) -> Result<Vec<(String, bytes::Bytes)>> {
        let g = self.group.as_ref().expect("subscribed");
        let generation = g.membership.shared.state().generation;
        let topics: Vec<String> = g.topics.iter().cloned().collect();
        let rack = self.cluster.config().client_rack();
        g.assignors
            .iter()
            .map(|a| {
                let subscription = ConsumerSubscription {
                    topics: topics.clone(),
                    user_data: a.subscription_user_data(&topics),
                    owned_partitions: self.order.iter().cloned().collect(),
                    generation_id: generation,
                    rack_id: (!rack.is_empty()).then(|| rack.to_string()),
                };
                Ok((
                    a.name().to_string(),
                    subscription.encode(SUBSCRIPTION_VERSION)?,
                ))
            })
            .collect()
    }

    /// The leader's part: metadata for every member's topics, then the voted assignor.
    async fn perform_assignment(&mut self, joined: &Joined) -> Result<Vec<(String, bytes::Bytes)>> {
        let all_topics: BTreeSet<String> = joined
            .members
            .values()
            .flat_map(|m| m.subscription.topics.iter().cloned())
            .collect();
        let names: Vec<String> = all_topics.iter().cloned().collect();
        let metadata = if names.is_empty() {
            self.cluster.snapshot()
        } else {
            self.cluster.refresh(Topics::Named(&names)).await?
        };
        let partitions_per_topic: BTreeMap<String, i32> = partition_counts(&metadata, &all_topics)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        let g = self.group.as_mut().expect("subscribed");
        let assignor = g
            .assignors
            .iter()
            .find(|a| a.name() == joined.protocol)
            .cloned()
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "the group chose assignor `{}`, which this consumer does not have",
                    joined.protocol
                ))
            })?;
        let result = assignor.assign(&partitions_per_topic, &joined.members);
        g.group_topics = all_topics;
        debug!(
            assignor = assignor.name(),
            ?result,
            "assigned as group leader"
        );
        joined
            .members
            .keys()
            .map(|m| {
                let a = result.get(m).cloned().unwrap_or_default();
                Ok((m.clone(), a.encode(ASSIGNMENT_VERSION)?))
            })
            .collect()
    }

    fn remove_partitions(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            self.partitions.remove(tp);
        }
        self.order.retain(|tp| !tps.contains(tp));
    }

    /// Adds newly assigned partitions at their committed offsets, else per
    /// `auto.offset.reset`.
    async fn add_partitions_at_committed(&mut self, added: &[TopicPartition]) -> Result<()> {
        if added.is_empty() {
            return Ok(());
        }
        let committed = self.committed(added).await?;
        let reset = self.cluster.config().auto_offset_reset();
        for tp in added {
            let start = match committed.get(tp).cloned().flatten() {
                Some(o) => Offset::At(o.offset),
                None => match reset {
                    AutoOffsetReset::Earliest => Offset::Earliest,
                    AutoOffsetReset::Latest => Offset::Latest,
                    AutoOffsetReset::None => {
                        return Err(ClientError::kafka(
                            ErrorCode::OffsetOutOfRange,
                            Some(format!(
                                "no committed offset for partition {tp} and auto.offset.reset is none"
                            )),
                        ));
                    }
                },
            };
            if self
                .partitions
                .insert(tp.clone(), PartitionState::new(start))
                .is_none()
            {
                self.order.push_back(tp.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::assignor::{RangeAssignor, RoundRobinAssignor};
    use crate::consumer::sticky::CooperativeStickyAssignor;

    #[test]
    fn one_eager_assignor_makes_the_consumer_eager() {
        let range: Arc<dyn ConsumerPartitionAssignor> = Arc::new(RangeAssignor);
        let coop: Arc<dyn ConsumerPartitionAssignor> =
            Arc::new(CooperativeStickyAssignor::default());
        let rr: Arc<dyn ConsumerPartitionAssignor> = Arc::new(RoundRobinAssignor);
        assert_eq!(
            common_protocol(&[range, coop.clone()]),
            RebalanceProtocol::Eager
        );
        assert_eq!(
            common_protocol(std::slice::from_ref(&coop)),
            RebalanceProtocol::Cooperative
        );
        assert_eq!(common_protocol(&[rr]), RebalanceProtocol::Eager);
    }
}
