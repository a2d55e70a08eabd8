//! `meta.properties`: the identity of a log dir (cluster id, node id, directory id), in Kafka's
//! Java-properties format so that Kafka's `kafka-storage` tool and operators read it as usual.
//!
//! ```text
//! #Written by strom
//! version=1
//! cluster.id=MkU3OEVBNTcwNTJENDM2Qk
//! node.id=1
//! directory.id=J8aAPcfLQt2bqs1JT_rMgQ
//! ```
//!
//! KRaft writes `version=1` with `node.id`; the older ZooKeeper-era `version=0` names the node
//! `broker.id`, which is accepted when reading.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::StorageError;
use crate::checkpoint::write_atomically;

/// The file name inside each log dir.
pub const META_PROPERTIES: &str = "meta.properties";

/// The contents of a log dir's `meta.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `version`: 1 for KRaft.
    pub version: u32,
    /// `cluster.id`.
    pub cluster_id: String,
    /// `node.id` (`broker.id` in version 0).
    pub node_id: i32,
    /// `directory.id`: Kafka's topic-id style string naming this log dir (KIP-858).
    pub directory_id: Option<String>,
}

impl MetaProperties {
    fn to_properties(&self) -> String {
        let node_key = if self.version == 0 {
            "broker.id"
        } else {
            "node.id"
        };
        let mut text = String::from("#Written by strom\n");
        text.push_str(&format!("version={}\n", self.version));
        text.push_str(&format!("cluster.id={}\n", escape(&self.cluster_id)));
        text.push_str(&format!("{node_key}={}\n", self.node_id));
        if let Some(id) = &self.directory_id {
            text.push_str(&format!("directory.id={}\n", escape(id)));
        }
        text
    }

    fn from_properties(props: &HashMap<String, String>) -> Result<Self, String> {
        let version: u32 = props
            .get("version")
            .ok_or("missing version")?
            .parse()
            .map_err(|_| "malformed version")?;
        let node_key = if version == 0 { "broker.id" } else { "node.id" };
        let cluster_id = props.get("cluster.id").ok_or("missing cluster.id")?.clone();
        let node_id = props
            .get(node_key)
            .ok_or_else(|| format!("missing {node_key}"))?
            .parse()
            .map_err(|_| format!("malformed {node_key}"))?;
        Ok(Self {
            version,
            cluster_id,
            node_id,
            directory_id: props.get("directory.id").cloned(),
        })
    }
}

/// Reads `<dir>/meta.properties`; `None` when the file does not exist (a fresh dir).
pub fn read(dir: &Path) -> Result<Option<MetaProperties>, StorageError> {
    let path = dir.join(META_PROPERTIES);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(&path, e)),
    };
    MetaProperties::from_properties(&parse_properties(&text))
        .map(Some)
        .map_err(|reason| StorageError::Corrupt {
            path: path.display().to_string(),
            reason,
        })
}

/// Writes `<dir>/meta.properties` atomically (temp file, fsync, rename, fsync dir).
pub fn write(dir: &Path, props: &MetaProperties) -> Result<(), StorageError> {
    write_atomically(&dir.join(META_PROPERTIES), props.to_properties().as_bytes())
}

/// The subset of `java.util.Properties.load` that Kafka's files use: `#`/`!` comments, `=`, `:`
/// or whitespace as separator, surrounding whitespace trimmed, backslash escapes, and
/// line continuations.
fn parse_properties(text: &str) -> HashMap<String, String> {
    let mut props = HashMap::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (key, value) = split_key_value(&logical);
        props.insert(unescape(key), unescape(value));
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_key_value(&logical);
        props.insert(unescape(key), unescape(value));
    }
    props
}

fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (line[..i].trim_end(), line[i + 1..].trim_start()),
            c if c.is_whitespace() => {
                let rest = line[i..].trim_start();
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map(str::trim_start)
                    .unwrap_or(rest);
                return (&line[..i], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let props = MetaProperties {
            version: 1,
            cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(),
            node_id: 3,
            directory_id: Some("J8aAPcfLQt2bqs1JT_rMgQ".into()),
        };
        write(dir.path(), &props).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(props.clone()));
        let text = fs::read_to_string(dir.path().join(META_PROPERTIES)).unwrap();
        assert!(text.contains("node.id=3\n"), "{text}");
        assert!(
            text.contains("cluster.id=MkU3OEVBNTcwNTJENDM2Qk\n"),
            "{text}"
        );

        let without_dir_id = MetaProperties {
            directory_id: None,
            ..props
        };
        write(dir.path(), &without_dir_id).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(without_dir_id));
    }

    #[test]
    fn reads_the_file_kafka_storage_format_writes() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(META_PROPERTIES),
            "#\n#Tue Jan 02 10:00:00 UTC 2024\nnode.id=1\ndirectory.id=Yp2vWkTfRkqQd2vCl8OnHg\n\
             version=1\ncluster.id=4L6g3nShT-eMCtK--X86sw\n",
        )
        .unwrap();
        assert_eq!(
            read(dir.path()).unwrap(),
            Some(MetaProperties {
                version: 1,
                cluster_id: "4L6g3nShT-eMCtK--X86sw".into(),
                node_id: 1,
                directory_id: Some("Yp2vWkTfRkqQd2vCl8OnHg".into()),
            })
        );
    }

    #[test]
    fn version_zero_uses_broker_id() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(META_PROPERTIES),
            "version = 0\nbroker.id : 7\ncluster.id=abc\n",
        )
        .unwrap();
        let props = read(dir.path()).unwrap().unwrap();
        assert_eq!((props.version, props.node_id), (0, 7));
        write(dir.path(), &props).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(props));
    }

    #[test]
    fn missing_keys_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(META_PROPERTIES), "version=1\nnode.id=1\n").unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(StorageError::Corrupt { .. })
        ));
        fs::write(
            dir.path().join(META_PROPERTIES),
            "version=1\nnode.id=x\ncluster.id=a\n",
        )
        .unwrap();
        assert!(read(dir.path()).is_err());
    }

    #[test]
    fn escapes_round_trip() {
        let text = "key\\ one = va\\=lue\\\n   continued\n! comment\n";
        let props = parse_properties(text);
        assert_eq!(
            props.get("key one").map(String::as_str),
            Some("va=luecontinued")
        );
        let weird = "a b=c:d#e";
        assert_eq!(unescape(&escape(weird)), weird);
    }
}
