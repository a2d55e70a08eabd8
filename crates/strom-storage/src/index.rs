//! The sparse per-segment indexes, in Kafka's file formats:
//!
//! ```text
//! <base>.index      repeated { relative_offset: u32 BE, position: u32 BE }      8 bytes
//! <base>.timeindex  repeated { timestamp: i64 BE, relative_offset: u32 BE }     12 bytes
//! ```
//!
//! Without mmap (the workspace forbids `unsafe`), each index lives in a `Vec` that answers every
//! lookup, and the entries not yet on disk are written to the file in one positional write when
//! the owner persists them (at a flush, a roll, a close, or once enough have piled up). A file
//! therefore may lag the memory copy between flushes; recovery never trusts the index of a
//! segment past the recovery point, so a lagging file is harmless.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const OFFSET_ENTRY_SIZE: usize = 8;
pub(crate) const TIME_ENTRY_SIZE: usize = 12;

/// Entries appended in memory before they are written out without being asked: keeps the files
/// close to the memory copy (for tools that read them) at one extra write per this many entries.
const PERSIST_BATCH: usize = 256;

/// Kafka's `RecordBatch.NO_TIMESTAMP`.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// Opens an index file for reading and writing, creating it if needed. The flag says whether it
/// existed: a missing index is rebuilt from its segment.
fn open_file(path: &Path) -> io::Result<(File, bool)> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => Ok((file, true)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?;
            Ok((file, false))
        }
        Err(e) => Err(e),
    }
}

fn read_all(file: &File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut reader = file;
    reader.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One offset index entry: the batch starting at `position` ends at `base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OffsetEntry {
    relative_offset: u32,
    position: u32,
}

/// Maps offsets to file positions in one segment's `.log`.
pub(crate) struct OffsetIndex {
    path: PathBuf,
    file: Arc<File>,
    base_offset: i64,
    entries: Vec<OffsetEntry>,
    /// How many leading entries are already in the file.
    persisted: usize,
}

impl fmt::Debug for OffsetIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OffsetIndex")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .field("persisted", &self.persisted)
            .finish()
    }
}

impl OffsetIndex {
    /// Opens the index at `path` and reads its entries as they are, without judging them (see
    /// [`OffsetIndex::sanity_check`]). A file whose length is not a whole number of entries loads
    /// its whole entries and fails the sanity check. Returns whether the file existed.
    pub(crate) fn open(path: PathBuf, base_offset: i64) -> io::Result<(Self, bool)> {
        let (file, existed) = open_file(&path)?;
        let bytes = read_all(&file)?;
        let entries: Vec<OffsetEntry> = bytes
            .chunks_exact(OFFSET_ENTRY_SIZE)
            .map(|c| OffsetEntry {
                relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let persisted = entries.len();
        let mut index = Self {
            path,
            file: Arc::new(file),
            base_offset,
            entries,
            persisted,
        };
        if bytes.len() % OFFSET_ENTRY_SIZE != 0 {
            // Forces the rebuild: a torn entry means the file cannot be trusted.
            index.persisted = usize::MAX;
        }
        Ok((index, existed))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// After the file was renamed (compaction's `.cleaned` → `.swap` → final name).
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub(crate) fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn has_unpersisted(&self) -> bool {
        self.persisted != self.entries.len()
    }

    fn absolute(&self, entry: OffsetEntry) -> i64 {
        self.base_offset + i64::from(entry.relative_offset)
    }

    /// Kafka's `OffsetIndex.sanityCheck`, made stricter: whole entries, offsets and positions
    /// strictly increasing, every position inside the `.log`.
    pub(crate) fn sanity_check(&self, log_size: u64) -> Result<(), String> {
        if self.persisted == usize::MAX {
            return Err(format!(
                "index file {} has a partial entry",
                self.path.display()
            ));
        }
        for pair in self.entries.windows(2) {
            if pair[1].relative_offset <= pair[0].relative_offset
                || pair[1].position <= pair[0].position
            {
                return Err(format!(
                    "index {} is not increasing at relative offset {}",
                    self.path.display(),
                    pair[1].relative_offset
                ));
            }
        }
        if let Some(last) = self.entries.last() {
            if u64::from(last.position) >= log_size {
                return Err(format!(
                    "index {} points at position {} past the end of the log ({log_size} bytes)",
                    self.path.display(),
                    last.position
                ));
            }
            if last.relative_offset > i32::MAX as u32 {
                return Err(format!(
                    "index {} holds an out of range relative offset",
                    self.path.display()
                ));
            }
        }
        Ok(())
    }

    /// The last entry as `(offset, position)`.
    pub(crate) fn last_entry(&self) -> Option<(i64, u32)> {
        self.entries.last().map(|e| (self.absolute(*e), e.position))
    }

    /// Kafka's `isFull`: `segment.index.bytes` holds this many entries.
    pub(crate) fn is_full(&self, max_index_bytes: u64) -> bool {
        self.entries.len() as u64 >= max_index_bytes / OFFSET_ENTRY_SIZE as u64
    }

    /// Adds `offset -> position`. Entries must grow; one that does not is dropped (the index is
    /// a hint, the log is the truth).
    pub(crate) fn append(&mut self, offset: i64, position: u32) {
        let relative = offset - self.base_offset;
        if !(0..=i64::from(i32::MAX)).contains(&relative) {
            return;
        }
        let entry = OffsetEntry {
            relative_offset: relative as u32,
            position,
        };
        let grows = self.entries.last().is_none_or(|last| {
            entry.relative_offset > last.relative_offset && entry.position > last.position
        });
        if !grows {
            return;
        }
        self.entries.push(entry);
    }

    /// The largest entry whose offset is <= `offset`, as `(offset, position)`; the segment's start
    /// when there is none.
    pub(crate) fn lookup(&self, offset: i64) -> (i64, u32) {
        let relative = offset - self.base_offset;
        if relative < 0 {
            return (self.base_offset, 0);
        }
        let relative = relative.min(i64::from(u32::MAX)) as u32;
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative);
        match after.checked_sub(1) {
            Some(i) => (self.absolute(self.entries[i]), self.entries[i].position),
            None => (self.base_offset, 0),
        }
    }

    /// Writes the entries the file does not have yet, with one positional write.
    pub(crate) fn persist(&mut self) -> io::Result<()> {
        if self.persisted == usize::MAX {
            self.reset()?;
        }
        if self.persisted >= self.entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((self.entries.len() - self.persisted) * 8);
        for e in &self.entries[self.persisted..] {
            bytes.extend_from_slice(&e.relative_offset.to_be_bytes());
            bytes.extend_from_slice(&e.position.to_be_bytes());
        }
        self.file
            .write_all_at(&bytes, (self.persisted * OFFSET_ENTRY_SIZE) as u64)?;
        self.persisted = self.entries.len();
        Ok(())
    }

    /// Persists when enough entries are waiting.
    pub(crate) fn maybe_persist(&mut self) -> io::Result<()> {
        if self.entries.len().saturating_sub(self.persisted) >= PERSIST_BATCH {
            self.persist()?;
        }
        Ok(())
    }

    /// Empties the index, in memory and on disk, before a rebuild.
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.persisted = 0;
        self.file.set_len(0)
    }
}

/// One time index entry: every record up to `base + relative_offset` has a timestamp <=
/// `timestamp`, and `timestamp` is reached at that offset's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeEntry {
    timestamp: i64,
    relative_offset: u32,
}

/// Maps timestamps to offsets in one segment.
pub(crate) struct TimeIndex {
    path: PathBuf,
    file: Arc<File>,
    base_offset: i64,
    entries: Vec<TimeEntry>,
    persisted: usize,
}

impl fmt::Debug for TimeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeIndex")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .field("persisted", &self.persisted)
            .finish()
    }
}

impl TimeIndex {
    /// As [`OffsetIndex::open`].
    pub(crate) fn open(path: PathBuf, base_offset: i64) -> io::Result<(Self, bool)> {
        let (file, existed) = open_file(&path)?;
        let bytes = read_all(&file)?;
        let entries: Vec<TimeEntry> = bytes
            .chunks_exact(TIME_ENTRY_SIZE)
            .map(|c| TimeEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            })
            .collect();
        let persisted = entries.len();
        let mut index = Self {
            path,
            file: Arc::new(file),
            base_offset,
            entries,
            persisted,
        };
        if bytes.len() % TIME_ENTRY_SIZE != 0 {
            index.persisted = usize::MAX;
        }
        Ok((index, existed))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub(crate) fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn has_unpersisted(&self) -> bool {
        self.persisted != self.entries.len()
    }

    /// Kafka's `TimeIndex.sanityCheck`, made stricter: whole entries, timestamps and offsets
    /// increasing, every offset below `next_offset` (the end of the segment).
    pub(crate) fn sanity_check(&self, next_offset: i64) -> Result<(), String> {
        if self.persisted == usize::MAX {
            return Err(format!(
                "time index {} has a partial entry",
                self.path.display()
            ));
        }
        for pair in self.entries.windows(2) {
            if pair[1].timestamp <= pair[0].timestamp
                || pair[1].relative_offset < pair[0].relative_offset
            {
                return Err(format!(
                    "time index {} is not increasing at relative offset {}",
                    self.path.display(),
                    pair[1].relative_offset
                ));
            }
        }
        if let Some(last) = self.entries.last() {
            let offset = self.base_offset + i64::from(last.relative_offset);
            if last.relative_offset > i32::MAX as u32 || offset >= next_offset {
                return Err(format!(
                    "time index {} names offset {offset} past the segment's end {next_offset}",
                    self.path.display(),
                ));
            }
        }
        Ok(())
    }

    /// The last entry as `(timestamp, offset)`: the segment's largest timestamp once the segment
    /// has been closed or rolled.
    pub(crate) fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|e| (e.timestamp, self.base_offset + i64::from(e.relative_offset)))
    }

    pub(crate) fn is_full(&self, max_index_bytes: u64) -> bool {
        self.entries.len() as u64 >= max_index_bytes / TIME_ENTRY_SIZE as u64
    }

    /// Kafka's `maybeAppend`: adds `(timestamp, offset)` only when the timestamp grew.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        let relative = offset - self.base_offset;
        if !(0..=i64::from(i32::MAX)).contains(&relative) {
            return;
        }
        let grows = self.entries.last().is_none_or(|last| {
            timestamp > last.timestamp && relative as u32 >= last.relative_offset
        });
        if !grows {
            return;
        }
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset: relative as u32,
        });
    }

    /// The largest entry whose timestamp is <= `timestamp`, as `(timestamp, offset)`; with none,
    /// `(NO_TIMESTAMP, base offset)` as in Kafka.
    pub(crate) fn lookup(&self, timestamp: i64) -> (i64, i64) {
        let after = self.entries.partition_point(|e| e.timestamp <= timestamp);
        match after.checked_sub(1) {
            Some(i) => {
                let e = self.entries[i];
                (e.timestamp, self.base_offset + i64::from(e.relative_offset))
            }
            None => (NO_TIMESTAMP, self.base_offset),
        }
    }

    pub(crate) fn persist(&mut self) -> io::Result<()> {
        if self.persisted == usize::MAX {
            self.reset()?;
        }
        if self.persisted >= self.entries.len() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity((self.entries.len() - self.persisted) * 12);
        for e in &self.entries[self.persisted..] {
            bytes.extend_from_slice(&e.timestamp.to_be_bytes());
            bytes.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        self.file
            .write_all_at(&bytes, (self.persisted * TIME_ENTRY_SIZE) as u64)?;
        self.persisted = self.entries.len();
        Ok(())
    }

    pub(crate) fn maybe_persist(&mut self) -> io::Result<()> {
        if self.entries.len().saturating_sub(self.persisted) >= PERSIST_BATCH {
            self.persist()?;
        }
        Ok(())
    }

    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.persisted = 0;
        self.file.set_len(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_index(dir: &Path, base: i64) -> OffsetIndex {
        OffsetIndex::open(dir.join(format!("{base:020}.index")), base)
            .unwrap()
            .0
    }

    #[test]
    fn offset_lookup_exact_between_before_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = offset_index(dir.path(), 100);
        idx.append(110, 1000);
        idx.append(120, 2000);
        idx.append(130, 3000);
        // Exact hits.
        assert_eq!(idx.lookup(110), (110, 1000));
        assert_eq!(idx.lookup(130), (130, 3000));
        // Between two entries: the lower one.
        assert_eq!(idx.lookup(125), (120, 2000));
        // Before the first entry (and before the segment): the segment start.
        assert_eq!(idx.lookup(105), (100, 0));
        assert_eq!(idx.lookup(50), (100, 0));
        // After the last entry: the last one.
        assert_eq!(idx.lookup(1_000_000), (130, 3000));
    }

    #[test]
    fn offset_index_refuses_non_increasing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = offset_index(dir.path(), 0);
        idx.append(10, 100);
        idx.append(10, 200);
        idx.append(5, 300);
        idx.append(20, 50);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn offset_index_persists_in_kafka_format_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = offset_index(dir.path(), 7);
        idx.append(9, 4096);
        idx.append(20, 8200);
        idx.persist().unwrap();
        idx.append(30, 9000);
        idx.persist().unwrap();
        let bytes = std::fs::read(idx.path()).unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[..8], &[0, 0, 0, 2, 0, 0, 0x10, 0]);
        let (again, existed) = OffsetIndex::open(idx.path().to_path_buf(), 7).unwrap();
        assert!(existed);
        assert_eq!(again.lookup(25), (20, 8200));
        assert_eq!(again.last_entry(), Some((30, 9000)));
        again.sanity_check(10_000).unwrap();
        assert!(again.sanity_check(9000).is_err());
    }

    #[test]
    fn offset_index_sanity_check_catches_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.index");
        std::fs::write(&path, [1u8; 13]).unwrap();
        let (idx, _) = OffsetIndex::open(path.clone(), 0).unwrap();
        assert!(idx.sanity_check(u64::MAX).is_err());
        // Decreasing entries.
        let mut bytes = Vec::new();
        for (rel, pos) in [(5u32, 100u32), (3, 200)] {
            bytes.extend_from_slice(&rel.to_be_bytes());
            bytes.extend_from_slice(&pos.to_be_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let (idx, _) = OffsetIndex::open(path, 0).unwrap();
        assert!(idx.sanity_check(u64::MAX).is_err());
    }

    #[test]
    fn time_lookup_and_maybe_append() {
        let dir = tempfile::tempdir().unwrap();
        let (mut idx, existed) =
            TimeIndex::open(dir.path().join("00000000000000000050.timeindex"), 50).unwrap();
        assert!(!existed);
        idx.maybe_append(1000, 55);
        idx.maybe_append(1000, 60); // same timestamp: skipped
        idx.maybe_append(900, 61); // older: skipped
        idx.maybe_append(2000, 70);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(999), (NO_TIMESTAMP, 50));
        assert_eq!(idx.lookup(1000), (1000, 55));
        assert_eq!(idx.lookup(1500), (1000, 55));
        assert_eq!(idx.lookup(5000), (2000, 70));
        assert_eq!(idx.last_entry(), Some((2000, 70)));
        idx.persist().unwrap();
        let (again, existed) = TimeIndex::open(idx.path().to_path_buf(), 50).unwrap();
        assert!(existed);
        assert_eq!(again.lookup(1500), (1000, 55));
        again.sanity_check(71).unwrap();
        assert!(again.sanity_check(70).is_err());
    }

    #[test]
    fn fullness_follows_segment_index_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = offset_index(dir.path(), 0);
        idx.append(1, 10);
        idx.append(2, 20);
        assert!(!idx.is_full(24));
        assert!(idx.is_full(16));
        assert!(idx.is_full(23));
    }
}
