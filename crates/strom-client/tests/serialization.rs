//! Typed producing and consuming against an in-process broker: built-in and custom
//! serializers, nulls, and serialization errors on both sides.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strom_client::serialization::{
    I32Serializer, I64Deserializer, I64Serializer, StringDeserializer, StringSerializer,
    UuidDeserializer, UuidSerializer,
};
use strom_client::{
    Admin, ClientConfig, ClientError, Consumer, ConsumerRecord, Deserializer, Header, NewTopic,
    Offset, Producer, ProducerRecord, Serializer, TopicPartition, TypedProducer, TypedRecord,
};
use strom_test_support::TestBroker;
use uuid::Uuid;

async fn create_topic(broker: &TestBroker, name: &str) {
    let admin = Admin::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(name).with_partitions(1)],
            Default::default(),
        )
        .await
        .unwrap();
    results[0].result.as_ref().expect("topic created");
}

async fn producer(broker: &TestBroker) -> Producer {
    Producer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap()
}

/// Everything in partition 0 of `topic` from the start: polls until `n` records arrived.
async fn consume(broker: &TestBroker, topic: &str, n: usize) -> Vec<ConsumerRecord> {
    let mut consumer = Consumer::connect(ClientConfig::new(broker.bootstrap_servers()))
        .await
        .unwrap();
    consumer.assign([(TopicPartition::new(topic, 0), Offset::Earliest)]);
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
    assert!(
        consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty(),
        "more than {n} records"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_keys_and_long_values_round_trip() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "totals").await;
    let producer: TypedProducer<String, i64> =
        TypedProducer::new(producer(&broker).await, StringSerializer, I64Serializer);
    let sent: Vec<TypedRecord<String, i64>> = vec![
        TypedRecord::new("totals", 1).with_key("alice".into()),
        TypedRecord::new("totals", -5_000_000_000).with_key("bøb".into()),
        // Null key.
        TypedRecord::new("totals", i64::MAX),
        // Null value.
        TypedRecord::tombstone("totals", "alice".into()),
        // Empty key, which is not null.
        TypedRecord::new("totals", 0)
            .with_key(String::new())
            .with_header("trace", Some("t-1")),
    ];
    let mut futures = Vec::new();
    for record in sent.iter().cloned() {
        futures.push(producer.send(record).unwrap());
    }
    // `queue` too.
    let queued = producer
        .queue(TypedRecord::new("totals", 7).with_key("carol".into()))
        .await
        .unwrap();
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(f.await.unwrap().offset, i as i64);
    }
    assert_eq!(queued.await.unwrap().offset, 5);
    producer.flush().await.unwrap();
    producer.close().await.unwrap();

    let got = consume(&broker, "totals", 6).await;
    // Java's layouts on the wire: UTF-8 and 8 big-endian bytes.
    assert_eq!(got[0].key.as_deref(), Some(&b"alice"[..]));
    assert_eq!(got[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 0, 0, 1][..]));
    assert_eq!(got[1].key.as_deref(), Some("bøb".as_bytes()));
    assert_eq!((got[2].key.as_ref(), got[3].value.as_ref()), (None, None));

    let typed: Vec<_> = got
        .iter()
        .map(|r| {
            r.deserialize(&StringDeserializer, &I64Deserializer)
                .unwrap()
        })
        .collect();
    let pairs: Vec<(Option<&str>, Option<i64>)> =
        typed.iter().map(|r| (r.key.as_deref(), r.value)).collect();
    assert_eq!(
        pairs,
        [
            (Some("alice"), Some(1)),
            (Some("bøb"), Some(-5_000_000_000)),
            (None, Some(i64::MAX)),
            (Some("alice"), None),
            (Some(""), Some(0)),
            (Some("carol"), Some(7)),
        ]
    );
    assert_eq!(typed[4].headers, [Header::new("trace", Some("t-1"))]);
    assert_eq!((typed[5].topic.as_str(), typed[5].offset), ("totals", 5));
}

/// A small struct with a custom (de)serializer that also writes and checks a header.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    sensor: u16,
    celsius: f32,
}

struct ReadingSerializer;

impl Serializer<Reading> for ReadingSerializer {
    fn serialize(
        &self,
        _topic: &str,
        headers: &mut Vec<Header>,
        data: &Reading,
    ) -> Result<Bytes, ClientError> {
        headers.push(Header::new("format", Some("reading-v1")));
        let mut out = BytesMut::with_capacity(6);
        out.put_u16(data.sensor);
        out.put_f32(data.celsius);
        Ok(out.freeze())
    }
}

struct ReadingDeserializer;

impl Deserializer<Reading> for ReadingDeserializer {
    fn deserialize(
        &self,
        _topic: &str,
        headers: &[Header],
        data: &Bytes,
    ) -> Result<Reading, ClientError> {
        let format = headers.iter().find(|h| h.key == "format");
        if format.and_then(|h| h.value.as_deref()) != Some(&b"reading-v1"[..]) {
            return Err(ClientError::Serialization("not a reading-v1".into()));
        }
        if data.len() != 6 {
            return Err(ClientError::Serialization(format!(
                "a reading is 6 bytes, not {}",
                data.len()
            )));
        }
        let mut data = &data[..];
        Ok(Reading {
            sensor: data.get_u16(),
            celsius: data.get_f32(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_struct_values_with_uuid_keys() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "readings").await;
    let producer = TypedProducer::new(producer(&broker).await, UuidSerializer, ReadingSerializer);
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    let readings = [
        Reading {
            sensor: 1,
            celsius: 21.5,
        },
        Reading {
            sensor: 65535,
            celsius: -40.0,
        },
    ];
    for (id, reading) in ids.iter().zip(&readings) {
        let record = TypedRecord::new("readings", reading.clone()).with_key(*id);
        producer.send(record).unwrap().await.unwrap();
    }
    producer.close().await.unwrap();

    let got = consume(&broker, "readings", 2).await;
    // Java's UUIDSerializer writes the string form.
    assert_eq!(got[0].key.as_deref(), Some(ids[0].to_string().as_bytes()));
    for (i, record) in got.iter().enumerate() {
        let typed = record
            .deserialize(&UuidDeserializer, &ReadingDeserializer)
            .unwrap();
        assert_eq!(typed.key, Some(ids[i]));
        assert_eq!(typed.value.as_ref(), Some(&readings[i]));
        assert_eq!(typed.headers, [Header::new("format", Some("reading-v1"))]);
    }
}

/// A serializer that refuses some values.
struct NonNegative;

impl Serializer<i32> for NonNegative {
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Vec<Header>,
        data: &i32,
    ) -> Result<Bytes, ClientError> {
        if *data < 0 {
            return Err(ClientError::Serialization(format!("{data} is negative")));
        }
        I32Serializer.serialize(topic, headers, data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_errors_are_returned_and_nothing_is_sent() {
    let broker = TestBroker::start().await;
    create_topic(&broker, "checked").await;
    let producer: TypedProducer<&str, i32> =
        TypedProducer::new(producer(&broker).await, StringSerializer, NonNegative);

    let e = producer
        .send(TypedRecord::new("checked", -1).with_key("a"))
        .unwrap_err();
    assert!(matches!(e, ClientError::Serialization(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "Error serializing VALUE for topic checked: -1 is negative"
    );
    assert!(!e.is_retriable());
    let e = producer
        .queue(TypedRecord::new("checked", -2))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Error serializing VALUE for topic checked: -2 is negative"
    );

    // The producer is unharmed, and the refused records never reached the log.
    let ok = producer
        .send(TypedRecord::new("checked", 2).with_key("b"))
        .unwrap();
    assert_eq!(ok.await.unwrap().offset, 0);
    // The inner producer still sends raw records.
    let raw = producer
        .producer()
        .send(ProducerRecord::new("checked", "not an int"));
    assert_eq!(raw.await.unwrap().offset, 1);
    producer.into_inner().close().await.unwrap();

    // On the consumer side a record that does not deserialize fails alone, saying where.
    let got = consume(&broker, "checked", 2).await;
    let first = got[0]
        .deserialize(
            &StringDeserializer,
            &strom_client::serialization::I32Deserializer,
        )
        .unwrap();
    assert_eq!((first.key.as_deref(), first.value), (Some("b"), Some(2)));
    let e = got[1]
        .deserialize(
            &StringDeserializer,
            &strom_client::serialization::I32Deserializer,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Error deserializing VALUE for partition checked-0 at offset 1: \
         Size of data received by IntegerDeserializer is not 4"
    );
}
