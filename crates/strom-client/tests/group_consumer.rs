//! The group-managed consumer against an in-process broker: members sharing partitions with
//! each assignor, takeover when a member leaves, commits and resuming from them, auto-commit,
//! cooperative rebalances, paused partitions across rebalances, static membership and pattern
//! subscriptions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::{
    AutoOffsetReset, ClientConfig, Consumer, ConsumerInterceptor, OffsetAndMetadata, TopicPartition,
};
use strom_test_support::TestBroker;
use tokio::time::Instant;

mod common;
use common::{
    Member, Recorder, assert_kept_partitions_stay_paused, assert_shared_exactly_once, covers,
    create, poll_n, produce, setup, static_pair, wait_for,
};

const FAST_GROUPS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn config(broker: &TestBroker, group: &str) -> ClientConfig {
    ClientConfig::new(broker.bootstrap_servers())
        .with_group_id(group)
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_session_timeout(Duration::from_secs(10))
        .with_heartbeat_interval(Duration::from_millis(200))
        .with_default_api_timeout(Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_share_partitions_with_each_assignor() {
    let (broker, admin) = setup(FAST_GROUPS, &[]).await;
    for (i, assignor) in ["range", "roundrobin", "sticky", "cooperative-sticky"]
        .iter()
        .enumerate()
    {
        for n in [2usize, 3] {
            let topic = format!("share-{i}-{n}");
            create(&admin, &[(&topic, 6)]).await;
            let group = format!("g-{assignor}-{n}");
            let mut members = Vec::new();
            for _ in 0..n {
                let mut c = Consumer::connect(
                    config(&broker, &group).with_partition_assignment_strategy([*assignor]),
                )
                .await
                .unwrap();
                c.subscribe([topic.clone()]).unwrap();
                members.push(Member::spawn(c));
            }
            assert_shared_exactly_once(&broker, members, &topic, &format!("{assignor} x{n}")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leaving_member_hands_its_partitions_over() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("leave", 4)]).await;
    let mut members = Vec::new();
    for _ in 0..2 {
        let mut c = Consumer::connect(config(&broker, "g-leave")).await.unwrap();
        c.subscribe(["leave"]).unwrap();
        members.push(Member::spawn(c));
    }
    wait_for("two members", || covers(&members, "leave", 4)).await;
    let leaving = members.remove(0);
    let (c, _) = leaving.stop().await;
    c.close().await.unwrap();
    wait_for("takeover", || covers(&members, "leave", 4)).await;
    produce(&broker, "leave", 40, "x").await;
    wait_for("records after takeover", || members[0].read() >= 40).await;
    let (c, _) = members.remove(0).stop().await;
    c.close().await.unwrap();
}

#[derive(Default)]
struct CommitCounter(Mutex<Vec<BTreeMap<TopicPartition, OffsetAndMetadata>>>);

impl ConsumerInterceptor for CommitCounter {
    fn on_commit(&self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) {
        self.0.lock().unwrap().push(offsets.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_resume_in_a_new_consumer() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("resume", 2)]).await;
    produce(&broker, "resume", 20, "a").await;
    let counter = Arc::new(CommitCounter::default());
    let mut first = Consumer::connect_with_interceptors(
        config(&broker, "g-resume").with_enable_auto_commit(false),
        vec![counter.clone()],
    )
    .await
    .unwrap();
    first.subscribe(["resume"]).unwrap();
    assert_eq!(poll_n(&mut first, 20).await.len(), 20);
    first.commit_sync().await.unwrap();
    assert_eq!(counter.0.lock().unwrap().len(), 1, "on_commit ran once");
    let tps = [
        TopicPartition::new("resume", 0),
        TopicPartition::new("resume", 1),
    ];
    let committed = first.committed(&tps).await.unwrap();
    let total: i64 = committed.values().map(|o| o.as_ref().unwrap().offset).sum();
    assert_eq!(total, 20);
    // An explicit commit of an older offset, asynchronously, with a callback.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let offsets: BTreeMap<_, _> = [(tps[0].clone(), OffsetAndMetadata::new(0))].into();
    let back = committed[&tps[0]].clone().unwrap();
    first
        .commit_async_offsets(
            offsets,
            Some(Box::new(move |_, result| {
                let _ = tx.send(result.is_ok());
            })),
        )
        .unwrap();
    assert!(rx.await.unwrap());
    first
        .commit_sync_offsets([(tps[0].clone(), back)].into())
        .await
        .unwrap();
    first.close().await.unwrap();

    produce(&broker, "resume", 5, "b").await;
    let mut second = Consumer::connect(config(&broker, "g-resume").with_enable_auto_commit(false))
        .await
        .unwrap();
    second.subscribe(["resume"]).unwrap();
    let records = poll_n(&mut second, 5).await;
    assert!(
        records
            .iter()
            .all(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"b-"))),
        "resumed at the committed offsets"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        second
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_commits_what_poll_returned() {
    let (broker, admin) = setup(FAST_GROUPS, &[("auto", 1)]).await;
    produce(&broker, "auto", 10, "a").await;
    let mut consumer = Consumer::connect(
        config(&broker, "g-auto").with_auto_commit_interval(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    consumer.subscribe(["auto"]).unwrap();
    poll_n(&mut consumer, 10).await;
    let tp = TopicPartition::new("auto", 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
        let found = admin
            .list_consumer_group_offsets("g-auto", Some(std::slice::from_ref(&tp)))
            .await
            .unwrap();
        if found.get(&tp).cloned().flatten().map(|o| o.offset) == Some(10) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "auto-commit never reached offset 10"
        );
    }
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cooperative_rebalance_revokes_only_moved_partitions() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("coop", 4)]).await;
    let events_a = Recorder::default();
    let mut a = Consumer::connect(
        config(&broker, "g-coop").with_partition_assignment_strategy(["cooperative-sticky"]),
    )
    .await
    .unwrap();
    a.subscribe_with_listener(["coop"], Box::new(events_a.clone()))
        .unwrap();
    let mut members = vec![Member::spawn(a)];
    wait_for("a owns all", || members[0].owned().len() == 4).await;
    let before = members[0].owned();
    let mut b = Consumer::connect(
        config(&broker, "g-coop").with_partition_assignment_strategy(["cooperative-sticky"]),
    )
    .await
    .unwrap();
    b.subscribe(["coop"]).unwrap();
    members.push(Member::spawn(b));
    wait_for("two members", || covers(&members, "coop", 4)).await;
    let after = members[0].owned();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|tp| before.contains(tp)),
        "a kept what it keeps"
    );
    let events = events_a.0.lock().unwrap().clone();
    let revoked: Vec<TopicPartition> = events
        .iter()
        .filter(|(k, _)| *k == "revoked")
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(revoked.len(), 2, "only the moved partitions: {events:?}");
    assert!(revoked.iter().all(|tp| !after.contains(tp)));
    for m in members {
        let (c, _) = m.stop().await;
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_member_rejoins_without_rebalance() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("static", 4)]).await;
    let (mut members, events_b) = static_pair(config(&broker, "g-static"), "static").await;
    let a_owned = members[0].owned();
    let b_events = events_b.0.lock().unwrap().len();
    // "a" goes away without leaving (a restart) and comes back under the same instance id.
    let (old_a, _) = members.remove(0).stop().await;
    drop(old_a);
    let mut a2 = Consumer::connect(config(&broker, "g-static").with_group_instance_id("a"))
        .await
        .unwrap();
    a2.subscribe(["static"]).unwrap();
    members.insert(0, Member::spawn(a2));
    wait_for("a back", || covers(&members, "static", 4)).await;
    assert_eq!(
        members[0].owned(),
        a_owned,
        "same partitions as before the restart"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // (One lock: a second one in the failure message would deadlock on the first.)
    let seen = events_b.0.lock().unwrap().clone();
    assert_eq!(seen.len(), b_events, "b saw a rebalance: {seen:?}");
    for m in members {
        let (c, _) = m.stop().await;
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscription_picks_up_a_new_topic() {
    let (broker, admin) = setup(FAST_GROUPS, &[("pat-one", 1), ("other", 1)]).await;
    let mut consumer = Consumer::connect(
        config(&broker, "g-pattern").with_metadata_max_age(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    consumer.subscribe_pattern("pat-.*").unwrap();
    produce(&broker, "pat-one", 1, "one").await;
    produce(&broker, "other", 1, "other").await;
    let got = poll_n(&mut consumer, 1).await;
    assert_eq!(got[0].topic, "pat-one");
    assert_eq!(
        consumer.subscription(),
        BTreeSet::from(["pat-one".to_string()])
    );
    create(&admin, &[("pat-two", 2)]).await;
    produce(&broker, "pat-two", 3, "two").await;
    let got = poll_n(&mut consumer, 3).await;
    assert!(got.iter().all(|r| r.topic == "pat-two"));
    assert_eq!(consumer.assignment().len(), 3);
    consumer.close().await.unwrap();
}

/// `first` (alone in `g-pause-<assignor>`, owning the 4 partitions of `topic`) reads what is
/// there, pauses everything, and polls until a second member took half; returns the
/// partitions it kept with their positions from before the rebalance, and the second member.
async fn pause_all_then_rebalance(
    broker: &TestBroker,
    assignor: &str,
    topic: &str,
) -> (
    Consumer,
    Vec<TopicPartition>,
    BTreeMap<TopicPartition, i64>,
    Member,
) {
    let group_config = || {
        config(broker, &format!("g-pause-{assignor}"))
            .with_partition_assignment_strategy([assignor])
            .with_enable_auto_commit(false)
    };
    produce(broker, topic, 40, "a").await;
    let mut first = Consumer::connect(group_config()).await.unwrap();
    first.subscribe([topic]).unwrap();
    poll_n(&mut first, 40).await;
    let owned = first.assignment();
    assert_eq!(owned.len(), 4);
    let mut positions = BTreeMap::new();
    for tp in &owned {
        positions.insert(tp.clone(), first.position(tp).await.unwrap());
    }
    first.pause(&owned).unwrap();
    let mut second = Consumer::connect(group_config()).await.unwrap();
    second.subscribe([topic]).unwrap();
    let second = Member::spawn(second);
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.assignment().len() != 2 || second.owned().len() != 2 {
        let got = first.poll(Duration::from_millis(100)).await.unwrap();
        if assignor == "cooperative-sticky" {
            assert!(got.is_empty(), "a paused partition returned records");
        }
        assert!(
            Instant::now() < deadline,
            "the second member never got its share"
        );
    }
    let mut kept = first.assignment();
    kept.sort();
    (first, kept, positions, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_kept_through_a_cooperative_rebalance_stay_paused() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("pause-coop", 4)]).await;
    let (mut first, kept, positions, second) =
        pause_all_then_rebalance(&broker, "cooperative-sticky", "pause-coop").await;
    let still =
        assert_kept_partitions_stay_paused(&broker, &mut first, "pause-coop", &positions).await;
    assert_eq!(still, kept);
    let (second, _) = second.stop().await;
    second.close().await.unwrap();
    first.close().await.unwrap();
}

/// An eager rebalance revokes everything before rejoining, so the pause goes with it (as in
/// Java, where `onJoinPrepare` empties the assignment).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_eager_rebalance_forgets_paused_partitions() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("pause-eager", 4)]).await;
    let (first, kept, _, second) = pause_all_then_rebalance(&broker, "range", "pause-eager").await;
    assert_eq!(kept.len(), 2);
    assert!(first.paused().is_empty(), "{:?}", first.paused());
    let (second, _) = second.stop().await;
    second.close().await.unwrap();
    first.close().await.unwrap();
}
