//! Which `__consumer_offsets` partition (and so which coordinator) owns a group: Kafka's
//! `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`. Clients do not compute this
//! (they ask FindCoordinator), but every broker must agree with Kafka on it, or groups migrated
//! from a Kafka cluster's `__consumer_offsets` would be looked up in the wrong partition.

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, in wrapping
/// 32-bit arithmetic. UTF-16, not UTF-8: a non-ASCII group id hashes differently otherwise.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The partition of `__consumer_offsets` that holds `group_id`. `Utils.abs` maps `i32::MIN`
/// (which has no positive counterpart) to 0 rather than overflowing.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    if num_partitions <= 0 {
        return 0;
    }
    abs % num_partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_vectors() {
        // Values of `String.hashCode()` in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // The classic string whose hash is Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // U+1F600 is the surrogate pair D83D DE00: 0xD83D * 31 + 0xDE00.
        assert_eq!(java_string_hash("😀"), 1_772_899);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
    }

    #[test]
    fn partition_vectors() {
        assert_eq!(partition_for("hello", 50), 22);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("😀", 50), 49);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("consumer-group-1", 50), 20);
        assert_eq!(partition_for("ü-group", 50), 12);
        assert_eq!(partition_for("anything", 1), 0);
    }
}
