//! The typed producer: [`TypedProducer`] serializes the key and value of a [`TypedRecord`]
//! with its [`Serializer`]s (Java's `key.serializer` and `value.serializer`) and hands the
//! bytes to a [`Producer`].

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::producer::{DeliveryFuture, Producer};
use crate::record::{Header, ProducerRecord};
use crate::serialization::{Serializer, in_context};

/// A record to produce with a typed key and value (Java's `ProducerRecord<K, V>`). `None`
/// is a null key (partitioned by the sticky partitioner) or a null value (a tombstone); a
/// null is sent as null without asking the serializer.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedRecord<K, V> {
    pub topic: String,
    /// `None`: chosen by the partitioner from the serialized key.
    pub partition: Option<i32>,
    pub key: Option<K>,
    pub value: Option<V>,
    /// Serializers may add to these.
    pub headers: Vec<Header>,
    /// Milliseconds since the epoch; `None` means the time of `send`.
    pub timestamp: Option<i64>,
}

impl<K, V> Default for TypedRecord<K, V> {
    fn default() -> Self {
        Self {
            topic: String::new(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }
}

impl<K, V> TypedRecord<K, V> {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: V) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value),
            ..Self::default()
        }
    }

    /// A record with a key and a null value: a tombstone, which deletes the key from a
    /// compacted topic.
    pub fn tombstone(topic: impl Into<String>, key: K) -> Self {
        Self {
            topic: topic.into(),
            key: Some(key),
            ..Self::default()
        }
    }

    pub fn with_key(mut self, key: K) -> Self {
        self.key = Some(key);
        self
    }

    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    pub fn with_header(mut self, key: impl Into<String>, value: Option<impl Into<Bytes>>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }

    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// A [`Producer`] with a key [`Serializer`] and a value [`Serializer`], like a Java
/// `KafkaProducer<K, V>` configured with `key.serializer` and `value.serializer`. Cheap to
/// clone (clones share the producer and the serializers).
///
/// Unlike [`Producer::send`], [`TypedProducer::send`] returns a `Result`: a key or value
/// that cannot be serialized is refused at once with [`ClientError::Serialization`]
/// (Java's `send` throws its `SerializationException` too, rather than failing the
/// returned future), and the record is not sent. Other failures arrive through the
/// [`DeliveryFuture`] as usual.
///
/// Serialization happens before the producer's [`ProducerInterceptor`]s, which therefore
/// see the serialized record (Java's interceptors see the typed record) and do not hear of
/// records that failed to serialize.
///
/// [`ClientError::Serialization`]: crate::ClientError::Serialization
/// [`ProducerInterceptor`]: crate::ProducerInterceptor
///
/// ```
/// use strom_client::serialization::{I64Serializer, StringSerializer};
/// use strom_client::{ClientConfig, Producer, TypedProducer, TypedRecord};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), strom_client::ClientError> {
/// # let broker = strom_test_support::TestBroker::start().await;
/// # let bootstrap = broker.bootstrap_servers();
/// let producer = Producer::connect(ClientConfig::new(bootstrap)).await?;
/// let producer: TypedProducer<String, i64> =
///     TypedProducer::new(producer, StringSerializer, I64Serializer);
///
/// let record = TypedRecord::new("totals", 42).with_key("alice".to_string());
/// let metadata = producer.send(record)?.await?;
/// assert_eq!((metadata.topic.as_str(), metadata.offset), ("totals", 0));
///
/// // A tombstone: the value is null.
/// producer.send(TypedRecord::tombstone("totals", "bob".to_string()))?;
/// producer.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct TypedProducer<K, V> {
    producer: Producer,
    key: Arc<dyn Serializer<K>>,
    value: Arc<dyn Serializer<V>>,
}

impl<K, V> Clone for TypedProducer<K, V> {
    fn clone(&self) -> Self {
        Self {
            producer: self.producer.clone(),
            key: Arc::clone(&self.key),
            value: Arc::clone(&self.value),
        }
    }
}

impl<K, V> fmt::Debug for TypedProducer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedProducer")
            .field("producer", &self.producer)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

impl<K, V> TypedProducer<K, V> {
    /// Wraps `producer`; `key` serializes keys and `value` values. The producer may still be
    /// used directly (and through other wrappers) for raw records.
    pub fn new(
        producer: Producer,
        key: impl Serializer<K> + 'static,
        value: impl Serializer<V> + 'static,
    ) -> Self {
        Self {
            producer,
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }

    /// Serializes the record (key first, then value, as Java) and queues it without
    /// waiting, like [`Producer::send`]. `Err` is a serialization failure, and nothing was
    /// sent; every other outcome, including a full `buffer.memory`, comes from the future.
    pub fn send(&self, record: TypedRecord<K, V>) -> Result<DeliveryFuture> {
        Ok(self.producer.send(self.serialize(record)?))
    }

    /// Serializes the record, then waits for room in `buffer.memory` like
    /// [`Producer::queue`] (Java's blocking `send`). `Err` is a serialization failure.
    pub async fn queue(&self, record: TypedRecord<K, V>) -> Result<DeliveryFuture> {
        let record = self.serialize(record)?;
        Ok(self.producer.queue(record).await)
    }

    /// The raw record `send` would produce: key and value serialized, headers as the
    /// serializers left them. A [`ClientError::Serialization`](crate::ClientError) names
    /// the topic and whether the key or the value failed.
    pub fn serialize(&self, record: TypedRecord<K, V>) -> Result<ProducerRecord> {
        serialize_record(&*self.key, &*self.value, record)
    }

    /// [`Producer::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.producer.flush().await
    }

    /// [`Producer::close`].
    pub async fn close(&self) -> Result<()> {
        self.producer.close().await
    }

    /// The untyped producer, for transactions and raw records.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The untyped producer, dropping the serializers.
    pub fn into_inner(self) -> Producer {
        self.producer
    }
}

/// What [`TypedProducer::serialize`] does, apart from a producer.
fn serialize_record<K, V>(
    key_serializer: &dyn Serializer<K>,
    value_serializer: &dyn Serializer<V>,
    record: TypedRecord<K, V>,
) -> Result<ProducerRecord> {
    let TypedRecord {
        topic,
        partition,
        key,
        value,
        mut headers,
        timestamp,
    } = record;
    let key = key
        .map(|key| key_serializer.serialize(&topic, &mut headers, &key))
        .transpose()
        .map_err(|e| in_context(e, format_args!("Error serializing KEY for topic {topic}")))?;
    let value = value
        .map(|value| value_serializer.serialize(&topic, &mut headers, &value))
        .transpose()
        .map_err(|e| in_context(e, format_args!("Error serializing VALUE for topic {topic}")))?;
    Ok(ProducerRecord {
        topic,
        partition,
        key,
        value,
        headers,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientError;
    use crate::serialization::{I32Serializer, StringSerializer};

    #[test]
    fn typed_records_build_like_producer_records() {
        let r: TypedRecord<String, i32> = TypedRecord::new("t", 5)
            .with_key("k".into())
            .with_partition(2)
            .with_header("h", Some("v"))
            .with_timestamp(9);
        assert_eq!(
            (r.topic.as_str(), r.partition, r.key.as_deref(), r.value),
            ("t", Some(2), Some("k"), Some(5))
        );
        assert_eq!(r.headers, [Header::new("h", Some("v"))]);
        assert_eq!(r.timestamp, Some(9));
        let t: TypedRecord<String, i32> = TypedRecord::tombstone("t", "k".into());
        assert_eq!((t.key.as_deref(), t.value), (Some("k"), None));
    }

    struct Odd;
    impl Serializer<i32> for Odd {
        fn serialize(&self, topic: &str, headers: &mut Vec<Header>, v: &i32) -> Result<Bytes> {
            headers.push(Header::new("odd", Some(topic.to_string())));
            if v % 2 == 0 {
                return Err(ClientError::Serialization(format!("{v} is even")));
            }
            I32Serializer.serialize(topic, headers, v)
        }
    }

    #[test]
    fn records_serialize_key_then_value_with_headers() {
        let record = TypedRecord::new("t", 3)
            .with_key("k")
            .with_partition(1)
            .with_header("h", None::<Bytes>)
            .with_timestamp(7);
        let raw = serialize_record(&StringSerializer, &Odd, record).unwrap();
        assert_eq!(
            raw,
            ProducerRecord {
                topic: "t".into(),
                partition: Some(1),
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(&[0, 0, 0, 3])),
                headers: vec![
                    Header::new("h", None::<Bytes>),
                    Header::new("odd", Some("t"))
                ],
                timestamp: Some(7),
            }
        );
        // Nulls stay null and skip the serializer (no header added).
        let raw =
            serialize_record::<&str, i32>(&StringSerializer, &Odd, TypedRecord::default()).unwrap();
        assert_eq!((raw.key, raw.value, raw.headers), (None, None, vec![]));
    }

    #[test]
    fn serialization_errors_name_the_part() {
        let e = serialize_record(
            &StringSerializer,
            &Odd,
            TypedRecord::new("t", 2).with_key("k"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Error serializing VALUE for topic t: 2 is even"
        );
        assert!(!e.is_retriable());
        let e = serialize_record(&Odd, &Odd, TypedRecord::new("t", 1).with_key(4)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Error serializing KEY for topic t: 4 is even"
        );
    }
}
