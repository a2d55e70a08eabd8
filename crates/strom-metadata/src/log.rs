//! The local metadata log: committed record batches in `<dir>/__cluster_metadata-0/`.
//!
//! One entry is one atomically committed batch of records with the offset of its first record
//! (offsets count records, as in Kafka's metadata log). The batch is the unit on purpose: the
//! cluster issue replicates the same [`LogEntry`]s through openraft, one Raft entry per batch.
//!
//! File layout (`metadata.log`, one file: metadata is small and snapshots come with openraft):
//!
//! ```text
//! "STRMLOG1"                                  8-byte magic, written when the file is created
//! [len: u32 BE][crc: u32 BE][payload: len]    one frame per entry, appended in offset order
//! ...
//! crc     = CRC-32C over the 4 length bytes followed by the payload
//! payload = serde_json of LogEntry { base_offset, records }
//! ```
//!
//! Appends are one `write` of a whole frame followed by `fdatasync`, so a crash can only leave
//! a partial frame at the end of the file. On open, every frame is checked; a bad frame with
//! nothing intact after it is such a torn append and is cut off, while a bad frame followed by
//! an intact one cannot come from a crash and makes the log [`MetadataError::Corrupt`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::MetadataError;
use crate::records::MetadataRecord;

/// The directory of the metadata log inside `metadata.log.dir` (Kafka's name).
pub const LOG_DIR_NAME: &str = "__cluster_metadata-0";
/// The file holding the entries.
pub const LOG_FILE_NAME: &str = "metadata.log";
/// First bytes of the file: tells a strom metadata log from anything else, and versions the
/// frame format.
pub const FILE_MAGIC: &[u8; 8] = b"STRMLOG1";
/// Largest payload of one entry. Far above any real batch (the controller caps a request at
/// 10,000 partitions), small enough that a damaged length never makes us allocate gigabytes.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024 * 1024;

const FRAME_HEADER: usize = 8;

/// One committed batch of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Offset of the first record of the batch.
    pub base_offset: i64,
    pub records: Vec<MetadataRecord>,
}

impl LogEntry {
    /// Offset of the last record (`base_offset - 1` for an empty batch).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.records.len() as i64 - 1
    }

    /// The offset that follows this batch.
    pub fn next_offset(&self) -> i64 {
        self.base_offset + self.records.len() as i64
    }
}

/// The durable local log of committed batches. One writer (the controller) at a time.
#[derive(Debug)]
pub struct MetadataLog {
    path: PathBuf,
    /// Shared with the blocking task that performs the write and fsync.
    file: Arc<File>,
    next_offset: i64,
    /// Set after a failed write or fsync: what reached the disk is unknown, so appending more
    /// could put good frames after a damaged one. Reopening repairs the file.
    poisoned: bool,
}

/// What a scan of the file's bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub entries: Vec<LogEntry>,
    /// Length of the intact prefix (magic included); anything after it is a torn append.
    pub valid_len: usize,
}

impl MetadataLog {
    /// Opens or creates the log under `metadata_log_dir`, replays it and cuts off a torn tail.
    /// Blocking: call it from `spawn_blocking` (or before the runtime matters).
    pub fn open(metadata_log_dir: &Path) -> Result<(MetadataLog, Vec<LogEntry>), MetadataError> {
        let dir = metadata_log_dir.join(LOG_DIR_NAME);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let path = dir.join(LOG_FILE_NAME);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        if !existed {
            // The new directory entries must survive a crash too, or a later "committed" append
            // could vanish with its file.
            sync_dir(&dir)?;
            sync_dir(metadata_log_dir)?;
        }

        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_error(&path, e))?;

        if bytes.len() < FILE_MAGIC.len() {
            if !FILE_MAGIC.starts_with(&bytes) {
                return Err(corrupt(&path, "not a strom metadata log (bad magic)"));
            }
            // New file, or a crash while its magic was being written.
            file.set_len(0).map_err(|e| io_error(&path, e))?;
            file.write_all(FILE_MAGIC).map_err(|e| io_error(&path, e))?;
            file.sync_all().map_err(|e| io_error(&path, e))?;
            return Ok((
                MetadataLog {
                    path,
                    file: Arc::new(file),
                    next_offset: 0,
                    poisoned: false,
                },
                Vec::new(),
            ));
        }

        let scan = scan(&bytes).map_err(|reason| corrupt(&path, &reason))?;
        if scan.valid_len < bytes.len() {
            warn!(path = %path.display(), valid_len = scan.valid_len, file_len = bytes.len(),
                "metadata log ends with a torn entry (crash during an append); truncating it");
            file.set_len(scan.valid_len as u64)
                .map_err(|e| io_error(&path, e))?;
            file.sync_all().map_err(|e| io_error(&path, e))?;
        }
        let next_offset = scan.entries.last().map_or(0, LogEntry::next_offset);
        info!(path = %path.display(), entries = scan.entries.len(), next_offset,
            "metadata log opened");
        Ok((
            MetadataLog {
                path,
                file: Arc::new(file),
                next_offset,
                poisoned: false,
            },
            scan.entries,
        ))
    }

    /// Offset the next appended record gets.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one batch durably (write + fsync on a blocking thread) and returns it with its
    /// base offset. An empty batch is not written.
    pub async fn append(
        &mut self,
        records: Vec<MetadataRecord>,
    ) -> Result<LogEntry, MetadataError> {
        if self.poisoned {
            return Err(io_error(
                &self.path,
                io::Error::other(
                    "an earlier write to the metadata log failed; restart to recover the log",
                ),
            ));
        }
        let entry = LogEntry {
            base_offset: self.next_offset,
            records,
        };
        if entry.records.is_empty() {
            return Ok(entry);
        }
        let frame = encode_frame(&entry).map_err(|e| io_error(&self.path, e))?;
        let file = Arc::clone(&self.file);
        let written = tokio::task::spawn_blocking(move || {
            (&*file).write_all(&frame)?;
            file.sync_data()
        })
        .await
        .unwrap_or_else(|join| {
            Err(io::Error::other(format!(
                "metadata log writer failed: {join}"
            )))
        });
        match written {
            Ok(()) => {
                self.next_offset = entry.next_offset();
                Ok(entry)
            }
            Err(e) => {
                self.poisoned = true;
                Err(io_error(&self.path, e))
            }
        }
    }
}

/// Encodes one entry as a frame (header + payload).
pub fn encode_frame(entry: &LogEntry) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(entry).map_err(io::Error::other)?;
    if payload.len() > MAX_ENTRY_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "metadata batch of {} bytes exceeds the limit of {MAX_ENTRY_BYTES}",
                payload.len()
            ),
        ));
    }
    let len = (payload.len() as u32).to_be_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &payload);
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&len);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Decodes a whole log file's bytes (magic included). `Err` carries the reason the log is
/// corrupt; a torn tail is not an error but a `valid_len` shorter than `bytes`.
pub fn scan(bytes: &[u8]) -> Result<Scan, String> {
    if bytes.len() < FILE_MAGIC.len() || &bytes[..FILE_MAGIC.len()] != FILE_MAGIC {
        return Err("not a strom metadata log (bad magic)".to_string());
    }
    let mut entries: Vec<LogEntry> = Vec::new();
    let mut pos = FILE_MAGIC.len();
    let mut expected_offset = 0i64;
    while pos < bytes.len() {
        let Some(payload) = intact_frame(bytes, pos) else {
            if let Some(next) = intact_frame_after(bytes, pos) {
                return Err(format!(
                    "damaged entry at byte {pos} is followed by an intact entry at byte {next}"
                ));
            }
            return Ok(Scan {
                entries,
                valid_len: pos,
            });
        };
        let entry: LogEntry = serde_json::from_slice(payload).map_err(|e| {
            format!("entry at byte {pos} has a valid checksum but cannot be decoded: {e}")
        })?;
        if entry.base_offset != expected_offset {
            return Err(format!(
                "entry at byte {pos} has base offset {} where {expected_offset} was expected",
                entry.base_offset
            ));
        }
        expected_offset = entry.next_offset();
        pos += FRAME_HEADER + payload.len();
        entries.push(entry);
    }
    Ok(Scan {
        entries,
        valid_len: pos,
    })
}

/// The payload of the frame at `pos` if the frame is complete and its checksum matches.
fn intact_frame(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    let header = bytes.get(pos..pos + FRAME_HEADER)?;
    let len_bytes: [u8; 4] = header[..4].try_into().ok()?;
    let crc = u32::from_be_bytes(header[4..].try_into().ok()?);
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > MAX_ENTRY_BYTES {
        return None;
    }
    let start = pos + FRAME_HEADER;
    let payload = bytes.get(start..start + len)?;
    (crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload) == crc).then_some(payload)
}

/// The position of any intact frame starting after `pos`. Only a damaged frame in the middle
/// has one; bytes of a torn append never contain a frame with a matching checksum.
fn intact_frame_after(bytes: &[u8], pos: usize) -> Option<usize> {
    // Payloads are JSON objects: checking for '{' first skips nearly every candidate position
    // without computing a checksum.
    (pos + 1..bytes.len().saturating_sub(FRAME_HEADER))
        .filter(|&p| bytes.get(p + FRAME_HEADER) == Some(&b'{'))
        .find(|&p| intact_frame(bytes, p).is_some_and(|payload| payload.len() >= 2))
}

fn sync_dir(dir: &Path) -> Result<(), MetadataError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn io_error(path: &Path, source: io::Error) -> MetadataError {
    MetadataError::Io {
        path: path.display().to_string(),
        source: Arc::new(source),
    }
}

fn corrupt(path: &Path, reason: &str) -> MetadataError {
    MetadataError::Corrupt {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ConfigRecord, ConfigResourceType, RemoveTopicRecord, TopicRecord};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn batch(n: usize, tag: &str) -> Vec<MetadataRecord> {
        (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    MetadataRecord::Topic(TopicRecord {
                        name: format!("{tag}-{i}"),
                        topic_id: Uuid::new_v4(),
                    })
                } else {
                    MetadataRecord::Config(ConfigRecord {
                        resource_type: ConfigResourceType::Topic,
                        resource_name: format!("{tag}-{}", i - 1),
                        name: "retention.ms".to_string(),
                        value: Some(i.to_string()),
                    })
                }
            })
            .collect()
    }

    fn file_of(dir: &Path) -> PathBuf {
        dir.join(LOG_DIR_NAME).join(LOG_FILE_NAME)
    }

    async fn write_log(dir: &Path, sizes: &[usize]) -> Vec<LogEntry> {
        let (mut log, entries) = MetadataLog::open(dir).unwrap();
        assert!(entries.is_empty());
        let mut written = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            written.push(log.append(batch(n, &format!("b{i}"))).await.unwrap());
        }
        written
    }

    #[tokio::test]
    async fn append_and_replay_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &[1, 3, 2]).await;
        assert_eq!(
            written.iter().map(|e| e.base_offset).collect::<Vec<_>>(),
            [0, 1, 4]
        );
        assert_eq!(written[2].last_offset(), 5);

        let (mut log, replayed) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(replayed, written);
        assert_eq!(log.next_offset(), 6);

        // Appending after a reopen continues the offsets.
        let more = log
            .append(vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: Uuid::new_v4(),
            })])
            .await
            .unwrap();
        assert_eq!(more.base_offset, 6);
        let (_, replayed) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(replayed.len(), 4);
        assert_eq!(replayed[3], more);
    }

    #[tokio::test]
    async fn empty_batch_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        let entry = log.append(Vec::new()).await.unwrap();
        assert_eq!(entry.base_offset, 0);
        assert_eq!(log.next_offset(), 0);
        assert_eq!(std::fs::metadata(file_of(dir.path())).unwrap().len(), 8);
    }

    #[test]
    fn new_log_is_created_with_its_magic() {
        let dir = tempfile::tempdir().unwrap();
        let (log, entries) = MetadataLog::open(dir.path()).unwrap();
        assert!(entries.is_empty());
        assert_eq!(log.next_offset(), 0);
        assert_eq!(std::fs::read(file_of(dir.path())).unwrap(), FILE_MAGIC);
    }

    #[test]
    fn torn_magic_is_rewritten_and_foreign_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(LOG_DIR_NAME)).unwrap();
        std::fs::write(file_of(dir.path()), &FILE_MAGIC[..3]).unwrap();
        let (_, entries) = MetadataLog::open(dir.path()).unwrap();
        assert!(entries.is_empty());
        assert_eq!(std::fs::read(file_of(dir.path())).unwrap(), FILE_MAGIC);

        std::fs::write(file_of(dir.path()), b"hello, world").unwrap();
        let err = MetadataLog::open(dir.path()).unwrap_err();
        assert!(matches!(err, MetadataError::Corrupt { .. }), "{err}");
        std::fs::write(file_of(dir.path()), b"xy").unwrap();
        assert!(matches!(
            MetadataLog::open(dir.path()).unwrap_err(),
            MetadataError::Corrupt { .. }
        ));
    }

    #[tokio::test]
    async fn corrupted_middle_entry_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[2, 2, 2]).await;
        let path = file_of(dir.path());
        let clean = std::fs::read(&path).unwrap();
        let first_len = u32::from_be_bytes(clean[8..12].try_into().unwrap()) as usize;
        let second = 8 + FRAME_HEADER + first_len;

        // A flipped payload byte of the second entry.
        let mut bytes = clean.clone();
        bytes[second + FRAME_HEADER + 5] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let err = MetadataLog::open(dir.path()).unwrap_err();
        assert!(matches!(err, MetadataError::Corrupt { .. }), "{err}");

        // A damaged length of the first entry.
        let mut bytes = clean.clone();
        bytes[9] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            MetadataLog::open(dir.path()).unwrap_err(),
            MetadataError::Corrupt { .. }
        ));

        // The file is left alone so that an operator can look at it.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[tokio::test]
    async fn damaged_last_entry_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &[2, 2, 2]).await;
        let path = file_of(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (log, entries) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(entries, written[..2]);
        assert_eq!(log.next_offset(), written[2].base_offset);
    }

    #[tokio::test]
    async fn zeroes_after_the_last_entry_are_cut_off() {
        // A crash can leave the file longer than what was written, filled with zeroes.
        let dir = tempfile::tempdir().unwrap();
        let written = write_log(dir.path(), &[1, 2]).await;
        let path = file_of(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let good = bytes.len();
        bytes.extend_from_slice(&[0u8; 100]);
        std::fs::write(&path, &bytes).unwrap();
        let (_, entries) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(entries, written);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good);
    }

    #[test]
    fn wrong_offsets_are_corruption() {
        let mut bytes = FILE_MAGIC.to_vec();
        bytes.extend(
            encode_frame(&LogEntry {
                base_offset: 0,
                records: batch(2, "a"),
            })
            .unwrap(),
        );
        bytes.extend(
            encode_frame(&LogEntry {
                base_offset: 5,
                records: batch(1, "b"),
            })
            .unwrap(),
        );
        let err = scan(&bytes).unwrap_err();
        assert!(err.contains("base offset 5 where 2 was expected"), "{err}");
    }

    #[test]
    fn valid_checksum_with_garbage_payload_is_corruption() {
        let payload = b"{not json";
        let len = (payload.len() as u32).to_be_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
        let mut bytes = FILE_MAGIC.to_vec();
        bytes.extend_from_slice(&len);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes.extend_from_slice(payload);
        assert!(scan(&bytes).unwrap_err().contains("cannot be decoded"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A crash at any byte of any append leaves the complete entries before it.
        #[test]
        fn torn_tail_is_truncated(sizes in prop::collection::vec(1usize..5, 1..6), cut in any::<prop::sample::Index>()) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let written = runtime.block_on(write_log(dir.path(), &sizes));
            let path = file_of(dir.path());
            let bytes = std::fs::read(&path).unwrap();
            let cut = cut.index(bytes.len() + 1);
            std::fs::write(&path, &bytes[..cut]).unwrap();

            let mut end = FILE_MAGIC.len();
            let mut expected = Vec::new();
            for entry in &written {
                let frame = encode_frame(entry).unwrap().len();
                if end + frame > cut {
                    break;
                }
                end += frame;
                expected.push(entry.clone());
            }

            let (mut log, entries) = MetadataLog::open(dir.path()).unwrap();
            prop_assert_eq!(&entries, &expected);
            let kept = if cut < FILE_MAGIC.len() { FILE_MAGIC.len() } else { end };
            prop_assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, kept);

            // The log stays usable after the repair.
            let appended = runtime.block_on(log.append(batch(1, "after"))).unwrap();
            prop_assert_eq!(appended.base_offset, expected.last().map_or(0, LogEntry::next_offset));
            let (_, entries) = MetadataLog::open(dir.path()).unwrap();
            prop_assert_eq!(entries.len(), expected.len() + 1);
        }
    }
}
