//! Client configuration with Kafka's property names, units and defaults.
//!
//! One [`ClientConfig`] serves the producer, the consumer and the admin client (like
//! librdkafka's single configuration object); each reads the properties it cares about. It is
//! built either from properties — [`ClientConfig::from_properties`] or [`ClientConfig::set`],
//! which is what a `--command-config` file or `-X key=value` flags feed — or with the typed
//! `with_*` builder methods. [`Default`] holds Kafka's defaults and is the single table both
//! paths start from.
//!
//! Unknown keys are kept (see [`ClientConfig::extra`]) and logged, as Kafka's clients warn
//! about "supplied but isn't a known config": a properties file written for the Java client
//! must not be refused for a setting that does not apply to us. Settings that would silently
//! change semantics if ignored (a security protocol other than PLAINTEXT) are refused with an
//! error instead.
//!
//! Idempotence follows Java's `ProducerConfig` since Kafka 3.0: on by default; an explicit
//! `enable.idempotence=true` with `acks` other than `all`, `retries=0` or more than 5 requests
//! in flight is a configuration error, while the same settings without an explicit
//! `enable.idempotence` quietly turn idempotence off. A `transactional.id` needs idempotence:
//! with idempotence off (explicitly or by those settings) it is a configuration error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{ClientError, Result};

/// `acks`: how many replicas must have a produced batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker sends no response; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader has written the batch.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has it. Kafka's default since 3.0.
    All,
}

impl Acks {
    /// The value carried in the Produce request.
    pub fn wire_value(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Leader => 1,
            Self::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Self::None),
            "1" => Ok(Self::Leader),
            "all" | "-1" => Ok(Self::All),
            other => Err(format!("`{other}` is not one of 0, 1, all, -1")),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "0",
            Self::Leader => "1",
            Self::All => "all",
        })
    }
}

/// `compression.type` of produced batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    pub(crate) fn codec(self) -> strom_protocol::kafka_protocol::records::Compression {
        use strom_protocol::kafka_protocol::records::Compression;
        match self {
            Self::None => Compression::None,
            Self::Gzip => Compression::Gzip,
            Self::Snappy => Compression::Snappy,
            Self::Lz4 => Compression::Lz4,
            Self::Zstd => Compression::Zstd,
        }
    }
}

impl FromStr for CompressionType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "snappy" => Ok(Self::Snappy),
            "lz4" => Ok(Self::Lz4),
            "zstd" => Ok(Self::Zstd),
            other => Err(format!(
                "`{other}` is not one of none, gzip, snappy, lz4, zstd"
            )),
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        })
    }
}

/// `auto.offset.reset`: where a consumer goes when its position is missing or out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoOffsetReset {
    Earliest,
    Latest,
    /// Fail the poll with OFFSET_OUT_OF_RANGE instead of moving.
    None,
}

impl FromStr for AutoOffsetReset {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            "none" => Ok(Self::None),
            other => Err(format!("`{other}` is not one of earliest, latest, none")),
        }
    }
}

/// `isolation.level` of fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

impl IsolationLevel {
    pub(crate) fn wire_value(self) -> i8 {
        match self {
            Self::ReadUncommitted => 0,
            Self::ReadCommitted => 1,
        }
    }
}

impl FromStr for IsolationLevel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read_uncommitted" => Ok(Self::ReadUncommitted),
            "read_committed" => Ok(Self::ReadCommitted),
            other => Err(format!(
                "`{other}` is not one of read_uncommitted, read_committed"
            )),
        }
    }
}

/// `group.protocol`: how a subscribed consumer takes part in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup/Heartbeat with a client-side assignor.
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, the broker assigns.
    Consumer,
}

impl FromStr for GroupProtocol {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(Self::Classic),
            "consumer" => Ok(Self::Consumer),
            other => Err(format!("`{other}` is not one of classic, consumer")),
        }
    }
}

/// Settings of the classic protocol that Java refuses, set explicitly, with
/// `group.protocol=consumer` (`ConsumerConfig.CONSUMER_PROTOCOL_UNSUPPORTED_CONFIGS`, in its
/// order).
const CLASSIC_ONLY: [&str; 3] = [
    "partition.assignment.strategy",
    "heartbeat.interval.ms",
    "session.timeout.ms",
];

/// Client settings. See the module docs; every field is a Kafka property of the same name.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    bootstrap_servers: Vec<String>,
    client_id: String,
    request_timeout: Duration,
    socket_connection_setup_timeout: Duration,
    metadata_max_age: Duration,
    default_api_timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    retry_backoff_max: Duration,
    allow_auto_create_topics: bool,
    acks: Acks,
    linger: Duration,
    /// `partitioner.class` or [`ClientConfig::with_partitioner`]; `None`: Kafka's default.
    partitioner: Option<std::sync::Arc<dyn crate::producer::partitioner::Partitioner>>,
    batch_size: usize,
    compression: CompressionType,
    max_request_size: usize,
    /// `None` until set explicitly: Kafka then derives it from `linger.ms` and
    /// `request.timeout.ms` instead of refusing a combination the user never chose.
    delivery_timeout: Option<Duration>,
    max_block: Duration,
    max_in_flight_requests_per_connection: u32,
    /// `None` until set: the default (on) gives way to conflicting settings, an explicit
    /// `true` does not (see [`ClientConfig::idempotence`]).
    enable_idempotence: Option<bool>,
    /// `transactional.id`: makes the producer transactional (see `Producer::init_transactions`).
    transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long the coordinator lets a transaction stay open
    /// before aborting it.
    transaction_timeout: Duration,
    buffer_memory: u64,
    fetch_min_bytes: i32,
    fetch_max_wait: Duration,
    fetch_max_bytes: i32,
    max_partition_fetch_bytes: i32,
    auto_offset_reset: AutoOffsetReset,
    max_poll_records: usize,
    isolation_level: IsolationLevel,
    client_rack: String,
    group_id: Option<String>,
    group_instance_id: Option<String>,
    session_timeout: Duration,
    heartbeat_interval: Duration,
    max_poll_interval: Duration,
    enable_auto_commit: bool,
    auto_commit_interval: Duration,
    /// Assignor names (`range`, `roundrobin`, `sticky`, `cooperative-sticky`) in preference
    /// order; Java class names are accepted and mapped to these.
    partition_assignment_strategy: Vec<String>,
    group_protocol: GroupProtocol,
    /// `group.remote.assignor`: the broker's assignor a KIP-848 member asks for (`None`: the
    /// broker's default).
    group_remote_assignor: Option<String>,
    /// Which of [`CLASSIC_ONLY`] were set explicitly (Java checks the given properties, not
    /// the values).
    classic_only_set: BTreeSet<&'static str>,
    exclude_internal_topics: bool,
    extra: BTreeMap<String, String>,
}

/// Kafka's defaults (Apache Kafka 4.x clients).
impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: Vec::new(),
            client_id: String::new(),
            request_timeout: Duration::from_millis(30_000),
            socket_connection_setup_timeout: Duration::from_millis(10_000),
            metadata_max_age: Duration::from_millis(300_000),
            default_api_timeout: Duration::from_millis(60_000),
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1_000),
            allow_auto_create_topics: true,
            acks: Acks::All,
            // KIP-1030 raised the default from 0 to 5 in Kafka 4.0.
            linger: Duration::from_millis(5),
            partitioner: None,
            batch_size: 16_384,
            compression: CompressionType::None,
            max_request_size: 1_048_576,
            delivery_timeout: None,
            max_block: Duration::from_millis(60_000),
            max_in_flight_requests_per_connection: 5,
            enable_idempotence: None,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(60_000),
            buffer_memory: 33_554_432,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            auto_offset_reset: AutoOffsetReset::Latest,
            max_poll_records: 500,
            isolation_level: IsolationLevel::ReadUncommitted,
            client_rack: String::new(),
            group_id: None,
            group_instance_id: None,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            // Kafka 3.0+ (KIP-726): range first, so a group votes range and stays eager until
            // every member lists only cooperative-sticky.
            partition_assignment_strategy: vec!["range".into(), "cooperative-sticky".into()],
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
            classic_only_set: BTreeSet::new(),
            exclude_internal_topics: true,
            extra: BTreeMap::new(),
        }
    }
}

const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_millis(120_000);

/// The most requests an idempotent producer may have in flight per connection: the broker
/// remembers the last five batches of each producer per partition for deduplication.
pub(crate) const MAX_IN_FLIGHT_IDEMPOTENT: u32 = 5;

fn parse_int<T: TryFrom<i64>>(key: &str, value: &str, min: i64, max: i64) -> Result<T> {
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| ClientError::config(key, format!("`{value}` is not an integer")))?;
    if n < min || n > max {
        return Err(ClientError::config(
            key,
            format!("{n} is out of range [{min}, {max}]"),
        ));
    }
    T::try_from(n).map_err(|_| ClientError::config(key, format!("{n} is out of range")))
}

fn parse_ms(key: &str, value: &str, min: i64) -> Result<Duration> {
    let ms: u64 = parse_int(key, value, min.max(0), i64::MAX)?;
    Ok(Duration::from_millis(ms))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ClientError::config(
            key,
            format!("`{value}` is not true or false"),
        )),
    }
}

fn parse_enum<T: FromStr<Err = String>>(key: &str, value: &str) -> Result<T> {
    value.parse().map_err(|e| ClientError::config(key, e))
}

/// Splits `bootstrap.servers` into `host:port` entries, checking each has a numeric port.
fn parse_bootstrap(value: &str) -> Result<Vec<String>> {
    const KEY: &str = "bootstrap.servers";
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // An address may carry a listener prefix (`PLAINTEXT://host:port`), as Kafka accepts.
        let addr = entry.rsplit_once("://").map_or(entry, |(_, a)| a);
        let Some((host, port)) = addr.rsplit_once(':') else {
            return Err(ClientError::config(
                KEY,
                format!("`{entry}` is not host:port"),
            ));
        };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(ClientError::config(
                KEY,
                format!("`{entry}` is not host:port with a port in 1-65535"),
            ));
        }
        out.push(addr.to_string());
    }
    if out.is_empty() {
        return Err(ClientError::config(KEY, "no broker address given"));
    }
    Ok(out)
}

impl ClientConfig {
    /// Kafka's defaults with the given `bootstrap.servers` (comma-separated `host:port`).
    ///
    /// The addresses are checked when the client connects (or by [`ClientConfig::validate`]);
    /// use [`ClientConfig::from_properties`] to check them at once.
    pub fn new(bootstrap_servers: impl AsRef<str>) -> Self {
        let bootstrap_servers = bootstrap_servers
            .as_ref()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Self {
            bootstrap_servers,
            ..Self::default()
        }
    }

    /// Builds a configuration from Kafka properties and validates it.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self> {
        let mut config = Self::default();
        for (key, value) in props {
            config.set(key, value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one property by its Kafka name; the value is checked at once.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        match key {
            "bootstrap.servers" => self.bootstrap_servers = parse_bootstrap(value)?,
            "client.id" => self.client_id = value.to_string(),
            "request.timeout.ms" => self.request_timeout = parse_ms(key, value, 1)?,
            "socket.connection.setup.timeout.ms" => {
                self.socket_connection_setup_timeout = parse_ms(key, value, 1)?
            }
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value, 0)?,
            "default.api.timeout.ms" => self.default_api_timeout = parse_ms(key, value, 1)?,
            "retries" => self.retries = parse_int(key, value, 0, i32::MAX.into())?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value, 0)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(key, value, 0)?,
            "allow.auto.create.topics" => self.allow_auto_create_topics = parse_bool(key, value)?,
            "acks" => self.acks = parse_enum(key, value)?,
            "linger.ms" => self.linger = parse_ms(key, value, 0)?,
            "partitioner.class" => {
                self.partitioner = crate::producer::partitioner::by_class_name(value)
                    .map_err(|e| ClientError::config(key, e))?
            }
            "batch.size" => self.batch_size = parse_int(key, value, 0, i32::MAX.into())?,
            "compression.type" => self.compression = parse_enum(key, value)?,
            "max.request.size" => {
                self.max_request_size = parse_int(key, value, 1, i32::MAX.into())?
            }
            "delivery.timeout.ms" => self.delivery_timeout = Some(parse_ms(key, value, 1)?),
            "max.block.ms" => self.max_block = parse_ms(key, value, 0)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight_requests_per_connection =
                    parse_int(key, value, 1, i32::MAX.into())?
            }
            "buffer.memory" => self.buffer_memory = parse_int(key, value, 0, i64::MAX)?,
            "enable.idempotence" => self.enable_idempotence = Some(parse_bool(key, value)?),
            "transactional.id" => {
                self.transactional_id = Some(value.to_string()).filter(|v| !v.trim().is_empty())
            }
            "transaction.timeout.ms" => {
                self.transaction_timeout = parse_ms(key, value, 1)?;
                if self.transaction_timeout.as_millis() > i32::MAX as u128 {
                    return Err(ClientError::config(key, "larger than 2147483647"));
                }
            }
            "security.protocol" => {
                if !value.trim().eq_ignore_ascii_case("PLAINTEXT") {
                    return Err(ClientError::config(
                        key,
                        format!("`{value}` is not supported; only PLAINTEXT is"),
                    ));
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_int(key, value, 0, i32::MAX.into())?,
            "fetch.max.wait.ms" => {
                self.fetch_max_wait = parse_ms(key, value, 0)?;
                if self.fetch_max_wait.as_millis() > i32::MAX as u128 {
                    return Err(ClientError::config(key, "larger than 2147483647"));
                }
            }
            "fetch.max.bytes" => self.fetch_max_bytes = parse_int(key, value, 0, i32::MAX.into())?,
            "max.partition.fetch.bytes" => {
                self.max_partition_fetch_bytes = parse_int(key, value, 0, i32::MAX.into())?
            }
            "auto.offset.reset" => self.auto_offset_reset = parse_enum(key, value)?,
            "max.poll.records" => {
                self.max_poll_records = parse_int(key, value, 1, i32::MAX.into())?
            }
            "isolation.level" => self.isolation_level = parse_enum(key, value)?,
            "client.rack" => self.client_rack = value.to_string(),
            "group.id" => self.group_id = Some(value.to_string()).filter(|v| !v.trim().is_empty()),
            "group.instance.id" => {
                self.group_instance_id = Some(value.to_string()).filter(|v| !v.trim().is_empty())
            }
            "session.timeout.ms" => {
                self.session_timeout = parse_ms(key, value, 1)?;
                self.note_classic_only(key, value);
            }
            "heartbeat.interval.ms" => {
                self.heartbeat_interval = parse_ms(key, value, 1)?;
                self.note_classic_only(key, value);
            }
            "max.poll.interval.ms" => self.max_poll_interval = parse_ms(key, value, 1)?,
            "enable.auto.commit" => self.enable_auto_commit = parse_bool(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = parse_ms(key, value, 0)?,
            "partition.assignment.strategy" => {
                let mut names = Vec::new();
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let name = crate::consumer::assignor::builtin_name(item).ok_or_else(|| {
                        ClientError::config(
                            key,
                            format!(
                                "`{item}` is not one of range, roundrobin, sticky, \
                                 cooperative-sticky (custom assignors are passed to \
                                 Consumer::set_assignors)"
                            ),
                        )
                    })?;
                    names.push(name.to_string());
                }
                if names.is_empty() {
                    return Err(ClientError::config(key, "names no assignor"));
                }
                self.partition_assignment_strategy = names;
                self.note_classic_only(key, value);
            }
            "group.protocol" => self.group_protocol = parse_enum(key, value)?,
            "group.remote.assignor" => {
                self.group_remote_assignor =
                    Some(value.trim().to_string()).filter(|v| !v.is_empty())
            }
            "exclude.internal.topics" => self.exclude_internal_topics = parse_bool(key, value)?,
            // Java classes: serializers are given in code here (`TypedProducer`,
            // `ConsumerRecord::deserialize`), so Java properties files load without a warning.
            "key.serializer" | "value.serializer" | "key.deserializer" | "value.deserializer" => {
                tracing::debug!(key, "serializer classes are not read; see TypedProducer");
                self.extra.insert(key.to_string(), value.to_string());
            }
            _ => {
                tracing::warn!(key, "unknown client property is ignored");
                self.extra.insert(key.to_string(), value.to_string());
            }
        }
        Ok(self)
    }

    /// Notes an explicit setting of a classic-only property (blank values do not count, as
    /// in Java).
    fn note_classic_only(&mut self, key: &str, value: &str) {
        if let Some(k) = CLASSIC_ONLY.iter().find(|k| **k == key)
            && !value.trim().is_empty()
        {
            self.classic_only_set.insert(k);
        }
    }

    /// Checks the settings together; called by `from_properties` and before connecting.
    pub fn validate(&self) -> Result<()> {
        // Java's `ConsumerConfig.checkUnsupportedConfigs` texts.
        match self.group_protocol {
            GroupProtocol::Consumer => {
                let set: Vec<&str> = CLASSIC_ONLY
                    .iter()
                    .copied()
                    .filter(|k| self.classic_only_set.contains(k))
                    .collect();
                if !set.is_empty() {
                    return Err(ClientError::config(
                        "group.protocol",
                        format!(
                            "{} cannot be set when group.protocol=CONSUMER",
                            set.join(", ")
                        ),
                    ));
                }
            }
            GroupProtocol::Classic => {
                if self.group_remote_assignor.is_some() {
                    return Err(ClientError::config(
                        "group.protocol",
                        "group.remote.assignor cannot be set when group.protocol=CLASSIC",
                    ));
                }
            }
        }
        if self.bootstrap_servers.is_empty() {
            return Err(ClientError::config(
                "bootstrap.servers",
                "is required (host:port[,host:port...])",
            ));
        }
        parse_bootstrap(&self.bootstrap_servers.join(","))?;
        if self
            .delivery_timeout
            .is_some_and(|d| d < self.linger + self.request_timeout)
        {
            return Err(ClientError::config(
                "delivery.timeout.ms",
                "should be equal to or larger than linger.ms + request.timeout.ms",
            ));
        }
        if self.enable_idempotence == Some(true) {
            // Java's ConfigException texts, so that searches for them find Kafka's docs.
            if self.max_in_flight_requests_per_connection > MAX_IN_FLIGHT_IDEMPOTENT {
                return Err(ClientError::config(
                    "max.in.flight.requests.per.connection",
                    "Must set max.in.flight.requests.per.connection to at most 5 to use the \
                     idempotent producer.",
                ));
            }
            if self.retries == 0 {
                return Err(ClientError::config(
                    "retries",
                    "Must set retries to non-zero when using the idempotent producer.",
                ));
            }
            if self.acks != Acks::All {
                return Err(ClientError::config(
                    "acks",
                    "Must set acks to all in order to use the idempotent producer. Otherwise we \
                     cannot guarantee idempotence.",
                ));
            }
        }
        // Java's `ProducerConfig.postProcessAndValidateIdempotenceConfigs`, after the checks
        // above (which may have turned idempotence off).
        if self.transactional_id.is_some() && !self.idempotence() {
            return Err(ClientError::config(
                "transactional.id",
                "Cannot set a transactional.id without also enabling idempotence.",
            ));
        }
        if self.retry_backoff_max < self.retry_backoff {
            return Err(ClientError::config(
                "retry.backoff.max.ms",
                "must not be smaller than retry.backoff.ms",
            ));
        }
        Ok(())
    }

    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }
    pub fn with_metadata_max_age(mut self, t: Duration) -> Self {
        self.metadata_max_age = t;
        self
    }
    pub fn with_default_api_timeout(mut self, t: Duration) -> Self {
        self.default_api_timeout = t;
        self
    }
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    pub fn with_retry_backoff(mut self, backoff: Duration, max: Duration) -> Self {
        self.retry_backoff = backoff;
        self.retry_backoff_max = max;
        self
    }
    pub fn with_allow_auto_create_topics(mut self, allow: bool) -> Self {
        self.allow_auto_create_topics = allow;
        self
    }
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }
    /// Partitions records sent without a partition with `partitioner` instead of Kafka's
    /// default (murmur2 of the key, sticky without one).
    pub fn with_partitioner(
        mut self,
        partitioner: std::sync::Arc<dyn crate::producer::partitioner::Partitioner>,
    ) -> Self {
        self.partitioner = Some(partitioner);
        self
    }
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }
    pub fn with_batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }
    pub fn with_compression(mut self, compression: CompressionType) -> Self {
        self.compression = compression;
        self
    }
    pub fn with_max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }
    pub fn with_delivery_timeout(mut self, t: Duration) -> Self {
        self.delivery_timeout = Some(t);
        self
    }
    pub fn with_max_block(mut self, t: Duration) -> Self {
        self.max_block = t;
        self
    }
    /// `enable.idempotence`, set explicitly (checked against `acks`, `retries` and
    /// `max.in.flight.requests.per.connection` by [`ClientConfig::validate`]).
    pub fn with_idempotence(mut self, enabled: bool) -> Self {
        self.enable_idempotence = Some(enabled);
        self
    }
    /// `transactional.id`: the producer becomes transactional (idempotence is required).
    pub fn with_transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into()).filter(|v| !v.trim().is_empty());
        self
    }
    /// `transaction.timeout.ms`.
    pub fn with_transaction_timeout(mut self, t: Duration) -> Self {
        self.transaction_timeout = t;
        self
    }
    pub fn with_max_in_flight_requests_per_connection(mut self, n: u32) -> Self {
        self.max_in_flight_requests_per_connection = n.max(1);
        self
    }
    pub fn with_buffer_memory(mut self, bytes: u64) -> Self {
        self.buffer_memory = bytes;
        self
    }
    pub fn with_fetch_min_bytes(mut self, bytes: i32) -> Self {
        self.fetch_min_bytes = bytes;
        self
    }
    pub fn with_fetch_max_wait(mut self, t: Duration) -> Self {
        self.fetch_max_wait = t;
        self
    }
    pub fn with_fetch_max_bytes(mut self, bytes: i32) -> Self {
        self.fetch_max_bytes = bytes;
        self
    }
    pub fn with_max_partition_fetch_bytes(mut self, bytes: i32) -> Self {
        self.max_partition_fetch_bytes = bytes;
        self
    }
    pub fn with_auto_offset_reset(mut self, reset: AutoOffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }
    pub fn with_max_poll_records(mut self, n: usize) -> Self {
        self.max_poll_records = n.max(1);
        self
    }
    pub fn with_isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = level;
        self
    }

    pub fn bootstrap_servers(&self) -> &[String] {
        &self.bootstrap_servers
    }
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    pub fn socket_connection_setup_timeout(&self) -> Duration {
        self.socket_connection_setup_timeout
    }
    pub fn metadata_max_age(&self) -> Duration {
        self.metadata_max_age
    }
    pub fn default_api_timeout(&self) -> Duration {
        self.default_api_timeout
    }
    pub fn retries(&self) -> u32 {
        self.retries
    }
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }
    pub fn retry_backoff_max(&self) -> Duration {
        self.retry_backoff_max
    }
    pub fn allow_auto_create_topics(&self) -> bool {
        self.allow_auto_create_topics
    }
    pub fn acks(&self) -> Acks {
        self.acks
    }
    pub fn partitioner(
        &self,
    ) -> Option<&std::sync::Arc<dyn crate::producer::partitioner::Partitioner>> {
        self.partitioner.as_ref()
    }
    pub fn linger(&self) -> Duration {
        self.linger
    }
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    pub fn compression(&self) -> CompressionType {
        self.compression
    }
    pub fn max_request_size(&self) -> usize {
        self.max_request_size
    }
    /// `delivery.timeout.ms`, or Kafka's default raised to `linger.ms + request.timeout.ms`
    /// when not set explicitly.
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
            .unwrap_or_else(|| DEFAULT_DELIVERY_TIMEOUT.max(self.linger + self.request_timeout))
    }
    pub fn max_block(&self) -> Duration {
        self.max_block
    }
    pub fn max_in_flight_requests_per_connection(&self) -> u32 {
        self.max_in_flight_requests_per_connection
    }
    /// `buffer.memory`: bytes of records the producer holds before `send` waits (up to
    /// `max.block.ms`) for acknowledgements to free room.
    pub fn buffer_memory(&self) -> u64 {
        self.buffer_memory
    }
    /// Whether the producer is idempotent: `enable.idempotence` when set, else on unless
    /// `acks`, `retries` or `max.in.flight.requests.per.connection` conflict (Java's rule).
    pub fn idempotence(&self) -> bool {
        self.enable_idempotence.unwrap_or(
            self.acks == Acks::All
                && self.retries > 0
                && self.max_in_flight_requests_per_connection <= MAX_IN_FLIGHT_IDEMPOTENT,
        )
    }
    /// `transactional.id`, when the producer is transactional.
    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }
    /// `transaction.timeout.ms` (default 60 s).
    pub fn transaction_timeout(&self) -> Duration {
        self.transaction_timeout
    }
    pub fn fetch_min_bytes(&self) -> i32 {
        self.fetch_min_bytes
    }
    pub fn fetch_max_wait(&self) -> Duration {
        self.fetch_max_wait
    }
    pub fn fetch_max_bytes(&self) -> i32 {
        self.fetch_max_bytes
    }
    pub fn max_partition_fetch_bytes(&self) -> i32 {
        self.max_partition_fetch_bytes
    }
    pub fn auto_offset_reset(&self) -> AutoOffsetReset {
        self.auto_offset_reset
    }
    pub fn max_poll_records(&self) -> usize {
        self.max_poll_records
    }
    pub fn isolation_level(&self) -> IsolationLevel {
        self.isolation_level
    }
    pub fn client_rack(&self) -> &str {
        &self.client_rack
    }
    /// Properties this client does not know, kept as given.
    pub fn with_group_id(mut self, group: impl Into<String>) -> Self {
        self.group_id = Some(group.into());
        self
    }
    pub fn with_group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }
    pub fn with_session_timeout(mut self, t: Duration) -> Self {
        self.session_timeout = t;
        self.classic_only_set.insert("session.timeout.ms");
        self
    }
    pub fn with_heartbeat_interval(mut self, t: Duration) -> Self {
        self.heartbeat_interval = t;
        self.classic_only_set.insert("heartbeat.interval.ms");
        self
    }
    pub fn with_max_poll_interval(mut self, t: Duration) -> Self {
        self.max_poll_interval = t;
        self
    }
    pub fn with_enable_auto_commit(mut self, enabled: bool) -> Self {
        self.enable_auto_commit = enabled;
        self
    }
    pub fn with_auto_commit_interval(mut self, t: Duration) -> Self {
        self.auto_commit_interval = t;
        self
    }
    /// Assignor names in preference order (see `partition.assignment.strategy`).
    pub fn with_partition_assignment_strategy(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.partition_assignment_strategy = names.into_iter().map(Into::into).collect();
        self.classic_only_set
            .insert("partition.assignment.strategy");
        self
    }
    /// `group.protocol`; with [`GroupProtocol::Consumer`] the classic-only settings
    /// (`partition.assignment.strategy`, `session.timeout.ms`, `heartbeat.interval.ms`) must
    /// not be set.
    pub fn with_group_protocol(mut self, protocol: GroupProtocol) -> Self {
        self.group_protocol = protocol;
        self
    }
    /// `group.remote.assignor` (KIP-848 only): `uniform` or `range` on strom's brokers.
    pub fn with_group_remote_assignor(mut self, name: impl Into<String>) -> Self {
        self.group_remote_assignor = Some(name.into()).filter(|n| !n.trim().is_empty());
        self
    }
    pub fn group_protocol(&self) -> GroupProtocol {
        self.group_protocol
    }
    pub fn group_remote_assignor(&self) -> Option<&str> {
        self.group_remote_assignor.as_deref()
    }

    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }
    pub fn group_instance_id(&self) -> Option<&str> {
        self.group_instance_id.as_deref()
    }
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }
    pub fn max_poll_interval(&self) -> Duration {
        self.max_poll_interval
    }
    pub fn enable_auto_commit(&self) -> bool {
        self.enable_auto_commit
    }
    pub fn auto_commit_interval(&self) -> Duration {
        self.auto_commit_interval
    }
    pub fn partition_assignment_strategy(&self) -> &[String] {
        &self.partition_assignment_strategy
    }
    pub fn exclude_internal_topics(&self) -> bool {
        self.exclude_internal_topics
    }

    pub fn extra(&self) -> &BTreeMap<String, String> {
        &self.extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        match ClientConfig::from_properties(&props(pairs)) {
            Ok(c) => panic!("accepted {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = ClientConfig::from_properties(&props(&[("bootstrap.servers", "a:9092")])).unwrap();
        assert_eq!(c.bootstrap_servers(), ["a:9092"]);
        assert_eq!(c.request_timeout(), Duration::from_secs(30));
        assert_eq!(c.acks(), Acks::All);
        assert_eq!(c.linger(), Duration::from_millis(5));
        assert_eq!(c.batch_size(), 16_384);
        assert_eq!(c.max_request_size(), 1_048_576);
        assert_eq!(c.retries(), 2_147_483_647);
        assert_eq!(c.delivery_timeout(), Duration::from_secs(120));
        assert_eq!(c.fetch_min_bytes(), 1);
        assert_eq!(c.fetch_max_wait(), Duration::from_millis(500));
        assert_eq!(c.fetch_max_bytes(), 52_428_800);
        assert_eq!(c.max_partition_fetch_bytes(), 1_048_576);
        assert_eq!(c.auto_offset_reset(), AutoOffsetReset::Latest);
        assert_eq!(c.compression(), CompressionType::None);
        assert_eq!(c.group_id(), None);
        assert_eq!(c.session_timeout(), Duration::from_secs(45));
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(3));
        assert_eq!(c.max_poll_interval(), Duration::from_secs(300));
        assert!(c.enable_auto_commit());
        assert_eq!(c.auto_commit_interval(), Duration::from_secs(5));
        assert_eq!(
            c.partition_assignment_strategy(),
            ["range", "cooperative-sticky"]
        );
    }

    #[test]
    fn assignment_strategies_take_short_and_java_names() {
        let c = ClientConfig::from_properties(&props(&[
            ("bootstrap.servers", "a:9092"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor, roundrobin",
            ),
        ]))
        .unwrap();
        assert_eq!(
            c.partition_assignment_strategy(),
            ["cooperative-sticky", "roundrobin"]
        );
        assert!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("partition.assignment.strategy", "fancy")
            ])
            .contains("partition.assignment.strategy")
        );
        assert!(
            err(&[("bootstrap.servers", "h:1"), ("group.protocol", "share")])
                .contains("classic, consumer")
        );
    }

    #[test]
    fn the_consumer_protocol_refuses_classic_settings_as_java_does() {
        let c = ClientConfig::from_properties(&props(&[
            ("bootstrap.servers", "h:1"),
            ("group.protocol", "CONSUMER"),
            ("group.remote.assignor", "range"),
        ]))
        .unwrap();
        assert_eq!(c.group_protocol(), GroupProtocol::Consumer);
        assert_eq!(c.group_remote_assignor(), Some("range"));
        assert_eq!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("group.protocol", "consumer"),
                ("session.timeout.ms", "10000"),
                ("partition.assignment.strategy", "range"),
            ]),
            "invalid configuration `group.protocol`: partition.assignment.strategy, \
             session.timeout.ms cannot be set when group.protocol=CONSUMER"
        );
        assert_eq!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("group.remote.assignor", "uniform"),
            ]),
            "invalid configuration `group.protocol`: group.remote.assignor cannot be set when \
             group.protocol=CLASSIC"
        );
        let built = ClientConfig::new("h:1")
            .with_heartbeat_interval(Duration::from_secs(1))
            .with_group_protocol(GroupProtocol::Consumer);
        assert!(built.validate().is_err());
    }

    #[test]
    fn values_parse() {
        let c = ClientConfig::from_properties(&props(&[
            ("bootstrap.servers", "PLAINTEXT://h1:1, h2:2,[::1]:3"),
            ("acks", "-1"),
            ("compression.type", "ZSTD"),
            ("linger.ms", "0"),
            ("auto.offset.reset", "earliest"),
            ("enable.idempotence", "false"),
            ("some.unknown.key", "x"),
        ]))
        .unwrap();
        assert_eq!(c.bootstrap_servers(), ["h1:1", "h2:2", "[::1]:3"]);
        assert_eq!(c.acks(), Acks::All);
        assert_eq!(c.compression(), CompressionType::Zstd);
        assert_eq!(c.linger(), Duration::ZERO);
        assert_eq!(c.auto_offset_reset(), AutoOffsetReset::Earliest);
        assert_eq!(
            c.extra().get("some.unknown.key").map(String::as_str),
            Some("x")
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            err(&[]),
            "invalid configuration `bootstrap.servers`: is required (host:port[,host:port...])"
        );
        assert_eq!(
            err(&[("bootstrap.servers", "nohost")]),
            "invalid configuration `bootstrap.servers`: `nohost` is not host:port"
        );
        assert!(err(&[("bootstrap.servers", "h:99999")]).contains("port in 1-65535"));
        assert_eq!(
            err(&[("bootstrap.servers", "h:1"), ("acks", "2")]),
            "invalid configuration `acks`: `2` is not one of 0, 1, all, -1"
        );
        assert_eq!(
            err(&[("bootstrap.servers", "h:1"), ("linger.ms", "soon")]),
            "invalid configuration `linger.ms`: `soon` is not an integer"
        );
        assert_eq!(
            err(&[("bootstrap.servers", "h:1"), ("retries", "-1")]),
            "invalid configuration `retries`: -1 is out of range [0, 2147483647]"
        );
        assert!(
            err(&[("bootstrap.servers", "h:1"), ("compression.type", "brotli")])
                .starts_with("invalid configuration `compression.type`")
        );
        assert!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("allow.auto.create.topics", "yes")
            ])
            .contains("`yes` is not true or false")
        );
        assert_eq!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("enable.idempotence", "true"),
                ("acks", "1")
            ]),
            "invalid configuration `acks`: Must set acks to all in order to use the idempotent \
             producer. Otherwise we cannot guarantee idempotence."
        );
        assert!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("enable.idempotence", "true"),
                ("retries", "0")
            ])
            .starts_with("invalid configuration `retries`: Must set retries to non-zero")
        );
        assert!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("enable.idempotence", "true"),
                ("max.in.flight.requests.per.connection", "6")
            ])
            .contains("at most 5")
        );
        assert!(
            err(&[("bootstrap.servers", "h:1"), ("security.protocol", "SSL")])
                .contains("only PLAINTEXT")
        );
        assert!(
            err(&[
                ("bootstrap.servers", "h:1"),
                ("delivery.timeout.ms", "1000"),
                ("request.timeout.ms", "30000"),
            ])
            .starts_with("invalid configuration `delivery.timeout.ms`")
        );
    }

    #[test]
    fn idempotence_is_on_by_default_and_yields_to_conflicting_settings() {
        let c = |pairs: &[(&str, &str)]| {
            let mut all = vec![("bootstrap.servers", "h:1")];
            all.extend_from_slice(pairs);
            ClientConfig::from_properties(&props(&all)).unwrap()
        };
        assert!(c(&[]).idempotence());
        assert!(!c(&[("acks", "1")]).idempotence());
        assert!(!c(&[("retries", "0")]).idempotence());
        assert!(!c(&[("max.in.flight.requests.per.connection", "6")]).idempotence());
        assert!(!c(&[("enable.idempotence", "false")]).idempotence());
        assert!(c(&[("enable.idempotence", "true"), ("acks", "all")]).idempotence());
    }

    #[test]
    fn a_transactional_id_needs_idempotence() {
        let base = [("bootstrap.servers", "h:1"), ("transactional.id", "tx-1")];
        let c = ClientConfig::from_properties(&props(&base)).unwrap();
        assert_eq!(c.transactional_id(), Some("tx-1"));
        assert!(c.idempotence());
        assert_eq!(c.transaction_timeout(), Duration::from_secs(60));
        let with = |extra: (&'static str, &'static str)| {
            let mut all = base.to_vec();
            all.push(extra);
            err(&all)
        };
        let refused = "invalid configuration `transactional.id`: Cannot set a transactional.id \
                       without also enabling idempotence.";
        assert_eq!(with(("enable.idempotence", "false")), refused);
        // Idempotence turned off implicitly by acks=1 is refused the same way (Java's rule).
        assert_eq!(with(("acks", "1")), refused);
        let c = ClientConfig::from_properties(&props(&[
            ("bootstrap.servers", "h:1"),
            ("transaction.timeout.ms", "5000"),
        ]))
        .unwrap();
        assert_eq!(c.transaction_timeout(), Duration::from_secs(5));
        assert_eq!(c.transactional_id(), None);
        let built = ClientConfig::new("h:1")
            .with_transactional_id("tx")
            .with_idempotence(false);
        assert!(built.validate().is_err());
    }

    #[test]
    fn delivery_timeout_follows_request_timeout_when_unset() {
        let c = ClientConfig::new("h:1").with_request_timeout(Duration::from_secs(200));
        assert_eq!(c.delivery_timeout(), Duration::from_millis(200_005));
        assert!(c.validate().is_ok());
    }
}
