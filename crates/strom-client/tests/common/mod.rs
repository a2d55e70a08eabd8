//! What the group consumer tests share: topics and records on an in-process broker, a
//! consumer polling on its own task, a listener that records its calls, and waiting.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerRebalanceListener, ConsumerRecord, ErrorCode, NewTopic,
    Producer, ProducerRecord, TopicPartition,
};
use strom_test_support::TestBroker;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A broker with `overrides`, an admin client on it (20 s API timeout) and `topics` created.
pub(crate) async fn setup(
    overrides: &[(&str, &str)],
    topics: &[(&str, i32)],
) -> (TestBroker, Admin) {
    let broker = TestBroker::start_with(overrides).await;
    let config = ClientConfig::new(broker.bootstrap_servers())
        .with_default_api_timeout(Duration::from_secs(20));
    let admin = Admin::connect(config).await.expect("admin connects");
    create(&admin, topics).await;
    (broker, admin)
}

/// The Kafka error code of a failed result.
pub(crate) fn code<T: std::fmt::Debug>(result: &strom_client::Result<T>) -> Option<ErrorCode> {
    result.as_ref().err().and_then(|e| e.code())
}

pub(crate) async fn create(admin: &Admin, topics: &[(&str, i32)]) {
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(n, p)| NewTopic::new(*n).with_partitions(*p))
        .collect();
    for created in admin.create_topics(&new, Default::default()).await.unwrap() {
        created.result.expect("topic created");
    }
}

pub(crate) async fn produce(broker: &TestBroker, topic: &str, n: usize, tag: &str) {
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let futures: Vec<_> = (0..n)
        .map(|i| {
            producer
                .send(ProducerRecord::new(topic, format!("{tag}-{i}")).with_key(format!("k{i}")))
        })
        .collect();
    for f in futures {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
}

/// Listener events, as (kind, partitions).
pub(crate) type Events = Arc<Mutex<Vec<(&'static str, Vec<TopicPartition>)>>>;

#[derive(Clone, Default)]
pub(crate) struct Recorder(pub(crate) Events);

impl ConsumerRebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("revoked", p.to_vec()));
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("assigned", p.to_vec()));
    }
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("lost", p.to_vec()));
    }
}

/// A consumer polling on its own task, exposing what it read and owns.
pub(crate) struct Member {
    records: Arc<Mutex<Vec<ConsumerRecord>>>,
    assignment: Arc<Mutex<Vec<TopicPartition>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Consumer>,
}

impl Member {
    pub(crate) fn spawn(mut consumer: Consumer) -> Member {
        let records = Arc::new(Mutex::new(Vec::new()));
        let assignment = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, a, s) = (records.clone(), assignment.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let got = consumer.poll(Duration::from_millis(100)).await.unwrap();
                r.lock().unwrap().extend(got);
                *a.lock().unwrap() = consumer.assignment();
            }
            consumer
        });
        Member {
            records,
            assignment,
            stop,
            task,
        }
    }

    pub(crate) fn owned(&self) -> Vec<TopicPartition> {
        let mut v = self.assignment.lock().unwrap().clone();
        v.sort();
        v
    }

    pub(crate) fn read(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    pub(crate) async fn stop(self) -> (Consumer, Vec<ConsumerRecord>) {
        self.stop.store(true, Ordering::SeqCst);
        let consumer = self.task.await.unwrap();
        let records = self.records.lock().unwrap().clone();
        (consumer, records)
    }
}

pub(crate) async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when the members own all `partitions` of `topic`, none twice.
pub(crate) fn covers(members: &[Member], topic: &str, partitions: i32) -> bool {
    let mut seen = BTreeSet::new();
    for m in members {
        for tp in m.owned() {
            if !seen.insert(tp) {
                return false;
            }
        }
    }
    seen == (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect()
        && members.iter().all(|m| !m.owned().is_empty())
}

pub(crate) async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

/// The sharing check of every assignor: once `members` (subscribed to `topic`, 6 partitions)
/// own all partitions, 300 records are each read exactly once and no partition is owned
/// twice; then the members are stopped and closed. `label` names the case in failures.
pub(crate) async fn assert_shared_exactly_once(
    broker: &TestBroker,
    members: Vec<Member>,
    topic: &str,
    label: &str,
) {
    wait_for(&format!("{label} to settle"), || covers(&members, topic, 6)).await;
    produce(broker, topic, 300, "r").await;
    wait_for("all records", || {
        members.iter().map(Member::read).sum::<usize>() >= 300
    })
    .await;
    // Let any duplicate show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        covers(&members, topic, 6),
        "{label}: overlapping assignment"
    );
    // Every member stops polling before any leaves: a leave rebalances the group, and a
    // member still polling could take over a partition whose last commit lost that race (as
    // with Java's clients) and read records again.
    let mut values = std::collections::BTreeMap::new();
    let mut consumers = Vec::new();
    for m in members {
        let (c, records) = m.stop().await;
        for r in records {
            *values.entry((r.partition, r.offset)).or_insert(0) += 1;
        }
        consumers.push(c);
    }
    for c in consumers {
        c.close().await.unwrap();
    }
    assert_eq!(values.len(), 300, "{label}");
    assert!(
        values.values().all(|&c| c == 1),
        "{label}: a record was read twice"
    );
}

/// After a rebalance that left `consumer` some of its paused partitions: those it kept are
/// still paused at their old `positions`; new records wait in the log until `resume`, then
/// come from there (nothing older is read again). Returns the kept partitions.
pub(crate) async fn assert_kept_partitions_stay_paused(
    broker: &TestBroker,
    consumer: &mut Consumer,
    topic: &str,
    positions: &BTreeMap<TopicPartition, i64>,
) -> Vec<TopicPartition> {
    let mut kept = consumer.assignment();
    kept.sort();
    let mut paused = consumer.paused();
    paused.sort();
    assert_eq!(paused, kept, "the kept partitions are still paused");
    for tp in &kept {
        assert_eq!(consumer.position(tp).await.unwrap(), positions[tp], "{tp}");
    }
    produce(broker, topic, 40, "b").await;
    let got = consumer.poll(Duration::from_millis(500)).await.unwrap();
    assert!(got.is_empty(), "a paused partition returned records");
    consumer.resume(&kept).unwrap();
    let ends = consumer.end_offsets(&kept).await.unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut done = true;
        for tp in &kept {
            done &= consumer.position(tp).await.unwrap() >= ends[tp];
        }
        if done {
            break;
        }
        read.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
        assert!(
            Instant::now() < deadline,
            "the resumed partitions were not read"
        );
    }
    assert!(
        read.iter()
            .all(|r| r.value.as_deref().unwrap().starts_with(b"b-")),
        "read again from before the kept position"
    );
    kept
}

/// Static members `a` and `b` (`group.instance.id`) of `config`'s group, subscribed to
/// `topic` (4 partitions) and sharing it; `b` records its rebalance listener calls.
pub(crate) async fn static_pair(config: ClientConfig, topic: &str) -> (Vec<Member>, Recorder) {
    let events_b = Recorder::default();
    let mut a = Consumer::connect(config.clone().with_group_instance_id("a"))
        .await
        .unwrap();
    a.subscribe([topic]).unwrap();
    let mut b = Consumer::connect(config.with_group_instance_id("b"))
        .await
        .unwrap();
    b.subscribe_with_listener([topic], Box::new(events_b.clone()))
        .unwrap();
    let members = vec![Member::spawn(a), Member::spawn(b)];
    wait_for("two static members", || covers(&members, topic, 4)).await;
    (members, events_b)
}
