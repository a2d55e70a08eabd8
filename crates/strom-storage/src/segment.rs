//! One log segment: `<base>.log` holding whole batches end to end, with its sparse `.index` and
//! `.timeindex`, and the bookkeeping Kafka's `LogSegment` keeps (size, largest timestamp, the
//! timestamp that `segment.ms` is measured from, bytes since the last index entry).
//!
//! A segment's files can carry a temporary suffix while the cleaner builds or swaps them in
//! (`.cleaned`, `.swap`) or while they wait to be removed (`.deleted`); [`Segment::change_suffix`]
//! renames all three. With `preallocate` the `.log` starts at `segment.bytes` and is cut back when
//! the segment is sealed. A failed write is cut back at once, so a torn batch is never left behind
//! when the disk allows it.
//!
//! Also here: [`BatchScanner`], the buffered walk over the batches of a file region that reads,
//! recovery, the cleaner and the timestamp searches share. Functions that take a [`SegmentSpan`] run without
//! the log's lock: they only read bytes below a size captured under it, and batches below that
//! size never change.

use std::fs::{File, OpenOptions};
use std::io;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use strom_protocol::batch::{self, BatchHeader, HEADER_LEN, TimestampType};
use strom_protocol::kafka_protocol::records::RecordBatchDecoder;

use crate::index::{NO_TIMESTAMP, OffsetIndex, TimeIndex};
use crate::txn_index::{AbortedTxn, TXN_INDEX_SUFFIX, TxnIndex, TxnSearch};
use crate::{StorageError, TimestampOffset};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Kafka's temporary suffixes: a cleaner output being written, a cleaner output ready to replace
/// the segments it was made from, and files waiting for `file.delete.delay.ms`.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
pub(crate) const SWAP_SUFFIX: &str = ".swap";
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// Gives each segment object an identity, so a cleaner can tell at swap time whether the
/// segments it read are still the ones in the log (retention or a truncation may have replaced
/// them meanwhile).
static NEXT_SEGMENT_ID: AtomicU64 = AtomicU64::new(1);

/// Read size while walking batch headers to find an offset or a timestamp: covers the default
/// `index.interval.bytes` in one read.
pub(crate) const SEARCH_CHUNK: usize = 16 * 1024;
/// Read size while rescanning a whole segment during recovery.
const RECOVERY_CHUNK: usize = 1024 * 1024;

/// `<dir>/<20-digit base offset><suffix>`, Kafka's file naming.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// `<dir>/<20-digit base offset><kind><extra>`, e.g. `...0042.log.cleaned`.
fn segment_file_with(dir: &Path, base_offset: i64, kind: &str, extra: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{kind}{extra}"))
}

/// Replaces a path's trailing `from` with `to`.
fn change_suffix(path: &Path, from: &str, to: &str) -> PathBuf {
    let name = path.as_os_str().to_string_lossy();
    let stem = name.strip_suffix(from).unwrap_or(&name);
    PathBuf::from(format!("{stem}{to}"))
}

/// Why a walk over batches stopped early.
#[derive(Debug)]
pub(crate) enum ScanError {
    Io(io::Error),
    /// The bytes at `position` are not a whole, valid batch.
    Invalid {
        position: u64,
        reason: String,
    },
}

impl From<io::Error> for ScanError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl ScanError {
    fn into_storage(self, path: &Path) -> StorageError {
        match self {
            Self::Io(e) => StorageError::io(path, e),
            Self::Invalid { position, reason } => StorageError::Corrupt {
                path: path.display().to_string(),
                reason: format!("at byte {position}: {reason}"),
            },
        }
    }
}

/// Walks the batches in `[start, end)` of a file, reading it in chunks. Checks framing only;
/// callers that need more (the CRC in recovery) ask for the batch's bytes.
pub(crate) struct BatchScanner<'f> {
    file: &'f File,
    next: u64,
    end: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    buf_len: usize,
    chunk: usize,
}

impl<'f> BatchScanner<'f> {
    pub(crate) fn new(file: &'f File, start: u64, end: u64, chunk: usize) -> Self {
        Self {
            file,
            next: start,
            end,
            buf: Vec::new(),
            buf_pos: 0,
            buf_len: 0,
            chunk,
        }
    }

    /// Makes `[pos, pos + len)` (which the caller knows to be below `end`) available in `buf`.
    fn fill(&mut self, pos: u64, len: usize) -> io::Result<()> {
        let have_end = self.buf_pos + self.buf_len as u64;
        if pos >= self.buf_pos && pos + len as u64 <= have_end {
            return Ok(());
        }
        let want = (len.max(self.chunk) as u64).min(self.end - pos) as usize;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        self.file.read_exact_at(&mut self.buf[..want], pos)?;
        self.buf_pos = pos;
        self.buf_len = want;
        Ok(())
    }

    fn slice(&self, pos: u64, len: usize) -> &[u8] {
        let start = (pos - self.buf_pos) as usize;
        &self.buf[start..start + len]
    }

    /// The next batch's position and header; `None` at `end`. A batch that does not fit before
    /// `end`, or whose header is invalid, is `ScanError::Invalid`.
    pub(crate) fn next_header(&mut self) -> Result<Option<(u64, BatchHeader)>, ScanError> {
        if self.next >= self.end {
            return Ok(None);
        }
        let pos = self.next;
        let available = self.end - pos;
        if available < HEADER_LEN as u64 {
            return Err(ScanError::Invalid {
                position: pos,
                reason: format!("{available} bytes left, less than a batch header"),
            });
        }
        self.fill(pos, HEADER_LEN)?;
        let header =
            BatchHeader::parse(self.slice(pos, HEADER_LEN)).map_err(|e| ScanError::Invalid {
                position: pos,
                reason: e.to_string(),
            })?;
        if header.size() as u64 > available {
            return Err(ScanError::Invalid {
                position: pos,
                reason: format!(
                    "batch of {} bytes, only {available} left in the file",
                    header.size()
                ),
            });
        }
        self.next = pos + header.size() as u64;
        Ok(Some((pos, header)))
    }

    /// The whole bytes of a batch that `next_header` returned.
    pub(crate) fn batch_bytes(&mut self, pos: u64, header: &BatchHeader) -> io::Result<&[u8]> {
        self.fill(pos, header.size())?;
        Ok(self.slice(pos, header.size()))
    }
}

/// What a read needs from a segment, captured under the log's lock and used without it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSpan {
    pub(crate) file: Arc<File>,
    pub(crate) path: Arc<Path>,
    /// First byte to look at (a batch boundary).
    pub(crate) start: u64,
    /// The segment's size when captured (a batch boundary).
    pub(crate) end: u64,
}

impl SegmentSpan {
    /// The first batch at or after `start` whose last offset is >= `offset`.
    pub(crate) fn find_offset(
        &self,
        offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let mut scanner = BatchScanner::new(&self.file, self.start, self.end, SEARCH_CHUNK);
        while let Some((pos, header)) = scanner
            .next_header()
            .map_err(|e| e.into_storage(&self.path))?
        {
            if header.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
        }
        Ok(None)
    }

    /// Kafka's `FileRecords.searchForTimestamp`: the first record at or after `start` with a
    /// timestamp >= `timestamp` and an offset >= `min_offset`.
    pub(crate) fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        let mut scanner = BatchScanner::new(&self.file, self.start, self.end, SEARCH_CHUNK);
        while let Some((pos, header)) = scanner
            .next_header()
            .map_err(|e| e.into_storage(&self.path))?
        {
            if header.max_timestamp < timestamp || header.last_offset() < min_offset {
                continue;
            }
            if header.timestamp_type() == TimestampType::LogAppendTime {
                // Every record of a LogAppendTime batch carries the batch's max timestamp.
                return Ok(Some(TimestampOffset {
                    timestamp: header.max_timestamp,
                    offset: header.base_offset.max(min_offset),
                }));
            }
            let bytes = scanner
                .batch_bytes(pos, &header)
                .map_err(|e| StorageError::io(&self.path, e))?;
            let found = decode_records(&self.path, bytes)?
                .into_iter()
                .find(|r| r.timestamp >= timestamp && r.offset >= min_offset);
            if let Some(found) = found {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first record with exactly `max_timestamp`, in the first batch whose header says that
    /// is its largest (Kafka's `RecordBatch.offsetOfMaxTimestamp`).
    pub(crate) fn find_max_timestamp(
        &self,
        max_timestamp: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        let mut scanner = BatchScanner::new(&self.file, self.start, self.end, SEARCH_CHUNK);
        while let Some((pos, header)) = scanner
            .next_header()
            .map_err(|e| e.into_storage(&self.path))?
        {
            if header.max_timestamp != max_timestamp {
                continue;
            }
            if header.timestamp_type() == TimestampType::LogAppendTime {
                return Ok(Some(TimestampOffset {
                    timestamp: max_timestamp,
                    offset: header.base_offset,
                }));
            }
            let bytes = scanner
                .batch_bytes(pos, &header)
                .map_err(|e| StorageError::io(&self.path, e))?;
            return Ok(decode_records(&self.path, bytes)?
                .into_iter()
                .find(|r| r.timestamp == max_timestamp));
        }
        Ok(None)
    }
}

/// The timestamp and offset of every record of one stored batch (decompressing it).
fn decode_records(path: &Path, batch: &[u8]) -> Result<Vec<TimestampOffset>, StorageError> {
    let mut buf = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| StorageError::Corrupt {
        path: path.display().to_string(),
        reason: format!("cannot decode records: {e}"),
    })?;
    Ok(set
        .records
        .iter()
        .map(|r| TimestampOffset {
            timestamp: r.timestamp,
            offset: r.offset,
        })
        .collect())
}

/// What loading or recovering a segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoadOutcome {
    /// The offset after the segment's last batch (its base offset when empty).
    pub(crate) next_offset: i64,
    /// Bytes cut from the end of the `.log` because they were not valid batches.
    pub(crate) truncated_bytes: u64,
    /// Every batch was rescanned (recovery, or a bad index): the transaction index was emptied
    /// and must be rebuilt from the producer state replay.
    pub(crate) rescanned: bool,
}

/// The limits an append is checked against before it goes to the active segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RollParams {
    pub(crate) max_segment_bytes: u64,
    pub(crate) max_segment_ms: i64,
    pub(crate) roll_jitter_ms: i64,
    pub(crate) max_index_bytes: u64,
    pub(crate) batch_size: u64,
    pub(crate) batch_max_timestamp: i64,
    pub(crate) batch_last_offset: i64,
    pub(crate) now_ms: fn() -> i64,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) id: u64,
    log_path: Arc<Path>,
    file: Arc<File>,
    /// Bytes of whole batches; the file may be longer only after a failed write (`tail_dirty`).
    size: u64,
    tail_dirty: bool,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Aborted transactions whose marker is in this segment.
    txn_index: TxnIndex,
    /// Largest batch max timestamp so far and the last offset of the batch that first had it
    /// (Kafka's "shallow" offset); `NO_TIMESTAMP` / -1 until known.
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// The max timestamp of the segment's first batch: `segment.ms` counts from it.
    rolling_timestamp: Option<i64>,
    /// Wall clock when this segment object was made: `segment.ms` counts from it when batches
    /// carry no timestamps.
    created_ms: i64,
    bytes_since_last_index_entry: u64,
    /// Changes to the segment's files, and how many of them the last fsync covered.
    writes: u64,
    flushed_writes: u64,
    /// The file was extended to `segment.bytes` at creation (`preallocate`): it is cut back to
    /// `size` when the segment is sealed.
    preallocated: bool,
    /// Test hook: the next append writes part of the batch and then fails with this error.
    #[cfg(test)]
    pub(crate) fail_next_write: Option<io::Error>,
}

impl Segment {
    /// Creates a new empty segment, replacing any stale files of the same name.
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self, StorageError> {
        Self::create_with(dir, base_offset, now_ms, "", None)
    }

    /// Creates a new empty segment whose file names end with `extra` (`.cleaned` for cleaner
    /// output). With `preallocate`, the `.log` is allocated to that many bytes up front, as
    /// Kafka's `preallocate` does; the zero-filled tail is cut when the segment is sealed, and
    /// recovery after a crash stops at it (zeros are not a valid batch).
    pub(crate) fn create_with(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        extra: &str,
        preallocate: Option<u64>,
    ) -> Result<Self, StorageError> {
        let log_path = segment_file_with(dir, base_offset, LOG_SUFFIX, extra);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        // A stale transaction index of the same name would otherwise be read as this one's.
        let txn_path = segment_file_with(dir, base_offset, TXN_INDEX_SUFFIX, extra);
        match std::fs::remove_file(&txn_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&txn_path, e)),
        }
        if let Some(bytes) = preallocate.filter(|&b| b > 0) {
            preallocate_file(&file, bytes).map_err(|e| StorageError::io(&log_path, e))?;
        }
        let (mut segment, _, _, _) =
            Self::with_file_in(dir, base_offset, log_path, file, now_ms, extra)?;
        segment.size = 0;
        segment.preallocated = preallocate.is_some_and(|b| b > 0);
        segment.reset_indexes()?;
        Ok(segment)
    }

    /// Opens an existing segment's files; the indexes are read as they are, not yet judged.
    /// Returns whether both index files existed, and what is wrong with the transaction index
    /// if it cannot be used (it must then be rebuilt).
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<(Self, bool, Option<String>), StorageError> {
        let log_path = segment_file(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StorageError::io(&log_path, e))?;
        let (segment, offset_existed, time_existed, txn_problem) =
            Self::with_file(dir, base_offset, log_path, file, now_ms)?;
        Ok((segment, offset_existed && time_existed, txn_problem))
    }

    fn with_file(
        dir: &Path,
        base_offset: i64,
        log_path: PathBuf,
        file: File,
        now_ms: i64,
    ) -> Result<(Self, bool, bool, Option<String>), StorageError> {
        Self::with_file_in(dir, base_offset, log_path, file, now_ms, "")
    }

    fn with_file_in(
        dir: &Path,
        base_offset: i64,
        log_path: PathBuf,
        file: File,
        now_ms: i64,
        extra: &str,
    ) -> Result<(Self, bool, bool, Option<String>), StorageError> {
        let size = file
            .metadata()
            .map_err(|e| StorageError::io(&log_path, e))?
            .len();
        let index_path = segment_file_with(dir, base_offset, INDEX_SUFFIX, extra);
        let (offset_index, offset_existed) = OffsetIndex::open(index_path.clone(), base_offset)
            .map_err(|e| StorageError::io(&index_path, e))?;
        let time_path = segment_file_with(dir, base_offset, TIME_INDEX_SUFFIX, extra);
        let (time_index, time_existed) = TimeIndex::open(time_path.clone(), base_offset)
            .map_err(|e| StorageError::io(&time_path, e))?;
        let txn_path = segment_file_with(dir, base_offset, TXN_INDEX_SUFFIX, extra);
        let (txn_index, txn_problem) = TxnIndex::open(txn_path.clone(), base_offset)
            .map_err(|e| StorageError::io(&txn_path, e))?;
        let (max_timestamp, offset_of_max_timestamp) =
            time_index.last_entry().unwrap_or((NO_TIMESTAMP, -1));
        Ok((
            Self {
                base_offset,
                id: NEXT_SEGMENT_ID.fetch_add(1, Ordering::Relaxed),
                log_path: Arc::from(log_path),
                file: Arc::new(file),
                size,
                tail_dirty: false,
                offset_index,
                time_index,
                txn_index,
                max_timestamp,
                offset_of_max_timestamp,
                rolling_timestamp: None,
                created_ms: now_ms,
                bytes_since_last_index_entry: 0,
                writes: 0,
                flushed_writes: 0,
                preallocated: false,
                #[cfg(test)]
                fail_next_write: None,
            },
            offset_existed,
            time_existed,
            txn_problem,
        ))
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn max_timestamp(&self) -> (i64, i64) {
        (self.max_timestamp, self.offset_of_max_timestamp)
    }

    /// Kafka's `LogSegment.largestTimestamp`: the largest record timestamp, or the file's
    /// modification time when no batch carries one. Retention by time compares this with now.
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// The paths of the segment's files: `.log`, `.index`, `.timeindex`, and `.txnindex` when
    /// it exists.
    pub(crate) fn file_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![
            self.log_path.to_path_buf(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        if self.txn_index.file().is_some() {
            paths.push(self.txn_index.path().to_path_buf());
        }
        paths
    }

    /// Renames the segment's files from names ending in `from` to names ending in `to` (Kafka's
    /// `changeFileSuffixes`). Open handles, and reads through them, are unaffected.
    pub(crate) fn change_suffix(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let log_new = change_suffix(&self.log_path, from, to);
        std::fs::rename(&*self.log_path, &log_new)
            .map_err(|e| StorageError::io(&*self.log_path, e))?;
        self.log_path = Arc::from(log_new);
        let index_new = change_suffix(self.offset_index.path(), from, to);
        std::fs::rename(self.offset_index.path(), &index_new)
            .map_err(|e| StorageError::io(self.offset_index.path(), e))?;
        self.offset_index.set_path(index_new);
        let time_new = change_suffix(self.time_index.path(), from, to);
        std::fs::rename(self.time_index.path(), &time_new)
            .map_err(|e| StorageError::io(self.time_index.path(), e))?;
        self.time_index.set_path(time_new);
        let txn_new = change_suffix(self.txn_index.path(), from, to);
        let txn_old = self.txn_index.path().to_path_buf();
        self.txn_index
            .rename(txn_new)
            .map_err(|e| StorageError::io(&txn_old, e))?;
        Ok(())
    }

    /// A read span over this segment from `start` to its current end.
    pub(crate) fn span(&self, start: u64) -> SegmentSpan {
        SegmentSpan {
            file: self.file.clone(),
            path: self.log_path.clone(),
            start,
            end: self.size,
        }
    }

    /// The position to start scanning from for `offset`.
    pub(crate) fn lookup_offset(&self, offset: i64) -> u32 {
        self.offset_index.lookup(offset).1
    }

    /// The offset to start a timestamp search from (Kafka's time index lookup).
    pub(crate) fn lookup_timestamp(&self, timestamp: i64) -> i64 {
        self.time_index.lookup(timestamp).1
    }

    /// Loads a segment after a clean shutdown: checks the indexes against the log (Kafka's
    /// `sanityCheck`, plus the last offset entry must point at the batch it names) and finds the
    /// segment's next offset by walking from the last index entry to the end. A missing or bad
    /// index, or bad framing after the last entry, sends the segment through recovery.
    pub(crate) fn load(
        &mut self,
        indexes_existed: bool,
        index_interval_bytes: u64,
    ) -> Result<LoadOutcome, StorageError> {
        let checked = if indexes_existed {
            self.check_indexes()?
        } else {
            Err("index file missing".to_string())
        };
        match checked {
            Ok(next_offset) => Ok(LoadOutcome {
                next_offset,
                truncated_bytes: 0,
                rescanned: false,
            }),
            Err(reason) => {
                tracing::warn!(
                    segment = %self.log_path.display(),
                    %reason,
                    "rebuilding the indexes of a log segment"
                );
                self.recover(index_interval_bytes)
            }
        }
    }

    /// The segment's next offset when the indexes are consistent with the log, else why not.
    fn check_indexes(&self) -> Result<Result<i64, String>, StorageError> {
        if let Err(reason) = self.offset_index.sanity_check(self.size) {
            return Ok(Err(reason));
        }
        let (start, entry_offset) = match self.offset_index.last_entry() {
            Some((offset, position)) => (u64::from(position), Some(offset)),
            None => (0, None),
        };
        let mut scanner = BatchScanner::new(&self.file, start, self.size, SEARCH_CHUNK);
        let mut next_offset = self.base_offset;
        let mut first = true;
        loop {
            match scanner.next_header() {
                Ok(Some((_, header))) => {
                    if first {
                        if let Some(offset) = entry_offset
                            && header.last_offset() != offset
                        {
                            return Ok(Err(format!(
                                "last index entry names offset {offset}, the batch there ends at \
                                 {}",
                                header.last_offset()
                            )));
                        }
                        first = false;
                    }
                    if header.base_offset < next_offset || header.last_offset_delta < 0 {
                        return Ok(Err("offsets do not increase".into()));
                    }
                    next_offset = header.next_offset();
                }
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(StorageError::io(&*self.log_path, e)),
                Err(ScanError::Invalid { position, reason }) => {
                    return Ok(Err(format!("invalid batch at byte {position}: {reason}")));
                }
            }
        }
        if let Err(reason) = self.time_index.sanity_check(next_offset) {
            return Ok(Err(reason));
        }
        Ok(Ok(next_offset))
    }

    /// Kafka's `LogSegment.recover`: rescans every batch (framing, magic, CRC-32C, offsets that
    /// increase and fit the index), rebuilds both indexes as appends would have built them, and
    /// cuts the `.log` at the first batch that fails. The transaction index is emptied: it needs
    /// the producer state at the segment's start, so the log rebuilds it while replaying
    /// producer state.
    pub(crate) fn recover(
        &mut self,
        index_interval_bytes: u64,
    ) -> Result<LoadOutcome, StorageError> {
        self.reset_indexes()?;
        self.reset_txn_index()?;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = -1;
        let file_len = self
            .file
            .metadata()
            .map_err(|e| StorageError::io(&*self.log_path, e))?
            .len();
        let mut scanner = BatchScanner::new(&self.file, 0, file_len, RECOVERY_CHUNK);
        let mut valid_bytes = 0u64;
        let mut last_index_entry = 0u64;
        let mut next_offset = self.base_offset;
        loop {
            let (pos, header) = match scanner.next_header() {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(StorageError::io(&*self.log_path, e)),
                Err(ScanError::Invalid { position, reason }) => {
                    tracing::warn!(
                        segment = %self.log_path.display(),
                        position,
                        %reason,
                        "invalid batch found during recovery"
                    );
                    break;
                }
            };
            let bytes = scanner
                .batch_bytes(pos, &header)
                .map_err(|e| StorageError::io(&*self.log_path, e))?;
            let problem = if let Err(e) = batch::verify_crc(&header, bytes) {
                Some(e.to_string())
            } else if header.last_offset_delta < 0 {
                Some(format!(
                    "negative last offset delta {}",
                    header.last_offset_delta
                ))
            } else if header.base_offset < next_offset {
                Some(format!(
                    "base offset {} is below the expected {next_offset}",
                    header.base_offset
                ))
            } else if header.last_offset() - self.base_offset > i64::from(i32::MAX) {
                Some(format!(
                    "offset {} does not fit the segment's index",
                    header.last_offset()
                ))
            } else {
                None
            };
            if let Some(reason) = problem {
                tracing::warn!(
                    segment = %self.log_path.display(),
                    position = pos,
                    %reason,
                    "invalid batch found during recovery"
                );
                break;
            }
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.offset_of_max_timestamp = header.last_offset();
            }
            if valid_bytes - last_index_entry > index_interval_bytes
                && valid_bytes <= u64::from(u32::MAX)
            {
                self.offset_index
                    .append(header.last_offset(), valid_bytes as u32);
                self.time_index
                    .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
                last_index_entry = valid_bytes;
            }
            valid_bytes += header.size() as u64;
            next_offset = header.next_offset();
        }
        let truncated_bytes = file_len - valid_bytes;
        if truncated_bytes > 0 {
            tracing::warn!(
                segment = %self.log_path.display(),
                truncated_bytes,
                valid_bytes,
                "truncating log segment after recovery"
            );
            self.file
                .set_len(valid_bytes)
                .map_err(|e| StorageError::io(&*self.log_path, e))?;
        }
        self.size = valid_bytes;
        self.tail_dirty = false;
        self.bytes_since_last_index_entry = valid_bytes - last_index_entry;
        // A closed segment's time index always ends with its largest timestamp.
        self.time_index
            .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        self.persist_indexes()?;
        self.writes += 1;
        Ok(LoadOutcome {
            next_offset,
            truncated_bytes,
            rescanned: true,
        })
    }

    /// Reads the first batch's max timestamp, which `segment.ms` is measured from.
    pub(crate) fn load_rolling_timestamp(&mut self) -> Result<(), StorageError> {
        if self.size == 0 {
            self.rolling_timestamp = None;
            return Ok(());
        }
        let mut scanner = BatchScanner::new(&self.file, 0, self.size, HEADER_LEN);
        if let Some((_, header)) = scanner
            .next_header()
            .map_err(|e| e.into_storage(&self.log_path))?
        {
            self.rolling_timestamp = Some(header.max_timestamp);
        }
        Ok(())
    }

    /// Kafka's `LogSegment.shouldRoll`.
    pub(crate) fn should_roll(&self, p: &RollParams) -> bool {
        if self.size == 0 {
            // An empty segment already starts at the next offset; rolling it would only
            // replace it with another empty one.
            return false;
        }
        let full = self.size > p.max_segment_bytes.saturating_sub(p.batch_size);
        let waited = match self.rolling_timestamp {
            Some(ts) if ts >= 0 => p.batch_max_timestamp.saturating_sub(ts),
            _ => (p.now_ms)().saturating_sub(self.created_ms),
        };
        let too_old = waited > p.max_segment_ms.saturating_sub(p.roll_jitter_ms);
        let index_full = self.offset_index.is_full(p.max_index_bytes)
            || self.time_index.is_full(p.max_index_bytes);
        let offset_overflow = p.batch_last_offset - self.base_offset > i64::from(i32::MAX);
        full || too_old || index_full || offset_overflow
    }

    /// Kafka's `LogSegment.append` for one batch whose offsets are already assigned: one
    /// positional write, then the in-memory bookkeeping and (sometimes) index entries.
    /// Appends one batch given as its (patched) header and its records.
    pub(crate) fn append(
        &mut self,
        header: &[u8],
        records: &[u8],
        last_offset: i64,
        max_timestamp: i64,
        index_interval_bytes: u64,
    ) -> Result<(), StorageError> {
        let position = self.size;
        let batch_len = (header.len() + records.len()) as u64;
        if let Err(e) = self.write_batch_at(header, records, position) {
            // Part of the batch may be in the file past `size`: cut it now, so that neither a
            // reader nor the next start sees it. If even that fails, recovery cuts it (the dir
            // goes offline and gets no clean-shutdown marker).
            match self.file.set_len(position) {
                Ok(()) => self.tail_dirty = false,
                Err(cut) => {
                    tracing::warn!(segment = %self.log_path.display(), error = %cut, "cannot cut a partial write");
                    self.tail_dirty = true;
                }
            }
            return Err(StorageError::io(&*self.log_path, e));
        }
        if position == 0 {
            self.rolling_timestamp = Some(max_timestamp);
        }
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_last_index_entry > index_interval_bytes {
            self.offset_index.append(last_offset, position as u32);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index_entry = 0;
            // The entries stay in memory if this fails; the next flush retries and reports it.
            if let Err(e) = self
                .offset_index
                .maybe_persist()
                .and_then(|()| self.time_index.maybe_persist())
            {
                tracing::warn!(segment = %self.log_path.display(), error = %e, "cannot write index entries");
            }
        }
        self.bytes_since_last_index_entry += batch_len;
        self.size += batch_len;
        self.writes += 1;
        Ok(())
    }

    fn write_batch_at(&mut self, header: &[u8], records: &[u8], position: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(e) = self.fail_next_write.take() {
            // A disk that fills up half way through the batch.
            self.file
                .write_all_at(&header[..header.len() / 2], position)?;
            return Err(e);
        }
        write_all_vectored_at(
            &self.file,
            &mut [IoSlice::new(header), IoSlice::new(records)],
            position,
        )
    }

    /// Kafka's `onBecomeInactiveSegment` (and the index part of `close`): records the largest
    /// timestamp as the last time index entry, writes out both indexes and cuts any bytes a
    /// failed write (or preallocation) left past the end.
    pub(crate) fn seal(&mut self) -> Result<(), StorageError> {
        if self.offset_of_max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        }
        self.persist_indexes()?;
        if self.tail_dirty || self.preallocated {
            self.preallocated = false;
            self.file
                .set_len(self.size)
                .map_err(|e| StorageError::io(&*self.log_path, e))?;
            self.tail_dirty = false;
        }
        self.writes += 1;
        Ok(())
    }

    pub(crate) fn persist_indexes(&mut self) -> Result<(), StorageError> {
        if self.offset_index.has_unpersisted() {
            self.offset_index
                .persist()
                .map_err(|e| StorageError::io(self.offset_index.path(), e))?;
        }
        if self.time_index.has_unpersisted() {
            self.time_index
                .persist()
                .map_err(|e| StorageError::io(self.time_index.path(), e))?;
        }
        Ok(())
    }

    fn reset_indexes(&mut self) -> Result<(), StorageError> {
        self.offset_index
            .reset()
            .map_err(|e| StorageError::io(self.offset_index.path(), e))?;
        self.time_index
            .reset()
            .map_err(|e| StorageError::io(self.time_index.path(), e))
    }

    /// Whether anything changed since the last fsync.
    pub(crate) fn is_dirty(&self) -> bool {
        self.writes != self.flushed_writes
            || self.offset_index.has_unpersisted()
            || self.time_index.has_unpersisted()
    }

    /// Writes out pending index entries and returns what an fsync must cover, with the change
    /// count it will make durable. Called under the log's lock; the fsync runs without it.
    pub(crate) fn prepare_flush(&mut self) -> Result<FlushTarget, StorageError> {
        self.persist_indexes()?;
        let mut files = vec![
            (self.file.clone(), PathBuf::from(&*self.log_path)),
            (
                self.offset_index.file(),
                self.offset_index.path().to_path_buf(),
            ),
            (self.time_index.file(), self.time_index.path().to_path_buf()),
        ];
        if let Some(file) = self.txn_index.file() {
            files.push((file, self.txn_index.path().to_path_buf()));
        }
        Ok(FlushTarget {
            id: self.id,
            files,
            writes: self.writes,
        })
    }

    pub(crate) fn flushed(&mut self, writes: u64) {
        self.flushed_writes = self.flushed_writes.max(writes);
    }

    /// Removes the segment's files (after recovery decided they hold no valid data).
    pub(crate) fn delete_files(dir: &Path, base_offset: i64) -> Result<(), StorageError> {
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            let path = segment_file(dir, base_offset, suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// Entries in the offset and time index (the cleaner sizes its groups by them).
    pub(crate) fn index_entry_counts(&self) -> (usize, usize) {
        (self.offset_index.len(), self.time_index.len())
    }

    /// Records an aborted transaction whose marker this segment holds (Kafka's
    /// `LogSegment.updateTxnIndex`). Durable with the segment's next flush.
    pub(crate) fn append_aborted_txn(&mut self, txn: AbortedTxn) -> Result<(), StorageError> {
        self.txn_index
            .append(txn)
            .map_err(|e| StorageError::io(self.txn_index.path(), e))?;
        self.writes += 1;
        Ok(())
    }

    /// Empties the transaction index (before it is rebuilt).
    pub(crate) fn reset_txn_index(&mut self) -> Result<(), StorageError> {
        self.txn_index
            .reset()
            .map_err(|e| StorageError::io(self.txn_index.path(), e))?;
        self.writes += 1;
        Ok(())
    }

    /// The aborted transactions whose marker is in this segment, in marker order.
    pub(crate) fn aborted_txns(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }

    /// Kafka's `LogSegment.collectAbortedTxns`.
    pub(crate) fn collect_aborted_txns(&self, fetch_offset: i64, upper_bound: i64) -> TxnSearch {
        self.txn_index.collect(fetch_offset, upper_bound)
    }
}

/// Files of one segment to fsync, and the change count that makes durable.
#[derive(Debug)]
pub(crate) struct FlushTarget {
    pub(crate) id: u64,
    pub(crate) files: Vec<(Arc<File>, PathBuf)>,
    pub(crate) writes: u64,
}

/// Allocates `bytes` for a new segment file (extending it, as Kafka's `preallocate` does). Where
/// the filesystem cannot allocate, the file is only extended (sparse), which is what Kafka's
/// `RandomAccessFile.setLength` amounts to.
fn preallocate_file(file: &File, bytes: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, bytes) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) | Err(rustix::io::Errno::NOSYS) => file.set_len(bytes),
        Err(e) => Err(e.into()),
    }
}

/// `pwritev` until everything is written: one system call for a whole batch in the common case.
fn write_all_vectored_at(
    file: &File,
    mut bufs: &mut [IoSlice<'_>],
    mut offset: u64,
) -> std::io::Result<()> {
    while !bufs.is_empty() {
        match rustix::io::pwritev(file, bufs, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                offset += n as u64;
                IoSlice::advance_slices(&mut bufs, n);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
