//! Kafka's `LogDirFailureChannel`: the first I/O error on a log dir takes the whole dir offline.
//!
//! Every log holds the [`DirHealth`] of the dir it lives in. A failed write, fsync, rename or read
//! marks it offline (one `error` line, however many logs notice); from then on every append and
//! read on a log of that dir fails fast with `LogDirOffline` (KAFKA_STORAGE_ERROR), so a client
//! never gets a half-written answer, while logs in other dirs keep working. Nothing brings a dir
//! back but a restart, as in Kafka: the disk may have lost writes we can no longer reason about.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::StorageError;

#[derive(Debug)]
pub(crate) struct DirHealth {
    path: PathBuf,
    offline: AtomicBool,
    /// The error that took the dir offline, for DescribeLogDirs and logs.
    cause: Mutex<Option<StorageError>>,
    /// Test hook: fail the next writes as a full disk would.
    #[cfg(test)]
    pub(crate) inject_write_failure: AtomicBool,
}

impl DirHealth {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            offline: AtomicBool::new(false),
            cause: Mutex::new(None),
            #[cfg(test)]
            inject_write_failure: AtomicBool::new(false),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// `Err(LogDirOffline)` once the dir has failed.
    pub(crate) fn check(&self) -> Result<(), StorageError> {
        if self.is_offline() {
            Err(self.offline_error())
        } else {
            Ok(())
        }
    }

    pub(crate) fn offline_error(&self) -> StorageError {
        StorageError::LogDirOffline(self.path.display().to_string())
    }

    pub(crate) fn cause(&self) -> Option<StorageError> {
        self.cause.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the dir offline if `error` is a disk error; returns the error unchanged. Only the
    /// first failure is logged.
    pub(crate) fn on_error(&self, error: StorageError) -> StorageError {
        if error.is_io() && !self.offline.swap(true, Ordering::AcqRel) {
            tracing::error!(
                dir = %self.path.display(),
                error = %error,
                "log directory is offline after an I/O error; its partitions are unavailable until restart"
            );
            *self.cause.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        }
        error
    }

    /// Runs `result` through [`DirHealth::on_error`].
    pub(crate) fn guard<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        result.map_err(|e| self.on_error(e))
    }

    /// Test hook for the write path: an injected ENOSPC.
    #[cfg(test)]
    pub(crate) fn injected_write_error(&self) -> Option<std::io::Error> {
        self.inject_write_failure
            .load(Ordering::Acquire)
            .then(|| std::io::Error::from_raw_os_error(28))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_io_error_takes_the_dir_offline_other_errors_do_not() {
        let health = DirHealth::new("/data/a");
        health.check().unwrap();
        let e = health.on_error(StorageError::InvalidArgument("bad".into()));
        assert!(matches!(e, StorageError::InvalidArgument(_)));
        health.check().unwrap();
        let io = StorageError::io("/data/a/x.log", std::io::Error::from_raw_os_error(5));
        assert!(health.on_error(io).is_io());
        assert!(matches!(
            health.check(),
            Err(StorageError::LogDirOffline(_))
        ));
        assert!(health.cause().is_some_and(|c| c.is_io()));
    }
}
