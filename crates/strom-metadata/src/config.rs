//! Kafka's config definitions for brokers and topics: names, types, defaults, validators and the
//! broker-level synonyms of topic configs (`retention.ms` <- `log.retention.ms`,
//! `log.retention.minutes`, `log.retention.hours`). One table serves start-up validation of
//! `server.properties`, CreateTopics / AlterConfigs validation and DescribeConfigs.
//!
//! Values are parsed the way Kafka's `ConfigDef` parses them (surrounding whitespace trimmed,
//! Java integer ranges, case-insensitive booleans, comma-separated lists) and errors read like
//! its `ConfigException`: "Invalid value X for configuration Y: reason".
//!
//! Resolution of a topic config, highest priority first:
//!
//! ```text
//! topic override (TOPIC_CONFIG)
//! -> broker synonyms set dynamically for this broker (DYNAMIC_BROKER_CONFIG)
//! -> ... set as cluster-wide dynamic defaults (DYNAMIC_DEFAULT_BROKER_CONFIG)
//! -> ... set in server.properties (STATIC_BROKER_CONFIG)
//! -> ... defaults of the broker synonyms (DEFAULT_CONFIG)
//! -> the topic config's own default (DEFAULT_CONFIG)
//! ```
//!
//! The dynamic levels come from the metadata image ([`broker_config_view`]); which broker configs
//! may be set dynamically, and at which level, follows Kafka's `DynamicBrokerConfig`
//! ([`validate_dynamic_broker_configs`]).
//!
//! Within a level, synonyms count in their listed order (`log.retention.ms` before
//! `log.retention.minutes` before `log.retention.hours`); broker values are converted to the
//! topic config's unit (`log.retention.hours=1` gives `retention.ms=3600000`).

use std::collections::BTreeMap;

use strom_protocol::{ApiError, ErrorCode};

use crate::image::MetadataImage;
use crate::records::ConfigResourceType;

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

impl ConfigType {
    /// The wire value of DescribeConfigs' `config_type`.
    pub fn wire(self) -> i8 {
        self as i8
    }

    /// Kafka's name of the type, as used in "Not a number of type INT".
    pub fn kafka_name(self) -> &'static str {
        match self {
            Self::Boolean => "BOOLEAN",
            Self::String => "STRING",
            Self::Int => "INT",
            Self::Short => "SHORT",
            Self::Long => "LONG",
            Self::Double => "DOUBLE",
            Self::List => "LIST",
            Self::Class => "CLASS",
            Self::Password => "PASSWORD",
        }
    }
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

impl ConfigSource {
    /// The wire value of DescribeConfigs' `config_source`.
    pub fn wire(self) -> i8 {
        self as i8
    }
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
    /// Inclusive bounds or one special value (`compression.gzip.level`: 1..=9 or -1).
    BetweenOr(i64, i64, i64),
    /// `*` or a list of `partition:broker` pairs (the replication throttle lists).
    ThrottledReplicas,
    /// `{id}@{host}:{port}` entries (`controller.quorum.voters`).
    QuorumVoters,
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

impl BrokerConfigView {
    /// The levels a broker config can be set at, highest priority first (defaults excluded).
    fn levels(&self) -> [(&BTreeMap<String, String>, ConfigSource); 3] {
        [
            (&self.dynamic, ConfigSource::DynamicBrokerConfig),
            (
                &self.dynamic_default,
                ConfigSource::DynamicDefaultBrokerConfig,
            ),
            (&self.static_props, ConfigSource::StaticBrokerConfig),
        ]
    }

    /// The value this broker runs with for `name`: dynamic, then dynamic default, then static,
    /// then the definition's default (`None` for unknown configs without a set value).
    pub fn value(&self, name: &str) -> Option<String> {
        self.levels()
            .iter()
            .find_map(|(map, _)| map.get(name).cloned())
            .or_else(|| broker_config(name).and_then(|def| def.default.map(str::to_string)))
    }
}

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

/// Settable only in `server.properties`.
const RO: bool = true;
/// Also settable dynamically (Kafka's `DynamicBrokerConfig.AllDynamicConfigs`).
const DYN: bool = false;

const LONG_MAX: &str = "9223372036854775807";
const INT_MAX: &str = "2147483647";

const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

const fn def(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    read_only: bool,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        validator,
        doc,
        read_only,
        sensitive: false,
    }
}

/// A password: never reported by DescribeConfigs.
const fn secret(name: &'static str, doc: &'static str) -> ConfigDef {
    ConfigDef {
        name,
        ty: ConfigType::Password,
        default: None,
        validator: Validator::Any,
        doc,
        read_only: false,
        sensitive: true,
    }
}

const fn topic(def: ConfigDef, broker_synonyms: &'static [(&'static str, i64)]) -> TopicConfigDef {
    TopicConfigDef {
        def,
        broker_synonyms,
    }
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;

use ConfigType as T;
use Validator as V;

/// Every topic-level config of Kafka 4.x, in name order.
#[rustfmt::skip]
static TOPIC_CONFIGS: [TopicConfigDef; 33] = [
    topic(
        def("cleanup.policy", T::List, Some("delete"), V::ListOf(CLEANUP_POLICIES), DYN,
            "How old segments are cleaned: \"delete\" drops them past the retention time or size, \"compact\" keeps the latest record per key; both may be listed."),
        &[("log.cleanup.policy", 0)],
    ),
    topic(
        def("compression.gzip.level", T::Int, Some("-1"), V::BetweenOr(1, 9, -1), DYN,
            "Compression level used when compression.type is gzip."),
        &[("compression.gzip.level", 1)],
    ),
    topic(
        def("compression.lz4.level", T::Int, Some("9"), V::Between(1, 17), DYN,
            "Compression level used when compression.type is lz4."),
        &[("compression.lz4.level", 1)],
    ),
    topic(
        def("compression.type", T::String, Some("producer"), V::OneOf(COMPRESSION_TYPES), DYN,
            "Final compression of the topic's batches: a codec, \"uncompressed\", or \"producer\" to keep what the producer sent."),
        &[("compression.type", 0)],
    ),
    topic(
        def("compression.zstd.level", T::Int, Some("3"), V::Between(-131072, 22), DYN,
            "Compression level used when compression.type is zstd."),
        &[("compression.zstd.level", 1)],
    ),
    topic(
        def("delete.retention.ms", T::Long, Some("86400000"), V::AtLeast(0), DYN,
            "How long tombstones are kept in a compacted topic, which bounds how long a consumer reading from the start may take to see a consistent snapshot."),
        &[("log.cleaner.delete.retention.ms", 1)],
    ),
    topic(
        def("file.delete.delay.ms", T::Long, Some("60000"), V::AtLeast(0), DYN,
            "Delay before a deleted segment's files are removed from the filesystem."),
        &[("log.segment.delete.delay.ms", 1)],
    ),
    topic(
        def("flush.messages", T::Long, Some(LONG_MAX), V::AtLeast(1), DYN,
            "Number of messages after which the log is fsynced; by default durability comes from replication and the OS flushes."),
        &[("log.flush.interval.messages", 1)],
    ),
    topic(
        def("flush.ms", T::Long, Some(LONG_MAX), V::AtLeast(0), DYN,
            "Time after which the log is fsynced; by default durability comes from replication and the OS flushes."),
        &[("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)],
    ),
    topic(
        def("follower.replication.throttled.replicas", T::List, Some(""), V::ThrottledReplicas, DYN,
            "Replicas whose follower side is throttled: [partitionId]:[brokerId] pairs, or * for all replicas of the topic."),
        &[],
    ),
    topic(
        def("index.interval.bytes", T::Int, Some("4096"), V::AtLeast(0), DYN,
            "Bytes of log between two entries of the offset index."),
        &[("log.index.interval.bytes", 1)],
    ),
    topic(
        def("leader.replication.throttled.replicas", T::List, Some(""), V::ThrottledReplicas, DYN,
            "Replicas whose leader side is throttled: [partitionId]:[brokerId] pairs, or * for all replicas of the topic."),
        &[],
    ),
    topic(
        def("local.retention.bytes", T::Long, Some("-2"), V::AtLeast(-2), DYN,
            "Local size limit of a partition when tiered storage is enabled; -2 means retention.bytes."),
        &[("log.local.retention.bytes", 1)],
    ),
    topic(
        def("local.retention.ms", T::Long, Some("-2"), V::AtLeast(-2), DYN,
            "Local retention time of segments when tiered storage is enabled; -2 means retention.ms."),
        &[("log.local.retention.ms", 1)],
    ),
    topic(
        def("max.compaction.lag.ms", T::Long, Some(LONG_MAX), V::AtLeast(1), DYN,
            "Longest time a record may stay uncompacted in a compacted topic."),
        &[("log.cleaner.max.compaction.lag.ms", 1)],
    ),
    topic(
        def("max.message.bytes", T::Int, Some("1048588"), V::AtLeast(0), DYN,
            "Largest record batch size the topic accepts (after compression)."),
        &[("message.max.bytes", 1)],
    ),
    topic(
        def("message.timestamp.after.max.ms", T::Long, Some("3600000"), V::AtLeast(0), DYN,
            "How far a CreateTime timestamp may lie in the future of the broker's clock before the batch is rejected."),
        &[("log.message.timestamp.after.max.ms", 1)],
    ),
    topic(
        def("message.timestamp.before.max.ms", T::Long, Some(LONG_MAX), V::AtLeast(0), DYN,
            "How far a CreateTime timestamp may lie in the past of the broker's clock before the batch is rejected."),
        &[("log.message.timestamp.before.max.ms", 1)],
    ),
    topic(
        def("message.timestamp.type", T::String, Some("CreateTime"), V::OneOf(TIMESTAMP_TYPES), DYN,
            "Whether record timestamps are the producer's (CreateTime) or the broker's append time (LogAppendTime)."),
        &[("log.message.timestamp.type", 0)],
    ),
    topic(
        def("min.cleanable.dirty.ratio", T::Double, Some("0.5"), V::BetweenF(0.0, 1.0), DYN,
            "Share of uncompacted log above which the cleaner compacts the partition."),
        &[("log.cleaner.min.cleanable.ratio", 0)],
    ),
    topic(
        def("min.compaction.lag.ms", T::Long, Some("0"), V::AtLeast(0), DYN,
            "Shortest time a record stays uncompacted in a compacted topic."),
        &[("log.cleaner.min.compaction.lag.ms", 1)],
    ),
    topic(
        def("min.insync.replicas", T::Int, Some("1"), V::AtLeast(1), DYN,
            "Smallest ISR with which an acks=all produce succeeds; below it producers get NOT_ENOUGH_REPLICAS."),
        &[("min.insync.replicas", 1)],
    ),
    topic(
        def("preallocate", T::Boolean, Some("false"), V::Any, DYN,
            "Whether a new segment's file is preallocated on disk."),
        &[("log.preallocate", 0)],
    ),
    topic(
        def("remote.log.copy.disable", T::Boolean, Some("false"), V::Any, DYN,
            "Stops copying segments to tiered storage while keeping what is there readable."),
        &[],
    ),
    topic(
        def("remote.log.delete.on.disable", T::Boolean, Some("false"), V::Any, DYN,
            "Whether turning off tiered storage for the topic deletes its remote data."),
        &[],
    ),
    topic(
        def("remote.storage.enable", T::Boolean, Some("false"), V::Any, DYN,
            "Whether the topic uses tiered storage."),
        &[],
    ),
    topic(
        def("retention.bytes", T::Long, Some("-1"), V::Any, DYN,
            "Size a partition may grow to before old segments are deleted (delete policy); -1 means no size limit."),
        &[("log.retention.bytes", 1)],
    ),
    topic(
        def("retention.ms", T::Long, Some("604800000"), V::AtLeast(-1), DYN,
            "How long segments are kept before deletion (delete policy); -1 means no time limit."),
        &[("log.retention.ms", 1), ("log.retention.minutes", MINUTE_MS), ("log.retention.hours", HOUR_MS)],
    ),
    topic(
        def("segment.bytes", T::Int, Some("1073741824"), V::AtLeast(1_048_576), DYN,
            "Size of a log segment file; retention and compaction work a segment at a time."),
        &[("log.segment.bytes", 1)],
    ),
    topic(
        def("segment.index.bytes", T::Int, Some("10485760"), V::AtLeast(4), DYN,
            "Size of the index that maps offsets to file positions."),
        &[("log.index.size.max.bytes", 1)],
    ),
    topic(
        def("segment.jitter.ms", T::Long, Some("0"), V::AtLeast(0), DYN,
            "Largest random jitter subtracted from segment.ms so that segments do not all roll at once."),
        &[("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", HOUR_MS)],
    ),
    topic(
        def("segment.ms", T::Long, Some("604800000"), V::AtLeast(1), DYN,
            "Time after which a segment is rolled even if not full, so that retention and compaction can act on old data."),
        &[("log.roll.ms", 1), ("log.roll.hours", HOUR_MS)],
    ),
    topic(
        def("unclean.leader.election.enable", T::Boolean, Some("false"), V::Any, DYN,
            "Whether a replica outside the ISR may become leader as a last resort, at the risk of losing data."),
        &[("unclean.leader.election.enable", 0)],
    ),
];

/// The broker configs strom knows: the essentials, every broker synonym of a topic config, and
/// the sizing of the internal topics. Kafka's names, types, defaults and validators.
#[rustfmt::skip]
static BROKER_CONFIGS: &[ConfigDef] = &[
    // KRaft and identity.
    def("node.id", T::Int, None, V::AtLeast(0), RO,
        "Id of this node in the cluster; required."),
    def("process.roles", T::List, Some(""), V::ListOf(&["broker", "controller"]), RO,
        "Roles of this process: broker, controller, or both."),
    def("controller.quorum.voters", T::List, Some(""), V::QuorumVoters, RO,
        "Static controller quorum: comma-separated {id}@{host}:{port} entries."),
    def("controller.quorum.bootstrap.servers", T::List, Some(""), V::Any, RO,
        "host:port entries used to discover the controller quorum."),
    def("controller.listener.names", T::String, None, V::Any, RO,
        "Comma-separated names of the listeners used by the controller."),
    def("metadata.log.dir", T::String, None, V::Any, RO,
        "Directory of the cluster metadata log; defaults to the first log directory."),
    def("broker.rack", T::String, None, V::Any, RO,
        "Rack of this broker, used to spread replicas over racks."),
    def("broker.heartbeat.interval.ms", T::Int, Some("2000"), V::Any, RO,
        "Interval of the broker's heartbeats to the controller."),
    def("broker.session.timeout.ms", T::Int, Some("9000"), V::Any, RO,
        "Time without heartbeat after which the controller fences a broker."),
    // Network.
    def("listeners", T::String, Some("PLAINTEXT://:9092"), V::Any, DYN,
        "Comma-separated listener URIs ({name}://{host}:{port}) the server binds to."),
    def("advertised.listeners", T::String, None, V::Any, DYN,
        "Listener addresses published to clients, when they differ from listeners."),
    def("listener.security.protocol.map", T::String, Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"), V::Any, DYN,
        "Security protocol of each listener name ({name}:{protocol} pairs)."),
    def("inter.broker.listener.name", T::String, None, V::Any, RO,
        "Listener used between brokers."),
    def("security.inter.broker.protocol", T::String, Some("PLAINTEXT"), V::OneOf(SECURITY_PROTOCOLS), RO,
        "Security protocol between brokers when inter.broker.listener.name is not set."),
    def("socket.request.max.bytes", T::Int, Some("104857600"), V::AtLeast(1), RO,
        "Largest request the server reads; a larger one closes the connection."),
    def("socket.send.buffer.bytes", T::Int, Some("102400"), V::Any, RO,
        "SO_SNDBUF of server sockets; -1 for the OS default."),
    def("socket.receive.buffer.bytes", T::Int, Some("102400"), V::Any, RO,
        "SO_RCVBUF of server sockets; -1 for the OS default."),
    def("socket.listen.backlog.size", T::Int, Some("50"), V::AtLeast(1), RO,
        "Backlog of pending connections on each listening socket."),
    def("max.connections", T::Int, Some(INT_MAX), V::AtLeast(0), DYN,
        "Most connections the broker accepts at once."),
    def("max.connections.per.ip", T::Int, Some(INT_MAX), V::AtLeast(0), DYN,
        "Most connections the broker accepts from one IP address."),
    def("connections.max.idle.ms", T::Long, Some("600000"), V::Any, RO,
        "Idle time after which the server closes a connection."),
    def("num.network.threads", T::Int, Some("3"), V::AtLeast(1), DYN,
        "Threads that read requests from and write responses to the network."),
    def("num.io.threads", T::Int, Some("8"), V::AtLeast(1), DYN,
        "Threads that process requests."),
    def("background.threads", T::Int, Some("10"), V::AtLeast(1), DYN,
        "Threads for background tasks."),
    def("queued.max.requests", T::Int, Some("500"), V::AtLeast(1), RO,
        "Requests queued for the I/O threads before the network threads stop reading."),
    secret("ssl.keystore.password", "Password of the key store file."),
    secret("ssl.key.password", "Password of the private key in the key store."),
    secret("ssl.truststore.password", "Password of the trust store file."),
    // Topics.
    def("num.partitions", T::Int, Some("1"), V::AtLeast(1), RO,
        "Partition count of topics created without one (auto-created, or -1 in CreateTopics)."),
    def("default.replication.factor", T::Int, Some("1"), V::Any, RO,
        "Replication factor of topics created without one (auto-created, or -1 in CreateTopics)."),
    def("auto.create.topics.enable", T::Boolean, Some("true"), V::Any, RO,
        "Whether a metadata request for an unknown topic creates it."),
    def("delete.topic.enable", T::Boolean, Some("true"), V::Any, RO,
        "Whether topics can be deleted."),
    def("message.max.bytes", T::Int, Some("1048588"), V::AtLeast(0), DYN,
        "Largest record batch size accepted; default of the topic config max.message.bytes."),
    def("min.insync.replicas", T::Int, Some("1"), V::AtLeast(1), DYN,
        "Default of the topic config min.insync.replicas."),
    def("unclean.leader.election.enable", T::Boolean, Some("false"), V::Any, DYN,
        "Default of the topic config unclean.leader.election.enable."),
    def("compression.type", T::String, Some("producer"), V::OneOf(COMPRESSION_TYPES), DYN,
        "Default of the topic config compression.type."),
    def("compression.gzip.level", T::Int, Some("-1"), V::BetweenOr(1, 9, -1), DYN,
        "Default of the topic config compression.gzip.level."),
    def("compression.lz4.level", T::Int, Some("9"), V::Between(1, 17), DYN,
        "Default of the topic config compression.lz4.level."),
    def("compression.zstd.level", T::Int, Some("3"), V::Between(-131072, 22), DYN,
        "Default of the topic config compression.zstd.level."),
    // Log.
    def("log.dirs", T::String, None, V::Any, RO,
        "Comma-separated directories of the partition logs; log.dir when not set."),
    def("log.dir", T::String, Some("/tmp/kafka-logs"), V::Any, RO,
        "Directory of the partition logs when log.dirs is not set."),
    def("log.segment.bytes", T::Int, Some("1073741824"), V::AtLeast(1_048_576), DYN,
        "Default of the topic config segment.bytes."),
    def("log.roll.ms", T::Long, None, V::Any, DYN,
        "Default of the topic config segment.ms; log.roll.hours when not set."),
    def("log.roll.hours", T::Int, Some("168"), V::AtLeast(1), RO,
        "Default of the topic config segment.ms, in hours."),
    def("log.roll.jitter.ms", T::Long, None, V::Any, DYN,
        "Default of the topic config segment.jitter.ms; log.roll.jitter.hours when not set."),
    def("log.roll.jitter.hours", T::Int, Some("0"), V::AtLeast(0), RO,
        "Default of the topic config segment.jitter.ms, in hours."),
    def("log.retention.ms", T::Long, None, V::Any, DYN,
        "Default of the topic config retention.ms; log.retention.minutes when not set. -1: no limit."),
    def("log.retention.minutes", T::Int, None, V::Any, RO,
        "Default of the topic config retention.ms in minutes; log.retention.hours when not set."),
    def("log.retention.hours", T::Int, Some("168"), V::Any, RO,
        "Default of the topic config retention.ms, in hours."),
    def("log.retention.bytes", T::Long, Some("-1"), V::Any, DYN,
        "Default of the topic config retention.bytes."),
    def("log.retention.check.interval.ms", T::Long, Some("300000"), V::AtLeast(1), RO,
        "Interval at which segments are checked for deletion by retention."),
    def("log.cleanup.policy", T::List, Some("delete"), V::ListOf(CLEANUP_POLICIES), DYN,
        "Default of the topic config cleanup.policy."),
    def("log.index.size.max.bytes", T::Int, Some("10485760"), V::AtLeast(4), DYN,
        "Default of the topic config segment.index.bytes."),
    def("log.index.interval.bytes", T::Int, Some("4096"), V::AtLeast(0), DYN,
        "Default of the topic config index.interval.bytes."),
    def("log.flush.interval.messages", T::Long, Some(LONG_MAX), V::AtLeast(1), DYN,
        "Default of the topic config flush.messages."),
    def("log.flush.interval.ms", T::Long, None, V::Any, DYN,
        "Default of the topic config flush.ms; log.flush.scheduler.interval.ms when not set."),
    def("log.flush.scheduler.interval.ms", T::Long, Some(LONG_MAX), V::Any, RO,
        "Interval at which logs are checked for a time-based flush."),
    def("log.flush.offset.checkpoint.interval.ms", T::Int, Some("60000"), V::AtLeast(0), RO,
        "Interval at which the recovery point checkpoint is written."),
    def("log.flush.start.offset.checkpoint.interval.ms", T::Int, Some("60000"), V::AtLeast(0), RO,
        "Interval at which the log start offset checkpoint is written."),
    def("log.segment.delete.delay.ms", T::Long, Some("60000"), V::AtLeast(0), DYN,
        "Default of the topic config file.delete.delay.ms."),
    def("log.preallocate", T::Boolean, Some("false"), V::Any, DYN,
        "Default of the topic config preallocate."),
    def("log.message.timestamp.type", T::String, Some("CreateTime"), V::OneOf(TIMESTAMP_TYPES), DYN,
        "Default of the topic config message.timestamp.type."),
    def("log.message.timestamp.before.max.ms", T::Long, Some(LONG_MAX), V::AtLeast(0), DYN,
        "Default of the topic config message.timestamp.before.max.ms."),
    def("log.message.timestamp.after.max.ms", T::Long, Some("3600000"), V::AtLeast(0), DYN,
        "Default of the topic config message.timestamp.after.max.ms."),
    def("log.local.retention.ms", T::Long, Some("-2"), V::AtLeast(-2), DYN,
        "Default of the topic config local.retention.ms."),
    def("log.local.retention.bytes", T::Long, Some("-2"), V::AtLeast(-2), DYN,
        "Default of the topic config local.retention.bytes."),
    def("num.recovery.threads.per.data.dir", T::Int, Some("2"), V::AtLeast(1), DYN,
        "Threads per log directory that recover logs at start-up and flush them at shutdown."),
    // Log cleaner.
    def("log.cleaner.enable", T::Boolean, Some("true"), V::Any, RO,
        "Whether the log cleaner (compaction) runs."),
    def("log.cleaner.threads", T::Int, Some("1"), V::AtLeast(0), DYN,
        "Threads of the log cleaner."),
    def("log.cleaner.backoff.ms", T::Long, Some("15000"), V::AtLeast(0), DYN,
        "Sleep of the cleaner when there is nothing to clean."),
    def("log.cleaner.dedupe.buffer.size", T::Long, Some("134217728"), V::Any, DYN,
        "Memory of the cleaner's key deduplication buffer, over all cleaner threads."),
    def("log.cleaner.io.buffer.size", T::Int, Some("524288"), V::AtLeast(0), DYN,
        "Memory of the cleaner's I/O buffers, over all cleaner threads."),
    def("log.cleaner.io.buffer.load.factor", T::Double, Some("0.9"), V::Any, DYN,
        "Load factor of the cleaner's deduplication buffer."),
    def("log.cleaner.io.max.bytes.per.second", T::Double, Some("1.7976931348623157E308"), V::Any, DYN,
        "Throttle of the cleaner's reads and writes."),
    def("log.cleaner.min.cleanable.ratio", T::Double, Some("0.5"), V::BetweenF(0.0, 1.0), DYN,
        "Default of the topic config min.cleanable.dirty.ratio."),
    def("log.cleaner.delete.retention.ms", T::Long, Some("86400000"), V::AtLeast(0), DYN,
        "Default of the topic config delete.retention.ms."),
    def("log.cleaner.min.compaction.lag.ms", T::Long, Some("0"), V::AtLeast(0), DYN,
        "Default of the topic config min.compaction.lag.ms."),
    def("log.cleaner.max.compaction.lag.ms", T::Long, Some(LONG_MAX), V::AtLeast(1), DYN,
        "Default of the topic config max.compaction.lag.ms."),
    // Replication.
    def("replica.lag.time.max.ms", T::Long, Some("30000"), V::Any, RO,
        "Time after which a follower that has not caught up is removed from the ISR."),
    def("replica.fetch.max.bytes", T::Int, Some("1048576"), V::AtLeast(0), RO,
        "Bytes a follower asks for per partition in one fetch."),
    def("replica.fetch.wait.max.ms", T::Int, Some("500"), V::Any, RO,
        "Longest wait of a follower's fetch for data."),
    def("num.replica.fetchers", T::Int, Some("1"), V::Any, DYN,
        "Fetcher threads per source broker."),
    def("fetch.max.bytes", T::Int, Some("57671680"), V::AtLeast(1024), RO,
        "Largest response of one fetch request."),
    def("auto.leader.rebalance.enable", T::Boolean, Some("true"), V::Any, RO,
        "Whether leadership is moved back to preferred replicas in the background."),
    def("max.incremental.fetch.session.cache.slots", T::Int, Some("1000"), V::AtLeast(0), RO,
        "Incremental fetch sessions the broker keeps."),
    // Groups.
    def("group.coordinator.rebalance.protocols", T::List, Some("classic,consumer"), V::ListOf(&["classic", "consumer"]), RO,
        "Rebalance protocols the group coordinator serves."),
    def("group.consumer.heartbeat.interval.ms", T::Int, Some("5000"), V::AtLeast(1), RO,
        "Heartbeat interval given to consumer-protocol (KIP-848) members."),
    def("group.consumer.min.heartbeat.interval.ms", T::Int, Some("5000"), V::AtLeast(1), RO,
        "Smallest heartbeat interval a consumer group may configure."),
    def("group.consumer.max.heartbeat.interval.ms", T::Int, Some("15000"), V::AtLeast(1), RO,
        "Largest heartbeat interval a consumer group may configure."),
    def("group.consumer.session.timeout.ms", T::Int, Some("45000"), V::AtLeast(1), RO,
        "Session timeout of consumer-protocol (KIP-848) members."),
    def("group.consumer.min.session.timeout.ms", T::Int, Some("45000"), V::AtLeast(1), RO,
        "Smallest session timeout a consumer group may configure."),
    def("group.consumer.max.session.timeout.ms", T::Int, Some("60000"), V::AtLeast(1), RO,
        "Largest session timeout a consumer group may configure."),
    def("group.consumer.assignors", T::List, Some("uniform,range"), V::ListOf(&["uniform", "range"]), RO,
        "Server-side assignors of consumer groups; the first is the default."),
    def("group.consumer.max.size", T::Int, Some("2147483647"), V::AtLeast(1), RO,
        "Largest number of members of one consumer group."),
    def("offsets.topic.num.partitions", T::Int, Some("50"), V::AtLeast(1), RO,
        "Partitions of __consumer_offsets (do not change after deployment)."),
    def("offsets.topic.replication.factor", T::Short, Some("3"), V::AtLeast(1), RO,
        "Replication factor of __consumer_offsets."),
    def("offsets.topic.segment.bytes", T::Int, Some("104857600"), V::AtLeast(1), RO,
        "Segment size of __consumer_offsets, small to keep compaction and loading fast."),
    def("offsets.retention.minutes", T::Int, Some("10080"), V::AtLeast(1), RO,
        "How long the committed offsets of an empty group are kept."),
    def("offsets.retention.check.interval.ms", T::Long, Some("600000"), V::AtLeast(1), RO,
        "Interval of the check for stale offsets."),
    def("offset.metadata.max.bytes", T::Int, Some("4096"), V::Any, RO,
        "Largest metadata string of an offset commit."),
    def("group.initial.rebalance.delay.ms", T::Int, Some("3000"), V::Any, RO,
        "Delay of the first rebalance of a new classic group, to let more members join."),
    def("group.min.session.timeout.ms", T::Int, Some("6000"), V::Any, RO,
        "Smallest session timeout a classic group member may ask for."),
    def("group.max.session.timeout.ms", T::Int, Some("1800000"), V::Any, RO,
        "Largest session timeout a classic group member may ask for."),
    def("group.max.size", T::Int, Some(INT_MAX), V::AtLeast(1), RO,
        "Most members of one classic group."),
    // Transactions.
    def("transaction.state.log.num.partitions", T::Int, Some("50"), V::AtLeast(1), RO,
        "Partitions of __transaction_state (do not change after deployment)."),
    def("transaction.state.log.replication.factor", T::Short, Some("3"), V::AtLeast(1), RO,
        "Replication factor of __transaction_state."),
    def("transaction.state.log.min.isr", T::Int, Some("2"), V::AtLeast(1), RO,
        "min.insync.replicas of __transaction_state."),
    def("transaction.state.log.segment.bytes", T::Int, Some("104857600"), V::AtLeast(1), RO,
        "Segment size of __transaction_state."),
    def("transaction.max.timeout.ms", T::Int, Some("900000"), V::AtLeast(1), RO,
        "Largest transaction timeout a producer may ask for."),
    def("transactional.id.expiration.ms", T::Int, Some("604800000"), V::AtLeast(1), RO,
        "Idle time after which a transactional id expires."),
    def("transaction.abort.timed.out.transaction.cleanup.interval.ms", T::Int, Some("10000"),
        V::AtLeast(1), RO, "How often transactions past their timeout are aborted."),
    def("transaction.remove.expired.transaction.cleanup.interval.ms", T::Int, Some("3600000"),
        V::AtLeast(1), RO, "How often expired transactional ids are removed."),
    def("producer.id.expiration.check.interval.ms", T::Int, Some("600000"), V::AtLeast(1), RO,
        "How often producer ids past producer.id.expiration.ms are removed."),
    def("producer.id.expiration.ms", T::Int, Some("86400000"), V::AtLeast(1), DYN,
        "Idle time after which a producer id's state is dropped."),
];

pub fn broker_configs() -> &'static [ConfigDef] {
    BROKER_CONFIGS
}

pub fn broker_config(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|def| def.name == name)
}

pub fn topic_configs() -> &'static [TopicConfigDef] {
    &TOPIC_CONFIGS
}

pub fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .binary_search_by(|def| def.def.name.cmp(name))
        .ok()
        .map(|i| &TOPIC_CONFIGS[i])
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

/// A value parsed by its type.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    Boolean(bool),
    /// Int, Short and Long.
    Integer(i64),
    Double(f64),
    /// String, Class and Password.
    String(String),
    List(Vec<String>),
}

impl ConfigValue {
    /// Kafka's `ConfigDef.convertToString`: the form DescribeConfigs reports.
    pub fn to_kafka_string(&self) -> String {
        match self {
            Self::Boolean(b) => b.to_string(),
            Self::Integer(n) => n.to_string(),
            Self::Double(d) => java_double(*d),
            Self::String(s) => s.clone(),
            Self::List(items) => items.join(","),
        }
    }
}

/// Parses `value` as `def`'s type and checks it against `def`'s validator.
pub fn parse(def: &ConfigDef, value: &str) -> Result<ConfigValue, String> {
    let parsed = parse_type(def, value)?;
    check(def, &parsed)?;
    Ok(parsed)
}

/// Checks one value against its definition; the error reads like Kafka's `ConfigException`:
/// "Invalid value abc for configuration num.partitions: Not a number of type INT".
pub fn validate(def: &ConfigDef, value: &str) -> Result<(), String> {
    parse(def, value).map(drop)
}

/// The value as DescribeConfigs reports it (`" 100 "` -> `"100"`, `"TRUE"` -> `"true"`,
/// `"compact, delete"` -> `"compact,delete"`); the raw value when it does not parse.
pub fn canonical(def: &ConfigDef, value: &str) -> String {
    parse_type(def, value).map_or_else(|_| value.to_string(), |v| v.to_kafka_string())
}

fn invalid(name: &str, value: impl std::fmt::Display, reason: &str) -> String {
    format!("Invalid value {value} for configuration {name}: {reason}")
}

/// Java's `String.trim`: strips every char up to and including the space.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

fn parse_type(def: &ConfigDef, raw: &str) -> Result<ConfigValue, String> {
    let trimmed = java_trim(raw);
    let not_a_number = || {
        invalid(
            def.name,
            raw,
            &format!("Not a number of type {}", def.ty.kafka_name()),
        )
    };
    match def.ty {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Ok(ConfigValue::Boolean(true))
            } else if trimmed.eq_ignore_ascii_case("false") {
                Ok(ConfigValue::Boolean(false))
            } else {
                Err(invalid(
                    def.name,
                    raw,
                    "Expected value to be either true or false",
                ))
            }
        }
        ConfigType::Int => trimmed
            .parse::<i32>()
            .map(|n| ConfigValue::Integer(n.into()))
            .map_err(|_| not_a_number()),
        ConfigType::Short => trimmed
            .parse::<i16>()
            .map(|n| ConfigValue::Integer(n.into()))
            .map_err(|_| not_a_number()),
        ConfigType::Long => trimmed
            .parse::<i64>()
            .map(ConfigValue::Integer)
            .map_err(|_| not_a_number()),
        ConfigType::Double => parse_java_double(trimmed)
            .map(ConfigValue::Double)
            .ok_or_else(not_a_number),
        ConfigType::String | ConfigType::Class | ConfigType::Password => {
            Ok(ConfigValue::String(trimmed.to_string()))
        }
        ConfigType::List => Ok(ConfigValue::List(if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed
                .split(',')
                .map(|s| java_trim(s).to_string())
                .collect()
        })),
    }
}

/// `Double.parseDouble` minus the spellings Rust accepts and Java does not ("inf", "nan").
fn parse_java_double(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return match s.trim_start_matches(['+', '-']) {
            "Infinity" | "NaN" => s.parse().ok(),
            _ => None,
        };
    }
    s.parse().ok()
}

/// Java's `Double.toString`: plain notation in [1e-3, 1e7), scientific outside, and always a
/// fractional part ("2.0", "1.0E7").
pub fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let magnitude = d.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let s = d.to_string();
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        let s = format!("{d:e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}

/// Prints a numeric bound the way Kafka's `Range` does (its bounds are Java integers).
fn bound(b: f64) -> String {
    if b.fract() == 0.0 && b.abs() < 1e15 {
        format!("{}", b as i64)
    } else {
        java_double(b)
    }
}

fn check(def: &ConfigDef, value: &ConfigValue) -> Result<(), String> {
    let name = def.name;
    let shown = value.to_kafka_string();
    let number = match value {
        ConfigValue::Integer(n) => Some(*n as f64),
        ConfigValue::Double(d) => Some(*d),
        _ => None,
    };
    // Integers compare exactly: an f64 cannot tell i64::MAX from i64::MAX - 1.
    let below = |min: i64| match value {
        ConfigValue::Integer(n) => *n < min,
        _ => number.is_some_and(|d| d.is_nan() || d < min as f64),
    };
    let above = |max: i64| match value {
        ConfigValue::Integer(n) => *n > max,
        _ => number.is_some_and(|d| d > max as f64),
    };
    match def.validator {
        Validator::Any => Ok(()),
        Validator::AtLeast(min) => {
            if below(min) {
                Err(invalid(
                    name,
                    shown,
                    &format!("Value must be at least {min}"),
                ))
            } else {
                Ok(())
            }
        }
        Validator::Between(min, max) => {
            if below(min) {
                Err(invalid(
                    name,
                    shown,
                    &format!("Value must be at least {min}"),
                ))
            } else if above(max) {
                Err(invalid(
                    name,
                    shown,
                    &format!("Value must be no more than {max}"),
                ))
            } else {
                Ok(())
            }
        }
        Validator::BetweenF(min, max) => match number {
            // NaN passes Java's comparisons; it is no valid ratio, so it fails here.
            Some(d) if d.is_nan() || d < min => Err(invalid(
                name,
                shown,
                &format!("Value must be at least {}", bound(min)),
            )),
            Some(d) if d > max => Err(invalid(
                name,
                shown,
                &format!("Value must be no more than {}", bound(max)),
            )),
            _ => Ok(()),
        },
        Validator::BetweenOr(min, max, or) => match value {
            ConfigValue::Integer(n) if *n != or && (*n < min || *n > max) => Err(invalid(
                name,
                shown,
                &format!("Value must be between {min} and {max} or equal to {or}"),
            )),
            _ => Ok(()),
        },
        Validator::OneOf(allowed) => match value {
            ConfigValue::String(s) if !allowed.contains(&s.as_str()) => Err(invalid(
                name,
                s,
                &format!("String must be one of: {}", allowed.join(", ")),
            )),
            _ => Ok(()),
        },
        Validator::ListOf(allowed) => match value {
            ConfigValue::List(items) => items
                .iter()
                .find(|item| !allowed.contains(&item.as_str()))
                .map_or(Ok(()), |item| {
                    Err(invalid(
                        name,
                        item,
                        &format!("String must be one of: {}", allowed.join(", ")),
                    ))
                }),
            _ => Ok(()),
        },
        Validator::NonEmptyString => match value {
            ConfigValue::String(s) if s.is_empty() => {
                Err(invalid(name, s, "String must be non-empty"))
            }
            _ => Ok(()),
        },
        Validator::ThrottledReplicas => match value {
            ConfigValue::List(items) => {
                let pair = |s: &str| {
                    s.is_empty()
                        || s.split_once(':').is_some_and(|(p, b)| {
                            !p.is_empty()
                                && !b.is_empty()
                                && p.bytes().all(|c| c.is_ascii_digit())
                                && b.bytes().all(|c| c.is_ascii_digit())
                        })
                };
                if items.iter().all(|s| pair(s)) || items.concat() == "*" {
                    Ok(())
                } else {
                    Err(invalid(
                        name,
                        format!("[{}]", items.join(", ")),
                        &format!(
                            "{name} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
                        ),
                    ))
                }
            }
            _ => Ok(()),
        },
        Validator::QuorumVoters => match value {
            ConfigValue::List(items) => items.iter().try_for_each(|entry| check_voter(name, entry)),
            _ => Ok(()),
        },
    }
}

fn check_voter(name: &str, entry: &str) -> Result<(), String> {
    let form = "Each entry should be in the form `{id}@{host}:{port}`.";
    let parts: Vec<&str> = entry.split('@').collect();
    let [id, address] = parts[..] else {
        return Err(format!("Invalid configuration value for {name}. {form}"));
    };
    if id.parse::<i32>().is_err() {
        return Err(format!("Failed to parse voter ID as an integer from {id}"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!(
            "Failed to parse host name from entry {entry} for the configuration {name}. {form}"
        ));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || !host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-%._:".contains(&c))
    {
        return Err(format!(
            "Failed to parse host name from entry {entry} for the configuration {name}. {form}"
        ));
    }
    if port.is_empty() || !port.bytes().all(|c| c.is_ascii_digit()) || port.parse::<u16>().is_err()
    {
        return Err(format!(
            "Failed to parse host port from entry {entry} for the configuration {name}. {form}"
        ));
    }
    Ok(())
}

/// Validates topic config overrides (unknown names included) as INVALID_CONFIG with a message.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let invalid_config = |message: String| ApiError::new(ErrorCode::InvalidConfig, message);
    if let Some(unknown) = configs.keys().find(|name| topic_config(name).is_none()) {
        return Err(invalid_config(format!(
            "Unknown topic config name: {unknown}"
        )));
    }
    let mut parsed = BTreeMap::new();
    for (name, value) in configs {
        let def = topic_config(name).map(|t| &t.def);
        if let Some(def) = def {
            parsed.insert(name.as_str(), parse(def, value).map_err(invalid_config)?);
        }
    }
    let long = |name: &str| match parsed.get(name) {
        Some(ConfigValue::Integer(n)) => Some(*n),
        _ => topic_config(name)
            .and_then(|t| t.def.default)
            .and_then(|d| d.parse().ok()),
    };
    if let (Some(min), Some(max)) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms"))
        && min > max
    {
        return Err(invalid_config(format!(
            "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
        )));
    }
    // strom has no tiered storage: Kafka's answer when remote.log.storage.system.enable is off.
    if parsed.get("remote.storage.enable") == Some(&ConfigValue::Boolean(true)) {
        return Err(invalid_config(
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
                .to_string(),
        ));
    }
    Ok(())
}

/// Validates `server.properties` values: every known config that is set must parse and pass its
/// validator. Unknown names are left alone, as Kafka does (plugins and clients read them).
pub fn validate_broker_props(props: &BTreeMap<String, String>) -> Result<(), Vec<String>> {
    let errors: Vec<String> = props
        .iter()
        .filter_map(|(name, value)| broker_config(name).and_then(|def| validate(def, value).err()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------------
// Dynamic broker configs
// ---------------------------------------------------------------------------------------------

/// Security configs Kafka reconfigures only per listener (`SslConfigs.RECONFIGURABLE_CONFIGS`):
/// the bare name is refused, `listener.name.<listener>.<config>` is the dynamic form.
const LISTENER_ONLY_SECURITY_CONFIGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.certificates",
];

/// Dynamic configs that describe one broker and so cannot be cluster-wide defaults: Kafka's
/// `DynamicListenerConfig.ReconfigurableConfigs` and the security configs, minus
/// [`CLUSTER_LEVEL_LISTENER_CONFIGS`]. Kept whole (strom does not define all of them) because
/// names strom does not know are still accepted as custom configs, as Kafka accepts them.
const PER_BROKER_CONFIGS: &[&str] = &[
    "advertised.listeners",
    "listeners",
    "listener.security.protocol.map",
    "principal.builder.class",
    "ssl.protocol",
    "ssl.provider",
    "ssl.cipher.suites",
    "ssl.enabled.protocols",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.keymanager.algorithm",
    "ssl.trustmanager.algorithm",
    "ssl.endpoint.identification.algorithm",
    "ssl.secure.random.implementation",
    "ssl.client.auth",
    "ssl.engine.factory.class",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.certificates",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.jaas.config",
    "sasl.enabled.mechanisms",
    "sasl.kerberos.service.name",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal.to.local.rules",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.buffer.seconds",
];

/// Listener configs that may be set for the whole cluster, with or without a listener prefix.
const CLUSTER_LEVEL_LISTENER_CONFIGS: &[&str] = &[
    "max.connections",
    "max.connection.creation.rate",
    "num.network.threads",
];

/// How a broker config can be changed at runtime (Kafka's "Update Mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Only in `server.properties`.
    ReadOnly,
    /// Dynamically, for one broker only.
    PerBroker,
    /// Dynamically, for one broker or as a cluster-wide default.
    ClusterWide,
}

/// The update mode of a broker config strom defines; `None` for other names (which Kafka treats
/// as custom configs).
pub fn broker_update_mode(name: &str) -> Option<UpdateMode> {
    let def = broker_config(name)?;
    Some(if def.read_only {
        UpdateMode::ReadOnly
    } else if is_per_broker(name) {
        UpdateMode::PerBroker
    } else {
        UpdateMode::ClusterWide
    })
}

/// The config name inside a `listener.name.<listener>.<config>` override.
fn listener_base(name: &str) -> Option<&str> {
    name.strip_prefix("listener.name.")?
        .split_once('.')
        .map(|(_, base)| base)
}

fn is_per_broker(name: &str) -> bool {
    match listener_base(name) {
        Some(base) => !CLUSTER_LEVEL_LISTENER_CONFIGS.contains(&base),
        None => PER_BROKER_CONFIGS.contains(&name),
    }
}

/// A config Kafka knows but never changes at runtime. Names strom does not define count as
/// custom configs, which Kafka lets through.
fn is_non_dynamic(name: &str) -> bool {
    broker_config(name).is_some_and(|def| def.read_only)
}

/// Checks one dynamic value against the definition of its (base) name.
fn validate_dynamic_value(name: &str, value: &str) -> Result<(), String> {
    let base = listener_base(name).unwrap_or(name);
    broker_config(base).map_or(Ok(()), |def| validate(def, value))
}

/// Kafka prints these name sets with Scala's `Set.toString`; sorted here so the text is stable.
fn scala_set<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = names.map(String::as_str).collect();
    names.sort_unstable();
    format!("Set({})", names.join(", "))
}

/// Kafka's `DynamicBrokerConfig.validateConfigs` over the dynamic configs a broker resource would
/// hold after a change: a broker's own (`per_broker`) or the cluster-wide default.
///
/// Errors are INVALID_REQUEST, as Kafka reports every failed dynamic broker validation
/// (KAFKA-13609), with Kafka's messages: "Cannot update these configs dynamically: Set(...)",
/// the per-listener security rule, the value's `ConfigException` text, and "Cannot update these
/// configs at default cluster level, broker id must be specified: Set(...)".
pub fn validate_dynamic_broker_configs(
    configs: &BTreeMap<String, String>,
    per_broker: bool,
) -> Result<(), ApiError> {
    let invalid = |message: String| Err(ApiError::new(ErrorCode::InvalidRequest, message));
    let non_dynamic: Vec<&String> = configs.keys().filter(|n| is_non_dynamic(n)).collect();
    if !non_dynamic.is_empty() {
        return invalid(format!(
            "Cannot update these configs dynamically: {}",
            scala_set(non_dynamic.into_iter())
        ));
    }
    let bare_security: Vec<&String> = configs
        .keys()
        .filter(|n| LISTENER_ONLY_SECURITY_CONFIGS.contains(&n.as_str()))
        .collect();
    if !bare_security.is_empty() {
        return invalid(format!(
            "These security configs can be dynamically updated only per-listener using the listener prefix: {}",
            scala_set(bare_security.into_iter())
        ));
    }
    for (name, value) in configs {
        if let Err(message) = validate_dynamic_value(name, value) {
            return invalid(message);
        }
    }
    if !per_broker {
        let per_broker_only: Vec<&String> = configs.keys().filter(|n| is_per_broker(n)).collect();
        if !per_broker_only.is_empty() {
            return invalid(format!(
                "Cannot update these configs at default cluster level, broker id must be specified: {}",
                scala_set(per_broker_only.into_iter())
            ));
        }
    }
    Ok(())
}

/// The stored dynamic configs of a broker resource that take effect. Like Kafka's
/// `fromPersistentProps`, entries that could not have been set at that level or whose value no
/// longer parses are left out rather than failing the broker: the log may hold what an older
/// version accepted.
pub fn effective_dynamic_broker_configs(
    stored: &BTreeMap<String, String>,
    per_broker: bool,
) -> BTreeMap<String, String> {
    stored
        .iter()
        .filter(|(name, value)| {
            !is_non_dynamic(name)
                && !LISTENER_ONLY_SECURITY_CONFIGS.contains(&name.as_str())
                && (per_broker || !is_per_broker(name))
                && validate_dynamic_value(name, value).is_ok()
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The broker config levels node `node_id` runs with: `static_props` (server.properties) plus
/// the dynamic configs the image holds for this broker (resource name = its id) and for the
/// cluster default (resource name ""). The result feeds [`describe_broker`] (sources
/// DYNAMIC_BROKER_CONFIG / DYNAMIC_DEFAULT_BROKER_CONFIG) and [`effective_topic_configs`] (dynamic
/// broker values as topic-config fallbacks).
pub fn broker_config_view(
    image: &MetadataImage,
    node_id: i32,
    static_props: BTreeMap<String, String>,
) -> BrokerConfigView {
    let dynamic = |name: &str, per_broker| {
        image
            .configs(ConfigResourceType::Broker, name)
            .map(|stored| effective_dynamic_broker_configs(stored, per_broker))
            .unwrap_or_default()
    };
    BrokerConfigView {
        static_props,
        dynamic: dynamic(&node_id.to_string(), true),
        dynamic_default: dynamic("", false),
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution and DescribeConfigs
// ---------------------------------------------------------------------------------------------

/// The broker configs DescribeConfigs reports as synonyms of each other: Kafka's
/// `DynamicBrokerConfig.brokerConfigSynonyms`, in priority order.
fn broker_synonym_group(name: &str) -> &'static [&'static str] {
    const RETENTION: &[&str] = &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];
    const JITTER: &[&str] = &["log.roll.jitter.ms", "log.roll.jitter.hours"];
    const FLUSH: &[&str] = &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"];
    match name {
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => RETENTION,
        "log.roll.ms" | "log.roll.hours" => ROLL,
        "log.roll.jitter.ms" | "log.roll.jitter.hours" => JITTER,
        "log.flush.interval.ms" => FLUSH,
        _ => broker_config(name).map_or(&[], |def| std::slice::from_ref(&def.name)),
    }
}

/// Every place `names` are set, level by level (dynamic, dynamic default, static, default),
/// each level in the order of `names`: the order DescribeConfigs lists synonyms in.
fn broker_synonyms<'a>(
    names: impl Iterator<Item = &'a str> + Clone,
    broker: &BrokerConfigView,
    sensitive: bool,
) -> Vec<ConfigSynonym> {
    let mut synonyms = Vec::new();
    let mut push = |name: &str, value: &str, source| {
        synonyms.push(ConfigSynonym {
            name: name.to_string(),
            value: (!sensitive).then(|| value.to_string()),
            source,
        });
    };
    for (map, source) in broker.levels() {
        for name in names.clone() {
            if let Some(value) = map.get(name) {
                push(name, value, source);
            }
        }
    }
    for name in names {
        if let Some(default) = broker_config(name).and_then(|def| def.default) {
            push(name, default, ConfigSource::DefaultConfig);
        }
    }
    synonyms
}

/// A broker synonym's value in the topic config's unit, canonical.
fn convert_synonym(topic: &TopicConfigDef, synonym: &str, value: &str) -> Option<String> {
    let unit = topic
        .broker_synonyms
        .iter()
        .find(|(name, _)| *name == synonym)
        .map_or(1, |(_, unit)| *unit);
    if unit <= 1 {
        return parse_type(&topic.def, value)
            .ok()
            .map(|v| v.to_kafka_string());
    }
    let amount: i64 = java_trim(value).parse().ok()?;
    let millis = amount.checked_mul(unit)?;
    // Kafka's `logRetentionTimeMillis`: any negative retention means "forever".
    let millis = if topic.def.name == "retention.ms" && millis < 0 {
        -1
    } else {
        millis
    };
    Some(millis.to_string())
}

struct Resolved {
    value: Option<String>,
    source: ConfigSource,
    synonyms: Vec<ConfigSynonym>,
}

fn resolve_topic(
    topic: &TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfigView,
) -> Resolved {
    let sensitive = topic.def.sensitive;
    let mut synonyms = Vec::new();
    if let Some(value) = overrides.get(topic.def.name) {
        synonyms.push(ConfigSynonym {
            name: topic.def.name.to_string(),
            value: (!sensitive).then(|| canonical(&topic.def, value)),
            source: ConfigSource::TopicConfig,
        });
    }
    synonyms.extend(broker_synonyms(
        topic.broker_synonyms.iter().map(|(name, _)| *name),
        broker,
        sensitive,
    ));
    let value = match overrides.get(topic.def.name) {
        Some(value) => Some(canonical(&topic.def, value)),
        None => {
            // The first broker-level entry that converts; a broken one (which start-up
            // validation should have refused) falls through to the next.
            let mut all = broker_synonyms(
                topic.broker_synonyms.iter().map(|(name, _)| *name),
                broker,
                false,
            )
            .into_iter();
            all.find_map(|s| convert_synonym(topic, &s.name, s.value.as_deref().unwrap_or("")))
                .or_else(|| topic.def.default.map(|d| canonical(&topic.def, d)))
        }
    };
    let source = synonyms
        .first()
        .map_or(ConfigSource::DefaultConfig, |s| s.source);
    Resolved {
        value,
        source,
        synonyms,
    }
}

/// Every topic config with its effective value: the topic override, else the broker's dynamic
/// then static synonyms (converted to the topic config's unit), else the default.
pub fn effective_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfigView,
) -> BTreeMap<String, String> {
    TOPIC_CONFIGS
        .iter()
        .filter_map(|topic| {
            resolve_topic(topic, overrides, broker)
                .value
                .map(|value| (topic.def.name.to_string(), value))
        })
        .collect()
}

/// DescribeConfigs for a topic.
pub fn describe_topic(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfigView,
    include_synonyms: bool,
) -> Vec<DescribedConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|topic| {
            let resolved = resolve_topic(topic, overrides, broker);
            DescribedConfig {
                name: topic.def.name.to_string(),
                value: if topic.def.sensitive {
                    None
                } else {
                    resolved.value
                },
                source: resolved.source,
                // Every topic config can be altered.
                read_only: false,
                sensitive: topic.def.sensitive,
                ty: topic.def.ty,
                doc: topic.def.doc.to_string(),
                synonyms: if include_synonyms {
                    resolved.synonyms
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

fn describe_broker_config(
    def: &ConfigDef,
    broker: &BrokerConfigView,
    include_synonyms: bool,
    only_dynamic_default: bool,
) -> DescribedConfig {
    let group = broker_synonym_group(def.name);
    let mut synonyms: Vec<ConfigSynonym> =
        broker_synonyms(group.iter().copied(), broker, def.sensitive)
            .into_iter()
            // Kafka lists a config's synonyms from its own name on: describing
            // log.retention.hours does not report log.retention.ms.
            .skip_while(|s| s.name != def.name)
            .collect();
    if only_dynamic_default {
        synonyms.retain(|s| s.source == ConfigSource::DynamicDefaultBrokerConfig);
    }
    let value = if only_dynamic_default {
        broker.dynamic_default.get(def.name).cloned()
    } else {
        broker.value(def.name)
    };
    DescribedConfig {
        name: def.name.to_string(),
        value: if def.sensitive {
            None
        } else {
            value.map(|v| canonical(def, &v))
        },
        source: synonyms
            .first()
            .map_or(ConfigSource::DefaultConfig, |s| s.source),
        read_only: def.read_only,
        sensitive: def.sensitive,
        ty: def.ty,
        doc: def.doc.to_string(),
        synonyms: if include_synonyms {
            synonyms
        } else {
            Vec::new()
        },
    }
}

/// DescribeConfigs for a broker.
pub fn describe_broker(broker: &BrokerConfigView, include_synonyms: bool) -> Vec<DescribedConfig> {
    let mut defs: Vec<&ConfigDef> = BROKER_CONFIGS.iter().collect();
    defs.sort_by_key(|def| def.name);
    defs.into_iter()
        .map(|def| describe_broker_config(def, broker, include_synonyms, false))
        .collect()
}

/// DescribeConfigs for the cluster-wide broker default (an empty broker name): only the configs
/// set as dynamic defaults, as Kafka answers it.
pub fn describe_broker_defaults(
    broker: &BrokerConfigView,
    include_synonyms: bool,
) -> Vec<DescribedConfig> {
    broker
        .dynamic_default
        .keys()
        .filter_map(|name| broker_config(name))
        .map(|def| describe_broker_config(def, broker, include_synonyms, true))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn broker_def(name: &str) -> &'static ConfigDef {
        broker_config(name).unwrap_or_else(|| panic!("no broker config {name}"))
    }

    fn topic_def(name: &str) -> &'static ConfigDef {
        &topic_config(name)
            .unwrap_or_else(|| panic!("no topic config {name}"))
            .def
    }

    #[test]
    fn tables_are_consistent() {
        // Sorted (binary search relies on it) and unique.
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(
                pair[0].def.name < pair[1].def.name,
                "{} / {}",
                pair[0].def.name,
                pair[1].def.name
            );
        }
        let mut names: Vec<_> = BROKER_CONFIGS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(len, names.len(), "duplicate broker config");

        // Every default passes its own validator; every synonym is a broker config with a
        // type its unit conversion can handle.
        for def in BROKER_CONFIGS
            .iter()
            .chain(TOPIC_CONFIGS.iter().map(|t| &t.def))
        {
            if let Some(default) = def.default {
                assert_eq!(validate(def, default), Ok(()), "default of {}", def.name);
            }
        }
        for topic in &TOPIC_CONFIGS {
            for (synonym, unit) in topic.broker_synonyms {
                let broker = broker_def(synonym);
                if *unit > 1 {
                    assert!(
                        matches!(broker.ty, ConfigType::Int | ConfigType::Long),
                        "{synonym}"
                    );
                }
            }
            // The last synonym with a default gives the topic default.
            let resolved = resolve_topic(topic, &BTreeMap::new(), &BrokerConfigView::default());
            assert_eq!(
                resolved.value.as_deref(),
                topic
                    .def
                    .default
                    .map(|d| canonical(&topic.def, d))
                    .as_deref(),
                "default of {}",
                topic.def.name
            );
        }
    }

    #[test]
    fn the_brief_lists_are_present() {
        for name in [
            "cleanup.policy",
            "compression.type",
            "compression.gzip.level",
            "compression.lz4.level",
            "compression.zstd.level",
            "delete.retention.ms",
            "file.delete.delay.ms",
            "flush.messages",
            "flush.ms",
            "follower.replication.throttled.replicas",
            "index.interval.bytes",
            "leader.replication.throttled.replicas",
            "local.retention.bytes",
            "local.retention.ms",
            "max.compaction.lag.ms",
            "max.message.bytes",
            "message.timestamp.after.max.ms",
            "message.timestamp.before.max.ms",
            "message.timestamp.type",
            "min.cleanable.dirty.ratio",
            "min.compaction.lag.ms",
            "min.insync.replicas",
            "preallocate",
            "remote.storage.enable",
            "retention.bytes",
            "retention.ms",
            "segment.bytes",
            "segment.index.bytes",
            "segment.jitter.ms",
            "segment.ms",
            "unclean.leader.election.enable",
        ] {
            assert!(topic_config(name).is_some(), "{name}");
        }
        for name in [
            "node.id",
            "process.roles",
            "controller.quorum.voters",
            "listeners",
            "advertised.listeners",
            "listener.security.protocol.map",
            "inter.broker.listener.name",
            "controller.listener.names",
            "log.dirs",
            "log.dir",
            "metadata.log.dir",
            "num.partitions",
            "default.replication.factor",
            "auto.create.topics.enable",
            "delete.topic.enable",
            "message.max.bytes",
            "socket.request.max.bytes",
            "socket.send.buffer.bytes",
            "socket.receive.buffer.bytes",
            "max.connections",
            "connections.max.idle.ms",
            "num.network.threads",
            "num.io.threads",
            "broker.rack",
            "log.retention.check.interval.ms",
            "log.flush.interval.messages",
            "log.flush.interval.ms",
            "log.flush.scheduler.interval.ms",
            "offsets.topic.num.partitions",
            "offsets.topic.replication.factor",
            "transaction.state.log.num.partitions",
            "transaction.state.log.replication.factor",
            "group.initial.rebalance.delay.ms",
            "group.min.session.timeout.ms",
            "group.max.session.timeout.ms",
            "min.insync.replicas",
            "compression.type",
            "unclean.leader.election.enable",
            "replica.lag.time.max.ms",
            "log.cleaner.enable",
            "log.cleaner.threads",
        ] {
            assert!(broker_config(name).is_some(), "{name}");
        }
    }

    #[test]
    fn kafka_defaults() {
        let default = |name: &str| topic_def(name).default.unwrap();
        assert_eq!(default("retention.ms"), "604800000");
        assert_eq!(default("segment.bytes"), "1073741824");
        assert_eq!(default("max.message.bytes"), "1048588");
        assert_eq!(default("message.timestamp.after.max.ms"), "3600000");
        assert_eq!(default("cleanup.policy"), "delete");
        assert_eq!(broker_def("num.partitions").default, Some("1"));
        assert_eq!(broker_def("log.retention.hours").default, Some("168"));
        assert_eq!(broker_def("log.retention.ms").default, None);
        assert_eq!(
            broker_def("offsets.topic.replication.factor").ty,
            ConfigType::Short
        );
        assert_eq!(broker_def("node.id").default, None);
    }

    #[test]
    fn numbers() {
        let partitions = broker_def("num.partitions");
        assert_eq!(validate(partitions, "3"), Ok(()));
        assert_eq!(validate(partitions, " 3 "), Ok(()));
        assert_eq!(validate(partitions, "+3"), Ok(()));
        assert_eq!(
            validate(partitions, "abc"),
            Err(
                "Invalid value abc for configuration num.partitions: Not a number of type INT"
                    .into()
            )
        );
        assert_eq!(
            validate(partitions, "0"),
            Err(
                "Invalid value 0 for configuration num.partitions: Value must be at least 1".into()
            )
        );
        assert_eq!(
            validate(partitions, "2147483648"),
            Err("Invalid value 2147483648 for configuration num.partitions: Not a number of type INT".into())
        );
        assert!(validate(partitions, "1.0").is_err());
        assert!(validate(partitions, "").is_err());

        let retention = topic_def("retention.ms");
        assert_eq!(validate(retention, "-1"), Ok(()));
        assert_eq!(validate(retention, "9223372036854775807"), Ok(()));
        assert_eq!(
            validate(retention, "-2"),
            Err(
                "Invalid value -2 for configuration retention.ms: Value must be at least -1".into()
            )
        );
        assert_eq!(
            validate(retention, "9223372036854775808"),
            Err("Invalid value 9223372036854775808 for configuration retention.ms: Not a number of type LONG".into())
        );

        let rf = broker_def("offsets.topic.replication.factor");
        assert_eq!(validate(rf, "32767"), Ok(()));
        assert_eq!(
            validate(rf, "32768"),
            Err("Invalid value 32768 for configuration offsets.topic.replication.factor: Not a number of type SHORT".into())
        );

        let lz4 = topic_def("compression.lz4.level");
        assert_eq!(validate(lz4, "17"), Ok(()));
        assert_eq!(
            validate(lz4, "18"),
            Err("Invalid value 18 for configuration compression.lz4.level: Value must be no more than 17".into())
        );
        assert_eq!(
            validate(lz4, "0"),
            Err(
                "Invalid value 0 for configuration compression.lz4.level: Value must be at least 1"
                    .into()
            )
        );

        let gzip = topic_def("compression.gzip.level");
        for ok in ["-1", "1", "9"] {
            assert_eq!(validate(gzip, ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate(gzip, "0"),
            Err("Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1".into())
        );
        assert!(validate(gzip, "10").is_err());

        let segment = topic_def("segment.bytes");
        assert_eq!(
            validate(segment, "1000"),
            Err("Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576".into())
        );
    }

    #[test]
    fn doubles() {
        let ratio = topic_def("min.cleanable.dirty.ratio");
        for ok in ["0", "0.5", "1", "1.0", " .25 ", "1e-1"] {
            assert_eq!(validate(ratio, ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate(ratio, "1.5"),
            Err("Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1".into())
        );
        assert_eq!(
            validate(ratio, "2"),
            Err("Invalid value 2.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1".into())
        );
        assert_eq!(
            validate(ratio, "-0.1"),
            Err("Invalid value -0.1 for configuration min.cleanable.dirty.ratio: Value must be at least 0".into())
        );
        assert_eq!(
            validate(ratio, "half"),
            Err("Invalid value half for configuration min.cleanable.dirty.ratio: Not a number of type DOUBLE".into())
        );
        assert!(validate(ratio, "inf").is_err());
        assert!(validate(ratio, "NaN").is_err());
        let io = broker_def("log.cleaner.io.max.bytes.per.second");
        assert_eq!(validate(io, "Infinity"), Ok(()));
        assert!(validate(io, "infinity").is_err());

        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
        assert_eq!(java_double(f64::MAX), "1.7976931348623157E308");
        assert_eq!(java_double(-0.0), "-0.0");
    }

    #[test]
    fn booleans() {
        let preallocate = topic_def("preallocate");
        for ok in ["true", "false", "TRUE", " False "] {
            assert_eq!(validate(preallocate, ok), Ok(()), "{ok}");
        }
        assert_eq!(
            validate(preallocate, "yes"),
            Err("Invalid value yes for configuration preallocate: Expected value to be either true or false".into())
        );
        assert_eq!(canonical(preallocate, " TRUE "), "true");
    }

    #[test]
    fn strings_and_lists() {
        let policy = topic_def("cleanup.policy");
        for ok in [
            "delete",
            "compact",
            "compact,delete",
            " compact , delete ",
            "",
        ] {
            assert_eq!(validate(policy, ok), Ok(()), "{ok:?}");
        }
        assert_eq!(
            validate(policy, "compact,remove"),
            Err("Invalid value remove for configuration cleanup.policy: String must be one of: compact, delete".into())
        );
        // A trailing comma leaves an empty element, which is no policy.
        assert_eq!(
            validate(policy, "compact,"),
            Err("Invalid value  for configuration cleanup.policy: String must be one of: compact, delete".into())
        );
        assert_eq!(canonical(policy, " compact , delete "), "compact,delete");

        let compression = topic_def("compression.type");
        assert_eq!(validate(compression, " zstd "), Ok(()));
        assert_eq!(
            validate(compression, "brotli"),
            Err("Invalid value brotli for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer".into())
        );
        // Case matters, as in Kafka.
        assert!(validate(compression, "ZSTD").is_err());
        assert_eq!(
            validate(topic_def("message.timestamp.type"), "createtime"),
            Err("Invalid value createtime for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime".into())
        );

        let roles = broker_def("process.roles");
        assert_eq!(validate(roles, "broker,controller"), Ok(()));
        assert!(validate(roles, "broker,zookeeper").is_err());
    }

    #[test]
    fn throttled_replicas() {
        let leader = topic_def("leader.replication.throttled.replicas");
        for ok in ["", "*", "0:1", "0:1,1:2", " 0:1 , 1:2 "] {
            assert_eq!(validate(leader, ok), Ok(()), "{ok:?}");
        }
        assert_eq!(
            validate(leader, "0:1,x"),
            Err("Invalid value [0:1, x] for configuration leader.replication.throttled.replicas: leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".into())
        );
        assert!(validate(leader, "*,0:1").is_err());
        assert!(validate(leader, "0:").is_err());
    }

    #[test]
    fn quorum_voters() {
        let voters = broker_def("controller.quorum.voters");
        assert_eq!(validate(voters, ""), Ok(()));
        assert_eq!(validate(voters, "1@localhost:9093,2@10.0.0.2:9093"), Ok(()));
        assert_eq!(validate(voters, "1@[::1]:9093"), Ok(()));
        assert_eq!(
            validate(voters, "localhost:9093"),
            Err("Invalid configuration value for controller.quorum.voters. Each entry should be in the form `{id}@{host}:{port}`.".into())
        );
        assert_eq!(
            validate(voters, "x@localhost:9093"),
            Err("Failed to parse voter ID as an integer from x".into())
        );
        assert!(
            validate(voters, "1@localhost")
                .unwrap_err()
                .contains("Failed to parse host name")
        );
        assert!(
            validate(voters, "1@localhost:port")
                .unwrap_err()
                .contains("Failed to parse host port")
        );
    }

    #[test]
    fn topic_config_validation() {
        assert_eq!(validate_topic_configs(&BTreeMap::new()), Ok(()));
        assert_eq!(
            validate_topic_configs(&map(&[
                ("retention.ms", "1000"),
                ("cleanup.policy", "compact")
            ])),
            Ok(())
        );
        let err = validate_topic_configs(&map(&[("retention.ms", "1"), ("retention.hours", "1")]))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        assert_eq!(
            err.message.as_deref(),
            Some("Unknown topic config name: retention.hours")
        );
        // Broker names are not topic configs.
        assert!(validate_topic_configs(&map(&[("log.retention.ms", "1")])).is_err());

        let err = validate_topic_configs(&map(&[("retention.ms", "soon")])).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        assert_eq!(
            err.message.as_deref(),
            Some("Invalid value soon for configuration retention.ms: Not a number of type LONG")
        );

        let err = validate_topic_configs(&map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.message.as_deref(),
            Some(
                "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)"
            )
        );

        let err = validate_topic_configs(&map(&[("remote.storage.enable", "true")])).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        assert!(
            err.message
                .unwrap()
                .starts_with("Tiered Storage functionality is disabled")
        );
        assert_eq!(
            validate_topic_configs(&map(&[("remote.storage.enable", "false")])),
            Ok(())
        );
    }

    #[test]
    fn broker_props_validation() {
        assert_eq!(
            validate_broker_props(&map(&[
                ("num.partitions", "3"),
                ("some.plugin.setting", "x")
            ])),
            Ok(())
        );
        let errors = validate_broker_props(&map(&[
            ("num.partitions", "0"),
            ("log.retention.hours", "x"),
        ]))
        .unwrap_err();
        assert_eq!(errors.len(), 2);
    }

    fn static_view(pairs: &[(&str, &str)]) -> BrokerConfigView {
        BrokerConfigView {
            static_props: map(pairs),
            ..Default::default()
        }
    }

    #[test]
    fn synonyms_with_unit_conversion() {
        let effective = |view: &BrokerConfigView| effective_topic_configs(&BTreeMap::new(), view);

        let defaults = effective(&BrokerConfigView::default());
        assert_eq!(defaults["retention.ms"], "604800000");
        assert_eq!(defaults["segment.ms"], "604800000");
        assert_eq!(defaults["flush.ms"], LONG_MAX);
        assert_eq!(defaults.len(), TOPIC_CONFIGS.len());

        assert_eq!(
            effective(&static_view(&[("log.retention.hours", "1")]))["retention.ms"],
            "3600000"
        );
        assert_eq!(
            effective(&static_view(&[("log.retention.minutes", "2")]))["retention.ms"],
            "120000"
        );
        // log.retention.ms beats minutes beats hours.
        let all = static_view(&[
            ("log.retention.ms", "5"),
            ("log.retention.minutes", "2"),
            ("log.retention.hours", "1"),
        ]);
        assert_eq!(effective(&all)["retention.ms"], "5");
        assert_eq!(
            effective(&static_view(&[
                ("log.retention.minutes", "2"),
                ("log.retention.hours", "1")
            ]))["retention.ms"],
            "120000"
        );
        // Negative retention is "forever".
        assert_eq!(
            effective(&static_view(&[("log.retention.hours", "-1")]))["retention.ms"],
            "-1"
        );
        assert_eq!(
            effective(&static_view(&[("log.roll.hours", "2")]))["segment.ms"],
            "7200000"
        );
        assert_eq!(
            effective(&static_view(&[("log.roll.jitter.hours", "1")]))["segment.jitter.ms"],
            "3600000"
        );
        assert_eq!(
            effective(&static_view(&[("log.flush.scheduler.interval.ms", "10")]))["flush.ms"],
            "10"
        );
        assert_eq!(
            effective(&static_view(&[("message.max.bytes", "2000")]))["max.message.bytes"],
            "2000"
        );
        assert_eq!(
            effective(&static_view(&[("log.segment.bytes", "2097152")]))["segment.bytes"],
            "2097152"
        );
        assert_eq!(
            effective(&static_view(&[("log.index.interval.bytes", "100")]))["index.interval.bytes"],
            "100"
        );
        assert_eq!(
            effective(&static_view(&[("log.cleanup.policy", "compact, delete")]))["cleanup.policy"],
            "compact,delete"
        );
        assert_eq!(
            effective(&static_view(&[(
                "log.message.timestamp.type",
                "LogAppendTime"
            )]))["message.timestamp.type"],
            "LogAppendTime"
        );

        // Dynamic beats dynamic default beats static; the topic override beats them all.
        let view = BrokerConfigView {
            static_props: map(&[("log.retention.ms", "1")]),
            dynamic_default: map(&[("log.retention.ms", "2")]),
            dynamic: map(&[("log.retention.ms", "3")]),
        };
        assert_eq!(effective(&view)["retention.ms"], "3");
        assert_eq!(
            effective_topic_configs(&map(&[("retention.ms", " 4 ")]), &view)["retention.ms"],
            "4"
        );
    }

    fn synonym(name: &str, value: &str, source: ConfigSource) -> ConfigSynonym {
        ConfigSynonym {
            name: name.to_string(),
            value: Some(value.to_string()),
            source,
        }
    }

    fn find<'a>(described: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
        described.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn describe_topic_sources_and_ordering() {
        let view = BrokerConfigView {
            static_props: map(&[
                ("log.retention.hours", "1"),
                ("log.segment.bytes", "2097152"),
            ]),
            dynamic_default: map(&[("log.retention.ms", "7000")]),
            dynamic: BTreeMap::new(),
        };
        let described = describe_topic(&map(&[("cleanup.policy", "compact")]), &view, true);
        assert_eq!(described.len(), TOPIC_CONFIGS.len());
        let names: Vec<_> = described.iter().map(|c| c.name.clone()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);

        let cleanup = find(&described, "cleanup.policy");
        assert_eq!(cleanup.value.as_deref(), Some("compact"));
        assert_eq!(cleanup.source, ConfigSource::TopicConfig);
        assert_eq!(cleanup.ty, ConfigType::List);
        assert!(!cleanup.read_only);
        assert_eq!(
            cleanup.synonyms,
            [
                synonym("cleanup.policy", "compact", ConfigSource::TopicConfig),
                synonym("log.cleanup.policy", "delete", ConfigSource::DefaultConfig),
            ]
        );

        let retention = find(&described, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("7000"));
        assert_eq!(retention.source, ConfigSource::DynamicDefaultBrokerConfig);
        assert_eq!(
            retention.synonyms,
            [
                synonym(
                    "log.retention.ms",
                    "7000",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                synonym("log.retention.hours", "1", ConfigSource::StaticBrokerConfig),
                synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );

        let segment = find(&described, "segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("2097152"));
        assert_eq!(segment.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(
            segment.synonyms.last().unwrap().source,
            ConfigSource::DefaultConfig
        );

        // A config without broker synonyms.
        let remote = find(&described, "remote.storage.enable");
        assert_eq!(remote.value.as_deref(), Some("false"));
        assert_eq!(remote.source, ConfigSource::DefaultConfig);
        assert!(remote.synonyms.is_empty());

        // Without synonyms asked for, none are sent; the source stays.
        let bare = describe_topic(
            &BTreeMap::new(),
            &static_view(&[("log.retention.hours", "1")]),
            false,
        );
        let retention = find(&bare, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("3600000"));
        assert_eq!(retention.source, ConfigSource::StaticBrokerConfig);
        assert!(retention.synonyms.is_empty());
    }

    #[test]
    fn describe_broker_sources() {
        let view = BrokerConfigView {
            static_props: map(&[("num.io.threads", "4"), ("log.retention.ms", "1000")]),
            dynamic_default: map(&[("num.io.threads", "6")]),
            dynamic: map(&[("num.io.threads", "16")]),
        };
        let described = describe_broker(&view, true);
        assert_eq!(described.len(), BROKER_CONFIGS.len());

        let io = find(&described, "num.io.threads");
        assert_eq!(io.value.as_deref(), Some("16"));
        assert_eq!(io.source, ConfigSource::DynamicBrokerConfig);
        assert!(!io.read_only);
        assert_eq!(
            io.synonyms,
            [
                synonym("num.io.threads", "16", ConfigSource::DynamicBrokerConfig),
                synonym(
                    "num.io.threads",
                    "6",
                    ConfigSource::DynamicDefaultBrokerConfig
                ),
                synonym("num.io.threads", "4", ConfigSource::StaticBrokerConfig),
                synonym("num.io.threads", "8", ConfigSource::DefaultConfig),
            ]
        );

        let ms = find(&described, "log.retention.ms");
        assert_eq!(ms.value.as_deref(), Some("1000"));
        assert_eq!(ms.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(
            ms.synonyms,
            [
                synonym("log.retention.ms", "1000", ConfigSource::StaticBrokerConfig),
                synonym("log.retention.hours", "168", ConfigSource::DefaultConfig),
            ]
        );
        // Describing a lower-priority synonym starts at its own name.
        let hours = find(&described, "log.retention.hours");
        assert_eq!(hours.value.as_deref(), Some("168"));
        assert_eq!(hours.source, ConfigSource::DefaultConfig);
        assert!(hours.read_only);
        assert_eq!(
            hours.synonyms,
            [synonym(
                "log.retention.hours",
                "168",
                ConfigSource::DefaultConfig
            )]
        );

        let secret = describe_broker(&static_view(&[("ssl.keystore.password", "hunter2")]), true);
        let secret = find(&secret, "ssl.keystore.password");
        assert!(secret.sensitive);
        assert_eq!(secret.ty, ConfigType::Password);
        assert_eq!(secret.value, None);
        assert_eq!(secret.source, ConfigSource::StaticBrokerConfig);
        assert_eq!(
            secret.synonyms,
            [ConfigSynonym {
                name: "ssl.keystore.password".into(),
                value: None,
                source: ConfigSource::StaticBrokerConfig,
            }]
        );

        let node = find(&described, "node.id");
        assert_eq!(node.value, None);
        assert_eq!(node.source, ConfigSource::DefaultConfig);
        assert!(node.synonyms.is_empty());

        let defaults = describe_broker_defaults(&view, true);
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].value.as_deref(), Some("6"));
        assert_eq!(defaults[0].source, ConfigSource::DynamicDefaultBrokerConfig);
        assert_eq!(
            defaults[0].synonyms,
            [synonym(
                "num.io.threads",
                "6",
                ConfigSource::DynamicDefaultBrokerConfig
            )]
        );
    }

    #[test]
    fn update_modes_follow_kafka() {
        use UpdateMode::*;
        for (name, mode) in [
            ("num.partitions", ReadOnly),
            ("log.retention.hours", ReadOnly),
            ("log.cleaner.enable", ReadOnly),
            ("node.id", ReadOnly),
            ("listeners", PerBroker),
            ("advertised.listeners", PerBroker),
            ("ssl.keystore.password", PerBroker),
            ("max.connections", ClusterWide),
            ("num.network.threads", ClusterWide),
            ("num.io.threads", ClusterWide),
            ("log.retention.ms", ClusterWide),
            ("log.segment.bytes", ClusterWide),
            ("log.cleaner.threads", ClusterWide),
            ("message.max.bytes", ClusterWide),
            ("log.flush.interval.ms", ClusterWide),
        ] {
            assert_eq!(broker_update_mode(name), Some(mode), "{name}");
        }
        assert_eq!(broker_update_mode("custom.setting"), None);
        // Every broker synonym a topic config falls back to first can be set dynamically, as
        // Kafka's DynamicLogConfig allows (the hours and minutes variants cannot).
        for topic in &TOPIC_CONFIGS {
            if let Some((primary, _)) = topic.broker_synonyms.first() {
                assert_eq!(
                    broker_update_mode(primary),
                    Some(ClusterWide),
                    "{primary} (for {})",
                    topic.def.name
                );
            }
        }
    }

    #[test]
    fn listener_prefixed_names() {
        assert_eq!(
            listener_base("listener.name.external.ssl.keystore.password"),
            Some("ssl.keystore.password")
        );
        assert_eq!(listener_base("listener.name.external"), None);
        assert_eq!(listener_base("ssl.keystore.password"), None);
        assert!(is_per_broker("listener.name.x.ssl.key.password"));
        assert!(!is_per_broker("listener.name.x.max.connections"));
        // The base name's definition checks the value.
        let configs = map(&[("listener.name.x.max.connections", "-1")]);
        assert_eq!(
            validate_dynamic_broker_configs(&configs, false)
                .unwrap_err()
                .message
                .as_deref(),
            Some("Invalid value -1 for configuration max.connections: Value must be at least 0")
        );
    }

    #[test]
    fn dynamic_validation_order() {
        // Read-only names are reported before bad values, and bad values before the level.
        let err = validate_dynamic_broker_configs(
            &map(&[
                ("num.partitions", "3"),
                ("num.io.threads", "x"),
                ("listeners", "PLAINTEXT://:1"),
            ]),
            false,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(
            err.message.as_deref(),
            Some("Cannot update these configs dynamically: Set(num.partitions)")
        );
        let err = validate_dynamic_broker_configs(
            &map(&[("num.io.threads", "x"), ("listeners", "PLAINTEXT://:1")]),
            false,
        )
        .unwrap_err();
        assert!(err.message.unwrap().starts_with("Invalid value x"));
        assert_eq!(
            validate_dynamic_broker_configs(&map(&[("listeners", "PLAINTEXT://:1")]), true),
            Ok(())
        );
        assert_eq!(
            validate_dynamic_broker_configs(&BTreeMap::new(), false),
            Ok(())
        );
    }

    #[test]
    fn stored_dynamic_configs_that_cannot_apply_are_left_out() {
        let stored = map(&[
            ("num.io.threads", "16"),
            ("num.partitions", "3"),
            ("log.segment.bytes", "tiny"),
            ("listeners", "PLAINTEXT://:9093"),
            ("ssl.key.password", "x"),
            ("custom.setting", "kept"),
        ]);
        assert_eq!(
            effective_dynamic_broker_configs(&stored, true),
            map(&[
                ("custom.setting", "kept"),
                ("listeners", "PLAINTEXT://:9093"),
                ("num.io.threads", "16"),
            ])
        );
        assert_eq!(
            effective_dynamic_broker_configs(&stored, false),
            map(&[("custom.setting", "kept"), ("num.io.threads", "16")])
        );
    }

    #[test]
    fn broker_view_from_an_image() {
        use crate::records::{ConfigRecord, MetadataRecord};
        let record = |resource: &str, name: &str, value: &str| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Broker,
                resource_name: resource.to_string(),
                name: name.to_string(),
                value: Some(value.to_string()),
            })
        };
        let image = MetadataImage::empty().apply(
            &[
                record("", "log.retention.ms", "2"),
                record("", "listeners", "PLAINTEXT://:1"),
                record("1", "log.retention.ms", "3"),
                record("2", "log.retention.ms", "4"),
            ],
            3,
        );
        let view = broker_config_view(&image, 1, map(&[("log.retention.ms", "1")]));
        assert_eq!(view.dynamic, map(&[("log.retention.ms", "3")]));
        // A per-broker config stored as a cluster default does not take effect.
        assert_eq!(view.dynamic_default, map(&[("log.retention.ms", "2")]));
        assert_eq!(view.static_props, map(&[("log.retention.ms", "1")]));
        assert_eq!(view.value("log.retention.ms").as_deref(), Some("3"));
        assert_eq!(
            effective_topic_configs(&BTreeMap::new(), &view)["retention.ms"],
            "3"
        );
        let other = broker_config_view(&image, 3, BTreeMap::new());
        assert!(other.dynamic.is_empty());
        assert_eq!(other.value("log.retention.ms").as_deref(), Some("2"));
    }

    #[test]
    fn broker_values() {
        let view = static_view(&[("num.partitions", "3")]);
        assert_eq!(view.value("num.partitions").as_deref(), Some("3"));
        assert_eq!(
            view.value("default.replication.factor").as_deref(),
            Some("1")
        );
        assert_eq!(view.value("node.id"), None);
        assert_eq!(view.value("no.such.config"), None);
    }
}
