//! Log compaction (Kafka's `LogCleaner`, `Cleaner`, `LogCleanerManager`).
//!
//! ```text
//!             clean section          dirty section              uncleanable
//!  log start |======================|~~~~~~~~~~~~~~~~~~~~~~~~~|-----------------| active
//!                                   ^ first dirty offset      ^ first uncleanable segment
//!                                     (cleaner-offset-checkpoint)  min(active base, open
//!                                                                  transaction, high watermark,
//!                                                                  min.compaction.lag.ms)
//!  1. key -> latest offset map over the dirty section (bounded by the dedupe buffer)
//!  2. every segment below the map's end, in groups that fit one segment, is rewritten into
//!     <base>.log.cleaned (+ indexes): a record survives if it is the latest for its key and is
//!     not a tombstone past its delete horizon; batches keep their offsets and producer metadata
//!  3. swap: .cleaned -> .swap -> final name under the log's lock (log_maintenance.rs); the old
//!     segments' files become .deleted
//!  4. the first dirty offset moves to the map's end
//! ```
//!
//! The cleaner reads sealed segments through captured file handles and writes new files on the
//! side, so appends and fetches never wait for it; only the swap takes the log's lock.
//!
//! Tombstones follow Kafka 3.x/4.x (KIP-534): the first cleaning that keeps a batch holding a
//! tombstone sets the batch's delete horizon (now + `delete.retention.ms`, attribute bit 6, base
//! timestamp); a later cleaning after the horizon drops the tombstone. The last batch of every
//! live idempotent producer is kept, emptied if need be, so its sequence state survives; so is the
//! last batch below the cleaning round's end.
//!
//! Transactions follow Kafka's `CleanedTransactionMetadata`: the records of aborted transactions
//! (known from the `.txnindex` files) never enter the key map and are dropped; a transaction
//! marker stays while any batch of its transaction remains, then gets a delete horizon the same
//! way tombstones do and goes at the first cleaning after it. An ABORT marker that stays keeps
//! its entry in the cleaned segment's `.txnindex`. Nothing at or past the first unstable offset
//! (an open transaction, or one whose marker is not replicated) is cleaned.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strom_protocol::batch::{BatchHeader, HEADER_LEN};

use crate::log::{CleanableSegment, CleaningView};
use crate::records::{self, ControlMarker, ControlType, RecordsSection};
use crate::segment::{BatchScanner, CLEANED_SUFFIX, ScanError, Segment};
use crate::txn_index::AbortedTxn;
use crate::{CleanerConfig, Log, LogManager, StorageError, TopicPartition};

/// Bytes per offset map entry as Kafka counts them (16-byte key hash + 8-byte offset): the
/// dedupe buffer divided by this bounds the entries of a pass.
const BYTES_PER_ENTRY: u64 = 24;
/// Kafka's `log.cleaner.io.buffer.load.factor`.
const LOAD_FACTOR: f64 = 0.9;

/// A 128-bit digest of a key: Kafka keeps an MD5 of each key; two independent 64-bit SipHash
/// passes make collisions as unlikely without another dependency.
fn key_digest(key: &[u8]) -> u128 {
    let build =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let mut a = build.build_hasher();
    a.write(key);
    let mut b = build.build_hasher();
    b.write_u8(0x5a);
    b.write(key);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The digests are already uniform: hash them by taking their low bits.
#[derive(Debug, Default, Clone, Copy)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct BuildDigestHasher;

impl BuildHasher for BuildDigestHasher {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// Kafka's `SkimpyOffsetMap`: key digest -> latest offset, with a fixed capacity.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    map: HashMap<u128, i64, BuildDigestHasher>,
    capacity: usize,
    latest_offset: i64,
}

impl OffsetMap {
    pub(crate) fn new(memory_bytes: u64) -> Self {
        let slots = (memory_bytes / BYTES_PER_ENTRY).max(1);
        Self {
            map: HashMap::with_hasher(BuildDigestHasher),
            capacity: ((slots as f64 * LOAD_FACTOR) as usize).max(1),
            latest_offset: -1,
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.latest_offset = -1;
    }

    fn is_full(&self) -> bool {
        self.map.len() >= self.capacity
    }

    fn put(&mut self, key: &[u8], offset: i64) {
        self.map.insert(key_digest(key), offset);
        self.latest_offset = self.latest_offset.max(offset);
    }

    fn get(&self, key: &[u8]) -> i64 {
        self.map.get(&key_digest(key)).copied().unwrap_or(-1)
    }

    fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }
}

/// What one cleaning pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub messages_read: u64,
    pub messages_retained: u64,
    /// Segments rewritten (several may become one).
    pub segments_cleaned: usize,
    pub tombstones_removed: u64,
}

/// One cleaning of one log.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanSummary {
    pub topic_partition: TopicPartition,
    pub first_dirty_offset: i64,
    /// The new first dirty offset.
    pub end_offset: i64,
    pub stats: CleanStats,
    pub elapsed: Duration,
}

/// Why a cleaning stopped without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aborted {
    /// The cleaner is shutting down.
    Stopped,
    /// The log changed under it (retention, DeleteRecords, deletion); try again later.
    LogChanged,
}

/// The offsets a cleaning may work on (Kafka's `cleanableOffsets` + `calculateCleanableBytes`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cleanable {
    pub(crate) first_dirty: i64,
    /// Base offset of the first segment that must not be cleaned.
    pub(crate) first_uncleanable: i64,
    /// The checkpointed first dirty offset was out of range.
    pub(crate) reset_checkpoint: bool,
    pub(crate) cleanable_bytes: u64,
    pub(crate) total_bytes: u64,
    pub(crate) needs_compaction_now: bool,
}

impl Cleanable {
    pub(crate) fn ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / self.total_bytes as f64
        }
    }

    /// Kafka's `grabFilthiestCompactedLog` filter.
    pub(crate) fn worth_cleaning(&self, min_ratio: f64) -> bool {
        self.total_bytes > 0
            && ((self.needs_compaction_now && self.cleanable_bytes > 0) || self.ratio() > min_ratio)
    }
}

fn segment_end(view: &CleaningView, i: usize) -> i64 {
    view.segments
        .get(i + 1)
        .map_or(view.active_base, |s| s.base_offset)
}

fn segment_size(s: &CleanableSegment) -> u64 {
    s.span.end
}

/// Reads the max timestamp of a segment's first batch (`segment.ms` and
/// `max.compaction.lag.ms` count from it).
fn first_batch_timestamp(s: &CleanableSegment) -> Option<i64> {
    let mut scanner = BatchScanner::new(&s.span.file, 0, s.span.end, HEADER_LEN);
    match scanner.next_header() {
        Ok(Some((_, h))) => Some(h.max_timestamp),
        _ => None,
    }
}

/// Decides the cleanable range of a log from its view and checkpoint.
pub(crate) fn cleanable(view: &CleaningView, checkpoint: Option<i64>, now_ms: i64) -> Cleanable {
    let lso = view.log_start_offset;
    let (first_dirty, reset_checkpoint) = match checkpoint {
        Some(c) if c < lso => (lso, true),
        Some(c) if c > view.log_end_offset => (lso, true),
        Some(c) => (c, false),
        None => (lso, false),
    };
    let mut uncleanable = view.active_base.min(view.first_unstable);
    let min_lag = view.config.min_compaction_lag_ms.max(0);
    if min_lag > 0 {
        // The first dirty segment whose newest record is younger than the lag.
        for (i, s) in view.segments.iter().enumerate() {
            if segment_end(view, i) <= first_dirty {
                continue;
            }
            if s.largest_timestamp > now_ms.saturating_sub(min_lag) {
                uncleanable = uncleanable.min(s.base_offset);
                break;
            }
        }
    }
    let uncleanable = uncleanable.max(first_dirty);
    // Cleaning stops at a segment boundary: the segment holding the uncleanable offset stays.
    let first_uncleanable = view
        .segments
        .iter()
        .enumerate()
        .find(|&(i, _)| segment_end(view, i) > uncleanable)
        .map_or(view.active_base, |(_, s)| s.base_offset);
    let mut clean_bytes = 0;
    let mut cleanable_bytes = 0;
    for (i, s) in view.segments.iter().enumerate() {
        let end = segment_end(view, i);
        if s.base_offset < first_dirty {
            clean_bytes += segment_size(s);
        }
        if s.base_offset < first_uncleanable && end > first_dirty.min(first_uncleanable) {
            cleanable_bytes += segment_size(s);
        }
    }
    let max_lag = view.config.max_compaction_lag_ms.max(0);
    let needs_compaction_now = if max_lag < i64::MAX / 2 {
        let clean_until = now_ms.saturating_sub(max_lag);
        view.segments
            .iter()
            .enumerate()
            .filter(|&(i, _)| segment_end(view, i) > first_dirty)
            .filter_map(|(_, s)| first_batch_timestamp(s))
            .filter(|&t| t > 0)
            .min()
            .is_some_and(|earliest| earliest < clean_until)
    } else {
        false
    };
    Cleanable {
        first_dirty,
        first_uncleanable,
        reset_checkpoint,
        cleanable_bytes,
        total_bytes: clean_bytes + cleanable_bytes,
        needs_compaction_now,
    }
}

/// Kafka's `CleanedTransactionMetadata`: follows the transactions through the batches of a
/// cleaning, in offset order, to tell aborted records from committed ones and to decide when a
/// marker may go.
#[derive(Debug)]
struct TxnTracker<'a> {
    /// Aborted transactions by first offset, consumed as the batches reach them.
    aborted: Vec<&'a AbortedTxn>,
    next: usize,
    /// Aborted transactions begun and not yet closed by their marker, by producer, with the
    /// last offset of a batch of theirs seen in this cleaning.
    ongoing_aborted: HashMap<i64, (AbortedTxn, Option<i64>)>,
    /// Producers with a batch of a (committed) transaction seen since their last marker.
    ongoing_committed: HashSet<i64>,
}

impl<'a> TxnTracker<'a> {
    /// For a walk from `start`: transactions whose marker is below it are over.
    fn new(aborted: &'a [AbortedTxn], start: i64) -> Self {
        Self {
            aborted: aborted.iter().filter(|t| t.last_offset >= start).collect(),
            next: 0,
            ongoing_aborted: HashMap::new(),
            ongoing_committed: HashSet::new(),
        }
    }

    fn consume_up_to(&mut self, offset: i64) {
        while let Some(&txn) = self.aborted.get(self.next) {
            if txn.first_offset > offset {
                break;
            }
            self.ongoing_aborted
                .entry(txn.producer_id)
                .or_insert((*txn, None));
            self.next += 1;
        }
    }

    /// Kafka's `onBatchRead`: whether the (data) batch belongs to an aborted transaction.
    fn on_batch_read(&mut self, h: &BatchHeader) -> bool {
        self.consume_up_to(h.last_offset());
        if !h.is_transactional() || !h.has_producer_id() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&h.producer_id) {
            Some((_, last_seen)) => {
                *last_seen = Some(h.last_offset());
                true
            }
            None => {
                self.ongoing_committed.insert(h.producer_id);
                false
            }
        }
    }

    /// Kafka's `onControlBatchRead`: whether the marker may be discarded (no batch of its
    /// transaction is left), and for an ABORT marker that stays, its `.txnindex` entry.
    fn on_control_batch_read(
        &mut self,
        h: &BatchHeader,
        marker: Option<ControlMarker>,
    ) -> (bool, Option<AbortedTxn>) {
        self.consume_up_to(h.last_offset());
        // An empty control batch was cleaned before: nothing depends on it.
        let Some(marker) = marker else {
            return (true, None);
        };
        match marker.kind {
            ControlType::Abort => match self.ongoing_aborted.remove(&h.producer_id) {
                Some((txn, Some(_))) => (false, Some(txn)),
                _ => (true, None),
            },
            ControlType::Commit => (!self.ongoing_committed.remove(&h.producer_id), None),
            ControlType::Other(_) => (false, None),
        }
    }
}

/// Reads the dirty section into `map` (Kafka's `buildOffsetMap`). Records of aborted
/// transactions stay out of the map, so an aborted value never shadows a committed one.
/// Returns the offset after the last one mapped.
fn build_offset_map(
    view: &CleaningView,
    range: &Cleanable,
    map: &mut OffsetMap,
    stats: &mut CleanStats,
    stop: &AtomicBool,
) -> Result<Result<i64, Aborted>, StorageError> {
    map.clear();
    let start = range.first_dirty;
    let end = range.first_uncleanable;
    let dirty: Vec<(usize, &CleanableSegment)> = view
        .segments
        .iter()
        .enumerate()
        .filter(|&(i, s)| s.base_offset < end && segment_end(view, i) > start)
        .collect();
    let mut txns = TxnTracker::new(&view.aborted, start);
    let mut full = false;
    'segments: for (i, segment) in dirty {
        let span = &segment.span;
        let mut scanner = BatchScanner::new(&span.file, 0, span.end, view_io_chunk(view));
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(Err(Aborted::Stopped));
            }
            let (pos, header) = match scanner.next_header() {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(StorageError::io(&*span.path, e)),
                Err(ScanError::Invalid { position, reason }) => {
                    return Err(StorageError::Corrupt {
                        path: span.path.display().to_string(),
                        reason: format!("at byte {position}: {reason}"),
                    });
                }
            };
            if header.last_offset() < start {
                continue;
            }
            let bytes = scanner
                .batch_bytes(pos, &header)
                .map_err(|e| StorageError::io(&*span.path, e))?;
            stats.bytes_read += bytes.len() as u64;
            if header.is_control() {
                txns.on_control_batch_read(&header, records::control_marker(bytes));
                map.update_latest_offset(header.last_offset());
                continue;
            }
            if txns.on_batch_read(&header) {
                stats.messages_read += u64::from(header.records_count.max(0) as u32);
                map.update_latest_offset(header.last_offset());
                continue;
            }
            let section = RecordsSection::new(bytes).map_err(|reason| corrupt(span, reason))?;
            let records = section.records().map_err(|reason| corrupt(span, reason))?;
            for record in &records {
                stats.messages_read += 1;
                let Some(key) = record.key else { continue };
                if record.offset < start {
                    continue;
                }
                if map.is_full() {
                    full = true;
                    break 'segments;
                }
                map.put(key, record.offset);
            }
            map.update_latest_offset(header.last_offset());
        }
        // Offsets may have gaps (earlier cleanings): the map covers up to the next segment.
        map.update_latest_offset(segment_end(view, i).min(end) - 1);
    }
    if full {
        tracing::debug!(dir = %view.dir.display(), latest = map.latest_offset, "offset map is full; cleaning part of the dirty section");
    }
    Ok(Ok(map.latest_offset + 1))
}

fn view_io_chunk(view: &CleaningView) -> usize {
    // Kafka grows its buffer to the largest batch; the scanner does that by itself.
    (view.config.max_message_bytes.clamp(64 * 1024, 8 << 20)) as usize
}

fn corrupt(span: &crate::segment::SegmentSpan, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: span.path.display().to_string(),
        reason,
    }
}

/// Kafka's `groupSegmentsBySize`: consecutive segments whose data and indexes fit one segment
/// and whose offsets fit its 32-bit relative index.
fn group_segments(view: &CleaningView, end_offset: i64) -> Vec<Vec<usize>> {
    let candidates: Vec<usize> = (0..view.segments.len())
        .filter(|&i| view.segments[i].base_offset < end_offset)
        .collect();
    let max_size = view.config.segment_bytes.min(i32::MAX as u64);
    let max_index = view.config.segment_index_bytes;
    let mut groups = Vec::new();
    let mut k = 0;
    while k < candidates.len() {
        let first = candidates[k];
        let mut group = vec![first];
        let s = &view.segments[first];
        let mut log_size = segment_size(s);
        let mut index_size = s.offset_index_entries as u64 * 8;
        let mut time_size = s.time_index_entries as u64 * 12;
        k += 1;
        while k < candidates.len() {
            let next = &view.segments[candidates[k]];
            // The candidate's last offset, bounded by the next segment (or the round's end).
            let last_offset = candidates
                .get(k + 1)
                .map_or(end_offset, |&j| view.segments[j].base_offset)
                - 1;
            let fits = log_size + segment_size(next) <= max_size
                && index_size + next.offset_index_entries as u64 * 8 <= max_index
                && time_size + next.time_index_entries as u64 * 12 <= max_index
                && (segment_size(next) == 0 || last_offset - s.base_offset <= i64::from(i32::MAX));
            if !fits {
                break;
            }
            log_size += segment_size(next);
            index_size += next.offset_index_entries as u64 * 8;
            time_size += next.time_index_entries as u64 * 12;
            group.push(candidates[k]);
            k += 1;
        }
        groups.push(group);
    }
    groups
}

/// Per-batch decisions of one cleaning round.
struct Filter<'a> {
    view: &'a CleaningView,
    map: &'a OffsetMap,
    now_ms: i64,
    /// The round's end: its last batch is kept even when empty.
    upper_bound: i64,
    /// The transactions, followed across the whole round (all its groups, in offset order).
    txns: TxnTracker<'a>,
}

/// What to write for one stored batch.
struct Kept {
    bytes: Vec<u8>,
    /// The `.txnindex` entry of a kept ABORT marker.
    aborted: Option<AbortedTxn>,
}

impl Filter<'_> {
    /// Kafka's `isBatchLastRecordOfProducer`.
    fn last_of_live_producer(&self, h: &BatchHeader) -> bool {
        h.has_producer_id()
            && self
                .view
                .last_records
                .get(&h.producer_id)
                .is_some_and(|last| match last.last_data_offset {
                    Some(offset) => h.last_offset() == offset,
                    None => h.is_control() && h.producer_epoch == last.epoch,
                })
    }

    /// The delete horizon a batch gets when it first keeps something that must go later.
    fn new_horizon(&self) -> i64 {
        self.now_ms
            .saturating_add(self.view.config.delete_retention_ms.max(0))
    }

    /// Kafka's `checkBatchRetention` for a transaction marker: kept while its transaction has
    /// batches left; then it gets a delete horizon, and goes once that has passed (emptied
    /// instead when it carries the producer's last epoch).
    fn filter_control(
        &mut self,
        bytes: &[u8],
        h: &BatchHeader,
        stats: &mut CleanStats,
    ) -> Result<Option<Kept>, String> {
        let marker = records::control_marker(bytes);
        let (can_discard, aborted) = self.txns.on_control_batch_read(h, marker);
        let horizon = records::delete_horizon(h);
        let discard = can_discard && horizon.is_some_and(|at| at <= self.now_ms);
        if discard || h.records_count <= 0 {
            let keep_empty = self.last_of_live_producer(h) || h.next_offset() == self.upper_bound;
            return Ok(keep_empty.then(|| Kept {
                bytes: records::empty_batch(h),
                aborted: None,
            }));
        }
        stats.messages_retained += u64::from(h.records_count.max(0) as u32);
        let bytes = if can_discard && horizon.is_none() {
            let section = RecordsSection::new(bytes)?;
            let records = section.records()?;
            records::rebuild_batch(h, &records, Some(self.new_horizon()))?
        } else {
            bytes.to_vec()
        };
        Ok(Some(Kept { bytes, aborted }))
    }

    /// The bytes to keep for one stored batch (`None`: drop it).
    fn filter(
        &mut self,
        bytes: &[u8],
        h: &BatchHeader,
        stats: &mut CleanStats,
    ) -> Result<Option<Kept>, String> {
        if h.is_control() {
            return self.filter_control(bytes, h, stats);
        }
        let aborted = self.txns.on_batch_read(h);
        let section = RecordsSection::new(bytes)?;
        let records = section.records()?;
        let horizon = records::delete_horizon(h);
        let retain_deletes = horizon.is_none_or(|at| self.now_ms < at);
        let mut retained = Vec::with_capacity(records.len());
        for record in &records {
            let keep = if aborted {
                // Records of an aborted transaction go, whatever their offset.
                false
            } else if record.offset > self.map.latest_offset {
                true
            } else if let Some(key) = record.key {
                let latest = record.offset >= self.map.get(key);
                let removable_tombstone = record.value.is_none() && !retain_deletes;
                if latest && removable_tombstone {
                    stats.tombstones_removed += 1;
                }
                latest && !removable_tombstone
            } else {
                // Kafka drops keyless records from compacted logs.
                false
            };
            if keep {
                retained.push(*record);
            }
        }
        stats.messages_retained += retained.len() as u64;
        let kept = |bytes| {
            Some(Kept {
                bytes,
                aborted: None,
            })
        };
        if retained.is_empty() {
            let keep_empty = self.last_of_live_producer(h) || h.next_offset() == self.upper_bound;
            return Ok(if keep_empty {
                kept(records::empty_batch(h))
            } else {
                None
            });
        }
        let has_tombstones = retained.iter().any(|r| r.value.is_none());
        let set_horizon = has_tombstones && horizon.is_none();
        if retained.len() == records.len() && !set_horizon {
            return Ok(kept(bytes.to_vec()));
        }
        let new_horizon = if set_horizon {
            Some(self.new_horizon())
        } else {
            horizon
        };
        records::rebuild_batch(h, &retained, new_horizon).map(kept)
    }
}

/// Removes a cleaner output that was not swapped in.
fn discard(segment: &Segment) {
    for path in segment.file_paths() {
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a cleaner output");
        }
    }
}

/// Rewrites one group of segments into `<base>.log.cleaned` and swaps it in.
fn clean_group(
    log: &Log,
    view: &CleaningView,
    group: &[usize],
    filter: &mut Filter<'_>,
    stats: &mut CleanStats,
    stop: &AtomicBool,
) -> Result<Result<(), Aborted>, StorageError> {
    let base = view.segments[group[0]].base_offset;
    let mut cleaned = Segment::create_with(&view.dir, base, filter.now_ms, CLEANED_SUFFIX, None)?;
    let written = write_group(view, group, filter, stats, stop, &mut cleaned);
    let outcome = match written {
        Ok(Ok(())) => {
            let sealed = cleaned.seal().and_then(|()| {
                let target = cleaned.prepare_flush()?;
                for (file, path) in &target.files {
                    file.sync_all().map_err(|e| StorageError::io(path, e))?;
                }
                cleaned.flushed(target.writes);
                Ok(())
            });
            if let Err(e) = sealed {
                discard(&cleaned);
                return Err(e);
            }
            let replaced: Vec<(i64, u64)> = group
                .iter()
                .map(|&i| (view.segments[i].base_offset, view.segments[i].id))
                .collect();
            let paths = cleaned.file_paths();
            if log.replace_segments(cleaned, &replaced, filter.now_ms)? {
                stats.segments_cleaned += group.len();
                return Ok(Ok(()));
            }
            for path in paths {
                let _ = std::fs::remove_file(path);
            }
            return Ok(Err(Aborted::LogChanged));
        }
        other => other,
    };
    discard(&cleaned);
    outcome
}

fn write_group(
    view: &CleaningView,
    group: &[usize],
    filter: &mut Filter<'_>,
    stats: &mut CleanStats,
    stop: &AtomicBool,
    cleaned: &mut Segment,
) -> Result<Result<(), Aborted>, StorageError> {
    let interval = view.config.index_interval_bytes;
    let mut last_indexed = i64::MIN;
    for &i in group {
        let span = &view.segments[i].span;
        let mut scanner = BatchScanner::new(&span.file, 0, span.end, view_io_chunk(view));
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(Err(Aborted::Stopped));
            }
            let (pos, header) = match scanner.next_header() {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(ScanError::Io(e)) => return Err(StorageError::io(&*span.path, e)),
                Err(ScanError::Invalid { position, reason }) => {
                    return Err(corrupt(span, format!("at byte {position}: {reason}")));
                }
            };
            let bytes = scanner
                .batch_bytes(pos, &header)
                .map_err(|e| StorageError::io(&*span.path, e))?;
            stats.bytes_read += bytes.len() as u64;
            let Some(Kept {
                bytes: out,
                aborted,
            }) = filter
                .filter(bytes, &header, stats)
                .map_err(|reason| corrupt(span, reason))?
            else {
                continue;
            };
            let out_header = BatchHeader::parse(&out).map_err(|e| corrupt(span, e.to_string()))?;
            if let Some(txn) = aborted {
                if txn.last_offset > last_indexed {
                    cleaned.append_aborted_txn(txn)?;
                    last_indexed = txn.last_offset;
                } else {
                    tracing::warn!(
                        dir = %view.dir.display(),
                        producer_id = txn.producer_id,
                        last_offset = txn.last_offset,
                        "aborted transaction out of marker order; left out of the cleaned .txnindex"
                    );
                }
            }
            stats.bytes_written += out.len() as u64;
            cleaned.append(
                &out[..HEADER_LEN],
                &out[HEADER_LEN..],
                out_header.last_offset(),
                out_header.max_timestamp,
                interval,
            )?;
        }
    }
    Ok(Ok(()))
}

/// Cleans `log` from `range.first_dirty`: builds the offset map, rewrites and swaps every
/// group of segments below its end. Returns the new first dirty offset, or why it stopped.
pub(crate) fn clean_log(
    log: &Log,
    view: &CleaningView,
    range: &Cleanable,
    now_ms: i64,
    map: &mut OffsetMap,
    stop: &AtomicBool,
) -> Result<Result<(i64, CleanStats), Aborted>, StorageError> {
    let mut stats = CleanStats::default();
    let end_offset = match build_offset_map(view, range, map, &mut stats, stop)? {
        Ok(end) => end,
        Err(aborted) => return Ok(Err(aborted)),
    };
    if end_offset <= range.first_dirty {
        return Ok(Ok((range.first_dirty, stats)));
    }
    let round_start = view
        .segments
        .first()
        .map_or(range.first_dirty, |s| s.base_offset);
    let mut filter = Filter {
        view,
        map,
        now_ms,
        upper_bound: end_offset,
        txns: TxnTracker::new(&view.aborted, round_start),
    };
    for group in group_segments(view, end_offset) {
        if let Err(aborted) = clean_group(log, view, &group, &mut filter, &mut stats, stop)? {
            return Ok(Err(aborted));
        }
    }
    Ok(Ok((end_offset, stats)))
}

/// Cleaner threads over a [`LogManager`] (Kafka's `LogCleaner`): each picks the dirtiest
/// compacted log, cleans it, and sleeps `log.cleaner.backoff.ms` when none needs it.
#[derive(Debug)]
pub struct LogCleaner {
    stop: Arc<AtomicBool>,
    wake: Arc<(Mutex<()>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl LogCleaner {
    /// Starts `config.threads` cleaner threads (none when `log.cleaner.enable` is false). Each
    /// gets an equal share of `log.cleaner.dedupe.buffer.size`.
    pub fn start(manager: Arc<LogManager>, config: CleanerConfig) -> LogCleaner {
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new((Mutex::new(()), Condvar::new()));
        let threads = if config.enable { config.threads } else { 0 };
        let memory = config.dedupe_buffer_size / threads.max(1) as u64;
        let threads = (0..threads)
            .filter_map(|i| {
                let manager = manager.clone();
                let stop = stop.clone();
                let wake = wake.clone();
                let backoff = Duration::from_millis(config.backoff_ms);
                std::thread::Builder::new()
                    .name(format!("log-cleaner-{i}"))
                    .spawn(move || run_cleaner(&manager, memory, backoff, &stop, &wake))
                    .map_err(|e| tracing::error!(error = %e, "cannot start a log cleaner thread"))
                    .ok()
            })
            .collect();
        LogCleaner {
            stop,
            wake,
            threads,
        }
    }

    /// Asks the threads to look for work now instead of finishing their backoff.
    pub fn wake(&self) {
        self.wake.1.notify_all();
    }

    /// Stops the threads, aborting a cleaning in progress (its output is removed), and waits for
    /// them.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        {
            let _guard = self.wake.0.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.1.notify_all();
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a log cleaner thread panicked");
            }
        }
    }
}

impl Drop for LogCleaner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run_cleaner(
    manager: &LogManager,
    memory: u64,
    backoff: Duration,
    stop: &AtomicBool,
    wake: &(Mutex<()>, Condvar),
) {
    let mut map = OffsetMap::new(memory);
    while !stop.load(Ordering::Acquire) {
        let worked = match manager.clean_dirtiest_with(crate::log::now_ms(), &mut map, stop) {
            Ok(Some(summary)) => {
                log_summary(&summary);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(error = %e, "log cleaning failed");
                false
            }
        };
        if worked {
            continue;
        }
        let guard = wake.0.lock().unwrap_or_else(|p| p.into_inner());
        if stop.load(Ordering::Acquire) {
            break;
        }
        let _ = wake
            .1
            .wait_timeout(guard, backoff)
            .unwrap_or_else(|p| p.into_inner());
    }
}

fn log_summary(s: &CleanSummary) {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    tracing::info!(
        tp = %s.topic_partition,
        from = s.first_dirty_offset,
        to = s.end_offset,
        read_mb = s.stats.bytes_read as f64 / 1e6,
        written_mb = s.stats.bytes_written as f64 / 1e6,
        mb_per_sec = s.stats.bytes_read as f64 / 1e6 / secs,
        messages_read = s.stats.messages_read,
        messages_retained = s.stats.messages_retained,
        "cleaned log"
    );
}

/// The cleaner's bookkeeping in the log manager: which logs are being cleaned and which failed.
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    pub(crate) in_progress: HashSet<TopicPartition>,
    /// Logs whose cleaning failed on bad data: skipped until restart, as Kafka's uncleanable
    /// partitions are.
    pub(crate) uncleanable: HashSet<TopicPartition>,
}

/// Runs one selected cleaning and times it.
pub(crate) fn run_one(
    log: &Log,
    view: &CleaningView,
    range: &Cleanable,
    now_ms: i64,
    map: &mut OffsetMap,
    stop: &AtomicBool,
) -> Result<Result<CleanSummary, Aborted>, StorageError> {
    let started = Instant::now();
    let result = match clean_log(log, view, range, now_ms, map, stop) {
        // The log was deleted under the cleaner (its directory renamed away): not a disk failure.
        Err(_) if log.is_closed() => return Ok(Err(Aborted::LogChanged)),
        other => other.map_err(|e| log.health().on_error(e))?,
    };
    Ok(result.map(|(end_offset, stats)| CleanSummary {
        topic_partition: log.topic_partition().clone(),
        first_dirty_offset: range.first_dirty,
        end_offset,
        stats,
        elapsed: started.elapsed(),
    }))
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
