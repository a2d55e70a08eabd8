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
    /// Kafka's `InvalidProducerEpochException`: the batch's producer epoch is older than the one
    /// the partition has seen (a zombie producer).
    #[error(
        "epoch {epoch} of producer {producer_id} is older than the last seen epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    /// Kafka's `OutOfOrderSequenceException`: a gap in the producer's sequence numbers, or a new
    /// epoch that does not start at sequence 0.
    #[error(
        "out of order sequence number for producer {producer_id} (epoch {epoch}): {first_sequence} \
         (incoming), {last_sequence} (current end)"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        last_sequence: i32,
    },
    /// Kafka's `InvalidTxnStateException`: a non-transactional batch while the producer has a
    /// transaction open on this partition.
    #[error("{0}")]
    InvalidTxnState(String),
    /// Kafka's `TransactionCoordinatorFencedException`: a transaction marker from an older
    /// coordinator epoch than one already seen.
    #[error("{0}")]
    CoordinatorFenced(String),
    /// A produced batch whose records cannot be decoded (Kafka's `CorruptRecordException`).
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
}

impl StorageError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source: Arc::new(source),
        }
    }

    /// Whether this error means the disk failed (and takes the log dir offline).
    pub(crate) fn is_io(&self) -> bool {
        matches!(self, Self::Io { .. })
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
            Self::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            Self::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
            Self::InvalidTxnState(_) => ErrorCode::InvalidTxnState,
            Self::CoordinatorFenced(_) => ErrorCode::TransactionCoordinatorFenced,
            Self::CorruptRecord(_) => ErrorCode::CorruptMessage,
        }
    }
}
