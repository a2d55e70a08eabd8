//! The in-memory metadata image: an immutable snapshot built by replaying records.
//!
//! Applying a batch never mutates an image; it clones the maps (cheap: topics and config maps
//! sit behind `Arc`) and replaces only what the batch touches, so readers holding the previous
//! `Arc<MetadataImage>` keep a consistent view and untouched topics are shared between images.
//!
//! The log is the source of truth: a record that does not fit the image (a partition of an
//! unknown topic, say) is skipped with a warning instead of failing the replay.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tracing::warn;
use uuid::Uuid;

use crate::records::{
    ConfigRecord, ConfigResourceType, Endpoint, MetadataRecord, PartitionRecord, ProducerIdsRecord,
    RegisterBrokerRecord, RemoveTopicRecord, TopicRecord,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub id: i32,
    pub incarnation_id: Uuid,
    pub listeners: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// Offset of the broker's latest registration record: Kafka's broker epoch, which grows with
    /// every registration so that requests of an earlier incarnation can be told apart.
    pub epoch: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

impl TopicImage {
    /// The replication factor new partitions of this topic get: the replica count of its first
    /// partition (Kafka's rule), 0 for a topic without partitions.
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .values()
            .next()
            .map_or(0, |partition| partition.replicas.len())
    }
}

/// A consistent snapshot of all metadata. Cheap to clone (shares topics through `Arc`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataImage {
    /// Offset of the last record applied, -1 for the empty image.
    pub offset: i64,
    pub brokers: BTreeMap<i32, BrokerImage>,
    topics_by_id: HashMap<Uuid, Arc<TopicImage>>,
    /// Ordered so that listing topics by name needs no sort.
    topic_ids_by_name: BTreeMap<String, Uuid>,
    /// Explicit config overrides per resource (defaults are not stored). Behind `Arc` so that a
    /// new image shares the maps it does not change.
    configs: HashMap<(ConfigResourceType, String), Arc<BTreeMap<String, String>>>,
    /// First producer id of the next block the controller hands out; every id below it has been
    /// given to a broker already.
    next_producer_id: i64,
}

impl MetadataImage {
    pub fn empty() -> Self {
        Self {
            offset: -1,
            ..Default::default()
        }
    }

    /// A new image with `records` applied in order; `last_offset` is the offset of the last one.
    pub fn apply(&self, records: &[MetadataRecord], last_offset: i64) -> MetadataImage {
        let mut next = self.clone();
        next.apply_in_place(records, last_offset);
        next
    }

    /// [`apply`](Self::apply) on an image nobody else sees yet (replay at start-up, the
    /// controller's scratch copy while validating a request): no clone per batch. Topics still
    /// shared with other images are copied before they change.
    pub fn apply_in_place(&mut self, records: &[MetadataRecord], last_offset: i64) {
        let first_offset = last_offset - records.len() as i64 + 1;
        for (index, record) in records.iter().enumerate() {
            self.apply_one(record, first_offset + index as i64);
        }
        self.offset = last_offset;
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids_by_name
            .get(name)
            .and_then(|id| self.topics_by_id.get(id))
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics_by_id.get(id)
    }

    /// All topics, in name order.
    pub fn topics(&self) -> Vec<&Arc<TopicImage>> {
        self.topic_ids_by_name
            .values()
            .filter_map(|id| self.topics_by_id.get(id))
            .collect()
    }

    pub fn topic_count(&self) -> usize {
        self.topics_by_id.len()
    }

    /// Explicit overrides of a resource (a topic name, a broker id as a string, or "" for the
    /// cluster-wide broker default).
    pub fn configs(
        &self,
        resource_type: ConfigResourceType,
        name: &str,
    ) -> Option<&BTreeMap<String, String>> {
        self.configs
            .get(&(resource_type, name.to_string()))
            .map(|configs| &**configs)
    }

    /// The first id of the next producer-id block (0 before any block was handed out).
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Registered brokers that may lead and host replicas.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|broker| !broker.fenced)
    }

    /// Applies one record found at `offset` of the log.
    fn apply_one(&mut self, record: &MetadataRecord, offset: i64) {
        match record {
            MetadataRecord::RegisterBroker(r) => self.apply_register_broker(r, offset),
            MetadataRecord::Topic(r) => self.apply_topic(r),
            MetadataRecord::Partition(r) => self.apply_partition(r),
            MetadataRecord::RemoveTopic(r) => self.apply_remove_topic(r),
            MetadataRecord::Config(r) => self.apply_config(r),
            MetadataRecord::ProducerIds(r) => self.apply_producer_ids(r),
        }
    }

    fn apply_register_broker(&mut self, r: &RegisterBrokerRecord, offset: i64) {
        self.brokers.insert(
            r.broker_id,
            BrokerImage {
                id: r.broker_id,
                incarnation_id: r.incarnation_id,
                listeners: r.listeners.clone(),
                rack: r.rack.clone(),
                fenced: r.fenced,
                epoch: offset,
            },
        );
    }

    fn apply_producer_ids(&mut self, r: &ProducerIdsRecord) {
        if r.next_producer_id <= self.next_producer_id {
            // Ids only ever grow: going back would hand out ids that are in use. Kafka treats
            // this as a fatal replay error; the log stays the source of truth here, so the
            // record is skipped and the higher mark kept.
            warn!(
                broker = r.broker_id,
                next = r.next_producer_id,
                current = self.next_producer_id,
                "ignoring ProducerIdsRecord that does not advance the next producer id"
            );
            return;
        }
        self.next_producer_id = r.next_producer_id;
    }

    fn apply_topic(&mut self, r: &TopicRecord) {
        if let Some(existing) = self.topics_by_id.get(&r.topic_id) {
            warn!(topic = %r.name, topic_id = %r.topic_id, existing = %existing.name,
                "ignoring TopicRecord for a topic id that already exists");
            return;
        }
        if let Some(old_id) = self.topic_ids_by_name.get(&r.name).copied() {
            // Names are unique: the newer record wins, as a later RemoveTopic of the old id
            // would otherwise remove the name of the new topic.
            warn!(topic = %r.name, old_id = %old_id, new_id = %r.topic_id,
                "TopicRecord reuses the name of a live topic; replacing it");
            self.remove_topic(&old_id);
        }
        self.topic_ids_by_name.insert(r.name.clone(), r.topic_id);
        self.topics_by_id.insert(
            r.topic_id,
            Arc::new(TopicImage {
                name: r.name.clone(),
                id: r.topic_id,
                partitions: BTreeMap::new(),
            }),
        );
    }

    fn apply_partition(&mut self, r: &PartitionRecord) {
        let Some(topic) = self.topics_by_id.get_mut(&r.topic_id) else {
            warn!(topic_id = %r.topic_id, partition = r.partition_id,
                "ignoring PartitionRecord of an unknown topic id");
            return;
        };
        Arc::make_mut(topic).partitions.insert(
            r.partition_id,
            PartitionImage {
                replicas: r.replicas.clone(),
                isr: r.isr.clone(),
                leader: r.leader,
                leader_epoch: r.leader_epoch,
                partition_epoch: r.partition_epoch,
            },
        );
    }

    fn apply_remove_topic(&mut self, r: &RemoveTopicRecord) {
        if !self.remove_topic(&r.topic_id) {
            warn!(topic_id = %r.topic_id, "ignoring RemoveTopicRecord of an unknown topic id");
        }
    }

    /// Removes a topic with its name and its configs; false when the id is unknown.
    fn remove_topic(&mut self, id: &Uuid) -> bool {
        let Some(topic) = self.topics_by_id.remove(id) else {
            return false;
        };
        self.topic_ids_by_name.remove(&topic.name);
        self.configs
            .remove(&(ConfigResourceType::Topic, topic.name.clone()));
        true
    }

    fn apply_config(&mut self, r: &ConfigRecord) {
        if r.resource_type == ConfigResourceType::Topic
            && !self.topic_ids_by_name.contains_key(&r.resource_name)
        {
            // A topic's configs die with it (RemoveTopic), so a config of an unknown topic
            // would otherwise lie in wait for the next topic of that name.
            warn!(topic = %r.resource_name, config = %r.name,
                "ignoring ConfigRecord of an unknown topic");
            return;
        }
        let key = (r.resource_type, r.resource_name.clone());
        match &r.value {
            Some(value) => {
                let configs = self.configs.entry(key).or_default();
                Arc::make_mut(configs).insert(r.name.clone(), value.clone());
            }
            None => {
                if let Some(configs) = self.configs.get_mut(&key) {
                    Arc::make_mut(configs).remove(&r.name);
                    if configs.is_empty() {
                        self.configs.remove(&key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: Uuid) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: name.to_string(),
            topic_id: id,
        })
    }

    fn partition(id: Uuid, partition_id: i32, replicas: &[i32]) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            topic_id: id,
            partition_id,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
        })
    }

    fn config(
        resource_type: ConfigResourceType,
        resource: &str,
        name: &str,
        value: Option<&str>,
    ) -> MetadataRecord {
        MetadataRecord::Config(ConfigRecord {
            resource_type,
            resource_name: resource.to_string(),
            name: name.to_string(),
            value: value.map(str::to_string),
        })
    }

    fn broker(id: i32, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            incarnation_id: Uuid::new_v4(),
            listeners: vec![Endpoint {
                name: "PLAINTEXT".to_string(),
                host: "localhost".to_string(),
                port: 9092,
                security_protocol: "PLAINTEXT".to_string(),
            }],
            rack: None,
            fenced,
        })
    }

    #[test]
    fn empty_image() {
        let image = MetadataImage::empty();
        assert_eq!(image.offset, -1);
        assert!(image.topics().is_empty());
        assert!(image.brokers.is_empty());
    }

    #[test]
    fn create_topic_and_add_partitions() {
        let id = Uuid::new_v4();
        let image = MetadataImage::empty().apply(
            &[
                topic("orders", id),
                partition(id, 0, &[1]),
                partition(id, 1, &[1]),
            ],
            2,
        );
        assert_eq!(image.offset, 2);
        let t = image.topic_by_name("orders").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partitions.len(), 2);
        assert!(Arc::ptr_eq(t, image.topic_by_id(&id).unwrap()));

        let image = image.apply(&[partition(id, 2, &[1])], 3);
        assert_eq!(image.topic_by_id(&id).unwrap().partitions.len(), 3);
        assert_eq!(image.topic_by_id(&id).unwrap().replication_factor(), 1);

        // A PartitionRecord for an existing partition replaces it.
        let mut moved = partition(id, 2, &[2]);
        if let MetadataRecord::Partition(p) = &mut moved {
            p.leader_epoch = 1;
        }
        let image = image.apply(&[moved], 4);
        let p2 = &image.topic_by_id(&id).unwrap().partitions[&2];
        assert_eq!(
            (p2.leader, p2.leader_epoch, p2.replicas.clone()),
            (2, 1, vec![2])
        );
    }

    #[test]
    fn topics_are_listed_in_name_order() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let image = MetadataImage::empty().apply(&[topic("c", c), topic("a", a), topic("b", b)], 2);
        let names: Vec<_> = image.topics().iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(image.topic_count(), 3);
    }

    #[test]
    fn config_set_and_remove() {
        let id = Uuid::new_v4();
        let image = MetadataImage::empty().apply(
            &[
                topic("t", id),
                config(ConfigResourceType::Topic, "t", "retention.ms", Some("1000")),
                config(
                    ConfigResourceType::Topic,
                    "t",
                    "cleanup.policy",
                    Some("compact"),
                ),
                config(
                    ConfigResourceType::Broker,
                    "",
                    "log.retention.hours",
                    Some("1"),
                ),
                config(ConfigResourceType::Broker, "1", "num.io.threads", Some("4")),
            ],
            4,
        );
        let t = image.configs(ConfigResourceType::Topic, "t").unwrap();
        assert_eq!(t.get("retention.ms").map(String::as_str), Some("1000"));
        assert_eq!(t.len(), 2);
        assert_eq!(
            image.configs(ConfigResourceType::Broker, "").unwrap()["log.retention.hours"],
            "1"
        );
        assert_eq!(
            image.configs(ConfigResourceType::Broker, "1").unwrap()["num.io.threads"],
            "4"
        );
        assert!(image.configs(ConfigResourceType::Broker, "2").is_none());

        let image = image.apply(
            &[config(
                ConfigResourceType::Topic,
                "t",
                "retention.ms",
                Some("2000"),
            )],
            5,
        );
        assert_eq!(
            image.configs(ConfigResourceType::Topic, "t").unwrap()["retention.ms"],
            "2000"
        );

        let image = image.apply(
            &[
                config(ConfigResourceType::Topic, "t", "retention.ms", None),
                config(ConfigResourceType::Topic, "t", "cleanup.policy", None),
                // Removing what is not there is harmless.
                config(ConfigResourceType::Topic, "t", "segment.ms", None),
            ],
            8,
        );
        // The last key gone, the resource's map is gone too.
        assert!(image.configs(ConfigResourceType::Topic, "t").is_none());
    }

    #[test]
    fn remove_topic_drops_its_configs_and_name() {
        let id = Uuid::new_v4();
        let image = MetadataImage::empty().apply(
            &[
                topic("t", id),
                partition(id, 0, &[1]),
                config(ConfigResourceType::Topic, "t", "retention.ms", Some("1000")),
            ],
            2,
        );
        let image = image.apply(
            &[MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: id,
            })],
            3,
        );
        assert!(image.topic_by_name("t").is_none());
        assert!(image.topic_by_id(&id).is_none());
        assert!(image.configs(ConfigResourceType::Topic, "t").is_none());

        // A new topic with the same name starts without the old configs.
        let id2 = Uuid::new_v4();
        let image = image.apply(&[topic("t", id2)], 4);
        assert_eq!(image.topic_by_name("t").unwrap().id, id2);
        assert!(image.configs(ConfigResourceType::Topic, "t").is_none());
    }

    #[test]
    fn records_of_unknown_topics_are_ignored() {
        let id = Uuid::new_v4();
        let image = MetadataImage::empty().apply(
            &[
                partition(id, 0, &[1]),
                MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id }),
                config(
                    ConfigResourceType::Topic,
                    "ghost",
                    "retention.ms",
                    Some("1"),
                ),
            ],
            2,
        );
        assert_eq!(image.offset, 2);
        assert!(image.topics().is_empty());
        assert!(image.configs(ConfigResourceType::Topic, "ghost").is_none());
    }

    #[test]
    fn duplicate_topic_records() {
        let (id, id2) = (Uuid::new_v4(), Uuid::new_v4());
        let image = MetadataImage::empty().apply(&[topic("t", id), partition(id, 0, &[1])], 1);
        // Same id again: ignored, partitions kept.
        let same = image.apply(&[topic("other", id)], 2);
        assert_eq!(same.topic_by_id(&id).unwrap().partitions.len(), 1);
        assert!(same.topic_by_name("other").is_none());
        // Same name, new id: the old topic is replaced.
        let replaced = image.apply(&[topic("t", id2)], 2);
        assert!(replaced.topic_by_id(&id).is_none());
        assert_eq!(replaced.topic_by_name("t").unwrap().id, id2);
    }

    #[test]
    fn brokers_are_inserted_and_replaced() {
        let image = MetadataImage::empty().apply(&[broker(1, true), broker(2, false)], 1);
        assert_eq!(image.brokers.len(), 2);
        assert_eq!(
            image.unfenced_brokers().map(|b| b.id).collect::<Vec<_>>(),
            [2]
        );
        let image = image.apply(&[broker(1, false)], 2);
        assert_eq!(image.unfenced_brokers().count(), 2);
    }

    #[test]
    fn broker_epoch_is_the_offset_of_its_registration() {
        // Records 5, 6 and 7: broker 1 registers at 5, broker 2 at 6, broker 1 again at 7.
        let image = MetadataImage::empty().apply(&[broker(1, false), broker(2, false)], 6);
        assert_eq!((image.brokers[&1].epoch, image.brokers[&2].epoch), (5, 6));
        let image = image.apply(&[broker(1, false)], 7);
        assert_eq!((image.brokers[&1].epoch, image.brokers[&2].epoch), (7, 6));
    }

    #[test]
    fn producer_ids_only_advance() {
        let ids = |next: i64| {
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: 1,
                broker_epoch: -1,
                next_producer_id: next,
            })
        };
        let image = MetadataImage::empty();
        assert_eq!(image.next_producer_id(), 0);
        let image = image.apply(&[ids(1000), ids(2000)], 1);
        assert_eq!(image.next_producer_id(), 2000);
        // A record that would go back is skipped.
        let image = image.apply(&[ids(1000), ids(2000)], 3);
        assert_eq!(image.next_producer_id(), 2000);
        assert_eq!(image.offset, 3);
    }

    #[test]
    fn copy_on_write_shares_untouched_topics() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let before = MetadataImage::empty().apply(
            &[
                topic("a", a),
                partition(a, 0, &[1]),
                topic("b", b),
                partition(b, 0, &[1]),
                config(ConfigResourceType::Topic, "a", "retention.ms", Some("1")),
            ],
            4,
        );
        let after = before.apply(&[partition(b, 1, &[1])], 5);

        assert!(Arc::ptr_eq(
            before.topic_by_id(&a).unwrap(),
            after.topic_by_id(&a).unwrap()
        ));
        assert!(!Arc::ptr_eq(
            before.topic_by_id(&b).unwrap(),
            after.topic_by_id(&b).unwrap()
        ));
        // The old image is untouched.
        assert_eq!(before.topic_by_id(&b).unwrap().partitions.len(), 1);
        assert_eq!(after.topic_by_id(&b).unwrap().partitions.len(), 2);
        assert!(std::ptr::eq(
            before.configs(ConfigResourceType::Topic, "a").unwrap(),
            after.configs(ConfigResourceType::Topic, "a").unwrap()
        ));
    }

    #[test]
    fn equal_replays_give_equal_images() {
        let id = Uuid::new_v4();
        let records = [topic("t", id), partition(id, 0, &[1]), broker(1, false)];
        assert_eq!(
            MetadataImage::empty().apply(&records, 2),
            MetadataImage::empty()
                .apply(&records[..1], 0)
                .apply(&records[1..], 2)
        );
    }
}
