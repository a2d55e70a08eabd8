//! Storage features as clients reach them: retention run by the broker, DeleteRecords,
//! DescribeProducers, DescribeLogDirs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_protocol::ErrorCode;
use strom_protocol::kafka_protocol::records::Compression;
use strom_protocol::messages::*;
use strom_test_support::records::{batch, idempotent_batch, str_bytes as s};
use strom_test_support::{RawConnection, TestBroker};

async fn create(conn: &mut RawConnection, name: &str, configs: &[(&str, &str)]) {
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
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

async fn produce(conn: &mut RawConnection, topic: &str, records: Bytes) -> i64 {
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
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    p.base_offset
}

async fn earliest(conn: &mut RawConnection, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-2),
                ]),
        ]);
    let r: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &req).await.unwrap();
    r.topics[0].partitions[0].offset
}

async fn fetch_error(conn: &mut RawConnection, topic: &str, offset: i64) -> i16 {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r: FetchResponse = conn.call(ApiKey::Fetch, 12, &req).await.unwrap();
    r.responses[0].partitions[0].error_code
}

async fn delete_records(
    conn: &mut RawConnection,
    topic: &str,
    offset: i64,
    version: i16,
) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default().with_offset(offset),
                ]),
        ]);
    let r: DeleteRecordsResponse = conn
        .call(ApiKey::DeleteRecords, version, &req)
        .await
        .unwrap();
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_low_watermark() {
    let mut broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(&mut conn, "dr", &[]).await;
    for i in 0..10 {
        produce(
            &mut conn,
            "dr",
            batch(&[format!("v{i}").as_bytes()], Compression::None),
        )
        .await;
    }
    assert_eq!(delete_records(&mut conn, "dr", 4, 2).await, (0, 4));
    assert_eq!(earliest(&mut conn, "dr").await, 4);
    assert_eq!(
        fetch_error(&mut conn, "dr", 2).await,
        ErrorCode::OffsetOutOfRange.code()
    );
    assert_eq!(fetch_error(&mut conn, "dr", 4).await, 0);
    assert_eq!(
        delete_records(&mut conn, "dr", 11, 2).await.0,
        ErrorCode::OffsetOutOfRange.code()
    );
    assert_eq!(
        delete_records(&mut conn, "dr", -1, 2).await,
        (0, 10),
        "-1 means the high watermark"
    );

    drop(conn);
    broker.crash_and_restart().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    assert_eq!(
        earliest(&mut conn, "dr").await,
        10,
        "the log start offset is checkpointed"
    );

    create(&mut conn, "compact-only", &[("cleanup.policy", "compact")]).await;
    assert_eq!(
        delete_records(&mut conn, "compact-only", 0, 2).await.0,
        ErrorCode::PolicyViolation.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_runs_retention() {
    let broker = TestBroker::start_with(&[("log.retention.check.interval.ms", "100")]).await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(
        &mut conn,
        "aging",
        &[
            ("segment.ms", "50"),
            ("retention.ms", "300"),
            ("file.delete.delay.ms", "0"),
        ],
    )
    .await;
    produce(&mut conn, "aging", batch(&[b"old"], Compression::None)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Rolls (the segment is older than segment.ms), so the first segment can age out.
    let second = produce(&mut conn, "aging", batch(&[b"new"], Compression::None)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while earliest(&mut conn, "aging").await != second {
        assert!(
            Instant::now() < deadline,
            "retention never removed the old segment"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = broker.partition_dir("aging", 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&dir).unwrap().flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("00000000000000000000.")
    }) {
        assert!(
            Instant::now() < deadline,
            "the deleted segment's files stayed on disk"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers_and_log_dirs() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(&mut conn, "described", &[]).await;
    let r: InitProducerIdResponse = conn
        .call(ApiKey::InitProducerId, 4, &InitProducerIdRequest::default())
        .await
        .unwrap();
    let pid = r.producer_id.0;
    produce(
        &mut conn,
        "described",
        idempotent_batch(&[b"a", b"b", b"c"], pid, 0, 0),
    )
    .await;

    let req = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(TopicName(s("described")))
            .with_partition_indexes(vec![0, 3]),
    ]);
    let r: DescribeProducersResponse = conn.call(ApiKey::DescribeProducers, 0, &req).await.unwrap();
    let partitions = &r.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    let producer = &partitions[0].active_producers[0];
    assert_eq!(
        (
            producer.producer_id.0,
            producer.producer_epoch,
            producer.last_sequence
        ),
        (pid, 0, 2)
    );
    assert_eq!(
        partitions[1].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    for v in 1..=4 {
        let r: DescribeLogDirsResponse = conn
            .call(
                ApiKey::DescribeLogDirs,
                v,
                &DescribeLogDirsRequest::default().with_topics(None),
            )
            .await
            .unwrap();
        assert_eq!(r.results.len(), 1);
        let dir = &r.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(std::path::Path::new(dir.log_dir.as_str()).is_absolute());
        let topic = dir
            .topics
            .iter()
            .find(|t| t.name.as_str() == "described")
            .unwrap();
        assert!(topic.partitions[0].partition_size > 0);
        if v >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
        }
    }
    let only: DescribeLogDirsResponse = conn
        .call(
            ApiKey::DescribeLogDirs,
            4,
            &DescribeLogDirsRequest::default().with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(TopicName(s("described")))
                    .with_partitions(vec![0]),
            ])),
        )
        .await
        .unwrap();
    assert_eq!(only.results[0].topics.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_the_storage_apis_is_answered() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    create(&mut conn, "sv", &[]).await;
    for i in 0..3 {
        produce(
            &mut conn,
            "sv",
            batch(&[format!("{i}").as_bytes()], Compression::None),
        )
        .await;
    }
    for v in 0..=5 {
        let r: InitProducerIdResponse = conn
            .call(ApiKey::InitProducerId, v, &InitProducerIdRequest::default())
            .await
            .unwrap();
        assert_eq!(r.error_code, 0, "InitProducerId v{v}");
    }
    for v in 0..=2 {
        assert_eq!(
            delete_records(&mut conn, "sv", i64::from(v), v).await.0,
            0,
            "DeleteRecords v{v}"
        );
    }
}

/// A partition whose log cannot be served (here: its directory cannot be created) is reported
/// without a leader, with this node offline, instead of pointing clients at a dead end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_this_node_cannot_serve_has_no_leader() {
    let broker = TestBroker::start().await;
    std::fs::write(broker.partition_dir("blocked", 0), b"not a directory").unwrap();
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("blocked")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let _: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req).await.unwrap();
    let md: MetadataResponse = conn
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(s("blocked")))),
            ])),
        )
        .await
        .unwrap();
    let p = &md.topics[0].partitions[0];
    assert_eq!(p.leader_id.0, -1);
    assert_eq!(p.error_code, ErrorCode::LeaderNotAvailable.code());
    assert_eq!(p.offline_replicas, vec![BrokerId(1)]);
}
