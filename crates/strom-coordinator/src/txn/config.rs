//! Transaction coordinator settings, under Kafka's property names and with Kafka's defaults.

use crate::config::ConfigError;

/// Settings of the transaction coordinator. `Default` gives Kafka 4.x's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: how long an idle id (Empty or Complete*) is kept.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// past their timeout are looked for.
    pub abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often expired ids are
    /// looked for.
    pub remove_expired_transaction_cleanup_interval_ms: i64,
    /// `transaction.state.log.num.partitions`: the partitions of `__transaction_state`.
    pub transaction_state_log_num_partitions: i32,
    /// `offsets.topic.num.partitions`: AddOffsetsToTxn adds the `__consumer_offsets`
    /// partition of the group, which depends on it.
    pub offsets_topic_num_partitions: i32,
    /// strom's own: how long after a retriable marker failure the markers are asked for
    /// again (Kafka retries from its marker sender thread with no setting).
    pub marker_retry_backoff_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            remove_expired_transaction_cleanup_interval_ms: 3_600_000,
            transaction_state_log_num_partitions: 50,
            offsets_topic_num_partitions: 50,
            marker_retry_backoff_ms: 100,
        }
    }
}

impl TxnConfig {
    /// Checks the bounds Kafka's config definitions check at start-up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |property, reason: &str| {
            Err(ConfigError {
                property,
                reason: reason.to_string(),
            })
        };
        if self.max_timeout_ms < 1 {
            return err("transaction.max.timeout.ms", "must be at least 1");
        }
        if self.transactional_id_expiration_ms < 1 {
            return err("transactional.id.expiration.ms", "must be at least 1");
        }
        if self.abort_timed_out_transaction_cleanup_interval_ms < 1 {
            return err(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                "must be at least 1",
            );
        }
        if self.remove_expired_transaction_cleanup_interval_ms < 1 {
            return err(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                "must be at least 1",
            );
        }
        if self.transaction_state_log_num_partitions < 1 {
            return err("transaction.state.log.num.partitions", "must be at least 1");
        }
        if self.offsets_topic_num_partitions < 1 {
            return err("offsets.topic.num.partitions", "must be at least 1");
        }
        if self.marker_retry_backoff_ms < 0 {
            return err("marker retry backoff", "must not be negative");
        }
        Ok(())
    }
}
