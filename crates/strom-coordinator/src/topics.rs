//! The broker's view of the cluster's topics, as KIP-848 groups need it: names, ids and
//! partition counts. The coordinator has no metadata access of its own; the broker passes a
//! `TopicsView` with each ConsumerGroupHeartbeat and whenever metadata changes.

use std::collections::BTreeMap;

use uuid::Uuid;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Internal topics (`__consumer_offsets`, `__transaction_state`) are never matched by a
    /// subscription regular expression, as in Kafka.
    pub internal: bool,
}

/// A snapshot of the topics, indexed by name and by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsView {
    /// Version of the metadata the snapshot was taken from (e.g. the metadata log offset);
    /// recorded with resolved regular expressions.
    pub version: i64,
    by_name: BTreeMap<String, TopicInfo>,
    names_by_id: BTreeMap<Uuid, String>,
}

impl TopicsView {
    pub fn new(version: i64, topics: impl IntoIterator<Item = TopicInfo>) -> Self {
        let mut view = Self {
            version,
            ..Self::default()
        };
        for t in topics {
            view.names_by_id.insert(t.id, t.name.clone());
            view.by_name.insert(t.name.clone(), t);
        }
        view
    }

    pub fn by_name(&self, name: &str) -> Option<&TopicInfo> {
        self.by_name.get(name)
    }

    pub fn name_of(&self, id: &Uuid) -> Option<&str> {
        self.names_by_id.get(id).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TopicInfo> {
        self.by_name.values()
    }
}
