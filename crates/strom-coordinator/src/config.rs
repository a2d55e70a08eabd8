//! Group coordinator settings, under Kafka's property names and with Kafka's defaults.

/// The assignors a KIP-848 group can name in `server_assignor`.
pub const UNIFORM_ASSIGNOR: &str = "uniform";
pub const RANGE_ASSIGNOR: &str = "range";

/// Settings of the group coordinator. `Default` gives Kafka 4.x's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// Kafka's fixed 5 minutes (`classicGroupNewMemberJoinTimeoutMs`): how long a new classic
    /// member's parked JoinGroup may wait before the member is dropped (it cannot heartbeat yet).
    pub new_member_join_timeout_ms: i32,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `group.consumer.heartbeat.interval.ms`
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.min.session.timeout.ms`
    pub consumer_min_session_timeout_ms: i32,
    /// `group.consumer.max.session.timeout.ms`
    pub consumer_max_session_timeout_ms: i32,
    /// `group.consumer.assignors`: the first is the default.
    pub consumer_assignors: Vec<String>,
    /// `group.consumer.max.size`
    pub consumer_max_size: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 5 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 10_080 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_session_timeout_ms: 45_000,
            consumer_min_session_timeout_ms: 45_000,
            consumer_max_session_timeout_ms: 60_000,
            consumer_assignors: vec![UNIFORM_ASSIGNOR.to_string(), RANGE_ASSIGNOR.to_string()],
            consumer_max_size: i32::MAX,
        }
    }
}

/// A setting that cannot work, with Kafka's property name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {property}: {reason}")]
pub struct ConfigError {
    pub property: &'static str,
    pub reason: String,
}

impl GroupConfig {
    /// Checks the relations Kafka checks at start-up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |property, reason: &str| {
            Err(ConfigError {
                property,
                reason: reason.to_string(),
            })
        };
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            return err(
                "group.min.session.timeout.ms",
                "must not exceed group.max.session.timeout.ms",
            );
        }
        if self.max_size < 1 {
            return err("group.max.size", "must be at least 1");
        }
        if self.initial_rebalance_delay_ms < 0 {
            return err("group.initial.rebalance.delay.ms", "must not be negative");
        }
        if self.offsets_retention_ms < 1 {
            return err("offsets.retention.minutes", "must be at least 1");
        }
        if self.offsets_retention_check_interval_ms < 1 {
            return err("offsets.retention.check.interval.ms", "must be at least 1");
        }
        if self.consumer_min_session_timeout_ms > self.consumer_max_session_timeout_ms {
            return err(
                "group.consumer.min.session.timeout.ms",
                "must not exceed group.consumer.max.session.timeout.ms",
            );
        }
        if self.consumer_session_timeout_ms < self.consumer_min_session_timeout_ms
            || self.consumer_session_timeout_ms > self.consumer_max_session_timeout_ms
        {
            return err(
                "group.consumer.session.timeout.ms",
                "must be within group.consumer.min/max.session.timeout.ms",
            );
        }
        if self.consumer_heartbeat_interval_ms < 1
            || self.consumer_heartbeat_interval_ms >= self.consumer_session_timeout_ms
        {
            return err(
                "group.consumer.heartbeat.interval.ms",
                "must be positive and less than group.consumer.session.timeout.ms",
            );
        }
        if self.consumer_assignors.is_empty() {
            return err(
                "group.consumer.assignors",
                "must name at least one assignor",
            );
        }
        for a in &self.consumer_assignors {
            if a != UNIFORM_ASSIGNOR && a != RANGE_ASSIGNOR {
                return err(
                    "group.consumer.assignors",
                    &format!("unknown assignor {a} (strom has uniform and range)"),
                );
            }
        }
        if self.consumer_max_size < 1 {
            return err("group.consumer.max.size", "must be at least 1");
        }
        Ok(())
    }
}
