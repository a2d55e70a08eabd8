//! `partition.metadata`: the topic id a partition directory belongs to (KIP-516), so that a
//! directory left by a deleted topic is never mistaken for a new topic of the same name.
//!
//! ```text
//! version: 0
//! topic_id: J8aAPcfLQt2bqs1JT_rMgQ
//! ```
//!
//! The id is written as Kafka prints a `Uuid`: URL-safe base64 of its 16 bytes, no padding.

use std::fs;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::StorageError;
use crate::checkpoint::write_atomically;

pub(crate) const PARTITION_METADATA: &str = "partition.metadata";

/// Kafka's `Uuid.toString`.
pub(crate) fn topic_id_to_string(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Kafka's `Uuid.fromString`.
pub(crate) fn topic_id_from_str(s: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(Uuid::from_bytes(bytes))
}

pub(crate) fn write(dir: &Path, topic_id: Uuid) -> Result<(), StorageError> {
    let text = format!("version: 0\ntopic_id: {}\n", topic_id_to_string(topic_id));
    write_atomically(&dir.join(PARTITION_METADATA), text.as_bytes())
}

/// The topic id recorded in `dir`; `None` when there is no file.
pub(crate) fn read(dir: &Path) -> Result<Option<Uuid>, StorageError> {
    let path = dir.join(PARTITION_METADATA);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(&path, e)),
    };
    let corrupt = |reason: String| StorageError::Corrupt {
        path: path.display().to_string(),
        reason,
    };
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("version:"))
        .map(str::trim)
        .ok_or_else(|| corrupt("missing version".into()))?;
    if version != "0" {
        return Err(corrupt(format!("unsupported version {version}")));
    }
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("topic_id:"))
        .map(str::trim)
        .ok_or_else(|| corrupt("missing topic_id".into()))?;
    topic_id_from_str(id)
        .map(Some)
        .ok_or_else(|| corrupt(format!("malformed topic id {id:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_string_matches_kafka() {
        // Kafka: new Uuid(0x0123456789abcdefL, 0xfedcba9876543210L).toString()
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        let s = topic_id_to_string(id);
        assert_eq!(s, "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(s.len(), 22);
        assert_eq!(topic_id_from_str(&s), Some(id));
        assert_eq!(topic_id_from_str("short"), None);
    }

    #[test]
    fn round_trip_and_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let id = Uuid::new_v4();
        write(dir.path(), id).unwrap();
        let text = fs::read_to_string(dir.path().join(PARTITION_METADATA)).unwrap();
        assert_eq!(
            text,
            format!("version: 0\ntopic_id: {}\n", topic_id_to_string(id))
        );
        assert_eq!(read(dir.path()).unwrap(), Some(id));
        fs::write(
            dir.path().join(PARTITION_METADATA),
            "version: 0\ntopic_id: ???\n",
        )
        .unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
