//! The admin client's partition-level calls (ListOffsets by spec, DeleteRecords,
//! DescribeProducers), log directories, and config changes against an in-process broker.

use std::collections::BTreeMap;

use strom_client::{
    AlterConfigOp, AlterConfigsOptions, ClientConfig, ConfigResource, ConfigSource,
    DescribeConfigsOptions, ErrorCode, OffsetSpec, Producer, ProducerRecord, TopicPartition,
};
use strom_protocol::messages::*;
use strom_test_support::records::{idempotent_batch, str_bytes as s};
use strom_test_support::{RawConnection, TestBroker};

mod common;
use common::{code, setup};

/// Produces `n` records to partition 0 of `topic`, record `i` stamped `base_ts + i * 1000`,
/// without idempotence (so that the partition has no producer state).
async fn produce(broker: &TestBroker, topic: &str, n: i64, base_ts: i64) {
    let config = ClientConfig::new(broker.bootstrap_servers()).with_idempotence(false);
    let producer = Producer::connect(config).await.unwrap();
    for i in 0..n {
        producer
            .send(
                ProducerRecord::new(topic, format!("v{i}"))
                    .with_partition(0)
                    .with_timestamp(base_ts + i * 1_000),
            )
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_every_spec_then_delete_records() {
    let (broker, admin) = setup(&[], &[("t", 2)]).await;
    produce(&broker, "t", 10, 100_000).await;
    let p0 = TopicPartition::new("t", 0);
    let p1 = TopicPartition::new("t", 1);
    let both = [p0.clone(), p1.clone()];

    let offset = |spec| {
        let admin = admin.clone();
        let both = both.clone();
        async move {
            admin
                .list_offsets(&both, spec)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.result.map(|i| (i.offset, i.timestamp)).unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(offset(OffsetSpec::Earliest).await, vec![(0, -1), (0, -1)]);
    assert_eq!(offset(OffsetSpec::Latest).await, vec![(10, -1), (0, -1)]);
    assert_eq!(offset(OffsetSpec::MaxTimestamp).await[0], (9, 109_000));
    assert_eq!(
        offset(OffsetSpec::ForTimestamp(103_500)).await[0],
        (4, 104_000)
    );
    assert_eq!(
        offset(OffsetSpec::ForTimestamp(999_999)).await,
        vec![(-1, -1), (-1, -1)],
        "no record at or after the timestamp"
    );
    let unknown = admin
        .list_offsets(
            &[TopicPartition::new("nope", 0), TopicPartition::new("t", 7)],
            OffsetSpec::Latest,
        )
        .await
        .unwrap();
    assert_eq!(
        code(&unknown[0].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(
        code(&unknown[1].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );

    let deleted = admin
        .delete_records(&BTreeMap::from([
            (p0.clone(), 6),
            (p1.clone(), 5),
            (TopicPartition::new("nope", 0), 1),
        ]))
        .await
        .unwrap();
    let results: BTreeMap<String, Result<i64, Option<ErrorCode>>> = deleted
        .iter()
        .map(|r| {
            (
                r.partition.to_string(),
                r.result.as_ref().map(|w| *w).map_err(|e| e.code()),
            )
        })
        .collect();
    assert_eq!(results["t-0"], Ok(6));
    assert_eq!(results["t-1"], Err(Some(ErrorCode::OffsetOutOfRange)));
    assert_eq!(
        results["nope-0"],
        Err(Some(ErrorCode::UnknownTopicOrPartition))
    );
    assert_eq!(offset(OffsetSpec::Earliest).await[0], (6, -1));
    // -1 means up to the high watermark.
    let all = admin
        .delete_records(&BTreeMap::from([(p0.clone(), -1)]))
        .await
        .unwrap();
    assert_eq!(all[0].result.as_ref().ok(), Some(&10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_dirs_and_producers() {
    let (broker, admin) = setup(&[], &[("idem", 1), ("plain", 1)]).await;
    produce(&broker, "plain", 3, 1_000).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let init: InitProducerIdResponse = conn
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
        )
        .await
        .unwrap();
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let produced: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            11,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5_000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(TopicName(s("idem")))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(idempotent_batch(
                                    &[b"a", b"b", b"c"],
                                    pid,
                                    init.producer_epoch,
                                    0,
                                ))),
                        ]),
                ]),
        )
        .await
        .unwrap();
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    let producers = admin
        .describe_producers(&[
            TopicPartition::new("idem", 0),
            TopicPartition::new("plain", 0),
            TopicPartition::new("idem", 4),
        ])
        .await
        .unwrap();
    let active = producers[0].result.as_ref().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!((active[0].producer_id, active[0].last_sequence), (pid, 2));
    assert_eq!(active[0].current_txn_start_offset, None);
    assert!(producers[1].result.as_ref().unwrap().is_empty());
    assert_eq!(
        code(&producers[2].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );

    let dirs = admin.describe_log_dirs(None).await.unwrap();
    assert_eq!(dirs.len(), 1);
    let (node, dirs) = &dirs[0];
    assert_eq!(*node, 1);
    let dirs = dirs.as_ref().unwrap();
    assert_eq!(dirs.len(), 1);
    let dir = &dirs[0];
    assert!(dir.error.is_none());
    assert!(std::path::Path::new(&dir.path).is_absolute());
    assert!(dir.total_bytes.is_some_and(|t| t > 0));
    let plain = dir.replicas[&TopicPartition::new("plain", 0)];
    assert!(plain.size > 0);
    assert!(!plain.is_future);
    let missing = admin.describe_log_dirs(Some(&[42])).await.unwrap();
    assert!(missing[0].1.is_err(), "a broker that is not in the cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_are_altered_incrementally_and_legacy_and_described_with_synonyms() {
    let (_broker, admin) = setup(&[], &[("conf", 1)]).await;
    let topic = ConfigResource::topic("conf");
    let describe = |resource: ConfigResource, key: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .describe_configs_with_options(
                    &[resource],
                    DescribeConfigsOptions {
                        include_synonyms: true,
                        include_documentation: false,
                    },
                )
                .await
                .unwrap()
                .remove(0)
                .result
                .unwrap()
                .into_iter()
                .find(|e| e.name == key)
        }
    };

    let results = admin
        .incremental_alter_configs(
            &[(
                topic.clone(),
                vec![
                    AlterConfigOp::set("retention.ms", "3600000"),
                    AlterConfigOp::append("cleanup.policy", "compact"),
                ],
            )],
            AlterConfigsOptions::default(),
        )
        .await
        .unwrap();
    assert!(results[0].result.is_ok(), "{:?}", results[0].result);
    let retention = describe(topic.clone(), "retention.ms").await.unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopicConfig);
    assert_eq!(
        retention.synonyms[0].source,
        ConfigSource::DynamicTopicConfig
    );
    assert!(
        retention.synonyms.len() >= 2,
        "the broker-level synonym follows: {:?}",
        retention.synonyms
    );
    assert_eq!(
        describe(topic.clone(), "cleanup.policy")
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("delete,compact")
    );

    // validate_only changes nothing; DELETE goes back to the default.
    admin
        .incremental_alter_configs(
            &[(topic.clone(), vec![AlterConfigOp::set("retention.ms", "1")])],
            AlterConfigsOptions {
                validate_only: true,
            },
        )
        .await
        .unwrap()[0]
        .result
        .as_ref()
        .unwrap();
    assert_eq!(
        describe(topic.clone(), "retention.ms")
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("3600000")
    );
    admin
        .incremental_alter_configs(
            &[(topic.clone(), vec![AlterConfigOp::delete("retention.ms")])],
            AlterConfigsOptions::default(),
        )
        .await
        .unwrap()[0]
        .result
        .as_ref()
        .unwrap();
    assert!(
        describe(topic.clone(), "retention.ms")
            .await
            .unwrap()
            .is_default()
    );

    // Errors are per resource.
    let results = admin
        .incremental_alter_configs(
            &[
                (
                    topic.clone(),
                    vec![AlterConfigOp::set("retention.ms", "soon")],
                ),
                (
                    ConfigResource::topic("absent"),
                    vec![AlterConfigOp::set("retention.ms", "1")],
                ),
                (
                    ConfigResource::broker_defaults(),
                    vec![AlterConfigOp::set("log.segment.bytes", "3145728")],
                ),
            ],
            AlterConfigsOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(code(&results[0].result), Some(ErrorCode::InvalidConfig));
    assert_eq!(
        code(&results[1].result),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    assert!(results[2].result.is_ok(), "{:?}", results[2].result);
    let segment = describe(ConfigResource::broker_defaults(), "log.segment.bytes")
        .await
        .unwrap();
    assert_eq!(segment.value.as_deref(), Some("3145728"));
    assert_eq!(segment.source, ConfigSource::DynamicDefaultBrokerConfig);
    assert_eq!(
        describe(topic.clone(), "segment.bytes")
            .await
            .unwrap()
            .source,
        ConfigSource::DynamicDefaultBrokerConfig
    );

    // Legacy AlterConfigs replaces the whole dynamic set.
    admin
        .incremental_alter_configs(
            &[(
                topic.clone(),
                vec![AlterConfigOp::set("segment.ms", "2000")],
            )],
            AlterConfigsOptions::default(),
        )
        .await
        .unwrap();
    let results = admin
        .alter_configs(
            &[(
                topic.clone(),
                BTreeMap::from([("retention.ms".to_string(), "5000".to_string())]),
            )],
            AlterConfigsOptions::default(),
        )
        .await
        .unwrap();
    assert!(results[0].result.is_ok(), "{:?}", results[0].result);
    assert_eq!(
        describe(topic.clone(), "retention.ms")
            .await
            .unwrap()
            .value
            .as_deref(),
        Some("5000")
    );
    assert_ne!(
        describe(topic.clone(), "segment.ms").await.unwrap().source,
        ConfigSource::DynamicTopicConfig,
        "keys not given are removed"
    );
}
