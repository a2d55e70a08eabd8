//! Kafka's sticky assignors: `sticky` (eager) and `cooperative-sticky` (KIP-429). Both keep
//! as many partitions as possible where they were while balancing the counts; they differ in
//! where a member's previous partitions come from (`sticky`: its own user data, as Java's
//! `StickyAssignor` writes it; `cooperative-sticky`: the subscription's owned partitions and
//! generation) and in that the cooperative one withholds every partition that changes owner,
//! so the owner revokes it first and a follow-up rebalance hands it out.
//!
//! The algorithm is Java's `AbstractStickyAssignor`: a quota-based one when all members
//! subscribe to the same topics, the general balancing search otherwise. Where Java walks a
//! `HashMap`, this walks members in id order, so ties may break differently; the balance and
//! the stickiness are the same. No rack awareness.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::assignor::{
    ConsumerPartitionAssignor, GroupMember, RebalanceProtocol, into_assignments,
};
use crate::group_protocol::ConsumerAssignment;
use crate::record::TopicPartition;

const DEFAULT_GENERATION: i32 = -1;

/// What a member says it owned before, and in which generation.
#[derive(Debug, Clone, Default)]
struct MemberData {
    partitions: Vec<TopicPartition>,
    generation: Option<i32>,
}

/// Java's `StickyAssignor`: eager, previous assignment carried in the user data.
#[derive(Debug, Default)]
pub struct StickyAssignor {
    /// The last assignment and generation, sent back as user data when rejoining.
    memory: Mutex<Option<(Vec<TopicPartition>, i32)>>,
}

/// Java's `CooperativeStickyAssignor`.
#[derive(Debug)]
pub struct CooperativeStickyAssignor {
    generation: Mutex<i32>,
}

impl Default for CooperativeStickyAssignor {
    fn default() -> Self {
        Self {
            generation: Mutex::new(DEFAULT_GENERATION),
        }
    }
}

/// `StickyAssignor` user data v1: `[topic: string, partitions: [int32]]`, `generation: int32`.
fn encode_sticky_user_data(partitions: &[TopicPartition], generation: Option<i32>) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let mut buf = BytesMut::new();
    buf.put_i32(by_topic.len() as i32);
    for (topic, ps) in by_topic {
        buf.put_i16(topic.len() as i16);
        buf.put_slice(topic.as_bytes());
        buf.put_i32(ps.len() as i32);
        for p in ps {
            buf.put_i32(p);
        }
    }
    if let Some(g) = generation {
        buf.put_i32(g);
    }
    buf.freeze()
}

/// Reads `StickyAssignor` user data v1 (or v0, without the generation); garbage reads as
/// nothing owned, as Java's falls back.
fn decode_sticky_user_data(data: &[u8]) -> MemberData {
    fn read(mut b: &[u8]) -> Option<MemberData> {
        let mut out = MemberData::default();
        if b.remaining() < 4 {
            return None;
        }
        let topics = b.get_i32();
        for _ in 0..topics.max(0) {
            if b.remaining() < 2 {
                return None;
            }
            let len = usize::try_from(b.get_i16()).ok()?;
            if b.remaining() < len + 4 {
                return None;
            }
            let topic = String::from_utf8(b[..len].to_vec()).ok()?;
            b.advance(len);
            let n = usize::try_from(b.get_i32()).ok()?;
            if b.remaining() < n.checked_mul(4)? {
                return None;
            }
            for _ in 0..n {
                out.partitions
                    .push(TopicPartition::new(topic.clone(), b.get_i32()));
            }
        }
        if b.remaining() >= 4 {
            out.generation = Some(b.get_i32());
        }
        Some(out)
    }
    read(data).unwrap_or_default()
}

impl ConsumerPartitionAssignor for StickyAssignor {
    fn name(&self) -> &str {
        "sticky"
    }

    fn subscription_user_data(&self, _topics: &[String]) -> Option<Bytes> {
        let memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        memory
            .as_ref()
            .map(|(ps, generation)| encode_sticky_user_data(ps, Some(*generation)))
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, GroupMember>,
    ) -> BTreeMap<String, ConsumerAssignment> {
        let data = members
            .iter()
            .map(|(id, m)| {
                let d = m
                    .subscription
                    .user_data
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .map(decode_sticky_user_data)
                    .unwrap_or_default();
                (id.clone(), d)
            })
            .collect();
        into_assignments(sticky_assign(partitions_per_topic, members, &data).assignment)
    }

    fn on_assignment(&self, assignment: &ConsumerAssignment, generation_id: i32) {
        *self.memory.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((assignment.partitions.clone(), generation_id));
    }
}

impl ConsumerPartitionAssignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn supported_protocols(&self) -> Vec<RebalanceProtocol> {
        vec![RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    }

    fn subscription_user_data(&self, _topics: &[String]) -> Option<Bytes> {
        let generation = *self.generation.lock().unwrap_or_else(|e| e.into_inner());
        Some(Bytes::copy_from_slice(&generation.to_be_bytes()))
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &BTreeMap<String, GroupMember>,
    ) -> BTreeMap<String, ConsumerAssignment> {
        let data: BTreeMap<String, MemberData> = members
            .iter()
            .map(|(id, m)| {
                let s = &m.subscription;
                // Subscription v2+ carries the generation; older members put it in user data.
                let generation = if s.generation_id >= 0 {
                    Some(s.generation_id)
                } else {
                    match s.user_data.as_deref() {
                        Some(d) if d.len() >= 4 => {
                            Some(i32::from_be_bytes([d[0], d[1], d[2], d[3]]))
                        }
                        Some(_) => Some(DEFAULT_GENERATION),
                        None => None,
                    }
                };
                (
                    id.clone(),
                    MemberData {
                        partitions: s.owned_partitions.clone(),
                        generation,
                    },
                )
            })
            .collect();
        let mut result = sticky_assign(partitions_per_topic, members, &data);
        let transferring = match result.transferring.take() {
            Some(t) => t,
            None => transferring_ownership(members, &result.assignment),
        };
        // Partitions that change owner are withheld until their owner has revoked them.
        for (tp, consumer) in transferring {
            if let Some(list) = result.assignment.get_mut(&consumer) {
                list.retain(|p| *p != tp);
            }
        }
        into_assignments(result.assignment)
    }

    fn on_assignment(&self, _assignment: &ConsumerAssignment, generation_id: i32) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) = generation_id;
    }
}

/// Partitions assigned to a member that another member owned before.
fn transferring_ownership(
    members: &BTreeMap<String, GroupMember>,
    assignment: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<TopicPartition, String> {
    let mut added: BTreeMap<TopicPartition, String> = BTreeMap::new();
    let mut revoked: HashSet<TopicPartition> = HashSet::new();
    for (consumer, assigned) in assignment {
        let owned: HashSet<&TopicPartition> = members
            .get(consumer)
            .map(|m| m.subscription.owned_partitions.iter().collect())
            .unwrap_or_default();
        for tp in assigned {
            if !owned.contains(tp) {
                added.insert(tp.clone(), consumer.clone());
            }
        }
        let assigned: HashSet<&TopicPartition> = assigned.iter().collect();
        for tp in owned {
            if !assigned.contains(tp) {
                revoked.insert(tp.clone());
            }
        }
    }
    added.retain(|tp, _| revoked.contains(tp));
    added
}

struct StickyResult {
    assignment: BTreeMap<String, Vec<TopicPartition>>,
    /// Known when the constrained algorithm ran; the general one leaves it to be computed.
    transferring: Option<BTreeMap<TopicPartition, String>>,
}

fn sticky_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &BTreeMap<String, GroupMember>,
    data: &BTreeMap<String, MemberData>,
) -> StickyResult {
    let mut owned: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
    let mut multiple_owners: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut max_generation = DEFAULT_GENERATION;
    let all_equal = all_subscriptions_equal(
        partitions_per_topic,
        members,
        data,
        &mut owned,
        &mut multiple_owners,
        &mut max_generation,
    );
    if all_equal {
        let mut b = Constrained::new(partitions_per_topic, owned, multiple_owners);
        let assignment = b.build();
        StickyResult {
            assignment,
            transferring: Some(b.transferring),
        }
    } else {
        let assignment =
            General::new(partitions_per_topic, owned, members).build(data, max_generation);
        StickyResult {
            assignment,
            transferring: None,
        }
    }
}

/// Java's `allSubscriptionsEqual`: whether every member subscribes to the same topics; also
/// collects each member's valid previously owned partitions (a partition claimed by two
/// members of one generation is owned by neither; by two generations, by the newer).
fn all_subscriptions_equal(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &BTreeMap<String, GroupMember>,
    data: &BTreeMap<String, MemberData>,
    owned: &mut BTreeMap<String, Vec<TopicPartition>>,
    multiple_owners: &mut BTreeSet<TopicPartition>,
    max_generation: &mut i32,
) -> bool {
    let mut equal = true;
    let mut first: Option<BTreeSet<&String>> = None;
    let mut previous_owner: HashMap<TopicPartition, String> = HashMap::new();
    for (consumer, member) in members {
        let topics: BTreeSet<&String> = member.subscription.topics.iter().collect();
        match &first {
            None => first = Some(topics),
            Some(f) => {
                if *f != topics {
                    equal = false;
                }
            }
        }
        let d = data.get(consumer).cloned().unwrap_or_default();
        let generation = d.generation.unwrap_or(DEFAULT_GENERATION);
        *max_generation = (*max_generation).max(generation);
        owned.insert(consumer.clone(), Vec::new());
        for tp in d.partitions {
            if !partitions_per_topic.contains_key(&tp.topic) {
                continue;
            }
            match previous_owner.get(&tp).cloned() {
                None => {
                    owned.get_mut(consumer).expect("inserted").push(tp.clone());
                    previous_owner.insert(tp, consumer.clone());
                }
                Some(other) => {
                    let other_generation = data
                        .get(&other)
                        .and_then(|d| d.generation)
                        .unwrap_or(DEFAULT_GENERATION);
                    if generation == other_generation {
                        multiple_owners.insert(tp.clone());
                        if let Some(l) = owned.get_mut(&other) {
                            l.retain(|p| *p != tp);
                        }
                        previous_owner.insert(tp, consumer.clone());
                    } else if generation > other_generation {
                        owned.get_mut(consumer).expect("inserted").push(tp.clone());
                        if let Some(l) = owned.get_mut(&other) {
                            l.retain(|p| *p != tp);
                        }
                        previous_owner.insert(tp, consumer.clone());
                    }
                }
            }
        }
    }
    equal
}

fn total_partitions(partitions_per_topic: &BTreeMap<String, i32>) -> usize {
    partitions_per_topic
        .values()
        .map(|&n| n.max(0) as usize)
        .sum()
}

/// Java's `ConstrainedAssignmentBuilder`: every member gets `floor` or `ceil` of
/// partitions/members; owned partitions are kept up to that quota, the rest go round-robin.
struct Constrained<'a> {
    partitions_per_topic: &'a BTreeMap<String, i32>,
    owned: BTreeMap<String, Vec<TopicPartition>>,
    multiple_owners: BTreeSet<TopicPartition>,
    maybe_revoked: HashMap<TopicPartition, String>,
    transferring: BTreeMap<TopicPartition, String>,
    assignment: BTreeMap<String, Vec<TopicPartition>>,
}

impl<'a> Constrained<'a> {
    fn new(
        partitions_per_topic: &'a BTreeMap<String, i32>,
        owned: BTreeMap<String, Vec<TopicPartition>>,
        multiple_owners: BTreeSet<TopicPartition>,
    ) -> Self {
        Self {
            partitions_per_topic,
            assignment: owned.keys().map(|c| (c.clone(), Vec::new())).collect(),
            owned,
            multiple_owners,
            maybe_revoked: HashMap::new(),
            transferring: BTreeMap::new(),
        }
    }

    fn build(&mut self) -> BTreeMap<String, Vec<TopicPartition>> {
        let consumers = self.owned.len();
        if consumers == 0 {
            return BTreeMap::new();
        }
        let total = total_partitions(self.partitions_per_topic);
        let min_quota = total / consumers;
        let max_quota = total.div_ceil(consumers);
        let expected_over = total % consumers;
        let mut current_over = 0usize;
        let mut under: Vec<String> = Vec::new();
        let mut exactly: VecDeque<String> = VecDeque::new();
        let mut assigned: HashSet<TopicPartition> = HashSet::new();

        for (consumer, list) in &self.owned {
            let mut owned: Vec<TopicPartition> = list
                .iter()
                .filter(|tp| !self.multiple_owners.contains(tp))
                .cloned()
                .collect();
            // Java keeps the lowest partition numbers first, across topics.
            owned.sort_by(|a, b| a.partition.cmp(&b.partition).then(a.topic.cmp(&b.topic)));
            let target = self.assignment.get_mut(consumer).expect("every member");
            if owned.len() < min_quota {
                assigned.extend(owned.iter().cloned());
                target.extend(owned);
                under.push(consumer.clone());
            } else if owned.len() >= max_quota && current_over < expected_over {
                current_over += 1;
                if current_over == expected_over {
                    exactly.clear();
                }
                for tp in owned.drain(max_quota..) {
                    self.maybe_revoked.insert(tp, consumer.clone());
                }
                assigned.extend(owned.iter().cloned());
                target.extend(owned);
            } else {
                for tp in owned.drain(min_quota..) {
                    self.maybe_revoked.insert(tp, consumer.clone());
                }
                assigned.extend(owned.iter().cloned());
                target.extend(owned);
                if current_over < expected_over {
                    exactly.push_back(consumer.clone());
                }
            }
        }

        let unassigned: Vec<TopicPartition> = self
            .partitions_per_topic
            .iter()
            .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
            .filter(|tp| !assigned.contains(tp))
            .collect();
        under.sort();
        exactly.make_contiguous().sort();

        // Round robin over the members under the minimum, then top up members at the
        // minimum to the maximum (Java's iterator over a list it removes from).
        let mut it = 0usize;
        for tp in unassigned {
            let consumer = if it < under.len() {
                it += 1;
                under[it - 1].clone()
            } else if !under.is_empty() {
                it = 1;
                under[0].clone()
            } else if let Some(c) = exactly.pop_front() {
                // Not taken from `under`: mark so the removal below does not touch it.
                it = usize::MAX;
                c
            } else {
                tracing::error!(%tp, "sticky assignor: no member left for a partition");
                break;
            };
            let count = {
                let list = self.assignment.get_mut(&consumer).expect("every member");
                list.push(tp.clone());
                list.len()
            };
            if self
                .maybe_revoked
                .get(&tp)
                .is_some_and(|owner| *owner != consumer)
                || self.multiple_owners.contains(&tp)
            {
                self.transferring.insert(tp, consumer.clone());
            }
            if count == min_quota {
                if it != usize::MAX && it > 0 {
                    under.remove(it - 1);
                    it -= 1;
                }
                exactly.push_back(consumer);
            }
            if it == usize::MAX {
                it = under.len();
            }
        }
        std::mem::take(&mut self.assignment)
    }
}

/// Java's `PartitionMovements`: which partitions moved between which members, so that a
/// partition moving back and forth between two members is avoided.
#[derive(Default)]
struct Movements {
    by_topic: BTreeMap<String, BTreeMap<(String, String), BTreeSet<TopicPartition>>>,
    moves: HashMap<TopicPartition, (String, String)>,
}

impl Movements {
    fn remove_record(&mut self, tp: &TopicPartition) -> Option<(String, String)> {
        let pair = self.moves.remove(tp)?;
        if let Some(topic) = self.by_topic.get_mut(&tp.topic) {
            if let Some(set) = topic.get_mut(&pair) {
                set.remove(tp);
                if set.is_empty() {
                    topic.remove(&pair);
                }
            }
            if topic.is_empty() {
                self.by_topic.remove(&tp.topic);
            }
        }
        Some(pair)
    }

    fn add_record(&mut self, tp: TopicPartition, pair: (String, String)) {
        self.moves.insert(tp.clone(), pair.clone());
        self.by_topic
            .entry(tp.topic.clone())
            .or_default()
            .entry(pair)
            .or_default()
            .insert(tp);
    }

    fn move_partition(&mut self, tp: &TopicPartition, old: &str, new: &str) {
        if self.moves.contains_key(tp) {
            let existing = self.remove_record(tp).expect("present");
            if existing.0 != new {
                self.add_record(tp.clone(), (existing.0, new.to_string()));
            }
        } else {
            self.add_record(tp.clone(), (old.to_string(), new.to_string()));
        }
    }

    fn actual_partition_to_move(
        &self,
        tp: &TopicPartition,
        old: &str,
        new: &str,
    ) -> TopicPartition {
        let Some(topic) = self.by_topic.get(&tp.topic) else {
            return tp.clone();
        };
        let old = match self.moves.get(tp) {
            Some((src, _)) => src.clone(),
            None => old.to_string(),
        };
        match topic.get(&(new.to_string(), old)) {
            Some(set) => set.iter().next().cloned().unwrap_or_else(|| tp.clone()),
            None => tp.clone(),
        }
    }
}

/// Java's `GeneralAssignmentBuilder`: for members with different subscriptions.
struct General<'a> {
    partitions_per_topic: &'a BTreeMap<String, i32>,
    members: &'a BTreeMap<String, GroupMember>,
    current: BTreeMap<String, Vec<TopicPartition>>,
    topic_consumers: BTreeMap<String, Vec<String>>,
    consumer_topics: BTreeMap<String, Vec<String>>,
    partition_consumer: HashMap<TopicPartition, String>,
    sorted_all_partitions: Vec<TopicPartition>,
    /// Members ordered by (assignment size, id); updated around every change of a size.
    sorted: BTreeSet<(usize, String)>,
    movements: Movements,
    revocation_required: bool,
    total: usize,
}

impl<'a> General<'a> {
    fn new(
        partitions_per_topic: &'a BTreeMap<String, i32>,
        mut current: BTreeMap<String, Vec<TopicPartition>>,
        members: &'a BTreeMap<String, GroupMember>,
    ) -> Self {
        let mut topic_consumers: BTreeMap<String, Vec<String>> = partitions_per_topic
            .keys()
            .map(|t| (t.clone(), Vec::new()))
            .collect();
        let mut consumer_topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, m) in members {
            let mut topics = Vec::new();
            for t in &m.subscription.topics {
                if let Some(list) = topic_consumers.get_mut(t)
                    && !topics.contains(t)
                {
                    topics.push(t.clone());
                    list.push(id.clone());
                }
            }
            consumer_topics.insert(id.clone(), topics);
            current.entry(id.clone()).or_default();
        }
        let mut partition_consumer = HashMap::new();
        for (c, list) in &current {
            for tp in list {
                partition_consumer.insert(tp.clone(), c.clone());
            }
        }
        let mut sorted_topics: Vec<&String> = topic_consumers.keys().collect();
        sorted_topics.sort_by(|a, b| {
            topic_consumers[*a]
                .len()
                .cmp(&topic_consumers[*b].len())
                .then(a.cmp(b))
        });
        let sorted_all_partitions = sorted_topics
            .iter()
            .flat_map(|t| {
                (0..partitions_per_topic[*t]).map(move |p| TopicPartition::new((*t).clone(), p))
            })
            .collect();
        Self {
            partitions_per_topic,
            members,
            current,
            topic_consumers,
            consumer_topics,
            partition_consumer,
            sorted_all_partitions,
            sorted: BTreeSet::new(),
            movements: Movements::default(),
            revocation_required: false,
            total: total_partitions(partitions_per_topic),
        }
    }

    fn size(&self, consumer: &str) -> usize {
        self.current.get(consumer).map_or(0, Vec::len)
    }

    fn unsort(&mut self, consumer: &str) {
        let key = (self.size(consumer), consumer.to_string());
        self.sorted.remove(&key);
    }

    fn resort(&mut self, consumer: &str) {
        let key = (self.size(consumer), consumer.to_string());
        self.sorted.insert(key);
    }

    fn build(
        mut self,
        data: &BTreeMap<String, MemberData>,
        max_generation: i32,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        // Partitions owned in an older generation than the newest one: where they were
        // before, to move them back to when that keeps the balance.
        let mut prev: HashMap<TopicPartition, (String, i32)> = HashMap::new();
        for (consumer, d) in data {
            let generation = match d.generation {
                Some(g) if g < max_generation => g,
                None if max_generation > DEFAULT_GENERATION => DEFAULT_GENERATION,
                _ => continue,
            };
            for tp in &d.partitions {
                match prev.get(tp) {
                    Some((_, g)) if *g >= generation => {}
                    _ => {
                        prev.insert(tp.clone(), (consumer.clone(), generation));
                    }
                }
            }
        }

        // Keep owned partitions whose topic still exists and is still subscribed.
        let mut assigned: HashSet<TopicPartition> = HashSet::new();
        let consumers: Vec<String> = self.current.keys().cloned().collect();
        for consumer in consumers {
            let Some(member) = self.members.get(&consumer) else {
                if let Some(list) = self.current.remove(&consumer) {
                    for tp in list {
                        self.partition_consumer.remove(&tp);
                    }
                }
                continue;
            };
            let list = self.current.get_mut(&consumer).expect("present");
            let mut keep = Vec::with_capacity(list.len());
            for tp in list.drain(..) {
                if !self.topic_consumers.contains_key(&tp.topic) {
                    self.partition_consumer.remove(&tp);
                } else if !member.subscription.topics.contains(&tp.topic) {
                    self.revocation_required = true;
                } else {
                    assigned.insert(tp.clone());
                    keep.push(tp);
                }
            }
            *list = keep;
        }
        let mut unassigned: Vec<TopicPartition> = self
            .sorted_all_partitions
            .iter()
            .filter(|tp| !assigned.contains(tp))
            .cloned()
            .collect();
        let all: Vec<String> = self.current.keys().cloned().collect();
        for c in &all {
            self.resort(c);
        }
        self.balance(&prev, &mut unassigned);
        self.current
    }

    fn max_assignment_size(&self, consumer: &str) -> usize {
        let topics = &self.consumer_topics[consumer];
        if topics.len() == self.partitions_per_topic.len() {
            self.total
        } else {
            topics
                .iter()
                .map(|t| self.partitions_per_topic[t].max(0) as usize)
                .sum()
        }
    }

    fn is_balanced(&self) -> bool {
        let (Some(first), Some(last)) = (self.sorted.first(), self.sorted.last()) else {
            return true;
        };
        if first.0 + 1 >= last.0 {
            return true;
        }
        let mut owner: HashMap<&TopicPartition, &String> = HashMap::new();
        for (c, list) in &self.current {
            for tp in list {
                owner.insert(tp, c);
            }
        }
        for (count, consumer) in &self.sorted {
            if *count == self.max_assignment_size(consumer) {
                continue;
            }
            let mine: HashSet<&TopicPartition> = self.current[consumer].iter().collect();
            for topic in &self.consumer_topics[consumer] {
                for p in 0..self.partitions_per_topic[topic] {
                    let tp = TopicPartition::new(topic.clone(), p);
                    if mine.contains(&tp) {
                        continue;
                    }
                    if let Some(other) = owner.get(&tp)
                        && count + 1 < self.size(other)
                    {
                        return false;
                    }
                }
            }
        }
        true
    }

    fn balance_score(assignment: &BTreeMap<String, Vec<TopicPartition>>) -> usize {
        let sizes: Vec<usize> = assignment.values().map(Vec::len).collect();
        let mut score = 0;
        for i in 0..sizes.len() {
            for j in i + 1..sizes.len() {
                score += sizes[i].abs_diff(sizes[j]);
            }
        }
        score
    }

    fn subscribes(&self, consumer: &str, topic: &str) -> bool {
        self.consumer_topics
            .get(consumer)
            .is_some_and(|ts| ts.iter().any(|t| t == topic))
    }

    fn can_topic_participate(&self, topic: &str) -> bool {
        self.topic_consumers
            .get(topic)
            .is_some_and(|c| c.len() >= 2)
    }

    fn can_consumer_participate(&self, consumer: &str) -> bool {
        let list = &self.current[consumer];
        if list.len() < self.max_assignment_size(consumer) {
            return true;
        }
        list.iter().any(|tp| self.can_topic_participate(&tp.topic))
    }

    fn balance(
        &mut self,
        prev: &HashMap<TopicPartition, (String, i32)>,
        unassigned: &mut Vec<TopicPartition>,
    ) {
        let initializing = self
            .sorted
            .last()
            .is_none_or(|(_, c)| self.current[c].is_empty());

        for tp in unassigned.iter() {
            if self.topic_consumers[&tp.topic].is_empty() {
                continue;
            }
            let target = self
                .sorted
                .iter()
                .find(|(_, c)| self.subscribes(c, &tp.topic))
                .map(|(_, c)| c.clone());
            if let Some(c) = target {
                self.unsort(&c);
                self.current.get_mut(&c).expect("member").push(tp.clone());
                self.partition_consumer.insert(tp.clone(), c.clone());
                self.resort(&c);
            }
        }

        let fixed: HashSet<String> = self
            .topic_consumers
            .keys()
            .filter(|t| !self.can_topic_participate(t))
            .cloned()
            .collect();
        self.sorted_all_partitions
            .retain(|tp| !fixed.contains(&tp.topic));
        unassigned.retain(|tp| !fixed.contains(&tp.topic));

        let mut fixed_assignments: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
        let consumers: Vec<String> = self.consumer_topics.keys().cloned().collect();
        for c in consumers {
            if !self.can_consumer_participate(&c) {
                self.unsort(&c);
                if let Some(list) = self.current.remove(&c) {
                    fixed_assignments.insert(c, list);
                }
            }
        }

        let pre_balance = self.current.clone();
        let pre_balance_owners = self.partition_consumer.clone();
        if !self.revocation_required {
            let list = unassigned.clone();
            self.perform_reassignments(&list, prev);
        }
        let all = self.sorted_all_partitions.clone();
        let performed = self.perform_reassignments(&all, prev);
        if !initializing
            && performed
            && Self::balance_score(&self.current) >= Self::balance_score(&pre_balance)
        {
            self.current = pre_balance;
            self.partition_consumer = pre_balance_owners;
            self.sorted = self
                .current
                .iter()
                .map(|(c, l)| (l.len(), c.clone()))
                .collect();
        }
        for (c, list) in fixed_assignments {
            self.current.insert(c.clone(), list);
            self.resort(&c);
        }
    }

    fn perform_reassignments(
        &mut self,
        partitions: &[TopicPartition],
        prev: &HashMap<TopicPartition, (String, i32)>,
    ) -> bool {
        let mut performed = false;
        loop {
            let mut modified = false;
            for tp in partitions {
                if self.is_balanced() {
                    break;
                }
                let Some(consumer) = self.partition_consumer.get(tp).cloned() else {
                    continue;
                };
                if let Some((prev_consumer, _)) = prev.get(tp)
                    && self.current.contains_key(prev_consumer)
                    && self.size(&consumer) > self.size(prev_consumer) + 1
                {
                    self.reassign_to(tp, prev_consumer);
                    performed = true;
                    modified = true;
                    continue;
                }
                let others = self.topic_consumers[&tp.topic].clone();
                for other in others {
                    if self.current.contains_key(&other)
                        && self.size(&consumer) > self.size(&other) + 1
                    {
                        self.reassign(tp);
                        performed = true;
                        modified = true;
                        break;
                    }
                }
            }
            if !modified {
                return performed;
            }
        }
    }

    /// Moves `tp` to the least loaded member that subscribes to its topic.
    fn reassign(&mut self, tp: &TopicPartition) {
        let target = self
            .sorted
            .iter()
            .find(|(_, c)| self.subscribes(c, &tp.topic))
            .map(|(_, c)| c.clone());
        if let Some(c) = target {
            self.reassign_to(tp, &c);
        }
    }

    fn reassign_to(&mut self, tp: &TopicPartition, new: &str) {
        let Some(old) = self.partition_consumer.get(tp).cloned() else {
            return;
        };
        let actual = self.movements.actual_partition_to_move(tp, &old, new);
        self.process_movement(&actual, new);
    }

    fn process_movement(&mut self, tp: &TopicPartition, new: &str) {
        let Some(old) = self.partition_consumer.get(tp).cloned() else {
            return;
        };
        self.unsort(&old);
        self.unsort(new);
        self.movements.move_partition(tp, &old, new);
        if let Some(l) = self.current.get_mut(&old) {
            l.retain(|p| p != tp);
        }
        self.current
            .entry(new.to_string())
            .or_default()
            .push(tp.clone());
        self.partition_consumer.insert(tp.clone(), new.to_string());
        self.resort(new);
        self.resort(&old);
    }
}

#[cfg(test)]
mod tests {
    use super::super::assignor::tests::{counts, member, sorted, tps};
    use super::*;
    use crate::group_protocol::ConsumerSubscription;

    fn members(list: &[(&str, &[&str])]) -> BTreeMap<String, GroupMember> {
        list.iter().map(|(id, ts)| member(id, ts)).collect()
    }

    /// (member, owned partitions, generation).
    type Owned<'a> = (&'a str, &'a [(&'a str, i32)], i32);

    fn with_owned(
        mut m: BTreeMap<String, GroupMember>,
        owned: &[Owned<'_>],
    ) -> BTreeMap<String, GroupMember> {
        for (id, ps, generation) in owned {
            let s: &mut ConsumerSubscription = &mut m.get_mut(*id).unwrap().subscription;
            s.owned_partitions = tps(ps);
            s.generation_id = *generation;
        }
        m
    }

    fn check_balanced_and_complete(
        a: &BTreeMap<String, ConsumerAssignment>,
        partitions: &BTreeMap<String, i32>,
    ) {
        let mut seen = BTreeSet::new();
        for list in a.values() {
            for tp in &list.partitions {
                assert!(seen.insert(tp.clone()), "{tp} assigned twice");
            }
        }
        assert_eq!(seen.len(), total_partitions(partitions));
        let sizes: Vec<usize> = a.values().map(|l| l.partitions.len()).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }

    #[test]
    fn sticky_fresh_group_is_round_robin_like_java() {
        // AbstractStickyAssignorTest.testTwoConsumersTwoTopicsSixPartitions (fresh group).
        let m = members(&[
            ("consumer1", &["topic1", "topic2"]),
            ("consumer2", &["topic1", "topic2"]),
        ]);
        let p = counts(&[("topic1", 3), ("topic2", 3)]);
        let a = StickyAssignor::default().assign(&p, &m);
        assert_eq!(
            sorted(&a["consumer1"]),
            tps(&[("topic1", 0), ("topic1", 2), ("topic2", 1)])
        );
        assert_eq!(
            sorted(&a["consumer2"]),
            tps(&[("topic1", 1), ("topic2", 0), ("topic2", 2)])
        );
    }

    #[test]
    fn cooperative_keeps_owned_and_withholds_moving_partitions() {
        // Two members own everything; a third joins: each of the old ones keeps 2 of its 3
        // and gives one up, which nobody gets in this round.
        let m = members(&[("c1", &["t"]), ("c2", &["t"]), ("c3", &["t"])]);
        let m = with_owned(
            m,
            &[
                ("c1", &[("t", 0), ("t", 1), ("t", 2)], 1),
                ("c2", &[("t", 3), ("t", 4), ("t", 5)], 1),
            ],
        );
        let p = counts(&[("t", 6)]);
        let a = CooperativeStickyAssignor::default().assign(&p, &m);
        assert_eq!(sorted(&a["c1"]), tps(&[("t", 0), ("t", 1)]));
        assert_eq!(sorted(&a["c2"]), tps(&[("t", 3), ("t", 4)]));
        assert!(a["c3"].partitions.is_empty());
        // Second round: c1 and c2 now own two each; c3 gets the two freed partitions.
        let m = with_owned(
            members(&[("c1", &["t"]), ("c2", &["t"]), ("c3", &["t"])]),
            &[
                ("c1", &[("t", 0), ("t", 1)], 2),
                ("c2", &[("t", 3), ("t", 4)], 2),
                ("c3", &[], 2),
            ],
        );
        let a = CooperativeStickyAssignor::default().assign(&p, &m);
        assert_eq!(sorted(&a["c1"]), tps(&[("t", 0), ("t", 1)]));
        assert_eq!(sorted(&a["c2"]), tps(&[("t", 3), ("t", 4)]));
        assert_eq!(sorted(&a["c3"]), tps(&[("t", 2), ("t", 5)]));
    }

    #[test]
    fn sticky_reassigns_only_a_leaving_members_partitions() {
        let p = counts(&[("t1", 4), ("t2", 5)]);
        let three = members(&[
            ("a", &["t1", "t2"]),
            ("b", &["t1", "t2"]),
            ("c", &["t1", "t2"]),
        ]);
        let sticky = StickyAssignor::default();
        let first = sticky.assign(&p, &three);
        check_balanced_and_complete(&first, &p);
        // "c" leaves; a and b send what they own as user data.
        let mut two = members(&[("a", &["t1", "t2"]), ("b", &["t1", "t2"])]);
        for id in ["a", "b"] {
            two.get_mut(id).unwrap().subscription.user_data =
                Some(encode_sticky_user_data(&first[id].partitions, Some(1)));
        }
        let second = sticky.assign(&p, &two);
        check_balanced_and_complete(&second, &p);
        for id in ["a", "b"] {
            for tp in &first[id].partitions {
                assert!(second[id].partitions.contains(tp), "{id} lost {tp}");
            }
        }
    }

    #[test]
    fn general_case_balances_different_subscriptions() {
        // StickyAssignorTest.testMultipleConsumersMixedTopics: c1 [t1], c2 [t1,t2], c3 [t1].
        let m = members(&[
            ("consumer1", &["topic1"]),
            ("consumer2", &["topic1", "topic2"]),
            ("consumer3", &["topic1"]),
        ]);
        let p = counts(&[("topic1", 3), ("topic2", 2)]);
        let a = StickyAssignor::default().assign(&p, &m);
        assert_eq!(
            sorted(&a["consumer1"]),
            tps(&[("topic1", 0), ("topic1", 2)])
        );
        assert_eq!(
            sorted(&a["consumer2"]),
            tps(&[("topic2", 0), ("topic2", 1)])
        );
        assert_eq!(sorted(&a["consumer3"]), tps(&[("topic1", 1)]));
    }

    #[test]
    fn doubly_claimed_partitions_are_owned_by_neither() {
        let m = with_owned(
            members(&[("c1", &["t"]), ("c2", &["t"])]),
            &[
                ("c1", &[("t", 0), ("t", 1)], 3),
                ("c2", &[("t", 1), ("t", 2)], 3),
            ],
        );
        let p = counts(&[("t", 4)]);
        let a = CooperativeStickyAssignor::default().assign(&p, &m);
        // t-1 is withheld this round (it changes hands from a double claim).
        let all: BTreeSet<_> = a.values().flat_map(|l| l.partitions.clone()).collect();
        assert!(!all.contains(&TopicPartition::new("t", 1)));
        assert!(a["c1"].partitions.contains(&TopicPartition::new("t", 0)));
        assert!(a["c2"].partitions.contains(&TopicPartition::new("t", 2)));
    }

    #[test]
    fn sticky_user_data_round_trips_and_garbage_is_empty() {
        let ps = tps(&[("a", 1), ("b", 0), ("a", 0)]);
        let d = decode_sticky_user_data(&encode_sticky_user_data(&ps, Some(7)));
        let mut got = d.partitions.clone();
        got.sort();
        assert_eq!(got, tps(&[("a", 0), ("a", 1), ("b", 0)]));
        assert_eq!(d.generation, Some(7));
        assert!(
            decode_sticky_user_data(b"\x7f\xff\xff\xff")
                .partitions
                .is_empty()
        );
    }

    #[test]
    fn randomized_inputs_stay_complete_and_balanced() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rnd = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        for _ in 0..200 {
            let topics: Vec<String> = (0..1 + rnd(4)).map(|i| format!("t{i}")).collect();
            let p: BTreeMap<String, i32> = topics
                .iter()
                .map(|t| (t.clone(), 1 + rnd(7) as i32))
                .collect();
            let n = 1 + rnd(5);
            let ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let m: BTreeMap<String, GroupMember> = ids
                .iter()
                .map(|id| member(id, &topics.iter().map(String::as_str).collect::<Vec<_>>()))
                .collect();
            let a = StickyAssignor::default().assign(&p, &m);
            check_balanced_and_complete(&a, &p);
            // Reassign with everyone claiming what they got, one member gone.
            let mut m2 = m.clone();
            m2.remove(&ids[0]);
            for (id, mm) in m2.iter_mut() {
                mm.subscription.owned_partitions = a[id].partitions.clone();
                mm.subscription.generation_id = 1;
            }
            let b = CooperativeStickyAssignor::default().assign(&p, &m2);
            for (id, list) in &b {
                for tp in &list.partitions {
                    // Never handed over while someone else still owns it.
                    let owner = m2
                        .iter()
                        .find(|(_, mm)| mm.subscription.owned_partitions.contains(tp));
                    assert!(
                        owner.is_none_or(|(o, _)| o == id),
                        "{tp} given to {id} while owned"
                    );
                }
            }
        }
    }
}
