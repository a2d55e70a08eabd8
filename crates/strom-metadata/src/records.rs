//! The metadata records: the only way metadata changes. Modeled on Kafka's KRaft records
//! (`TopicRecord`, `PartitionRecord`, `ConfigRecord`, `RemoveTopicRecord`,
//! `RegisterBrokerRecord`, `ProducerIdsRecord`, ...) so the cluster issue can replicate them
//! unchanged.
//!
//! The serde form is the on-disk format of the metadata log: an internally tagged JSON object
//! (`{"type":"Topic",...}`). Logs written by earlier versions must keep replaying, so variants and
//! fields are only ever added (new fields with a serde default), never renamed or removed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    RemoveTopic(RemoveTopicRecord),
    Config(ConfigRecord),
    ProducerIds(ProducerIdsRecord),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub listeners: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// An advertised listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition_id: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTopicRecord {
    pub topic_id: Uuid,
}

/// Which kind of resource a config belongs to (Kafka's `ConfigResource.Type` wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResourceType {
    Topic,
    Broker,
}

impl ConfigResourceType {
    /// The wire value used by DescribeConfigs / AlterConfigs.
    pub fn wire(self) -> i8 {
        match self {
            Self::Topic => 2,
            Self::Broker => 4,
        }
    }

    /// The type of a wire value; `None` for the types strom does not store (BROKER_LOGGER,
    /// CLIENT_METRICS, GROUP, unknown values).
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            2 => Some(Self::Topic),
            4 => Some(Self::Broker),
            _ => None,
        }
    }
}

/// Sets (`value: Some`) or removes (`value: None`) one config of a resource. For brokers an
/// empty `resource_name` means the cluster-wide default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub resource_type: ConfigResourceType,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// A block of producer ids handed to a broker (Kafka's `ProducerIdsRecord`). Only the end
/// matters for the state: ids below `next_producer_id` are taken, so a block is never handed out
/// twice, across restarts included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    /// The broker the block went to, kept for the record (Kafka writes it too).
    pub broker_id: i32,
    /// The epoch the broker asked with (-1: none given).
    pub broker_epoch: i64,
    /// The first producer id of the next block: the exclusive end of the block this record
    /// hands out (Kafka's `producerIdsEnd`).
    pub next_producer_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON form is the log format: pin it so that a change shows up as a failing test.
    #[test]
    fn serde_form_is_stable() {
        let config = MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Broker,
            resource_name: String::new(),
            name: "log.retention.ms".to_string(),
            value: None,
        });
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            r#"{"type":"Config","resource_type":"Broker","resource_name":"","name":"log.retention.ms","value":null}"#
        );
        let ids = MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: -1,
            next_producer_id: 2000,
        });
        let json = serde_json::to_string(&ids).unwrap();
        assert_eq!(
            json,
            r#"{"type":"ProducerIds","broker_id":1,"broker_epoch":-1,"next_producer_id":2000}"#
        );
        assert_eq!(serde_json::from_str::<MetadataRecord>(&json).unwrap(), ids);
    }

    #[test]
    fn resource_type_wire_values() {
        for t in [ConfigResourceType::Topic, ConfigResourceType::Broker] {
            assert_eq!(ConfigResourceType::from_wire(t.wire()), Some(t));
        }
        assert_eq!(ConfigResourceType::from_wire(8), None);
        assert_eq!(ConfigResourceType::from_wire(0), None);
    }
}
