//! The group coordinator as hosted by the broker, over the wire: coordinator lookup, the
//! classic join/sync/heartbeat/leave cycle with deferred responses, offsets surviving restarts
//! (replay of `__consumer_offsets`), admin APIs and a KIP-848 heartbeat.

use std::time::Duration;

use bytes::Bytes;
use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::*;
use strom_test_support::records::str_bytes as s;
use strom_test_support::{RawConnection, TestBroker};

const FAST_GROUPS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

async fn create_topic(conn: &mut RawConnection, name: &str, partitions: i32) -> uuid::Uuid {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req).await.unwrap();
    assert_eq!(r.topics[0].error_code, 0);
    r.topics[0].topic_id
}

fn join(group: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ])
}

/// JoinGroup until a member id is assigned (KIP-394), then once more with it.
async fn join_new_member(conn: &mut RawConnection, group: &str) -> JoinGroupResponse {
    let first: JoinGroupResponse = conn
        .call(ApiKey::JoinGroup, 7, &join(group, ""))
        .await
        .unwrap();
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    assert!(
        first.member_id.starts_with("strom-test-"),
        "{:?}",
        first.member_id
    );
    let joined: JoinGroupResponse = conn
        .call(ApiKey::JoinGroup, 7, &join(group, &first.member_id))
        .await
        .unwrap();
    assert_eq!(joined.error_code, 0);
    joined
}

fn sync(
    group: &str,
    member_id: &str,
    generation: i32,
    assignments: Vec<(&str, &'static [u8])>,
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::from_static(a))
                })
                .collect(),
        )
}

fn heartbeat(group: &str, member_id: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
}

fn commit(
    group: &str,
    member_id: &str,
    generation: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_metadata(Some(s("meta"))),
                ]),
        ])
}

async fn fetch_offset(
    conn: &mut RawConnection,
    group: &str,
    topic: &str,
    partition: i32,
) -> (i64, Option<String>) {
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(vec![partition]),
            ])),
    ]);
    let r: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 8, &req).await.unwrap();
    let g = &r.groups[0];
    assert_eq!(g.error_code, 0);
    let p = &g.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata.as_ref().map(|m| m.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_creates_the_offsets_topic_and_names_this_broker() {
    let broker = TestBroker::start_with(FAST_GROUPS).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let r: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_key_type(0),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 0);
    assert_eq!(r.node_id.0, 1);
    assert_eq!(format!("{}:{}", r.host, r.port), broker.bootstrap_servers());

    let batched: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![s("a"), s("b")])
                .with_key_type(0),
        )
        .await
        .unwrap();
    assert_eq!(batched.coordinators.len(), 2);
    assert!(
        batched
            .coordinators
            .iter()
            .all(|c| c.error_code == 0 && c.node_id.0 == 1)
    );
    let txn: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![s("t")])
                .with_key_type(1),
        )
        .await
        .unwrap();
    // Transactional ids have their coordinator too (on __transaction_state).
    assert_eq!(txn.coordinators[0].error_code, 0);
    assert_eq!(txn.coordinators[0].node_id.0, 1);

    let md: MetadataResponse = conn
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(s("__consumer_offsets")))),
            ])),
        )
        .await
        .unwrap();
    assert_eq!(md.topics[0].partitions.len(), 50);
    assert!(md.topics[0].is_internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_group_cycle_with_offsets_that_survive_a_crash() {
    let mut broker = TestBroker::start_with(FAST_GROUPS).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut conn, "orders", 2).await;
    let _: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(s("g1")),
        )
        .await
        .unwrap();

    let joined = join_new_member(&mut conn, "g1").await;
    let me = joined.member_id.to_string();
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    let generation = joined.generation_id;

    let synced: SyncGroupResponse = conn
        .call(
            ApiKey::SyncGroup,
            5,
            &sync("g1", &me, generation, vec![(&me, b"assignment")]),
        )
        .await
        .unwrap();
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (0, &b"assignment"[..])
    );
    let hb: HeartbeatResponse = conn
        .call(ApiKey::Heartbeat, 4, &heartbeat("g1", &me, generation))
        .await
        .unwrap();
    assert_eq!(hb.error_code, 0);
    let hb: HeartbeatResponse = conn
        .call(ApiKey::Heartbeat, 4, &heartbeat("g1", &me, generation + 5))
        .await
        .unwrap();
    assert_eq!(hb.error_code, ErrorCode::IllegalGeneration.code());

    let c: OffsetCommitResponse = conn
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit("g1", &me, generation, "orders", 1, 42),
        )
        .await
        .unwrap();
    assert_eq!(c.topics[0].partitions[0].error_code, 0);
    let bad: OffsetCommitResponse = conn
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit("g1", &me, generation, "nope", 0, 1),
        )
        .await
        .unwrap();
    assert_eq!(
        bad.topics[0].partitions[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let stale: OffsetCommitResponse = conn
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit("g1", &me, generation + 1, "orders", 1, 1),
        )
        .await
        .unwrap();
    assert_eq!(
        stale.topics[0].partitions[0].error_code,
        ErrorCode::IllegalGeneration.code()
    );
    assert_eq!(
        fetch_offset(&mut conn, "g1", "orders", 1).await,
        (42, Some("meta".into()))
    );
    assert_eq!(fetch_offset(&mut conn, "g1", "orders", 0).await.0, -1);

    drop(conn);
    broker.crash_and_restart().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    assert_eq!(
        fetch_offset(&mut conn, "g1", "orders", 1).await,
        (42, Some("meta".into())),
        "offsets replayed from the log"
    );
    let described: DescribeGroupsResponse = conn
        .call(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g1"))]),
        )
        .await
        .unwrap();
    assert_eq!(
        described.groups[0].group_state.as_str(),
        "Stable",
        "group state replayed"
    );
    assert_eq!(described.groups[0].members[0].member_id.as_str(), me);
    assert_eq!(
        described.groups[0].members[0].client_host.as_str(),
        "/127.0.0.1"
    );

    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g1")))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s(&me)),
        ]);
    let left: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, 5, &leave).await.unwrap();
    assert_eq!((left.error_code, left.members[0].error_code), (0, 0));

    let listed: ListGroupsResponse = conn
        .call(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
        .await
        .unwrap();
    let g1 = listed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "g1")
        .unwrap();
    assert_eq!(
        (g1.group_state.as_str(), g1.group_type.as_str()),
        ("Empty", "classic")
    );

    let deleted: DeleteGroupsResponse = conn
        .call(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(s("g1")), GroupId(s("absent"))]),
        )
        .await
        .unwrap();
    let code = |id: &str| {
        deleted
            .results
            .iter()
            .find(|r| r.group_id.as_str() == id)
            .unwrap()
            .error_code
    };
    assert_eq!(code("g1"), 0);
    assert_eq!(code("absent"), ErrorCode::GroupIdNotFound.code());
    assert_eq!(
        fetch_offset(&mut conn, "g1", "orders", 1).await.0,
        -1,
        "offsets deleted with the group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_makes_the_others_rejoin_and_completes_their_join() {
    let broker = TestBroker::start_with(FAST_GROUPS).await;
    let mut a = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let mut b = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let _: FindCoordinatorResponse = a
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(s("g2")),
        )
        .await
        .unwrap();
    let first = join_new_member(&mut a, "g2").await;
    let a_id = first.member_id.to_string();
    let _: SyncGroupResponse = a
        .call(
            ApiKey::SyncGroup,
            5,
            &sync("g2", &a_id, first.generation_id, vec![(&a_id, b"all")]),
        )
        .await
        .unwrap();

    // B's join is parked until A rejoins.
    let b_first: JoinGroupResponse = b.call(ApiKey::JoinGroup, 7, &join("g2", "")).await.unwrap();
    let b_id = b_first.member_id.to_string();
    let b_join = tokio::spawn(async move {
        let r: JoinGroupResponse = b
            .call(ApiKey::JoinGroup, 7, &join("g2", &b_id))
            .await
            .unwrap();
        (r, b)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!b_join.is_finished(), "the join waits for the other member");
    let hb: HeartbeatResponse = a
        .call(
            ApiKey::Heartbeat,
            4,
            &heartbeat("g2", &a_id, first.generation_id),
        )
        .await
        .unwrap();
    assert_eq!(hb.error_code, ErrorCode::RebalanceInProgress.code());
    let a_again: JoinGroupResponse = a
        .call(ApiKey::JoinGroup, 7, &join("g2", &a_id))
        .await
        .unwrap();
    let (b_again, _b) = tokio::time::timeout(Duration::from_secs(5), b_join)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a_again.generation_id, first.generation_id + 1);
    assert_eq!(b_again.generation_id, a_again.generation_id);
    assert_eq!(
        a_again.leader, a_again.member_id,
        "the existing leader keeps leading"
    );
    assert_eq!(
        a_again.members.len(),
        2,
        "the leader gets every member's metadata"
    );
    assert!(b_again.members.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_member_gets_an_assignment_from_the_broker() {
    let broker = TestBroker::start_with(FAST_GROUPS).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let topic_id = create_topic(&mut conn, "events", 3).await;
    let _: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(s("g848")),
        )
        .await
        .unwrap();
    let member = uuid::Uuid::new_v4().to_string();
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("g848")))
        .with_member_id(s(&member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("events"))]))
        .with_topic_partitions(Some(vec![]));
    let r: ConsumerGroupHeartbeatResponse = conn
        .call(ApiKey::ConsumerGroupHeartbeat, 1, &req)
        .await
        .unwrap();
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert!(r.member_epoch >= 1);
    assert!(r.heartbeat_interval_ms > 0);
    let assignment = r.assignment.expect("an assignment");
    assert_eq!(assignment.topic_partitions.len(), 1);
    assert_eq!(assignment.topic_partitions[0].topic_id, topic_id);
    let mut partitions = assignment.topic_partitions[0].partitions.clone();
    partitions.sort();
    assert_eq!(partitions, vec![0, 1, 2]);

    let described: ConsumerGroupDescribeResponse = conn
        .call(
            ApiKey::ConsumerGroupDescribe,
            1,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g848"))]),
        )
        .await
        .unwrap();
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(described.groups[0].members.len(), 1);
    assert_eq!(described.groups[0].members[0].member_id.as_str(), member);
}

/// Every served version of every group API gets a decodable answer (a field a version cannot
/// carry would make the encoder refuse and the connection close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_every_group_api_is_answered() {
    let broker = TestBroker::start_with(FAST_GROUPS).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create_topic(&mut conn, "vt", 1).await;
    for v in 0..=6 {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("gv")])
        } else {
            FindCoordinatorRequest::default().with_key(s("gv"))
        };
        let r: FindCoordinatorResponse = conn.call(ApiKey::FindCoordinator, v, &req).await.unwrap();
        let code = if v >= 4 {
            r.coordinators[0].error_code
        } else {
            r.error_code
        };
        assert_eq!(code, 0, "FindCoordinator v{v}");
    }
    for v in 0..=9 {
        let group = format!("gv{v}");
        let mut req = join(&group, "");
        if v == 0 {
            req.rebalance_timeout_ms = -1;
        }
        let r: JoinGroupResponse = conn.call(ApiKey::JoinGroup, v, &req).await.unwrap();
        let member = if v >= 4 {
            assert_eq!(
                r.error_code,
                ErrorCode::MemberIdRequired.code(),
                "JoinGroup v{v}"
            );
            let mut again = join(&group, &r.member_id);
            if v == 0 {
                again.rebalance_timeout_ms = -1;
            }
            let r: JoinGroupResponse = conn.call(ApiKey::JoinGroup, v, &again).await.unwrap();
            assert_eq!(r.error_code, 0, "JoinGroup v{v}");
            r
        } else {
            assert_eq!(r.error_code, 0, "JoinGroup v{v}");
            r
        };
        let id = member.member_id.to_string();
        let sv = v.min(5);
        let mut sreq = sync(&group, &id, member.generation_id, vec![(&id, b"a")]);
        if sv < 5 {
            sreq.protocol_type = None;
            sreq.protocol_name = None;
        }
        let r: SyncGroupResponse = conn.call(ApiKey::SyncGroup, sv, &sreq).await.unwrap();
        assert_eq!(r.error_code, 0, "SyncGroup v{sv}");
        let hv = v.min(4);
        let r: HeartbeatResponse = conn
            .call(
                ApiKey::Heartbeat,
                hv,
                &heartbeat(&group, &id, member.generation_id),
            )
            .await
            .unwrap();
        assert_eq!(r.error_code, 0, "Heartbeat v{hv}");
        let cv = v.clamp(2, 9);
        let r: OffsetCommitResponse = conn
            .call(
                ApiKey::OffsetCommit,
                cv,
                &commit(&group, &id, member.generation_id, "vt", 0, 7),
            )
            .await
            .unwrap();
        assert_eq!(
            r.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{cv}"
        );
        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s(&id)),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(s(&id))
        };
        let r: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, lv, &leave).await.unwrap();
        assert_eq!(r.error_code, 0, "LeaveGroup v{lv}");
    }
    for v in 1..=9 {
        let req = if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("gv3")))
                    .with_topics(None),
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("unknown-group")))
                    .with_topics(None),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s("gv3")))
                .with_topics(if v >= 2 {
                    None
                } else {
                    Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s("vt")))
                            .with_partition_indexes(vec![0]),
                    ])
                })
        };
        let r: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, v, &req).await.unwrap();
        let committed = if v >= 8 {
            &r.groups[0].topics[0].partitions[0].committed_offset
        } else {
            &r.topics[0].partitions[0].committed_offset
        };
        assert_eq!(*committed, 7, "OffsetFetch v{v}");
    }
    for v in 0..=5 {
        let r: ListGroupsResponse = conn
            .call(ApiKey::ListGroups, v, &ListGroupsRequest::default())
            .await
            .unwrap();
        assert!(r.groups.len() >= 10, "ListGroups v{v}");
    }
    for v in 0..=6 {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(s("gv3")), GroupId(s("unknown-group"))]);
        let r: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, v, &req).await.unwrap();
        assert_eq!(r.groups[0].error_code, 0, "DescribeGroups v{v}");
    }
    let r: OffsetDeleteResponse = conn
        .call(
            ApiKey::OffsetDelete,
            0,
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("gv3")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("vt")))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.error_code, r.topics[0].partitions[0].error_code),
        (0, 0),
        "OffsetDelete v0"
    );
    for v in 0..=2 {
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s(&format!("gv{}", v + 4)))]);
        let r: DeleteGroupsResponse = conn.call(ApiKey::DeleteGroups, v, &req).await.unwrap();
        assert_eq!(r.results[0].error_code, 0, "DeleteGroups v{v}");
    }
    for v in 0..=1 {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&format!("cg{v}"))))
            .with_member_id(if v >= 1 {
                s(&uuid::Uuid::new_v4().to_string())
            } else {
                StrBytes::default()
            })
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("vt"))]))
            .with_topic_partitions(Some(vec![]));
        let r: ConsumerGroupHeartbeatResponse = conn
            .call(ApiKey::ConsumerGroupHeartbeat, v, &req)
            .await
            .unwrap();
        assert_eq!(
            r.error_code, 0,
            "ConsumerGroupHeartbeat v{v}: {:?}",
            r.error_message
        );
        let d: ConsumerGroupDescribeResponse = conn
            .call(
                ApiKey::ConsumerGroupDescribe,
                v,
                &ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(s(&format!("cg{v}")))]),
            )
            .await
            .unwrap();
        assert_eq!(d.groups[0].error_code, 0, "ConsumerGroupDescribe v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_write_to_the_coordinators_topics() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    for key_type in [0, 1] {
        let r: FindCoordinatorResponse = conn
            .call(
                ApiKey::FindCoordinator,
                4,
                &FindCoordinatorRequest::default()
                    .with_key_type(key_type)
                    .with_coordinator_keys(vec![s("x")]),
            )
            .await
            .unwrap();
        assert_eq!(r.coordinators[0].error_code, 0);
    }
    for topic in ["__consumer_offsets", "__transaction_state"] {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(strom_test_support::records::batch(
                                &[b"forged"],
                                strom_protocol::kafka_protocol::records::Compression::None,
                            ))),
                    ]),
            ]);
        let r: ProduceResponse = conn.call(ApiKey::Produce, 11, &req).await.unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code,
            ErrorCode::InvalidTopicException.code(),
            "{topic}"
        );
        assert_eq!(
            p.error_message.as_deref().map(|m| m.to_string()),
            Some(format!("Cannot append to internal topic {topic}"))
        );
    }
}
