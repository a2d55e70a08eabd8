//! Storage errors. `Clone` because one failed flush can be reported to many waiting requests.

use std::sync::Arc;

use strom_protocol::ErrorCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("batch of {size} bytes does not fit in a segment of {segment_bytes} bytes")]
    RecordListTooLarge { size: usize, segment_bytes: u64 },
    #[error("corrupt data in {path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("log directory {0} is offline after an I/O error")]
    LogDirOffline(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// The log was closed (its partition deleted or the broker shutting down) while a request
    /// still held it. Clients retry after refreshing metadata, as with a moved leader.
    #[error("log {0} is closed")]
    Closed(String),
}

impl StorageError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source: Arc::new(source),
        }
    }

    /// The Kafka error code a client sees for this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::Io { .. } | Self::LogDirOffline(_) | Self::Corrupt { .. } => {
                ErrorCode::KafkaStorageError
            }
            Self::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            Self::RecordListTooLarge { .. } => ErrorCode::RecordListTooLarge,
            Self::InvalidArgument(_) => ErrorCode::InvalidRequest,
            Self::Closed(_) => ErrorCode::NotLeaderOrFollower,
        }
    }
}
