//! Configs of topics and brokers: DescribeConfigs, IncrementalAlterConfigs (per-key SET /
//! DELETE / APPEND / SUBTRACT) and the legacy AlterConfigs (replace every dynamic config of a
//! resource).
//!
//! Routing follows Kafka's admin client: a resource of one broker (a numeric broker name, or a
//! broker logger) is sent to that broker, because only it knows its static settings; the
//! rest (topics, the cluster-wide broker default `""`) to the controller or any broker.

use std::collections::BTreeMap;
use std::fmt;

use strom_protocol::StrBytes;
use strom_protocol::kafka_protocol::protocol::Request;
use strom_protocol::messages::describe_configs_request::DescribeConfigsResource;
use strom_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::Admin;
use crate::error::{ClientError, Result};

/// Kinds of config resources (Kafka's `ConfigResource.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigResourceType {
    Topic,
    Broker,
    BrokerLogger,
}

impl ConfigResourceType {
    pub(crate) fn wire_value(self) -> i8 {
        match self {
            Self::Topic => 2,
            Self::Broker => 4,
            Self::BrokerLogger => 8,
        }
    }
}

/// A thing that has configs: a topic by name, a broker by id, or every broker (`""`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigResource {
    pub resource_type: ConfigResourceType,
    pub name: String,
}

impl ConfigResource {
    pub fn topic(name: impl Into<String>) -> Self {
        Self {
            resource_type: ConfigResourceType::Topic,
            name: name.into(),
        }
    }

    pub fn broker(id: i32) -> Self {
        Self {
            resource_type: ConfigResourceType::Broker,
            name: id.to_string(),
        }
    }

    /// The cluster-wide default of broker configs (Kafka's `--entity-default`): the broker
    /// resource with an empty name.
    pub fn broker_defaults() -> Self {
        Self {
            resource_type: ConfigResourceType::Broker,
            name: String::new(),
        }
    }

    /// The broker that must answer for this resource; `None` when any broker may.
    fn node(&self) -> Option<i32> {
        match self.resource_type {
            ConfigResourceType::Topic => None,
            ConfigResourceType::Broker | ConfigResourceType::BrokerLogger => {
                self.name.parse::<i32>().ok()
            }
        }
    }
}

/// Where a config value comes from (Kafka's `ConfigEntry.ConfigSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopicConfig,
    DynamicBrokerConfig,
    DynamicDefaultBrokerConfig,
    StaticBrokerConfig,
    DefaultConfig,
    DynamicBrokerLoggerConfig,
    ClientMetricsConfig,
    GroupConfig,
}

impl ConfigSource {
    pub(crate) fn from_wire(v: i8) -> Self {
        match v {
            1 => Self::DynamicTopicConfig,
            2 => Self::DynamicBrokerConfig,
            3 => Self::DynamicDefaultBrokerConfig,
            4 => Self::StaticBrokerConfig,
            5 => Self::DefaultConfig,
            6 => Self::DynamicBrokerLoggerConfig,
            7 => Self::ClientMetricsConfig,
            8 => Self::GroupConfig,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for ConfigSource {
    /// The Java enum constant, which `kafka-configs.sh` prints in synonym lists.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "UNKNOWN",
            Self::DynamicTopicConfig => "DYNAMIC_TOPIC_CONFIG",
            Self::DynamicBrokerConfig => "DYNAMIC_BROKER_CONFIG",
            Self::DynamicDefaultBrokerConfig => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            Self::StaticBrokerConfig => "STATIC_BROKER_CONFIG",
            Self::DefaultConfig => "DEFAULT_CONFIG",
            Self::DynamicBrokerLoggerConfig => "DYNAMIC_BROKER_LOGGER_CONFIG",
            Self::ClientMetricsConfig => "DYNAMIC_CLIENT_METRICS_CONFIG",
            Self::GroupConfig => "DYNAMIC_GROUP_CONFIG",
        })
    }
}

/// One level a config value could come from, most specific first in
/// [`ConfigEntry::synonyms`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One config value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values and unset ones.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    /// Filled only when asked for ([`DescribeConfigsOptions::include_synonyms`]).
    pub synonyms: Vec<ConfigSynonym>,
    /// Filled only when asked for ([`DescribeConfigsOptions::include_documentation`]).
    pub documentation: Option<String>,
}

impl ConfigEntry {
    /// Kafka's `ConfigEntry.isDefault()`: the value is the built-in default.
    pub fn is_default(&self) -> bool {
        self.source == ConfigSource::DefaultConfig
    }
}

/// The configs of one resource.
#[derive(Debug, Clone)]
pub struct ConfigResult {
    pub resource: ConfigResource,
    pub result: Result<Vec<ConfigEntry>>,
}

/// Options of [`Admin::describe_configs_with_options`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescribeConfigsOptions {
    pub include_synonyms: bool,
    pub include_documentation: bool,
}

/// What an incremental change does to one key (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterConfigOpType {
    Set,
    /// Back to the next level's value (the broker's, then the default).
    Delete,
    /// Add to a list-valued config.
    Append,
    /// Remove from a list-valued config.
    Subtract,
}

impl AlterConfigOpType {
    fn wire_value(self) -> i8 {
        match self {
            Self::Set => 0,
            Self::Delete => 1,
            Self::Append => 2,
            Self::Subtract => 3,
        }
    }
}

/// One change of [`Admin::incremental_alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op: AlterConfigOpType,
    /// Unused by `Delete`.
    pub value: Option<String>,
}

impl AlterConfigOp {
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: AlterConfigOpType::Set,
            value: Some(value.into()),
        }
    }

    pub fn delete(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: AlterConfigOpType::Delete,
            value: None,
        }
    }

    pub fn append(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: AlterConfigOpType::Append,
            value: Some(value.into()),
        }
    }

    pub fn subtract(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: AlterConfigOpType::Subtract,
            value: Some(value.into()),
        }
    }
}

/// Options of the alter calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlterConfigsOptions {
    /// Validate the change without applying it.
    pub validate_only: bool,
}

/// The outcome of altering one resource.
#[derive(Debug, Clone)]
pub struct AlterConfigResult {
    pub resource: ConfigResource,
    pub result: Result<()>,
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Splits resources by the node that must answer for them, keeping each one's request index.
fn by_node<T>(items: &[(ConfigResource, T)]) -> BTreeMap<Option<i32>, Vec<usize>> {
    let mut out: BTreeMap<Option<i32>, Vec<usize>> = BTreeMap::new();
    for (i, (r, _)) in items.iter().enumerate() {
        out.entry(r.node()).or_default().push(i);
    }
    out
}

fn missing_answer(api: &str, r: &ConfigResource) -> ClientError {
    ClientError::Protocol(format!(
        "the {api} response has no answer for {:?} '{}'",
        r.resource_type, r.name
    ))
}

impl Admin {
    /// The configs of each resource. Broker configs are asked of that broker, the rest of
    /// any broker.
    pub async fn describe_configs(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<ConfigResult>> {
        self.describe_configs_with_options(resources, DescribeConfigsOptions::default())
            .await
    }

    /// [`describe_configs`](Self::describe_configs), optionally with each value's synonyms
    /// (every level it could come from, as `kafka-configs.sh` prints them) and documentation.
    pub async fn describe_configs_with_options(
        &self,
        resources: &[ConfigResource],
        options: DescribeConfigsOptions,
    ) -> Result<Vec<ConfigResult>> {
        let indexed: Vec<(ConfigResource, ())> =
            resources.iter().map(|r| (r.clone(), ())).collect();
        let mut found: BTreeMap<(i8, String), Result<Vec<ConfigEntry>>> = BTreeMap::new();
        for (node, group) in by_node(&indexed) {
            let request = DescribeConfigsRequest::default()
                .with_include_synonyms(options.include_synonyms)
                .with_include_documentation(options.include_documentation)
                .with_resources(
                    group
                        .iter()
                        .map(|&i| {
                            let r = &resources[i];
                            DescribeConfigsResource::default()
                                .with_resource_type(r.resource_type.wire_value())
                                .with_resource_name(str_bytes(&r.name))
                                .with_configuration_keys(None)
                        })
                        .collect(),
                );
            let response = self
                .cluster
                .retry(&[], || async {
                    let conn = match node {
                        Some(id) => self.cluster.connection(id).await?,
                        None => self.cluster.any_connection().await?,
                    };
                    let version = conn.version::<DescribeConfigsRequest>(None)?;
                    let mut request = request.clone();
                    if version < 3 {
                        // Documentation is a v3 field; older brokers are simply not asked.
                        request.include_documentation = false;
                    }
                    conn.call_at(&request, version, self.cluster.config().request_timeout())
                        .await
                })
                .await?;
            for r in response.results {
                let result =
                    ClientError::check(r.error_code, r.error_message.as_deref()).map(|()| {
                        r.configs
                            .into_iter()
                            .map(|c| ConfigEntry {
                                name: c.name.to_string(),
                                value: c.value.map(|v| v.to_string()),
                                source: ConfigSource::from_wire(c.config_source),
                                read_only: c.read_only,
                                sensitive: c.is_sensitive,
                                synonyms: c
                                    .synonyms
                                    .into_iter()
                                    .map(|s| ConfigSynonym {
                                        name: s.name.to_string(),
                                        value: s.value.map(|v| v.to_string()),
                                        source: ConfigSource::from_wire(s.source),
                                    })
                                    .collect(),
                                documentation: c.documentation.map(|d| d.to_string()),
                            })
                            .collect()
                    });
                found.insert((r.resource_type, r.resource_name.to_string()), result);
            }
        }
        Ok(resources
            .iter()
            .map(|r| ConfigResult {
                resource: r.clone(),
                result: found
                    .remove(&(r.resource_type.wire_value(), r.name.clone()))
                    .unwrap_or_else(|| Err(missing_answer("DescribeConfigs", r))),
            })
            .collect())
    }

    /// Changes single keys of each resource (KIP-339); keys not named keep their values.
    pub async fn incremental_alter_configs(
        &self,
        changes: &[(ConfigResource, Vec<AlterConfigOp>)],
        options: AlterConfigsOptions,
    ) -> Result<Vec<AlterConfigResult>> {
        use strom_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let build = |group: &[usize]| {
            IncrementalAlterConfigsRequest::default()
                .with_validate_only(options.validate_only)
                .with_resources(
                    group
                        .iter()
                        .map(|&i| {
                            let (r, ops) = &changes[i];
                            AlterConfigsResource::default()
                                .with_resource_type(r.resource_type.wire_value())
                                .with_resource_name(str_bytes(&r.name))
                                .with_configs(
                                    ops.iter()
                                        .map(|op| {
                                            AlterableConfig::default()
                                                .with_name(str_bytes(&op.name))
                                                .with_config_operation(op.op.wire_value())
                                                .with_value(op.value.as_deref().map(str_bytes))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        };
        let answers = |response: IncrementalAlterConfigsResponse| {
            response
                .responses
                .into_iter()
                .map(|r| {
                    let result = ClientError::check(r.error_code, r.error_message.as_deref());
                    ((r.resource_type, r.resource_name.to_string()), result)
                })
                .collect()
        };
        self.alter_each("IncrementalAlterConfigs", changes, build, answers)
            .await
    }

    /// The legacy AlterConfigs: each resource's dynamic configs become exactly `configs`
    /// (keys left out are deleted). Prefer
    /// [`incremental_alter_configs`](Self::incremental_alter_configs).
    pub async fn alter_configs(
        &self,
        resources: &[(ConfigResource, BTreeMap<String, String>)],
        options: AlterConfigsOptions,
    ) -> Result<Vec<AlterConfigResult>> {
        use strom_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let build = |group: &[usize]| {
            AlterConfigsRequest::default()
                .with_validate_only(options.validate_only)
                .with_resources(
                    group
                        .iter()
                        .map(|&i| {
                            let (r, configs) = &resources[i];
                            AlterConfigsResource::default()
                                .with_resource_type(r.resource_type.wire_value())
                                .with_resource_name(str_bytes(&r.name))
                                .with_configs(
                                    configs
                                        .iter()
                                        .map(|(k, v)| {
                                            AlterableConfig::default()
                                                .with_name(str_bytes(k))
                                                .with_value(Some(str_bytes(v)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        };
        let answers = |response: AlterConfigsResponse| {
            response
                .responses
                .into_iter()
                .map(|r| {
                    let result = ClientError::check(r.error_code, r.error_message.as_deref());
                    ((r.resource_type, r.resource_name.to_string()), result)
                })
                .collect()
        };
        self.alter_each("AlterConfigs", resources, build, answers)
            .await
    }

    /// Sends one request per broker that owns some of `items` (broker resources to their
    /// broker, the rest to the controller), built by `build` from their indexes, and gives
    /// each resource its answer, in `items` order.
    async fn alter_each<T, R: Request>(
        &self,
        api: &str,
        items: &[(ConfigResource, T)],
        build: impl Fn(&[usize]) -> R,
        answers: impl Fn(R::Response) -> Vec<((i8, String), Result<()>)>,
    ) -> Result<Vec<AlterConfigResult>> {
        let mut found: BTreeMap<(i8, String), Result<()>> = BTreeMap::new();
        for (node, group) in by_node(items) {
            let request = build(&group);
            let response = self
                .cluster
                .retry(&[], || async {
                    let conn = match node {
                        Some(id) => self.cluster.connection(id).await?,
                        None => self.cluster.controller_connection().await?,
                    };
                    conn.call(&request).await
                })
                .await?;
            found.extend(answers(response));
        }
        Ok(items
            .iter()
            .map(|(r, _)| AlterConfigResult {
                resource: r.clone(),
                result: found
                    .remove(&(r.resource_type.wire_value(), r.name.clone()))
                    .unwrap_or_else(|| Err(missing_answer(api, r))),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_resources_go_to_their_broker() {
        assert_eq!(ConfigResource::broker(3).node(), Some(3));
        assert_eq!(ConfigResource::broker_defaults().node(), None);
        assert_eq!(ConfigResource::topic("7").node(), None);
    }

    #[test]
    fn sources_print_as_kafka_enum_constants() {
        assert_eq!(
            ConfigSource::from_wire(1).to_string(),
            "DYNAMIC_TOPIC_CONFIG"
        );
        assert_eq!(ConfigSource::from_wire(5).to_string(), "DEFAULT_CONFIG");
        assert_eq!(ConfigSource::from_wire(99).to_string(), "UNKNOWN");
    }
}
