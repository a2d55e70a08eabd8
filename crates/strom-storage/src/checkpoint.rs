//! Kafka's small text files that record per-partition offsets for a log dir
//! (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//! `cleaner-offset-checkpoint`), and the atomic
//! replace-by-rename that every such metadata file in this crate is written with.
//!
//! ```text
//! 0                      <- format version
//! 2                      <- number of entries
//! orders 0 1234          <- topic partition offset
//! orders 1 99
//! ```

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{StorageError, TopicPartition};

pub(crate) const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub(crate) const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub(crate) const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

const VERSION: i32 = 0;

/// Fsyncs a directory so that a rename or a new file in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file, never a
/// mix: write `<path>.tmp`, fsync it, rename it over `path`, fsync the directory (Kafka's
/// `Utils.atomicMoveWithFallback` after writing a `.tmp`).
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StorageError::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

/// Writes an offset checkpoint file. Entries are sorted so the file is stable to diff.
pub(crate) fn write_offsets(
    path: &Path,
    offsets: &HashMap<TopicPartition, i64>,
) -> Result<(), StorageError> {
    let mut entries: Vec<_> = offsets.iter().collect();
    entries.sort();
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (tp, offset) in entries {
        text.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    write_atomically(path, text.as_bytes())
}

/// Reads an offset checkpoint file; a missing file is an empty checkpoint.
pub(crate) fn read_offsets(path: &Path) -> Result<HashMap<TopicPartition, i64>, StorageError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    parse_offsets(&text).map_err(|reason| StorageError::Corrupt {
        path: path.display().to_string(),
        reason,
    })
}

fn parse_offsets(text: &str) -> Result<HashMap<TopicPartition, i64>, String> {
    let mut lines = text.lines();
    let version = lines.next().ok_or("empty checkpoint file")?;
    if version.trim().parse::<i32>() != Ok(VERSION) {
        return Err(format!("unsupported checkpoint version {version:?}"));
    }
    let count_line = lines.next().ok_or("missing entry count")?;
    let count: usize = count_line
        .trim()
        .parse()
        .map_err(|_| format!("malformed entry count {count_line:?}"))?;
    let mut offsets = HashMap::with_capacity(count.min(1 << 16));
    for line in lines.by_ref().take(count) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [topic, partition, offset] = fields[..] else {
            return Err(format!("malformed checkpoint entry {line:?}"));
        };
        let partition: i32 = partition
            .parse()
            .map_err(|_| format!("malformed partition in {line:?}"))?;
        let offset: i64 = offset
            .parse()
            .map_err(|_| format!("malformed offset in {line:?}"))?;
        offsets.insert(TopicPartition::new(topic, partition), offset);
    }
    if offsets.len() != count {
        return Err(format!(
            "checkpoint announces {count} entries, holds {}",
            offsets.len()
        ));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("checkpoint holds more entries than it announces".into());
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        let mut offsets = HashMap::new();
        offsets.insert(TopicPartition::new("orders", 1), 99);
        offsets.insert(TopicPartition::new("orders", 0), 1234);
        offsets.insert(TopicPartition::new("a-b-c", 12), 0);
        write_offsets(&path, &offsets).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "0\n3\na-b-c 12 0\norders 0 1234\norders 1 99\n");
        assert_eq!(read_offsets(&path).unwrap(), offsets);
        assert!(
            !dir.path()
                .join("recovery-point-offset-checkpoint.tmp")
                .exists()
        );
    }

    #[test]
    fn missing_file_is_empty_and_empty_map_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_START_OFFSET_CHECKPOINT);
        assert!(read_offsets(&path).unwrap().is_empty());
        write_offsets(&path, &HashMap::new()).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n0\n");
        assert!(read_offsets(&path).unwrap().is_empty());
    }

    #[test]
    fn malformed_files_are_corrupt() {
        for text in [
            "",
            "1\n0\n",
            "0\nx\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt 0\n",
            "0\n1\nt zero 1\n",
            "0\n1\nt 0 1\nu 0 2\n",
        ] {
            assert!(parse_offsets(text).is_err(), "{text:?} parsed");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        fs::write(&path, "garbage").unwrap();
        assert!(matches!(
            read_offsets(&path),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
