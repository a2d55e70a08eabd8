//! The set of logs in `log.dirs`, their checkpoints and the clean-shutdown marker.
//!
//! ```text
//! <log.dir>/
//!   .kafka_cleanshutdown                 present only between a clean shutdown and the next start
//!   recovery-point-offset-checkpoint     where each log's recovery scan starts
//!   log-start-offset-checkpoint          log start offsets past the first segment's base
//!   <topic>-<partition>/                 one Log, with its partition.metadata (topic id)
//!   <topic>-<partition>.<uuid>-delete/   a deleted log on its way out (removed at start)
//! ```

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use crate::checkpoint::{
    LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, read_offsets, sync_dir, write_offsets,
};
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

/// Owns every partition log on this node.
#[derive(Debug)]
pub struct LogManager {
    log_dirs: Vec<PathBuf>,
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
    pub fn open(
        config: LogManagerConfig,
        config_for: &dyn Fn(&TopicPartition) -> LogConfig,
    ) -> Result<LogManager, StorageError> {
        if config.log_dirs.is_empty() {
            return Err(StorageError::InvalidArgument("log.dirs is empty".into()));
        }
        let mut found = Vec::new();
        let mut all_clean = true;
        for (dir_index, dir) in config.log_dirs.iter().enumerate() {
            fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
            let clean = dir.join(CLEAN_SHUTDOWN_FILE).exists();
            all_clean &= clean;
            let recovery_points = read_checkpoint(&dir.join(RECOVERY_POINT_CHECKPOINT));
            let log_start_offsets = read_checkpoint(&dir.join(LOG_START_OFFSET_CHECKPOINT));
            for (tp, path) in scan_log_dir(dir)? {
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
        for (found, opened) in open_all(&found) {
            let (log, topic_id) = opened?;
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
        // From here on a crash must be noticed at the next start.
        for dir in &config.log_dirs {
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
        let dir_index = self.least_loaded_dir();
        let parent = &self.log_dirs[dir_index];
        let path = parent.join(tp.to_string());
        if path.exists() {
            // Not a log we opened (it appeared after start): never mix it with the new topic.
            fs::remove_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
        }
        fs::create_dir_all(&path).map_err(|e| StorageError::io(&path, e))?;
        partition_metadata::write(&path, topic_id)?;
        sync_dir(parent)?;
        let log = Arc::new(Log::open(&path, tp.clone(), config, 0, 0, true)?);
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

    fn least_loaded_dir(&self) -> usize {
        let mut counts = vec![0usize; self.log_dirs.len()];
        for entry in self.read_logs().values() {
            counts[entry.dir_index] += 1;
        }
        counts
            .iter()
            .enumerate()
            .min_by_key(|&(i, &n)| (n, i))
            .map_or(0, |(i, _)| i)
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
        fs::rename(&dir, &doomed).map_err(|e| StorageError::io(&dir, e))?;
        sync_dir(parent)?;
        fs::remove_dir_all(&doomed).map_err(|e| StorageError::io(&doomed, e))?;
        tracing::info!(%tp, "deleted log");
        Ok(())
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
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let _checkpointing = lock(&self.checkpointing);
        let entries: Vec<Entry> = self.read_logs().values().cloned().collect();
        let mut first_error = None;
        for entry in &entries {
            if let Err(e) = entry.log.flush_rolled_segments() {
                tracing::error!(tp = %entry.log.topic_partition(), error = %e, "cannot flush rolled segments");
                first_error.get_or_insert(e);
            }
        }
        for (dir_index, dir) in self.log_dirs.iter().enumerate() {
            let mut recovery_points = HashMap::new();
            let mut log_start_offsets = HashMap::new();
            for entry in entries.iter().filter(|e| e.dir_index == dir_index) {
                let tp = entry.log.topic_partition().clone();
                recovery_points.insert(tp.clone(), entry.log.recovery_point());
                let log_start_offset = entry.log.log_start_offset();
                if log_start_offset > entry.log.first_segment_base() {
                    log_start_offsets.insert(tp, log_start_offset);
                }
            }
            write_offsets(&dir.join(RECOVERY_POINT_CHECKPOINT), &recovery_points)?;
            write_offsets(&dir.join(LOG_START_OFFSET_CHECKPOINT), &log_start_offsets)?;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Flushes and closes every log, writes the checkpoints and then the clean-shutdown marker.
    /// A log dir where something failed gets no marker, so its logs are recovered next time.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let entries: Vec<Entry> = self.read_logs().values().cloned().collect();
        let mut first_error = None;
        let mut failed_dirs = HashSet::new();
        for entry in &entries {
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
            if failed_dirs.contains(&dir_index) {
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

fn open_one(found: &Found) -> Result<(Log, Option<Uuid>), StorageError> {
    let topic_id = partition_metadata::read(&found.path).unwrap_or_else(|e| {
        tracing::warn!(dir = %found.path.display(), error = %e, "ignoring unreadable partition.metadata");
        None
    });
    let log = Log::open(
        &found.path,
        found.tp.clone(),
        found.config.clone(),
        found.recovery_point,
        found.log_start_offset,
        found.clean,
    )?;
    Ok((log, topic_id))
}

type Opened<'a> = (&'a Found, Result<(Log, Option<Uuid>), StorageError>);

/// Opens the logs on a few threads: recovery after a crash reads whole segments.
fn open_all(found: &[Found]) -> Vec<Opened<'_>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(found.len());
    if threads <= 1 {
        return found.iter().map(|f| (f, open_one(f))).collect();
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
                        opened.push((f, open_one(f)));
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
