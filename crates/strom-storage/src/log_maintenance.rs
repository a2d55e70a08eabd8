//! Work on a [`Log`] that removes or replaces whole segments: retention, DeleteRecords, the
//! delayed deletion of their files, and the swap of a cleaner's output. Also the producer-state
//! queries the broker makes.
//!
//! ```text
//!  retention / DeleteRecords            cleaner swap (Kafka's replaceSegments)
//!  ------------------------             ---------------------------------------
//!  [roll if every segment goes]         <base>.*.cleaned  --rename-->  <base>.*.swap, fsync dir
//!  log start -> first kept base         old segments: out of the map, files -> *.deleted
//!  segments out of the map              <base>.*.swap --rename--> <base>.*, into the map, fsync
//!  files -> *.deleted (+ snapshot)
//!  ... file.delete.delay.ms later: removed (leftovers are removed at the next start)
//! ```
//!
//! Everything here runs under the log's lock but does only renames and map edits, so appends
//! and reads wait microseconds. Readers holding segments that leave the map keep reading their
//! (renamed, later unlinked) files.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::{Inner, Log};
use crate::checkpoint::sync_dir;
use crate::producer_state::{LastRecord, ProducerSnapshotEntry};
use crate::retention::{self, DeletionReason, SegmentFacts};
use crate::segment::{CLEANED_SUFFIX, DELETED_SUFFIX, SWAP_SUFFIX, Segment, SegmentSpan};
use crate::txn_index::AbortedTxn;
use crate::{LogConfig, StorageError, TopicPartition};

/// Files renamed `.deleted`, to remove once `due_ms` has passed.
#[derive(Debug)]
pub(crate) struct PendingDelete {
    due_ms: i64,
    files: Vec<PathBuf>,
}

/// What retention or DeleteRecords removed from one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedSegments {
    pub topic_partition: TopicPartition,
    /// Base offsets of the deleted segments, oldest first.
    pub base_offsets: Vec<i64>,
    pub bytes: u64,
    pub reasons: Vec<DeletionReason>,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

/// A sealed segment as the cleaner sees it: its bytes (readable without the log's lock) and its
/// identity, checked again at swap time.
#[derive(Debug, Clone)]
pub(crate) struct CleanableSegment {
    pub(crate) base_offset: i64,
    pub(crate) id: u64,
    pub(crate) span: SegmentSpan,
    pub(crate) largest_timestamp: i64,
    pub(crate) offset_index_entries: usize,
    pub(crate) time_index_entries: usize,
}

/// What the cleaner needs from a log, captured in one short lock.
#[derive(Debug, Clone)]
pub(crate) struct CleaningView {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Every segment but the active one, oldest first.
    pub(crate) segments: Vec<CleanableSegment>,
    pub(crate) active_base: i64,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    /// Offsets at or past this are not stable (an open transaction) or not replicated.
    pub(crate) first_unstable: i64,
    pub(crate) last_records: HashMap<i64, LastRecord>,
    /// Every aborted transaction in the transaction indexes, by first offset: the cleaner drops
    /// their records and decides when their markers may go.
    pub(crate) aborted: Vec<AbortedTxn>,
}

impl Log {
    /// Tells the log the partition's high watermark: retention and the cleaner never go past it
    /// (Kafka keeps the log start offset at or below the high watermark), and neither does the
    /// last stable offset; a transaction whose marker is not below it yet stays unstable
    /// (Kafka's `onHighWatermarkUpdated`). Until it is called the whole log counts as
    /// replicated, which is right for a single replica. Takes the lock only when the new value
    /// releases such a transaction.
    pub fn set_high_watermark(&self, high_watermark: i64) {
        self.high_watermark.store(high_watermark, Ordering::SeqCst);
        if high_watermark > self.min_unreplicated_marker.load(Ordering::SeqCst) {
            let mut inner = self.lock();
            self.publish_txn_state(&mut inner);
        }
    }

    pub(super) fn high_watermark_bound(&self, log_end: i64) -> i64 {
        self.high_watermark.load(Ordering::SeqCst).min(log_end)
    }

    /// Kafka's `deleteOldSegments`: deletes the segments that the log start offset,
    /// `retention.bytes` and `retention.ms` (the last two only with `cleanup.policy` `delete`)
    /// allow, oldest first, never past the high watermark; when that is every segment, the log
    /// first rolls, so the active one goes too. The log start offset moves to the first kept
    /// segment. Files are renamed `.deleted` and removed by [`Log::delete_pending_files`] after
    /// `file.delete.delay.ms`. `None` when nothing was deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<Option<DeletedSegments>, StorageError> {
        let mut inner = self.lock();
        if inner.closed {
            return Ok(None);
        }
        self.health.check()?;
        let facts: Vec<SegmentFacts> = inner
            .segments
            .values()
            .map(|s| SegmentFacts {
                base_offset: s.base_offset,
                size: s.size(),
                largest_timestamp: s.largest_timestamp(),
            })
            .collect();
        let leo = inner.next_offset;
        let plan = retention::plan(
            &facts,
            inner.log_start_offset,
            leo,
            self.high_watermark_bound(leo),
            &inner.config,
            now_ms,
        );
        if plan.count == 0 {
            return Ok(None);
        }
        let deleted = self.delete_oldest(&mut inner, plan.count, now_ms);
        let mut deleted = self.health.guard(deleted)?;
        deleted.reasons = plan.reasons;
        tracing::info!(
            tp = %self.tp,
            segments = ?deleted.base_offsets,
            bytes = deleted.bytes,
            reasons = ?deleted.reasons,
            log_start_offset = deleted.log_start_offset,
            "deleted log segments"
        );
        Ok(Some(deleted))
    }

    /// DeleteRecords (Kafka's `maybeIncrementLogStartOffset` followed by the log-start pass of
    /// retention): moves the log start offset to `offset` and deletes the segments entirely
    /// below it. Returns the new log start offset. The broker resolves -1 to the high watermark
    /// and checks `offset <= high watermark`; here an offset past the log end (or the high
    /// watermark set with [`Log::set_high_watermark`]) is `OffsetOutOfRange`. The new log start
    /// offset reaches `log-start-offset-checkpoint` with the next checkpoint
    /// ([`crate::LogManager::delete_records`] writes it at once).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(StorageError::Closed(self.tp.to_string()));
        }
        self.health.check()?;
        let leo = inner.next_offset;
        if offset < 0 || offset > self.high_watermark_bound(leo) {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: inner.log_start_offset,
                log_end_offset: leo,
            });
        }
        if offset > inner.log_start_offset {
            inner.log_start_offset = offset;
            self.log_start_offset.store(offset, Ordering::Release);
            inner.producers.on_log_start_offset_incremented(offset);
            self.publish_txn_state(&mut inner);
            tracing::info!(tp = %self.tp, log_start_offset = offset, "incremented the log start offset (DeleteRecords)");
        }
        let below = inner
            .segments
            .keys()
            .skip(1)
            .take_while(|&&next_base| next_base <= inner.log_start_offset)
            .count();
        if below > 0 {
            let deleted = self.delete_oldest(&mut inner, below, super::now_ms());
            self.health.guard(deleted)?;
        }
        Ok(inner.log_start_offset)
    }

    /// Removes the first `count` segments from the map (rolling first when that is all of them),
    /// advances the log start offset and renames their files `.deleted`.
    fn delete_oldest(
        &self,
        inner: &mut Inner,
        count: usize,
        now_ms: i64,
    ) -> Result<DeletedSegments, StorageError> {
        if count >= inner.segments.len() {
            inner.roll(&self.dir)?;
        }
        let doomed: Vec<i64> = inner.segments.keys().take(count).copied().collect();
        // Never the last segment: a roll above made sure a newer one exists.
        let doomed: Vec<i64> = doomed
            .into_iter()
            .filter(|&b| Some(b) != inner.segments.keys().next_back().copied())
            .collect();
        let mut bytes = 0;
        let mut files = Vec::new();
        let first_kept = inner
            .segments
            .keys()
            .find(|b| !doomed.contains(b))
            .copied()
            .unwrap_or(inner.next_offset);
        if first_kept > inner.log_start_offset {
            // Before the segments leave the map, so no read finds a hole below the log start.
            inner.log_start_offset = first_kept;
            self.log_start_offset.store(first_kept, Ordering::Release);
            inner.producers.on_log_start_offset_incremented(first_kept);
            self.publish_txn_state(inner);
        }
        let mut first_error = None;
        for &base in &doomed {
            let Some(mut segment) = inner.segments.remove(&base) else {
                continue;
            };
            bytes += segment.size();
            match segment.change_suffix("", DELETED_SUFFIX) {
                Ok(()) => files.extend(segment.file_paths()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            match inner.producers.mark_snapshot_deleted(base) {
                Ok(Some(path)) => files.push(path),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.schedule_delete(inner, files, now_ms);
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(DeletedSegments {
            topic_partition: self.tp.clone(),
            base_offsets: doomed,
            bytes,
            reasons: vec![DeletionReason::LogStartOffset],
            log_start_offset: inner.log_start_offset,
        })
    }

    fn schedule_delete(&self, inner: &mut Inner, files: Vec<PathBuf>, now_ms: i64) {
        if files.is_empty() {
            return;
        }
        let delay = inner.config.file_delete_delay_ms.max(0);
        inner.pending_deletes.push(PendingDelete {
            due_ms: now_ms.saturating_add(delay),
            files,
        });
        if delay == 0 {
            // Kafka schedules the deletion at once; do it now rather than wait for a tick.
            if let Err(e) = delete_due(inner, now_ms) {
                tracing::warn!(tp = %self.tp, error = %e, "cannot remove deleted segment files");
            }
        }
    }

    /// Removes the `.deleted` files whose `file.delete.delay.ms` has passed. Returns how many
    /// files were removed.
    pub fn delete_pending_files(&self, now_ms: i64) -> Result<usize, StorageError> {
        let mut inner = self.lock();
        let removed = delete_due(&mut inner, now_ms);
        self.health.guard(removed)
    }

    /// The producers this partition knows, for DescribeProducers.
    pub fn active_producers(&self) -> Vec<ProducerSnapshotEntry> {
        self.lock().producers.active_producers()
    }

    /// Drops producer state idle for `producer.id.expiration.ms` (Kafka's
    /// `removeExpiredProducers`, which the broker runs every
    /// `producer.id.expiration.check.interval.ms`). Returns how many were dropped.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        let mut inner = self.lock();
        let expiration = inner.config.producer_id_expiration_ms;
        inner.producers.remove_expired(now_ms, expiration)
    }

    /// Writes a producer snapshot at the log end now (tests and tools).
    pub fn take_producer_snapshot(&self) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let end = inner.next_offset;
        inner.producers.update_map_end_offset(end);
        let taken = inner.producers.take_snapshot(true).map(|_| ());
        self.health.guard(taken)
    }

    /// Everything the cleaner needs, in one short lock. `None` when the log is closed.
    pub(crate) fn cleaning_view(&self) -> Result<Option<CleaningView>, StorageError> {
        let inner = self.lock();
        if inner.closed {
            return Ok(None);
        }
        self.health.check()?;
        let active_base = inner.active().base_offset;
        let segments = inner
            .segments
            .values()
            .filter(|s| s.base_offset < active_base)
            .map(|s| {
                let (offset_index_entries, time_index_entries) = s.index_entry_counts();
                CleanableSegment {
                    base_offset: s.base_offset,
                    id: s.id,
                    span: s.span(0),
                    largest_timestamp: s.largest_timestamp(),
                    offset_index_entries,
                    time_index_entries,
                }
            })
            .collect();
        let leo = inner.next_offset;
        let first_unstable = inner
            .producers
            .first_unstable_offset()
            .unwrap_or(i64::MAX)
            .min(self.high_watermark_bound(leo));
        let mut aborted: Vec<AbortedTxn> = inner
            .segments
            .values()
            .flat_map(|s| s.aborted_txns().iter().copied())
            .collect();
        aborted.sort_by_key(|t| t.first_offset);
        Ok(Some(CleaningView {
            dir: self.dir.clone(),
            config: inner.config.clone(),
            segments,
            active_base,
            log_start_offset: inner.log_start_offset,
            log_end_offset: leo,
            first_unstable,
            last_records: inner.producers.last_records(),
            aborted,
        }))
    }

    /// Kafka's `replaceSegments` for one cleaner output (named `.cleaned`, fsynced): if the
    /// segments it was made from (`replaced`: base offset and identity) are all still in the log,
    /// swaps it in, crash-safely (see the module docs), and returns true. Returns false, changing
    /// nothing, when the log moved on meanwhile (retention, DeleteRecords, close); the caller
    /// then removes the output.
    pub(crate) fn replace_segments(
        &self,
        mut cleaned: Segment,
        replaced: &[(i64, u64)],
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut inner = self.lock();
        if inner.closed || self.health.is_offline() {
            return Ok(false);
        }
        let active_base = inner.active().base_offset;
        let unchanged = replaced.iter().all(|&(base, id)| {
            base < active_base && inner.segments.get(&base).is_some_and(|s| s.id == id)
        });
        if !unchanged || replaced.first().map(|r| r.0) != Some(cleaned.base_offset) {
            return Ok(false);
        }
        let swapped = self.swap_in(&mut inner, &mut cleaned, replaced, now_ms);
        match swapped {
            Ok(files) => {
                inner.segments.insert(cleaned.base_offset, cleaned);
                self.schedule_delete(&mut inner, files, now_ms);
                Ok(true)
            }
            Err(e) => Err(self.health.on_error(e)),
        }
    }

    fn swap_in(
        &self,
        inner: &mut Inner,
        cleaned: &mut Segment,
        replaced: &[(i64, u64)],
        _now_ms: i64,
    ) -> Result<Vec<PathBuf>, StorageError> {
        cleaned.change_suffix(CLEANED_SUFFIX, SWAP_SUFFIX)?;
        // The decision to swap is durable before any old file is touched.
        sync_dir(&self.dir)?;
        let mut files = Vec::new();
        for &(base, _) in replaced {
            if let Some(mut old) = inner.segments.remove(&base) {
                old.change_suffix("", DELETED_SUFFIX)?;
                files.extend(old.file_paths());
            }
            if base != cleaned.base_offset
                && let Some(path) = inner.producers.mark_snapshot_deleted(base)?
            {
                files.push(path);
            }
        }
        cleaned.change_suffix(SWAP_SUFFIX, "")?;
        sync_dir(&self.dir)?;
        Ok(files)
    }

    #[cfg(test)]
    pub(crate) fn producer_state_entry(
        &self,
        producer_id: i64,
    ) -> Option<crate::producer_state::ProducerStateEntry> {
        self.lock().producers.entry(producer_id).cloned()
    }

    #[cfg(test)]
    pub(crate) fn producer_snapshot_offsets(&self) -> Vec<i64> {
        self.lock().producers.snapshot_offsets()
    }

    pub(crate) fn health(&self) -> &crate::dir_failure::DirHealth {
        &self.health
    }
}

/// Removes the pending files that are due; keeps the rest.
fn delete_due(inner: &mut Inner, now_ms: i64) -> Result<usize, StorageError> {
    let mut removed = 0;
    let mut first_error = None;
    let pending = std::mem::take(&mut inner.pending_deletes);
    for item in pending {
        if item.due_ms > now_ms {
            inner.pending_deletes.push(item);
            continue;
        }
        for path in &item.files {
            match fs::remove_file(path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(StorageError::io(path, e));
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}
