//! IncrementalAlterConfigs and AlterConfigs end to end over a real metadata log in a temp dir:
//! SET/DELETE/APPEND/SUBTRACT on topic and broker configs, Kafka's errors with their messages,
//! validate-only, the legacy API's replace semantics, dynamic broker configs as seen by
//! DescribeConfigs and topic-config resolution, durability across a reopen, and publication.

use std::collections::BTreeMap;
use std::path::Path;

use strom_metadata::config::{
    self, BrokerConfigView, ConfigSource, DescribedConfig, broker_config_view,
};
use strom_metadata::records::{ConfigResourceType, Endpoint, RegisterBrokerRecord};
use strom_metadata::{
    AlterConfigOp, ConfigChange, Controller, ControllerConfig, CreateTopicSpec, OpType,
};
use strom_protocol::{ApiError, ErrorCode};
use uuid::Uuid;

use ConfigResourceType::{Broker, Topic};

const NODE: i32 = 1;

fn controller_config(dir: &Path) -> ControllerConfig {
    ControllerConfig {
        node_id: NODE,
        metadata_log_dir: dir.to_path_buf(),
        num_partitions: 1,
        default_replication_factor: 1,
    }
}

/// A controller for node 1 over `dir`, with node 1 registered (when `register`) and the given
/// topics created.
async fn controller(dir: &Path, register: bool, topics: &[&str]) -> Controller {
    let controller = Controller::open(controller_config(dir)).await.unwrap();
    if register {
        controller
            .register_broker(RegisterBrokerRecord {
                broker_id: NODE,
                incarnation_id: Uuid::new_v4(),
                listeners: vec![Endpoint {
                    name: "PLAINTEXT".to_string(),
                    host: "localhost".to_string(),
                    port: 9092,
                    security_protocol: "PLAINTEXT".to_string(),
                }],
                rack: None,
                fenced: false,
            })
            .await
            .unwrap();
    }
    for name in topics {
        let created = controller
            .create_topics(
                vec![CreateTopicSpec {
                    name: name.to_string(),
                    num_partitions: 1,
                    replication_factor: 1,
                    assignments: BTreeMap::new(),
                    configs: BTreeMap::new(),
                }],
                false,
            )
            .await;
        created.into_iter().for_each(|r| drop(r.unwrap()));
    }
    controller
}

fn op(name: &str, op: OpType, value: Option<&str>) -> AlterConfigOp {
    AlterConfigOp {
        name: name.to_string(),
        op,
        value: value.map(str::to_string),
    }
}

fn set(name: &str, value: &str) -> AlterConfigOp {
    op(name, OpType::Set, Some(value))
}

fn delete(name: &str) -> AlterConfigOp {
    op(name, OpType::Delete, None)
}

fn append(name: &str, value: &str) -> AlterConfigOp {
    op(name, OpType::Append, Some(value))
}

fn subtract(name: &str, value: &str) -> AlterConfigOp {
    op(name, OpType::Subtract, Some(value))
}

fn change(resource_type: ConfigResourceType, name: &str, ops: Vec<AlterConfigOp>) -> ConfigChange {
    ConfigChange {
        resource_type,
        resource_name: name.to_string(),
        ops,
    }
}

/// One incremental change, validated and (unless `validate_only`) applied.
async fn alter(
    controller: &Controller,
    resource_type: ConfigResourceType,
    name: &str,
    ops: Vec<AlterConfigOp>,
) -> Result<(), ApiError> {
    controller
        .incremental_alter_configs(vec![change(resource_type, name, ops)], false)
        .await
        .remove(0)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn legacy(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

fn configs_of(
    controller: &Controller,
    resource_type: ConfigResourceType,
    name: &str,
) -> BTreeMap<String, String> {
    controller
        .image()
        .configs(resource_type, name)
        .cloned()
        .unwrap_or_default()
}

#[track_caller]
fn assert_error(result: Result<(), ApiError>, code: ErrorCode, message: &str) {
    let error = result.expect_err("expected an error");
    assert_eq!(error.code, code, "{error}");
    assert_eq!(error.message.as_deref(), Some(message));
}

fn find<'a>(described: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
    described
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

#[tokio::test]
async fn set_and_delete_topic_configs() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;

    let offset = controller.image().offset;
    alter(
        &controller,
        Topic,
        "t",
        vec![
            set("retention.ms", "1000"),
            set("cleanup.policy", "compact"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        configs_of(&controller, Topic, "t"),
        map(&[("cleanup.policy", "compact"), ("retention.ms", "1000")])
    );
    // One batch of two records.
    assert_eq!(controller.image().offset, offset + 2);

    // Deleting a key that is not set is no error and writes nothing; setting the same value
    // again writes nothing either.
    let offset = controller.image().offset;
    alter(
        &controller,
        Topic,
        "t",
        vec![delete("segment.ms"), set("cleanup.policy", "compact")],
    )
    .await
    .unwrap();
    assert_eq!(controller.image().offset, offset);

    alter(&controller, Topic, "t", vec![delete("retention.ms")])
        .await
        .unwrap();
    assert_eq!(
        configs_of(&controller, Topic, "t"),
        map(&[("cleanup.policy", "compact")])
    );
    assert_eq!(controller.image().offset, offset + 1);

    // The new value is what the topic's partitions resolve.
    let effective = config::effective_topic_configs(
        &configs_of(&controller, Topic, "t"),
        &BrokerConfigView::default(),
    );
    assert_eq!(effective["cleanup.policy"], "compact");
    assert_eq!(effective["retention.ms"], "604800000");
}

#[tokio::test]
async fn append_and_subtract_list_configs() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;
    let policy = |controller: &Controller| {
        configs_of(controller, Topic, "t")
            .get("cleanup.policy")
            .cloned()
    };

    // Without an override, APPEND starts from the default ("delete").
    alter(
        &controller,
        Topic,
        "t",
        vec![append("cleanup.policy", "compact")],
    )
    .await
    .unwrap();
    assert_eq!(policy(&controller).as_deref(), Some("delete,compact"));

    // Present items are not added twice; nothing changes, nothing is written.
    let offset = controller.image().offset;
    alter(
        &controller,
        Topic,
        "t",
        vec![append("cleanup.policy", "compact,delete,compact")],
    )
    .await
    .unwrap();
    assert_eq!(policy(&controller).as_deref(), Some("delete,compact"));
    assert_eq!(controller.image().offset, offset);

    alter(
        &controller,
        Topic,
        "t",
        vec![subtract("cleanup.policy", "delete")],
    )
    .await
    .unwrap();
    assert_eq!(policy(&controller).as_deref(), Some("compact"));
    // Subtracting an absent item is harmless.
    alter(
        &controller,
        Topic,
        "t",
        vec![subtract("cleanup.policy", "delete")],
    )
    .await
    .unwrap();
    assert_eq!(policy(&controller).as_deref(), Some("compact"));
    alter(
        &controller,
        Topic,
        "t",
        vec![append("cleanup.policy", "delete")],
    )
    .await
    .unwrap();
    assert_eq!(policy(&controller).as_deref(), Some("compact,delete"));
    // Subtracting everything leaves an empty list, not the default.
    alter(
        &controller,
        Topic,
        "t",
        vec![subtract("cleanup.policy", "compact,delete")],
    )
    .await
    .unwrap();
    assert_eq!(policy(&controller).as_deref(), Some(""));

    // Another LIST config, starting from an empty default.
    let throttled = "leader.replication.throttled.replicas";
    alter(&controller, Topic, "t", vec![append(throttled, "0:1")])
        .await
        .unwrap();
    alter(&controller, Topic, "t", vec![append(throttled, "1:1,0:1")])
        .await
        .unwrap();
    assert_eq!(configs_of(&controller, Topic, "t")[throttled], "0:1,1:1");

    // The resulting value is validated.
    assert_error(
        alter(
            &controller,
            Topic,
            "t",
            vec![append("cleanup.policy", "remove")],
        )
        .await,
        ErrorCode::InvalidConfig,
        "Invalid value remove for configuration cleanup.policy: String must be one of: compact, delete",
    );

    // APPEND and SUBTRACT need a LIST config (Kafka's controller message for topics).
    assert_error(
        alter(&controller, Topic, "t", vec![append("retention.ms", "1")]).await,
        ErrorCode::InvalidConfig,
        "Can't APPEND to key retention.ms because its type is not LIST.",
    );
    assert_error(
        alter(&controller, Topic, "t", vec![subtract("retention.ms", "1")]).await,
        ErrorCode::InvalidConfig,
        "Can't SUBTRACT to key retention.ms because its type is not LIST.",
    );
    assert_error(
        alter(&controller, Topic, "t", vec![append("no.such.config", "1")]).await,
        ErrorCode::InvalidConfig,
        "Can't APPEND to key no.such.config because its type is not LIST.",
    );
    assert_eq!(configs_of(&controller, Topic, "t")[throttled], "0:1,1:1");
}

#[tokio::test]
async fn invalid_topic_configs_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;
    alter(&controller, Topic, "t", vec![set("retention.ms", "1000")])
        .await
        .unwrap();
    let offset = controller.image().offset;

    let invalid = ErrorCode::InvalidConfig;
    assert_error(
        alter(&controller, Topic, "t", vec![set("retention.ms", "soon")]).await,
        invalid,
        "Invalid value soon for configuration retention.ms: Not a number of type LONG",
    );
    assert_error(
        alter(&controller, Topic, "t", vec![set("segment.bytes", "1000")]).await,
        invalid,
        "Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576",
    );
    assert_error(
        alter(&controller, Topic, "t", vec![set("retention.hours", "1")]).await,
        invalid,
        "Unknown topic config name: retention.hours",
    );
    // The whole resulting set is validated, existing overrides included.
    alter(
        &controller,
        Topic,
        "t",
        vec![set("max.compaction.lag.ms", "100")],
    )
    .await
    .unwrap();
    let offset_with_lag = controller.image().offset;
    assert_error(
        alter(
            &controller,
            Topic,
            "t",
            vec![set("min.compaction.lag.ms", "500")],
        )
        .await,
        invalid,
        "conflict topic config setting min.compaction.lag.ms (500) > max.compaction.lag.ms (100)",
    );
    // One bad op fails the resource: the good ops next to it are not applied.
    assert_error(
        alter(
            &controller,
            Topic,
            "t",
            vec![set("retention.ms", "2000"), set("preallocate", "maybe")],
        )
        .await,
        invalid,
        "Invalid value maybe for configuration preallocate: Expected value to be either true or false",
    );
    assert_eq!(controller.image().offset, offset_with_lag);
    assert_eq!(offset_with_lag, offset + 1);
    assert_eq!(configs_of(&controller, Topic, "t")["retention.ms"], "1000");
}

#[tokio::test]
async fn request_shape_errors() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t", "u"]).await;

    assert_error(
        alter(
            &controller,
            Topic,
            "t",
            vec![set("retention.ms", "1"), delete("retention.ms")],
        )
        .await,
        ErrorCode::InvalidRequest,
        "Error due to duplicate config keys",
    );
    assert_error(
        alter(
            &controller,
            Topic,
            "t",
            vec![
                op("retention.ms", OpType::Set, None),
                delete("segment.ms"),
                op("cleanup.policy", OpType::Append, None),
            ],
        )
        .await,
        ErrorCode::InvalidRequest,
        "Null value not supported for : retention.ms, cleanup.policy",
    );

    // Each resource stands alone: a resource named twice fails both times, the others go on.
    let results = controller
        .incremental_alter_configs(
            vec![
                change(Topic, "t", vec![set("retention.ms", "1")]),
                change(Topic, "u", vec![set("retention.ms", "2")]),
                change(Topic, "t", vec![set("segment.ms", "3")]),
                change(Topic, "missing", vec![set("retention.ms", "4")]),
                change(Broker, "t", vec![]),
            ],
            false,
        )
        .await;
    let mut results = results.into_iter();
    let twice = "Each resource must appear at most once.";
    assert_error(results.next().unwrap(), ErrorCode::InvalidRequest, twice);
    assert_eq!(results.next().unwrap(), Ok(()));
    assert_error(results.next().unwrap(), ErrorCode::InvalidRequest, twice);
    assert_error(
        results.next().unwrap(),
        ErrorCode::UnknownTopicOrPartition,
        "The topic 'missing' does not exist.",
    );
    // Same name, other type: a different resource.
    assert_error(
        results.next().unwrap(),
        ErrorCode::InvalidRequest,
        "Node id must be an integer, but it is: t",
    );
    assert!(configs_of(&controller, Topic, "t").is_empty());
    assert_eq!(
        configs_of(&controller, Topic, "u"),
        map(&[("retention.ms", "2")])
    );
}

#[tokio::test]
async fn topic_names() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &[]).await;
    assert_error(
        alter(
            &controller,
            Topic,
            "missing",
            vec![set("retention.ms", "1")],
        )
        .await,
        ErrorCode::UnknownTopicOrPartition,
        "The topic 'missing' does not exist.",
    );
    // Kafka validates the configs before it looks for the topic.
    assert_error(
        alter(
            &controller,
            Topic,
            "missing",
            vec![set("retention.ms", "x")],
        )
        .await,
        ErrorCode::InvalidConfig,
        "Invalid value x for configuration retention.ms: Not a number of type LONG",
    );
    assert_error(
        alter(&controller, Topic, "", vec![set("retention.ms", "1")]).await,
        ErrorCode::InvalidRequest,
        "Default topic resources are not allowed.",
    );
    let error = alter(&controller, Topic, "a/b", vec![set("retention.ms", "1")])
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidTopicException);
}

#[tokio::test]
async fn validate_only_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;
    alter(&controller, Topic, "t", vec![set("retention.ms", "1000")])
        .await
        .unwrap();
    let before = controller.image();

    let results = controller
        .incremental_alter_configs(
            vec![
                change(Topic, "t", vec![set("segment.ms", "5000")]),
                change(Topic, "t2", vec![set("segment.ms", "5000")]),
                change(Broker, "1", vec![set("num.io.threads", "16")]),
                change(Broker, "", vec![set("num.partitions", "4")]),
            ],
            true,
        )
        .await;
    assert_eq!(results[0], Ok(()));
    assert_eq!(
        results[1].clone().unwrap_err().code,
        ErrorCode::UnknownTopicOrPartition
    );
    assert_eq!(results[2], Ok(()));
    assert_error(
        results[3].clone(),
        ErrorCode::InvalidRequest,
        "Cannot update these configs dynamically: Set(num.partitions)",
    );

    let results = controller
        .alter_configs(
            vec![
                (Topic, "t".to_string(), legacy(&[("segment.ms", Some("1"))])),
                (Topic, "t".to_string(), legacy(&[])),
            ],
            true,
        )
        .await;
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.is_err()));
    let results = controller
        .alter_configs(
            vec![(Topic, "t".to_string(), legacy(&[("segment.ms", Some("1"))]))],
            true,
        )
        .await;
    assert_eq!(results, [Ok(())]);

    assert_eq!(*controller.image(), *before);
    drop(controller);
    let reopened = Controller::open(controller_config(dir.path()))
        .await
        .unwrap();
    assert_eq!(*reopened.image(), *before);
}

#[tokio::test]
async fn legacy_alter_configs_replaces_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;
    alter(
        &controller,
        Topic,
        "t",
        vec![
            set("retention.ms", "1000"),
            set("cleanup.policy", "compact"),
        ],
    )
    .await
    .unwrap();

    let results = controller
        .alter_configs(
            vec![(
                Topic,
                "t".to_string(),
                legacy(&[("retention.ms", Some("2000")), ("segment.ms", Some("3000"))]),
            )],
            false,
        )
        .await;
    assert_eq!(results, [Ok(())]);
    // cleanup.policy was not given: it is gone.
    assert_eq!(
        configs_of(&controller, Topic, "t"),
        map(&[("retention.ms", "2000"), ("segment.ms", "3000")])
    );

    // A null value is refused and changes nothing.
    let results = controller
        .alter_configs(
            vec![(
                Topic,
                "t".to_string(),
                legacy(&[("retention.ms", None), ("segment.ms", None)]),
            )],
            false,
        )
        .await;
    assert_error(
        results[0].clone(),
        ErrorCode::InvalidRequest,
        "Null value not supported for : retention.ms, segment.ms",
    );
    // Invalid values, unknown topics: as for the incremental API.
    let results = controller
        .alter_configs(
            vec![
                (
                    Topic,
                    "t".to_string(),
                    legacy(&[("retention.ms", Some("x"))]),
                ),
                (Topic, "nope".to_string(), legacy(&[])),
            ],
            false,
        )
        .await;
    assert_error(
        results[0].clone(),
        ErrorCode::InvalidConfig,
        "Invalid value x for configuration retention.ms: Not a number of type LONG",
    );
    assert_error(
        results[1].clone(),
        ErrorCode::UnknownTopicOrPartition,
        "The topic 'nope' does not exist.",
    );
    assert_eq!(configs_of(&controller, Topic, "t").len(), 2);

    // An empty set removes every override.
    let results = controller
        .alter_configs(vec![(Topic, "t".to_string(), legacy(&[]))], false)
        .await;
    assert_eq!(results, [Ok(())]);
    assert!(controller.image().configs(Topic, "t").is_none());

    // Brokers too.
    let results = controller
        .alter_configs(
            vec![(
                Broker,
                "1".to_string(),
                legacy(&[("num.io.threads", Some("4"))]),
            )],
            false,
        )
        .await;
    assert_eq!(results, [Ok(())]);
    let results = controller
        .alter_configs(
            vec![(
                Broker,
                "1".to_string(),
                legacy(&[("log.cleaner.threads", Some("2"))]),
            )],
            false,
        )
        .await;
    assert_eq!(results, [Ok(())]);
    assert_eq!(
        configs_of(&controller, Broker, "1"),
        map(&[("log.cleaner.threads", "2")])
    );
    let results = controller
        .alter_configs(
            vec![(
                Broker,
                "".to_string(),
                legacy(&[("listeners", Some("PLAINTEXT://:9092"))]),
            )],
            false,
        )
        .await;
    assert_error(
        results[0].clone(),
        ErrorCode::InvalidRequest,
        "Cannot update these configs at default cluster level, broker id must be specified: Set(listeners)",
    );
}

#[tokio::test]
async fn dynamic_broker_configs_are_described_with_their_sources() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;
    let static_props = map(&[("num.io.threads", "4"), ("log.retention.hours", "1")]);

    alter(
        &controller,
        Broker,
        "",
        vec![
            set("log.retention.ms", "7200000"),
            set("num.io.threads", "6"),
        ],
    )
    .await
    .unwrap();
    alter(&controller, Broker, "1", vec![set("num.io.threads", "16")])
        .await
        .unwrap();

    let image = controller.image();
    let view = broker_config_view(&image, NODE, static_props.clone());
    assert_eq!(view.dynamic, map(&[("num.io.threads", "16")]));
    assert_eq!(
        view.dynamic_default,
        map(&[("log.retention.ms", "7200000"), ("num.io.threads", "6")])
    );
    assert_eq!(view.static_props, static_props);
    // Another node's view has no per-broker part.
    assert!(
        broker_config_view(&image, 2, BTreeMap::new())
            .dynamic
            .is_empty()
    );

    let described = config::describe_broker(&view, true);
    let io = find(&described, "num.io.threads");
    assert_eq!(io.value.as_deref(), Some("16"));
    assert_eq!(io.source, ConfigSource::DynamicBrokerConfig);
    let sources: Vec<_> = io.synonyms.iter().map(|s| s.source).collect();
    assert_eq!(
        sources,
        [
            ConfigSource::DynamicBrokerConfig,
            ConfigSource::DynamicDefaultBrokerConfig,
            ConfigSource::StaticBrokerConfig,
            ConfigSource::DefaultConfig,
        ]
    );
    let retention = find(&described, "log.retention.ms");
    assert_eq!(retention.value.as_deref(), Some("7200000"));
    assert_eq!(retention.source, ConfigSource::DynamicDefaultBrokerConfig);

    // Topic configs fall back to the dynamic broker values: the cluster default beats the static
    // log.retention.hours, a per-broker value beats the default, a topic override beats both.
    let effective = config::effective_topic_configs(&BTreeMap::new(), &view);
    assert_eq!(effective["retention.ms"], "7200000");
    let topic = config::describe_topic(&BTreeMap::new(), &view, false);
    assert_eq!(
        find(&topic, "retention.ms").source,
        ConfigSource::DynamicDefaultBrokerConfig
    );

    alter(
        &controller,
        Broker,
        "1",
        vec![set("log.retention.ms", "1000")],
    )
    .await
    .unwrap();
    let view = broker_config_view(&controller.image(), NODE, static_props.clone());
    assert_eq!(
        config::effective_topic_configs(&BTreeMap::new(), &view)["retention.ms"],
        "1000"
    );
    let topic = config::describe_topic(&BTreeMap::new(), &view, true);
    let retention = find(&topic, "retention.ms");
    assert_eq!(retention.source, ConfigSource::DynamicBrokerConfig);
    assert_eq!(
        retention
            .synonyms
            .iter()
            .map(|s| s.source)
            .collect::<Vec<_>>(),
        [
            ConfigSource::DynamicBrokerConfig,
            ConfigSource::DynamicDefaultBrokerConfig,
            ConfigSource::StaticBrokerConfig,
            ConfigSource::DefaultConfig,
        ]
    );
    alter(&controller, Topic, "t", vec![set("retention.ms", "5")])
        .await
        .unwrap();
    let image = controller.image();
    let overrides = image.configs(Topic, "t").cloned().unwrap_or_default();
    assert_eq!(
        config::effective_topic_configs(&overrides, &view)["retention.ms"],
        "5"
    );

    // Deleting the per-broker value falls back to the cluster default.
    alter(&controller, Broker, "1", vec![delete("log.retention.ms")])
        .await
        .unwrap();
    let view = broker_config_view(&controller.image(), NODE, static_props);
    assert_eq!(
        config::effective_topic_configs(&BTreeMap::new(), &view)["retention.ms"],
        "7200000"
    );

    // The cluster default described on its own lists only what is set there.
    let defaults = config::describe_broker_defaults(&view, false);
    let names: Vec<_> = defaults.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["log.retention.ms", "num.io.threads"]);
}

#[tokio::test]
async fn broker_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &[]).await;
    let offset = controller.image().offset;
    let refused = ErrorCode::InvalidRequest;

    assert_error(
        alter(&controller, Broker, "1", vec![set("num.partitions", "3")]).await,
        refused,
        "Cannot update these configs dynamically: Set(num.partitions)",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "",
            vec![
                set("num.partitions", "3"),
                set("log.cleaner.enable", "false"),
            ],
        )
        .await,
        refused,
        "Cannot update these configs dynamically: Set(log.cleaner.enable, num.partitions)",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "1",
            vec![set("log.retention.hours", "1")],
        )
        .await,
        refused,
        "Cannot update these configs dynamically: Set(log.retention.hours)",
    );
    // Values are checked by the broker config definitions; Kafka answers INVALID_REQUEST.
    assert_error(
        alter(&controller, Broker, "1", vec![set("num.io.threads", "0")]).await,
        refused,
        "Invalid value 0 for configuration num.io.threads: Value must be at least 1",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "",
            vec![set("log.segment.bytes", "big")],
        )
        .await,
        refused,
        "Invalid value big for configuration log.segment.bytes: Not a number of type INT",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "",
            vec![set("listeners", "PLAINTEXT://:9093")],
        )
        .await,
        refused,
        "Cannot update these configs at default cluster level, broker id must be specified: Set(listeners)",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "1",
            vec![set("ssl.keystore.password", "x")],
        )
        .await,
        refused,
        "These security configs can be dynamically updated only per-listener using the listener prefix: Set(ssl.keystore.password)",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "",
            vec![set("listener.name.external.ssl.keystore.password", "x")],
        )
        .await,
        refused,
        "Cannot update these configs at default cluster level, broker id must be specified: Set(listener.name.external.ssl.keystore.password)",
    );
    assert_error(
        alter(&controller, Broker, "2", vec![set("num.io.threads", "4")]).await,
        refused,
        "Unexpected broker id, expected 1, but received 2",
    );
    assert_error(
        alter(&controller, Broker, "one", vec![set("num.io.threads", "4")]).await,
        refused,
        "Node id must be an integer, but it is: one",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "1",
            vec![append("num.io.threads", "4")],
        )
        .await,
        ErrorCode::InvalidConfig,
        "Config value append is not allowed for config key: num.io.threads",
    );
    assert_error(
        alter(
            &controller,
            Broker,
            "1",
            vec![subtract("num.io.threads", "4")],
        )
        .await,
        ErrorCode::InvalidConfig,
        "Config value subtract is not allowed for config key: num.io.threads",
    );
    assert_eq!(controller.image().offset, offset);

    // What may change dynamically does, per broker or cluster-wide.
    alter(
        &controller,
        Broker,
        "1",
        vec![
            set("listeners", "PLAINTEXT://:9093"),
            set("listener.name.external.ssl.keystore.password", "secret"),
            set("max.connections", "100"),
        ],
    )
    .await
    .unwrap();
    alter(
        &controller,
        Broker,
        "",
        vec![
            set("max.connections", "200"),
            set("listener.name.external.max.connections", "50"),
            set("log.cleaner.threads", "2"),
            set("log.flush.interval.ms", "1000"),
            set("message.max.bytes", "2000000"),
            // A name strom does not know is a custom config, which Kafka stores too.
            set("custom.plugin.setting", "x"),
        ],
    )
    .await
    .unwrap();
    // LIST broker configs take APPEND, starting from their default.
    alter(
        &controller,
        Broker,
        "",
        vec![append("log.cleanup.policy", "compact")],
    )
    .await
    .unwrap();
    assert_eq!(
        configs_of(&controller, Broker, "")["log.cleanup.policy"],
        "delete,compact"
    );
    // Unchanged broker values are still written (Kafka does, so that brokers reload).
    let offset = controller.image().offset;
    alter(
        &controller,
        Broker,
        "",
        vec![set("log.cleaner.threads", "2")],
    )
    .await
    .unwrap();
    assert_eq!(controller.image().offset, offset + 1);
}

#[tokio::test]
async fn broker_resources_need_a_registered_node() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), false, &[]).await;
    assert_error(
        alter(&controller, Broker, "1", vec![set("num.io.threads", "4")]).await,
        ErrorCode::BrokerIdNotRegistered,
        "No node with id 1 found.",
    );
    // The cluster default needs no broker.
    alter(&controller, Broker, "", vec![set("num.io.threads", "4")])
        .await
        .unwrap();
}

#[tokio::test]
async fn changes_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;
    alter(
        &controller,
        Topic,
        "t",
        vec![
            set("retention.ms", "1000"),
            append("cleanup.policy", "compact"),
        ],
    )
    .await
    .unwrap();
    alter(&controller, Broker, "1", vec![set("num.io.threads", "16")])
        .await
        .unwrap();
    alter(
        &controller,
        Broker,
        "",
        vec![set("log.retention.ms", "60000")],
    )
    .await
    .unwrap();
    let results = controller
        .alter_configs(
            vec![(
                Broker,
                "1".to_string(),
                legacy(&[("background.threads", Some("4"))]),
            )],
            false,
        )
        .await;
    assert_eq!(results, [Ok(())]);
    let before = controller.image();
    drop(controller);

    let reopened = Controller::open(controller_config(dir.path()))
        .await
        .unwrap();
    let after = reopened.image();
    assert_eq!(*after, *before);
    assert_eq!(
        after.configs(Topic, "t").cloned().unwrap_or_default(),
        map(&[
            ("cleanup.policy", "delete,compact"),
            ("retention.ms", "1000")
        ])
    );
    assert_eq!(
        after.configs(Broker, "1").cloned().unwrap_or_default(),
        map(&[("background.threads", "4")])
    );
    assert_eq!(
        after.configs(Broker, "").cloned().unwrap_or_default(),
        map(&[("log.retention.ms", "60000")])
    );
}

#[tokio::test]
async fn subscribers_see_config_changes() {
    let dir = tempfile::tempdir().unwrap();
    let controller = controller(dir.path(), true, &["t"]).await;
    let mut images = controller.subscribe();
    drop(images.borrow_and_update());

    alter(&controller, Topic, "t", vec![set("retention.ms", "1000")])
        .await
        .unwrap();
    images.changed().await.unwrap();
    let seen = images.borrow_and_update().clone();
    assert_eq!(seen.configs(Topic, "t").unwrap()["retention.ms"], "1000");

    // validate_only and refused changes publish nothing.
    controller
        .incremental_alter_configs(
            vec![change(Topic, "t", vec![set("retention.ms", "2")])],
            true,
        )
        .await;
    let _ = alter(&controller, Topic, "t", vec![set("retention.ms", "x")]).await;
    assert!(!images.has_changed().unwrap());

    alter(&controller, Broker, "", vec![set("num.io.threads", "4")])
        .await
        .unwrap();
    images.changed().await.unwrap();
    let seen = images.borrow_and_update().clone();
    assert_eq!(
        broker_config_view(&seen, NODE, BTreeMap::new()).dynamic_default,
        map(&[("num.io.threads", "4")])
    );
}
