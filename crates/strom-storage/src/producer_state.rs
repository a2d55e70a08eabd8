//! Idempotent producer state, after Kafka's `ProducerStateManager`, `ProducerAppendInfo` and
//! `ProducerStateEntry`.
//!
//! Per producer id the partition remembers the epoch, the last five batches (first/last sequence,
//! last offset, offset delta, max timestamp), the last timestamp, the coordinator epoch and an open
//! transaction's first offset. An append is checked against it before any byte is written:
//!
//! ```text
//!  batch epoch < known epoch                      -> INVALID_PRODUCER_EPOCH
//!  same epoch, sequence range of a cached batch   -> duplicate: not written, original offsets
//!  new epoch, first sequence != 0 (known producer)-> OUT_OF_ORDER_SEQUENCE_NUMBER
//!  same epoch, first sequence != last + 1         -> OUT_OF_ORDER_SEQUENCE_NUMBER
//!  unknown producer, any sequence                 -> accepted (Kafka 4.x: no UNKNOWN_PRODUCER_ID)
//! ```
//!
//! The state is snapshotted in Kafka's `.snapshot` format (`ProducerSnapshot` v1, CRC-32C) at each
//! segment roll and at clean shutdown, named by the offset it covers up to; at open the latest
//! snapshot is loaded and the log tail after it is replayed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use strom_protocol::batch::BatchHeader;

use crate::StorageError;
use crate::records::{self, ControlType};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub(crate) const NUM_BATCHES_TO_RETAIN: usize = 5;
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;
pub(crate) const NO_SEQUENCE: i32 = -1;
pub(crate) const SNAPSHOT_SUFFIX: &str = ".snapshot";

const SNAPSHOT_VERSION: i16 = 1;
/// Version (2) + CRC (4): the CRC covers everything after them.
const SNAPSHOT_ENTRIES_OFFSET: usize = 6;
/// Bytes of one entry in a v1 snapshot.
const SNAPSHOT_ENTRY_SIZE: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Kafka's `DefaultRecordBatch.decrementSequence`.
pub(crate) fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX - (decrement - sequence) + 1
    } else {
        sequence - decrement
    }
}

/// A batch's last sequence (`NO_SEQUENCE` when it has none).
pub(crate) fn last_sequence(header: &BatchHeader) -> i32 {
    if header.base_sequence == NO_SEQUENCE {
        NO_SEQUENCE
    } else {
        increment_sequence(header.base_sequence, header.last_offset_delta)
    }
}

/// Where an append comes from decides how much is checked (Kafka's `AppendOrigin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: epoch, sequence and duplicate checks.
    Client,
    /// The group or transaction coordinator: epoch checks only.
    Coordinator,
    /// A follower copying the leader, or recovery replaying the log: nothing is refused (only
    /// an older epoch is logged). `Log::append_as` still assigns the next offsets; a follower
    /// append that keeps the leader's offsets does not exist yet.
    Replication,
}

/// One of the last batches of a producer (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMetadata {
    pub(crate) last_seq: i32,
    pub(crate) last_offset: i64,
    pub(crate) offset_delta: i32,
    /// The batch's max timestamp.
    pub(crate) timestamp: i64,
}

impl BatchMetadata {
    pub(crate) fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }

    pub(crate) fn first_offset(&self) -> i64 {
        self.last_offset - i64::from(self.offset_delta)
    }
}

/// What a partition knows of one producer (Kafka's `ProducerStateEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerStateEntry {
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    pub(crate) batches: VecDeque<BatchMetadata>,
    pub(crate) coordinator_epoch: i32,
    pub(crate) last_timestamp: i64,
    pub(crate) current_txn_first_offset: Option<i64>,
}

impl ProducerStateEntry {
    fn empty(producer_id: i64) -> Self {
        Self {
            producer_id,
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            last_timestamp: -1,
            current_txn_first_offset: None,
        }
    }

    pub(crate) fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    pub(crate) fn last_data_offset(&self) -> Option<i64> {
        self.batches.back().map(|b| b.last_offset)
    }

    fn maybe_update_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
    }

    /// Kafka's `findDuplicateBatch`: a cached batch of the same epoch with the same sequence range.
    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq() == first_seq && b.last_seq == last_seq)
            .copied()
    }
}

/// Kafka's `inSequence`.
fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// The outcome of checking a batch against the producer state.
#[derive(Debug)]
pub(crate) enum Checked {
    /// No producer id, or nothing to record (an empty control batch).
    Untracked,
    /// A retry of a batch already in the log: return its offsets, write nothing.
    Duplicate(BatchMetadata),
    /// Write it, then apply this entry (and complete this transaction: a marker that ended
    /// one).
    Update(ProducerStateEntry, Option<CompletedTxn>),
}

/// A transaction a marker ended (Kafka's `CompletedTxn`). Only a marker that closes an open
/// transaction makes one: a marker for a producer without one changes no offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub(crate) producer_id: i64,
    pub(crate) first_offset: i64,
    /// The marker's offset.
    pub(crate) last_offset: i64,
    pub(crate) aborted: bool,
}

/// What the cleaner needs to keep the last batch of each live producer (Kafka's `LastRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LastRecord {
    pub(crate) last_data_offset: Option<i64>,
    pub(crate) epoch: i16,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSnapshotEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Last sequence written (-1 when none is cached).
    pub last_sequence: i32,
    /// Max timestamp of the producer's last batch (or of its last transaction marker).
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote its last transaction marker; -1 when none.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction; -1 when none.
    pub current_txn_start_offset: i64,
}

#[derive(Debug)]
pub(crate) struct ProducerStateManager {
    dir: PathBuf,
    producers: HashMap<i64, ProducerStateEntry>,
    /// Open transactions by first offset -> producer id (Kafka's `ongoingTxns`): the first one
    /// bounds the last stable offset.
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose marker is not yet below the high watermark, by first offset
    /// -> marker offset (Kafka's `unreplicatedTxns`): until the marker is replicated, a new
    /// leader might not have it, so the transaction's records stay above the last stable offset.
    unreplicated: BTreeMap<i64, i64>,
    /// Snapshot files by the offset they cover up to.
    snapshots: BTreeMap<i64, PathBuf>,
    /// The state reflects the log up to (excluding) this offset.
    last_map_offset: i64,
    last_snap_offset: i64,
}

pub(crate) fn snapshot_file(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

fn snapshot_offset(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl ProducerStateManager {
    /// Finds the snapshot files in `dir`; the state itself starts empty.
    pub(crate) fn new(dir: &Path) -> Result<Self, StorageError> {
        let mut snapshots = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
            let entry = entry.map_err(|e| StorageError::io(dir, e))?;
            let name = entry.file_name();
            if let Some(offset) = name.to_str().and_then(snapshot_offset) {
                snapshots.insert(offset, entry.path());
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            producers: HashMap::new(),
            ongoing: BTreeMap::new(),
            unreplicated: BTreeMap::new(),
            snapshots,
            last_map_offset: 0,
            last_snap_offset: 0,
        })
    }

    /// Kafka's `removeStraySnapshots`: deletes snapshots that match no segment base, except the
    /// largest stray one when it lies past the last segment's base (the clean-shutdown snapshot
    /// at the log end).
    pub(crate) fn remove_stray_snapshots(
        &mut self,
        segment_bases: &[i64],
    ) -> Result<(), StorageError> {
        let max_base = segment_bases.iter().copied().max();
        let strays: Vec<i64> = self
            .snapshots
            .keys()
            .copied()
            .filter(|o| !segment_bases.contains(o))
            .collect();
        let keep = strays
            .last()
            .copied()
            .filter(|&o| max_base.is_none_or(|m| o >= m));
        for offset in strays {
            if Some(offset) != keep {
                self.delete_snapshot(offset)?;
            }
        }
        Ok(())
    }

    pub(crate) fn latest_snapshot_offset(&self) -> Option<i64> {
        self.snapshots.keys().next_back().copied()
    }

    pub(crate) fn map_end_offset(&self) -> i64 {
        self.last_map_offset
    }

    pub(crate) fn update_map_end_offset(&mut self, offset: i64) {
        self.last_map_offset = offset;
    }

    /// Kafka's `truncateAndReload` for a log being opened: drops snapshots outside
    /// `(log_start, log_end]`, then loads the newest snapshot that reads back whole (dropping
    /// corrupt ones), leaving out producers already expired.
    pub(crate) fn reload(
        &mut self,
        log_start: i64,
        log_end: i64,
        now: i64,
        expiration_ms: i64,
    ) -> Result<(), StorageError> {
        let out_of_range: Vec<i64> = self
            .snapshots
            .keys()
            .copied()
            .filter(|&o| o > log_end || o <= log_start)
            .collect();
        for offset in out_of_range {
            self.delete_snapshot(offset)?;
        }
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
        while let Some((&offset, path)) = self.snapshots.iter().next_back() {
            match read_snapshot(path) {
                Ok(entries) => {
                    tracing::info!(file = %path.display(), producers = entries.len(), "loading producer state from snapshot");
                    for entry in entries {
                        if !is_expired(&entry, now, expiration_ms) {
                            let _ = self.apply(entry);
                        }
                    }
                    self.last_map_offset = offset;
                    self.last_snap_offset = offset;
                    return Ok(());
                }
                Err(SnapshotError::Io(e)) => return Err(StorageError::io(path, e)),
                Err(SnapshotError::Corrupt(reason)) => {
                    tracing::warn!(file = %path.display(), %reason, "deleting a corrupt producer snapshot");
                    self.delete_snapshot(offset)?;
                }
            }
        }
        self.last_map_offset = log_start;
        self.last_snap_offset = log_start;
        Ok(())
    }

    /// Checks a batch about to be appended at `first_offset` (its offsets assigned, `max_timestamp`
    /// final) and returns what to do. Nothing changes until [`Self::apply`].
    pub(crate) fn check(
        &self,
        header: &BatchHeader,
        batch: &[u8],
        first_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
        origin: AppendOrigin,
    ) -> Result<Checked, StorageError> {
        if !header.has_producer_id() {
            return Ok(Checked::Untracked);
        }
        let pid = header.producer_id;
        let epoch = header.producer_epoch;
        let current = self.producers.get(&pid);
        let mut next = current
            .cloned()
            .unwrap_or_else(|| ProducerStateEntry::empty(pid));
        if header.is_control() {
            let Some(marker) = records::control_marker(batch) else {
                // An empty control batch: its transaction was cleaned away.
                return Ok(Checked::Untracked);
            };
            self.check_epoch(&next, epoch, first_offset, origin)?;
            if next.coordinator_epoch > marker.coordinator_epoch
                && origin != AppendOrigin::Replication
            {
                return Err(StorageError::CoordinatorFenced(format!(
                    "invalid coordinator epoch for producer {pid} at offset {first_offset}: {} \
                     (zombie), {} (current)",
                    marker.coordinator_epoch, next.coordinator_epoch
                )));
            }
            let mut completed = None;
            if matches!(marker.kind, ControlType::Abort | ControlType::Commit) {
                // Kafka's `appendEndTxnMarker`: only a transaction with data completes.
                completed = next
                    .current_txn_first_offset
                    .map(|first_offset| CompletedTxn {
                        producer_id: pid,
                        first_offset,
                        last_offset,
                        aborted: marker.kind == ControlType::Abort,
                    });
                next.maybe_update_epoch(epoch);
                next.coordinator_epoch = marker.coordinator_epoch;
                next.current_txn_first_offset = None;
                next.last_timestamp = max_timestamp;
            }
            return Ok(Checked::Update(next, completed));
        }
        let first_seq = header.base_sequence;
        let last_seq = last_sequence(header);
        if origin == AppendOrigin::Client
            && let Some(duplicate) =
                current.and_then(|c| c.find_duplicate(epoch, first_seq, last_seq))
        {
            return Ok(Checked::Duplicate(duplicate));
        }
        self.check_epoch(&next, epoch, first_offset, origin)?;
        if origin == AppendOrigin::Client {
            check_sequence(current, pid, epoch, first_seq)?;
        }
        next.add_batch(
            epoch,
            BatchMetadata {
                last_seq,
                last_offset,
                offset_delta: (last_offset - first_offset) as i32,
                timestamp: max_timestamp,
            },
        );
        match (next.current_txn_first_offset, header.is_transactional()) {
            (Some(_), false) if origin != AppendOrigin::Replication => {
                return Err(StorageError::InvalidTxnState(format!(
                    "expected a transactional write from producer {pid} at offset {first_offset}"
                )));
            }
            (None, true) => next.current_txn_first_offset = Some(first_offset),
            _ => {}
        }
        Ok(Checked::Update(next, None))
    }

    fn check_epoch(
        &self,
        current: &ProducerStateEntry,
        epoch: i16,
        offset: i64,
        origin: AppendOrigin,
    ) -> Result<(), StorageError> {
        if epoch < current.epoch {
            if origin == AppendOrigin::Replication {
                tracing::warn!(
                    producer_id = current.producer_id,
                    epoch,
                    current_epoch = current.epoch,
                    offset,
                    "batch with an older producer epoch"
                );
            } else {
                return Err(StorageError::InvalidProducerEpoch {
                    producer_id: current.producer_id,
                    epoch,
                    current_epoch: current.epoch,
                });
            }
        }
        Ok(())
    }

    /// Records a written batch's effect: the producer's entry, and its open transaction in
    /// the ordered set the last stable offset comes from. Returns whether the set of open
    /// transactions changed.
    pub(crate) fn apply(&mut self, entry: ProducerStateEntry) -> bool {
        let pid = entry.producer_id;
        let started = entry.current_txn_first_offset;
        let before = self
            .producers
            .insert(pid, entry)
            .and_then(|old| old.current_txn_first_offset);
        if before != started {
            if let Some(first) = before
                && self.ongoing.get(&first) == Some(&pid)
            {
                self.ongoing.remove(&first);
            }
            if let Some(first) = started {
                self.ongoing.insert(first, pid);
            }
        }
        before != started
    }

    /// Kafka's `ProducerStateManager.lastStableOffset(completedTxn)`: the LSO once `completed`
    /// (already applied) is over: the first offset of the oldest transaction of another
    /// producer still open, else the offset after the marker. Stored with an aborted
    /// transaction in the `.txnindex`.
    pub(crate) fn last_stable_offset_after(&self, completed: &CompletedTxn) -> i64 {
        self.ongoing
            .iter()
            .find(|&(_, &pid)| pid != completed.producer_id)
            .map_or(completed.last_offset + 1, |(&first, _)| first)
    }

    /// Kafka's `completeTxn`: a transaction whose marker is at or past the high watermark stays
    /// unstable until the watermark passes it ([`Self::on_high_watermark_updated`]).
    pub(crate) fn complete_txn(&mut self, completed: &CompletedTxn, high_watermark: i64) {
        if completed.last_offset >= high_watermark {
            self.unreplicated
                .insert(completed.first_offset, completed.last_offset);
        }
    }

    /// Kafka's `onHighWatermarkUpdated`: transactions whose marker is now replicated are
    /// stable.
    pub(crate) fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        self.unreplicated
            .retain(|_, &mut last| last >= high_watermark);
    }

    /// The smallest marker offset of the unreplicated transactions (`i64::MAX` when none): a
    /// high watermark past it makes one stable.
    pub(crate) fn min_unreplicated_marker(&self) -> i64 {
        self.unreplicated
            .values()
            .copied()
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Replays a stored batch (recovery): nothing is refused, problems are logged. Returns the
    /// transaction the batch ended, if it is a marker that ended one.
    pub(crate) fn replay(&mut self, header: &BatchHeader, batch: &[u8]) -> Option<CompletedTxn> {
        let result = self.check(
            header,
            batch,
            header.base_offset,
            header.last_offset(),
            header.max_timestamp,
            AppendOrigin::Replication,
        );
        match result {
            Ok(Checked::Update(entry, completed)) => {
                let _ = self.apply(entry);
                completed
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, offset = header.base_offset, "skipping a batch while rebuilding producer state");
                None
            }
        }
    }

    /// Writes a snapshot at the map end offset if the state moved since the last one. Without
    /// `sync` the file is not fsynced (the caller flushes it later, off the append path).
    pub(crate) fn take_snapshot(&mut self, sync: bool) -> Result<Option<PathBuf>, StorageError> {
        if self.last_map_offset <= self.last_snap_offset {
            return Ok(None);
        }
        let path = snapshot_file(&self.dir, self.last_map_offset);
        let mut entries: Vec<&ProducerStateEntry> = self.producers.values().collect();
        entries.sort_by_key(|e| e.producer_id);
        let bytes = encode_snapshot(&entries);
        let written = fs::write(&path, &bytes).and_then(|()| {
            if sync {
                fs::File::open(&path)?.sync_all()
            } else {
                Ok(())
            }
        });
        written.map_err(|e| StorageError::io(&path, e))?;
        self.snapshots.insert(self.last_map_offset, path.clone());
        self.last_snap_offset = self.last_map_offset;
        Ok(Some(path))
    }

    /// Removes a snapshot (from the map and the disk).
    pub(crate) fn delete_snapshot(&mut self, offset: i64) -> Result<(), StorageError> {
        if let Some(path) = self.snapshots.remove(&offset) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// Kafka's `removeAndMarkSnapshotForDeletion`: renames the snapshot at `offset` to
    /// `.snapshot.deleted` and returns the new path, for deletion after `file.delete.delay.ms`.
    pub(crate) fn mark_snapshot_deleted(
        &mut self,
        offset: i64,
    ) -> Result<Option<PathBuf>, StorageError> {
        let Some(path) = self.snapshots.remove(&offset) else {
            return Ok(None);
        };
        let mut deleted = path.clone().into_os_string();
        deleted.push(crate::segment::DELETED_SUFFIX);
        let deleted = PathBuf::from(deleted);
        match fs::rename(&path, &deleted) {
            Ok(()) => Ok(Some(deleted)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    /// Kafka's `onLogStartOffsetIncremented`: completed transactions whose marker went with the
    /// deleted records are forgotten. Open transactions stay open (their marker is still to
    /// come); the last stable offset never goes below the log start offset anyway.
    pub(crate) fn on_log_start_offset_incremented(&mut self, log_start: i64) {
        self.unreplicated.retain(|_, &mut last| last >= log_start);
        if self.last_map_offset < log_start {
            self.last_map_offset = log_start;
        }
        self.last_snap_offset = self.latest_snapshot_offset().unwrap_or(log_start);
    }

    /// Drops producers idle for `expiration_ms` that have no open transaction (so the set of
    /// open transactions does not change).
    pub(crate) fn remove_expired(&mut self, now: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| !is_expired(e, now, expiration_ms));
        before - self.producers.len()
    }

    pub(crate) fn active_producers(&self) -> Vec<ProducerSnapshotEntry> {
        let mut out: Vec<ProducerSnapshotEntry> = self
            .producers
            .values()
            .map(|e| ProducerSnapshotEntry {
                producer_id: e.producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    pub(crate) fn last_records(&self) -> HashMap<i64, LastRecord> {
        self.producers
            .iter()
            .map(|(&pid, e)| {
                (
                    pid,
                    LastRecord {
                        last_data_offset: e.last_data_offset(),
                        epoch: e.epoch,
                    },
                )
            })
            .collect()
    }

    /// Kafka's `firstUnstableOffset`: the first offset of the oldest transaction that is open
    /// or whose marker is not replicated yet. The last stable offset and the cleaner never pass
    /// it.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    #[cfg(test)]
    pub(crate) fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    #[cfg(test)]
    pub(crate) fn snapshot_offsets(&self) -> Vec<i64> {
        self.snapshots.keys().copied().collect()
    }
}

fn is_expired(entry: &ProducerStateEntry, now: i64, expiration_ms: i64) -> bool {
    entry.current_txn_first_offset.is_none()
        && now.saturating_sub(entry.last_timestamp) >= expiration_ms
}

/// Kafka's `ProducerAppendInfo.checkSequence` for a client append without transaction
/// verification state.
fn check_sequence(
    current: Option<&ProducerStateEntry>,
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
) -> Result<(), StorageError> {
    let current_epoch = current.map_or(NO_PRODUCER_EPOCH, |c| c.epoch);
    let current_last_seq = current.map_or(NO_SEQUENCE, ProducerStateEntry::last_seq);
    let error = || StorageError::OutOfOrderSequence {
        producer_id,
        epoch,
        first_sequence: first_seq,
        last_sequence: current_last_seq,
    };
    if epoch != current_epoch {
        // A new epoch starts at 0; a producer we know nothing of may start anywhere (its earlier
        // records may have been deleted by retention).
        if first_seq != 0 && current_epoch != NO_PRODUCER_EPOCH {
            return Err(error());
        }
    } else if !(current_epoch == NO_PRODUCER_EPOCH || in_sequence(current_last_seq, first_seq)) {
        return Err(error());
    }
    Ok(())
}

/// Why a snapshot could not be read.
#[derive(Debug)]
pub(crate) enum SnapshotError {
    Io(io::Error),
    Corrupt(String),
}

/// Encodes a v1 `ProducerSnapshot`: version, CRC-32C of the rest, then the entries.
pub(crate) fn encode_snapshot(entries: &[&ProducerStateEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + entries.len() * SNAPSHOT_ENTRY_SIZE);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    for e in entries {
        let last = e.batches.back();
        out.extend_from_slice(&e.producer_id.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&last.map_or(NO_SEQUENCE, |b| b.last_seq).to_be_bytes());
        out.extend_from_slice(&last.map_or(-1i64, |b| b.last_offset).to_be_bytes());
        out.extend_from_slice(&last.map_or(0i32, |b| b.offset_delta).to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let crc = crc32c::crc32c(&out[SNAPSHOT_ENTRIES_OFFSET..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a v1 `ProducerSnapshot` (Kafka's `readSnapshot`): each entry keeps only its last
/// batch.
pub(crate) fn decode_snapshot(bytes: &[u8]) -> Result<Vec<ProducerStateEntry>, String> {
    if bytes.len() < 10 {
        return Err(format!("snapshot of {} bytes is too short", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!(
            "snapshot contained an unknown file version {version}"
        ));
    }
    let stored = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let computed = crc32c::crc32c(&bytes[SNAPSHOT_ENTRIES_OFFSET..]);
    if stored != computed {
        return Err(format!(
            "snapshot is corrupt (CRC is no longer valid): stored {stored}, computed {computed}"
        ));
    }
    let count = i32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let body = &bytes[10..];
    let count = usize::try_from(count).map_err(|_| format!("negative entry count {count}"))?;
    if body.len() != count * SNAPSHOT_ENTRY_SIZE {
        return Err(format!(
            "snapshot announces {count} entries in {} bytes",
            body.len()
        ));
    }
    let mut entries = Vec::with_capacity(count);
    for chunk in body.chunks_exact(SNAPSHOT_ENTRY_SIZE) {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&chunk[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let i32_at = |at: usize| {
            i32::from_be_bytes([chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]])
        };
        let producer_id = i64_at(0);
        let epoch = i16::from_be_bytes([chunk[8], chunk[9]]);
        let last_seq = i32_at(10);
        let last_offset = i64_at(14);
        let offset_delta = i32_at(22);
        let timestamp = i64_at(26);
        let coordinator_epoch = i32_at(34);
        let txn_first = i64_at(38);
        let mut batches = VecDeque::new();
        if last_offset >= 0 {
            batches.push_back(BatchMetadata {
                last_seq,
                last_offset,
                offset_delta,
                timestamp,
            });
        }
        entries.push(ProducerStateEntry {
            producer_id,
            epoch,
            batches,
            coordinator_epoch,
            last_timestamp: timestamp,
            current_txn_first_offset: (txn_first >= 0).then_some(txn_first),
        });
    }
    Ok(entries)
}

pub(crate) fn read_snapshot(path: &Path) -> Result<Vec<ProducerStateEntry>, SnapshotError> {
    let bytes = fs::read(path).map_err(SnapshotError::Io)?;
    decode_snapshot(&bytes).map_err(SnapshotError::Corrupt)
}

#[cfg(test)]
#[path = "producer_state_tests.rs"]
mod tests;
