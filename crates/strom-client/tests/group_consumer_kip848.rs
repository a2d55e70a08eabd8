//! The group consumer with `group.protocol=consumer` (KIP-848) against an in-process broker:
//! members share partitions with each server-side assignor, a leaving member's partitions are
//! taken over, commits carry the member epoch and resume in a new consumer, a member that
//! stops heartbeating is fenced, a fenced member loses its partitions and rejoins, pattern
//! subscriptions are resolved by the broker, the listener sees incremental revocations,
//! partitions kept through a reconciliation stay paused, and a static member that closes and
//! comes back gets its partitions back. Against a scripted coordinator: the auto-commit
//! before a revocation is retried with the new member epoch after STALE_MEMBER_EPOCH, a
//! `commit_sync` is not.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::{
    Admin, AutoOffsetReset, ClientConfig, Consumer, ErrorCode, GroupProtocol, OffsetAndMetadata,
    TopicPartition,
};
use strom_protocol::StrBytes;
use strom_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
};
use strom_test_support::{RawConnection, TestBroker};
use tokio::time::Instant;

mod common;
use common::{
    Member, Recorder, assert_kept_partitions_stay_paused, assert_shared_exactly_once, covers,
    create, poll_n, produce, setup, static_pair, wait_for,
};

/// Fast heartbeats and a short session, so that fencing is quick.
const FAST_GROUPS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.consumer.heartbeat.interval.ms", "200"),
    ("group.consumer.session.timeout.ms", "2000"),
    ("group.consumer.min.session.timeout.ms", "1000"),
];

fn config(broker: &TestBroker, group: &str) -> ClientConfig {
    ClientConfig::new(broker.bootstrap_servers())
        .with_group_id(group)
        .with_group_protocol(GroupProtocol::Consumer)
        .with_auto_offset_reset(AutoOffsetReset::Earliest)
        .with_default_api_timeout(Duration::from_secs(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kip848_members_share_partitions_with_each_server_assignor() {
    let (broker, admin) = setup(FAST_GROUPS, &[]).await;
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
    let (broker, _admin) = setup(FAST_GROUPS, &[("inc", 4)]).await;
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
    let (broker, _admin) = setup(FAST_GROUPS, &[("resume", 2)]).await;
    produce(&broker, "resume", 20, "a").await;
    let mut first = Consumer::connect(config(&broker, "g-resume").with_enable_auto_commit(false))
        .await
        .unwrap();
    first.subscribe(["resume"]).unwrap();
    assert_eq!(poll_n(&mut first, 20).await.len(), 20);
    let joined = first.group_metadata().expect("joined");
    let (epoch, member) = (joined.generation_id, joined.member_id);
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
    let (broker, _admin) = setup(FAST_GROUPS, &[("silent", 4)]).await;
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
    let (broker, _admin) = setup(FAST_GROUPS, &[("fenced", 2)]).await;
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
    let joined = consumer.group_metadata().unwrap();
    let (epoch, member_id) = (joined.generation_id, joined.member_id);
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
    let rejoined = consumer.group_metadata().unwrap();
    let (new_epoch, same_id) = (rejoined.generation_id, rejoined.member_id);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kip848_partitions_kept_through_a_reconciliation_stay_paused() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("pause", 4)]).await;
    produce(&broker, "pause", 40, "a").await;
    let group_config = || config(&broker, "g-pause").with_enable_auto_commit(false);
    let mut first = Consumer::connect(group_config()).await.unwrap();
    first.subscribe(["pause"]).unwrap();
    poll_n(&mut first, 40).await;
    let owned = first.assignment();
    assert_eq!(owned.len(), 4);
    let mut positions = BTreeMap::new();
    for tp in &owned {
        positions.insert(tp.clone(), first.position(tp).await.unwrap());
    }
    first.pause(&owned).unwrap();

    // A second member joins: the first revokes two partitions and keeps two.
    let mut second = Consumer::connect(group_config()).await.unwrap();
    second.subscribe(["pause"]).unwrap();
    let second = Member::spawn(second);
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.assignment().len() != 2 || second.owned().len() != 2 {
        let got = first.poll(Duration::from_millis(100)).await.unwrap();
        assert!(got.is_empty(), "a paused partition returned records");
        assert!(
            Instant::now() < deadline,
            "the second member never got its share"
        );
    }
    assert_kept_partitions_stay_paused(&broker, &mut first, "pause", &positions).await;
    let (second, _) = second.stop().await;
    second.close().await.unwrap();
    first.close().await.unwrap();
}

/// A static member that closes (leaving with epoch -2) and comes back with the same
/// `group.instance.id` within the session timeout gets its partitions back; the other member
/// is not given them meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kip848_static_member_gets_its_partitions_back_after_a_restart() {
    // A session long enough that the restart below always fits in it.
    let broker = TestBroker::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.heartbeat.interval.ms", "200"),
        ("group.consumer.session.timeout.ms", "20000"),
        ("group.consumer.min.session.timeout.ms", "1000"),
    ])
    .await;
    let admin = Admin::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    create(&admin, &[("static", 4)]).await;
    let (mut members, events_b) = static_pair(config(&broker, "g-static"), "static").await;
    let a_owned = members[0].owned();
    let b_owned = members[1].owned();
    let b_events = events_b.0.lock().unwrap().len();

    // "a" closes (a static member leaves with epoch -2: its partitions wait for it) and
    // comes back under the same instance id.
    let (old_a, _) = members.remove(0).stop().await;
    old_a.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(members[0].owned(), b_owned, "b took partitions of a");
    let mut a2 = Consumer::connect(config(&broker, "g-static").with_group_instance_id("a"))
        .await
        .unwrap();
    a2.subscribe(["static"]).unwrap();
    members.insert(0, Member::spawn(a2));
    wait_for("a back", || covers(&members, "static", 4)).await;
    assert_eq!(members[0].owned(), a_owned, "same partitions as before");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(members[1].owned(), b_owned);
    // (One lock: a second one in the failure message would deadlock on the first.)
    let seen = events_b.0.lock().unwrap().clone();
    assert_eq!(seen.len(), b_events, "b saw a rebalance: {seen:?}");
    for m in members {
        let (c, _) = m.stop().await;
        c.close().await.unwrap();
    }
}

/// A coordinator (and leader of one topic, `scripted`, two partitions) that plays one member
/// through a reconciliation in which the member epoch moves on between the heartbeat that
/// asks for a revocation and the commit before it:
///
/// ```text
///  heartbeat epoch 0      ──> epoch 1, assignment {0, 1}
///  heartbeat owning {0,1} ──> epoch 1, assignment {0}        (revoke 1)
///  OffsetCommit epoch 1   ──> STALE_MEMBER_EPOCH; the epoch becomes 2
///  heartbeats             ──> epoch 2
///  OffsetCommit epoch 2   ──> ok
/// ```
///
/// Later commits are answered by the epoch, or STALE_MEMBER_EPOCH when `stale_next` is set.
mod coordinator {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::sync::Mutex;

    use strom_protocol::messages::consumer_group_heartbeat_response::{
        Assignment, TopicPartitions,
    };
    use strom_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use strom_protocol::messages::metadata_response::{
        MetadataResponsePartition, MetadataResponseTopic,
    };
    use strom_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use strom_protocol::messages::offset_fetch_response::{
        OffsetFetchResponsePartition, OffsetFetchResponseTopic,
    };
    use strom_protocol::messages::*;
    use strom_protocol::{ErrorCode, StrBytes};
    use strom_test_support::scripted::{self, coordinators_here, metadata_here};
    use uuid::Uuid;

    pub(super) const TOPIC: &str = "scripted";
    const TOPIC_ID: Uuid = Uuid::from_u128(0x5c21_97ed);

    const APIS: &[(ApiKey, i16)] = &[
        (ApiKey::ApiVersions, 3),
        (ApiKey::Metadata, 12),
        (ApiKey::FindCoordinator, 4),
        (ApiKey::ConsumerGroupHeartbeat, 1),
        (ApiKey::OffsetCommit, 9),
        (ApiKey::OffsetFetch, 7),
        (ApiKey::Fetch, 12),
    ];

    #[derive(Debug, Default)]
    pub(super) struct State {
        /// The member epoch as the coordinator knows it.
        epoch: i32,
        /// The revocation of partition 1 was asked for.
        revoking: bool,
        /// Every OffsetCommit: the member epoch it carried and the answer.
        pub(super) commits: Vec<(i32, Option<ErrorCode>)>,
        /// Answer the next commit STALE_MEMBER_EPOCH (and move the epoch on by one).
        pub(super) stale_next: bool,
    }

    pub(super) type Script = Arc<Mutex<State>>;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn assignment(partitions: &[i32]) -> Assignment {
        Assignment::default().with_topic_partitions(vec![
            TopicPartitions::default()
                .with_topic_id(TOPIC_ID)
                .with_partitions(partitions.to_vec()),
        ])
    }

    fn heartbeat(state: &mut State, r: ConsumerGroupHeartbeatRequest) -> ResponseKind {
        let mut response = ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(r.member_id.clone()))
            .with_heartbeat_interval_ms(50);
        let owned: BTreeSet<i32> = r
            .topic_partitions
            .iter()
            .flatten()
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        match r.member_epoch {
            0 => {
                state.epoch = 1;
                response.assignment = Some(assignment(&[0, 1]));
            }
            e if e < 0 => {
                response.member_epoch = e;
                return ResponseKind::ConsumerGroupHeartbeat(response);
            }
            _ if !state.revoking && owned == BTreeSet::from([0, 1]) => {
                state.revoking = true;
                response.assignment = Some(assignment(&[0]));
            }
            _ => {}
        }
        response.member_epoch = state.epoch;
        ResponseKind::ConsumerGroupHeartbeat(response)
    }

    fn commit(state: &mut State, r: OffsetCommitRequest) -> ResponseKind {
        let epoch = r.generation_id_or_member_epoch;
        let stale = epoch != state.epoch || state.stale_next || (state.revoking && epoch == 1);
        if stale && epoch == state.epoch {
            state.epoch += 1;
        }
        state.stale_next = false;
        let answer = stale.then_some(ErrorCode::StaleMemberEpoch);
        state.commits.push((epoch, answer));
        let code = answer.map_or(0, |c| c.code());
        ResponseKind::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .into_iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partitions
                                    .into_iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        )
    }

    fn answer(script: &Script, port: u16, body: RequestKind) -> ResponseKind {
        match body {
            RequestKind::Metadata(_) => {
                ResponseKind::Metadata(metadata_here(port).with_topics(vec![
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(s(TOPIC))))
                            .with_topic_id(TOPIC_ID)
                            .with_partitions(
                                (0..2)
                                    .map(|p| {
                                        MetadataResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_leader_id(BrokerId(1))
                                            .with_replica_nodes(vec![BrokerId(1)])
                                            .with_isr_nodes(vec![BrokerId(1)])
                                    })
                                    .collect(),
                            ),
                    ]))
            }
            RequestKind::FindCoordinator(r) => coordinators_here(port, r.coordinator_keys),
            RequestKind::ConsumerGroupHeartbeat(r) => heartbeat(&mut script.lock().unwrap(), r),
            RequestKind::OffsetCommit(r) => commit(&mut script.lock().unwrap(), r),
            // Nothing committed before: every partition starts at 0.
            RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(
                OffsetFetchResponse::default().with_topics(
                    r.topics
                        .into_iter()
                        .flatten()
                        .map(|t| {
                            OffsetFetchResponseTopic::default()
                                .with_name(t.name)
                                .with_partitions(
                                    t.partition_indexes
                                        .into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(0)
                                                .with_metadata(Some(s("")))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            ),
            // An empty log.
            RequestKind::Fetch(r) => ResponseKind::Fetch(
                FetchResponse::default().with_responses(
                    r.topics
                        .into_iter()
                        .map(|t| {
                            FetchableTopicResponse::default()
                                .with_topic(t.topic)
                                .with_partitions(
                                    t.partitions
                                        .into_iter()
                                        .map(|p| {
                                            PartitionData::default()
                                                .with_partition_index(p.partition)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            ),
            other => panic!("unscripted request {other:?}"),
        }
    }

    pub(super) async fn start() -> (String, Script) {
        let script = Script::default();
        let shared = script.clone();
        let addr = scripted::start(APIS, move |port, body| answer(&shared, port, body)).await;
        (addr, script)
    }
}

/// Java's `maybeAutoCommitSyncBeforeRevocation`: the auto-commit before a revocation that
/// meets STALE_MEMBER_EPOCH (the epoch moved on while the member reconciled) is sent again
/// with the epoch the next heartbeat brings, before the partition is revoked. A `commit_sync`
/// is not retried: it fails (Java's `CommitFailedException`) and the member stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_commit_before_revocation_retries_a_stale_member_epoch() {
    let (addr, script) = coordinator::start().await;
    let events = Recorder::default();
    let mut consumer = Consumer::connect(
        ClientConfig::new(&addr)
            .with_group_id("g-scripted")
            .with_group_protocol(GroupProtocol::Consumer)
            .with_auto_commit_interval(Duration::from_secs(600))
            .with_retry_backoff(Duration::from_millis(20), Duration::from_millis(100)),
    )
    .await
    .unwrap();
    consumer
        .subscribe_with_listener([coordinator::TOPIC], Box::new(events.clone()))
        .unwrap();
    let revoked = vec![TopicPartition::new(coordinator::TOPIC, 1)];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !events
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|(k, p)| *k == "revoked" && *p == revoked)
    {
        assert!(Instant::now() < deadline, "partition 1 never revoked");
        consumer.poll(Duration::from_millis(100)).await.unwrap();
    }
    // The commit came before the revocation: it is already in the log.
    let commits = script.lock().unwrap().commits.clone();
    assert_eq!(
        commits.first(),
        Some(&(1, Some(ErrorCode::StaleMemberEpoch))),
        "{commits:?}"
    );
    assert_eq!(commits.last(), Some(&(2, None)), "{commits:?}");
    assert!(
        commits[..commits.len() - 1]
            .iter()
            .all(|c| *c == (1, Some(ErrorCode::StaleMemberEpoch))),
        "{commits:?}"
    );

    // A commit_sync that meets a stale epoch fails at once and changes nothing else.
    let before = commits.len();
    script.lock().unwrap().stale_next = true;
    let err = consumer.commit_sync().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::StaleMemberEpoch), "{err}");
    assert_eq!(
        script.lock().unwrap().commits.len(),
        before + 1,
        "not retried"
    );
    consumer.poll(Duration::from_millis(200)).await.unwrap();
    assert_eq!(
        consumer.assignment(),
        [TopicPartition::new(coordinator::TOPIC, 0)]
    );
    assert!(
        events.0.lock().unwrap().iter().all(|(k, _)| *k != "lost"),
        "a stale commit does not lose the partitions"
    );
}

/// A member the coordinator no longer knows: its commit fails with UNKNOWN_MEMBER_ID (Java's
/// `CommitFailedException`) without being retried, and its heartbeat finds out, so it gives
/// its partitions up as lost and rejoins; then it commits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kip848_commit_of_a_removed_member_fails_and_the_member_rejoins() {
    let (broker, _admin) = setup(FAST_GROUPS, &[("removed", 2)]).await;
    let events = Recorder::default();
    let mut first = Consumer::connect(config(&broker, "g-removed").with_enable_auto_commit(false))
        .await
        .unwrap();
    first
        .subscribe_with_listener(["removed"], Box::new(events.clone()))
        .unwrap();
    // A second member, so that the group never empties (a commit without a member epoch is
    // accepted by an empty group).
    let mut second = Consumer::connect(config(&broker, "g-removed").with_enable_auto_commit(false))
        .await
        .unwrap();
    second.subscribe(["removed"]).unwrap();
    let second = Member::spawn(second);
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.assignment().len() != 1 || second.owned().len() != 1 {
        first.poll(Duration::from_millis(100)).await.unwrap();
        assert!(Instant::now() < deadline, "the members never shared");
    }
    let tp = first.assignment()[0].clone();
    let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> =
        [(tp.clone(), OffsetAndMetadata::new(0))].into();
    first.commit_sync_offsets(offsets.clone()).await.unwrap();
    let member_id = first.group_metadata().unwrap().member_id;
    let mut raw = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let leave = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g-removed")))
        .with_member_id(StrBytes::from_string(member_id))
        .with_member_epoch(-1);
    let answer: ConsumerGroupHeartbeatResponse = raw
        .call(ApiKey::ConsumerGroupHeartbeat, 1, &leave)
        .await
        .unwrap();
    assert_eq!(answer.error_code, 0);

    let err = first
        .commit_sync_offsets(offsets.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownMemberId), "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        first.poll(Duration::from_millis(100)).await.unwrap();
        let e = events.0.lock().unwrap().clone();
        if let Some(i) = e.iter().position(|(k, _)| *k == "lost") {
            let back = e[i + 1..]
                .iter()
                .any(|(k, p)| *k == "assigned" && !p.is_empty());
            if back && !first.assignment().is_empty() {
                assert_eq!(e[i].1, std::slice::from_ref(&tp), "{e:?}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "not lost and back: {e:?}");
    }
    let tp = first.assignment()[0].clone();
    first
        .commit_sync_offsets([(tp, OffsetAndMetadata::new(0))].into())
        .await
        .unwrap();
    let (second, _) = second.stop().await;
    second.close().await.unwrap();
    first.close().await.unwrap();
}
