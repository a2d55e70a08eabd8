//! `strom groups` against an in-process broker: listing, the three describe views with lag
//! checked against offsets the test set up, deletion, and every reset-offsets strategy in
//! dry-run and execute mode, including the refusal for an active group.

use std::collections::BTreeMap;
use std::process::Output;

use strom_client::{
    Admin, ClientConfig, ConsumerAssignment, ConsumerSubscription, NewTopic, OffsetAndMetadata,
    Producer, ProducerRecord, TopicPartition,
};
use strom_protocol::StrBytes;
use strom_protocol::messages::*;
use strom_test_support::{RawConnection, TestBroker};

mod common;
use common::{failed, ok, stderr, stdout, tool};

const FAST_GROUPS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

/// The whitespace-separated cells of every table row after the header.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn admin(broker: &TestBroker) -> Admin {
    Admin::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap()
}

/// Produces `n` records to `topic`-`partition`, record `i` stamped `base_ts + i s`.
async fn produce(broker: &TestBroker, topic: &str, partition: i32, n: i64, base_ts: i64) {
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    for i in 0..n {
        producer
            .send(
                ProducerRecord::new(topic, format!("v{i}"))
                    .with_partition(partition)
                    .with_timestamp(base_ts + i * 1_000),
            )
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
}

/// A consumer-protocol member of `group` that owns `assigned` and committed `commits`, kept
/// alive by the returned connection (the session timeout outlasts the test).
async fn active_member(
    broker: &TestBroker,
    group: &str,
    assigned: &[(&str, i32)],
    commits: &[(&str, i32, i64)],
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
    let topics: Vec<&str> = assigned.iter().map(|(t, _)| *t).collect();
    let metadata = ConsumerSubscription::new(topics).encode(1).unwrap();
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(120_000)
            .with_rebalance_timeout_ms(60_000)
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(metadata.clone()),
            ])
    };
    let first: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 7, &join("")).await.unwrap();
    let me = first.member_id.to_string();
    let joined: JoinGroupResponse = conn.call(ApiKey::JoinGroup, 7, &join(&me)).await.unwrap();
    assert_eq!(joined.error_code, 0);
    let assignment =
        ConsumerAssignment::new(assigned.iter().map(|(t, p)| TopicPartition::new(*t, *p)))
            .encode(0)
            .unwrap();
    let synced: SyncGroupResponse = conn
        .call(
            ApiKey::SyncGroup,
            5,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id(joined.generation_id)
                .with_member_id(s(&me))
                .with_protocol_type(Some(s("consumer")))
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
    for (topic, partition, offset) in commits {
        let r: OffsetCommitResponse = conn
            .call(
                ApiKey::OffsetCommit,
                8,
                &OffsetCommitRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_generation_id_or_member_epoch(joined.generation_id)
                    .with_member_id(s(&me))
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(vec![
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(*partition)
                                    .with_committed_offset(*offset),
                            ]),
                    ]),
            )
            .await
            .unwrap();
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }
    (conn, me)
}

async fn commit_outside(admin: &Admin, group: &str, offsets: &[(&str, i32, i64)]) {
    let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = offsets
        .iter()
        .map(|(t, p, o)| (TopicPartition::new(*t, *p), OffsetAndMetadata::new(*o)))
        .collect();
    for r in admin
        .alter_consumer_group_offsets(group, &offsets)
        .await
        .unwrap()
    {
        r.result.unwrap();
    }
}

async fn committed(admin: &Admin, group: &str, topic: &str, partition: i32) -> Option<i64> {
    let tp = TopicPartition::new(topic, partition);
    admin
        .list_consumer_group_offsets(group, Some(std::slice::from_ref(&tp)))
        .await
        .unwrap()
        .remove(&tp)
        .flatten()
        .map(|o| o.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_show_state_members_and_lag() {
    let broker = TestBroker::start_with(FAST_GROUPS).await;
    let b = broker.bootstrap_servers();
    let admin = admin(&broker).await;
    admin
        .create_topics(
            &[NewTopic::new("orders").with_partitions(2)],
            Default::default(),
        )
        .await
        .unwrap()[0]
        .result
        .as_ref()
        .unwrap();
    produce(&broker, "orders", 0, 10, 1_000).await;
    produce(&broker, "orders", 1, 3, 1_000).await;
    // "live": one member owning orders-0 (committed 4 of 10: lag 6); orders-1 committed 1 of
    // 3 but assigned to nobody (lag 2).
    let (_member, me) = active_member(
        &broker,
        "live",
        &[("orders", 0)],
        &[("orders", 0, 4), ("orders", 1, 1)],
    )
    .await;
    // "idle": offsets only.
    commit_outside(&admin, "idle", &[("orders", 1, 3)]).await;

    assert_eq!(ok(&tool(b, &["groups", "list"]).await), "idle\nlive\n");
    let text = ok(&tool(b, &["groups", "list", "--state"]).await);
    assert_eq!(
        text,
        format!(
            "{:<25} {:<20}\n{:<25} {:<20}\n{:<25} {:<20}\n",
            "GROUP", "STATE", "idle", "Empty", "live", "Stable"
        )
    );
    let text = ok(&tool(b, &["groups", "list", "--state", "stable", "--type"]).await);
    assert_eq!(rows(&text), vec![vec!["live", "Classic", "Stable"]]);
    let text = ok(&tool(b, &["groups", "list", "--type", "consumer"]).await);
    assert_eq!(text, format!("{:<25} {:<20}\n", "GROUP", "TYPE"));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&tool(b, &["groups", "list", "--output", "json"]).await)).unwrap();
    assert_eq!(json[1]["group"], "live");
    assert_eq!(json[1]["state"], "Stable");
    assert_eq!(json[0]["protocol_type"], "");
    let o = tool(b, &["groups", "list", "--state", "Sleepy"]).await;
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown state");

    // The offsets view, exactly as Kafka lays it out.
    let o = tool(b, &["groups", "describe", "live"]).await;
    let text = ok(&o);
    assert_eq!(stderr(&o), "", "a Stable group gets no note");
    let cw = me.len().max(15);
    let line = |cols: [&str; 9]| {
        format!(
            "\n{:<15} {:<15} {:<10} {:<15} {:<15} {:<15} {:<cw$} {:<15} {}",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
        )
    };
    let expected = [
        line([
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]),
        line([
            "live",
            "orders",
            "0",
            "4",
            "10",
            "6",
            &me,
            "/127.0.0.1",
            "strom-test",
        ]),
        line(["live", "orders", "1", "1", "3", "2", "-", "-", "-"]),
        "\n".to_string(),
    ]
    .concat();
    assert_eq!(text, expected);
    // --offsets is the same view.
    assert_eq!(
        ok(&tool(b, &["groups", "describe", "live", "--offsets"]).await),
        expected
    );

    let text = ok(&tool(b, &["groups", "describe", "live", "--members", "--verbose"]).await);
    assert!(text.starts_with("\nGROUP "), "{text:?}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .ends_with("#PARTITIONS     ASSIGNMENT")
    );
    assert_eq!(
        rows(&text),
        vec![vec![
            "live",
            me.as_str(),
            "/127.0.0.1",
            "strom-test",
            "1",
            "orders(0)"
        ]]
    );
    let text = ok(&tool(b, &["groups", "describe", "live", "--members"]).await);
    assert_eq!(
        rows(&text),
        vec![vec!["live", me.as_str(), "/127.0.0.1", "strom-test", "1"]]
    );

    let text = ok(&tool(b, &["groups", "describe", "live", "--state"]).await);
    let (host, port) = b.split_once(':').unwrap();
    assert_eq!(
        rows(&text),
        vec![vec![
            "live".to_string(),
            format!("{host}:{port}"),
            "(1)".to_string(),
            "range".to_string(),
            "Stable".to_string(),
            "1".to_string()
        ]]
    );

    // An Empty group: Kafka's note on stderr, its committed partitions without consumers.
    let o = tool(b, &["groups", "describe", "idle"]).await;
    assert_eq!(
        rows(&ok(&o)),
        vec![vec!["idle", "orders", "1", "3", "3", "0", "-", "-", "-"]]
    );
    assert_eq!(
        stderr(&o),
        "\nConsumer group 'idle' has no active members.\n"
    );

    // Missing groups: Kafka's message, exit 1, the others still described.
    let o = tool(b, &["groups", "describe", "nope"]).await;
    assert_eq!(failed(&o), "error: Consumer group 'nope' does not exist.\n");
    assert_eq!(stdout(&o), "");
    let o = tool(b, &["groups", "describe", "nope", "live", "--state"]).await;
    assert_eq!(failed(&o), "error: Consumer group 'nope' does not exist.\n");
    assert_eq!(rows(&stdout(&o)).len(), 1);

    let json: serde_json::Value = serde_json::from_str(&ok(&tool(
        b,
        &["groups", "describe", "live", "--output", "json"],
    )
    .await))
    .unwrap();
    let offsets = &json[0]["offsets"];
    assert_eq!(offsets[0]["lag"], 6);
    assert_eq!(offsets[0]["consumer_id"], me.as_str());
    assert_eq!(offsets[1]["current_offset"], 1);
    assert_eq!(json[0]["members"][0]["assignment"][0]["partition"], 0);

    let all = ok(&tool(b, &["groups", "describe", "--all-groups", "--state"]).await);
    assert_eq!(rows(&all).len(), 3, "a header per group: {all}");

    // Deleting: refused while active, in Kafka's words; fine once only offsets remain.
    let o = tool(b, &["groups", "delete", "live", "idle"]).await;
    assert_eq!(
        failed(&o),
        "error: Deletion of some consumer groups failed:\n"
    );
    assert_eq!(
        stdout(&o),
        "* Group 'live' could not be deleted due to: NON_EMPTY_GROUP: The group is not empty.\n\
         \nThese consumer groups were deleted successfully: 'idle'\n"
    );
    let o = tool(b, &["groups", "delete", "idle"]).await;
    failed(&o);
    assert_eq!(
        stdout(&o),
        "* Group 'idle' could not be deleted due to: GROUP_ID_NOT_FOUND: The group id does not \
         exist.\n"
    );
    commit_outside(&admin, "idle2", &[("orders", 0, 1)]).await;
    let o = tool(b, &["groups", "delete", "idle2"]).await;
    assert_eq!(
        ok(&o),
        "Deletion of requested consumer groups ('idle2') was successful.\n"
    );
    assert_eq!(ok(&tool(b, &["groups", "list"]).await), "live\n");
}

/// 2024-01-01T00:00:00.000Z in ms.
const JAN_1_2024: i64 = 1_704_067_200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_offsets_plans_executes_clamps_and_refuses_active_groups() {
    let broker = TestBroker::start_with(FAST_GROUPS).await;
    let b = broker.bootstrap_servers();
    let admin = admin(&broker).await;
    admin
        .create_topics(
            &[
                NewTopic::new("r").with_partitions(2),
                NewTopic::new("busy").with_partitions(1),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    // r-0: offsets 2..10 (0 and 1 deleted), record i stamped Jan 1 2024 + i s; r-1: empty.
    produce(&broker, "r", 0, 10, JAN_1_2024).await;
    admin
        .delete_records(&BTreeMap::from([(TopicPartition::new("r", 0), 2)]))
        .await
        .unwrap()[0]
        .result
        .as_ref()
        .unwrap();
    commit_outside(&admin, "g", &[("r", 0, 5)]).await;

    let plan = |o: &Output| rows(&ok(o));
    let reset = |extra: &'static [&'static str]| {
        let mut args = vec!["groups", "reset-offsets", "--group", "g"];
        args.extend_from_slice(extra);
        async move { tool(b, &args).await }
    };

    // Dry run is the default (with Kafka's warning) and changes nothing.
    let o = reset(&["--topic", "r:0", "--to-earliest"]).await;
    assert_eq!(plan(&o), vec![vec!["g", "r", "0", "2"]]);
    assert!(
        stderr(&o).starts_with("WARN: No action will be performed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        stdout(&o),
        format!(
            "\n{:<30} {:<30} {:<10} {:<15}\n{:<30} {:<30} {:<10} {:<15}\n",
            "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", "g", "r", "0", "2"
        )
    );
    let o = reset(&["--topic", "r:0", "--to-earliest", "--dry-run"]).await;
    assert_eq!(stderr(&o), "", "no warning with an explicit --dry-run");
    assert_eq!(committed(&admin, "g", "r", 0).await, Some(5));

    // Each strategy, executed.
    for (args, expected) in [
        (&["--topic", "r:0", "--to-earliest", "--execute"][..], 2),
        (&["--topic", "r:0", "--to-latest", "--execute"][..], 10),
        (&["--topic", "r:0", "--to-offset", "7", "--execute"][..], 7),
        (&["--topic", "r:0", "--shift-by", "-3", "--execute"][..], 4),
        (&["--topic", "r:0", "--shift-by", "2", "--execute"][..], 6),
        (
            &[
                "--topic",
                "r:0",
                "--to-datetime",
                "2024-01-01T00:00:04.500",
                "--execute",
            ][..],
            5,
        ),
        (
            &[
                "--topic",
                "r:0",
                "--to-datetime",
                "2024-01-01T01:00:03.000+01:00",
                "--execute",
            ][..],
            3,
        ),
    ] {
        let mut all = vec!["groups", "reset-offsets", "--group", "g"];
        all.extend_from_slice(args);
        let o = tool(b, &all).await;
        assert_eq!(
            plan(&o),
            vec![vec!["g", "r", "0", &expected.to_string()]],
            "{args:?}"
        );
        assert_eq!(
            committed(&admin, "g", "r", 0).await,
            Some(expected),
            "{args:?}"
        );
    }

    // Out-of-range requests are clamped to [earliest, latest].
    for (args, expected) in [
        (
            &["--topic", "r:0", "--to-offset", "50", "--dry-run"][..],
            "10",
        ),
        (
            &["--topic", "r:0", "--to-offset", "0", "--dry-run"][..],
            "2",
        ),
        (
            &["--topic", "r:0", "--shift-by", "100", "--dry-run"][..],
            "10",
        ),
        (&["--topic", "r:0", "--shift-by=-100", "--dry-run"][..], "2"),
        // Past the last record: the log end, with Kafka's note.
        (
            &[
                "--topic",
                "r:0",
                "--to-datetime",
                "2030-01-01T00:00:00.000",
                "--dry-run",
            ][..],
            "10",
        ),
    ] {
        let mut all = vec!["groups", "reset-offsets", "--group", "g"];
        all.extend_from_slice(args);
        let o = tool(b, &all).await;
        assert_eq!(plan(&o), vec![vec!["g", "r", "0", expected]], "{args:?}");
    }
    let o = reset(&[
        "--topic",
        "r:0",
        "--to-datetime",
        "2030-01-01T00:00:00.000",
        "--dry-run",
    ])
    .await;
    assert!(
        stderr(&o).contains(
            "Warn: Partition 0 from topic r is empty. Falling back to latest known offset."
        ),
        "{}",
        stderr(&o)
    );

    // A whole topic; then --all-topics, which is what the group committed.
    let o = reset(&["--topic", "r", "--to-latest", "--execute"]).await;
    assert_eq!(
        plan(&o),
        vec![vec!["g", "r", "0", "10"], vec!["g", "r", "1", "0"]]
    );
    let o = reset(&[
        "--all-topics",
        "--to-earliest",
        "--dry-run",
        "--output",
        "json",
    ])
    .await;
    let json: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["new_offset"], 2);

    // Shifting needs a committed offset.
    let o = tool(
        b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "fresh",
            "--topic",
            "r:1",
            "--shift-by",
            "1",
        ],
    )
    .await;
    assert!(
        failed(&o).contains(
            "error: Cannot shift offset for partition r-1 since there is no current committed offset"
        ),
        "{}",
        stderr(&o)
    );
    // A group that does not exist yet may be planned and created.
    let o = tool(
        b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "fresh",
            "--topic",
            "r:0",
            "--to-offset",
            "3",
            "--execute",
        ],
    )
    .await;
    assert_eq!(plan(&o), vec![vec!["fresh", "r", "0", "3"]]);
    assert_eq!(committed(&admin, "fresh", "r", 0).await, Some(3));

    // An active group is refused, in Kafka's words, and keeps its offsets.
    let (_member, _) =
        active_member(&broker, "busy-group", &[("busy", 0)], &[("busy", 0, 0)]).await;
    let o = tool(
        b,
        &[
            "groups",
            "reset-offsets",
            "--group",
            "busy-group",
            "--topic",
            "busy",
            "--to-latest",
            "--execute",
        ],
    )
    .await;
    assert!(
        failed(&o).ends_with(
            "error: Assignments can only be reset if the group 'busy-group' is inactive, but the \
             current state is Stable.\n"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(committed(&admin, "busy-group", "busy", 0).await, Some(0));
}
