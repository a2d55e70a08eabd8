//! Client-side partition assignors of the classic group protocol: the group leader runs the
//! one the group voted for over every member's subscription and sends the result in
//! SyncGroup, as Kafka's `ConsumerPartitionAssignor`s do.
//!
//! Built in: `range` and `roundrobin` here, `sticky` and `cooperative-sticky` in
//! [`sticky`](super::sticky). They hand out the same partitions as Java's assignors of the
//! same names for the same input, except where Java's result depends on `HashMap` iteration
//! order; there members are taken in member-id order. Users add their own by implementing
//! [`ConsumerPartitionAssignor`] and passing it to `Consumer::set_assignors`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;

use crate::group_protocol::{ConsumerAssignment, ConsumerSubscription};
use crate::record::TopicPartition;

/// How partitions change hands in a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RebalanceProtocol {
    /// Every member gives up all of its partitions before it rejoins.
    Eager,
    /// Members keep what they are assigned again; a partition that moves is first revoked
    /// from its owner, then assigned in a follow-up rebalance (KIP-429).
    Cooperative,
}

/// One member of the group as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub subscription: ConsumerSubscription,
}

impl GroupMember {
    pub fn new(member_id: impl Into<String>, subscription: ConsumerSubscription) -> Self {
        Self {
            member_id: member_id.into(),
            group_instance_id: None,
            subscription,
        }
    }
}

/// A partition assignor (Java's `ConsumerPartitionAssignor`).
pub trait ConsumerPartitionAssignor: Send + Sync + std::fmt::Debug {
    /// The protocol name members vote with in JoinGroup, e.g. `range`.
    fn name(&self) -> &str;

    /// The rebalance protocols this assignor works with; a consumer uses the highest one all
    /// of its assignors support.
    fn supported_protocols(&self) -> Vec<RebalanceProtocol> {
        vec![RebalanceProtocol::Eager]
    }

    /// The `user_data` this member sends with its subscription.
    fn subscription_user_data(&self, topics: &[String]) -> Option<Bytes> {
        let _ = topics;
        None
    }

    /// Assigns the partitions of `partitions_per_topic` (topic -> partition count, the
    /// subscribed topics that exist) to `members` (keyed by member id). Every member must
    /// appear in the result, with an empty assignment if it gets nothing.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, GroupMember>,
    ) -> BTreeMap<String, ConsumerAssignment>;

    /// Called on every member with its assignment once SyncGroup completes.
    fn on_assignment(&self, assignment: &ConsumerAssignment, generation_id: i32) {
        let _ = (assignment, generation_id);
    }
}

/// The short name of a built-in assignor from a `partition.assignment.strategy` entry, which
/// may also be a Java class name.
pub(crate) fn builtin_name(entry: &str) -> Option<&'static str> {
    let short = entry.rsplit('.').next().unwrap_or(entry);
    match short {
        "range" | "RangeAssignor" => Some("range"),
        "roundrobin" | "RoundRobinAssignor" => Some("roundrobin"),
        "sticky" | "StickyAssignor" => Some("sticky"),
        "cooperative-sticky" | "CooperativeStickyAssignor" => Some("cooperative-sticky"),
        _ => None,
    }
}

/// A new instance of the built-in assignor `name` (a short name from `builtin_name`).
pub fn builtin_assignor(name: &str) -> Option<Arc<dyn ConsumerPartitionAssignor>> {
    Some(match builtin_name(name)? {
        "range" => Arc::new(RangeAssignor),
        "roundrobin" => Arc::new(RoundRobinAssignor),
        "sticky" => Arc::new(super::sticky::StickyAssignor::default()),
        _ => Arc::new(super::sticky::CooperativeStickyAssignor::default()),
    })
}

/// Members in Java's `MemberInfo` order: static members first by instance id, then dynamic
/// ones by member id.
pub(crate) fn member_order<'a>(
    members: impl IntoIterator<Item = &'a GroupMember>,
) -> Vec<&'a GroupMember> {
    let mut list: Vec<&GroupMember> = members.into_iter().collect();
    list.sort_by(|a, b| match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    });
    list
}

/// An empty assignment for every member.
pub(crate) fn empty_assignments(
    members: &BTreeMap<String, GroupMember>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    members.keys().map(|m| (m.clone(), Vec::new())).collect()
}

pub(crate) fn into_assignments(
    lists: BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<String, ConsumerAssignment> {
    lists
        .into_iter()
        .map(|(m, ps)| (m, ConsumerAssignment::new(ps)))
        .collect()
}

/// Kafka's `RangeAssignor`: per topic, the subscribed members in order each take a
/// contiguous range; the first `partitions % members` take one more. Co-partitioned topics
/// thus land on the same member.
#[derive(Debug, Default, Clone, Copy)]
pub struct RangeAssignor;

impl ConsumerPartitionAssignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, GroupMember>,
    ) -> BTreeMap<String, ConsumerAssignment> {
        let mut out = empty_assignments(members);
        let ordered = member_order(members.values());
        for (topic, &count) in partitions_per_topic {
            let consumers: Vec<&&GroupMember> = ordered
                .iter()
                .filter(|m| m.subscription.topics.iter().any(|t| t == topic))
                .collect();
            if consumers.is_empty() {
                continue;
            }
            let n = consumers.len() as i32;
            let per = count / n;
            let extra = count % n;
            for (i, member) in consumers.iter().enumerate() {
                let i = i as i32;
                let start = per * i + i.min(extra);
                let len = per + i32::from(i < extra);
                let list = out.entry(member.member_id.clone()).or_default();
                list.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
            }
        }
        into_assignments(out)
    }
}

/// Kafka's `RoundRobinAssignor`: every partition of every subscribed topic (topics sorted)
/// goes to the next member in order that subscribes to its topic.
#[derive(Debug, Default, Clone, Copy)]
pub struct RoundRobinAssignor;

impl ConsumerPartitionAssignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, GroupMember>,
    ) -> BTreeMap<String, ConsumerAssignment> {
        let mut out = empty_assignments(members);
        let ordered = member_order(members.values());
        if ordered.is_empty() {
            return into_assignments(out);
        }
        let topics: BTreeSet<&String> = members
            .values()
            .flat_map(|m| m.subscription.topics.iter())
            .collect();
        let mut next = 0usize;
        for topic in topics {
            let Some(&count) = partitions_per_topic.get(topic) else {
                continue;
            };
            for p in 0..count {
                // Some member subscribes to the topic (it came from a subscription), so this
                // ends within one lap.
                while !ordered[next % ordered.len()]
                    .subscription
                    .topics
                    .iter()
                    .any(|t| t == topic)
                {
                    next += 1;
                }
                let member = ordered[next % ordered.len()];
                next += 1;
                out.entry(member.member_id.clone())
                    .or_default()
                    .push(TopicPartition::new(topic.clone(), p));
            }
        }
        into_assignments(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn member(id: &str, topics: &[&str]) -> (String, GroupMember) {
        (
            id.to_string(),
            GroupMember::new(id, ConsumerSubscription::new(topics.iter().copied())),
        )
    }

    pub(crate) fn tps(list: &[(&str, i32)]) -> Vec<TopicPartition> {
        list.iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect()
    }

    pub(crate) fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    pub(crate) fn sorted(a: &ConsumerAssignment) -> Vec<TopicPartition> {
        let mut v = a.partitions.clone();
        v.sort();
        v
    }

    // The cases below are the examples of Kafka's RangeAssignorTest / RoundRobinAssignorTest.

    #[test]
    fn range_two_consumers_two_topics_three_partitions() {
        let members: BTreeMap<_, _> = [member("c1", &["t1", "t2"]), member("c2", &["t1", "t2"])]
            .into_iter()
            .collect();
        let a = RangeAssignor.assign(&counts(&[("t1", 3), ("t2", 3)]), &members);
        assert_eq!(
            sorted(&a["c1"]),
            tps(&[("t1", 0), ("t1", 1), ("t2", 0), ("t2", 1)])
        );
        assert_eq!(sorted(&a["c2"]), tps(&[("t1", 2), ("t2", 2)]));
    }

    #[test]
    fn range_only_assigns_to_subscribers_and_handles_more_members_than_partitions() {
        let members: BTreeMap<_, _> = [
            member("c0", &["t1"]),
            member("c1", &["t1", "t2"]),
            member("c2", &["t1"]),
        ]
        .into_iter()
        .collect();
        let a = RangeAssignor.assign(&counts(&[("t1", 2), ("t2", 3)]), &members);
        assert_eq!(sorted(&a["c0"]), tps(&[("t1", 0)]));
        assert_eq!(
            sorted(&a["c1"]),
            tps(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)])
        );
        assert!(a["c2"].partitions.is_empty());
    }

    #[test]
    fn range_puts_static_members_first_by_instance_id() {
        let mut members: BTreeMap<_, _> = [member("a", &["t"]), member("b", &["t"])]
            .into_iter()
            .collect();
        members.get_mut("b").unwrap().group_instance_id = Some("i1".into());
        members.get_mut("a").unwrap().group_instance_id = Some("i2".into());
        let a = RangeAssignor.assign(&counts(&[("t", 3)]), &members);
        assert_eq!(sorted(&a["b"]), tps(&[("t", 0), ("t", 1)]));
        assert_eq!(sorted(&a["a"]), tps(&[("t", 2)]));
    }

    #[test]
    fn roundrobin_two_consumers_two_topics() {
        let members: BTreeMap<_, _> = [member("c1", &["t1", "t2"]), member("c2", &["t1", "t2"])]
            .into_iter()
            .collect();
        let a = RoundRobinAssignor.assign(&counts(&[("t1", 3), ("t2", 3)]), &members);
        assert_eq!(sorted(&a["c1"]), tps(&[("t1", 0), ("t1", 2), ("t2", 1)]));
        assert_eq!(sorted(&a["c2"]), tps(&[("t1", 1), ("t2", 0), ("t2", 2)]));
    }

    #[test]
    fn roundrobin_multiple_subscriptions() {
        // RoundRobinAssignorTest.testTwoConsumersTwoTopicsSixPartitions-like case with
        // uneven subscriptions: t2 only for c1.
        let members: BTreeMap<_, _> = [member("c0", &["t1"]), member("c1", &["t1", "t2"])]
            .into_iter()
            .collect();
        let a = RoundRobinAssignor.assign(&counts(&[("t1", 3), ("t2", 2)]), &members);
        assert_eq!(sorted(&a["c0"]), tps(&[("t1", 0), ("t1", 2)]));
        assert_eq!(sorted(&a["c1"]), tps(&[("t1", 1), ("t2", 0), ("t2", 1)]));
    }

    #[test]
    fn missing_topics_give_empty_assignments() {
        let members: BTreeMap<_, _> = [member("c", &["gone"])].into_iter().collect();
        for assignor in [
            builtin_assignor("range").unwrap(),
            builtin_assignor("roundrobin").unwrap(),
            builtin_assignor("sticky").unwrap(),
            builtin_assignor("cooperative-sticky").unwrap(),
        ] {
            let a = assignor.assign(&BTreeMap::new(), &members);
            assert!(a["c"].partitions.is_empty(), "{}", assignor.name());
        }
    }
}
