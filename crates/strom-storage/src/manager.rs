//! The set of logs in `log.dirs`, their checkpoints and the clean-shutdown marker.

use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use crate::{Log, LogConfig, StorageError, TopicPartition};

#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    /// `log.dirs`.
    pub log_dirs: Vec<PathBuf>,
}

/// Owns every partition log on this node.
#[derive(Debug)]
pub struct LogManager {
    // Filled in by the implementation.
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
        let _ = (config, config_for);
        unimplemented!()
    }

    /// Whether the previous run ended with a clean shutdown (the marker was present).
    pub fn had_clean_shutdown(&self) -> bool {
        unimplemented!()
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        let _ = tp;
        unimplemented!()
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
        let _ = (tp, topic_id, config);
        unimplemented!()
    }

    /// Removes a log: closes it, renames its directory to `<topic>-<partition>.<uuid>-delete`
    /// (so a restart never resurrects it) and deletes the files.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let _ = tp;
        unimplemented!()
    }

    /// Every open log.
    pub fn logs(&self) -> Vec<Arc<Log>> {
        unimplemented!()
    }

    /// The topic id recorded in a log's `partition.metadata`, if any.
    pub fn topic_id(&self, tp: &TopicPartition) -> Option<Uuid> {
        let _ = tp;
        unimplemented!()
    }

    /// Writes `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint` in every log
    /// dir (write to a temp file, fsync, rename), as Kafka's checkpoint files are written.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        unimplemented!()
    }

    /// Flushes and closes every log, writes the checkpoints and then the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        unimplemented!()
    }
}
