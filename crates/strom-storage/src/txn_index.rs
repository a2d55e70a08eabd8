//! The transaction index (`<base>.txnindex`, Kafka's `TransactionIndex`): the aborted
//! transactions whose ABORT marker is in the segment, so that a read_committed fetch can tell the
//! consumer which producers' records in the range it must drop.
//!
//! ```text
//!  entry (34 bytes, big-endian):  version i16 = 0 | producer_id i64 | first_offset i64
//!                                 | last_offset i64 (the marker) | last_stable_offset i64
//! ```
//!
//! The file exists only once a segment has an aborted transaction, as in Kafka. Entries are
//! appended in marker order, so their last offsets increase. The entries are also kept in memory
//! (a few dozen bytes each, like the sparse indexes) so a fetch collects them under the log's
//! lock without touching the disk. `last_stable_offset` is the LSO right after the marker: once
//! it reaches a fetch's upper bound, no later-aborted transaction can overlap the fetch, which
//! lets a search stop early.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kafka's `TransactionIndex` file suffix.
pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Bytes of one entry.
pub const ABORTED_TXN_SIZE: usize = 34;
const ABORTED_TXN_VERSION: i16 = 0;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first record on this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The last stable offset once the marker was written: the first offset of the oldest
    /// transaction then still open, else the marker's offset + 1.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The entry's on-disk form.
    pub fn encode(&self) -> [u8; ABORTED_TXN_SIZE] {
        let mut out = [0u8; ABORTED_TXN_SIZE];
        out[..2].copy_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// Reads one entry; an unknown version is an error, as in Kafka.
    pub fn decode(bytes: &[u8; ABORTED_TXN_SIZE]) -> Result<AbortedTxn, String> {
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        if version != ABORTED_TXN_VERSION {
            return Err(format!("unexpected aborted transaction version {version}"));
        }
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        Ok(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// Decodes a whole `.txnindex` file's bytes: the entries that read back, and the first problem
/// (a partial trailing entry or an unknown version), if any.
pub(crate) fn decode_entries(bytes: &[u8]) -> (Vec<AbortedTxn>, Option<String>) {
    let mut entries = Vec::with_capacity(bytes.len() / ABORTED_TXN_SIZE);
    for (i, chunk) in bytes.chunks(ABORTED_TXN_SIZE).enumerate() {
        let Ok(chunk) = <&[u8; ABORTED_TXN_SIZE]>::try_from(chunk) else {
            return (
                entries,
                Some(format!(
                    "{} bytes after the last whole entry",
                    bytes.len() % ABORTED_TXN_SIZE
                )),
            );
        };
        match AbortedTxn::decode(chunk) {
            Ok(entry) => entries.push(entry),
            Err(reason) => return (entries, Some(format!("entry {i}: {reason}"))),
        }
    }
    (entries, None)
}

/// What a search of one segment's index found (Kafka's `TxnIndexSearchResult`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TxnSearch {
    pub(crate) aborted: Vec<AbortedTxn>,
    /// No later entry (here or in a later segment) can overlap the searched range.
    pub(crate) complete: bool,
}

/// One segment's transaction index.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    /// Open once the file exists (it is created by the first append).
    file: Option<Arc<File>>,
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Opens the index at `path` if the file exists. Returns the problem that makes it unusable
    /// (a partial entry, an unknown version, an entry outside the segment or out of order): the
    /// caller then rebuilds it from the log.
    pub(crate) fn open(path: PathBuf, base_offset: i64) -> io::Result<(Self, Option<String>)> {
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((Self::empty(path), None));
            }
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len() as usize;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0)?;
        let (entries, mut problem) = decode_entries(&bytes);
        if problem.is_none() {
            problem = check_entries(&entries, base_offset);
        }
        Ok((
            Self {
                path,
                file: Some(Arc::new(file)),
                entries,
            },
            problem,
        ))
    }

    /// An index without a file (one is created by the first append).
    pub(crate) fn empty(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            entries: Vec::new(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> Option<Arc<File>> {
        self.file.clone()
    }

    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Kafka's `TransactionIndex.append`: entries must come in marker order.
    pub(crate) fn append(&mut self, txn: AbortedTxn) -> io::Result<()> {
        if let Some(last) = self.entries.last()
            && last.last_offset >= txn.last_offset
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the last offset of appended aborted transaction {} is not above the last \
                     one in the index ({})",
                    txn.last_offset, last.last_offset
                ),
            ));
        }
        let file = match &self.file {
            Some(file) => file.clone(),
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&self.path)?;
                let file = Arc::new(file);
                self.file = Some(file.clone());
                file
            }
        };
        let position = (self.entries.len() * ABORTED_TXN_SIZE) as u64;
        if let Err(e) = file.write_all_at(&txn.encode(), position) {
            // Never leave a partial entry behind.
            let _ = file.set_len(position);
            return Err(e);
        }
        self.entries.push(txn);
        Ok(())
    }

    /// Kafka's `TransactionIndex.reset`: no entries (an existing file is emptied, not removed).
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.entries.clear();
        if let Some(file) = &self.file {
            file.set_len(0)?;
        }
        Ok(())
    }

    /// Kafka's `TransactionIndex.truncateTo`: drops the entries whose marker is at or past
    /// `offset`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .iter()
            .take_while(|e| e.last_offset < offset)
            .count();
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            if let Some(file) = &self.file {
                file.set_len((keep * ABORTED_TXN_SIZE) as u64)?;
            }
        }
        Ok(())
    }

    /// Renames the file (if there is one); the path changes either way (Kafka's `renameTo`).
    pub(crate) fn rename(&mut self, to: PathBuf) -> io::Result<()> {
        if self.file.is_some() {
            match std::fs::rename(&self.path, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.path = to;
        Ok(())
    }

    /// Kafka's `TransactionIndex.collectAbortedTxns`: the aborted transactions that overlap
    /// `[fetch_offset, upper_bound)`, and whether the search may stop here.
    pub(crate) fn collect(&self, fetch_offset: i64, upper_bound: i64) -> TxnSearch {
        let mut found = TxnSearch::default();
        for txn in &self.entries {
            if txn.last_offset >= fetch_offset && txn.first_offset < upper_bound {
                found.aborted.push(*txn);
            }
            if txn.last_stable_offset >= upper_bound {
                found.complete = true;
                break;
            }
        }
        found
    }
}

/// Kafka's `TransactionIndex.sanityCheck` (every marker inside the segment), plus the order.
fn check_entries(entries: &[AbortedTxn], base_offset: i64) -> Option<String> {
    let mut last = i64::MIN;
    for e in entries {
        if e.last_offset < base_offset {
            return Some(format!(
                "last offset of aborted transaction {} is below the segment's base offset \
                 {base_offset}",
                e.last_offset
            ));
        }
        if e.last_offset <= last {
            return Some(format!(
                "aborted transaction last offsets do not increase at {}",
                e.last_offset
            ));
        }
        last = e.last_offset;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_use_kafkas_34_byte_layout() {
        let t = txn(0x0102, 5, 9, 10);
        let bytes = t.encode();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &0x0102i64.to_be_bytes());
        assert_eq!(&bytes[10..18], &5i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &9i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &10i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes).unwrap(), t);
        let mut bad = bytes;
        bad[1] = 1;
        assert!(AbortedTxn::decode(&bad).is_err());
    }

    #[test]
    fn file_is_created_lazily_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.txnindex");
        let (mut index, problem) = TxnIndex::open(path.clone(), 100).unwrap();
        assert!(problem.is_none());
        assert!(!path.exists());
        index.append(txn(1, 100, 105, 106)).unwrap();
        index.append(txn(2, 101, 110, 111)).unwrap();
        assert!(index.append(txn(3, 102, 110, 111)).is_err());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 68);
        let (again, problem) = TxnIndex::open(path.clone(), 100).unwrap();
        assert!(problem.is_none());
        assert_eq!(again.entries(), index.entries());

        index.truncate_to(110).unwrap();
        assert_eq!(index.entries().len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 34);
        index.reset().unwrap();
        assert!(index.entries().is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn a_torn_or_foreign_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.txnindex");
        let mut bytes = txn(1, 100, 105, 106).encode().to_vec();
        bytes.extend_from_slice(&[0; 10]);
        std::fs::write(&path, &bytes).unwrap();
        let (index, problem) = TxnIndex::open(path.clone(), 100).unwrap();
        assert!(problem.unwrap().contains("10 bytes"));
        assert_eq!(index.entries().len(), 1);
        std::fs::write(&path, txn(1, 10, 50, 51).encode()).unwrap();
        let (_, problem) = TxnIndex::open(path, 100).unwrap();
        assert!(problem.unwrap().contains("below the segment's base offset"));
    }

    #[test]
    fn collect_stops_once_the_last_stable_offset_passes_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::empty(dir.path().join("00000000000000000000.txnindex"));
        // pid 1 aborted [0, 10] while pid 2 was open from 5; pid 2 aborted [5, 20]; pid 3 [30, 40].
        index.append(txn(1, 0, 10, 5)).unwrap();
        index.append(txn(2, 5, 20, 21)).unwrap();
        index.append(txn(3, 30, 40, 41)).unwrap();
        let found = index.collect(0, 8);
        assert_eq!(found.aborted, vec![txn(1, 0, 10, 5), txn(2, 5, 20, 21)]);
        assert!(found.complete);
        let found = index.collect(11, 25);
        assert_eq!(found.aborted, vec![txn(2, 5, 20, 21)]);
        assert!(found.complete);
        let found = index.collect(0, 100);
        assert_eq!(found.aborted.len(), 3);
        assert!(!found.complete);
        let found = index.collect(21, 35);
        assert_eq!(found.aborted, vec![txn(3, 30, 40, 41)]);
        assert!(found.complete);
    }
}
