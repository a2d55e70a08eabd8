//! The transactional producer against the in-process broker: commits are visible to
//! read_committed consumers and aborts are not, offsets sent to a transaction are committed
//! with it, a second producer with the same transactional id fences the first, and the state
//! rules (no send outside a transaction, config checks) hold.

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::{
    Admin, ClientConfig, ClientError, Consumer, ConsumerGroupMetadata, ErrorCode, IsolationLevel,
    NewTopic, Offset, OffsetAndMetadata, Producer, ProducerRecord, TopicPartition,
};
use strom_test_support::TestBroker;

async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Admin {
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(*name).with_partitions(*partitions))
        .collect();
    for created in admin.create_topics(&new, Default::default()).await.unwrap() {
        created.result.expect("topic created");
    }
    admin
}

fn txn_config(bootstrap: &str, id: &str) -> ClientConfig {
    ClientConfig::new(bootstrap)
        .with_transactional_id(id)
        .with_max_block(Duration::from_secs(20))
}

async fn txn_producer(bootstrap: &str, id: &str) -> Producer {
    let producer = Producer::connect(txn_config(bootstrap, id)).await.unwrap();
    producer.init_transactions().await.unwrap();
    producer
}

/// Every value a read_committed consumer sees in `partitions` of `topic`, sorted: read up to
/// the last stable offset (what `end_offsets` answers under read_committed).
async fn read_committed(bootstrap: &str, topic: &str, partitions: i32) -> Vec<String> {
    let config = ClientConfig::new(bootstrap).with_isolation_level(IsolationLevel::ReadCommitted);
    let mut consumer = Consumer::connect(config).await.unwrap();
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(tps.iter().map(|tp| (tp.clone(), Offset::Earliest)));
    let ends = consumer.end_offsets(&tps).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut values = Vec::new();
    loop {
        let mut behind = false;
        for tp in &tps {
            behind |= consumer.position(tp).await.unwrap() < ends[tp];
        }
        if !behind {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic} not read up to {ends:?}"
        );
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    values.sort();
    values
}

fn send(
    producer: &Producer,
    topic: &str,
    partition: i32,
    value: &str,
) -> strom_client::DeliveryFuture {
    producer.send(ProducerRecord::new(topic, value.to_string()).with_partition(partition))
}

#[tokio::test]
async fn committed_records_are_visible_and_aborted_ones_are_not() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topics(bootstrap, &[("txn-a", 3), ("txn-b", 1)]).await;
    let producer = txn_producer(bootstrap, "tx-visible").await;

    // Several transactions in a row, across partitions and topics.
    for round in 0..3 {
        producer.begin_transaction().await.unwrap();
        let mut futures = Vec::new();
        for p in 0..3 {
            futures.push(send(&producer, "txn-a", p, &format!("c{round}-a{p}")));
        }
        futures.push(send(&producer, "txn-b", 0, &format!("c{round}-b")));
        producer.commit_transaction().await.unwrap();
        for f in futures {
            let metadata = f.await.expect("a committed record is acknowledged");
            assert!(metadata.offset >= 0);
        }

        producer.begin_transaction().await.unwrap();
        let sent: Vec<_> = (0..3)
            .map(|p| send(&producer, "txn-a", p, &format!("x{round}-a{p}")))
            .collect();
        // Some records reach the log before the abort: they must stay invisible.
        producer.flush().await.unwrap();
        for f in sent {
            f.await.unwrap();
        }
        let unsent = send(&producer, "txn-b", 0, &format!("x{round}-b"));
        producer.abort_transaction().await.unwrap();
        // Queued and never sent, or sent and aborted: never visible either way.
        let _ = unsent.await;
    }

    let mut expected_a: Vec<String> = (0..3)
        .flat_map(|r| (0..3).map(move |p| format!("c{r}-a{p}")))
        .collect();
    expected_a.sort();
    assert_eq!(read_committed(bootstrap, "txn-a", 3).await, expected_a);
    assert_eq!(
        read_committed(bootstrap, "txn-b", 1).await,
        vec!["c0-b", "c1-b", "c2-b"]
    );

    // read_uncommitted sees the aborted records that were written.
    let mut consumer = Consumer::connect(ClientConfig::new(bootstrap))
        .await
        .unwrap();
    consumer.assign([(TopicPartition::new("txn-a", 0), Offset::Earliest)]);
    let mut all = Vec::new();
    for _ in 0..5 {
        all.extend(consumer.poll(Duration::from_millis(300)).await.unwrap());
    }
    assert!(
        all.iter()
            .any(|r| r.value.as_deref() == Some(&b"x0-a0"[..])),
        "aborted records are in the log"
    );
    producer.close().await.unwrap();
}

#[tokio::test]
async fn a_read_committed_consumer_waits_for_the_commit() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topics(bootstrap, &[("txn-lso", 1)]).await;
    let producer = txn_producer(bootstrap, "tx-lso").await;
    producer.begin_transaction().await.unwrap();
    let sent = send(&producer, "txn-lso", 0, "pending");
    producer.flush().await.unwrap();
    sent.await.unwrap();

    let config = ClientConfig::new(bootstrap).with_isolation_level(IsolationLevel::ReadCommitted);
    let mut consumer = Consumer::connect(config).await.unwrap();
    consumer.assign([(TopicPartition::new("txn-lso", 0), Offset::Earliest)]);
    for _ in 0..3 {
        let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
        assert!(
            records.is_empty(),
            "read past the open transaction: {records:?}"
        );
    }
    producer.commit_transaction().await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
        if !seen.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].value.as_deref(), Some(&b"pending"[..]));
}

#[tokio::test]
async fn records_queued_at_abort_fail_and_the_next_transaction_works() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topics(bootstrap, &[("txn-q", 1)]).await;
    let config = txn_config(bootstrap, "tx-queued").with_linger(Duration::from_secs(30));
    let producer = Producer::connect(config).await.unwrap();
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().await.unwrap();
    // linger.ms keeps the record queued until the abort.
    let queued = send(&producer, "txn-q", 0, "never");
    producer.abort_transaction().await.unwrap();
    assert!(matches!(queued.await, Err(ClientError::TransactionAborted)));
    producer.begin_transaction().await.unwrap();
    let kept = send(&producer, "txn-q", 0, "kept");
    producer.commit_transaction().await.unwrap();
    kept.await.unwrap();
    assert_eq!(read_committed(bootstrap, "txn-q", 1).await, vec!["kept"]);
}

#[tokio::test]
async fn sent_offsets_are_committed_with_the_transaction_only() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    let admin = create_topics(bootstrap, &[("txn-in", 2), ("txn-out", 1)]).await;
    let producer = txn_producer(bootstrap, "tx-offsets").await;
    let group = "txn-group";
    let metadata = ConsumerGroupMetadata::new(group);
    let tp0 = TopicPartition::new("txn-in", 0);
    let tp1 = TopicPartition::new("txn-in", 1);
    let committed = |admin: Admin| async move {
        admin
            .list_consumer_group_offsets(group, Some(&[tp0_(), tp1_()]))
            .await
            .unwrap()
    };
    fn tp0_() -> TopicPartition {
        TopicPartition::new("txn-in", 0)
    }
    fn tp1_() -> TopicPartition {
        TopicPartition::new("txn-in", 1)
    }

    // Aborted: the offsets never appear.
    producer.begin_transaction().await.unwrap();
    drop(send(&producer, "txn-out", 0, "aborted"));
    let offsets = BTreeMap::from([(tp0.clone(), OffsetAndMetadata::new(5))]);
    producer
        .send_offsets_to_transaction(&offsets, &metadata)
        .await
        .unwrap();
    producer.abort_transaction().await.unwrap();
    let after_abort = committed(admin.clone()).await;
    assert!(after_abort.values().all(Option::is_none), "{after_abort:?}");

    // Committed: they appear, only after the commit.
    producer.begin_transaction().await.unwrap();
    drop(send(&producer, "txn-out", 0, "committed"));
    let offsets = BTreeMap::from([
        (tp0.clone(), OffsetAndMetadata::new(7)),
        (tp1.clone(), OffsetAndMetadata::new(3)),
    ]);
    producer
        .send_offsets_to_transaction(&offsets, &metadata)
        .await
        .unwrap();
    let pending = committed(admin.clone()).await;
    assert!(
        pending.values().all(Option::is_none),
        "pending offsets are not visible"
    );
    producer.commit_transaction().await.unwrap();
    let after_commit = committed(admin.clone()).await;
    assert_eq!(after_commit[&tp0].as_ref().map(|o| o.offset), Some(7));
    assert_eq!(after_commit[&tp1].as_ref().map(|o| o.offset), Some(3));

    // An offsets-only transaction works too.
    producer.begin_transaction().await.unwrap();
    let offsets = BTreeMap::from([(tp1.clone(), OffsetAndMetadata::new(9))]);
    producer
        .send_offsets_to_transaction(&offsets, &metadata)
        .await
        .unwrap();
    producer.commit_transaction().await.unwrap();
    let last = committed(admin).await;
    assert_eq!(last[&tp1].as_ref().map(|o| o.offset), Some(9));
    assert_eq!(
        read_committed(bootstrap, "txn-out", 1).await,
        vec!["committed"]
    );
}

#[tokio::test]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topics(bootstrap, &[("txn-f", 1)]).await;
    let first = txn_producer(bootstrap, "tx-fenced").await;
    first.begin_transaction().await.unwrap();
    send(&first, "txn-f", 0, "first-committed")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    first.commit_transaction().await.unwrap();

    first.begin_transaction().await.unwrap();
    let open = send(&first, "txn-f", 0, "first-open");
    first.flush().await.unwrap();
    open.await.unwrap();

    // The newer producer bumps the epoch and aborts the transaction the first left open.
    let second = txn_producer(bootstrap, "tx-fenced").await;
    second.begin_transaction().await.unwrap();
    let r = send(&second, "txn-f", 0, "second");
    second.commit_transaction().await.unwrap();
    r.await.unwrap();

    // The first producer's next calls fail fatally, and keep failing.
    let late = send(&first, "txn-f", 0, "first-late").await;
    let commit = first.commit_transaction().await;
    let err = commit.expect_err("a fenced producer cannot commit");
    assert!(
        matches!(err, ClientError::Fatal(_)),
        "{err:?} (record: {late:?})"
    );
    assert!(
        matches!(
            err.code(),
            Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)
        ),
        "{err:?}"
    );
    assert!(matches!(
        first.begin_transaction().await,
        Err(ClientError::Fatal(_))
    ));
    assert!(matches!(
        first.abort_transaction().await,
        Err(ClientError::Fatal(_))
    ));
    assert!(matches!(
        send(&first, "txn-f", 0, "again").await,
        Err(ClientError::Fatal(_))
    ));

    assert_eq!(
        read_committed(bootstrap, "txn-f", 1).await,
        vec!["first-committed", "second"]
    );
}

#[tokio::test]
async fn calls_out_of_order_fail_with_illegal_state() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topics(bootstrap, &[("txn-s", 1)]).await;
    let producer = Producer::connect(txn_config(bootstrap, "tx-state"))
        .await
        .unwrap();
    // Before init_transactions.
    assert!(matches!(
        send(&producer, "txn-s", 0, "v").await,
        Err(ClientError::IllegalState(m)) if m.contains("initTransactions")
    ));
    assert!(matches!(
        producer.begin_transaction().await,
        Err(ClientError::IllegalState(_))
    ));
    producer.init_transactions().await.unwrap();
    assert!(matches!(
        producer.init_transactions().await,
        Err(ClientError::IllegalState(_))
    ));
    // Outside a transaction.
    let refused = send(&producer, "txn-s", 0, "outside").await;
    assert!(
        matches!(&refused, Err(ClientError::IllegalState(m)) if m.contains("READY")),
        "{refused:?}"
    );
    assert!(matches!(
        producer.commit_transaction().await,
        Err(ClientError::IllegalState(_))
    ));
    assert!(matches!(
        producer.abort_transaction().await,
        Err(ClientError::IllegalState(_))
    ));
    let offsets = BTreeMap::from([(TopicPartition::new("txn-s", 0), OffsetAndMetadata::new(1))]);
    assert!(matches!(
        producer
            .send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new("g"))
            .await,
        Err(ClientError::IllegalState(_))
    ));
    producer.begin_transaction().await.unwrap();
    assert!(matches!(
        producer.begin_transaction().await,
        Err(ClientError::IllegalState(_))
    ));
    send(&producer, "txn-s", 0, "inside").await.unwrap();
    producer.commit_transaction().await.unwrap();
    // After the commit, sending needs a new transaction again.
    assert!(matches!(
        send(&producer, "txn-s", 0, "after").await,
        Err(ClientError::IllegalState(_))
    ));
    assert_eq!(read_committed(bootstrap, "txn-s", 1).await, vec!["inside"]);

    // A producer without a transactional id has no transactions.
    let plain = Producer::connect(ClientConfig::new(bootstrap))
        .await
        .unwrap();
    assert!(matches!(
        plain.init_transactions().await,
        Err(ClientError::IllegalState(_))
    ));
    send(&plain, "txn-s", 0, "plain").await.unwrap();
}

#[tokio::test]
async fn a_failed_record_makes_the_transaction_abortable() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topics(bootstrap, &[("txn-e", 1)]).await;
    // A topic that does not exist (and is not auto-created) fails its record after
    // max.block.ms; the transaction can then only be aborted.
    let config = txn_config(bootstrap, "tx-abortable")
        .with_allow_auto_create_topics(false)
        .with_max_block(Duration::from_secs(2));
    let producer = Producer::connect(config).await.unwrap();
    producer.init_transactions().await.unwrap();
    producer.begin_transaction().await.unwrap();
    let ok = send(&producer, "txn-e", 0, "lost");
    let missing = producer.send(ProducerRecord::new("txn-missing", "v"));
    assert!(missing.await.is_err());
    let _ = ok.await;
    let err = producer
        .commit_transaction()
        .await
        .expect_err("the transaction has a failed record");
    assert!(matches!(err, ClientError::Abortable(_)), "{err:?}");
    assert!(matches!(
        send(&producer, "txn-e", 0, "refused").await,
        Err(ClientError::Abortable(_))
    ));
    producer.abort_transaction().await.unwrap();
    producer.begin_transaction().await.unwrap();
    send(&producer, "txn-e", 0, "good").await.unwrap();
    producer.commit_transaction().await.unwrap();
    assert_eq!(read_committed(bootstrap, "txn-e", 1).await, vec!["good"]);
}

#[tokio::test]
async fn transactional_config_is_checked() {
    let broker = TestBroker::start().await;
    let bootstrap = broker.bootstrap_servers();
    let refused = Producer::connect(
        ClientConfig::new(bootstrap)
            .with_transactional_id("tx")
            .with_idempotence(false),
    )
    .await
    .expect_err("a transactional id needs idempotence");
    assert!(
        refused
            .to_string()
            .contains("Cannot set a transactional.id without also enabling idempotence."),
        "{refused}"
    );
    let refused = Producer::connect(
        ClientConfig::new(bootstrap)
            .with_transactional_id("tx")
            .with_acks(strom_client::Acks::Leader),
    )
    .await
    .expect_err("acks=1 turns idempotence off");
    assert!(matches!(refused, ClientError::Config { .. }));
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("transactional.id".to_string(), "tx-props".to_string()),
        ("transaction.timeout.ms".to_string(), "10000".to_string()),
    ]);
    let config = ClientConfig::from_properties(&props).unwrap();
    assert_eq!(config.transactional_id(), Some("tx-props"));
    assert_eq!(config.transaction_timeout(), Duration::from_secs(10));
    let producer = Producer::connect(config).await.unwrap();
    producer.init_transactions().await.unwrap();
}

/// The consume-transform-produce loop: the offsets go with a live member's
/// `group_metadata()`, which the coordinator checks; metadata of a generation that is not the
/// group's fails the offsets, and the transaction can then only be aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_a_live_member_commit_and_a_wrong_generation_is_refused() {
    let broker = TestBroker::start_with(&[("group.initial.rebalance.delay.ms", "0")]).await;
    let bootstrap = broker.bootstrap_servers();
    let admin = create_topics(bootstrap, &[("ctp-in", 1), ("ctp-out", 1)]).await;
    let source = Producer::connect(ClientConfig::new(bootstrap))
        .await
        .unwrap();
    source
        .send(ProducerRecord::new("ctp-in", "x"))
        .await
        .unwrap();
    let mut consumer = Consumer::connect(
        ClientConfig::new(bootstrap)
            .with_group_id("ctp")
            .with_enable_auto_commit(false)
            .with_auto_offset_reset(strom_client::AutoOffsetReset::Earliest)
            .with_isolation_level(IsolationLevel::ReadCommitted),
    )
    .await
    .unwrap();
    consumer.subscribe(["ctp-in"]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut read = Vec::new();
    while read.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing consumed");
        read = consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    let member = consumer.group_metadata().expect("joined");
    assert_eq!(member.group_id, "ctp");
    assert!(
        member.generation_id >= 1 && !member.member_id.is_empty(),
        "{member:?}"
    );

    let producer = txn_producer(bootstrap, "tx-ctp").await;
    let tp = TopicPartition::new("ctp-in", 0);
    let offsets = BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(1))]);
    producer.begin_transaction().await.unwrap();
    drop(send(&producer, "ctp-out", 0, "X"));
    producer
        .send_offsets_to_transaction(&offsets, &member)
        .await
        .unwrap();
    producer.commit_transaction().await.unwrap();
    let committed = admin
        .list_consumer_group_offsets("ctp", Some(std::slice::from_ref(&tp)))
        .await
        .unwrap();
    assert_eq!(committed[&tp].as_ref().map(|o| o.offset), Some(1));

    let stale = ConsumerGroupMetadata::new("ctp")
        .with_member(member.generation_id + 5, member.member_id.clone());
    producer.begin_transaction().await.unwrap();
    let refused = producer
        .send_offsets_to_transaction(&offsets, &stale)
        .await
        .expect_err("not the group's generation");
    assert_eq!(
        refused.code(),
        Some(ErrorCode::IllegalGeneration),
        "{refused}"
    );
    assert!(
        producer.commit_transaction().await.is_err(),
        "only an abort is left"
    );
    producer.abort_transaction().await.unwrap();
    consumer.close().await.unwrap();
}
