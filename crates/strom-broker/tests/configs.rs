//! Topic and broker configs as clients see them: creation with configs, their effect on produce,
//! and DescribeConfigs sources and synonyms.

use bytes::Bytes;
use strom_protocol::ErrorCode;
use strom_protocol::batch::{BatchHeader, TimestampType as StoredTimestampType};
use strom_protocol::kafka_protocol::records::Compression;
use strom_protocol::messages::*;
use strom_test_support::records::{batch, now_ms, str_bytes as s};
use strom_test_support::{RawConnection, TestBroker};

fn batch_at(timestamp: i64) -> Bytes {
    strom_test_support::records::batch_at(&[b"v"], Compression::None, timestamp)
}

async fn create(
    conn: &mut RawConnection,
    name: &str,
    configs: &[(&str, &str)],
) -> create_topics_response::CreatableTopicResult {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            ),
    ]);
    let r: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req).await.unwrap();
    r.topics.into_iter().next().unwrap()
}

async fn produce(
    conn: &mut RawConnection,
    topic: &str,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let r: ProduceResponse = conn.call(ApiKey::Produce, 11, &req).await.unwrap();
    r.responses[0].partition_responses[0].clone()
}

async fn first_stored_batch(conn: &mut RawConnection, topic: &str) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r: FetchResponse = conn.call(ApiKey::Fetch, 12, &req).await.unwrap();
    r.responses[0].partitions[0].records.clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topics_stamp_batches_on_append() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    assert_eq!(
        create(
            &mut conn,
            "lat",
            &[("message.timestamp.type", "LogAppendTime")]
        )
        .await
        .error_code,
        0
    );
    let before = now_ms();
    let r = produce(&mut conn, "lat", batch_at(1_000)).await;
    assert_eq!(r.error_code, 0);
    assert!(
        r.log_append_time_ms >= before,
        "the response carries the log append time"
    );
    let stored = first_stored_batch(&mut conn, "lat").await;
    let h = BatchHeader::parse(&stored).unwrap();
    assert_eq!(h.timestamp_type(), StoredTimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp, r.log_append_time_ms);
    strom_protocol::batch::verify_crc(&h, &stored).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_time_bounds_refuse_far_timestamps() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(
        &mut conn,
        "bounded",
        &[("message.timestamp.before.max.ms", "60000")],
    )
    .await;
    let r = produce(&mut conn, "bounded", batch_at(now_ms() - 3_600_000)).await;
    assert_eq!(r.error_code, ErrorCode::InvalidTimestamp.code());
    // Kafka 4.0's default message.timestamp.after.max.ms is one hour.
    let r = produce(&mut conn, "bounded", batch_at(now_ms() + 2 * 3_600_000)).await;
    assert_eq!(r.error_code, ErrorCode::InvalidTimestamp.code());
    let r = produce(&mut conn, "bounded", batch_at(now_ms())).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_message_bytes_of_a_topic_applies() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(&mut conn, "small", &[("max.message.bytes", "100")]).await;
    let big = batch(&[&[1u8; 200]], Compression::None);
    let r = produce(&mut conn, "small", big).await;
    assert_eq!(r.error_code, ErrorCode::MessageTooLarge.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_configs_are_refused_with_a_message() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let r = create(&mut conn, "bad", &[("retention.ms", "soon")]).await;
    assert_eq!(r.error_code, ErrorCode::InvalidConfig.code());
    assert!(r.error_message.unwrap().contains("retention.ms"));
    let r = create(&mut conn, "bad", &[("no.such.config", "1")]).await;
    assert_eq!(r.error_code, ErrorCode::InvalidConfig.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_reports_sources_and_synonyms() {
    let broker = TestBroker::start_with(&[
        ("log.retention.hours", "2"),
        ("log.segment.bytes", "2097152"),
    ])
    .await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(&mut conn, "described", &[("segment.bytes", "1048576")]).await;

    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("described")),
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s("1"))
                .with_configuration_keys(Some(vec![s("log.retention.hours"), s("num.partitions")])),
        ]);
    let r: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req).await.unwrap();
    let topic = &r.results[0];
    assert_eq!(topic.error_code, 0);
    let get = |name: &str| {
        topic
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap()
            .clone()
    };

    let segment = get("segment.bytes");
    assert_eq!(segment.value.as_deref(), Some("1048576"));
    assert_eq!(segment.config_source, 1, "TOPIC_CONFIG");
    let sources: Vec<(String, i8)> = segment
        .synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.source))
        .collect();
    assert_eq!(
        sources,
        vec![
            ("segment.bytes".into(), 1),
            ("log.segment.bytes".into(), 4),
            ("log.segment.bytes".into(), 5)
        ]
    );

    let retention = get("retention.ms");
    assert_eq!(
        retention.value.as_deref(),
        Some("7200000"),
        "log.retention.hours=2 in ms"
    );
    assert_eq!(retention.config_source, 4, "STATIC_BROKER_CONFIG");
    assert!(retention.documentation.is_some());

    let cleanup = get("cleanup.policy");
    assert_eq!(
        (cleanup.value.as_deref(), cleanup.config_source),
        (Some("delete"), 5),
        "DEFAULT_CONFIG"
    );

    let broker_result = &r.results[1];
    assert_eq!(broker_result.error_code, 0);
    let names: Vec<&str> = broker_result
        .configs
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["log.retention.hours", "num.partitions"]);
    assert_eq!(broker_result.configs[0].config_source, 4);
    assert_eq!(broker_result.configs[1].config_source, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_refuse_records_without_keys() {
    use strom_protocol::kafka_protocol::records::{
        Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(&mut conn, "compacted", &[("cleanup.policy", "compact")]).await;
    let keyless = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms(),
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    for compression in [Compression::None, Compression::Gzip] {
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [&keyless],
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        let r = produce(&mut conn, "compacted", buf.freeze()).await;
        assert_eq!(
            r.error_code,
            ErrorCode::InvalidRecord.code(),
            "{compression:?}"
        );
        assert!(r.error_message.unwrap().contains("without key"));
    }
    let r = produce(
        &mut conn,
        "compacted",
        batch(&[b"keyed"], Compression::Snappy),
    )
    .await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_compression_type_rewrites_batches_on_the_broker() {
    use strom_protocol::batch::Compression as Stored;
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    for (topic, setting, sent, stored) in [
        ("to-zstd", "zstd", Compression::None, Stored::Zstd),
        ("to-none", "uncompressed", Compression::Gzip, Stored::None),
        ("as-sent", "producer", Compression::Lz4, Stored::Lz4),
    ] {
        create(&mut conn, topic, &[("compression.type", setting)]).await;
        let r = produce(
            &mut conn,
            topic,
            batch(&[b"aaaaaaaaaa", b"bbbbbbbbbb"], sent),
        )
        .await;
        assert_eq!(r.error_code, 0, "{topic}");
        let stored_batch = first_stored_batch(&mut conn, topic).await;
        let h = BatchHeader::parse(&stored_batch).unwrap();
        assert_eq!(h.compression(), Some(stored), "{topic}");
        strom_protocol::batch::verify_crc(&h, &stored_batch).unwrap();
        let values: Vec<Bytes> = strom_test_support::records::values_of(&stored_batch)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            values,
            vec![
                Bytes::from_static(b"aaaaaaaaaa"),
                Bytes::from_static(b"bbbbbbbbbb")
            ],
            "{topic}"
        );
    }
}

async fn describe_topic_config(
    conn: &mut RawConnection,
    topic: &str,
    key: &str,
) -> (Option<String>, i8) {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(vec![s(key)])),
    ]);
    let r: DescribeConfigsResponse = conn.call(ApiKey::DescribeConfigs, 4, &req).await.unwrap();
    let c = &r.results[0].configs[0];
    (c.value.as_ref().map(|v| v.to_string()), c.config_source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs_apply_live() {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(&mut conn, "live", &[]).await;
    let alter = |ops: Vec<(&str, i8, Option<&str>)>, validate_only: bool| {
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("live"))
                    .with_configs(
                        ops.into_iter()
                            .map(|(k, op, v)| {
                                AlterableConfig::default()
                                    .with_name(s(k))
                                    .with_config_operation(op)
                                    .with_value(v.map(s))
                            })
                            .collect(),
                    ),
            ])
    };
    // validate_only changes nothing.
    let r: IncrementalAlterConfigsResponse = conn
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(vec![("max.message.bytes", 0, Some("200"))], true),
        )
        .await
        .unwrap();
    assert_eq!(r.responses[0].error_code, 0);
    let big = batch(&[&[7u8; 500]], Compression::None);
    assert_eq!(produce(&mut conn, "live", big.clone()).await.error_code, 0);

    // SET takes effect on the next produce, without a restart.
    let r: IncrementalAlterConfigsResponse = conn
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(vec![("max.message.bytes", 0, Some("200"))], false),
        )
        .await
        .unwrap();
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        produce(&mut conn, "live", big.clone()).await.error_code,
        ErrorCode::MessageTooLarge.code()
    );
    assert_eq!(
        describe_topic_config(&mut conn, "live", "max.message.bytes").await,
        (Some("200".into()), 1)
    );

    // APPEND to a list config, then DELETE back to the default.
    let r: IncrementalAlterConfigsResponse = conn
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(
                vec![
                    ("cleanup.policy", 2, Some("compact")),
                    ("max.message.bytes", 1, None),
                ],
                false,
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    assert_eq!(
        describe_topic_config(&mut conn, "live", "cleanup.policy")
            .await
            .0
            .as_deref(),
        Some("delete,compact")
    );
    assert_eq!(
        describe_topic_config(&mut conn, "live", "max.message.bytes")
            .await
            .1,
        5,
        "back to DEFAULT_CONFIG"
    );
    assert_eq!(produce(&mut conn, "live", big).await.error_code, 0);

    // Errors per resource: bad value, unknown op.
    let r: IncrementalAlterConfigsResponse = conn
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(vec![("retention.ms", 0, Some("soon"))], false),
        )
        .await
        .unwrap();
    assert_eq!(r.responses[0].error_code, ErrorCode::InvalidConfig.code());
    let r: IncrementalAlterConfigsResponse = conn
        .call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &alter(vec![("retention.ms", 9, Some("1"))], false),
        )
        .await
        .unwrap();
    assert_eq!(r.responses[0].error_code, ErrorCode::InvalidRequest.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_alter_configs_replaces_the_set_and_dynamic_broker_configs_reach_topics() {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(
        &mut conn,
        "legacy",
        &[("retention.ms", "1000"), ("segment.ms", "2000")],
    )
    .await;
    let req = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("legacy"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("5000"))),
            ]),
    ]);
    let r: AlterConfigsResponse = conn.call(ApiKey::AlterConfigs, 2, &req).await.unwrap();
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    assert_eq!(
        describe_topic_config(&mut conn, "legacy", "retention.ms").await,
        (Some("5000".into()), 1)
    );
    assert_eq!(
        describe_topic_config(&mut conn, "legacy", "segment.ms")
            .await
            .1,
        5,
        "keys not given are removed"
    );

    // A dynamic cluster-wide broker default becomes the topic's fallback.
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(""))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("log.segment.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(s("3145728"))),
            ]),
    ]);
    let r: IncrementalAlterConfigsResponse = conn
        .call(ApiKey::IncrementalAlterConfigs, 1, &req)
        .await
        .unwrap();
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    assert_eq!(
        describe_topic_config(&mut conn, "legacy", "segment.bytes").await,
        (Some("3145728".into()), 3),
        "DYNAMIC_DEFAULT_BROKER_CONFIG"
    );

    // Duplicate keys in the legacy API, and read-only broker configs, are refused.
    let dup = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("legacy"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("1"))),
                AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("2"))),
            ]),
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("num.partitions"))
                    .with_value(Some(s("3"))),
            ]),
    ]);
    let r: AlterConfigsResponse = conn.call(ApiKey::AlterConfigs, 2, &dup).await.unwrap();
    assert_eq!(r.responses[0].error_code, ErrorCode::InvalidRequest.code());
    assert_eq!(r.responses[1].error_code, ErrorCode::InvalidRequest.code());
}
