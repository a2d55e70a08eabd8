//! The set of logs in `log.dirs`, their checkpoints and the clean-shutdown marker.
//!
//! ```text
//! <log.dir>/
//!   .kafka_cleanshutdown                 present only between a clean shutdown and the next start
//!   recovery-point-offset-checkpoint     where each log's recovery scan starts
//!   log-start-offset-checkpoint          log start offsets past the first segment's base
//!   cleaner-offset-checkpoint            each compacted log's first dirty offset
//!   <topic>-<partition>/                 one Log, with its partition.metadata (topic id)
//!   <topic>-<partition>.<uuid>-delete/   a deleted log on its way out (removed at start)
//! ```
//!
//! It is also where the broker's periodic tasks enter: retention
//! ([`LogManager::enforce_retention`], [`LogManager::delete_pending_files`]), producer expiry,
//! the cleaner's choice of the dirtiest log ([`LogManager::clean_dirtiest`], run by
//! [`crate::LogCleaner`] threads), and DescribeLogDirs. Each log dir has a failure state
//! ([`crate::dir_failure`]): a dir that failed is skipped by all of them and gets no
//! clean-shutdown marker, while the other dirs carry on.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use crate::checkpoint::{
    CLEANER_OFFSET_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
    read_offsets, sync_dir, write_offsets,
};
use crate::cleaner::{self, CleanSummary, CleanerState, OffsetMap};
use crate::dir_failure::DirHealth;
use crate::log::DeletedSegments;
use crate::{Log, LogConfig, StorageError, TopicPartition, partition_metadata};

/// Kafka's clean-shutdown marker, written in each log dir by a clean shutdown.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// The KRaft metadata log lives in a log dir too, but the metadata crate owns it.
const METADATA_LOG_DIR: &str = "__cluster_metadata-0";
const DELETE_SUFFIX: &str = "-delete";
/// Kafka's other transient directory kinds (replica movement between dirs, stray replicas):
/// not ours to open or remove.
const SKIPPED_SUFFIXES: [&str; 2] = ["-future", "-stray"];

#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// `log.dirs`.
    pub log_dirs: Vec<PathBuf>,
}

/// One log dir as DescribeLogDirs reports it.
#[derive(Debug, Clone)]
pub struct LogDirDescription {
    pub path: PathBuf,
    /// Why the dir is offline (map with [`StorageError::error_code`]: KAFKA_STORAGE_ERROR).
    pub error: Option<StorageError>,
    /// Size of the dir's filesystem (-1 when offline or unknown, as Kafka reports).
    pub total_bytes: i64,
    /// Space an unprivileged writer can still use there (-1 when offline or unknown).
    pub usable_bytes: i64,
    /// Empty for an offline dir, as in Kafka.
    pub partitions: Vec<LogDirPartition>,
}

/// One partition of a [`LogDirDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirPartition {
    pub topic_partition: TopicPartition,
    pub size_bytes: u64,
    /// Always 0: strom has no future replicas moving between dirs.
    pub offset_lag: i64,
    /// Always false, for the same reason.
    pub is_future: bool,
}

/// Owns every partition log on this node.
#[derive(Debug)]
pub struct LogManager {
    log_dirs: Vec<PathBuf>,
    /// Failure state per log dir, shared with its logs.
    health: Vec<Arc<DirHealth>>,
    /// Partitions found in a dir that failed while loading: never recreated elsewhere, which
    /// would hide their data.
    offline_partitions: HashSet<TopicPartition>,
    /// First dirty offsets per log dir (`cleaner-offset-checkpoint`).
    cleaner_checkpoints: Mutex<Vec<HashMap<TopicPartition, i64>>>,
    cleaner_state: Mutex<CleanerState>,
    had_clean_shutdown: bool,
    logs: RwLock<HashMap<TopicPartition, Entry>>,
    /// Serialises creating and deleting logs, so their directory I/O happens outside `logs`'
    /// lock while no two callers create the same log.
    structure: Mutex<()>,
    /// Serialises checkpoint writers (the periodic task and shutdown).
    checkpointing: Mutex<()>,
}

#[derive(Debug, Clone)]
struct Entry {
    log: Arc<Log>,
    /// Index into `log_dirs`.
    dir_index: usize,
    topic_id: Option<Uuid>,
}

/// Kafka's `UnifiedLog.parseTopicPartitionName`: `<topic>-<partition>`, split at the last `-`.
fn parse_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition::new(topic, partition.parse().ok()?))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A log dir's partition directories found at start.
struct Found {
    tp: TopicPartition,
    path: PathBuf,
    dir_index: usize,
    config: LogConfig,
    recovery_point: i64,
    log_start_offset: i64,
    clean: bool,
}

impl LogManager {
    /// Opens every `<topic>-<partition>` directory under each log dir (skipping Kafka's special
    /// directories such as `*-delete` and `__cluster_metadata-0`, and removing leftovers of
    /// deletions), with the recovery points and log start offsets from the checkpoint files.
    /// The clean-shutdown marker decides whether logs are recovered; it is removed once open, so
    /// a crash from now on is noticed at the next start. `config_for` gives each log's settings.
    ///
    /// As in Kafka, a log dir that fails with an I/O error while loading is taken offline (its
    /// partitions stay unavailable until a restart) and the others are opened; only when every
    /// dir fails does opening fail.
    pub fn open(
        config: LogManagerConfig,
        config_for: &dyn Fn(&TopicPartition) -> LogConfig,
    ) -> Result<LogManager, StorageError> {
        if config.log_dirs.is_empty() {
            return Err(StorageError::InvalidArgument("log.dirs is empty".into()));
        }
        let mut found = Vec::new();
        let mut all_clean = true;
        let mut cleaner_checkpoints = Vec::with_capacity(config.log_dirs.len());
        let health: Vec<Arc<DirHealth>> = config
            .log_dirs
            .iter()
            .map(|d| Arc::new(DirHealth::new(d.clone())))
            .collect();
        let mut first_io_error = None;
        for (dir_index, dir) in config.log_dirs.iter().enumerate() {
            cleaner_checkpoints.push(read_checkpoint(&dir.join(CLEANER_OFFSET_CHECKPOINT)));
            let clean = dir.join(CLEAN_SHUTDOWN_FILE).exists();
            all_clean &= clean;
            let recovery_points = read_checkpoint(&dir.join(RECOVERY_POINT_CHECKPOINT));
            let log_start_offsets = read_checkpoint(&dir.join(LOG_START_OFFSET_CHECKPOINT));
            let scanned = fs::create_dir_all(dir)
                .map_err(|e| StorageError::io(dir, e))
                .and_then(|()| scan_log_dir(dir));
            let scanned = match scanned {
                Ok(scanned) => scanned,
                Err(e) if e.is_io() => {
                    first_io_error.get_or_insert(health[dir_index].on_error(e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (tp, path) in scanned {
                found.push(Found {
                    config: config_for(&tp),
                    recovery_point: recovery_points.get(&tp).copied().unwrap_or(0),
                    log_start_offset: log_start_offsets.get(&tp).copied().unwrap_or(0),
                    tp,
                    path,
                    dir_index,
                    clean,
                });
            }
        }
        let mut logs: HashMap<TopicPartition, Entry> = HashMap::with_capacity(found.len());
        let mut offline_partitions = HashSet::new();
        for (found, opened) in open_all(&found, &health) {
            let (log, topic_id) = match opened {
                Ok(opened) => opened,
                Err(e) if e.is_io() => {
                    first_io_error.get_or_insert(health[found.dir_index].on_error(e));
                    offline_partitions.insert(found.tp.clone());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let entry = Entry {
                log: Arc::new(log),
                dir_index: found.dir_index,
                topic_id,
            };
            if let Some(other) = logs.insert(found.tp.clone(), entry) {
                return Err(StorageError::Corrupt {
                    path: found.path.display().to_string(),
                    reason: format!(
                        "partition {} also has a directory {}",
                        found.tp,
                        other.log.dir().display()
                    ),
                });
            }
        }
        if health.iter().all(|h| h.is_offline()) {
            return Err(first_io_error.unwrap_or_else(|| health[0].offline_error()));
        }
        // Logs of a dir that failed while loading are not served at all.
        logs.retain(|tp, entry| {
            if health[entry.dir_index].is_offline() {
                entry.log.close_for_delete();
                offline_partitions.insert(tp.clone());
                false
            } else {
                true
            }
        });
        // From here on a crash must be noticed at the next start.
        for (dir_index, dir) in config.log_dirs.iter().enumerate() {
            if health[dir_index].is_offline() {
                continue;
            }
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            match fs::remove_file(&marker) {
                Ok(()) => sync_dir(dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&marker, e)),
            }
        }
        tracing::info!(
            logs = logs.len(),
            clean_shutdown = all_clean,
            "opened the logs"
        );
        Ok(LogManager {
            log_dirs: config.log_dirs,
            health,
            offline_partitions,
            cleaner_checkpoints: Mutex::new(cleaner_checkpoints),
            cleaner_state: Mutex::new(CleanerState::default()),
            had_clean_shutdown: all_clean,
            logs: RwLock::new(logs),
            structure: Mutex::new(()),
            checkpointing: Mutex::new(()),
        })
    }

    fn read_logs(&self) -> RwLockReadGuard<'_, HashMap<TopicPartition, Entry>> {
        self.logs.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_logs(&self) -> RwLockWriteGuard<'_, HashMap<TopicPartition, Entry>> {
        self.logs.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the previous run ended with a clean shutdown (the marker was present).
    pub fn had_clean_shutdown(&self) -> bool {
        self.had_clean_shutdown
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.read_logs().get(tp).map(|e| e.log.clone())
    }

    /// Returns the existing log, or creates its directory (in the log dir holding the fewest
    /// partitions) with a `partition.metadata` file recording `topic_id`. An existing directory
    /// whose `partition.metadata` names another topic id belongs to a deleted topic of the same
    /// name: it is removed and a fresh log is created.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        config: LogConfig,
    ) -> Result<Arc<Log>, StorageError> {
        if let Some(entry) = self.read_logs().get(tp)
            && entry.topic_id == Some(topic_id)
        {
            return Ok(entry.log.clone());
        }
        if tp.to_string() == METADATA_LOG_DIR {
            return Err(StorageError::InvalidArgument(format!(
                "{tp} is the metadata log, not a partition log"
            )));
        }
        if self.offline_partitions.contains(tp) {
            return Err(StorageError::LogDirOffline(format!(
                "{tp} is in a log dir that failed at start"
            )));
        }
        let _structure = lock(&self.structure);
        let existing = self.read_logs().get(tp).cloned();
        match existing {
            Some(entry) if entry.topic_id == Some(topic_id) => return Ok(entry.log),
            Some(entry) if entry.topic_id.is_none() => {
                // A log from before topic ids were recorded: adopt it.
                partition_metadata::write(&entry.log.dir(), topic_id)?;
                if let Some(e) = self.write_logs().get_mut(tp) {
                    e.topic_id = Some(topic_id);
                }
                return Ok(entry.log);
            }
            Some(entry) => {
                tracing::info!(
                    %tp,
                    old_topic_id = ?entry.topic_id,
                    new_topic_id = %topic_id,
                    "replacing the log of a deleted topic of the same name"
                );
                self.delete_locked(tp)?;
            }
            None => {}
        }
        let dir_index = self.least_loaded_dir().ok_or_else(|| {
            StorageError::LogDirOffline(format!("every log dir is offline; cannot create {tp}"))
        })?;
        let parent = &self.log_dirs[dir_index];
        let health = self.health[dir_index].clone();
        let path = parent.join(tp.to_string());
        let created = (|| {
            if path.exists() {
                // Not a log we opened (it appeared after start): never mix it with the new topic.
                fs::remove_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
            }
            fs::create_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
            partition_metadata::write(&path, topic_id)?;
            sync_dir(parent)?;
            Log::open_in(&path, tp.clone(), config, 0, 0, true, health.clone())
        })();
        let log = Arc::new(health.guard(created)?);
        self.write_logs().insert(
            tp.clone(),
            Entry {
                log: log.clone(),
                dir_index,
                topic_id: Some(topic_id),
            },
        );
        tracing::info!(%tp, dir = %path.display(), "created log");
        Ok(log)
    }

    /// The online log dir holding the fewest partitions; `None` when every dir is offline.
    fn least_loaded_dir(&self) -> Option<usize> {
        let mut counts = vec![0usize; self.log_dirs.len()];
        for entry in self.read_logs().values() {
            counts[entry.dir_index] += 1;
        }
        counts
            .iter()
            .enumerate()
            .filter(|&(i, _)| !self.health[i].is_offline())
            .min_by_key(|&(i, &n)| (n, i))
            .map(|(i, _)| i)
    }

    /// Removes a log: closes it, renames its directory to `<topic>-<partition>.<uuid>-delete`
    /// (so a restart never resurrects it) and deletes the files. Deleting a log that does not
    /// exist is not an error.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let _structure = lock(&self.structure);
        self.delete_locked(tp)
    }

    fn delete_locked(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let Some(entry) = self.write_logs().remove(tp) else {
            return Ok(());
        };
        // Readers holding the log keep their open files; appends are refused from now on.
        entry.log.close_for_delete();
        let dir = entry.log.dir();
        let parent = &self.log_dirs[entry.dir_index];
        let doomed = parent.join(format!("{tp}.{}{DELETE_SUFFIX}", Uuid::new_v4().simple()));
        let health = &self.health[entry.dir_index];
        health.check()?;
        let removed = fs::rename(&dir, &doomed)
            .map_err(|e| StorageError::io(&dir, e))
            .and_then(|()| sync_dir(parent))
            .and_then(|()| fs::remove_dir_all(&doomed).map_err(|e| StorageError::io(&doomed, e)));
        health.guard(removed)?;
        self.forget_cleaner_checkpoint(entry.dir_index, tp);
        tracing::info!(%tp, "deleted log");
        Ok(())
    }

    /// Kafka's `updateCheckpoints(partitionToRemove)` when a log goes away.
    fn forget_cleaner_checkpoint(&self, dir_index: usize, tp: &TopicPartition) {
        let removed = lock(&self.cleaner_checkpoints)[dir_index].remove(tp);
        if removed.is_some()
            && let Err(e) = self.write_cleaner_checkpoint(dir_index)
        {
            tracing::warn!(%tp, error = %e, "cannot update the cleaner checkpoint");
        }
    }

    fn write_cleaner_checkpoint(&self, dir_index: usize) -> Result<(), StorageError> {
        let health = &self.health[dir_index];
        health.check()?;
        let offsets = lock(&self.cleaner_checkpoints)[dir_index].clone();
        let path = self.log_dirs[dir_index].join(CLEANER_OFFSET_CHECKPOINT);
        health.guard(write_offsets(&path, &offsets))
    }

    /// Every open log.
    pub fn logs(&self) -> Vec<Arc<Log>> {
        self.read_logs().values().map(|e| e.log.clone()).collect()
    }

    /// The topic id recorded in a log's `partition.metadata`, if any.
    pub fn topic_id(&self, tp: &TopicPartition) -> Option<Uuid> {
        self.read_logs().get(tp).and_then(|e| e.topic_id)
    }

    /// Writes `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint` in every log
    /// dir (write to a temp file, fsync, rename), as Kafka's checkpoint files are written.
    /// First fsyncs the segments rolled since the last time (Kafka flushes each rolled segment
    /// in the background), so recovery points advance even with the default `flush.*` settings.
    /// A log dir that is offline is skipped (its checkpoints stay as they were, so the next start
    /// recovers its logs from there).
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let _checkpointing = lock(&self.checkpointing);
        let entries: Vec<Entry> = self.read_logs().values().cloned().collect();
        let mut first_error = None;
        for entry in &entries {
            if self.health[entry.dir_index].is_offline() {
                continue;
            }
            if let Err(e) = entry.log.flush_rolled_segments() {
                tracing::error!(tp = %entry.log.topic_partition(), error = %e, "cannot flush rolled segments");
                first_error.get_or_insert(e);
            }
        }
        for (dir_index, dir) in self.log_dirs.iter().enumerate() {
            let health = &self.health[dir_index];
            if health.is_offline() {
                continue;
            }
            let mut recovery_points = HashMap::new();
            for entry in entries.iter().filter(|e| e.dir_index == dir_index) {
                let tp = entry.log.topic_partition().clone();
                recovery_points.insert(tp, entry.log.recovery_point());
            }
            let written = write_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT), &recovery_points)
                .and_then(|()| self.write_log_start_offsets(dir_index, &entries));
            if let Err(e) = health.guard(written) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes one dir's `log-start-offset-checkpoint` (entries only for logs whose start is past
    /// their first segment; the others are recovered from the segments).
    fn write_log_start_offsets(
        &self,
        dir_index: usize,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let mut log_start_offsets = HashMap::new();
        for entry in entries.iter().filter(|e| e.dir_index == dir_index) {
            let log_start_offset = entry.log.log_start_offset();
            if log_start_offset > entry.log.first_segment_base() {
                log_start_offsets.insert(entry.log.topic_partition().clone(), log_start_offset);
            }
        }
        let path = self.log_dirs[dir_index].join(LOG_START_OFFSET_CHECKPOINT);
        write_offsets(&path, &log_start_offsets)
    }

    /// Checkpoints the log start offsets of the dirs in `dirs` now (after retention or
    /// DeleteRecords moved them).
    fn checkpoint_log_start_offsets(&self, dirs: &HashSet<usize>) -> Result<(), StorageError> {
        let _checkpointing = lock(&self.checkpointing);
        let entries: Vec<Entry> = self.read_logs().values().cloned().collect();
        let mut first_error = None;
        for &dir_index in dirs {
            let health = &self.health[dir_index];
            if health.is_offline() {
                continue;
            }
            if let Err(e) = health.guard(self.write_log_start_offsets(dir_index, &entries)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn entries(&self) -> Vec<Entry> {
        self.read_logs().values().cloned().collect()
    }

    /// Retention for every log (Kafka's `cleanupLogs`, run every
    /// `log.retention.check.interval.ms`): see [`Log::enforce_retention`]. Log start offsets that
    /// moved are checkpointed at once. A log that fails is logged and skipped.
    pub fn enforce_retention(&self, now_ms: i64) -> Vec<DeletedSegments> {
        let mut deleted = Vec::new();
        let mut dirs = HashSet::new();
        for entry in self.entries() {
            if self.health[entry.dir_index].is_offline() {
                continue;
            }
            match entry.log.enforce_retention(now_ms) {
                Ok(Some(d)) => {
                    dirs.insert(entry.dir_index);
                    deleted.push(d);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(tp = %entry.log.topic_partition(), error = %e, "retention failed")
                }
            }
        }
        if !dirs.is_empty()
            && let Err(e) = self.checkpoint_log_start_offsets(&dirs)
        {
            tracing::error!(error = %e, "cannot checkpoint log start offsets");
        }
        deleted
    }

    /// Removes segment files whose `file.delete.delay.ms` has passed, in every log. Returns how
    /// many files were removed.
    pub fn delete_pending_files(&self, now_ms: i64) -> usize {
        let mut removed = 0;
        for entry in self.entries() {
            if self.health[entry.dir_index].is_offline() {
                continue;
            }
            match entry.log.delete_pending_files(now_ms) {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::error!(tp = %entry.log.topic_partition(), error = %e, "cannot remove deleted segment files")
                }
            }
        }
        removed
    }

    /// DeleteRecords on one partition: [`Log::delete_records_before`], then the dir's
    /// `log-start-offset-checkpoint` is written. Returns the new log start offset.
    pub fn delete_records(&self, tp: &TopicPartition, offset: i64) -> Result<i64, StorageError> {
        let entry = self
            .read_logs()
            .get(tp)
            .cloned()
            .ok_or_else(|| StorageError::InvalidArgument(format!("no log for {tp}")))?;
        let log_start = entry.log.delete_records_before(offset)?;
        self.checkpoint_log_start_offsets(&HashSet::from([entry.dir_index]))?;
        Ok(log_start)
    }

    /// Drops idle producer state in every log (`producer.id.expiration.ms`). Returns how many
    /// producers were dropped.
    pub fn remove_expired_producers(&self, now_ms: i64) -> usize {
        self.entries()
            .iter()
            .map(|e| e.log.remove_expired_producers(now_ms))
            .sum()
    }

    /// The log dirs taken offline by an I/O error.
    pub fn offline_log_dirs(&self) -> Vec<PathBuf> {
        self.health
            .iter()
            .filter(|h| h.is_offline())
            .map(|h| h.path().to_path_buf())
            .collect()
    }

    /// DescribeLogDirs: every log dir with its filesystem's size and free space (statvfs) and its
    /// partitions' sizes; an offline dir with its error and nothing else.
    pub fn describe_log_dirs(&self) -> Vec<LogDirDescription> {
        let entries = self.entries();
        self.log_dirs
            .iter()
            .enumerate()
            .map(|(dir_index, path)| {
                let health = &self.health[dir_index];
                if health.is_offline() {
                    return LogDirDescription {
                        path: path.clone(),
                        error: Some(health.cause().unwrap_or_else(|| health.offline_error())),
                        total_bytes: -1,
                        usable_bytes: -1,
                        partitions: Vec::new(),
                    };
                }
                let (total_bytes, usable_bytes) = match rustix::fs::statvfs(path) {
                    Ok(st) => (
                        st.f_blocks.saturating_mul(st.f_frsize) as i64,
                        st.f_bavail.saturating_mul(st.f_frsize) as i64,
                    ),
                    Err(e) => {
                        tracing::warn!(dir = %path.display(), error = %e, "statvfs failed");
                        (-1, -1)
                    }
                };
                let mut partitions: Vec<LogDirPartition> = entries
                    .iter()
                    .filter(|e| e.dir_index == dir_index)
                    .map(|e| LogDirPartition {
                        topic_partition: e.log.topic_partition().clone(),
                        size_bytes: e.log.size_in_bytes(),
                        offset_lag: 0,
                        is_future: false,
                    })
                    .collect();
                partitions.sort_by(|a, b| a.topic_partition.cmp(&b.topic_partition));
                LogDirDescription {
                    path: path.clone(),
                    error: None,
                    total_bytes,
                    usable_bytes,
                    partitions,
                }
            })
            .collect()
    }

    /// One cleaner pass on the calling thread: picks the compacted log with the largest dirty
    /// ratio over its `min.cleanable.dirty.ratio` (or past `max.compaction.lag.ms`), cleans it
    /// with an offset map of `dedupe_buffer_bytes`, and records its new first dirty offset in
    /// `cleaner-offset-checkpoint`. `None` when no log needed cleaning (or the log changed under
    /// the cleaner and it gave up this time). [`crate::LogCleaner`] runs this on its threads.
    pub fn clean_dirtiest(
        &self,
        now_ms: i64,
        dedupe_buffer_bytes: u64,
    ) -> Result<Option<CleanSummary>, StorageError> {
        let mut map = OffsetMap::new(dedupe_buffer_bytes);
        self.clean_dirtiest_with(now_ms, &mut map, &AtomicBool::new(false))
    }

    pub(crate) fn clean_dirtiest_with(
        &self,
        now_ms: i64,
        map: &mut OffsetMap,
        stop: &AtomicBool,
    ) -> Result<Option<CleanSummary>, StorageError> {
        let mut best: Option<(Entry, crate::log::CleaningView, cleaner::Cleanable)> = None;
        let mut resets = Vec::new();
        {
            let state = lock(&self.cleaner_state);
            let checkpoints = lock(&self.cleaner_checkpoints);
            for entry in self.entries() {
                let tp = entry.log.topic_partition();
                if self.health[entry.dir_index].is_offline()
                    || state.in_progress.contains(tp)
                    || state.uncleanable.contains(tp)
                {
                    continue;
                }
                let view = match entry.log.cleaning_view() {
                    Ok(Some(view)) if view.config.cleanup_policy.compact() => view,
                    _ => continue,
                };
                let checkpoint = checkpoints[entry.dir_index].get(tp).copied();
                let range = cleaner::cleanable(&view, checkpoint, now_ms);
                if range.reset_checkpoint {
                    resets.push((entry.dir_index, tp.clone(), range.first_dirty));
                }
                if !range.worth_cleaning(view.config.min_cleanable_dirty_ratio) {
                    continue;
                }
                if best
                    .as_ref()
                    .is_none_or(|(_, _, b)| range.ratio() > b.ratio())
                {
                    best = Some((entry, view, range));
                }
            }
        }
        for (dir_index, tp, first_dirty) in resets {
            tracing::warn!(%tp, first_dirty, "resetting an out-of-range cleaner checkpoint");
            lock(&self.cleaner_checkpoints)[dir_index].insert(tp, first_dirty);
            if let Err(e) = self.write_cleaner_checkpoint(dir_index) {
                tracing::warn!(error = %e, "cannot write the cleaner checkpoint");
            }
        }
        let Some((entry, view, range)) = best else {
            return Ok(None);
        };
        let tp = entry.log.topic_partition().clone();
        lock(&self.cleaner_state).in_progress.insert(tp.clone());
        let result = cleaner::run_one(&entry.log, &view, &range, now_ms, map, stop);
        let mut state = lock(&self.cleaner_state);
        state.in_progress.remove(&tp);
        match result {
            Ok(Ok(summary)) => {
                drop(state);
                lock(&self.cleaner_checkpoints)[entry.dir_index]
                    .insert(tp.clone(), summary.end_offset);
                self.write_cleaner_checkpoint(entry.dir_index)?;
                Ok(Some(summary))
            }
            Ok(Err(aborted)) => {
                tracing::debug!(%tp, ?aborted, "log cleaning aborted");
                Ok(None)
            }
            Err(e) => {
                if !e.is_io() && !matches!(e, StorageError::LogDirOffline(_)) {
                    tracing::error!(%tp, error = %e, "cannot clean log; skipping it until restart");
                    state.uncleanable.insert(tp);
                }
                Err(e)
            }
        }
    }

    /// The checkpointed first dirty offset of a compacted log.
    pub fn cleaner_checkpoint(&self, tp: &TopicPartition) -> Option<i64> {
        let dir_index = self.read_logs().get(tp)?.dir_index;
        lock(&self.cleaner_checkpoints)[dir_index].get(tp).copied()
    }

    /// Flushes and closes every log, writes the checkpoints and then the clean-shutdown marker.
    /// A log dir where something failed gets no marker, so its logs are recovered next time.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let entries: Vec<Entry> = self.read_logs().values().cloned().collect();
        let mut first_error = None;
        let mut failed_dirs = HashSet::new();
        for entry in &entries {
            if self.health[entry.dir_index].is_offline() {
                // Nothing more goes to a failed disk; its logs are recovered at the next start.
                entry.log.close_for_delete();
                failed_dirs.insert(entry.dir_index);
                continue;
            }
            if let Err(e) = entry.log.close() {
                tracing::error!(tp = %entry.log.topic_partition(), error = %e, "cannot close log");
                failed_dirs.insert(entry.dir_index);
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = self.checkpoint() {
            first_error.get_or_insert(e);
            failed_dirs.extend(0..self.log_dirs.len());
        }
        for (dir_index, dir) in self.log_dirs.iter().enumerate() {
            if failed_dirs.contains(&dir_index) || self.health[dir_index].is_offline() {
                continue;
            }
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            let written = File::create(&marker)
                .and_then(|f| f.sync_all())
                .map_err(|e| StorageError::io(&marker, e))
                .and_then(|()| sync_dir(dir));
            if let Err(e) = written {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Kafka resets a checkpoint it cannot read instead of refusing to start: recovery then starts
/// from offset 0, which is slow but safe.
fn read_checkpoint(path: &Path) -> HashMap<TopicPartition, i64> {
    read_offsets(path).unwrap_or_else(|e| {
        tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable checkpoint");
        HashMap::new()
    })
}

/// The partition directories of one log dir; removes leftovers of deletions on the way.
fn scan_log_dir(dir: &Path) -> Result<Vec<(TopicPartition, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let path = entry.path();
        if !entry
            .file_type()
            .map_err(|e| StorageError::io(&path, e))?
            .is_dir()
        {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(DELETE_SUFFIX) {
            tracing::info!(dir = %path.display(), "removing the leftover of a deleted log");
            fs::remove_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
            continue;
        }
        if name == METADATA_LOG_DIR || SKIPPED_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            continue;
        }
        match parse_dir_name(&name) {
            Some(tp) => found.push((tp, path)),
            None => {
                tracing::debug!(dir = %path.display(), "skipping a directory that is not a log")
            }
        }
    }
    Ok(found)
}

fn open_one(found: &Found, health: &Arc<DirHealth>) -> Result<(Log, Option<Uuid>), StorageError> {
    let topic_id = partition_metadata::read(&found.path).unwrap_or_else(|e| {
        tracing::warn!(dir = %found.path.display(), error = %e, "ignoring unreadable partition.metadata");
        None
    });
    let log = Log::open_in(
        &found.path,
        found.tp.clone(),
        found.config.clone(),
        found.recovery_point,
        found.log_start_offset,
        found.clean,
        health.clone(),
    )?;
    Ok((log, topic_id))
}

type Opened<'a> = (&'a Found, Result<(Log, Option<Uuid>), StorageError>);

/// Opens the logs on a few threads: recovery after a crash reads whole segments.
fn open_all<'a>(found: &'a [Found], health: &[Arc<DirHealth>]) -> Vec<Opened<'a>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(found.len());
    if threads <= 1 {
        return found
            .iter()
            .map(|f| (f, open_one(f, &health[f.dir_index])))
            .collect();
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut opened = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = found.get(i) else { break };
                        opened.push((f, open_one(f, &health[f.dir_index])));
                    }
                    opened
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
