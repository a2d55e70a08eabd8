//! Transactions over the wire: the coordinator (FindCoordinator, InitProducerId, AddPartitions,
//! AddOffsets, EndTxn, Describe/ListTransactions), the log side (markers, last stable offset,
//! aborted transactions in read_committed fetches, ListOffsets by isolation level),
//! transactional offsets, fencing, produce-time verification, WriteTxnMarkers and recovery.

use std::time::Duration;

use bytes::Bytes;
use strom_protocol::ErrorCode;
use strom_protocol::kafka_protocol::records::RecordBatchDecoder;
use strom_protocol::messages::*;
use strom_test_support::records::{str_bytes as s, transactional_batch};
use strom_test_support::{RawConnection, TestBroker};

const TOPIC: &str = "tx";

struct Txn {
    id: &'static str,
    pid: i64,
    epoch: i16,
    seq: i32,
}

async fn setup(broker: &TestBroker) -> RawConnection {
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(TOPIC)))
            .with_num_partitions(2)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req).await.unwrap();
    assert_eq!(r.topics[0].error_code, 0);
    conn
}

/// Retries a call while the coordinator is being created or loaded, or markers are written.
async fn retrying<T>(
    conn: &mut RawConnection,
    mut call: impl AsyncFnMut(&mut RawConnection) -> (i16, T),
) -> (i16, T) {
    for _ in 0..100 {
        let (code, r) = call(conn).await;
        let retriable = [
            ErrorCode::NotCoordinator,
            ErrorCode::CoordinatorNotAvailable,
            ErrorCode::CoordinatorLoadInProgress,
            ErrorCode::ConcurrentTransactions,
        ]
        .map(|c| c.code());
        if !retriable.contains(&code) {
            return (code, r);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("still retriable after 100 tries");
}

async fn find_coordinator(conn: &mut RawConnection, key_type: i8, id: &str) -> i32 {
    let (code, node) = retrying(conn, async |c| {
        let r: FindCoordinatorResponse = c
            .call(
                ApiKey::FindCoordinator,
                4,
                &FindCoordinatorRequest::default()
                    .with_key_type(key_type)
                    .with_coordinator_keys(vec![s(id)]),
            )
            .await
            .unwrap();
        (r.coordinators[0].error_code, r.coordinators[0].node_id.0)
    })
    .await;
    assert_eq!(code, 0);
    node
}

async fn init(conn: &mut RawConnection, id: &'static str) -> Txn {
    find_coordinator(conn, 1, id).await;
    let (code, r) = retrying(conn, async |c| {
        let r: InitProducerIdResponse = c
            .call(
                ApiKey::InitProducerId,
                4,
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(id))))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .await
            .unwrap();
        (r.error_code, r)
    })
    .await;
    assert_eq!(code, 0, "InitProducerId");
    Txn {
        id,
        pid: r.producer_id.0,
        epoch: r.producer_epoch,
        seq: 0,
    }
}

async fn add_partitions(conn: &mut RawConnection, txn: &Txn, partitions: &[i32]) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(txn.id)))
        .with_v3_and_below_producer_id(ProducerId(txn.pid))
        .with_v3_and_below_producer_epoch(txn.epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(partitions.to_vec()),
        ]);
    let (code, _) = retrying(conn, async |c| {
        let r: AddPartitionsToTxnResponse =
            c.call(ApiKey::AddPartitionsToTxn, 3, &req).await.unwrap();
        let codes: Vec<i16> = r.results_by_topic_v3_and_below[0]
            .results_by_partition
            .iter()
            .map(|p| p.partition_error_code)
            .collect();
        (codes[0], codes)
    })
    .await;
    code
}

async fn produce(
    conn: &mut RawConnection,
    transactional_id: Option<&str>,
    partition: i32,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let r: ProduceResponse = conn.call(ApiKey::Produce, 11, &req).await.unwrap();
    r.responses[0].partition_responses[0].clone()
}

async fn send(conn: &mut RawConnection, txn: &mut Txn, partition: i32, values: &[&[u8]]) -> i64 {
    let batch = transactional_batch(values, txn.pid, txn.epoch, txn.seq);
    let r = produce(conn, Some(txn.id), partition, batch).await;
    assert_eq!(
        r.error_code, 0,
        "transactional produce: {:?}",
        r.error_message
    );
    txn.seq += values.len() as i32;
    r.base_offset
}

async fn end(conn: &mut RawConnection, txn: &Txn, commit: bool) -> i16 {
    let r: EndTxnResponse = conn
        .call(
            ApiKey::EndTxn,
            3,
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(txn.id)))
                .with_producer_id(ProducerId(txn.pid))
                .with_producer_epoch(txn.epoch)
                .with_committed(commit),
        )
        .await
        .unwrap();
    r.error_code
}

async fn fetch(
    conn: &mut RawConnection,
    partition: i32,
    read_committed: bool,
) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(0)
                        .with_current_leader_epoch(-1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r: FetchResponse = conn.call(ApiKey::Fetch, 12, &req).await.unwrap();
    r.responses[0].partitions[0].clone()
}

async fn latest(conn: &mut RawConnection, partition: i32, read_committed: bool) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-1),
                ]),
        ]);
    let r: ListOffsetsResponse = conn.call(ApiKey::ListOffsets, 7, &req).await.unwrap();
    r.topics[0].partitions[0].offset
}

/// Waits until the markers are written: the last stable offset of `partition` reaches `lso`.
async fn wait_lso(conn: &mut RawConnection, partition: i32, lso: i64) {
    for _ in 0..200 {
        if latest(conn, partition, true).await == lso {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the last stable offset of {TOPIC}-{partition} is {}, not {lso}",
        latest(conn, partition, true).await
    );
}

/// The values of the data records (transaction markers left out).
fn values(data: &fetch_response::PartitionData) -> Vec<Bytes> {
    let mut buf = data.records.clone().unwrap();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .filter(|r| !r.control)
        .filter_map(|r| r.value)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_and_aborted_transactions_as_consumers_see_them() {
    let broker = TestBroker::start().await;
    let mut conn = setup(&broker).await;
    assert_eq!(find_coordinator(&mut conn, 1, "app").await, 1);
    let mut txn = init(&mut conn, "app").await;
    assert_eq!(txn.epoch, 0);

    assert_eq!(add_partitions(&mut conn, &txn, &[0]).await, 0);
    assert_eq!(send(&mut conn, &mut txn, 0, &[b"c1", b"c2"]).await, 0);
    // Open: read_committed stops at the transaction's first offset.
    assert_eq!(latest(&mut conn, 0, true).await, 0);
    assert_eq!(latest(&mut conn, 0, false).await, 2);
    let open = fetch(&mut conn, 0, true).await;
    assert_eq!(open.last_stable_offset, 0);
    assert!(values(&open).is_empty());
    assert_eq!(values(&fetch(&mut conn, 0, false).await), ["c1", "c2"]);

    assert_eq!(end(&mut conn, &txn, true).await, 0);
    wait_lso(&mut conn, 0, 3).await; // two records and the COMMIT marker

    assert_eq!(add_partitions(&mut conn, &txn, &[0]).await, 0);
    assert_eq!(send(&mut conn, &mut txn, 0, &[b"a1", b"a2"]).await, 3);
    assert_eq!(end(&mut conn, &txn, false).await, 0);
    wait_lso(&mut conn, 0, 6).await;

    let committed = fetch(&mut conn, 0, true).await;
    assert_eq!(committed.high_watermark, 6);
    assert_eq!(committed.last_stable_offset, 6);
    let aborted = committed.aborted_transactions.clone().unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].producer_id.0, txn.pid);
    assert_eq!(aborted[0].first_offset, 3);
    // The batches are all there; the client drops the aborted producer's records from 3 on.
    assert_eq!(values(&committed), ["c1", "c2", "a1", "a2"]);
    let uncommitted = fetch(&mut conn, 0, false).await;
    assert_eq!(uncommitted.aborted_transactions, None);
    assert_eq!(uncommitted.last_stable_offset, 6);

    // The transaction is complete and listed as such.
    let r: DescribeTransactionsResponse = conn
        .call(
            ApiKey::DescribeTransactions,
            0,
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("app")), TransactionalId(s("x"))]),
        )
        .await
        .unwrap();
    assert_eq!(r.transaction_states[0].error_code, 0);
    assert_eq!(
        r.transaction_states[0].transaction_state.as_str(),
        "CompleteAbort"
    );
    assert_eq!(r.transaction_states[0].producer_id.0, txn.pid);
    assert_eq!(
        r.transaction_states[1].error_code,
        ErrorCode::TransactionalIdNotFound.code()
    );
    let r: ListTransactionsResponse = conn
        .call(
            ApiKey::ListTransactions,
            1,
            &ListTransactionsRequest::default().with_state_filters(vec![s("CompleteAbort")]),
        )
        .await
        .unwrap();
    assert_eq!(r.error_code, 0);
    let listed: Vec<&str> = r
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.as_str())
        .collect();
    assert_eq!(listed, ["app"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_the_transaction_are_refused() {
    let broker = TestBroker::start().await;
    let mut conn = setup(&broker).await;
    let mut txn = init(&mut conn, "strict").await;
    assert_eq!(add_partitions(&mut conn, &txn, &[0]).await, 0);
    // Partition 1 was never added.
    let r = produce(
        &mut conn,
        Some("strict"),
        1,
        transactional_batch(&[b"x"], txn.pid, txn.epoch, 0),
    )
    .await;
    assert_eq!(r.error_code, ErrorCode::InvalidTxnState.code());
    // A transactional batch without the transactional id.
    let r = produce(
        &mut conn,
        None,
        0,
        transactional_batch(&[b"x"], txn.pid, txn.epoch, 0),
    )
    .await;
    assert_eq!(r.error_code, ErrorCode::InvalidTxnState.code());
    assert_eq!(latest(&mut conn, 1, false).await, 0, "nothing was written");
    // The transaction itself is fine.
    assert_eq!(send(&mut conn, &mut txn, 0, &[b"ok"]).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
    let broker = TestBroker::start().await;
    let mut conn = setup(&broker).await;
    let mut old = init(&mut conn, "zombie").await;
    assert_eq!(add_partitions(&mut conn, &old, &[0]).await, 0);
    send(&mut conn, &mut old, 0, &[b"zombie"]).await;

    let new = init(&mut conn, "zombie").await;
    assert_eq!(new.pid, old.pid);
    assert!(new.epoch > old.epoch);
    // The old instance's transaction was aborted with a bumped epoch.
    wait_lso(&mut conn, 0, 2).await;
    let data = fetch(&mut conn, 0, true).await;
    assert_eq!(data.aborted_transactions.unwrap().len(), 1);
    // The old epoch is fenced everywhere.
    assert_eq!(
        end(&mut conn, &old, true).await,
        ErrorCode::ProducerFenced.code()
    );
    let r = produce(
        &mut conn,
        Some("zombie"),
        0,
        transactional_batch(&[b"late"], old.pid, old.epoch, old.seq),
    )
    .await;
    assert_ne!(r.error_code, 0, "a fenced producer cannot write");
    assert_eq!(latest(&mut conn, 0, false).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offsets_become_visible_with_the_commit() {
    let broker = TestBroker::start().await;
    let mut conn = setup(&broker).await;
    let txn = init(&mut conn, "copier").await;
    find_coordinator(&mut conn, 0, "readers").await;
    let (code, _) = retrying(&mut conn, async |c| {
        let r: AddOffsetsToTxnResponse = c
            .call(
                ApiKey::AddOffsetsToTxn,
                3,
                &AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(s("copier")))
                    .with_producer_id(ProducerId(txn.pid))
                    .with_producer_epoch(txn.epoch)
                    .with_group_id(GroupId(s("readers"))),
            )
            .await
            .unwrap();
        (r.error_code, ())
    })
    .await;
    assert_eq!(code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("copier")))
        .with_group_id(GroupId(s("readers")))
        .with_producer_id(ProducerId(txn.pid))
        .with_producer_epoch(txn.epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let (code, _) = retrying(&mut conn, async |c| {
        let r: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, 3, &commit).await.unwrap();
        (r.topics[0].partitions[0].error_code, ())
    })
    .await;
    assert_eq!(code, 0);

    async fn committed(conn: &mut RawConnection, require_stable: bool) -> (i16, i64) {
        let req = OffsetFetchRequest::default()
            .with_require_stable(require_stable)
            .with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("readers")))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(TopicName(s(TOPIC)))
                            .with_partition_indexes(vec![0]),
                    ])),
            ]);
        let r: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 8, &req).await.unwrap();
        let p = &r.groups[0].topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    }
    assert_eq!(
        committed(&mut conn, false).await,
        (0, -1),
        "pending is invisible"
    );
    assert_eq!(
        committed(&mut conn, true).await.0,
        ErrorCode::UnstableOffsetCommit.code()
    );
    assert_eq!(end(&mut conn, &txn, true).await, 0);
    for _ in 0..200 {
        if committed(&mut conn, true).await == (0, 42) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the committed transaction's offset never became visible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_survives_a_crash_and_completes_after_it() {
    let mut broker = TestBroker::start().await;
    let mut conn = setup(&broker).await;
    let mut txn = init(&mut conn, "durable").await;
    assert_eq!(add_partitions(&mut conn, &txn, &[0]).await, 0);
    send(&mut conn, &mut txn, 0, &[b"one", b"two"]).await;
    drop(conn);

    broker.crash_and_restart().await;
    let mut conn = RawConnection::connect(broker.bootstrap_servers())
        .await
        .unwrap();
    // Still open after recovery: the log side from the producer state, the coordinator side
    // from __transaction_state.
    assert_eq!(latest(&mut conn, 0, true).await, 0);
    assert_eq!(latest(&mut conn, 0, false).await, 2);
    let (code, _) = retrying(&mut conn, async |c| (end(c, &txn, true).await, ())).await;
    assert_eq!(code, 0);
    wait_lso(&mut conn, 0, 3).await;
    assert_eq!(
        fetch(&mut conn, 0, true).await.aborted_transactions,
        Some(Vec::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_txn_markers_ends_a_hanging_transaction() {
    let broker = TestBroker::start().await;
    let mut conn = setup(&broker).await;
    let mut txn = init(&mut conn, "hanging").await;
    assert_eq!(add_partitions(&mut conn, &txn, &[1]).await, 0);
    send(&mut conn, &mut txn, 1, &[b"stuck"]).await;
    assert_eq!(latest(&mut conn, 1, true).await, 0);

    // What `kafka-transactions.sh abort` sends to the partition leader.
    let req = WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(txn.pid))
            .with_producer_epoch(txn.epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes(vec![1]),
            ]),
    ]);
    let r: WriteTxnMarkersResponse = conn.call(ApiKey::WriteTxnMarkers, 1, &req).await.unwrap();
    assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0);
    assert_eq!(latest(&mut conn, 1, true).await, 2);
    let data = fetch(&mut conn, 1, true).await;
    assert_eq!(data.aborted_transactions.unwrap()[0].first_offset, 0);

    // A marker of an older producer epoch is refused.
    let stale = WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(txn.pid))
            .with_producer_epoch(txn.epoch - 1)
            .with_transaction_result(true)
            .with_coordinator_epoch(0)
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(TopicName(s(TOPIC)))
                    .with_partition_indexes(vec![1]),
            ]),
    ]);
    let r: WriteTxnMarkersResponse = conn.call(ApiKey::WriteTxnMarkers, 1, &stale).await.unwrap();
    assert_eq!(
        r.markers[0].topics[0].partitions[0].error_code,
        ErrorCode::InvalidProducerEpoch.code()
    );
}
