//! Kafka's topic-name rules (`org.apache.kafka.common.internals.Topic`).

/// Longest legal topic name.
pub const MAX_NAME_LENGTH: usize = 249;

/// Checks a topic name: not empty, not `.` or `..`, at most 249 characters of
/// `[a-zA-Z0-9._-]`. The error message is Kafka's.
pub fn validate(name: &str) -> Result<(), String> {
    let _ = name;
    unimplemented!()
}

/// Whether the name contains `.` or `_`, which collide in metric names.
pub fn has_collision_chars(name: &str) -> bool {
    let _ = name;
    unimplemented!()
}

/// Two names that differ only by `.` vs `_` collide.
pub fn collide(a: &str, b: &str) -> bool {
    let _ = (a, b);
    unimplemented!()
}

/// Internal topics (`__consumer_offsets`, `__transaction_state`).
pub fn is_internal(name: &str) -> bool {
    let _ = name;
    unimplemented!()
}
