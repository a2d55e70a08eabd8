//! Kafka wire protocol for strom: what the `kafka-protocol` crate does not give us.
//!
//! Message schemas (every request and response struct) come from the generated `kafka-protocol`
//! crate and are re-exported as [`messages`]. This crate adds the pieces around them:
//!
//! - [`frame`]: the 4-byte length-prefixed framing with a size limit checked before allocation;
//! - [`envelope`]: request header + body decoding with the version rules Kafka applies, and
//!   response encoding (header version chosen per API and version);
//! - [`batch`]: a zero-copy view over v2 record batches — header parsing, CRC-32C, produce-time
//!   validation and in-place patching of offsets and timestamps — so the broker never decodes
//!   records it only moves;
//! - [`ErrorCode`]: Kafka's error codes, one enum for the whole project.

pub mod batch;
pub mod compression;
pub mod envelope;
pub mod error;
pub mod frame;

pub use error::{ApiError, ErrorCode};
pub use kafka_protocol;
pub use kafka_protocol::messages;
pub use kafka_protocol::protocol::{StrBytes, VersionRange};
