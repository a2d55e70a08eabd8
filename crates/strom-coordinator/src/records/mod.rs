//! The records of `__consumer_offsets`, in Kafka's own binary key/value schemas
//! (`group-coordinator/src/main/resources/common/message/*Key.json` / `*Value.json`), so that the
//! partition's bytes mean the same to strom and to Kafka tools that read them.
//!
//! A key starts with an i16 that names the record type (Kafka calls it the key version; since
//! 4.0 it is the record type's `apiKey`), followed by the key fields in the non-flexible
//! encoding. A value starts with an i16 value version, followed by the value at that version;
//! versions listed as flexible in the schema use compact lengths and end every struct with a
//! tagged-field section. A missing value is a tombstone: the keyed thing is deleted (and
//! compaction eventually drops it).
//!
//! | type | key | value versions read | version written |
//! |------|-----|---------------------|-----------------|
//! | 0, 1 | OffsetCommitKey | OffsetCommitValue 0-4 | key 1; value 3, or 1 when an expire timestamp is set (as Kafka 4.x) |
//! | 2 | GroupMetadataKey | GroupMetadataValue 0-4 | 3 (Kafka 4.x's `groupMetadataValueVersion`) |
//! | 3 | ConsumerGroupMetadataKey | 0 (flexible) | 0 |
//! | 4 | ConsumerGroupPartitionMetadataKey | 0 (flexible) | 0 |
//! | 5 | ConsumerGroupMemberMetadataKey | 0 (flexible) | 0 |
//! | 6 | ConsumerGroupTargetAssignmentMetadataKey | 0 (flexible) | 0 |
//! | 7 | ConsumerGroupTargetAssignmentMemberKey | 0 (flexible) | 0 |
//! | 8 | ConsumerGroupCurrentMemberAssignmentKey | 0 (flexible) | 0 |
//! | 16 | ConsumerGroupRegularExpressionKey | 0 (flexible) | 0 |
//!
//! Record types strom does not use (share groups 9-15, streams groups 17+, and anything newer)
//! decode to `Ok(None)` so that the loader skips them, as Kafka skips record types it does not
//! know.

pub(crate) mod wire;

use bytes::Bytes;
use uuid::Uuid;

use crate::error::CodecError;
use wire::{Reader, Writer};

/// One record of `__consumer_offsets`: a key and a value, `None` being a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRecord {
    pub key: RecordKey,
    pub value: Option<RecordValue>,
}

/// The key of a record; the variant is the record type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKey {
    /// Committed offset of one partition for one group (types 0 and 1; written as 1).
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A classic group (type 2).
    GroupMetadata { group: String },
    /// A KIP-848 consumer group's epoch (type 3).
    ConsumerGroupMetadata { group_id: String },
    /// The metadata of the topics a consumer group subscribes to (type 4).
    ConsumerGroupPartitionMetadata { group_id: String },
    /// A consumer group member's subscription (type 5).
    ConsumerGroupMemberMetadata { group_id: String, member_id: String },
    /// The epoch of a consumer group's target assignment (type 6).
    ConsumerGroupTargetAssignmentMetadata { group_id: String },
    /// One member's share of the target assignment (type 7).
    ConsumerGroupTargetAssignmentMember { group_id: String, member_id: String },
    /// A member's current assignment and epochs (type 8).
    ConsumerGroupCurrentMemberAssignment { group_id: String, member_id: String },
    /// The topics a subscription regular expression resolved to (type 16).
    ConsumerGroupRegularExpression { group_id: String, regex: String },
}

impl RecordKey {
    /// The record type, i.e. the i16 a key starts with.
    pub fn record_type(&self) -> i16 {
        match self {
            RecordKey::OffsetCommit { .. } => 1,
            RecordKey::GroupMetadata { .. } => 2,
            RecordKey::ConsumerGroupMetadata { .. } => 3,
            RecordKey::ConsumerGroupPartitionMetadata { .. } => 4,
            RecordKey::ConsumerGroupMemberMetadata { .. } => 5,
            RecordKey::ConsumerGroupTargetAssignmentMetadata { .. } => 6,
            RecordKey::ConsumerGroupTargetAssignmentMember { .. } => 7,
            RecordKey::ConsumerGroupCurrentMemberAssignment { .. } => 8,
            RecordKey::ConsumerGroupRegularExpression { .. } => 16,
        }
    }

    /// The group the record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            RecordKey::OffsetCommit { group, .. } | RecordKey::GroupMetadata { group } => group,
            RecordKey::ConsumerGroupMetadata { group_id }
            | RecordKey::ConsumerGroupPartitionMetadata { group_id }
            | RecordKey::ConsumerGroupMemberMetadata { group_id, .. }
            | RecordKey::ConsumerGroupTargetAssignmentMetadata { group_id }
            | RecordKey::ConsumerGroupTargetAssignmentMember { group_id, .. }
            | RecordKey::ConsumerGroupCurrentMemberAssignment { group_id, .. }
            | RecordKey::ConsumerGroupRegularExpression { group_id, .. } => group_id,
        }
    }

    fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.i16(self.record_type());
        match self {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                w.string(group);
                w.string(topic);
                w.i32(*partition);
            }
            RecordKey::GroupMetadata { group } => w.string(group),
            RecordKey::ConsumerGroupMetadata { group_id }
            | RecordKey::ConsumerGroupPartitionMetadata { group_id }
            | RecordKey::ConsumerGroupTargetAssignmentMetadata { group_id } => w.string(group_id),
            RecordKey::ConsumerGroupMemberMetadata {
                group_id,
                member_id,
            }
            | RecordKey::ConsumerGroupTargetAssignmentMember {
                group_id,
                member_id,
            }
            | RecordKey::ConsumerGroupCurrentMemberAssignment {
                group_id,
                member_id,
            } => {
                w.string(group_id);
                w.string(member_id);
            }
            RecordKey::ConsumerGroupRegularExpression { group_id, regex } => {
                w.string(group_id);
                w.string(regex);
            }
        }
        w.finish()
    }

    /// `Ok(None)` for a record type strom does not know.
    fn decode(r: &mut Reader<'_>) -> Result<Option<Self>, CodecError> {
        let record_type = r.i16()?;
        let key = match record_type {
            0 | 1 => RecordKey::OffsetCommit {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            },
            2 => RecordKey::GroupMetadata { group: r.string()? },
            3 => RecordKey::ConsumerGroupMetadata {
                group_id: r.string()?,
            },
            4 => RecordKey::ConsumerGroupPartitionMetadata {
                group_id: r.string()?,
            },
            5 => RecordKey::ConsumerGroupMemberMetadata {
                group_id: r.string()?,
                member_id: r.string()?,
            },
            6 => RecordKey::ConsumerGroupTargetAssignmentMetadata {
                group_id: r.string()?,
            },
            7 => RecordKey::ConsumerGroupTargetAssignmentMember {
                group_id: r.string()?,
                member_id: r.string()?,
            },
            8 => RecordKey::ConsumerGroupCurrentMemberAssignment {
                group_id: r.string()?,
                member_id: r.string()?,
            },
            16 => RecordKey::ConsumerGroupRegularExpression {
                group_id: r.string()?,
                regex: r.string()?,
            },
            _ => return Ok(None),
        };
        r.finish()?;
        Ok(Some(key))
    }
}

/// The value of a record; always of the variant matching its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    OffsetCommit(OffsetCommitValue),
    GroupMetadata(GroupMetadataValue),
    ConsumerGroupMetadata(ConsumerGroupMetadataValue),
    ConsumerGroupPartitionMetadata(ConsumerGroupPartitionMetadataValue),
    ConsumerGroupMemberMetadata(ConsumerGroupMemberMetadataValue),
    ConsumerGroupTargetAssignmentMetadata(ConsumerGroupTargetAssignmentMetadataValue),
    ConsumerGroupTargetAssignmentMember(ConsumerGroupTargetAssignmentMemberValue),
    ConsumerGroupCurrentMemberAssignment(ConsumerGroupCurrentMemberAssignmentValue),
    ConsumerGroupRegularExpression(ConsumerGroupRegularExpressionValue),
}

/// `OffsetCommitValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (versions before 3 do not carry it).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only version 1 carries it: set when an OffsetCommit v2-v4 gave an explicit retention.
    pub expire_timestamp: Option<i64>,
}

/// `GroupMetadataValue`: a classic group at the end of a rebalance (or when it empties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (versions before 2).
    pub current_state_timestamp: i64,
    pub members: Vec<GroupMemberMetadata>,
}

/// `GroupMetadataValue.MemberMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// `ConsumerGroupMetadataValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupMetadataValue {
    pub epoch: i32,
}

/// `ConsumerGroupPartitionMetadataValue`: the subscribed topics as the last target assignment
/// saw them, so that a change (partitions added, topic re-created) is noticed after failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupPartitionMetadataValue {
    pub topics: Vec<TopicMetadata>,
}

/// `ConsumerGroupPartitionMetadataValue.TopicMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub topic_id: Uuid,
    pub topic_name: String,
    pub num_partitions: i32,
    /// Deprecated in Kafka after 4.0 and written empty by strom (no rack-aware assignment).
    pub partition_metadata: Vec<PartitionRacks>,
}

/// `ConsumerGroupPartitionMetadataValue.PartitionMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRacks {
    pub partition: i32,
    pub racks: Vec<String>,
}

/// `ConsumerGroupMemberMetadataValue`: a member's subscription and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// `ConsumerGroupTargetAssignmentMetadataValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupTargetAssignmentMetadataValue {
    pub assignment_epoch: i32,
}

/// Partitions of one topic, by topic id (the `TopicPartitions`/`TopicPartition` structs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic_id: Uuid,
    pub partitions: Vec<i32>,
}

/// `ConsumerGroupTargetAssignmentMemberValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupTargetAssignmentMemberValue {
    pub topic_partitions: Vec<TopicPartitions>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupCurrentMemberAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's `MemberState`: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    pub assigned_partitions: Vec<TopicPartitions>,
    pub partitions_pending_revocation: Vec<TopicPartitions>,
}

/// `ConsumerGroupRegularExpressionValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupRegularExpressionValue {
    pub topics: Vec<String>,
    /// The version of the topic metadata the expression was resolved against.
    pub version: i64,
    pub timestamp: i64,
}

impl CoordinatorRecord {
    /// A record with a value.
    pub fn new(key: RecordKey, value: RecordValue) -> Self {
        Self {
            key,
            value: Some(value),
        }
    }

    /// A tombstone for `key`.
    pub fn tombstone(key: RecordKey) -> Self {
        Self { key, value: None }
    }

    /// The key and value bytes to append to `__consumer_offsets`.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        (self.key.encode(), self.value.as_ref().map(encode_value))
    }

    /// Decodes a record read from `__consumer_offsets`. `Ok(None)` means a record type strom
    /// does not know: the caller skips it.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, CodecError> {
        let mut kr = Reader::new(key);
        let Some(k) = RecordKey::decode(&mut kr)? else {
            return Ok(None);
        };
        let value = match value {
            None => None,
            Some(v) => Some(decode_value(&k, v)?),
        };
        Ok(Some(Self { key: k, value }))
    }
}

fn encode_value(value: &RecordValue) -> Bytes {
    let mut w = Writer::new();
    match value {
        RecordValue::OffsetCommit(v) => {
            // Kafka 4.x writes version 1 only to keep an explicit expire timestamp, else 3.
            if let Some(expire) = v.expire_timestamp {
                w.i16(1);
                w.i64(v.offset);
                w.string(&v.metadata);
                w.i64(v.commit_timestamp);
                w.i64(expire);
            } else {
                w.i16(3);
                w.i64(v.offset);
                w.i32(v.leader_epoch);
                w.string(&v.metadata);
                w.i64(v.commit_timestamp);
            }
        }
        RecordValue::GroupMetadata(v) => {
            w.i16(3);
            w.string(&v.protocol_type);
            w.i32(v.generation);
            w.nullable_string(v.protocol.as_deref());
            w.nullable_string(v.leader.as_deref());
            w.i64(v.current_state_timestamp);
            w.array_len(v.members.len());
            for m in &v.members {
                w.string(&m.member_id);
                w.nullable_string(m.group_instance_id.as_deref());
                w.string(&m.client_id);
                w.string(&m.client_host);
                w.i32(m.rebalance_timeout);
                w.i32(m.session_timeout);
                w.bytes(&m.subscription);
                w.bytes(&m.assignment);
            }
        }
        RecordValue::ConsumerGroupMetadata(v) => {
            w.i16(0);
            w.i32(v.epoch);
            w.no_tagged_fields();
        }
        RecordValue::ConsumerGroupPartitionMetadata(v) => {
            w.i16(0);
            w.compact_array_len(v.topics.len());
            for t in &v.topics {
                w.uuid(&t.topic_id);
                w.compact_string(&t.topic_name);
                w.i32(t.num_partitions);
                w.compact_array_len(t.partition_metadata.len());
                for p in &t.partition_metadata {
                    w.i32(p.partition);
                    w.compact_array_len(p.racks.len());
                    for r in &p.racks {
                        w.compact_string(r);
                    }
                    w.no_tagged_fields();
                }
                w.no_tagged_fields();
            }
            w.no_tagged_fields();
        }
        RecordValue::ConsumerGroupMemberMetadata(v) => {
            w.i16(0);
            w.compact_nullable_string(v.instance_id.as_deref());
            w.compact_nullable_string(v.rack_id.as_deref());
            w.compact_string(&v.client_id);
            w.compact_string(&v.client_host);
            w.compact_array_len(v.subscribed_topic_names.len());
            for t in &v.subscribed_topic_names {
                w.compact_string(t);
            }
            w.compact_nullable_string(v.subscribed_topic_regex.as_deref());
            w.i32(v.rebalance_timeout_ms);
            w.compact_nullable_string(v.server_assignor.as_deref());
            w.no_tagged_fields();
        }
        RecordValue::ConsumerGroupTargetAssignmentMetadata(v) => {
            w.i16(0);
            w.i32(v.assignment_epoch);
            w.no_tagged_fields();
        }
        RecordValue::ConsumerGroupTargetAssignmentMember(v) => {
            w.i16(0);
            write_topic_partitions(&mut w, &v.topic_partitions);
            w.no_tagged_fields();
        }
        RecordValue::ConsumerGroupCurrentMemberAssignment(v) => {
            w.i16(0);
            w.i32(v.member_epoch);
            w.i32(v.previous_member_epoch);
            w.i8(v.state);
            write_topic_partitions(&mut w, &v.assigned_partitions);
            write_topic_partitions(&mut w, &v.partitions_pending_revocation);
            w.no_tagged_fields();
        }
        RecordValue::ConsumerGroupRegularExpression(v) => {
            w.i16(0);
            w.compact_array_len(v.topics.len());
            for t in &v.topics {
                w.compact_string(t);
            }
            w.i64(v.version);
            w.i64(v.timestamp);
            w.no_tagged_fields();
        }
    }
    w.finish()
}

fn write_topic_partitions(w: &mut Writer, tps: &[TopicPartitions]) {
    w.compact_array_len(tps.len());
    for tp in tps {
        w.uuid(&tp.topic_id);
        w.compact_array_len(tp.partitions.len());
        for p in &tp.partitions {
            w.i32(*p);
        }
        w.no_tagged_fields();
    }
}

fn read_topic_partitions(r: &mut Reader<'_>) -> Result<Vec<TopicPartitions>, CodecError> {
    let n = r.compact_array_len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic_id = r.uuid()?;
        let np = r.compact_array_len()?;
        let mut partitions = Vec::with_capacity(np);
        for _ in 0..np {
            partitions.push(r.i32()?);
        }
        r.skip_tagged_fields()?;
        out.push(TopicPartitions {
            topic_id,
            partitions,
        });
    }
    Ok(out)
}

fn read_compact_strings(r: &mut Reader<'_>) -> Result<Vec<String>, CodecError> {
    let n = r.compact_array_len()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.compact_string()?);
    }
    Ok(out)
}

fn decode_value(key: &RecordKey, bytes: &[u8]) -> Result<RecordValue, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    let unknown = CodecError::UnknownValueVersion {
        key_version: key.record_type(),
        version,
    };
    let value = match key {
        RecordKey::OffsetCommit { .. } => {
            if !(0..=4).contains(&version) {
                return Err(unknown);
            }
            let offset = r.i64()?;
            let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
            let metadata = if version >= 4 {
                r.compact_string()?
            } else {
                r.string()?
            };
            let commit_timestamp = r.i64()?;
            let expire_timestamp = if version == 1 { Some(r.i64()?) } else { None };
            if version >= 4 {
                r.skip_tagged_fields()?;
            }
            RecordValue::OffsetCommit(OffsetCommitValue {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp,
                expire_timestamp,
            })
        }
        RecordKey::GroupMetadata { .. } => {
            if !(0..=4).contains(&version) {
                return Err(unknown);
            }
            let flexible = version >= 4;
            let string = |r: &mut Reader<'_>| {
                if flexible {
                    r.compact_string()
                } else {
                    r.string()
                }
            };
            let nullable = |r: &mut Reader<'_>| {
                if flexible {
                    r.compact_nullable_string()
                } else {
                    r.nullable_string()
                }
            };
            let protocol_type = string(&mut r)?;
            let generation = r.i32()?;
            let protocol = nullable(&mut r)?;
            let leader = nullable(&mut r)?;
            let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
            let n = if flexible {
                r.compact_array_len()?
            } else {
                r.array_len()?
            };
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                let member_id = string(&mut r)?;
                let group_instance_id = if version >= 3 {
                    nullable(&mut r)?
                } else {
                    None
                };
                let client_id = string(&mut r)?;
                let client_host = string(&mut r)?;
                let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
                let session_timeout = r.i32()?;
                let (subscription, assignment) = if flexible {
                    (r.compact_bytes()?, r.compact_bytes()?)
                } else {
                    (r.bytes()?, r.bytes()?)
                };
                if flexible {
                    r.skip_tagged_fields()?;
                }
                members.push(GroupMemberMetadata {
                    member_id,
                    group_instance_id,
                    client_id,
                    client_host,
                    // Version 0 predates the separate rebalance timeout; Kafka then used the
                    // session timeout for both.
                    rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
                    session_timeout,
                    subscription,
                    assignment,
                });
            }
            if flexible {
                r.skip_tagged_fields()?;
            }
            RecordValue::GroupMetadata(GroupMetadataValue {
                protocol_type,
                generation,
                protocol,
                leader,
                current_state_timestamp,
                members,
            })
        }
        _ if version != 0 => return Err(unknown),
        RecordKey::ConsumerGroupMetadata { .. } => {
            let epoch = r.i32()?;
            r.skip_tagged_fields()?;
            RecordValue::ConsumerGroupMetadata(ConsumerGroupMetadataValue { epoch })
        }
        RecordKey::ConsumerGroupPartitionMetadata { .. } => {
            let n = r.compact_array_len()?;
            let mut topics = Vec::with_capacity(n);
            for _ in 0..n {
                let topic_id = r.uuid()?;
                let topic_name = r.compact_string()?;
                let num_partitions = r.i32()?;
                let np = r.compact_array_len()?;
                let mut partition_metadata = Vec::with_capacity(np);
                for _ in 0..np {
                    let partition = r.i32()?;
                    let racks = read_compact_strings(&mut r)?;
                    r.skip_tagged_fields()?;
                    partition_metadata.push(PartitionRacks { partition, racks });
                }
                r.skip_tagged_fields()?;
                topics.push(TopicMetadata {
                    topic_id,
                    topic_name,
                    num_partitions,
                    partition_metadata,
                });
            }
            r.skip_tagged_fields()?;
            RecordValue::ConsumerGroupPartitionMetadata(ConsumerGroupPartitionMetadataValue {
                topics,
            })
        }
        RecordKey::ConsumerGroupMemberMetadata { .. } => {
            let instance_id = r.compact_nullable_string()?;
            let rack_id = r.compact_nullable_string()?;
            let client_id = r.compact_string()?;
            let client_host = r.compact_string()?;
            let subscribed_topic_names = read_compact_strings(&mut r)?;
            let subscribed_topic_regex = r.compact_nullable_string()?;
            let rebalance_timeout_ms = r.i32()?;
            let server_assignor = r.compact_nullable_string()?;
            r.skip_tagged_fields()?;
            RecordValue::ConsumerGroupMemberMetadata(ConsumerGroupMemberMetadataValue {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_topic_names,
                subscribed_topic_regex,
                rebalance_timeout_ms,
                server_assignor,
            })
        }
        RecordKey::ConsumerGroupTargetAssignmentMetadata { .. } => {
            let assignment_epoch = r.i32()?;
            r.skip_tagged_fields()?;
            RecordValue::ConsumerGroupTargetAssignmentMetadata(
                ConsumerGroupTargetAssignmentMetadataValue { assignment_epoch },
            )
        }
        RecordKey::ConsumerGroupTargetAssignmentMember { .. } => {
            let topic_partitions = read_topic_partitions(&mut r)?;
            r.skip_tagged_fields()?;
            RecordValue::ConsumerGroupTargetAssignmentMember(
                ConsumerGroupTargetAssignmentMemberValue { topic_partitions },
            )
        }
        RecordKey::ConsumerGroupCurrentMemberAssignment { .. } => {
            let member_epoch = r.i32()?;
            let previous_member_epoch = r.i32()?;
            let state = r.i8()?;
            let assigned_partitions = read_topic_partitions(&mut r)?;
            let partitions_pending_revocation = read_topic_partitions(&mut r)?;
            r.skip_tagged_fields()?;
            RecordValue::ConsumerGroupCurrentMemberAssignment(
                ConsumerGroupCurrentMemberAssignmentValue {
                    member_epoch,
                    previous_member_epoch,
                    state,
                    assigned_partitions,
                    partitions_pending_revocation,
                },
            )
        }
        RecordKey::ConsumerGroupRegularExpression { .. } => {
            let topics = read_compact_strings(&mut r)?;
            let version = r.i64()?;
            let timestamp = r.i64()?;
            r.skip_tagged_fields()?;
            RecordValue::ConsumerGroupRegularExpression(ConsumerGroupRegularExpressionValue {
                topics,
                version,
                timestamp,
            })
        }
    };
    r.finish()?;
    Ok(value)
}

#[cfg(test)]
mod tests;
