//! The classic consumer protocol's embedded messages: what a consumer puts in JoinGroup's
//! protocol metadata (its subscription) and what the leader hands out in SyncGroup (each
//! member's assignment).
//!
//! The broker treats both as opaque bytes; only clients and tools read them. The layout is
//! Kafka's `ConsumerProtocol`: an `i16` version header, then `ConsumerProtocolSubscription` /
//! `ConsumerProtocolAssignment` at that version. A version newer than the ones we know is
//! decoded as our newest, as Kafka does: newer versions only append fields.
//!
//! These bytes come from other clients, so they are checked before decoding: the generated
//! decoder reserves memory for an array from its length prefix alone, and a garbage prefix
//! would ask for gigabytes. `check_layout` walks the layout first and refuses any length
//! that does not fit in the bytes that are left.

use bytes::{Bytes, BytesMut};
use strom_protocol::StrBytes;
use strom_protocol::kafka_protocol::protocol::{Decodable, Encodable, Message};
use strom_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use strom_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use strom_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};

use crate::error::{ClientError, Result};
use crate::record::TopicPartition;

/// The protocol type of groups whose members speak the consumer protocol.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A consumer's subscription, as it joins a classic group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerSubscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
    /// Partitions the member owned before this rebalance (v1+, cooperative rebalancing).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation the owned partitions belong to (v2+); -1 when unknown.
    pub generation_id: i32,
    /// The member's `client.rack` (v3+).
    pub rack_id: Option<String>,
}

/// The partitions the group leader assigned to one consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerAssignment {
    pub partitions: Vec<TopicPartition>,
    pub user_data: Option<Bytes>,
}

/// Reads the version header; versions newer than ours decode as our newest.
fn split_version(bytes: &Bytes, max: i16, what: &str) -> Result<(i16, Bytes)> {
    if bytes.len() < 2 {
        return Err(ClientError::Protocol(format!(
            "{what} of {} bytes has no version header",
            bytes.len()
        )));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version < 0 {
        return Err(ClientError::Protocol(format!(
            "{what} has negative version {version}"
        )));
    }
    Ok((version.min(max), bytes.slice(2..)))
}

/// A bounds-checking walk over the (non-flexible) consumer protocol layout.
struct Scan<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scan<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A string (`nullable`: -1 allowed).
    fn string(&mut self, nullable: bool) -> Option<()> {
        match self.i16()? {
            -1 if nullable => Some(()),
            n => self.take(usize::try_from(n).ok()?).map(|_| ()),
        }
    }

    /// Nullable bytes.
    fn bytes(&mut self) -> Option<()> {
        match self.i32()? {
            -1 => Some(()),
            n => self.take(usize::try_from(n).ok()?).map(|_| ()),
        }
    }

    /// An array whose elements take at least `min_size` bytes each; `f` walks one element.
    fn array(&mut self, min_size: usize, mut f: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        let n = usize::try_from(self.i32()?).ok()?;
        if n.checked_mul(min_size)? > self.bytes.len() - self.pos {
            return None;
        }
        (0..n).try_for_each(|_| f(self))
    }

    /// `{ topic: string, partitions: [int32] }`.
    fn topic_partitions(&mut self) -> Option<()> {
        self.array(6, |s| {
            s.string(false)?;
            s.array(4, |s| s.i32().map(|_| ()))
        })
    }
}

/// The layout of one message (after the version header) at `version`, checked without
/// allocating: `assignment` or subscription.
fn check_layout(body: &[u8], version: i16, assignment: bool) -> Option<()> {
    let mut s = Scan {
        bytes: body,
        pos: 0,
    };
    if assignment {
        s.topic_partitions()?;
        s.bytes()?;
    } else {
        s.array(2, |s| s.string(false))?;
        s.bytes()?;
        if version >= 1 {
            s.topic_partitions()?;
        }
        if version >= 2 {
            s.i32()?;
        }
        if version >= 3 {
            s.string(true)?;
        }
    }
    Some(())
}

fn malformed(what: &str) -> ClientError {
    ClientError::Protocol(format!("malformed {what}: a length does not fit the bytes"))
}

fn with_version_header<M: Encodable>(message: &M, version: i16, what: &str) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&version.to_be_bytes());
    message
        .encode(&mut buf, version)
        .map_err(|e| ClientError::Protocol(format!("cannot encode {what}: {e}")))?;
    Ok(buf.freeze())
}

/// Groups partitions by topic in first-seen order, which is how Kafka's consumer writes them.
fn by_topic(partitions: &[TopicPartition]) -> Vec<(String, Vec<i32>)> {
    let mut topics: Vec<(String, Vec<i32>)> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push(tp.partition),
            None => topics.push((tp.topic.clone(), vec![tp.partition])),
        }
    }
    topics
}

impl ConsumerSubscription {
    pub fn new(topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            topics: topics.into_iter().map(Into::into).collect(),
            generation_id: -1,
            ..Self::default()
        }
    }

    /// The JoinGroup protocol metadata: version header + subscription at `version` (0-3).
    pub fn encode(&self, version: i16) -> Result<Bytes> {
        let message = ConsumerProtocolSubscription::default()
            .with_topics(
                self.topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.clone()))
                    .collect(),
            )
            .with_user_data(self.user_data.clone());
        let message = if version >= 1 {
            message.with_owned_partitions(
                by_topic(&self.owned_partitions)
                    .into_iter()
                    .map(|(t, ps)| {
                        OwnedTopic::default()
                            .with_topic(strom_protocol::messages::TopicName(StrBytes::from_string(
                                t,
                            )))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        } else {
            message
        };
        let message = if version >= 2 {
            message.with_generation_id(self.generation_id)
        } else {
            message
        };
        let message = if version >= 3 {
            message.with_rack_id(self.rack_id.clone().map(StrBytes::from_string))
        } else {
            message
        };
        with_version_header(&message, version, "a consumer subscription")
    }

    pub fn decode(bytes: &Bytes) -> Result<Self> {
        let what = "consumer subscription";
        let (version, mut body) =
            split_version(bytes, ConsumerProtocolSubscription::VERSIONS.max, what)?;
        check_layout(&body, version, false).ok_or_else(|| malformed(what))?;
        let m = ConsumerProtocolSubscription::decode(&mut body, version)
            .map_err(|e| ClientError::Protocol(format!("cannot decode {what}: {e}")))?;
        Ok(Self {
            topics: m.topics.iter().map(|t| t.to_string()).collect(),
            user_data: m.user_data,
            owned_partitions: m
                .owned_partitions
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
                })
                .collect(),
            generation_id: if version >= 2 { m.generation_id } else { -1 },
            rack_id: m.rack_id.map(|r| r.to_string()),
        })
    }
}

impl ConsumerAssignment {
    pub fn new(partitions: impl IntoIterator<Item = TopicPartition>) -> Self {
        Self {
            partitions: partitions.into_iter().collect(),
            user_data: None,
        }
    }

    /// The SyncGroup assignment: version header + assignment at `version` (0-3).
    pub fn encode(&self, version: i16) -> Result<Bytes> {
        let message = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                by_topic(&self.partitions)
                    .into_iter()
                    .map(|(t, ps)| {
                        AssignedTopic::default()
                            .with_topic(strom_protocol::messages::TopicName(StrBytes::from_string(
                                t,
                            )))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
            .with_user_data(self.user_data.clone());
        with_version_header(&message, version, "a consumer assignment")
    }

    /// Decodes an assignment; empty bytes (a member that has none yet, as DescribeGroups shows
    /// outside the Stable state) are an empty assignment, as Kafka's admin client reads them.
    pub fn decode(bytes: &Bytes) -> Result<Self> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let what = "consumer assignment";
        let (version, mut body) =
            split_version(bytes, ConsumerProtocolAssignment::VERSIONS.max, what)?;
        check_layout(&body, version, true).ok_or_else(|| malformed(what))?;
        let m = ConsumerProtocolAssignment::decode(&mut body, version)
            .map_err(|e| ClientError::Protocol(format!("cannot decode {what}: {e}")))?;
        Ok(Self {
            partitions: m
                .assigned_partitions
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
                })
                .collect(),
            user_data: m.user_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_round_trips_in_every_version() {
        let a = ConsumerAssignment {
            partitions: vec![
                TopicPartition::new("a", 0),
                TopicPartition::new("b", 2),
                TopicPartition::new("a", 1),
            ],
            user_data: Some(Bytes::from_static(b"u")),
        };
        for v in 0..=3 {
            let bytes = a.encode(v).unwrap();
            assert_eq!(&bytes[..2], &v.to_be_bytes());
            let back = ConsumerAssignment::decode(&bytes).unwrap();
            // Grouped by topic on the wire.
            assert_eq!(
                back.partitions,
                vec![
                    TopicPartition::new("a", 0),
                    TopicPartition::new("a", 1),
                    TopicPartition::new("b", 2),
                ]
            );
            assert_eq!(back.user_data, a.user_data);
        }
    }

    #[test]
    fn assignment_golden_v0_bytes() {
        // version 0, one topic "t" with partitions [0, 1], null user data.
        let bytes = Bytes::from_static(&[
            0, 0, // version
            0, 0, 0, 1, // topics
            0, 1, b't', // name
            0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, // partitions
            0xff, 0xff, 0xff, 0xff, // null user data
        ]);
        let a = ConsumerAssignment::decode(&bytes).unwrap();
        assert_eq!(
            a.partitions,
            vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)]
        );
        assert_eq!(a.user_data, None);
        assert_eq!(a.encode(0).unwrap(), bytes);
    }

    #[test]
    fn newer_versions_decode_as_ours_and_garbage_is_an_error() {
        let mut bytes = BytesMut::from(&ConsumerAssignment::default().encode(3).unwrap()[..]);
        bytes[1] = 9; // a future version 9 with v3's layout
        assert!(ConsumerAssignment::decode(&bytes.freeze()).is_ok());
        assert!(ConsumerAssignment::decode(&Bytes::from_static(b"x")).is_err());
        assert!(ConsumerAssignment::decode(&Bytes::from_static(&[0xff, 0xff, 1])).is_err());
        // A length prefix of 1.8 billion topics must be refused, not allocated.
        assert!(ConsumerAssignment::decode(&Bytes::from_static(b"connect-bytes")).is_err());
        assert!(
            ConsumerSubscription::decode(&Bytes::from_static(b"\0\0\x7f\xff\xff\xff")).is_err()
        );
        assert_eq!(
            ConsumerAssignment::decode(&Bytes::new()).unwrap(),
            ConsumerAssignment::default()
        );
    }

    #[test]
    fn random_bytes_never_crash_the_decoders() {
        // A tiny LCG: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 64)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect();
            let bytes = Bytes::from(bytes);
            let _ = ConsumerAssignment::decode(&bytes);
            let _ = ConsumerSubscription::decode(&bytes);
        }
    }

    #[test]
    fn subscription_round_trips() {
        let s = ConsumerSubscription {
            topics: vec!["orders".into(), "payments".into()],
            user_data: None,
            owned_partitions: vec![TopicPartition::new("orders", 3)],
            generation_id: 7,
            rack_id: Some("r1".into()),
        };
        let back = ConsumerSubscription::decode(&s.encode(3).unwrap()).unwrap();
        assert_eq!(back, s);
        let v0 = ConsumerSubscription::decode(&s.encode(0).unwrap()).unwrap();
        assert_eq!(v0.topics, s.topics);
        assert!(v0.owned_partitions.is_empty());
        assert_eq!(v0.generation_id, -1);
        assert_eq!(v0.rack_id, None);
    }
}
