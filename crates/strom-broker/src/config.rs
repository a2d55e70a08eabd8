//! The broker's static configuration: `server.properties` plus `--override key=value`, with
//! Kafka's property names. Known keys are validated against the shared definitions in
//! `strom_metadata::config` (refusing to start with a message naming the key and what is
//! accepted); unknown keys are kept and reported as warnings, as Kafka does.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use strom_metadata::config::{self as defs, BrokerConfigView};

/// Where strom's defaults differ from Kafka's, so that `strom server` with no arguments is a
/// working single node (see docs/differences.md).
const STROM_DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
    ("log.dirs", "./strom-data"),
    // Kafka's defaults (3, 3, 2) make internal topics impossible on one node; its single-node
    // example configuration sets these to 1, as strom does.
    ("offsets.topic.replication.factor", "1"),
    ("transaction.state.log.replication.factor", "1"),
    ("transaction.state.log.min.isr", "1"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// One `NAME://host:port` entry of `listeners` / `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Empty: all interfaces (bind) / this host's name (advertise).
    pub host: String,
    pub port: u16,
    pub security_protocol: String,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.name, self.host, self.port)
    }
}

impl Listener {
    /// The address to bind: an empty host binds every interface.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            self.host.trim_start_matches('[').trim_end_matches(']')
        };
        let ip: std::net::IpAddr = host.parse().or_else(|_| {
            // A host name: resolve it once at start-up.
            use std::net::ToSocketAddrs;
            (host, self.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .map(|a| a.ip())
                .ok_or_else(|| ConfigError::Invalid(format!("cannot resolve listener host {host}")))
        })?;
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// The validated static configuration of one node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Every property as given (file, then overrides), for DescribeConfigs.
    pub props: BTreeMap<String, String>,
    /// Keys not known to strom; logged as warnings at start-up.
    pub unknown_keys: Vec<String>,
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: usize,
    pub max_connections: usize,
    pub connections_max_idle_ms: u64,
    pub log_flush_scheduler_interval_ms: i64,
    pub log_flush_offset_checkpoint_interval_ms: i64,
    pub broker_rack: Option<String>,
}

impl ServerConfig {
    /// Reads `path` (Java properties format) if given, then applies `overrides` in order.
    pub fn load(path: Option<&Path>, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut props = BTreeMap::new();
        if let Some(path) = path {
            let file = std::fs::File::open(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let read = java_properties::read(std::io::BufReader::new(file)).map_err(|e| {
                ConfigError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            props.extend(read);
        }
        for (k, v) in overrides {
            props.insert(k.clone(), v.clone());
        }
        Self::from_props(props)
    }

    /// Validates `props` and builds the typed configuration.
    pub fn from_props(props: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut unknown_keys = Vec::new();
        for (key, value) in &props {
            match defs::broker_config(key) {
                Some(def) => defs::validate(def, value).map_err(ConfigError::Invalid)?,
                None => unknown_keys.push(key.clone()),
            }
        }
        let get = |key: &str| resolve(&props, key);
        let number = |key: &str| -> Result<i64, ConfigError> {
            let v = get(key).ok_or_else(|| ConfigError::Invalid(format!("{key} must be set")))?;
            v.trim().parse::<i64>().map_err(|_| {
                ConfigError::Invalid(format!(
                    "Invalid value {v} for configuration {key}: Not a number"
                ))
            })
        };
        let flag =
            |key: &str| -> bool { get(key).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) };

        let protocol_map =
            parse_protocol_map(&get("listener.security.protocol.map").unwrap_or_default())?;
        let listeners = parse_listeners(
            "listeners",
            &get("listeners").unwrap_or_default(),
            &protocol_map,
        )?;
        if listeners.is_empty() {
            return Err(ConfigError::Invalid(
                "listeners must name at least one listener".into(),
            ));
        }
        let advertised_listeners = match props.get("advertised.listeners") {
            Some(v) => parse_listeners("advertised.listeners", v, &protocol_map)?,
            None => listeners.clone(),
        };
        for l in &advertised_listeners {
            if !listeners.iter().any(|b| b.name == l.name) {
                return Err(ConfigError::Invalid(format!(
                    "advertised.listeners listener {} is not one of the listeners",
                    l.name
                )));
            }
        }

        let log_dirs: Vec<PathBuf> = match props.get("log.dirs").or(props.get("log.dir")) {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => vec![PathBuf::from(get("log.dirs").unwrap_or_default())],
        };
        if log_dirs.is_empty() {
            return Err(ConfigError::Invalid(
                "log.dirs must name at least one directory".into(),
            ));
        }
        let metadata_log_dir = props
            .get("metadata.log.dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| log_dirs[0].clone());

        let node_id = number("node.id")?;
        Ok(Self {
            unknown_keys,
            node_id: i32::try_from(node_id)
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ConfigError::Invalid(format!("Invalid value {node_id} for configuration node.id: Value must be at least 0")))?,
            listeners,
            advertised_listeners,
            log_dirs,
            metadata_log_dir,
            num_partitions: number("num.partitions")? as i32,
            default_replication_factor: number("default.replication.factor")? as i16,
            auto_create_topics_enable: flag("auto.create.topics.enable"),
            delete_topic_enable: flag("delete.topic.enable"),
            message_max_bytes: number("message.max.bytes")? as i32,
            socket_request_max_bytes: number("socket.request.max.bytes")? as usize,
            max_connections: number("max.connections")?.clamp(1, i64::from(u32::MAX)) as usize,
            connections_max_idle_ms: number("connections.max.idle.ms")?.max(0) as u64,
            log_flush_scheduler_interval_ms: number("log.flush.scheduler.interval.ms")?,
            log_flush_offset_checkpoint_interval_ms: number("log.flush.offset.checkpoint.interval.ms")?,
            broker_rack: props.get("broker.rack").cloned(),
            props,
        })
    }

    /// A property's value: as configured, else strom's default, else Kafka's.
    pub fn value(&self, key: &str) -> Option<String> {
        resolve(&self.props, key)
    }

    /// A numeric property (validated at start-up, so a parse failure means the key is not
    /// numeric: a programming error reported as `default`).
    pub fn number(&self, key: &str, default: i64) -> i64 {
        self.value(key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    /// The broker-level values topic configs fall back to, for config resolution.
    pub fn broker_view(&self) -> BrokerConfigView {
        let mut static_props = self.props.clone();
        for (k, v) in STROM_DEFAULTS {
            static_props
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
        BrokerConfigView {
            static_props,
            dynamic: BTreeMap::new(),
            dynamic_default: BTreeMap::new(),
        }
    }
}

/// A property's value: as configured, else strom's default, else Kafka's.
fn resolve(props: &BTreeMap<String, String>, key: &str) -> Option<String> {
    props
        .get(key)
        .cloned()
        .or_else(|| {
            STROM_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
        .or_else(|| {
            defs::broker_config(key)
                .and_then(|d| d.default)
                .map(str::to_string)
        })
}

fn parse_protocol_map(value: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            ConfigError::Invalid(format!(
                "Invalid value {value} for configuration listener.security.protocol.map: \
                 entries must look like NAME:PROTOCOL"
            ))
        })?;
        map.insert(name.trim().to_uppercase(), protocol.trim().to_uppercase());
    }
    Ok(map)
}

fn parse_listeners(
    key: &str,
    value: &str,
    protocol_map: &BTreeMap<String, String>,
) -> Result<Vec<Listener>, ConfigError> {
    let invalid = |why: String| {
        ConfigError::Invalid(format!(
            "Invalid value {value} for configuration {key}: {why}"
        ))
    };
    let mut out: Vec<Listener> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = entry
            .split_once("://")
            .ok_or_else(|| invalid(format!("listener {entry} must look like NAME://host:port")))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid(format!("listener {entry} has no port")))?;
        let port: u16 = port.parse().map_err(|_| {
            invalid(format!(
                "port of listener {entry} must be between 0 and 65535"
            ))
        })?;
        let name = name.to_uppercase();
        let security_protocol = protocol_map
            .get(&name)
            .cloned()
            .unwrap_or_else(|| name.clone());
        if security_protocol != "PLAINTEXT" {
            return Err(invalid(format!(
                "listener {name} uses security protocol {security_protocol}; only PLAINTEXT is supported so far"
            )));
        }
        if out.iter().any(|l| l.name == name) {
            return Err(invalid(format!(
                "listener name {name} appears more than once"
            )));
        }
        out.push(Listener {
            name,
            host: host.to_string(),
            port,
            security_protocol,
        });
    }
    Ok(out)
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

    #[test]
    fn listeners_parse_and_advertise_defaults_to_listeners() {
        let m = parse_protocol_map("PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT").unwrap();
        let l =
            parse_listeners("listeners", "PLAINTEXT://:9092, INTERNAL://127.0.0.1:0", &m).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].host, "");
        assert_eq!(l[1].port, 0);
        assert_eq!(l[0].bind_addr().unwrap().to_string(), "0.0.0.0:9092");
    }

    #[test]
    fn listener_errors_name_the_key() {
        let m = parse_protocol_map("PLAINTEXT:PLAINTEXT").unwrap();
        let e = parse_listeners("listeners", "PLAINTEXT://host:99999", &m).unwrap_err();
        assert!(e.to_string().contains("configuration listeners"), "{e}");
        let e = parse_listeners(
            "listeners",
            "SSL://host:9093",
            &parse_protocol_map("SSL:SSL").unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("only PLAINTEXT"), "{e}");
    }

    #[test]
    fn defaults_give_a_single_node() {
        let c = ServerConfig::from_props(BTreeMap::new()).unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
        assert_eq!(c.log_dirs, vec![PathBuf::from("./strom-data")]);
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.message_max_bytes, 1048588);
        assert_eq!(c.socket_request_max_bytes, 104857600);
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.number("offsets.topic.replication.factor", 3), 1);
        assert_eq!(c.number("offsets.topic.num.partitions", 0), 50);
        assert_eq!(c.number("group.initial.rebalance.delay.ms", 0), 3000);
    }

    #[test]
    fn invalid_values_refuse_to_start_and_unknown_keys_warn() {
        let e = ServerConfig::from_props(props(&[("num.partitions", "zero")])).unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = ServerConfig::from_props(props(&[("num.partitions", "0")])).unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let c = ServerConfig::from_props(props(&[("no.such.key", "1")])).unwrap();
        assert_eq!(c.unknown_keys, vec!["no.such.key".to_string()]);
    }
}
