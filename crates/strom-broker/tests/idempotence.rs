//! Idempotent producers over the wire: InitProducerId, retries answered with the original
//! offsets, sequence gaps and fenced epochs refused, producer ids never reused after restarts.

use bytes::Bytes;
use strom_protocol::ErrorCode;
use strom_protocol::messages::*;
use strom_test_support::records::{idempotent_batch, str_bytes as s, values_of};
use strom_test_support::{RawConnection, TestBroker};

async fn init_producer_id(conn: &mut RawConnection) -> (i64, i16) {
    let r: InitProducerIdResponse = conn
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

async fn produce(
    conn: &mut RawConnection,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s("idem")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let r: ProduceResponse = conn.call(ApiKey::Produce, 11, &req).await.unwrap();
    r.responses[0].partition_responses[0].clone()
}

async fn log_end(conn: &mut RawConnection) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s("idem")))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let r: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &req).await.unwrap();
    r.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_deduplicated_and_gaps_refused() {
    let mut broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("idem")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let _: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req).await.unwrap();

    let (pid, epoch) = init_producer_id(&mut conn).await;
    assert_eq!(epoch, 0);
    let (other, _) = init_producer_id(&mut conn).await;
    assert_ne!(pid, other, "every producer gets its own id");

    let first = idempotent_batch(&[b"a", b"b"], pid, epoch, 0);
    let r = produce(&mut conn, first.clone()).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let r = produce(&mut conn, idempotent_batch(&[b"c"], pid, epoch, 2)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 2));

    // A retry of an acknowledged batch gets its original offset and writes nothing.
    let r = produce(&mut conn, first).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert_eq!(log_end(&mut conn).await, 3);

    let gap = produce(&mut conn, idempotent_batch(&[b"x"], pid, epoch, 7)).await;
    assert_eq!(gap.error_code, ErrorCode::OutOfOrderSequenceNumber.code());
    assert_eq!(log_end(&mut conn).await, 3);

    // Survives a crash: the retry is still recognised, and a new id is new.
    drop(conn);
    broker.crash_and_restart().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let r = produce(&mut conn, idempotent_batch(&[b"c"], pid, epoch, 2)).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 2),
        "duplicate detected after recovery"
    );
    let r = produce(&mut conn, idempotent_batch(&[b"d"], pid, epoch, 3)).await;
    assert_eq!((r.error_code, r.base_offset), (0, 3));
    let (after_restart, _) = init_producer_id(&mut conn).await;
    assert!(
        after_restart > other,
        "producer ids are not reused after a restart"
    );

    let fetched: FetchResponse = conn
        .call(
            ApiKey::Fetch,
            12,
            &FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![
                    fetch_request::FetchTopic::default()
                        .with_topic(TopicName(s("idem")))
                        .with_partitions(vec![
                            fetch_request::FetchPartition::default()
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
        )
        .await
        .unwrap();
    let values: Vec<Bytes> =
        values_of(fetched.responses[0].partitions[0].records.as_ref().unwrap())
            .into_iter()
            .map(|(_, v)| v)
            .collect();
    assert_eq!(
        values,
        ["a", "b", "c", "d"].map(|v| Bytes::from_static(v.as_bytes()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_ids_go_to_their_coordinator() {
    let broker = TestBroker::start().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let init = |timeout_ms: i32| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("txn"))))
            .with_transaction_timeout_ms(timeout_ms)
    };
    // No __transaction_state yet, so no coordinator here: clients look it up first.
    let r: InitProducerIdResponse = conn
        .call(ApiKey::InitProducerId, 4, &init(60_000))
        .await
        .unwrap();
    assert_eq!(r.error_code, ErrorCode::NotCoordinator.code());
    let found: FindCoordinatorResponse = conn
        .call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("txn")]),
        )
        .await
        .unwrap();
    assert_eq!(found.coordinators[0].error_code, 0);
    // Over transaction.max.timeout.ms (15 minutes by default).
    let r: InitProducerIdResponse = conn
        .call(ApiKey::InitProducerId, 4, &init(900_001))
        .await
        .unwrap();
    assert_eq!(r.error_code, ErrorCode::InvalidTransactionTimeout.code());
    let r: InitProducerIdResponse = conn
        .call(ApiKey::InitProducerId, 4, &init(60_000))
        .await
        .unwrap();
    assert_eq!(r.error_code, 0);
    assert_eq!(r.producer_epoch, 0);
}
