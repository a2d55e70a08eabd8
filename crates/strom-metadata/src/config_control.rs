//! IncrementalAlterConfigs and AlterConfigs: turning requested config changes of topics and
//! brokers into `ConfigRecord`s (value `None` deletes the key).
//!
//! Kafka splits the work between the broker that receives the request (`ConfigAdminManager`:
//! request shape, broker ids, dynamic broker config rules) and the controller
//! (`ConfigurationControlManager`: new values, topic config validation, existence). In single-node
//! mode both run here, in Kafka's order, so every error has Kafka's code and message:
//!
//! ```text
//! each resource once ─> unique keys ─> no null values ─> [broker] this node's id,
//!   dynamic-config rules on the resulting set ─> new values (SET/DELETE/APPEND/SUBTRACT)
//!   ─> [topic] name and topic config validation ─> the resource exists ─> records
//! ```
//!
//! Planning is pure: it reads one image and returns records; the controller commits the records
//! of every successful resource as one batch.

use std::collections::{BTreeMap, HashMap, HashSet};

use strom_protocol::{ApiError, ErrorCode};

use crate::config::{self, ConfigType};
use crate::image::MetadataImage;
use crate::records::{ConfigRecord, ConfigResourceType};
use crate::topic_name;

/// The operation of one IncrementalAlterConfigs entry (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpType {
    /// Set the value.
    Set,
    /// Remove the key, falling back to the next level (a DELETE of an absent key is no error).
    Delete,
    /// Add the value's comma-separated items to a LIST config, skipping those already present.
    Append,
    /// Remove the value's comma-separated items from a LIST config.
    Subtract,
}

impl OpType {
    /// The op of a wire value (`config_operation`: 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT).
    pub fn from_wire(value: i8) -> Option<Self> {
        match value {
            0 => Some(Self::Set),
            1 => Some(Self::Delete),
            2 => Some(Self::Append),
            3 => Some(Self::Subtract),
            _ => None,
        }
    }

    pub fn wire(self) -> i8 {
        match self {
            Self::Set => 0,
            Self::Delete => 1,
            Self::Append => 2,
            Self::Subtract => 3,
        }
    }

    /// Java's enum name, which Kafka's messages print.
    fn kafka_name(self) -> &'static str {
        match self {
            Self::Set => "SET",
            Self::Delete => "DELETE",
            Self::Append => "APPEND",
            Self::Subtract => "SUBTRACT",
        }
    }
}

/// One config operation of an IncrementalAlterConfigs resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op: OpType,
    /// Required for every op but DELETE (whose value is ignored).
    pub value: Option<String>,
}

/// The operations on one resource of an IncrementalAlterConfigs request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub resource_type: ConfigResourceType,
    /// A topic name, a broker id, or "" for the cluster-wide broker default.
    pub resource_name: String,
    pub ops: Vec<AlterConfigOp>,
}

fn invalid_request(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn invalid_config(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidConfig, message)
}

/// For each resource of a request, whether it appears more than once: Kafka fails every
/// occurrence rather than guess which one was meant.
pub(crate) fn duplicated<'a>(
    resources: impl Iterator<Item = (ConfigResourceType, &'a str)> + Clone,
) -> Vec<bool> {
    let mut counts: HashMap<(ConfigResourceType, &str), usize> = HashMap::new();
    for key in resources.clone() {
        *counts.entry(key).or_default() += 1;
    }
    resources.map(|key| counts[&key] > 1).collect()
}

pub(crate) fn duplicate_resource_error() -> ApiError {
    invalid_request("Each resource must appear at most once.")
}

fn check_null_values<'a>(nulls: impl Iterator<Item = &'a str>) -> Result<(), ApiError> {
    let nulls: Vec<&str> = nulls.collect();
    if nulls.is_empty() {
        Ok(())
    } else {
        Err(invalid_request(format!(
            "Null value not supported for : {}",
            nulls.join(", ")
        )))
    }
}

/// The receiving broker's check of a broker resource name: "" (the cluster default) or this
/// node's id. Returns whether the resource is one broker (as opposed to the default).
fn check_broker_name(node_id: i32, name: &str) -> Result<bool, ApiError> {
    if name.is_empty() {
        return Ok(false);
    }
    let id: i32 = name
        .parse()
        .map_err(|_| invalid_request(format!("Node id must be an integer, but it is: {name}")))?;
    if id != node_id {
        return Err(invalid_request(format!(
            "Unexpected broker id, expected {node_id}, but received {name}"
        )));
    }
    Ok(true)
}

fn is_list(resource_type: ConfigResourceType, name: &str) -> bool {
    let ty = match resource_type {
        ConfigResourceType::Topic => config::topic_config(name).map(|t| t.def.ty),
        ConfigResourceType::Broker => config::broker_config(name).map(|def| def.ty),
    };
    ty == Some(ConfigType::List)
}

fn default_of(resource_type: ConfigResourceType, name: &str) -> Option<&'static str> {
    match resource_type {
        ConfigResourceType::Topic => config::topic_config(name).and_then(|t| t.def.default),
        ConfigResourceType::Broker => config::broker_config(name).and_then(|def| def.default),
    }
}

/// Java's `String.split(",")`: trailing empty items dropped, and "" gives one empty item.
fn java_split(value: &str) -> Vec<&str> {
    if value.is_empty() {
        return vec![""];
    }
    let mut items: Vec<&str> = value.split(',').collect();
    while items.last() == Some(&"") {
        items.pop();
    }
    items
}

/// APPEND or SUBTRACT `operand` on a LIST config whose stored value is `current`.
///
/// As Kafka's controller does it: without a stored value the config definition's default is the
/// starting list (not a broker-level value), empty items are dropped, APPEND adds each item not
/// yet present (so duplicates are never added), SUBTRACT removes one occurrence of each item,
/// and no trimming happens (Kafka compares items as written).
fn list_op(op: OpType, current: Option<&str>, default: Option<&str>, operand: &str) -> String {
    let mut items: Vec<&str> = current
        .or(default)
        .map(|value| value.split(',').filter(|item| !item.is_empty()).collect())
        .unwrap_or_default();
    for item in java_split(operand) {
        if op == OpType::Append {
            if !items.contains(&item) {
                items.push(item);
            }
        } else if let Some(position) = items.iter().position(|i| *i == item) {
            items.remove(position);
        }
    }
    items.join(",")
}

/// The stored overrides of a resource (empty when it has none).
fn stored(
    image: &MetadataImage,
    resource_type: ConfigResourceType,
    name: &str,
) -> BTreeMap<String, String> {
    image
        .configs(resource_type, name)
        .cloned()
        .unwrap_or_default()
}

fn record(
    resource_type: ConfigResourceType,
    resource_name: &str,
    name: &str,
    value: Option<String>,
) -> ConfigRecord {
    ConfigRecord {
        resource_type,
        resource_name: resource_name.to_string(),
        name: name.to_string(),
        value,
    }
}

/// The controller's validation of the configs a resource would hold (`after`), then its
/// existence check, in Kafka's order (`ConfigurationControlManager.validateAlterConfig`).
fn validate_resource(
    image: &MetadataImage,
    resource_type: ConfigResourceType,
    name: &str,
    after: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    match resource_type {
        ConfigResourceType::Topic => {
            if name.is_empty() {
                return Err(invalid_request("Default topic resources are not allowed."));
            }
            topic_name::validate(name)
                .map_err(|message| ApiError::new(ErrorCode::InvalidTopicException, message))?;
            config::validate_topic_configs(after)?;
            if image.topic_by_name(name).is_none() {
                return Err(ApiError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ));
            }
        }
        ConfigResourceType::Broker => {
            // The name parsed as this node's id already; it must also be registered.
            if let Ok(id) = name.parse::<i32>()
                && !image.brokers.contains_key(&id)
            {
                return Err(ApiError::new(
                    ErrorCode::BrokerIdNotRegistered,
                    format!("No node with id {id} found."),
                ));
            }
        }
    }
    Ok(())
}

/// Plans one resource of an IncrementalAlterConfigs request against `image`.
pub(crate) fn plan_incremental(
    image: &MetadataImage,
    node_id: i32,
    change: &ConfigChange,
) -> Result<Vec<ConfigRecord>, ApiError> {
    let (resource_type, name) = (change.resource_type, change.resource_name.as_str());
    let mut keys = HashSet::new();
    if !change.ops.iter().all(|op| keys.insert(op.name.as_str())) {
        return Err(invalid_request("Error due to duplicate config keys"));
    }
    check_null_values(
        change
            .ops
            .iter()
            .filter(|op| op.op != OpType::Delete && op.value.is_none())
            .map(|op| op.name.as_str()),
    )?;
    let stored = stored(image, resource_type, name);
    if resource_type == ConfigResourceType::Broker {
        let per_broker = check_broker_name(node_id, name)?;
        preprocess_broker_ops(&stored, per_broker, &change.ops)?;
    }

    let mut records = Vec::new();
    let mut after = stored.clone();
    for op in &change.ops {
        let key = op.name.as_str();
        let current = stored.get(key).map(String::as_str);
        let operand = op.value.as_deref().unwrap_or_default();
        let new = match op.op {
            OpType::Set => op.value.clone(),
            OpType::Delete => None,
            OpType::Append | OpType::Subtract => {
                if !is_list(resource_type, key) {
                    return Err(invalid_config(format!(
                        "Can't {} to key {key} because its type is not LIST.",
                        op.op.kafka_name()
                    )));
                }
                Some(list_op(
                    op.op,
                    current,
                    default_of(resource_type, key),
                    operand,
                ))
            }
        };
        match &new {
            Some(value) => after.insert(key.to_string(), value.clone()),
            None => after.remove(key),
        };
        // A broker resource gets a record even for an unchanged value, as in Kafka
        // (KAFKA-14136): writing it is what makes brokers reload, e.g. a rotated keystore file.
        if current != new.as_deref() || resource_type == ConfigResourceType::Broker {
            records.push(record(resource_type, name, key, new));
        }
    }
    validate_resource(image, resource_type, name, &after)?;
    Ok(records)
}

/// The receiving broker's validation of incremental ops on a broker resource
/// (`ConfigAdminManager.validateBrokerConfigChange`): the ops applied to the dynamic configs that
/// take effect, then the dynamic-config rules on the result.
fn preprocess_broker_ops(
    stored: &BTreeMap<String, String>,
    per_broker: bool,
    ops: &[AlterConfigOp],
) -> Result<(), ApiError> {
    let mut props = config::effective_dynamic_broker_configs(stored, per_broker);
    for op in ops {
        let key = op.name.as_str();
        match op.op {
            OpType::Set => {
                props.insert(key.to_string(), op.value.clone().unwrap_or_default());
            }
            OpType::Delete => {
                props.remove(key);
            }
            OpType::Append | OpType::Subtract => {
                let Some(def) = config::broker_config(key) else {
                    return Err(invalid_config(format!("Unknown config name: {key}")));
                };
                if def.ty != ConfigType::List {
                    let verb = if op.op == OpType::Append {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(invalid_config(format!(
                        "Config value {verb} is not allowed for config key: {key}"
                    )));
                }
                let value = list_op(
                    op.op,
                    props.get(key).map(String::as_str),
                    def.default,
                    op.value.as_deref().unwrap_or_default(),
                );
                props.insert(key.to_string(), value);
            }
        }
    }
    config::validate_dynamic_broker_configs(&props, per_broker)
}

/// Plans one resource of a (legacy) AlterConfigs request: `configs` becomes the resource's whole
/// set of dynamic configs, so stored keys it does not name are deleted.
pub(crate) fn plan_legacy(
    image: &MetadataImage,
    node_id: i32,
    resource_type: ConfigResourceType,
    name: &str,
    configs: &BTreeMap<String, Option<String>>,
) -> Result<Vec<ConfigRecord>, ApiError> {
    check_null_values(
        configs
            .iter()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key.as_str()),
    )?;
    let values: BTreeMap<String, String> = configs
        .iter()
        .filter_map(|(key, value)| value.clone().map(|value| (key.clone(), value)))
        .collect();
    if resource_type == ConfigResourceType::Broker {
        let per_broker = check_broker_name(node_id, name)?;
        config::validate_dynamic_broker_configs(&values, per_broker)?;
    }
    let stored = stored(image, resource_type, name);
    let mut records: Vec<ConfigRecord> = values
        .iter()
        .filter(|(key, value)| {
            stored.get(*key) != Some(*value) || resource_type == ConfigResourceType::Broker
        })
        .map(|(key, value)| record(resource_type, name, key, Some(value.clone())))
        .collect();
    records.extend(
        stored
            .keys()
            .filter(|key| !values.contains_key(*key))
            .map(|key| record(resource_type, name, key, None)),
    );
    validate_resource(image, resource_type, name, &values)?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_split_matches_java() {
        assert_eq!(java_split(""), [""]);
        assert_eq!(java_split("a"), ["a"]);
        assert_eq!(java_split("a,,b"), ["a", "", "b"]);
        assert_eq!(java_split("a,b,,"), ["a", "b"]);
        assert!(java_split(",").is_empty());
        assert_eq!(java_split(",a"), ["", "a"]);
    }

    #[test]
    fn list_ops() {
        let append = |current, operand| list_op(OpType::Append, current, Some("delete"), operand);
        let subtract =
            |current, operand| list_op(OpType::Subtract, current, Some("delete"), operand);
        // No stored value: the definition's default is the starting list.
        assert_eq!(append(None, "compact"), "delete,compact");
        assert_eq!(append(Some("compact"), "delete"), "compact,delete");
        // Present items and repeated items are added once.
        assert_eq!(append(Some("compact"), "compact"), "compact");
        assert_eq!(append(Some(""), "compact,compact"), "compact");
        assert_eq!(append(Some("a,,b"), "c"), "a,b,c");
        // Subtract removes one occurrence per item; absent items are ignored.
        assert_eq!(subtract(Some("compact,delete"), "compact"), "delete");
        assert_eq!(subtract(None, "delete"), "");
        assert_eq!(subtract(Some("compact"), "delete"), "compact");
        assert_eq!(subtract(Some("a,b,a"), "a"), "b,a");
        assert_eq!(subtract(Some("a,b,a"), "a,a"), "b");
        // Items are compared as written.
        assert_eq!(append(Some(" compact"), "compact"), " compact,compact");
        // No default and nothing stored: an empty start.
        assert_eq!(list_op(OpType::Append, None, None, "x"), "x");
    }

    #[test]
    fn op_wire_values() {
        for op in [
            OpType::Set,
            OpType::Delete,
            OpType::Append,
            OpType::Subtract,
        ] {
            assert_eq!(OpType::from_wire(op.wire()), Some(op));
        }
        assert_eq!(OpType::from_wire(4), None);
        assert_eq!(OpType::from_wire(-1), None);
    }

    #[test]
    fn duplicates_are_all_marked() {
        use ConfigResourceType::{Broker, Topic};
        let resources = [(Topic, "a"), (Broker, "a"), (Topic, "b"), (Topic, "a")];
        assert_eq!(
            duplicated(resources.iter().copied()),
            [true, false, false, true]
        );
    }

    #[test]
    fn broker_names() {
        assert_eq!(check_broker_name(1, ""), Ok(false));
        assert_eq!(check_broker_name(1, "1"), Ok(true));
        assert_eq!(
            check_broker_name(1, "x").unwrap_err().message.as_deref(),
            Some("Node id must be an integer, but it is: x")
        );
        let other = check_broker_name(1, "2").unwrap_err();
        assert_eq!(other.code, ErrorCode::InvalidRequest);
        assert_eq!(
            other.message.as_deref(),
            Some("Unexpected broker id, expected 1, but received 2")
        );
    }
}
