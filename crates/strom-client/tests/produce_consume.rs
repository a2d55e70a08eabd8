//! Producer -> broker -> consumer round trips against an in-process broker.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use strom_client::producer::partitioner::partition_for_key;
use strom_client::{
    Acks, Admin, AutoOffsetReset, ClientConfig, CompressionType, Consumer, ConsumerRecord,
    ErrorCode, Header, NewTopic, Offset, Producer, ProducerRecord, TimestampType, TopicPartition,
};
use strom_test_support::TestBroker;

async fn create_topic(broker: &TestBroker, name: &str, partitions: i32) {
    let admin = Admin::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(name).with_partitions(partitions)],
            Default::default(),
        )
        .await
        .unwrap();
    results[0].result.as_ref().expect("topic created");
}

/// Polls until `n` records arrived (or fails after 20 s).
async fn consume(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} records arrived",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
    }
    out
}

async fn consumer_at(broker: &TestBroker, tps: &[TopicPartition], start: Offset) -> Consumer {
    let mut consumer = Consumer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    consumer.assign(tps.iter().map(|tp| (tp.clone(), start)));
    consumer
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_of_every_field_for_every_codec() {
    let broker = TestBroker::start().await;
    for codec in [
        CompressionType::None,
        CompressionType::Gzip,
        CompressionType::Snappy,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ] {
        let topic = format!("codec-{codec}");
        create_topic(&broker, &topic, 1).await;
        let config = ClientConfig::new(broker.bootstrap_servers()).with_compression(codec);
        let producer = Producer::connect(config).await.unwrap();
        let sent = vec![
            ProducerRecord {
                topic: topic.clone(),
                partition: Some(0),
                key: Some(b("k1")),
                value: Some(b("v1")),
                headers: vec![
                    Header::new("h1", Some("x")),
                    Header::new("h2", None::<Bytes>),
                ],
                timestamp: Some(1_700_000_000_000),
            },
            // Null key.
            ProducerRecord::new(&topic, "no key")
                .with_partition(0)
                .with_timestamp(1_700_000_000_001),
            // Null value (a tombstone).
            ProducerRecord {
                topic: topic.clone(),
                partition: Some(0),
                key: Some(b("gone")),
                value: None,
                headers: vec![],
                timestamp: Some(1_700_000_000_002),
            },
            // Empty value, empty key.
            ProducerRecord::new(&topic, "")
                .with_key("")
                .with_partition(0)
                .with_timestamp(1_700_000_000_003),
            // Large compressible value and an older timestamp than its predecessor.
            ProducerRecord::new(&topic, "x".repeat(50_000))
                .with_partition(0)
                .with_timestamp(1_600_000_000_000),
        ];
        let futures: Vec<_> = sent.iter().cloned().map(|r| producer.send(r)).collect();
        for (i, f) in futures.into_iter().enumerate() {
            let meta = f.await.unwrap();
            assert_eq!(
                (meta.topic.as_str(), meta.partition, meta.offset),
                (topic.as_str(), 0, i as i64)
            );
            assert_eq!(Some(meta.timestamp), sent[i].timestamp);
        }
        producer.close().await.unwrap();

        let tp = TopicPartition::new(&topic, 0);
        let mut consumer = consumer_at(&broker, &[tp], Offset::Earliest).await;
        let got = consume(&mut consumer, sent.len()).await;
        assert_eq!(got.len(), sent.len(), "{codec}");
        for (i, (r, s)) in got.iter().zip(&sent).enumerate() {
            assert_eq!(r.offset, i as i64, "{codec}");
            assert_eq!(r.key, s.key, "{codec} key of {i}");
            assert_eq!(r.value, s.value, "{codec} value of {i}");
            assert_eq!(r.headers, s.headers, "{codec} headers of {i}");
            assert_eq!(Some(r.timestamp), s.timestamp, "{codec} timestamp of {i}");
            assert_eq!(r.timestamp_type, TimestampType::CreateTime);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_in_order_with_contiguous_offsets() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "bulk", 1).await;
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let futures: Vec<_> = (0..10_000)
        .map(|i| producer.send(ProducerRecord::new("bulk", format!("record-{i}"))))
        .collect();
    producer.flush().await.unwrap();
    for (i, f) in futures.into_iter().enumerate() {
        let meta = f.await.unwrap();
        assert_eq!(meta.offset, i as i64);
    }
    let mut consumer =
        consumer_at(&broker, &[TopicPartition::new("bulk", 0)], Offset::Earliest).await;
    let got = consume(&mut consumer, 10_000).await;
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value.as_deref(), Some(format!("record-{i}").as_bytes()));
    }
    assert!(
        consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        consumer
            .position(&TopicPartition::new("bulk", 0))
            .await
            .unwrap(),
        10_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acks_setting_delivers() {
    let broker = TestBroker::start().await;
    for acks in [Acks::None, Acks::Leader, Acks::All] {
        let topic = format!("acks-{acks}");
        create_topic(&broker, &topic, 1).await;
        let config = ClientConfig::new(broker.bootstrap_servers()).with_acks(acks);
        let producer = Producer::connect(config).await.unwrap();
        let futures: Vec<_> = (0..100)
            .map(|i| producer.send(ProducerRecord::new(&topic, format!("{i}"))))
            .collect();
        for (i, f) in futures.into_iter().enumerate() {
            let meta = f.await.unwrap();
            let expected = if acks == Acks::None { -1 } else { i as i64 };
            assert_eq!(meta.offset, expected, "acks={acks}");
        }
        producer.close().await.unwrap();
        let mut consumer =
            consumer_at(&broker, &[TopicPartition::new(&topic, 0)], Offset::Earliest).await;
        let got = consume(&mut consumer, 100).await;
        let values: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(values, expected, "acks={acks}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_partitioned_like_java_and_null_keys_stick() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "keyed", 4).await;
    let config =
        ClientConfig::new(broker.bootstrap_servers()).with_linger(Duration::from_millis(50));
    let producer = Producer::connect(config).await.unwrap();
    for i in 0..50 {
        let key = format!("key-{i}");
        let meta = producer
            .send(ProducerRecord::new("keyed", "v").with_key(key.clone()))
            .await
            .unwrap();
        assert_eq!(
            meta.partition,
            partition_for_key(key.as_bytes(), 4),
            "{key}"
        );
    }
    // Null keys sent together share one batch, hence one partition.
    let futures: Vec<_> = (0..20)
        .map(|_| producer.send(ProducerRecord::new("keyed", "sticky")))
        .collect();
    let mut partitions = BTreeSet::new();
    for f in futures {
        partitions.insert(f.await.unwrap().partition);
    }
    assert_eq!(partitions.len(), 1, "{partitions:?}");
    // An explicit partition out of range fails that record only.
    let err = producer
        .send(ProducerRecord::new("keyed", "v").with_partition(9))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Invalid partition"), "{err}");
    producer.close().await.unwrap();
    // Sends after close fail.
    let err = producer
        .send(ProducerRecord::new("keyed", "late"))
        .await
        .unwrap_err();
    assert!(matches!(err, strom_client::ClientError::Closed), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_consumer_gets_a_record_produced_later() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "later", 1).await;
    let tp = TopicPartition::new("later", 0);
    let mut consumer = consumer_at(&broker, std::slice::from_ref(&tp), Offset::Latest).await;
    assert!(
        consumer
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    let bootstrap = broker.bootstrap_servers().to_string();
    let producing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let producer = Producer::connect(ClientConfig::new(bootstrap))
            .await
            .unwrap();
        producer
            .send(ProducerRecord::new("later", "wake up"))
            .await
            .unwrap();
        producer.close().await.unwrap();
    });
    let started = tokio::time::Instant::now();
    let got = consumer.poll(Duration::from_secs(15)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value.as_deref(), Some(&b"wake up"[..]));
    producing.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_position_and_offsets_for_times() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "times", 1).await;
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    for i in 0..10i64 {
        producer
            .send(ProducerRecord::new("times", format!("{i}")).with_timestamp(10_000 + i * 1_000))
            .await
            .unwrap();
    }
    let tp = TopicPartition::new("times", 0);
    let mut consumer = consumer_at(&broker, std::slice::from_ref(&tp), Offset::Earliest).await;
    assert_eq!(consumer.position(&tp).await.unwrap(), 0);
    assert_eq!(
        consumer
            .beginning_offsets(std::slice::from_ref(&tp))
            .await
            .unwrap()[&tp],
        0
    );
    assert_eq!(
        consumer
            .end_offsets(std::slice::from_ref(&tp))
            .await
            .unwrap()[&tp],
        10
    );

    let query = HashMap::from([(tp.clone(), 12_500)]);
    let found = consumer.offsets_for_times(&query).await.unwrap()[&tp].unwrap();
    assert_eq!((found.offset, found.timestamp), (3, 13_000));
    let past_end = HashMap::from([(tp.clone(), 99_999)]);
    assert_eq!(
        consumer.offsets_for_times(&past_end).await.unwrap()[&tp],
        None
    );

    consumer.seek(&tp, Offset::At(found.offset)).unwrap();
    let got = consume(&mut consumer, 7).await;
    assert_eq!(got.first().map(|r| r.offset), Some(3));
    assert_eq!(consumer.position(&tp).await.unwrap(), 10);

    // Seek back into the middle of what was already read.
    consumer.seek(&tp, Offset::At(8)).unwrap();
    let got = consume(&mut consumer, 2).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![8, 9]);
    consumer.seek(&tp, Offset::Earliest).unwrap();
    assert_eq!(consumer.position(&tp).await.unwrap(), 0);
    consumer.seek(&tp, Offset::Latest).unwrap();
    assert_eq!(consumer.position(&tp).await.unwrap(), 10);
    assert!(
        consumer
            .seek(&TopicPartition::new("times", 7), Offset::At(0))
            .is_err()
    );
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_positions_reset_per_auto_offset_reset() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "range", 1).await;
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    for i in 0..3 {
        producer
            .send(ProducerRecord::new("range", format!("{i}")))
            .await
            .unwrap();
    }
    let tp = TopicPartition::new("range", 0);
    let config = ClientConfig::new(broker.bootstrap_servers())
        .with_auto_offset_reset(AutoOffsetReset::Earliest);
    let mut consumer = Consumer::connect(config).await.unwrap();
    consumer.assign([(tp.clone(), Offset::At(1_000))]);
    let got = consume(&mut consumer, 3).await;
    assert_eq!(got[0].offset, 0);

    let config =
        ClientConfig::new(broker.bootstrap_servers()).with_auto_offset_reset(AutoOffsetReset::None);
    let mut consumer = Consumer::connect(config).await.unwrap();
    consumer.assign([(tp.clone(), Offset::At(1_000))]);
    let mut result = Ok(Vec::new());
    for _ in 0..20 {
        result = consumer.poll(Duration::from_millis(500)).await;
        if result.is_err() {
            break;
        }
    }
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange), "{err}");
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_partitions_are_consumed_together() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "multi", 3).await;
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let futures: Vec<_> = (0..300)
        .map(|i| producer.send(ProducerRecord::new("multi", format!("{i}")).with_partition(i % 3)))
        .collect();
    for f in futures {
        f.await.unwrap();
    }
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new("multi", p)).collect();
    let mut consumer = consumer_at(&broker, &tps, Offset::Earliest).await;
    let got = consume(&mut consumer, 300).await;
    for p in 0..3 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, (0..100).collect::<Vec<_>>(), "partition {p}");
    }
    producer.close().await.unwrap();
}

/// Sends everything to the last partition, whatever the key.
#[derive(Debug)]
struct LastPartition;

impl strom_client::Partitioner for LastPartition {
    fn partition(&self, _: &str, _: Option<&[u8]>, _: Option<&[u8]>, n: i32, _: &[i32]) -> i32 {
        n - 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_and_custom_partitioners() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "rr", 3).await;
    let props = std::collections::BTreeMap::from([
        (
            "bootstrap.servers".to_string(),
            broker.bootstrap_servers().to_string(),
        ),
        (
            "partitioner.class".to_string(),
            "org.apache.kafka.clients.producer.RoundRobinPartitioner".to_string(),
        ),
    ]);
    let producer = Producer::connect(ClientConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    let mut partitions = Vec::new();
    for i in 0..6 {
        let md = producer
            .send(ProducerRecord::new("rr", format!("{i}")).with_key("same key"))
            .await
            .unwrap();
        partitions.push(md.partition);
    }
    // Keys are ignored; the turns go round all three partitions.
    assert_eq!(partitions[..3].iter().collect::<BTreeSet<_>>().len(), 3);
    assert_eq!(partitions[..3], partitions[3..]);
    producer.close().await.unwrap();

    let custom = ClientConfig::new(broker.bootstrap_servers())
        .with_partitioner(std::sync::Arc::new(LastPartition));
    let producer = Producer::connect(custom).await.unwrap();
    let md = producer
        .send(ProducerRecord::new("rr", "x").with_key("k"))
        .await
        .unwrap();
    assert_eq!(md.partition, 2);
    // An explicit partition still wins.
    let md = producer
        .send(ProducerRecord::new("rr", "y").with_partition(0))
        .await
        .unwrap();
    assert_eq!(md.partition, 0);
    producer.close().await.unwrap();

    let mut bad = props.clone();
    bad.insert("partitioner.class".into(), "com.example.Nope".into());
    assert!(ClientConfig::from_properties(&bad).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_seek_to_beginning_and_end() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "paused", 2).await;
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let futures: Vec<_> = (0..20)
        .map(|i| producer.send(ProducerRecord::new("paused", format!("{i}")).with_partition(i % 2)))
        .collect();
    for f in futures {
        f.await.unwrap();
    }
    let (p0, p1) = (
        TopicPartition::new("paused", 0),
        TopicPartition::new("paused", 1),
    );
    let mut consumer = consumer_at(&broker, &[p0.clone(), p1.clone()], Offset::Earliest).await;
    consumer.pause(std::slice::from_ref(&p0)).unwrap();
    assert_eq!(consumer.paused(), vec![p0.clone()]);
    let got = consume(&mut consumer, 10).await;
    assert!(
        got.iter().all(|r| r.partition == 1),
        "a paused partition returns nothing"
    );
    // Still nothing from it while paused, within a poll's whole timeout.
    assert!(
        consumer
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    consumer.resume(std::slice::from_ref(&p0)).unwrap();
    assert!(consumer.paused().is_empty());
    let got = consume(&mut consumer, 10).await;
    assert!(got.iter().all(|r| r.partition == 0));
    assert_eq!(got.first().map(|r| r.offset), Some(0));

    consumer
        .seek_to_beginning(std::slice::from_ref(&p1))
        .unwrap();
    assert_eq!(consumer.position(&p1).await.unwrap(), 0);
    consumer.seek_to_end(std::slice::from_ref(&p0)).unwrap();
    assert_eq!(consumer.position(&p0).await.unwrap(), 10);
    let again = consume(&mut consumer, 10).await;
    assert!(again.iter().all(|r| r.partition == 1));

    // Partitions that are not assigned are refused, and nothing changes.
    let other = TopicPartition::new("paused", 7);
    assert!(consumer.pause(&[p0.clone(), other.clone()]).is_err());
    assert!(consumer.paused().is_empty());
    assert!(consumer.seek_to_beginning(&[other]).is_err());
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_retries_across_a_broker_crash_without_loss() {
    // A fixed port, so the restarted broker is where the client looks for it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listeners = format!("PLAINTEXT://127.0.0.1:{port}");
    let mut broker = TestBroker::start_with(&[("listeners", listeners.as_str())]).await;
    create_topic(&broker, "crash", 1).await;
    let config = ClientConfig::new(broker.bootstrap_servers())
        .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(200));
    let producer = Producer::connect(config).await.unwrap();

    let mut futures = Vec::new();
    for i in 0..200 {
        futures.push(producer.send(ProducerRecord::new("crash", format!("{i}"))));
    }
    // Let some of them be acknowledged before the crash.
    producer.flush().await.unwrap();
    for i in 200..400 {
        futures.push(producer.send(ProducerRecord::new("crash", format!("{i}"))));
        if i == 250 {
            broker.crash_and_restart().await;
        }
    }
    for (i, f) in futures.into_iter().enumerate() {
        f.await.unwrap_or_else(|e| panic!("record {i} failed: {e}"));
    }
    producer.close().await.unwrap();

    let tp = TopicPartition::new("crash", 0);
    let mut consumer = consumer_at(&broker, std::slice::from_ref(&tp), Offset::Earliest).await;
    let end = consumer
        .end_offsets(std::slice::from_ref(&tp))
        .await
        .unwrap()[&tp];
    assert!(end >= 400, "end offset {end}");
    let got = consume(&mut consumer, usize::try_from(end).unwrap()).await;
    let values: BTreeSet<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    for i in 0..400 {
        assert!(values.contains(&i.to_string()), "record {i} lost");
    }
}

/// A batch the topic's `max.message.bytes` refuses (MESSAGE_TOO_LARGE) is split into one
/// batch per record, each record's future still answering for it, in order, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_large_for_the_topic_is_split_and_every_record_delivered() {
    let broker = TestBroker::start().await;
    let admin = Admin::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("small")
                .with_partitions(1)
                .with_config("max.message.bytes", "2000")],
            Default::default(),
        )
        .await
        .unwrap();
    created[0].result.as_ref().expect("topic created");
    for codec in [CompressionType::None, CompressionType::Zstd] {
        let producer = Producer::connect(
            ClientConfig::new(broker.bootstrap_servers())
                .with_linger(Duration::from_millis(200))
                .with_batch_size(1 << 20)
                .with_compression(codec),
        )
        .await
        .unwrap();
        // Random-ish values so that compression cannot squeeze ten of them under 2000 bytes.
        let values: Vec<Vec<u8>> = (0..10u32)
            .map(|i| {
                (0..700u32)
                    .map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i * 977) >> 13) as u8)
                    .collect()
            })
            .collect();
        let futures: Vec<_> = values
            .iter()
            .map(|v| producer.send(ProducerRecord::new("small", v.clone())))
            .collect();
        let mut offsets = Vec::new();
        for f in futures {
            offsets.push(
                f.await
                    .expect("each record is delivered after the split")
                    .offset,
            );
        }
        let first = offsets[0];
        assert_eq!(
            offsets,
            (first..first + 10).collect::<Vec<_>>(),
            "{codec:?}"
        );
        let mut consumer = consumer_at(
            &broker,
            &[TopicPartition::new("small", 0)],
            Offset::At(first),
        )
        .await;
        let got = consume(&mut consumer, 10).await;
        let got: Vec<&[u8]> = got
            .iter()
            .take(10)
            .map(|r| r.value.as_deref().unwrap())
            .collect();
        let want: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        assert_eq!(got, want, "{codec:?}");
        producer.close().await.unwrap();
    }
}

/// Records for a topic without metadata wait for it (here: until auto-creation), keep their
/// send order, and `flush` waits for them too; a topic that never appears fails its records
/// after `max.block.ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_wait_for_their_topic_and_fail_when_it_never_comes() {
    let broker = TestBroker::start().await;
    let producer = Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let futures: Vec<_> = (0..50)
        .map(|i| producer.send(ProducerRecord::new("appears", format!("v{i}")).with_partition(0)))
        .collect();
    producer.flush().await.unwrap();
    for (i, f) in futures.into_iter().enumerate() {
        let meta = f.await.expect("delivered once the topic exists");
        assert_eq!((meta.topic.as_str(), meta.offset), ("appears", i as i64));
    }

    let broker = TestBroker::start_with(&[("auto.create.topics.enable", "false")]).await;
    let producer = Producer::connect(
        ClientConfig::new(broker.bootstrap_servers()).with_max_block(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let err = producer
        .send(ProducerRecord::new("never", "v"))
        .await
        .expect_err("no such topic");
    assert!(err.to_string().contains("not present in metadata"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    producer.flush().await.unwrap();
}

/// Java's `send(record, callback)`: each callback runs once, in the partition's record order,
/// without anyone awaiting the futures; a refused record's callback runs at once, and one
/// added to a future that is already complete runs at once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_run_once_per_record_in_order() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "callbacks", 2).await;
    let producer =
        Producer::connect(ClientConfig::new(broker.bootstrap_servers()).with_batch_size(2_000))
            .await
            .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 0..2_000 {
        let seen = seen.clone();
        let record = ProducerRecord::new("callbacks", format!("v{i}")).with_partition(i % 2);
        drop(producer.send_with_callback(record, move |result| {
            let m = result.expect("delivered");
            seen.lock().unwrap().push((m.partition, m.offset));
        }));
    }
    producer.flush().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2_000, "one call per record");
    for p in 0..2 {
        let offsets: Vec<i64> = seen
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..1_000).collect::<Vec<_>>(),
            "partition {p} in order"
        );
    }

    let (tx, rx) = tokio::sync::oneshot::channel();
    let refused = ProducerRecord::new("callbacks", "x").with_partition(7);
    drop(producer.send_with_callback(refused, move |r| {
        let _ = tx.send(r);
    }));
    let err = rx.await.unwrap().expect_err("partition 7 of 2");
    assert!(err.to_string().contains("Invalid partition"), "{err}");

    let future = producer.send(ProducerRecord::new("callbacks", "late").with_partition(0));
    producer.flush().await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    future.on_completion(move |r| {
        let _ = tx.send(r);
    });
    assert_eq!(rx.await.unwrap().unwrap().offset, 1_000);
    assert_eq!(
        future.await.unwrap().offset,
        1_000,
        "the future still answers"
    );
}
