//! Kafka's config definitions for brokers and topics: names, types, defaults, validators and the
//! broker-level synonyms of topic configs (`retention.ms` <- `log.retention.ms`,
//! `log.retention.minutes`, `log.retention.hours`). One table serves start-up validation of
//! `server.properties`, CreateTopics / AlterConfigs validation and DescribeConfigs.

use std::collections::BTreeMap;

use strom_protocol::ApiError;

/// A config's type, with the wire value DescribeConfigs v3+ reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// Where a described value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

/// Accepted values of a config.
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    Any,
    /// Inclusive lower bound of a numeric config.
    AtLeast(i64),
    /// Inclusive bounds of a numeric config.
    Between(i64, i64),
    /// Inclusive bounds of a `Double` config.
    BetweenF(f64, f64),
    /// One of these strings (case-sensitive unless Kafka's config is not).
    OneOf(&'static [&'static str]),
    /// A list whose every element is one of these strings.
    ListOf(&'static [&'static str]),
    NonEmptyString,
}

#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// `None`: no default (Kafka's `null`).
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub doc: &'static str,
    /// Only settable in `server.properties`, not dynamically.
    pub read_only: bool,
    pub sensitive: bool,
}

/// A topic-level config and the broker-level configs that supply its default, in priority
/// order. `unit_ms` gives each synonym's unit in milliseconds (e.g. 3_600_000 for
/// `log.retention.hours`), 1 for the same unit, 0 for a non-numeric synonym.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub def: ConfigDef,
    pub broker_synonyms: &'static [(&'static str, i64)],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One entry of a DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    /// `None` for sensitive configs and configs without a value.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub ty: ConfigType,
    pub doc: String,
    /// The value's own source first, then the ones it overrides (when synonyms are asked for).
    pub synonyms: Vec<ConfigSynonym>,
}

/// The broker-level config values a node runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerConfigView {
    /// From `server.properties` and `--override`.
    pub static_props: BTreeMap<String, String>,
    /// Dynamic overrides for this broker (metadata `ConfigRecord`s for its id).
    pub dynamic: BTreeMap<String, String>,
    /// Dynamic cluster-wide defaults (`ConfigRecord`s with an empty broker name).
    pub dynamic_default: BTreeMap<String, String>,
}

pub fn broker_configs() -> &'static [ConfigDef] {
    unimplemented!()
}

pub fn broker_config(name: &str) -> Option<&'static ConfigDef> {
    let _ = name;
    unimplemented!()
}

pub fn topic_configs() -> &'static [TopicConfigDef] {
    unimplemented!()
}

pub fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    let _ = name;
    unimplemented!()
}

/// Checks one value against its definition; the error reads like Kafka's `ConfigException`:
/// "Invalid value abc for configuration num.partitions: Not a number of type INT".
pub fn validate(def: &ConfigDef, value: &str) -> Result<(), String> {
    let _ = (def, value);
    unimplemented!()
}

/// Validates topic config overrides (unknown names included) as INVALID_CONFIG with a message.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let _ = configs;
    unimplemented!()
}

/// Every topic config with its effective value: the topic override, else the broker's dynamic
/// then static synonyms (converted to the topic config's unit), else the default.
pub fn effective_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfigView,
) -> BTreeMap<String, String> {
    let _ = (overrides, broker);
    unimplemented!()
}

/// DescribeConfigs for a topic.
pub fn describe_topic(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfigView,
    include_synonyms: bool,
) -> Vec<DescribedConfig> {
    let _ = (overrides, broker, include_synonyms);
    unimplemented!()
}

/// DescribeConfigs for a broker.
pub fn describe_broker(broker: &BrokerConfigView, include_synonyms: bool) -> Vec<DescribedConfig> {
    let _ = (broker, include_synonyms);
    unimplemented!()
}
