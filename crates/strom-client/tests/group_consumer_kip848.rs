//! The group consumer with `group.protocol=consumer` (KIP-848) against an in-process broker:
//! members share partitions with each server-side assignor, a leaving member's partitions are
//! taken over, commits carry the member epoch and resume in a new consumer, a member that
//! stops heartbeating is fenced, a fenced member loses its partitions and rejoins, pattern
//! subscriptions are resolved by the broker, and the listener sees incremental revocations.

use std::time::Duration;

use strom_client::{Admin, AutoOffsetReset, ClientConfig, Consumer, GroupProtocol, TopicPartition};
use strom_protocol::StrBytes;
use strom_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
};
use strom_test_support::{RawConnection, TestBroker};
use tokio::time::Instant;

mod common;
use common::{
    Member, Recorder, assert_shared_exactly_once, covers, create, poll_n, produce, wait_for,
};

/// Fast heartbeats and a short session, so that fencing is quick.
const FAST_GROUPS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.consumer.heartbeat.interval.ms", "200"),
    ("group.consumer.session.timeout.ms", "2000"),
    ("group.consumer.min.session.timeout.ms", "1000"),
];

async fn setup(topics: &[(&str, i32)]) -> (TestBroker, Admin) {
    let broker = TestBroker::start_with(FAST_GROUPS).await;
    let admin = Admin::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    create(&admin, topics).await;
    (broker, admin)
}

fn config(broker: &TestBroker, group: &str) -> ClientConfig {
    ClientConfig::new(broker.bootstrap_servers())
        .with_group_id(group)
        .with_group_protocol(GroupProtocol::Consumer)
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_default_api_timeout(Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kip848_members_share_partitions_with_each_server_assignor() {
    let (broker, admin) = setup(&[]).await;
    for (i, assignor) in [None, Some("uniform"), Some("range")].iter().enumerate() {
        for n in [2usize, 3] {
            let topic = format!("share-{i}-{n}");
            create(&admin, &[(&topic, 6)]).await;
            let group = format!("g-{i}-{n}");
            let mut members = Vec::new();
            for _ in 0..n {
                let mut c = config(&broker, &group);
                if let Some(a) = assignor {
                    c = c.with_group_remote_assignor(*a);
                }
                let mut c = Consumer::connect(c).await.unwrap();
                c.subscribe([topic.clone()]).unwrap();
                members.push(Member::spawn(c));
            }
            assert_shared_exactly_once(&broker, members, &topic, &format!("{assignor:?} x{n}"))
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kip848_listener_sees_incremental_revocations_and_takeover_on_leave() {
    let (broker, _admin) = setup(&[("inc", 4)]).await;
    let first_events = Recorder::default();
    let mut first = Consumer::connect(config(&broker, "g-inc")).await.unwrap();
    first
        .subscribe_with_listener(["inc"], Box::new(first_events.clone()))
        .unwrap();
    let first = Member::spawn(first);
    wait_for("the first member owns all", || first.owned().len() == 4).await;
    let second_events = Recorder::default();
    let mut second = Consumer::connect(config(&broker, "g-inc")).await.unwrap();
    second
        .subscribe_with_listener(["inc"], Box::new(second_events.clone()))
        .unwrap();
    let mut members = vec![first, Member::spawn(second)];
    wait_for("two members", || covers(&members, "inc", 4)).await;
    {
        let events = first_events.0.lock().unwrap();
        let revoked: Vec<&Vec<TopicPartition>> = events
            .iter()
            .filter(|(k, _)| *k == "revoked")
            .map(|(_, p)| p)
            .collect();
        assert!(!revoked.is_empty(), "{events:?}");
        // Only the partitions that moved, never the whole assignment.
        assert!(revoked.iter().all(|p| p.len() < 4), "{events:?}");
        assert_eq!(revoked.iter().map(|p| p.len()).sum::<usize>(), 2);
        assert!(events.iter().all(|(k, _)| *k != "lost"), "{events:?}");
    }
    assert!(
        second_events
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|(k, _)| *k == "assigned")
    );
    // The first member leaves (epoch -1): the second takes its partitions over.
    let (c, _) = members.remove(0).stop().await;
    c.close().await.unwrap();
    wait_for("takeover", || covers(&members, "inc", 4)).await;
    produce(&broker, "inc", 40, "x").await;
    wait_for("records after takeover", || members[0].read() >= 40).await;
    assert!(
        second_events
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|(k, _)| *k == "assigned")
    );
    let (c, _) = members.remove(0).stop().await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_committed_offsets_resume_in_a_new_consumer() {
    let (broker, _admin) = setup(&[("resume", 2)]).await;
    produce(&broker, "resume", 20, "a").await;
    let mut first = Consumer::connect(config(&broker, "g-resume").with_enable_auto_commit(false))
        .await
        .unwrap();
    first.subscribe(["resume"]).unwrap();
    assert_eq!(poll_n(&mut first, 20).await.len(), 20);
    let (epoch, member) = first.group_metadata().expect("joined");
    assert!(epoch > 0 && !member.is_empty(), "{epoch} {member}");
    first.commit_sync().await.unwrap();
    let tps = [
        TopicPartition::new("resume", 0),
        TopicPartition::new("resume", 1),
    ];
    let committed = first.committed(&tps).await.unwrap();
    let total: i64 = committed.values().map(|o| o.as_ref().unwrap().offset).sum();
    assert_eq!(total, 20);
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
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kip848_member_that_stops_heartbeating_is_fenced() {
    let (broker, _admin) = setup(&[("silent", 4)]).await;
    let mut members = Vec::new();
    for _ in 0..2 {
        let mut c = Consumer::connect(config(&broker, "g-silent"))
            .await
            .unwrap();
        c.subscribe(["silent"]).unwrap();
        members.push(Member::spawn(c));
    }
    wait_for("two members", || covers(&members, "silent", 4)).await;
    // Dropped without close: no leave, no more heartbeats; the session (2 s) expires.
    let (c, _) = members.remove(0).stop().await;
    drop(c);
    let started = Instant::now();
    wait_for("takeover after the session timeout", || {
        covers(&members, "silent", 4)
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let (c, _) = members.remove(0).stop().await;
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_fenced_member_loses_its_partitions_and_rejoins() {
    let (broker, _admin) = setup(&[("fenced", 2)]).await;
    produce(&broker, "fenced", 4, "a").await;
    let events = Recorder::default();
    let mut consumer = Consumer::connect(config(&broker, "g-fenced"))
        .await
        .unwrap();
    consumer
        .subscribe_with_listener(["fenced"], Box::new(events.clone()))
        .unwrap();
    poll_n(&mut consumer, 4).await;
    // Committed, so that the rejoined member starts after them: what was read but not
    // committed when partitions are lost is read again (at least once, as in Kafka).
    consumer.commit_sync().await.unwrap();
    let (epoch, member_id) = consumer.group_metadata().unwrap();
    // Someone else removes the member (as an expired session would): its next heartbeat is
    // answered UNKNOWN_MEMBER_ID.
    let mut raw = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let leave = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g-fenced")))
        .with_member_id(StrBytes::from_string(member_id.clone()))
        .with_member_epoch(-1);
    let answer: ConsumerGroupHeartbeatResponse = raw
        .call(ApiKey::ConsumerGroupHeartbeat, 1, &leave)
        .await
        .unwrap();
    assert_eq!(answer.error_code, 0);
    wait_for_lost_and_back(&mut consumer, &events).await;
    let (new_epoch, same_id) = consumer.group_metadata().unwrap();
    assert_eq!(same_id, member_id, "the member id is kept (KIP-1082)");
    assert!(new_epoch > epoch);
    produce(&broker, "fenced", 2, "b").await;
    let got = poll_n(&mut consumer, 2).await;
    assert!(
        got.iter()
            .all(|r| r.value.as_deref().unwrap().starts_with(b"b-"))
    );
    consumer.close().await.unwrap();
}

async fn wait_for_lost_and_back(consumer: &mut Consumer, events: &Recorder) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        consumer.poll(Duration::from_millis(100)).await.unwrap();
        let e = events.0.lock().unwrap().clone();
        let lost_at = e.iter().position(|(k, _)| *k == "lost");
        if let Some(i) = lost_at {
            assert_eq!(e[i].1.len(), 2, "{e:?}");
            let back: usize = e[i + 1..]
                .iter()
                .filter(|(k, _)| *k == "assigned")
                .map(|(_, p)| p.len())
                .sum();
            if back == 2 && consumer.assignment().len() == 2 {
                assert!(e.iter().all(|(k, _)| *k != "revoked"), "{e:?}");
                return;
            }
        }
        assert!(Instant::now() < deadline, "not fenced and back: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_pattern_subscription_picks_up_a_new_topic() {
    let (broker, admin) = setup(&[("pat-one", 1), ("other", 1)]).await;
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
    create(&admin, &[("pat-two", 2)]).await;
    produce(&broker, "pat-two", 3, "two").await;
    let got = poll_n(&mut consumer, 3).await;
    assert!(got.iter().all(|r| r.topic == "pat-two"));
    assert_eq!(consumer.assignment().len(), 3);
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn kip848_refuses_classic_settings() {
    let broker = TestBroker::start().await;
    let err = Consumer::connect(config(&broker, "g").with_session_timeout(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("session.timeout.ms cannot be set when group.protocol=CONSUMER"),
        "{err}"
    );
}
