//! The strom broker: a Kafka-protocol server over strom's storage and metadata.
//!
//! [`Broker::start`] opens everything (formatting the data directory on first start), binds the
//! listeners and registers the node; [`Broker::run`] serves until its shutdown future completes
//! and then shuts down cleanly (in-flight requests finish, logs are flushed, checkpoints and the
//! clean-shutdown marker are written). Each API has its own module under `handlers`; the
//! [`ServerConfig`] holds the Kafka-named static configuration.

mod alloc_guard;
pub mod config;
mod connection;
mod coordinator_log;
mod groups;
mod handlers;
mod producer_ids;
mod replica_manager;
mod server;
mod txn;

pub use config::{ConfigError, Listener, ServerConfig};
pub use server::{Broker, BrokerError};

/// Milliseconds since the Unix epoch, the unit of every Kafka timestamp.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
