//! Typed keys and values: the [`Serializer`] and [`Deserializer`] traits (Java's
//! `org.apache.kafka.common.serialization`), the built-in implementations with Java's byte
//! layouts, the typed consumed record [`TypedConsumerRecord`] and
//! [`ConsumerRecord::deserialize`], which turns a polled record into one. The typed producer
//! is [`TypedProducer`](crate::TypedProducer).
//!
//! | Rust | Java | Rust type | bytes |
//! |---|---|---|---|
//! | [`StringSerializer`] / [`StringDeserializer`], [`LossyStringDeserializer`] | `StringSerializer` | `String`, `str` | UTF-8 |
//! | [`BytesSerializer`] / [`BytesDeserializer`] | `ByteArraySerializer`, `BytesSerializer`, `ByteBufferSerializer` | `Bytes` (also `Vec<u8>`, `[u8]` to serialize) | as is |
//! | [`I16Serializer`] / [`I16Deserializer`] | `ShortSerializer` | `i16` | 2, big-endian |
//! | [`I32Serializer`] / [`I32Deserializer`] | `IntegerSerializer` | `i32` | 4, big-endian |
//! | [`I64Serializer`] / [`I64Deserializer`] | `LongSerializer` | `i64` | 8, big-endian |
//! | [`F32Serializer`] / [`F32Deserializer`] | `FloatSerializer` | `f32` | 4, IEEE 754 big-endian |
//! | [`F64Serializer`] / [`F64Deserializer`] | `DoubleSerializer` | `f64` | 8, IEEE 754 big-endian |
//! | [`BoolSerializer`] / [`BoolDeserializer`] | `BooleanSerializer` | `bool` | 1: `0` or `1` |
//! | [`UuidSerializer`] / [`UuidDeserializer`] | `UUIDSerializer` | `Uuid` | its string form, UTF-8 |
//! | [`VoidSerializer`] / [`VoidDeserializer`] | `VoidSerializer` | [`Infallible`] | always null |
//!
//! **Null.** A Kafka key or value may be null. Here that is `None` in the typed records
//! ([`TypedRecord`](crate::TypedRecord)`::key`, [`TypedConsumerRecord::value`]...), and a
//! null never reaches a (de)serializer: `None` is produced as null and a null is consumed as
//! `None`, which is what every one of Java's built-ins does with a null. So a serializer
//! only ever sees a value and a deserializer only ever sees bytes (possibly empty, which is
//! not null). Java's `Void` (whose only value is null) is [`Infallible`], a type without
//! values: a `TypedProducer<Infallible, V>` can only send null keys.
//!
//! **Errors** are [`ClientError::Serialization`], with Java's messages where Java has one
//! ("Size of data received by IntegerDeserializer is not 4"). The typed producer and
//! [`ConsumerRecord::deserialize`] add which record and whether its key or value failed.
//!
//! **Configuration.** Serializers are values given to [`TypedProducer::new`] and
//! [`ConsumerRecord::deserialize`], not class names: Java's `key.serializer`,
//! `value.serializer`, `key.deserializer` and `value.deserializer` properties are not read
//! (a [`ClientConfig`](crate::ClientConfig) keeps them with the other unknown keys, so Java
//! properties files still load).
//!
//! [`TypedProducer::new`]: crate::TypedProducer::new

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::error::{ClientError, Result};
use crate::record::{ConsumerRecord, Header, TimestampType};

/// Turns a key or value of type `T` into the bytes of a record (Java's `Serializer<T>`).
///
/// `topic` is the record's topic; `headers` are its headers, which the serializer may read
/// or add to (say, a schema id or a content type), as Java's `serialize(topic, headers,
/// data)` does. Null keys and values never get here (see the [module docs](self)).
///
/// ```
/// use bytes::{BufMut, Bytes, BytesMut};
/// use strom_client::{ClientError, Header, Serializer};
///
/// struct Point {
///     x: i32,
///     y: i32,
/// }
///
/// struct PointSerializer;
///
/// impl Serializer<Point> for PointSerializer {
///     fn serialize(
///         &self,
///         _topic: &str,
///         headers: &mut Vec<Header>,
///         point: &Point,
///     ) -> Result<Bytes, ClientError> {
///         headers.push(Header::new("format", Some("point-v1")));
///         let mut out = BytesMut::with_capacity(8);
///         out.put_i32(point.x);
///         out.put_i32(point.y);
///         Ok(out.freeze())
///     }
/// }
///
/// let mut headers = Vec::new();
/// let bytes = PointSerializer.serialize("points", &mut headers, &Point { x: 1, y: -1 })?;
/// assert_eq!(&bytes[..], [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
/// assert_eq!(headers, [Header::new("format", Some("point-v1"))]);
/// # Ok::<(), ClientError>(())
/// ```
pub trait Serializer<T: ?Sized>: Send + Sync {
    /// The bytes of `data`; an error is usually [`ClientError::Serialization`].
    fn serialize(&self, topic: &str, headers: &mut Vec<Header>, data: &T) -> Result<Bytes>;
}

/// Turns the bytes of a record's key or value back into a `T` (Java's `Deserializer<T>`).
///
/// `data` is a [`Bytes`] rather than a slice so that a deserializer may keep it without
/// copying (as [`BytesDeserializer`] does); `&data[..]` is the slice. Null keys and values
/// never get here (see the [module docs](self)).
pub trait Deserializer<T>: Send + Sync {
    /// The value in `data`; an error is usually [`ClientError::Serialization`].
    fn deserialize(&self, topic: &str, headers: &[Header], data: &Bytes) -> Result<T>;
}

impl<T: ?Sized, S: Serializer<T> + ?Sized> Serializer<T> for &S {
    fn serialize(&self, topic: &str, headers: &mut Vec<Header>, data: &T) -> Result<Bytes> {
        (**self).serialize(topic, headers, data)
    }
}

impl<T: ?Sized, S: Serializer<T> + ?Sized> Serializer<T> for Box<S> {
    fn serialize(&self, topic: &str, headers: &mut Vec<Header>, data: &T) -> Result<Bytes> {
        (**self).serialize(topic, headers, data)
    }
}

impl<T: ?Sized, S: Serializer<T> + ?Sized> Serializer<T> for Arc<S> {
    fn serialize(&self, topic: &str, headers: &mut Vec<Header>, data: &T) -> Result<Bytes> {
        (**self).serialize(topic, headers, data)
    }
}

impl<T, D: Deserializer<T> + ?Sized> Deserializer<T> for &D {
    fn deserialize(&self, topic: &str, headers: &[Header], data: &Bytes) -> Result<T> {
        (**self).deserialize(topic, headers, data)
    }
}

impl<T, D: Deserializer<T> + ?Sized> Deserializer<T> for Box<D> {
    fn deserialize(&self, topic: &str, headers: &[Header], data: &Bytes) -> Result<T> {
        (**self).deserialize(topic, headers, data)
    }
}

impl<T, D: Deserializer<T> + ?Sized> Deserializer<T> for Arc<D> {
    fn deserialize(&self, topic: &str, headers: &[Header], data: &Bytes) -> Result<T> {
        (**self).deserialize(topic, headers, data)
    }
}

/// Strings as UTF-8 (Java's `StringSerializer` with its default encoding). Serializes
/// anything that is `AsRef<str>`: `String`, `str`, `&str`, `Box<str>`, `Cow<str>`...
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StringSerializer;

impl<T: AsRef<str> + ?Sized> Serializer<T> for StringSerializer {
    fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &T) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(data.as_ref().as_bytes()))
    }
}

/// UTF-8 bytes as a `String`; bytes that are not valid UTF-8 are an error. (Java's
/// `StringDeserializer` replaces them with U+FFFD instead: that is
/// [`LossyStringDeserializer`].)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StringDeserializer;

impl Deserializer<String> for StringDeserializer {
    fn deserialize(&self, _topic: &str, _headers: &[Header], data: &Bytes) -> Result<String> {
        match std::str::from_utf8(data) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(ClientError::Serialization(format!(
                "Data received by StringDeserializer is not valid UTF-8: {e}"
            ))),
        }
    }
}

/// UTF-8 bytes as a `String`, invalid sequences replaced by U+FFFD: exactly what Java's
/// `StringDeserializer` (`new String(data, UTF_8)`) returns. Never fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossyStringDeserializer;

impl Deserializer<String> for LossyStringDeserializer {
    fn deserialize(&self, _topic: &str, _headers: &[Header], data: &Bytes) -> Result<String> {
        Ok(String::from_utf8_lossy(data).into_owned())
    }
}

/// Bytes as they are (Java's `ByteArraySerializer`, `BytesSerializer` and
/// `ByteBufferSerializer`): [`Bytes`] without copying, `Vec<u8>`, `[u8]` and `&[u8]` copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BytesSerializer;

impl Serializer<Bytes> for BytesSerializer {
    fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &Bytes) -> Result<Bytes> {
        Ok(data.clone())
    }
}

impl Serializer<Vec<u8>> for BytesSerializer {
    fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &Vec<u8>) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(data))
    }
}

impl Serializer<[u8]> for BytesSerializer {
    fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &[u8]) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(data))
    }
}

impl Serializer<&[u8]> for BytesSerializer {
    fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &&[u8]) -> Result<Bytes> {
        Ok(Bytes::copy_from_slice(data))
    }
}

/// Bytes as they are, as a [`Bytes`] sharing the consumed record's buffer (no copy);
/// `.to_vec()` gives Java's `byte[]`. Only one output type, so that
/// `record.deserialize(&BytesDeserializer, ...)` needs no type annotation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BytesDeserializer;

impl Deserializer<Bytes> for BytesDeserializer {
    fn deserialize(&self, _topic: &str, _headers: &[Header], data: &Bytes) -> Result<Bytes> {
        Ok(data.clone())
    }
}

/// The fixed-size big-endian numbers: a serializer and a deserializer per type, with the
/// Java deserializer's name for the size error.
macro_rules! fixed_size {
    ($(
        $(#[$ser_doc:meta])* $ser:ident,
        $(#[$de_doc:meta])* $de:ident, $ty:ty, $size:literal, $java:literal;
    )*) => {$(
        $(#[$ser_doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $ser;

        impl Serializer<$ty> for $ser {
            fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &$ty)
                -> Result<Bytes>
            {
                Ok(Bytes::copy_from_slice(&data.to_be_bytes()))
            }
        }

        $(#[$de_doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $de;

        impl Deserializer<$ty> for $de {
            fn deserialize(&self, _topic: &str, _headers: &[Header], data: &Bytes)
                -> Result<$ty>
            {
                let bytes: [u8; $size] = data[..].try_into().map_err(|_| {
                    ClientError::Serialization(format!(
                        "Size of data received by {} is not {}",
                        $java, $size
                    ))
                })?;
                Ok(<$ty>::from_be_bytes(bytes))
            }
        }
    )*};
}

fixed_size! {
    /// `i16` as 2 bytes, big-endian (Java's `ShortSerializer`).
    I16Serializer,
    /// 2 big-endian bytes as an `i16` (Java's `ShortDeserializer`); any other size fails.
    I16Deserializer, i16, 2, "ShortDeserializer";
    /// `i32` as 4 bytes, big-endian (Java's `IntegerSerializer`).
    I32Serializer,
    /// 4 big-endian bytes as an `i32` (Java's `IntegerDeserializer`); any other size fails.
    I32Deserializer, i32, 4, "IntegerDeserializer";
    /// `i64` as 8 bytes, big-endian (Java's `LongSerializer`).
    I64Serializer,
    /// 8 big-endian bytes as an `i64` (Java's `LongDeserializer`); any other size fails.
    I64Deserializer, i64, 8, "LongDeserializer";
    /// `f32` as its 4 IEEE 754 bytes, big-endian, NaN payloads kept (Java's
    /// `FloatSerializer`, `floatToRawIntBits`).
    F32Serializer,
    /// 4 big-endian IEEE 754 bytes as an `f32` (Java's `FloatDeserializer`); any other size
    /// fails.
    F32Deserializer, f32, 4, "FloatDeserializer";
    /// `f64` as its 8 IEEE 754 bytes, big-endian, NaN payloads kept (Java's
    /// `DoubleSerializer`, `doubleToRawLongBits`).
    F64Serializer,
    /// 8 big-endian IEEE 754 bytes as an `f64` (Java's `DoubleDeserializer`); any other size
    /// fails.
    F64Deserializer, f64, 8, "DoubleDeserializer";
}

/// `bool` as one byte, `1` or `0` (Java's `BooleanSerializer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoolSerializer;

impl Serializer<bool> for BoolSerializer {
    fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &bool) -> Result<Bytes> {
        Ok(Bytes::from_static(if *data { &[1] } else { &[0] }))
    }
}

/// One byte, `1` or `0`, as a `bool` (Java's `BooleanDeserializer`); anything else fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoolDeserializer;

impl Deserializer<bool> for BoolDeserializer {
    fn deserialize(&self, _topic: &str, _headers: &[Header], data: &Bytes) -> Result<bool> {
        match data[..] {
            [1] => Ok(true),
            [0] => Ok(false),
            [b] => Err(ClientError::Serialization(format!(
                // Java prints the byte as a signed Java `byte`.
                "Unexpected byte received by BooleanDeserializer: {}",
                b as i8
            ))),
            _ => Err(ClientError::Serialization(
                "Size of data received by BooleanDeserializer is not 1".into(),
            )),
        }
    }
}

/// A UUID as its 36-character string form (`123e4567-e89b-12d3-a456-426614174000`,
/// lowercase) in UTF-8, like Java's `UUIDSerializer` (`uuid.toString()`), not its 16 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UuidSerializer;

impl Serializer<Uuid> for UuidSerializer {
    fn serialize(&self, _topic: &str, _headers: &mut Vec<Header>, data: &Uuid) -> Result<Bytes> {
        Ok(Bytes::from(data.hyphenated().to_string()))
    }
}

/// The string form of a UUID as a [`Uuid`] (Java's `UUIDDeserializer`); anything else fails
/// with Java's "Error parsing data into UUID".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UuidDeserializer;

impl Deserializer<Uuid> for UuidDeserializer {
    fn deserialize(&self, _topic: &str, _headers: &[Header], data: &Bytes) -> Result<Uuid> {
        std::str::from_utf8(data)
            .ok()
            .and_then(|s| Uuid::try_parse(s).ok())
            .ok_or_else(|| ClientError::Serialization("Error parsing data into UUID".into()))
    }
}

/// Java's `VoidSerializer`: for keys or values that are always null. Its type is
/// [`Infallible`], which has no values, so the only key or value there is to send is `None`
/// (null), which never reaches a serializer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoidSerializer;

impl Serializer<Infallible> for VoidSerializer {
    fn serialize(
        &self,
        _topic: &str,
        _headers: &mut Vec<Header>,
        data: &Infallible,
    ) -> Result<Bytes> {
        match *data {}
    }
}

/// Java's `VoidDeserializer`: a null key or value is `None`, anything else (even empty
/// bytes) fails with "Data should be null for a VoidDeserializer.".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoidDeserializer;

impl Deserializer<Infallible> for VoidDeserializer {
    fn deserialize(&self, _topic: &str, _headers: &[Header], _data: &Bytes) -> Result<Infallible> {
        Err(ClientError::Serialization(
            "Data should be null for a VoidDeserializer.".into(),
        ))
    }
}

/// A consumed record with its key and value deserialized: what
/// [`ConsumerRecord::deserialize`] returns. `None` is a null key or value.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedConsumerRecord<K, V> {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<K>,
    pub value: Option<V>,
    pub headers: Vec<Header>,
}

impl ConsumerRecord {
    /// This record with its key and value deserialized; a null key or value is `None`
    /// (the deserializer is not called for it). Java's consumer deserializes inside `poll`;
    /// here `poll` returns raw records and each is deserialized on its own, so a record that
    /// does not deserialize fails alone and the loop may skip it without seeking.
    ///
    /// A [`ClientError::Serialization`] says which record and which part failed, like
    /// Java's `RecordDeserializationException`: "Error deserializing VALUE for partition
    /// orders-0 at offset 7: Size of data received by LongDeserializer is not 8".
    ///
    /// ```
    /// use std::time::Duration;
    /// use strom_client::serialization::{I64Deserializer, StringDeserializer};
    /// # use strom_client::{ClientConfig, Consumer, Offset, Producer, ProducerRecord};
    /// # use strom_client::TopicPartition;
    ///
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), strom_client::ClientError> {
    /// # let broker = strom_test_support::TestBroker::start().await;
    /// # let config = ClientConfig::new(broker.bootstrap_servers());
    /// # let producer = Producer::connect(config.clone()).await?;
    /// # producer
    /// #     .send(ProducerRecord::new("totals", 42i64.to_be_bytes().to_vec()).with_key("alice"))
    /// #     .await?;
    /// # let mut consumer = Consumer::connect(config).await?;
    /// # consumer.assign([(TopicPartition::new("totals", 0), Offset::Earliest)]);
    /// for record in consumer.poll(Duration::from_secs(5)).await? {
    ///     let record = record.deserialize(&StringDeserializer, &I64Deserializer)?;
    ///     let (user, total): (Option<String>, Option<i64>) = (record.key, record.value);
    ///     assert_eq!((user.as_deref(), total), (Some("alice"), Some(42)));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn deserialize<K, V>(
        &self,
        key: &(impl Deserializer<K> + ?Sized),
        value: &(impl Deserializer<V> + ?Sized),
    ) -> Result<TypedConsumerRecord<K, V>> {
        let key = self.deserialize_part(self.key.as_ref(), "KEY", key)?;
        let value = self.deserialize_part(self.value.as_ref(), "VALUE", value)?;
        Ok(TypedConsumerRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key,
            value,
            headers: self.headers.clone(),
        })
    }

    fn deserialize_part<T>(
        &self,
        data: Option<&Bytes>,
        what: &str,
        deserializer: &(impl Deserializer<T> + ?Sized),
    ) -> Result<Option<T>> {
        let Some(data) = data else {
            return Ok(None);
        };
        match deserializer.deserialize(&self.topic, &self.headers, data) {
            Ok(value) => Ok(Some(value)),
            Err(e) => Err(in_context(
                e,
                format_args!(
                    "Error deserializing {what} for partition {}-{} at offset {}",
                    self.topic, self.partition, self.offset
                ),
            )),
        }
    }
}

/// A [`ClientError::Serialization`] with `context` in front of its message; other errors
/// (a custom (de)serializer may return any) pass through unchanged.
pub(crate) fn in_context(error: ClientError, context: std::fmt::Arguments<'_>) -> ClientError {
    match error {
        ClientError::Serialization(message) => {
            ClientError::Serialization(format!("{context}: {message}"))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ser<T: ?Sized>(s: &impl Serializer<T>, data: &T) -> Vec<u8> {
        s.serialize("t", &mut Vec::new(), data).unwrap().to_vec()
    }

    fn de<T>(d: &impl Deserializer<T>, data: &[u8]) -> Result<T> {
        d.deserialize("t", &[], &Bytes::copy_from_slice(data))
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r.unwrap_err() {
            ClientError::Serialization(m) => m,
            other => panic!("not a serialization error: {other:?}"),
        }
    }

    #[test]
    fn strings_are_utf8() {
        assert_eq!(ser(&StringSerializer, "héllo"), "héllo".as_bytes());
        assert_eq!(ser(&StringSerializer, &String::from("x")), b"x");
        assert_eq!(ser(&StringSerializer, &"ref"), b"ref");
        assert_eq!(ser(&StringSerializer, ""), b"");
        assert_eq!(
            de(&StringDeserializer, "héllo".as_bytes()).unwrap(),
            "héllo"
        );
        assert_eq!(de(&StringDeserializer, b"").unwrap(), "");
        let bad = [b'a', 0xff, b'b'];
        assert!(err_text(de(&StringDeserializer, &bad)).contains("not valid UTF-8"));
        // Java's behaviour: replacement characters.
        assert_eq!(de(&LossyStringDeserializer, &bad).unwrap(), "a\u{fffd}b");
    }

    #[test]
    fn bytes_pass_through() {
        let data = Bytes::from_static(b"\x00\x01\xff");
        let out = BytesSerializer
            .serialize("t", &mut Vec::new(), &data)
            .unwrap();
        assert_eq!(out.as_ptr(), data.as_ptr(), "no copy of a Bytes");
        assert_eq!(ser(&BytesSerializer, &vec![1u8, 2]), [1, 2]);
        assert_eq!(ser(&BytesSerializer, &[3u8, 4][..]), [3, 4]);
        assert_eq!(ser::<&[u8]>(&BytesSerializer, &&[5u8][..]), [5]);
        let back = BytesDeserializer.deserialize("t", &[], &data).unwrap();
        assert_eq!(
            back.as_ptr(),
            data.as_ptr(),
            "no copy of the record's bytes"
        );
        assert_eq!(de(&BytesDeserializer, b"").unwrap(), Bytes::new());
    }

    #[test]
    fn integers_are_big_endian_like_java() {
        assert_eq!(ser(&I16Serializer, &1), [0, 1]);
        assert_eq!(ser(&I16Serializer, &-2), [0xff, 0xfe]);
        assert_eq!(ser(&I32Serializer, &1), [0, 0, 0, 1]);
        assert_eq!(ser(&I32Serializer, &0x0102_0304), [1, 2, 3, 4]);
        assert_eq!(ser(&I32Serializer, &-1), [0xff; 4]);
        assert_eq!(ser(&I64Serializer, &1), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(ser(&I64Serializer, &i64::MIN), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        for v in [0, 1, -1, i16::MIN, i16::MAX] {
            assert_eq!(de(&I16Deserializer, &ser(&I16Serializer, &v)).unwrap(), v);
        }
        for v in [0, 1, -1, i32::MIN, i32::MAX] {
            assert_eq!(de(&I32Deserializer, &ser(&I32Serializer, &v)).unwrap(), v);
        }
        for v in [0, 1, -1, i64::MIN, i64::MAX] {
            assert_eq!(de(&I64Deserializer, &ser(&I64Serializer, &v)).unwrap(), v);
        }
    }

    #[test]
    fn floats_are_ieee754_big_endian_like_java() {
        // Float.floatToRawIntBits(1.0f) == 0x3f800000.
        assert_eq!(ser(&F32Serializer, &1.0), [0x3f, 0x80, 0, 0]);
        assert_eq!(ser(&F64Serializer, &1.0), [0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ser(&F64Serializer, &-0.0), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        for v in [0.0, -0.0, 1.5, f32::MIN_POSITIVE, f32::INFINITY, f32::MAX] {
            let back = de(&F32Deserializer, &ser(&F32Serializer, &v)).unwrap();
            assert_eq!(back.to_bits(), v.to_bits());
        }
        for v in [
            0.0,
            -0.0,
            1.5,
            f64::MIN_POSITIVE,
            f64::NEG_INFINITY,
            f64::MAX,
        ] {
            let back = de(&F64Deserializer, &ser(&F64Serializer, &v)).unwrap();
            assert_eq!(back.to_bits(), v.to_bits());
        }
        // A NaN keeps its payload (raw bits, as Java's serializers use).
        let nan = f64::from_bits(0x7ff8_0000_0000_0001);
        let back = de(&F64Deserializer, &ser(&F64Serializer, &nan)).unwrap();
        assert_eq!(back.to_bits(), nan.to_bits());
    }

    #[test]
    fn wrong_sizes_fail_with_javas_messages() {
        assert_eq!(
            err_text(de(&I32Deserializer, &[0, 0, 1])),
            "Size of data received by IntegerDeserializer is not 4"
        );
        assert_eq!(
            err_text(de(&I16Deserializer, &[0, 0, 1])),
            "Size of data received by ShortDeserializer is not 2"
        );
        assert_eq!(
            err_text(de(&I64Deserializer, &[0; 4])),
            "Size of data received by LongDeserializer is not 8"
        );
        assert_eq!(
            err_text(de(&F32Deserializer, &[])),
            "Size of data received by FloatDeserializer is not 4"
        );
        assert_eq!(
            err_text(de(&F64Deserializer, &[0; 9])),
            "Size of data received by DoubleDeserializer is not 8"
        );
        assert_eq!(
            err_text(de(&BoolDeserializer, &[])),
            "Size of data received by BooleanDeserializer is not 1"
        );
        let e = de(&I32Deserializer, &[]).unwrap_err();
        assert!(!e.is_retriable());
    }

    #[test]
    fn booleans_are_one_byte() {
        assert_eq!(ser(&BoolSerializer, &true), [1]);
        assert_eq!(ser(&BoolSerializer, &false), [0]);
        assert!(de(&BoolDeserializer, &[1]).unwrap());
        assert!(!de(&BoolDeserializer, &[0]).unwrap());
        assert_eq!(
            err_text(de(&BoolDeserializer, &[0xff])),
            "Unexpected byte received by BooleanDeserializer: -1"
        );
        assert_eq!(
            err_text(de(&BoolDeserializer, &[0, 1])),
            "Size of data received by BooleanDeserializer is not 1"
        );
    }

    #[test]
    fn uuids_are_their_string_form() {
        let id = Uuid::parse_str("123E4567-E89B-12D3-A456-426614174000").unwrap();
        assert_eq!(
            ser(&UuidSerializer, &id),
            b"123e4567-e89b-12d3-a456-426614174000"
        );
        let back = de(&UuidDeserializer, b"123e4567-e89b-12d3-a456-426614174000").unwrap();
        assert_eq!(back, id);
        let random = Uuid::new_v4();
        assert_eq!(
            de(&UuidDeserializer, &ser(&UuidSerializer, &random)).unwrap(),
            random
        );
        assert_eq!(
            err_text(de(&UuidDeserializer, b"not a uuid")),
            "Error parsing data into UUID"
        );
        assert_eq!(
            err_text(de(&UuidDeserializer, &random.as_bytes()[..])),
            "Error parsing data into UUID"
        );
    }

    #[test]
    fn void_accepts_only_null() {
        assert_eq!(
            err_text(de(&VoidDeserializer, b"")),
            "Data should be null for a VoidDeserializer."
        );
        let record = record(None, None);
        let typed = record
            .deserialize(&VoidDeserializer, &VoidDeserializer)
            .unwrap();
        assert!(typed.key.is_none() && typed.value.is_none());
    }

    #[test]
    fn serializers_behind_pointers() {
        let boxed: Box<dyn Serializer<i32>> = Box::new(I32Serializer);
        assert_eq!(ser(&boxed, &2), [0, 0, 0, 2]);
        let shared: Arc<dyn Serializer<str>> = Arc::new(StringSerializer);
        assert_eq!(ser(&shared, "s"), b"s");
        assert_eq!(ser(&&I16Serializer, &3), [0, 3]);
        let de_boxed: Box<dyn Deserializer<i32>> = Box::new(I32Deserializer);
        assert_eq!(de(&de_boxed, &[0, 0, 0, 7]).unwrap(), 7);
        let de_shared: Arc<dyn Deserializer<String>> = Arc::new(StringDeserializer);
        let typed = record(Some(b"k"), Some(&[0, 0, 0, 9]))
            .deserialize(&*de_shared, &*de_boxed)
            .unwrap();
        assert_eq!((typed.key.as_deref(), typed.value), (Some("k"), Some(9)));
    }

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "orders".into(),
            partition: 3,
            offset: 7,
            timestamp: 1_700_000_000_000,
            timestamp_type: TimestampType::LogAppendTime,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: vec![Header::new("h", Some("x"))],
        }
    }

    #[test]
    fn consumer_records_deserialize_with_nulls_kept() {
        let typed = record(Some(b"user-1"), Some(&42i64.to_be_bytes()))
            .deserialize(&StringDeserializer, &I64Deserializer)
            .unwrap();
        assert_eq!(
            typed,
            TypedConsumerRecord {
                topic: "orders".into(),
                partition: 3,
                offset: 7,
                timestamp: 1_700_000_000_000,
                timestamp_type: TimestampType::LogAppendTime,
                key: Some("user-1".to_string()),
                value: Some(42),
                headers: vec![Header::new("h", Some("x"))],
            }
        );
        // A tombstone: null value, and the deserializer is not asked about it.
        let typed = record(Some(b"user-1"), None)
            .deserialize(&StringDeserializer, &I64Deserializer)
            .unwrap();
        assert_eq!((typed.key.as_deref(), typed.value), (Some("user-1"), None));
        // Empty is not null.
        let typed = record(None, Some(b""))
            .deserialize(&StringDeserializer, &StringDeserializer)
            .unwrap();
        assert_eq!((typed.key, typed.value.as_deref()), (None, Some("")));
    }

    #[test]
    fn consumer_record_errors_say_where() {
        let e = record(Some(b"k"), Some(b"abc"))
            .deserialize(&StringDeserializer, &I64Deserializer)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Error deserializing VALUE for partition orders-3 at offset 7: \
             Size of data received by LongDeserializer is not 8"
        );
        let e = record(Some(&[0xc3]), None)
            .deserialize(&StringDeserializer, &I64Deserializer)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Error deserializing KEY for partition orders-3 at offset 7: "),
            "{e}"
        );
        // Errors other than Serialization from a custom deserializer pass through as they are.
        struct Refuses;
        impl Deserializer<u8> for Refuses {
            fn deserialize(&self, _: &str, _: &[Header], _: &Bytes) -> Result<u8> {
                Err(ClientError::InvalidArgument("no".into()))
            }
        }
        let e = record(Some(b"k"), None)
            .deserialize(&Refuses, &I64Deserializer)
            .unwrap_err();
        assert!(matches!(e, ClientError::InvalidArgument(m) if m == "no"));
    }

    #[test]
    fn deserializers_see_topic_and_headers() {
        struct HeaderValue;
        impl Deserializer<String> for HeaderValue {
            fn deserialize(&self, topic: &str, headers: &[Header], data: &Bytes) -> Result<String> {
                let h = headers[0].value.as_deref().unwrap_or_default();
                Ok(format!(
                    "{topic}/{}/{}",
                    String::from_utf8_lossy(h),
                    String::from_utf8_lossy(data)
                ))
            }
        }
        let typed = record(None, Some(b"v"))
            .deserialize(&StringDeserializer, &HeaderValue)
            .unwrap();
        assert_eq!(typed.value.as_deref(), Some("orders/x/v"));
    }
}
