//! Errors of this crate. Request-level outcomes are Kafka error codes inside the responses
//! (`strom_protocol::ErrorCode`), never Rust errors: the only thing that can fail as a Rust error
//! is reading a record of `__consumer_offsets` back.

/// Why a `__consumer_offsets` record could not be decoded. Small and allocation-free: it is
/// produced on the load path of a whole partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("record is truncated")]
    Truncated,
    #[error("record has {0} bytes after its last field")]
    TrailingBytes(usize),
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("unknown value version {version} for record type {key_version}")]
    UnknownValueVersion { key_version: i16, version: i16 },
}
