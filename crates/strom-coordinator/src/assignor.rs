//! Server-side assignors of KIP-848 groups (`group.consumer.assignors`): `uniform` (the
//! default) and `range`. Both are pure functions of the members' subscriptions, their current
//! target assignment and the topics' partition counts, and both are deterministic (ties are
//! broken by member id, then topic id and partition), so replaying the same inputs gives the same
//! target.
//!
//! - `uniform` spreads every subscribed partition over the members subscribed to its topic, as
//!   evenly as the subscriptions allow, and keeps a member's current partitions where it can
//!   (sticky). With identical subscriptions every member gets ⌊P/N⌋ or ⌈P/N⌉ partitions.
//! - `range` works topic by topic: the members subscribed to a topic, ordered by member id, get
//!   contiguous ranges of its partitions, the first `P mod N` one more than the others.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::config::{RANGE_ASSIGNOR, UNIFORM_ASSIGNOR};

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What the assignor knows about one member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSpec {
    /// Ids of the topics the member subscribes to (only existing topics matter).
    pub subscribed_topics: BTreeSet<Uuid>,
    /// The member's partitions in the current target assignment, for stickiness.
    pub current: Assignment,
}

/// The input of an assignor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentSpec {
    pub members: BTreeMap<String, MemberSpec>,
    /// Partition count of every topic some member subscribes to.
    pub topics: BTreeMap<Uuid, i32>,
}

/// Runs the assignor called `name`; unknown names fall back to `uniform` (the name was checked
/// when the member sent it).
pub fn assign(name: &str, spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    match name {
        RANGE_ASSIGNOR => range(spec),
        UNIFORM_ASSIGNOR => uniform(spec),
        _ => uniform(spec),
    }
}

/// Kafka's `range` assignor, topic by topic.
pub fn range(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (topic, &count) in &spec.topics {
        let members: Vec<&String> = spec
            .members
            .iter()
            .filter(|(_, s)| s.subscribed_topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || count <= 0 {
            continue;
        }
        let n = members.len() as i32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let quota = base + i32::from((i as i32) < extra);
            if quota == 0 {
                continue;
            }
            if let Some(a) = out.get_mut(*m) {
                a.entry(*topic).or_default().extend(next..next + quota);
            }
            next += quota;
        }
    }
    out
}

/// Kafka's `uniform` assignor: balanced and sticky.
pub fn uniform(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut subscriptions = spec.members.values().map(|m| &m.subscribed_topics);
    let homogeneous = match subscriptions.next() {
        None => return BTreeMap::new(),
        Some(first) => subscriptions.all(|s| s == first),
    };
    if homogeneous {
        uniform_homogeneous(spec)
    } else {
        uniform_heterogeneous(spec)
    }
}

/// Every partition of the (existing) subscribed topics, in topic-id then partition order.
fn partitions_of(spec: &AssignmentSpec, topics: &BTreeSet<Uuid>) -> Vec<(Uuid, i32)> {
    topics
        .iter()
        .filter_map(|t| spec.topics.get(t).map(|&n| (*t, n)))
        .flat_map(|(t, n)| (0..n.max(0)).map(move |p| (t, p)))
        .collect()
}

/// The current partitions each member may keep: still existing, still subscribed, and not
/// claimed by a member earlier in id order (a partition has one owner).
fn retained(spec: &AssignmentSpec) -> BTreeMap<&String, Vec<(Uuid, i32)>> {
    let mut taken = BTreeSet::new();
    let mut out = BTreeMap::new();
    for (id, m) in &spec.members {
        let mut keep = Vec::new();
        for (topic, parts) in &m.current {
            let Some(&count) = spec.topics.get(topic) else {
                continue;
            };
            if !m.subscribed_topics.contains(topic) {
                continue;
            }
            for &p in parts {
                if p >= 0 && p < count && taken.insert((*topic, p)) {
                    keep.push((*topic, p));
                }
            }
        }
        out.insert(id, keep);
    }
    out
}

/// Same subscription everywhere: quotas of ⌊P/N⌋ and ⌈P/N⌉, the larger ones going to the
/// members that already hold the most, so as few partitions as possible move.
fn uniform_homogeneous(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let Some(first) = spec.members.values().next() else {
        return BTreeMap::new();
    };
    let all = partitions_of(spec, &first.subscribed_topics);
    let n = spec.members.len();
    let (base, extra) = (all.len() / n, all.len() % n);
    let mut retained = retained(spec);
    let mut order: Vec<&String> = retained.keys().copied().collect();
    order.sort_by(|a, b| retained[b].len().cmp(&retained[a].len()).then(a.cmp(b)));
    let quota: BTreeMap<&String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, base + usize::from(i < extra)))
        .collect();
    let mut owned = BTreeSet::new();
    for (m, keep) in retained.iter_mut() {
        keep.truncate(quota[m]);
        owned.extend(keep.iter().copied());
    }
    let mut free = all.into_iter().filter(|tp| !owned.contains(tp));
    for (m, keep) in retained.iter_mut() {
        while keep.len() < quota[m] {
            match free.next() {
                Some(tp) => keep.push(tp),
                None => break,
            }
        }
    }
    retained
        .into_iter()
        .map(|(m, parts)| (m.clone(), to_assignment(parts)))
        .collect()
}

/// Different subscriptions: keep what is still valid, give each unowned partition to the least
/// loaded member subscribed to its topic, then move partitions from a member to a subscribed
/// member holding at least two fewer until no such move exists.
fn uniform_heterogeneous(spec: &AssignmentSpec) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    let mut count: BTreeMap<String, usize> = spec.members.keys().map(|m| (m.clone(), 0)).collect();
    for (m, keep) in retained(spec) {
        *count.entry(m.clone()).or_default() += keep.len();
        for tp in keep {
            owner.insert(tp, m.clone());
        }
    }
    let subscribers: BTreeMap<Uuid, Vec<&String>> = spec
        .topics
        .keys()
        .map(|t| {
            let members = spec
                .members
                .iter()
                .filter(|(_, s)| s.subscribed_topics.contains(t))
                .map(|(m, _)| m)
                .collect();
            (*t, members)
        })
        .collect();
    let least_loaded = |count: &BTreeMap<String, usize>, candidates: &[&String]| {
        candidates
            .iter()
            .min_by(|a, b| count[**a].cmp(&count[**b]).then(a.cmp(b)))
            .map(|m| (*m).clone())
    };
    for (topic, members) in &subscribers {
        let n = spec.topics.get(topic).copied().unwrap_or(0);
        for p in 0..n.max(0) {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            if let Some(m) = least_loaded(&count, members) {
                *count.entry(m.clone()).or_default() += 1;
                owner.insert((*topic, p), m);
            }
        }
    }
    // Each move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        let owned: Vec<((Uuid, i32), String)> =
            owner.iter().map(|(tp, m)| (*tp, m.clone())).collect();
        for (tp, from) in owned {
            let Some(candidates) = subscribers.get(&tp.0) else {
                continue;
            };
            let Some(to) = least_loaded(&count, candidates) else {
                continue;
            };
            if count[&to] + 1 < count[&from] {
                *count.entry(from).or_default() -= 1;
                *count.entry(to.clone()).or_default() += 1;
                owner.insert(tp, to);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = spec
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for ((t, p), m) in owner {
        out.entry(m).or_default().entry(t).or_default().insert(p);
    }
    out
}

fn to_assignment(parts: Vec<(Uuid, i32)>) -> Assignment {
    let mut a = Assignment::new();
    for (t, p) in parts {
        a.entry(t).or_default().insert(p);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topic(i: u8) -> Uuid {
        Uuid::from_u128(u128::from(i) + 1)
    }

    /// Members m0..mN, each subscribed to a subset of topics, optionally with a prior assignment.
    fn spec_strategy(homogeneous: bool) -> impl Strategy<Value = AssignmentSpec> {
        (
            prop::collection::vec(0i32..12, 1..5),
            1usize..6,
            any::<u64>(),
        )
            .prop_map(move |(partitions, n_members, seed)| {
                let topics: BTreeMap<Uuid, i32> = partitions
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| (topic(i as u8), n))
                    .collect();
                let all: BTreeSet<Uuid> = topics.keys().copied().collect();
                let mut members = BTreeMap::new();
                for i in 0..n_members {
                    let subscribed = if homogeneous {
                        all.clone()
                    } else {
                        let mut s: BTreeSet<Uuid> = all
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| (seed >> ((i * 5 + j) % 64)) & 1 == 1)
                            .map(|(_, t)| *t)
                            .collect();
                        if s.is_empty() {
                            s.insert(topic(0));
                        }
                        s
                    };
                    members.insert(
                        format!("m{i}"),
                        MemberSpec {
                            subscribed_topics: subscribed,
                            current: Assignment::new(),
                        },
                    );
                }
                AssignmentSpec { members, topics }
            })
    }

    fn check_exactly_once(spec: &AssignmentSpec, out: &BTreeMap<String, Assignment>) {
        let mut seen = BTreeSet::new();
        for (m, a) in out {
            for (t, ps) in a {
                assert!(
                    spec.members[m].subscribed_topics.contains(t),
                    "{m} got unsubscribed topic"
                );
                for p in ps {
                    assert!(*p >= 0 && *p < spec.topics[t]);
                    assert!(seen.insert((*t, *p)), "partition {t}-{p} assigned twice");
                }
            }
        }
        for (t, &n) in &spec.topics {
            let wanted = spec
                .members
                .values()
                .any(|m| m.subscribed_topics.contains(t));
            for p in 0..n {
                assert_eq!(seen.contains(&(*t, p)), wanted, "partition {t}-{p}");
            }
        }
    }

    fn load(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    fn with_current(spec: &AssignmentSpec, out: &BTreeMap<String, Assignment>) -> AssignmentSpec {
        let mut next = spec.clone();
        for (m, a) in out {
            if let Some(ms) = next.members.get_mut(m) {
                ms.current = a.clone();
            }
        }
        next
    }

    proptest! {
        #[test]
        fn uniform_homogeneous_is_balanced_complete_and_sticky(spec in spec_strategy(true)) {
            let out = uniform(&spec);
            check_exactly_once(&spec, &out);
            let loads: Vec<usize> = out.values().map(load).collect();
            let (min, max) = (loads.iter().min().copied().unwrap_or(0), loads.iter().max().copied().unwrap_or(0));
            prop_assert!(max - min <= 1, "loads {loads:?}");
            // Nothing changed: the same assignment comes back.
            let again = uniform(&with_current(&spec, &out));
            prop_assert_eq!(&again, &out);
        }

        #[test]
        fn uniform_heterogeneous_is_complete_locally_balanced_and_sticky(spec in spec_strategy(false)) {
            let out = uniform(&spec);
            check_exactly_once(&spec, &out);
            // No partition could move to a subscribed member holding two fewer.
            for (m, a) in &out {
                for t in a.keys() {
                    for (other, os) in &spec.members {
                        if other != m && os.subscribed_topics.contains(t) {
                            prop_assert!(load(&out[other]) + 1 >= load(a));
                        }
                    }
                }
            }
            let again = uniform(&with_current(&spec, &out));
            prop_assert_eq!(&again, &out);
        }

        #[test]
        fn uniform_keeps_partitions_of_surviving_members(spec in spec_strategy(true)) {
            // A member leaves: the others keep everything they had.
            let out = uniform(&spec);
            let mut next = with_current(&spec, &out);
            let Some(gone) = next.members.keys().next().cloned() else { return Ok(()); };
            if next.members.len() < 2 { return Ok(()); }
            next.members.remove(&gone);
            let after = uniform(&next);
            check_exactly_once(&next, &after);
            for (m, a) in &out {
                if *m == gone { continue; }
                for (t, ps) in a {
                    for p in ps {
                        prop_assert!(after[m].get(t).is_some_and(|s| s.contains(p)), "{} lost {}-{}", m, t, p);
                    }
                }
            }
        }

        #[test]
        fn range_is_balanced_per_topic_complete_and_sticky(spec in spec_strategy(false)) {
            let out = range(&spec);
            check_exactly_once(&spec, &out);
            for t in spec.topics.keys() {
                let loads: Vec<usize> = spec.members.iter()
                    .filter(|(_, s)| s.subscribed_topics.contains(t))
                    .map(|(m, _)| out[m].get(t).map_or(0, |s| s.len()))
                    .collect();
                if let (Some(min), Some(max)) = (loads.iter().min(), loads.iter().max()) {
                    prop_assert!(max - min <= 1);
                }
            }
            prop_assert_eq!(range(&with_current(&spec, &out)), out);
        }
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let t = topic(0);
        let members = ["a", "b"]
            .iter()
            .map(|m| {
                (
                    m.to_string(),
                    MemberSpec {
                        subscribed_topics: [t].into(),
                        current: Assignment::new(),
                    },
                )
            })
            .collect();
        let spec = AssignmentSpec {
            members,
            topics: [(t, 5)].into(),
        };
        let out = range(&spec);
        assert_eq!(out["a"][&t], [0, 1, 2].into());
        assert_eq!(out["b"][&t], [3, 4].into());
    }
}
