//! The admin client's group calls against an in-process broker: coordinator lookup, listing
//! with filters, describing classic (decoded consumer protocol), non-consumer and KIP-848
//! groups, deleting, and reading / overwriting / deleting committed offsets, with the Kafka
//! error codes each refusal carries.

use std::collections::BTreeMap;

use bytes::Bytes;
use strom_client::{
    ConsumerAssignment, ConsumerSubscription, ErrorCode, GroupState, GroupType, MemberAssignment,
    MemberSubscription, OffsetAndMetadata, TopicPartition,
};
use strom_protocol::StrBytes;
use strom_protocol::messages::*;
use strom_test_support::{RawConnection, TestBroker};

mod common;
use common::{code, setup};

const FAST_GROUPS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Joins `group` as its only member and completes the rebalance with `assignment` for itself,
/// the way a classic consumer does. The connection must stay open for the member to live.
async fn join_stable(
    broker: &TestBroker,
    group: &str,
    protocol_type: &str,
    metadata: Bytes,
    assignment: Bytes,
) -> (RawConnection, String) {
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let _: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(s(group)),
        )
        .await
        .unwrap();
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(60_000)
            .with_rebalance_timeout_ms(60_000)
            .with_member_id(s(member))
            .with_protocol_type(s(protocol_type))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(metadata.clone()),
            ])
    };
    let first: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 7, &join("")).await.unwrap();
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    let me = first.member_id.to_string();
    let joined: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 7, &join(&me)).await.unwrap();
    assert_eq!(joined.error_code, 0);
    let synced: SyncGroupResponse = conn
        .call(
            ApiKey::SyncGroup,
            5,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id(joined.generation_id)
                .with_member_id(s(&me))
                .with_protocol_type(Some(s(protocol_type)))
                .with_protocol_name(Some(s("range")))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(&me))
                        .with_assignment(assignment),
                ]),
        )
        .await
        .unwrap();
    assert_eq!(synced.error_code, 0);
    (conn, me)
}

fn tps(list: &[(&str, i32)]) -> Vec<TopicPartition> {
    list.iter()
        .map(|(t, p)| TopicPartition::new(*t, *p))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_consumer_group_listed_described_and_protected_while_active() {
    let (broker, admin) = setup(FAST_GROUPS, &[("orders", 3)]).await;
    let coordinator = admin.find_coordinator("g1").await.unwrap();
    assert_eq!(coordinator.addr(), broker.bootstrap_servers());

    let subscription = ConsumerSubscription::new(["orders"]).encode(1).unwrap();
    let assignment = ConsumerAssignment::new(tps(&[("orders", 0), ("orders", 2)]))
        .encode(0)
        .unwrap();
    let (_member_conn, me) = join_stable(&broker, "g1", "consumer", subscription, assignment).await;

    // Listing, with and without filters.
    let all = admin.list_groups(&[], &[]).await.unwrap();
    let g1 = all.iter().find(|g| g.group_id == "g1").expect("g1 listed");
    assert_eq!(g1.protocol_type, "consumer");
    assert_eq!(g1.state, Some(GroupState::Stable));
    assert_eq!(g1.group_type, Some(GroupType::Classic));
    let stable = admin.list_groups(&[GroupState::Stable], &[]).await.unwrap();
    assert_eq!(stable.len(), 1);
    assert!(
        admin
            .list_groups(&[GroupState::Empty], &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        admin
            .list_groups(&[], &[GroupType::Consumer])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        admin
            .list_groups(&[], &[GroupType::Classic])
            .await
            .unwrap()
            .len(),
        1
    );

    // Describing: the consumer protocol bytes come back decoded.
    let described = admin
        .describe_groups(&["g1".to_string(), "nobody".to_string()])
        .await
        .unwrap();
    let d = described[0].result.as_ref().expect("g1 described");
    assert_eq!(d.group_type, GroupType::Classic);
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.partition_assignor, "range");
    assert_eq!(d.coordinator, coordinator);
    assert_eq!(d.members.len(), 1);
    let m = &d.members[0];
    assert_eq!(m.member_id, me);
    assert_eq!(m.client_id, "strom-test");
    assert_eq!(m.host, "/127.0.0.1");
    assert_eq!(m.group_instance_id, None);
    assert_eq!(
        m.assignment.partitions(),
        &tps(&[("orders", 0), ("orders", 2)])[..]
    );
    match &m.subscription {
        MemberSubscription::Consumer(sub) => assert_eq!(sub.topics, vec!["orders".to_string()]),
        other => panic!("expected a decoded subscription, got {other:?}"),
    }
    assert_eq!(described[1].group_id, "nobody");
    assert_eq!(code(&described[1].result), Some(ErrorCode::GroupIdNotFound));

    // An active group refuses deletion, offset resets from outside and offset deletion of
    // topics it consumes.
    let deleted = admin.delete_groups(&["g1".to_string()]).await.unwrap();
    assert_eq!(code(&deleted[0].result), Some(ErrorCode::NonEmptyGroup));
    let message = deleted[0].result.as_ref().unwrap_err().to_string();
    assert_eq!(message, "NON_EMPTY_GROUP: The group is not empty.");
    let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> =
        [(TopicPartition::new("orders", 0), OffsetAndMetadata::new(1))].into();
    let altered = admin
        .alter_consumer_group_offsets("g1", &offsets)
        .await
        .unwrap();
    assert_eq!(code(&altered[0].result), Some(ErrorCode::UnknownMemberId));
    let removed = admin
        .delete_consumer_group_offsets("g1", &tps(&[("orders", 0)]))
        .await
        .unwrap();
    assert_eq!(
        code(&removed[0].result),
        Some(ErrorCode::GroupSubscribedToTopic)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_an_inactive_group_are_reset_read_and_deleted() {
    let (_broker, admin) = setup(FAST_GROUPS, &[("events", 2), ("other", 1)]).await;
    let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = [
        (TopicPartition::new("events", 0), OffsetAndMetadata::new(4)),
        (
            TopicPartition::new("events", 1),
            OffsetAndMetadata {
                offset: 9,
                leader_epoch: Some(0),
                metadata: "note".into(),
            },
        ),
        (TopicPartition::new("other", 0), OffsetAndMetadata::new(1)),
        (TopicPartition::new("missing", 0), OffsetAndMetadata::new(1)),
    ]
    .into();
    let altered = admin
        .alter_consumer_group_offsets("reset-me", &offsets)
        .await
        .unwrap();
    let codes: Vec<(String, Option<ErrorCode>)> = altered
        .iter()
        .map(|r| (r.partition.to_string(), code(&r.result)))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("events-0".to_string(), None),
            ("events-1".to_string(), None),
            (
                "missing-0".to_string(),
                Some(ErrorCode::UnknownTopicOrPartition)
            ),
            ("other-0".to_string(), None),
        ]
    );

    let all = admin
        .list_consumer_group_offsets("reset-me", None)
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        all[&TopicPartition::new("events", 1)],
        Some(OffsetAndMetadata {
            offset: 9,
            leader_epoch: Some(0),
            metadata: "note".into()
        })
    );
    let some = admin
        .list_consumer_group_offsets("reset-me", Some(&tps(&[("events", 0), ("other", 5)])))
        .await
        .unwrap();
    assert_eq!(
        some[&TopicPartition::new("events", 0)]
            .as_ref()
            .map(|o| o.offset),
        Some(4)
    );
    assert_eq!(some[&TopicPartition::new("other", 5)], None);
    assert!(
        admin
            .list_consumer_group_offsets("never-seen", None)
            .await
            .unwrap()
            .is_empty(),
        "a group that does not exist has no offsets"
    );

    // A group made by offset commits alone is Empty, without a protocol type.
    let listed = admin.list_groups(&[], &[]).await.unwrap();
    let g = listed.iter().find(|g| g.group_id == "reset-me").unwrap();
    assert_eq!(
        (g.state, g.protocol_type.as_str()),
        (Some(GroupState::Empty), "")
    );
    let d = admin
        .describe_groups(&["reset-me".to_string()])
        .await
        .unwrap();
    let d = d[0].result.as_ref().unwrap();
    assert_eq!((d.state, d.members.len()), (GroupState::Empty, 0));

    let removed = admin
        .delete_consumer_group_offsets("reset-me", &tps(&[("other", 0)]))
        .await
        .unwrap();
    assert!(removed[0].result.is_ok(), "{:?}", removed[0].result);
    let after = admin
        .list_consumer_group_offsets("reset-me", None)
        .await
        .unwrap();
    assert!(!after.contains_key(&TopicPartition::new("other", 0)));
    let err = admin
        .delete_consumer_group_offsets("never-seen", &tps(&[("other", 0)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GroupIdNotFound));

    let deleted = admin
        .delete_groups(&["reset-me".to_string(), "never-seen".to_string()])
        .await
        .unwrap();
    assert!(deleted[0].result.is_ok(), "{:?}", deleted[0].result);
    assert_eq!(code(&deleted[1].result), Some(ErrorCode::GroupIdNotFound));
    assert!(
        admin
            .list_consumer_group_offsets("reset-me", None)
            .await
            .unwrap()
            .is_empty(),
        "offsets go with the group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_protocol_types_keep_raw_bytes() {
    let (broker, admin) = setup(FAST_GROUPS, &[]).await;
    let (_conn, _) = join_stable(
        &broker,
        "workers",
        "connect",
        Bytes::from_static(b"worker-metadata"),
        Bytes::from_static(b"connect-assignment"),
    )
    .await;
    let d = admin
        .describe_groups(&["workers".to_string()])
        .await
        .unwrap();
    let d = d[0].result.as_ref().unwrap();
    assert_eq!(d.protocol_type, "connect");
    assert_eq!(
        d.members[0].assignment,
        MemberAssignment::Raw(Bytes::from_static(b"connect-assignment"))
    );
    assert_eq!(
        d.members[0].subscription,
        MemberSubscription::Raw(Bytes::from_static(b"worker-metadata"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_groups_are_described_with_consumer_group_describe() {
    let (broker, admin) = setup(FAST_GROUPS, &[("events", 2)]).await;
    // The lookup creates `__consumer_offsets`, which the heartbeat needs.
    admin.find_coordinator("g848").await.unwrap();
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let member = uuid::Uuid::new_v4().to_string();
    let r: ConsumerGroupHeartbeatResponse = conn
        .call(
            ApiKey::ConsumerGroupHeartbeat,
            1,
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("g848")))
                .with_member_id(s(&member))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(s("events"))]))
                .with_topic_partitions(Some(vec![])),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);

    let d = admin.describe_groups(&["g848".to_string()]).await.unwrap();
    let d = d[0].result.as_ref().unwrap();
    assert_eq!(d.group_type, GroupType::Consumer);
    assert_eq!(d.protocol_type, "consumer");
    assert!(!d.partition_assignor.is_empty());
    assert!(d.group_epoch.is_some_and(|e| e >= 1));
    let m = &d.members[0];
    assert_eq!(m.member_id, member);
    assert_eq!(m.member_epoch, Some(r.member_epoch));
    assert_eq!(
        m.target_assignment.as_deref(),
        Some(&tps(&[("events", 0), ("events", 1)])[..])
    );
    match &m.subscription {
        MemberSubscription::Consumer(sub) => assert_eq!(sub.topics, vec!["events".to_string()]),
        other => panic!("{other:?}"),
    }
    let listed = admin
        .list_groups(&[], &[GroupType::Consumer])
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_id, "g848");
    let deleted = admin.delete_groups(&["g848".to_string()]).await.unwrap();
    assert_eq!(code(&deleted[0].result), Some(ErrorCode::NonEmptyGroup));
}
