//! The controller end to end over a real metadata log in a temp dir: every CreateTopics /
//! DeleteTopics / CreatePartitions error with Kafka's code and message, durability across a
//! reopen, and publication to subscribers.

use std::collections::BTreeMap;
use std::path::Path;

use strom_metadata::records::{ConfigResourceType, Endpoint, RegisterBrokerRecord};
use strom_metadata::{
    Controller, ControllerConfig, CreateTopicSpec, MetadataError, NewPartitionsSpec, TopicRef,
};
use strom_protocol::{ApiError, ErrorCode};
use uuid::Uuid;

fn config(dir: &Path) -> ControllerConfig {
    ControllerConfig {
        node_id: 1,
        metadata_log_dir: dir.to_path_buf(),
        num_partitions: 3,
        default_replication_factor: 1,
    }
}

fn registration(id: i32) -> RegisterBrokerRecord {
    RegisterBrokerRecord {
        broker_id: id,
        incarnation_id: Uuid::new_v4(),
        listeners: vec![Endpoint {
            name: "PLAINTEXT".to_string(),
            host: "localhost".to_string(),
            port: 9092,
            security_protocol: "PLAINTEXT".to_string(),
        }],
        rack: None,
        fenced: true,
    }
}

/// A controller over `dir` with brokers 1..=n registered.
async fn controller(dir: &Path, brokers: i32) -> Controller {
    let controller = Controller::open(config(dir)).await.unwrap();
    for id in 1..=brokers {
        controller.register_broker(registration(id)).await.unwrap();
    }
    controller
}

fn spec(name: &str, partitions: i32, rf: i16) -> CreateTopicSpec {
    CreateTopicSpec {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor: rf,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    }
}

fn manual(name: &str, assignments: &[(i32, &[i32])]) -> CreateTopicSpec {
    CreateTopicSpec {
        assignments: assignments
            .iter()
            .map(|(p, replicas)| (*p, replicas.to_vec()))
            .collect(),
        ..spec(name, -1, -1)
    }
}

fn with_configs(mut spec: CreateTopicSpec, configs: &[(&str, &str)]) -> CreateTopicSpec {
    spec.configs = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spec
}

async fn create_one(
    controller: &Controller,
    spec: CreateTopicSpec,
) -> Result<strom_metadata::CreatedTopic, ApiError> {
    controller.create_topics(vec![spec], false).await.remove(0)
}

#[track_caller]
fn assert_error<T: std::fmt::Debug>(result: Result<T, ApiError>, code: ErrorCode, message: &str) {
    let error = result.expect_err("expected an error");
    assert_eq!(error.code, code, "{error}");
    assert_eq!(error.message.as_deref(), Some(message));
}

#[tokio::test]
async fn create_topic_places_replicas_and_writes_configs() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 3).await;
    let created = create_one(
        &controller,
        with_configs(
            spec("orders", 6, 2),
            &[("retention.ms", "1000"), ("cleanup.policy", "compact")],
        ),
    )
    .await
    .unwrap();
    assert_eq!(created.name, "orders");
    assert_eq!(created.num_partitions, 6);
    assert_eq!(created.replication_factor, 2);

    let image = controller.image();
    let topic = image.topic_by_name("orders").unwrap();
    assert_eq!(topic.id, created.topic_id);
    assert_eq!(topic.partitions.len(), 6);
    for (index, partition) in &topic.partitions {
        assert_eq!(partition.replicas.len(), 2, "partition {index}");
        assert_ne!(partition.replicas[0], partition.replicas[1]);
        assert_eq!(partition.leader, partition.replicas[0]);
        assert_eq!(partition.isr, partition.replicas);
        assert_eq!((partition.leader_epoch, partition.partition_epoch), (0, 0));
    }
    // Leaders are spread: 6 partitions over 3 brokers.
    let mut leaders = BTreeMap::<i32, usize>::new();
    for partition in topic.partitions.values() {
        *leaders.entry(partition.leader).or_default() += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), [2, 2, 2]);

    let configs = image.configs(ConfigResourceType::Topic, "orders").unwrap();
    assert_eq!(configs["retention.ms"], "1000");
    assert_eq!(configs["cleanup.policy"], "compact");
    // 3 registrations, then TopicRecord + 2 ConfigRecords + 6 PartitionRecords.
    assert_eq!(image.offset, 3 + 1 + 2 + 6 - 1);
}

#[tokio::test]
async fn defaults_apply_to_minus_one() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    let created = create_one(&controller, spec("t", -1, -1)).await.unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (3, 1));
}

#[tokio::test]
async fn topic_name_errors() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    let long = "a".repeat(250);
    let results = controller
        .create_topics(
            vec![
                spec("", 1, 1),
                spec(".", 1, 1),
                spec("..", 1, 1),
                spec(&long, 1, 1),
                spec("no spaces", 1, 1),
                spec(&"b".repeat(249), 1, 1),
            ],
            false,
        )
        .await;
    let mut results = results.into_iter();
    let invalid = ErrorCode::InvalidTopicException;
    assert_error(
        results.next().unwrap(),
        invalid,
        "Topic name is invalid: the empty string is not allowed",
    );
    assert_error(
        results.next().unwrap(),
        invalid,
        "Topic name is invalid: '.' is not allowed",
    );
    assert_error(
        results.next().unwrap(),
        invalid,
        "Topic name is invalid: '..' is not allowed",
    );
    assert_error(
        results.next().unwrap(),
        invalid,
        &format!(
            "Topic name is invalid: the length of '{long}' is longer than the max allowed length 249"
        ),
    );
    assert_error(
        results.next().unwrap(),
        invalid,
        "Topic name is invalid: 'no spaces' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'",
    );
    // One bad topic does not fail the others.
    assert!(results.next().unwrap().is_ok());
    assert_eq!(controller.image().topics().len(), 1);

    assert_error(
        create_one(&controller, spec("__cluster_metadata", 1, 1)).await,
        ErrorCode::InvalidRequest,
        "Creation of internal topic __cluster_metadata is prohibited.",
    );
}

#[tokio::test]
async fn existing_and_colliding_names() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    create_one(&controller, spec("a_b", 1, 1)).await.unwrap();
    assert_error(
        create_one(&controller, spec("a_b", 1, 1)).await,
        ErrorCode::TopicAlreadyExists,
        "Topic 'a_b' already exists.",
    );
    assert_error(
        create_one(&controller, spec("a.b", 1, 1)).await,
        ErrorCode::InvalidTopicException,
        "Topic 'a.b' collides with existing topic: a_b",
    );
    // Names without '.' or '_' never collide.
    create_one(&controller, spec("a-b", 1, 1)).await.unwrap();

    // Two entries for one name in one request: the second fails, whether written or not.
    for validate_only in [true, false] {
        let name = format!("twice-{validate_only}");
        let results = controller
            .create_topics(vec![spec(&name, 1, 1), spec(&name, 2, 1)], validate_only)
            .await;
        assert!(results[0].is_ok());
        assert_error(
            results[1].clone(),
            ErrorCode::TopicAlreadyExists,
            &format!("Topic '{name}' already exists."),
        );
    }
    let twice = controller
        .image()
        .topic_by_name("twice-false")
        .unwrap()
        .clone();
    assert_eq!(twice.partitions.len(), 1);

    // A collision inside one request is caught too.
    let results = controller
        .create_topics(vec![spec("x.y", 1, 1), spec("x_y", 1, 1)], false)
        .await;
    assert!(results[0].is_ok());
    assert_error(
        results[1].clone(),
        ErrorCode::InvalidTopicException,
        "Topic 'x_y' collides with existing topic: x.y",
    );
}

#[tokio::test]
async fn partition_and_replication_factor_errors() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 2).await;
    let bad_partitions = "Number of partitions was set to an invalid non-positive value.";
    let bad_rf = "Replication factor must be larger than 0, or -1 to use the default value.";
    assert_error(
        create_one(&controller, spec("t", 0, 1)).await,
        ErrorCode::InvalidPartitions,
        bad_partitions,
    );
    assert_error(
        create_one(&controller, spec("t", -2, 1)).await,
        ErrorCode::InvalidPartitions,
        bad_partitions,
    );
    assert_error(
        create_one(&controller, spec("t", 1, 0)).await,
        ErrorCode::InvalidReplicationFactor,
        bad_rf,
    );
    assert_error(
        create_one(&controller, spec("t", 1, -2)).await,
        ErrorCode::InvalidReplicationFactor,
        bad_rf,
    );
    // Kafka checks the replication factor first.
    assert_error(
        create_one(&controller, spec("t", 0, 0)).await,
        ErrorCode::InvalidReplicationFactor,
        bad_rf,
    );
    assert_error(
        create_one(&controller, spec("t", 1, 3)).await,
        ErrorCode::InvalidReplicationFactor,
        "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 2 broker(s) are registered.",
    );
    create_one(&controller, spec("t", 1, 2)).await.unwrap();
}

#[tokio::test]
async fn no_brokers() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 0).await;
    assert_error(
        create_one(&controller, spec("t", 1, 1)).await,
        ErrorCode::InvalidReplicationFactor,
        "Unable to replicate the partition 1 time(s): All brokers are currently fenced.",
    );
}

#[tokio::test]
async fn too_many_partitions_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    let results = controller
        .create_topics(vec![spec("a", 6000, 1), spec("b", 5000, 1)], false)
        .await;
    for result in results {
        assert_error(
            result,
            ErrorCode::PolicyViolation,
            "Excessively large number of partitions per request.",
        );
    }
    assert!(controller.image().topics().is_empty());
}

#[tokio::test]
async fn manual_assignments() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 3).await;

    let created = create_one(&controller, manual("m", &[(0, &[3, 1]), (1, &[1, 2])]))
        .await
        .unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (2, 2));
    let image = controller.image();
    let topic = image.topic_by_name("m").unwrap();
    assert_eq!(topic.partitions[&0].replicas, [3, 1]);
    assert_eq!(topic.partitions[&0].leader, 3);
    assert_eq!(topic.partitions[&1].replicas, [1, 2]);

    let mut with_count = manual("x", &[(0, &[1])]);
    with_count.num_partitions = 1;
    assert_error(
        create_one(&controller, with_count).await,
        ErrorCode::InvalidRequest,
        "A manual partition assignment was specified, but numPartitions was not set to -1.",
    );
    let mut with_rf = manual("x", &[(0, &[1])]);
    with_rf.replication_factor = 1;
    assert_error(
        create_one(&controller, with_rf).await,
        ErrorCode::InvalidRequest,
        "A manual partition assignment was specified, but replication factor was not set to -1.",
    );

    let invalid = ErrorCode::InvalidReplicaAssignment;
    assert_error(
        create_one(&controller, manual("x", &[(0, &[1, 7])])).await,
        invalid,
        "The manual partition assignment includes broker 7, but no such broker is registered.",
    );
    assert_error(
        create_one(&controller, manual("x", &[(0, &[2, 1, 2])])).await,
        invalid,
        "The manual partition assignment includes the broker 2 more than once.",
    );
    assert_error(
        create_one(&controller, manual("x", &[(0, &[1]), (2, &[2])])).await,
        invalid,
        "partitions should be a consecutive 0-based integer sequence",
    );
    assert_error(
        create_one(&controller, manual("x", &[(-1, &[1]), (0, &[2])])).await,
        invalid,
        "partitions should be a consecutive 0-based integer sequence",
    );
    assert_error(
        create_one(&controller, manual("x", &[(0, &[1, 2]), (1, &[3])])).await,
        invalid,
        "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s).",
    );
    assert_error(
        create_one(&controller, manual("x", &[(0, &[])])).await,
        invalid,
        "The manual partition assignment includes an empty replica list.",
    );
    assert!(controller.image().topic_by_name("x").is_none());
}

#[tokio::test]
async fn config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    assert_error(
        create_one(
            &controller,
            with_configs(spec("t", 1, 1), &[("retention.ms", "forever")]),
        )
        .await,
        ErrorCode::InvalidConfig,
        "Invalid value forever for configuration retention.ms: Not a number of type LONG",
    );
    assert_error(
        create_one(
            &controller,
            with_configs(spec("t", 1, 1), &[("cleanup.policy", "shred")]),
        )
        .await,
        ErrorCode::InvalidConfig,
        "Invalid value shred for configuration cleanup.policy: String must be one of: compact, delete",
    );
    assert_error(
        create_one(
            &controller,
            with_configs(spec("t", 1, 1), &[("log.retention.ms", "1")]),
        )
        .await,
        ErrorCode::InvalidConfig,
        "Unknown topic config name: log.retention.ms",
    );
    // Config errors come before partition checks, as in Kafka.
    assert_error(
        create_one(
            &controller,
            with_configs(spec("t", 0, 1), &[("min.insync.replicas", "0")]),
        )
        .await,
        ErrorCode::InvalidConfig,
        "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1",
    );
    assert!(controller.image().topic_by_name("t").is_none());
}

#[tokio::test]
async fn validate_only_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    let before = controller.image();
    let log_file = dir.path().join("__cluster_metadata-0").join("metadata.log");
    let size = std::fs::metadata(&log_file).unwrap().len();

    let results = controller
        .create_topics(
            vec![
                with_configs(spec("t", 2, 1), &[("retention.ms", "5")]),
                spec("bad name", 1, 1),
            ],
            true,
        )
        .await;
    let created = results[0].clone().unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (2, 1));
    assert!(results[1].is_err());
    assert_eq!(controller.image(), before);
    assert_eq!(std::fs::metadata(&log_file).unwrap().len(), size);

    // And CreatePartitions likewise.
    create_one(&controller, spec("real", 1, 1)).await.unwrap();
    let before = controller.image();
    let results = controller
        .create_partitions(
            vec![NewPartitionsSpec {
                name: "real".into(),
                count: 4,
                assignments: vec![],
            }],
            true,
        )
        .await;
    assert!(results[0].is_ok());
    assert_eq!(controller.image(), before);
    drop(controller);
    let reopened = Controller::open(config(dir.path())).await.unwrap();
    assert!(reopened.image().topic_by_name("t").is_none());
    assert_eq!(
        reopened
            .image()
            .topic_by_name("real")
            .unwrap()
            .partitions
            .len(),
        1
    );
}

#[tokio::test]
async fn reopen_replays_an_identical_image() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 3).await;
    create_one(
        &controller,
        with_configs(spec("a", 4, 3), &[("segment.ms", "100")]),
    )
    .await
    .unwrap();
    create_one(&controller, spec("b.c", 2, 2)).await.unwrap();
    create_one(&controller, manual("d", &[(0, &[2])]))
        .await
        .unwrap();
    controller
        .create_partitions(
            vec![NewPartitionsSpec {
                name: "b.c".into(),
                count: 5,
                assignments: vec![],
            }],
            false,
        )
        .await;
    controller
        .delete_topics(vec![TopicRef::Name("d".into())])
        .await;
    let image = controller.image();
    drop(controller);

    let reopened = Controller::open(config(dir.path())).await.unwrap();
    assert_eq!(*reopened.image(), *image);
    // Writing continues at the next offset.
    create_one(&reopened, spec("e", 1, 1)).await.unwrap();
    assert_eq!(reopened.image().offset, image.offset + 2);
}

#[tokio::test]
async fn reopen_after_a_torn_write_keeps_the_committed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    create_one(&controller, spec("kept", 1, 1)).await.unwrap();
    let committed = controller.image();
    create_one(&controller, spec("torn", 1, 1)).await.unwrap();
    drop(controller);

    let log_file = dir.path().join("__cluster_metadata-0").join("metadata.log");
    let bytes = std::fs::read(&log_file).unwrap();
    std::fs::write(&log_file, &bytes[..bytes.len() - 10]).unwrap();
    let reopened = Controller::open(config(dir.path())).await.unwrap();
    assert_eq!(*reopened.image(), *committed);

    // A damaged entry in the middle is refused.
    drop(reopened);
    let mut bytes = std::fs::read(&log_file).unwrap();
    bytes[20] ^= 0x55;
    std::fs::write(&log_file, &bytes).unwrap();
    let err = Controller::open(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, MetadataError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn delete_then_recreate_gets_a_new_id() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    let first = create_one(
        &controller,
        with_configs(spec("t", 2, 1), &[("retention.ms", "1")]),
    )
    .await
    .unwrap();

    let deleted = controller
        .delete_topics(vec![TopicRef::Name("t".into())])
        .await;
    let deleted = deleted[0].clone().unwrap();
    assert_eq!(
        (deleted.name.as_str(), deleted.topic_id),
        ("t", first.topic_id)
    );
    let image = controller.image();
    assert!(image.topic_by_name("t").is_none());
    assert!(image.configs(ConfigResourceType::Topic, "t").is_none());

    let second = create_one(&controller, spec("t", 1, 1)).await.unwrap();
    assert_ne!(second.topic_id, first.topic_id);
    let image = controller.image();
    assert_eq!(image.topic_by_name("t").unwrap().id, second.topic_id);
    assert!(image.configs(ConfigResourceType::Topic, "t").is_none());

    // By id.
    let deleted = controller
        .delete_topics(vec![TopicRef::Id(second.topic_id)])
        .await;
    assert_eq!(deleted[0].clone().unwrap().name, "t");
    assert!(controller.image().topics().is_empty());
}

#[tokio::test]
async fn delete_errors() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    let created = create_one(&controller, spec("t", 1, 1)).await.unwrap();
    let offset = controller.image().offset;
    let results = controller
        .delete_topics(vec![
            TopicRef::Name("missing".into()),
            TopicRef::Id(Uuid::new_v4()),
            TopicRef::Id(Uuid::nil()),
        ])
        .await;
    assert_error(
        results[0].clone(),
        ErrorCode::UnknownTopicOrPartition,
        "This server does not host this topic-partition.",
    );
    assert_error(
        results[1].clone(),
        ErrorCode::UnknownTopicId,
        "This server does not host this topic ID.",
    );
    assert_error(
        results[2].clone(),
        ErrorCode::InvalidRequest,
        "Attempt to find topic with invalid topicId AAAAAAAAAAAAAAAAAAAAAA",
    );
    assert_eq!(controller.image().offset, offset);

    // The same topic twice in one request is deleted once.
    let results = controller
        .delete_topics(vec![
            TopicRef::Name("t".into()),
            TopicRef::Id(created.topic_id),
        ])
        .await;
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].clone().unwrap_err().code,
        ErrorCode::UnknownTopicId
    );
    assert_eq!(controller.image().offset, offset + 1);
}

#[tokio::test]
async fn create_partitions_grows_topics() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 3).await;
    let created = create_one(&controller, spec("t", 2, 2)).await.unwrap();

    let results = controller
        .create_partitions(
            vec![NewPartitionsSpec {
                name: "t".into(),
                count: 5,
                assignments: vec![],
            }],
            false,
        )
        .await;
    assert_eq!(results, [Ok(())]);
    let image = controller.image();
    let topic = image.topic_by_name("t").unwrap();
    assert_eq!(topic.id, created.topic_id);
    assert_eq!(
        topic.partitions.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    // New partitions keep the topic's replication factor.
    assert!(
        topic
            .partitions
            .values()
            .all(|p| p.replicas.len() == 2 && p.isr == p.replicas)
    );

    let results = controller
        .create_partitions(
            vec![NewPartitionsSpec {
                name: "t".into(),
                count: 7,
                assignments: vec![vec![3, 1], vec![2, 3]],
            }],
            false,
        )
        .await;
    assert_eq!(results, [Ok(())]);
    let image = controller.image();
    let topic = image.topic_by_name("t").unwrap();
    assert_eq!(topic.partitions[&5].replicas, [3, 1]);
    assert_eq!(topic.partitions[&6].leader, 2);
}

#[tokio::test]
async fn create_partitions_errors() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 2).await;
    create_one(&controller, spec("t", 3, 2)).await.unwrap();
    let offset = controller.image().offset;
    let partitions = |name: &str, count: i32, assignments: Vec<Vec<i32>>| NewPartitionsSpec {
        name: name.into(),
        count,
        assignments,
    };
    let results = controller
        .create_partitions(
            vec![
                partitions("missing", 4, vec![]),
                partitions("t", 3, vec![]),
                partitions("t", 2, vec![]),
                partitions("t", 5, vec![vec![1, 2]]),
                partitions("t", 4, vec![vec![1]]),
                partitions("t", 4, vec![vec![1, 9]]),
                partitions("t", 100_000, vec![]),
            ],
            false,
        )
        .await;
    let mut results = results.into_iter();
    let missing = results.next().unwrap().unwrap_err();
    assert_eq!(missing.code, ErrorCode::UnknownTopicOrPartition);
    assert_error(
        results.next().unwrap(),
        ErrorCode::InvalidPartitions,
        "Topic already has 3 partition(s).",
    );
    assert_error(
        results.next().unwrap(),
        ErrorCode::InvalidPartitions,
        "The topic t currently has 3 partition(s); 2 would not be an increase.",
    );
    assert_error(
        results.next().unwrap(),
        ErrorCode::InvalidReplicaAssignment,
        "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.",
    );
    assert_error(
        results.next().unwrap(),
        ErrorCode::InvalidReplicaAssignment,
        "The manual partition assignment includes a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s).",
    );
    assert_error(
        results.next().unwrap(),
        ErrorCode::InvalidReplicaAssignment,
        "The manual partition assignment includes broker 9, but no such broker is registered.",
    );
    assert_error(
        results.next().unwrap(),
        ErrorCode::PolicyViolation,
        "Excessively large number of partitions per request.",
    );
    assert_eq!(controller.image().offset, offset);
}

#[tokio::test]
async fn subscribers_see_new_images() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), 1).await;
    let mut images = controller.subscribe();
    assert!(images.borrow_and_update().topic_by_name("t").is_none());

    create_one(&controller, spec("t", 1, 1)).await.unwrap();
    assert!(images.has_changed().unwrap());
    let seen = images.borrow_and_update().clone();
    assert!(seen.topic_by_name("t").is_some());
    assert_eq!(seen, controller.image());

    // A failed request publishes nothing.
    create_one(&controller, spec("t", 1, 1)).await.unwrap_err();
    assert!(!images.has_changed().unwrap());

    // A waiting subscriber wakes up.
    let waiter = tokio::spawn(async move {
        images.changed().await.unwrap();
        images.borrow().topic_by_name("u").is_some()
    });
    create_one(&controller, spec("u", 1, 1)).await.unwrap();
    assert!(waiter.await.unwrap());
}

#[tokio::test]
async fn broker_registration() {
    let dir = tempfile::tempdir().unwrap();
    let controller = Controller::open(config(dir.path())).await.unwrap();
    let registration = registration(1);
    controller
        .register_broker(registration.clone())
        .await
        .unwrap();
    let image = controller.image();
    let broker = &image.brokers[&1];
    assert!(!broker.fenced, "registration unfences");
    assert_eq!(broker.incarnation_id, registration.incarnation_id);

    // A retry changes nothing; a new incarnation replaces the old one.
    controller
        .register_broker(registration.clone())
        .await
        .unwrap();
    assert_eq!(controller.image().offset, image.offset);
    let restarted = RegisterBrokerRecord {
        incarnation_id: Uuid::new_v4(),
        ..registration
    };
    controller.register_broker(restarted.clone()).await.unwrap();
    assert_eq!(
        controller.image().brokers[&1].incarnation_id,
        restarted.incarnation_id
    );
    assert_eq!(controller.image().brokers.len(), 1);

    let err = controller
        .register_broker(self::registration(-1))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn concurrent_writers_are_serialised() {
    let dir = tempfile::tempdir().unwrap();
    let controller = std::sync::Arc::new(controller(dir.path(), 1).await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let controller = controller.clone();
        tasks.push(tokio::spawn(async move {
            create_one(&controller, spec(&format!("t{}", i % 10), 1, 1)).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code, ErrorCode::TopicAlreadyExists),
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(controller.image().topics().len(), 10);
    let image = controller.image();
    drop(controller);
    let reopened = Controller::open(config(dir.path())).await.unwrap();
    assert_eq!(*reopened.image(), *image);
}
