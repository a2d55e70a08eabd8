//! One partition's log: an ordered map of segments, the active one last.
//!
//! ```text
//!            Mutex<Inner>  (held to assign offsets, write, roll, look up positions)
//!   segments: BTreeMap<base offset, Segment>
//!     00000000000000000000  [.log .index .timeindex]   sealed
//!     00000000000000052341  [.log .index .timeindex .txnindex]   sealed
//!     00000000000000104870  [.log .index .timeindex]   active <- append: one pwrite
//!
//!   read:  lock -> floor segment, index lookup, Arc<File> + byte range -> unlock
//!          -> walk headers / pread the bytes without the lock
//! ```
//!
//! Appends are serialised by the lock and write through the page cache; reads hold the lock only
//! to capture file handles and sizes (a batch below a captured size never changes), so a slow
//! disk read never blocks producers. The offsets every request wants (log start, log end,
//! recovery point) are mirrored in atomics and read without the lock.
//!
//! Under the same lock live the idempotent producer state (checked before a batch is written,
//! see [`crate::producer_state`]) and the maintenance that reshapes the segment map: retention,
//! DeleteRecords and the cleaner's swap (`log_maintenance.rs`). Segments leaving the map keep
//! their open files, so a read that captured them finishes on the old bytes.
//!
//! Transactions: the producer state knows each open transaction's first offset; the oldest one
//! (or one whose marker the high watermark has not passed) is the first unstable offset,
//! mirrored in an atomic so that the last stable offset costs no lock. A marker
//! ([`Log::append_control_marker`]) ends a transaction; an ABORT also goes into the active
//! segment's `.txnindex` ([`crate::txn_index`]), which [`Log::read_committed`] consults to tell
//! read_committed consumers what to drop. Recovery rebuilds the `.txnindex` of every segment it
//! rescans while it replays the producer state.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use strom_protocol::batch::{self, BatchHeader, Batches};

use crate::LogConfig;
use crate::checkpoint::sync_dir;
use crate::dir_failure::DirHealth;
use crate::load::list_segments;
use crate::producer_state::{AppendOrigin, Checked, CompletedTxn, ProducerStateManager};
use crate::segment::{
    BatchScanner, FlushTarget, RollParams, SEARCH_CHUNK, ScanError, Segment, SegmentSpan,
};
use crate::txn_index::AbortedTxn;
use crate::{StorageError, TopicPartition};

#[path = "log_maintenance.rs"]
mod maintenance;
pub use maintenance::DeletedSegments;
pub(crate) use maintenance::{CleanableSegment, CleaningView, PendingDelete};

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset given to the first record of the batch.
    pub base_offset: i64,
    /// Offset of the last record of the batch.
    pub last_offset: i64,
    /// Largest timestamp in the batch (its header's `max_timestamp`).
    pub max_timestamp: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// The batch was a retry of one of the producer's last five batches: nothing was written and
    /// the offsets (and max timestamp) are those of the original append, as Kafka answers.
    pub duplicate: bool,
}

/// Whole stored batches, exactly as on disk.
#[derive(Debug, Clone)]
pub struct LogReadResult {
    /// Zero or more whole batches. The first one contains the requested offset (it may start
    /// before it: clients skip the records they did not ask for, as with Kafka).
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// A read for a `read_committed` consumer ([`Log::read_committed`]).
#[derive(Debug, Clone)]
pub struct CommittedRead {
    /// Whole batches below the last stable offset (and the caller's bound).
    pub read: LogReadResult,
    /// The last stable offset the read was bounded by, never above the caller's `max_offset`
    /// (its high watermark): what Fetch reports.
    pub last_stable_offset: i64,
    /// The aborted transactions overlapping the returned batches, oldest marker first: the
    /// consumer drops a listed producer's records from `first_offset` until it reads that
    /// producer's ABORT marker. Empty when no records were returned.
    pub aborted: Vec<AbortedTxn>,
}

/// A record's offset and timestamp, as ListOffsets reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// One partition's log. Shared between request tasks: `append` calls are serialised inside,
/// reads only take a short lock to find the bytes and then read them without it.
pub struct Log {
    dir: PathBuf,
    tp: TopicPartition,
    inner: Mutex<Inner>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    recovery_point: AtomicI64,
    last_flush_ms: AtomicI64,
    /// The log dir's failure state, shared with every log of the dir.
    health: Arc<DirHealth>,
    /// The high watermark the broker last reported (`i64::MAX` until it does): retention never
    /// deletes past it, the cleaner never cleans past it, and the last stable offset never
    /// passes it.
    high_watermark: AtomicI64,
    /// The producer state's first unstable offset (`i64::MAX` when every transaction is over
    /// and replicated), mirrored so that [`Log::last_stable_offset`], which every fetch asks
    /// for, takes no lock. Stored before the log end offset on append.
    first_unstable: AtomicI64,
    /// The smallest marker offset of a completed transaction not yet below the high watermark
    /// (`i64::MAX` when none): a new high watermark past it needs the lock to release it.
    min_unreplicated_marker: AtomicI64,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .field("recovery_point", &self.recovery_point())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inner {
    config: LogConfig,
    /// Never empty: the last segment is the active one.
    segments: BTreeMap<i64, Segment>,
    next_offset: i64,
    log_start_offset: i64,
    recovery_point: i64,
    /// This active segment's share of `segment.jitter.ms`, drawn when it was created.
    roll_jitter_ms: i64,
    /// A segment file was created since the last flush, so the directory needs an fsync too.
    dir_dirty: bool,
    closed: bool,
    producers: ProducerStateManager,
    /// Producer snapshots written at a roll without an fsync (that would block appends); the
    /// next flush syncs them.
    unsynced_snapshots: Vec<PathBuf>,
    /// Files renamed `.deleted`, removed after `file.delete.delay.ms`.
    pending_deletes: Vec<PendingDelete>,
}

/// Kafka's `segment.bytes` is an `int`, and index positions are 4-byte: cap it there.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Kafka's `LogConfig.randomSegmentJitter`: uniform in `[0, min(jitter, segment.ms))`.
fn random_jitter(config: &LogConfig) -> i64 {
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    let random = RandomState::new().hash_one(now_ms());
    (random % bound as u64) as i64
}

impl Inner {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn segment_bytes(&self) -> u64 {
        self.config.segment_bytes.min(MAX_SEGMENT_BYTES)
    }

    /// Seals the active segment and starts a new one at the log end offset, then snapshots the
    /// producer state at the new base (Kafka's `UnifiedLog.roll`): recovery of the new segment
    /// can start from that snapshot.
    fn roll(&mut self, dir: &Path) -> Result<(), StorageError> {
        let new_base = self.next_offset;
        if self.active().base_offset == new_base {
            return Ok(());
        }
        self.active_mut().seal()?;
        let preallocate = self.config.preallocate.then(|| self.segment_bytes());
        let segment = Segment::create_with(dir, new_base, now_ms(), "", preallocate)?;
        tracing::debug!(dir = %dir.display(), base_offset = new_base, "rolled a new log segment");
        self.segments.insert(new_base, segment);
        self.dir_dirty = true;
        self.roll_jitter_ms = random_jitter(&self.config);
        self.producers.update_map_end_offset(new_base);
        if let Some(path) = self.producers.take_snapshot(false)? {
            self.unsynced_snapshots.push(path);
        }
        Ok(())
    }
}

/// Replays the batches in `[from, to)` into the producer state (Kafka's
/// `UnifiedLog.rebuildProducerState` after the snapshot), taking snapshots at the segment bases
/// in `snapshot_at` on the way. The transaction indexes of the segments in `rebuild_txn` (emptied
/// by recovery) get the aborted transactions whose markers they hold, as Kafka's
/// `LogSegment.recover` adds them.
fn replay_producer_state(
    producers: &mut ProducerStateManager,
    segments: &mut BTreeMap<i64, Segment>,
    from: i64,
    to: i64,
    snapshot_at: &[i64],
    rebuild_txn: &[i64],
) -> Result<(), StorageError> {
    let first = segments
        .range(..=from)
        .next_back()
        .map_or(from, |(&b, _)| b);
    let bases: Vec<i64> = segments.range(first..to).map(|(&b, _)| b).collect();
    for base in bases {
        let segment = &segments[&base];
        let rebuild = rebuild_txn.contains(&base);
        let mut aborted = Vec::new();
        let start = base.max(producers.map_end_offset()).max(from);
        producers.update_map_end_offset(start);
        if snapshot_at.contains(&base) {
            producers.take_snapshot(true)?;
        }
        let span = segment.span(u64::from(segment.lookup_offset(start)));
        let mut scanner = BatchScanner::new(&span.file, span.start, span.end, SEARCH_CHUNK);
        loop {
            let (pos, header) = match scanner.next_header() {
                Ok(Some(found)) => found,
                Ok(None) | Err(ScanError::Invalid { .. }) => break,
                Err(ScanError::Io(e)) => return Err(StorageError::io(&*span.path, e)),
            };
            if header.base_offset >= to {
                break;
            }
            if header.last_offset() < start || !header.has_producer_id() {
                continue;
            }
            let completed = if header.is_control() {
                let bytes = scanner
                    .batch_bytes(pos, &header)
                    .map_err(|e| StorageError::io(&*span.path, e))?;
                producers.replay(&header, bytes)
            } else {
                producers.replay(&header, &[])
            };
            if let Some(txn) = completed.filter(|t| t.aborted && rebuild) {
                aborted.push(aborted_entry(producers, &txn));
            }
        }
        if let Some(segment) = segments.get_mut(&base) {
            for txn in aborted {
                segment.append_aborted_txn(txn)?;
            }
        }
    }
    Ok(())
}

/// The `.txnindex` entry of an aborted transaction just applied to `producers`.
fn aborted_entry(producers: &ProducerStateManager, txn: &CompletedTxn) -> AbortedTxn {
    AbortedTxn {
        producer_id: txn.producer_id,
        first_offset: txn.first_offset,
        last_offset: txn.last_offset,
        last_stable_offset: producers.last_stable_offset_after(txn),
    }
}

/// What [`load_producer_state`] starts from.
struct ProducerLoad {
    log_start_offset: i64,
    log_end_offset: i64,
    had_clean_shutdown: bool,
    /// Segments whose transaction index must be rebuilt (rescanned by recovery), ascending.
    rebuild_txn: Vec<i64>,
    now: i64,
    expiration_ms: i64,
}

/// Kafka's `LogLoader` producer-state step (`UnifiedLog.rebuildProducerState`). When segments
/// were rescanned, only snapshots up to the first of them are trusted (Kafka's `recoverSegment`
/// rebuilds the state up to the segment it recovers), so the replay passes through every
/// rescanned segment and rebuilds its transaction index.
fn load_producer_state(
    dir: &Path,
    segments: &mut BTreeMap<i64, Segment>,
    load: &ProducerLoad,
) -> Result<ProducerStateManager, StorageError> {
    let ProducerLoad {
        log_start_offset,
        log_end_offset,
        had_clean_shutdown,
        ref rebuild_txn,
        now,
        expiration_ms,
    } = *load;
    let mut producers = ProducerStateManager::new(dir)?;
    let bases: Vec<i64> = segments.keys().copied().collect();
    producers.remove_stray_snapshots(&bases)?;
    // Snapshots at the starts of the last two segments make a later reload cheap.
    let mut snapshot_at: Vec<i64> = bases.iter().rev().take(2).copied().collect();
    snapshot_at.reverse();
    if producers.latest_snapshot_offset().is_none() && had_clean_shutdown && rebuild_txn.is_empty()
    {
        for offset in snapshot_at.iter().copied().chain([log_end_offset]) {
            producers.update_map_end_offset(offset);
            producers.take_snapshot(true)?;
        }
        return Ok(producers);
    }
    let trusted_end = rebuild_txn
        .first()
        .map_or(log_end_offset, |&base| base.min(log_end_offset));
    producers.reload(log_start_offset, trusted_end, now, expiration_ms)?;
    let from = producers.map_end_offset();
    if log_end_offset > from {
        tracing::debug!(dir = %dir.display(), from, to = log_end_offset, "rebuilding producer state from the log");
        replay_producer_state(
            &mut producers,
            segments,
            from,
            log_end_offset,
            &snapshot_at,
            rebuild_txn,
        )?;
    }
    producers.update_map_end_offset(log_end_offset);
    producers.take_snapshot(true)?;
    Ok(producers)
}

/// One part of a read: bytes `[start, start + len)` of a span's file.
struct ReadRange<'a> {
    span: &'a SegmentSpan,
    start: u64,
    len: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`. When `had_clean_shutdown` is false, every segment
    /// holding offsets at or past `recovery_point` is rescanned batch by batch (framing + CRC),
    /// the log is truncated at the first invalid batch and those segments' indexes are rebuilt.
    ///
    /// Then the producer state is loaded: from the newest producer snapshot plus a replay of the
    /// log after it (after a clean shutdown without any snapshot, as when upgrading from a
    /// version without them, the state starts empty, as Kafka's does).
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset: i64,
        had_clean_shutdown: bool,
    ) -> Result<Log, StorageError> {
        let parent = dir.parent().unwrap_or(dir);
        let health = Arc::new(DirHealth::new(parent));
        Self::open_in(
            dir,
            tp,
            config,
            recovery_point,
            log_start_offset,
            had_clean_shutdown,
            health,
        )
    }

    /// [`Log::open`] for a log whose dir failures are shared with the other logs of its dir.
    pub(crate) fn open_in(
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset: i64,
        had_clean_shutdown: bool,
        health: Arc<DirHealth>,
    ) -> Result<Log, StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let now = now_ms();
        let bases = list_segments(dir)?;
        // The segment holding the recovery point and every later one are rescanned.
        let recover_from = if had_clean_shutdown {
            i64::MAX
        } else {
            bases
                .iter()
                .rev()
                .find(|&&b| b <= recovery_point)
                .copied()
                .unwrap_or(i64::MIN)
        };
        let mut segments = BTreeMap::new();
        let mut next_offset = None;
        let mut dir_dirty = false;
        let mut rebuild_txn = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let (mut segment, indexes_existed, txn_problem) = Segment::open(dir, base, now)?;
            let outcome = if base >= recover_from {
                segment.recover(config.index_interval_bytes)?
            } else {
                segment.load(indexes_existed, config.index_interval_bytes)?
            };
            if outcome.rescanned {
                rebuild_txn.push(base);
            } else if let Some(reason) = txn_problem {
                tracing::warn!(dir = %dir.display(), base_offset = base, %reason, "rebuilding a transaction index");
                segment.reset_txn_index()?;
                rebuild_txn.push(base);
            }
            segments.insert(base, segment);
            next_offset = Some(outcome.next_offset);
            let later = &bases[i + 1..];
            if base >= recover_from && outcome.truncated_bytes > 0 && !later.is_empty() {
                tracing::warn!(
                    dir = %dir.display(),
                    segments = later.len(),
                    "deleting the segments after a truncated one"
                );
                for &base in later {
                    Segment::delete_files(dir, base)?;
                }
                dir_dirty = true;
                break;
            }
        }
        let mut next_offset = next_offset.unwrap_or(log_start_offset.max(0));
        if log_start_offset > next_offset {
            // Everything on disk is below the checkpointed log start (records deleted after the
            // last flush): start over there, or the next append would get offsets below the
            // log start and be invisible.
            tracing::warn!(
                dir = %dir.display(),
                log_start_offset,
                log_end_offset = next_offset,
                "log start offset is past the log end; starting an empty log there"
            );
            for &base in segments.keys() {
                Segment::delete_files(dir, base)?;
            }
            segments.clear();
            next_offset = log_start_offset;
        }
        if segments.is_empty() {
            segments.insert(next_offset, Segment::create(dir, next_offset, now)?);
            dir_dirty = true;
        }
        let first_base = segments.keys().next().copied().unwrap_or(next_offset);
        let log_start_offset = log_start_offset.max(first_base);
        // Kafka's LogLoader: after a clean shutdown everything is on disk; otherwise the
        // recovery point never moves forward without a flush.
        let recovery_point = if had_clean_shutdown {
            next_offset
        } else {
            recovery_point.min(next_offset)
        };
        rebuild_txn.retain(|b| segments.contains_key(b));
        let producers = load_producer_state(
            dir,
            &mut segments,
            &ProducerLoad {
                log_start_offset,
                log_end_offset: next_offset,
                had_clean_shutdown,
                rebuild_txn,
                now,
                expiration_ms: config.producer_id_expiration_ms,
            },
        )?;
        let first_unstable = producers.first_unstable_offset().unwrap_or(i64::MAX);
        let mut inner = Inner {
            roll_jitter_ms: random_jitter(&config),
            config,
            segments,
            next_offset,
            log_start_offset,
            recovery_point,
            dir_dirty,
            closed: false,
            producers,
            unsynced_snapshots: Vec::new(),
            pending_deletes: Vec::new(),
        };
        inner.active_mut().load_rolling_timestamp()?;
        Ok(Log {
            dir: dir.to_path_buf(),
            tp,
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(next_offset),
            recovery_point: AtomicI64::new(recovery_point),
            last_flush_ms: AtomicI64::new(now),
            inner: Mutex::new(inner),
            health,
            high_watermark: AtomicI64::new(i64::MAX),
            first_unstable: AtomicI64::new(first_unstable),
            min_unreplicated_marker: AtomicI64::new(i64::MAX),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written batch counted: sizes and
        // offsets are updated only after the write succeeded.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends one batch that the broker validated (`strom_protocol::batch::validate_produce`).
    /// Gives it the next offsets and the partition leader epoch (and, with `log_append_time`,
    /// marks it `LogAppendTime` with that max timestamp), rolls the segment first if the batch
    /// would not fit (or the segment is older than `segment.ms`, or its index is full), writes
    /// it with one vectored write — a patched copy of the 61-byte header, then the caller's
    /// bytes untouched, so records are never copied — and adds sparse index entries every
    /// `index.interval.bytes`. Fsyncs when `flush.messages` is reached.
    ///
    /// A batch with a producer id is first checked against the producer state (epoch, sequence):
    /// a retry of one of the producer's last five batches is not written and comes back with
    /// `duplicate` set and the original offsets; a fenced epoch or a sequence gap is refused with
    /// nothing written. A write error leaves nothing behind (the file is cut back) and takes the
    /// log dir offline. Produce-time validation (including keyless records on compacted topics)
    /// is the broker's, before it calls this.
    pub fn append(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
    ) -> Result<LogAppendInfo, StorageError> {
        self.append_as(batch, leader_epoch, log_append_time, AppendOrigin::Client)
    }

    /// [`Log::append`] with the checks of another origin: the coordinators' own writes skip the
    /// sequence checks, as in Kafka.
    pub fn append_as(
        &self,
        batch: &[u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
        origin: AppendOrigin,
    ) -> Result<LogAppendInfo, StorageError> {
        let header = BatchHeader::parse(batch)
            .map_err(|e| StorageError::InvalidArgument(format!("cannot append: {e}")))?;
        if header.size() != batch.len() || header.last_offset_delta < 0 {
            return Err(StorageError::InvalidArgument(format!(
                "cannot append: expected one whole batch of {} bytes, got {} bytes with last \
                 offset delta {}",
                header.size(),
                batch.len(),
                header.last_offset_delta
            )));
        }
        let size = batch.len() as u64;
        let mut inner = self.lock();
        if inner.closed {
            return Err(StorageError::Closed(self.tp.to_string()));
        }
        self.health.check()?;
        let segment_bytes = inner.segment_bytes();
        if size > segment_bytes {
            return Err(StorageError::RecordListTooLarge {
                size: batch.len(),
                segment_bytes,
            });
        }
        let base_offset = inner.next_offset;
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        let max_timestamp = log_append_time.unwrap_or(header.max_timestamp);
        let checked = inner.producers.check(
            &header,
            batch,
            base_offset,
            last_offset,
            max_timestamp,
            origin,
        )?;
        if let Checked::Duplicate(original) = checked {
            tracing::debug!(
                tp = %self.tp,
                producer_id = header.producer_id,
                base_sequence = header.base_sequence,
                "duplicate batch: returning the offsets of the original append"
            );
            return Ok(LogAppendInfo {
                base_offset: original.first_offset(),
                last_offset: original.last_offset,
                max_timestamp: original.timestamp,
                log_start_offset: inner.log_start_offset,
                duplicate: true,
            });
        }
        let params = RollParams {
            max_segment_bytes: segment_bytes,
            max_segment_ms: inner.config.segment_ms,
            roll_jitter_ms: inner.roll_jitter_ms,
            max_index_bytes: inner.config.segment_index_bytes,
            batch_size: size,
            batch_max_timestamp: max_timestamp,
            batch_last_offset: last_offset,
            now_ms,
        };
        if inner.active().should_roll(&params) {
            self.health.guard(inner.roll(&self.dir))?;
        }
        let head = batch::patched_header(batch, base_offset, leader_epoch, log_append_time);
        let interval = inner.config.index_interval_bytes;
        #[cfg(test)]
        if let Some(e) = self.health.injected_write_error() {
            inner.active_mut().fail_next_write = Some(e);
        }
        let written = inner.active_mut().append(
            &head,
            &batch[batch::HEADER_LEN..],
            last_offset,
            max_timestamp,
            interval,
        );
        self.health.guard(written)?;
        inner.next_offset = last_offset + 1;
        let mut txn_indexed = Ok(());
        if let Checked::Update(entry, completed) = checked {
            let txn_changed = inner.producers.apply(entry) || completed.is_some();
            if let Some(txn) = completed {
                // Kafka's `UnifiedLog.append`: the aborted transaction goes to the index of the
                // segment holding its marker, with the LSO right after it.
                if txn.aborted {
                    let entry = aborted_entry(&inner.producers, &txn);
                    txn_indexed = inner.active_mut().append_aborted_txn(entry);
                }
                let high_watermark = self.high_watermark_bound(inner.next_offset);
                inner.producers.complete_txn(&txn, high_watermark);
            }
            // Before the log end offset moves: a reader that sees the new end sees the new
            // first unstable offset too.
            if txn_changed {
                self.publish_txn_state(&mut inner);
            }
        }
        // Always, so that the next snapshot is named by the current end even without producers.
        let end = inner.next_offset;
        inner.producers.update_map_end_offset(end);
        self.log_end_offset
            .store(inner.next_offset, Ordering::Release);
        // The marker is written: a failed index write takes the dir offline (as Kafka's
        // IOException does), but the offsets above stay consistent.
        self.health.guard(txn_indexed)?;
        let unflushed = inner.next_offset - inner.recovery_point;
        let flush = unflushed >= inner.config.flush_messages;
        let log_start_offset = inner.log_start_offset;
        drop(inner);
        if flush {
            self.flush()?;
        }
        Ok(LogAppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            log_start_offset,
            duplicate: false,
        })
    }

    /// Reads whole batches starting with the one containing `offset`, stopping before any batch
    /// that starts at or past `max_offset` (the high watermark for consumers) and once `max_bytes`
    /// is reached. If the first batch alone exceeds `max_bytes` it is returned whole when
    /// `min_one_batch` is set (KIP-74) and nothing is returned otherwise.
    /// `offset == log_end_offset` returns empty records; outside `[log_start, log_end]` is
    /// `OffsetOutOfRange`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<LogReadResult, StorageError> {
        self.health.check()?;
        let (spans, log_start_offset, log_end_offset) = {
            let inner = self.lock();
            let (lso, leo) = (inner.log_start_offset, inner.next_offset);
            if offset < lso || offset > leo {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: lso,
                    log_end_offset: leo,
                });
            }
            let empty = LogReadResult {
                records: Bytes::new(),
                log_start_offset: lso,
                log_end_offset: leo,
            };
            if offset == leo || offset >= max_offset {
                return Ok(empty);
            }
            let Some((&first_base, first)) = inner.segments.range(..=offset).next_back() else {
                return Ok(empty);
            };
            let mut spans = vec![first.span(u64::from(first.lookup_offset(offset)))];
            // Later segments, for when the read runs past the first one; `max_bytes` worth is
            // enough (the first segment's share only shortens what is needed).
            let mut following = 0u64;
            for (&base, segment) in inner.segments.range(first_base + 1..) {
                if base >= max_offset || (following >= max_bytes as u64 && spans.len() > 1) {
                    break;
                }
                following += segment.size();
                spans.push(segment.span(0));
            }
            (spans, lso, leo)
        };
        let records = self.health.guard(read_spans(
            &spans,
            offset,
            max_bytes as u64,
            max_offset,
            min_one_batch,
        ))?;
        Ok(LogReadResult {
            records,
            log_start_offset,
            log_end_offset,
        })
    }

    /// A read for a `read_committed` consumer (Kafka's `FetchIsolation.TXN_COMMITTED`): like
    /// [`Log::read`] (`max_offset` is the caller's high watermark) with `max_offset` lowered to
    /// the [last stable offset](Log::last_stable_offset), plus the aborted transactions overlapping the batches
    /// returned (Kafka's `LocalLog.addAbortedTransactions`), which the Fetch response carries.
    /// The bytes are still read without the lock; the aborted transactions take a second short
    /// lock, only when something was read.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<CommittedRead, StorageError> {
        let last_stable_offset = self.last_stable_offset().min(max_offset);
        let read = self.read(offset, max_bytes, last_stable_offset, min_one_batch)?;
        let upper_bound = Batches::new(&read.records)
            .map_while(Result::ok)
            .last()
            .map(|(header, _)| header.next_offset());
        let aborted = match upper_bound {
            Some(upper_bound) => self.collect_aborted_transactions(offset, upper_bound),
            None => Vec::new(),
        };
        Ok(CommittedRead {
            read,
            last_stable_offset,
            aborted,
        })
    }

    /// Kafka's `LocalLog.collectAbortedTransactions`: the aborted transactions that overlap
    /// `[start_offset, upper_bound)` (marker at or past `start_offset`, first record below
    /// `upper_bound`), from the transaction indexes of the segment holding `start_offset` and the
    /// later ones, stopping at the first entry whose last stable offset reaches `upper_bound`.
    pub fn collect_aborted_transactions(
        &self,
        start_offset: i64,
        upper_bound: i64,
    ) -> Vec<AbortedTxn> {
        let inner = self.lock();
        let first = inner
            .segments
            .range(..=start_offset)
            .next_back()
            .map_or(i64::MIN, |(&base, _)| base);
        let mut aborted = Vec::new();
        for segment in inner.segments.range(first..).map(|(_, s)| s) {
            let found = segment.collect_aborted_txns(start_offset, upper_bound);
            aborted.extend(found.aborted);
            if found.complete {
                break;
            }
        }
        aborted
    }

    /// Kafka's `UnifiedLog.lastStableOffset`: the offset below which every transaction is
    /// decided and its marker replicated, i.e. the first offset of the oldest open (or not yet
    /// replicated) transaction, bounded by the high watermark ([`Log::set_high_watermark`];
    /// the log end offset until the broker reports one) and never below the log start offset.
    /// read_committed consumers read up to it. Read from atomics, without the lock.
    pub fn last_stable_offset(&self) -> i64 {
        // The end first: an append stores the first unstable offset before the end.
        let log_end = self.log_end_offset.load(Ordering::Acquire);
        let first_unstable = self.first_unstable.load(Ordering::SeqCst);
        let log_start = self.log_start_offset.load(Ordering::Acquire);
        first_unstable
            .max(log_start)
            .min(self.high_watermark_bound(log_end))
    }

    /// Writes a transaction marker (Kafka's WriteTxnMarkers on a partition leader): the control
    /// batch of [`EndTxnMarker::to_batch`](strom_protocol::batch::EndTxnMarker::to_batch),
    /// appended with the coordinator's checks. A marker older than the producer's epoch is
    /// `InvalidProducerEpoch`, one from an older coordinator epoch than the last marker's is
    /// `CoordinatorFenced`; nothing is written then. The producer's open transaction ends: the
    /// last stable offset can move past it, and an ABORT records the transaction in the
    /// segment's `.txnindex`. A marker for a producer with no open transaction is written too
    /// (Kafka does), changing only its epoch and coordinator epoch.
    pub fn append_control_marker(
        &self,
        marker: &batch::EndTxnMarker,
        leader_epoch: i32,
    ) -> Result<LogAppendInfo, StorageError> {
        self.append_as(
            &marker.to_batch(),
            leader_epoch,
            None,
            AppendOrigin::Coordinator,
        )
    }

    /// Mirrors the producer state's transaction bounds in the atomics, after pruning the
    /// transactions whose marker the high watermark has passed. The order of the atomic
    /// operations pairs with [`Log::set_high_watermark`], so that one of the two always sees
    /// the other's value.
    fn publish_txn_state(&self, inner: &mut Inner) {
        self.min_unreplicated_marker
            .store(inner.producers.min_unreplicated_marker(), Ordering::SeqCst);
        let high_watermark = self.high_watermark_bound(inner.next_offset);
        if high_watermark > inner.producers.min_unreplicated_marker() {
            inner.producers.on_high_watermark_updated(high_watermark);
            self.min_unreplicated_marker
                .store(inner.producers.min_unreplicated_marker(), Ordering::SeqCst);
        }
        self.first_unstable.store(
            inner.producers.first_unstable_offset().unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// Everything below this offset is known to be on disk (fsynced).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// The earliest record whose timestamp is >= `timestamp` (ListOffsets by time): the time
    /// index finds the segment and position, then the matching batch's records are decoded to
    /// find the exact record. `None` when every record is older.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        self.health.check()?;
        let (span, log_start_offset) = {
            let inner = self.lock();
            let lso = inner.log_start_offset;
            // Kafka: the first segment whose largest timestamp reaches the target.
            let Some(segment) = inner
                .segments
                .values()
                .find(|s| s.size() > 0 && s.max_timestamp().0 >= timestamp)
            else {
                return Ok(None);
            };
            let from = segment.lookup_timestamp(timestamp).max(lso);
            (segment.span(u64::from(segment.lookup_offset(from))), lso)
        };
        self.health
            .guard(span.find_timestamp(timestamp, log_start_offset))
    }

    /// The record with the largest timestamp (ListOffsets MAX_TIMESTAMP, KIP-734); on ties the
    /// earliest such record. `None` for an empty log.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>, StorageError> {
        self.health.check()?;
        let (span, max_timestamp) = {
            let inner = self.lock();
            let mut best: Option<&Segment> = None;
            for segment in inner.segments.values().filter(|s| s.size() > 0) {
                if best.is_none_or(|b| segment.max_timestamp().0 > b.max_timestamp().0) {
                    best = Some(segment);
                }
            }
            let Some(segment) = best else {
                return Ok(None);
            };
            let (max_timestamp, offset) = segment.max_timestamp();
            (
                segment.span(u64::from(segment.lookup_offset(offset))),
                max_timestamp,
            )
        };
        self.health.guard(span.find_max_timestamp(max_timestamp))
    }

    /// Fsyncs everything appended so far and advances the recovery point.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.flush_segments(false)
    }

    /// Fsyncs the segments that are no longer active and moves the recovery point to the active
    /// segment's base offset: what Kafka schedules right after every roll.
    /// [`LogManager`](crate::LogManager) calls it before each checkpoint so the recovery point keeps up even
    /// when `flush.messages` / `flush.ms` never fire (their defaults).
    pub fn flush_rolled_segments(&self) -> Result<(), StorageError> {
        self.flush_segments(true)
    }

    fn flush_segments(&self, only_sealed: bool) -> Result<(), StorageError> {
        self.health.check()?;
        let result = self.flush_segments_inner(only_sealed);
        self.health.guard(result)
    }

    fn flush_segments_inner(&self, only_sealed: bool) -> Result<(), StorageError> {
        let (targets, new_recovery_point, dir_sync, snapshots) = {
            let mut inner = self.lock();
            let active_base = inner.active().base_offset;
            let new_recovery_point = if only_sealed {
                active_base
            } else {
                inner.next_offset
            };
            let mut targets: Vec<FlushTarget> = Vec::new();
            for segment in inner.segments.values_mut() {
                if only_sealed && segment.base_offset >= active_base {
                    break;
                }
                if segment.is_dirty() {
                    targets.push(segment.prepare_flush()?);
                }
            }
            let dir_sync = std::mem::take(&mut inner.dir_dirty);
            let snapshots = std::mem::take(&mut inner.unsynced_snapshots);
            (targets, new_recovery_point, dir_sync, snapshots)
        };
        let synced = sync_files(&snapshots).and_then(|()| self.sync_targets(&targets, dir_sync));
        let mut inner = self.lock();
        if let Err(e) = synced {
            inner.dir_dirty |= dir_sync;
            inner.unsynced_snapshots.extend(snapshots);
            return Err(e);
        }
        for target in &targets {
            if let Some(segment) = inner.segments.values_mut().find(|s| s.id == target.id) {
                segment.flushed(target.writes);
            }
        }
        if new_recovery_point > inner.recovery_point {
            inner.recovery_point = new_recovery_point;
            self.recovery_point
                .store(new_recovery_point, Ordering::Release);
        }
        if !only_sealed {
            self.last_flush_ms.store(now_ms(), Ordering::Release);
        }
        Ok(())
    }

    fn sync_targets(&self, targets: &[FlushTarget], dir_sync: bool) -> Result<(), StorageError> {
        for target in targets {
            for (file, path) in &target.files {
                file.sync_all().map_err(|e| StorageError::io(path, e))?;
            }
        }
        if dir_sync {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Milliseconds since the epoch of the last flush (for `flush.ms`).
    pub fn last_flush_ms(&self) -> i64 {
        self.last_flush_ms.load(Ordering::Acquire)
    }

    /// Flushes and trims the indexes and writes a producer snapshot at the log end (Kafka's
    /// clean-shutdown snapshot); the log is not used afterwards. A log whose dir is offline is
    /// only marked closed: nothing more is written to a failed disk.
    pub fn close(&self) -> Result<(), StorageError> {
        {
            let mut inner = self.lock();
            if inner.closed {
                return Ok(());
            }
            inner.closed = true;
            self.health.check()?;
            let sealed = inner.active_mut().seal().and_then(|()| {
                let end = inner.next_offset;
                inner.producers.update_map_end_offset(end);
                inner.producers.take_snapshot(false).map(|taken| {
                    inner.unsynced_snapshots.extend(taken);
                })
            });
            self.health.guard(sealed)?;
        }
        self.flush_segments_inner(false)
            .map_err(|e| self.health.on_error(e))
    }

    /// Refuses further appends without flushing: the log is about to be deleted.
    pub(crate) fn close_for_delete(&self) {
        self.lock().closed = true;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Base offset of the first segment: the log start offset needs a checkpoint entry only
    /// when it is past this.
    pub(crate) fn first_segment_base(&self) -> i64 {
        self.lock().segments.keys().next().copied().unwrap_or(0)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Whether the log's dir was taken offline by an I/O error.
    pub fn is_offline(&self) -> bool {
        self.health.is_offline()
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// Total bytes of all segments (for DescribeLogDirs and retention).
    pub fn size_in_bytes(&self) -> u64 {
        self.lock().segments.values().map(Segment::size).sum()
    }

    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    /// Applies new settings; they take effect from the next append.
    pub fn update_config(&self, config: LogConfig) {
        let mut inner = self.lock();
        if config.segment_jitter_ms != inner.config.segment_jitter_ms
            || config.segment_ms != inner.config.segment_ms
        {
            inner.roll_jitter_ms = random_jitter(&config);
        }
        inner.config = config;
    }

    /// Rolls now (tests need sealed segments on demand).
    #[cfg(test)]
    pub(crate) fn roll_for_test(&self) {
        let mut inner = self.lock();
        inner.roll(&self.dir).expect("roll");
    }

    #[cfg(test)]
    pub(crate) fn segment_bases(&self) -> Vec<i64> {
        self.lock().segments.keys().copied().collect()
    }

    #[cfg(test)]
    fn active_index_entries(&self) -> (usize, usize) {
        self.lock().active().index_entry_counts()
    }
}

/// Fsyncs files written earlier without a sync (producer snapshots from rolls).
fn sync_files(paths: &[PathBuf]) -> Result<(), StorageError> {
    for path in paths {
        match fs::File::open(path).and_then(|f| f.sync_all()) {
            Ok(()) => {}
            // Deleted since (its segment went away): nothing to make durable.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(path, e)),
        }
    }
    Ok(())
}

/// Reads whole batches from `spans` (captured under the lock), starting with the batch that
/// holds `offset`. Runs without the lock.
fn read_spans(
    spans: &[SegmentSpan],
    offset: i64,
    max_bytes: u64,
    max_offset: i64,
    min_one_batch: bool,
) -> Result<Bytes, StorageError> {
    // The index gives a position at or before the batch; walk the headers to it.
    let mut found = None;
    for (i, span) in spans.iter().enumerate() {
        if let Some((position, header)) = span.find_offset(offset)? {
            found = Some((i, position, header));
            break;
        }
    }
    let Some((first_span, position, first)) = found else {
        return Ok(Bytes::new());
    };
    if first.base_offset >= max_offset {
        return Ok(Bytes::new());
    }
    let first_size = first.size() as u64;
    if first_size > max_bytes && !min_one_batch {
        return Ok(Bytes::new());
    }
    let budget = if min_one_batch {
        max_bytes.max(first_size)
    } else {
        max_bytes
    };
    let mut ranges = Vec::with_capacity(spans.len() - first_span);
    let span = &spans[first_span];
    let len = (span.end - position).min(budget);
    ranges.push(ReadRange {
        span,
        start: position,
        len,
    });
    let mut total = len;
    for span in &spans[first_span + 1..] {
        if total >= budget {
            break;
        }
        let len = (span.end - span.start).min(budget - total);
        ranges.push(ReadRange {
            span,
            start: span.start,
            len,
        });
        total += len;
    }
    let mut buf = vec![0u8; total as usize];
    let mut at = 0usize;
    for range in &ranges {
        let end = at + range.len as usize;
        range
            .span
            .file
            .read_exact_at(&mut buf[at..end], range.start)
            .map_err(|e| StorageError::io(&*range.span.path, e))?;
        at = end;
    }
    // Keep whole batches below `max_offset`; a cut at `max_bytes` leaves a partial batch last.
    let mut keep = 0usize;
    for item in Batches::new(&buf) {
        match item {
            Ok((header, _)) if header.base_offset < max_offset => keep += header.size(),
            _ => break,
        }
    }
    buf.truncate(keep);
    Ok(Bytes::from(buf))
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "log_retention_tests.rs"]
mod retention_tests;

#[cfg(test)]
#[path = "log_txn_tests.rs"]
mod txn_tests;
