//! Kafka's topic-name rules (`org.apache.kafka.common.internals.Topic`): what a legal name is,
//! which names collide in metric names, and the names of the internal topics.

/// Longest legal topic name.
pub const MAX_NAME_LENGTH: usize = 249;

/// The group coordinator's topic.
pub const GROUP_METADATA_TOPIC_NAME: &str = "__consumer_offsets";
/// The transaction coordinator's topic.
pub const TRANSACTION_STATE_TOPIC_NAME: &str = "__transaction_state";
/// The share coordinator's topic (KIP-932).
pub const SHARE_GROUP_STATE_TOPIC_NAME: &str = "__share_group_state";
/// The metadata log's name. Not an internal topic in Kafka's sense (clients never see it), but
/// no client may create a topic of that name.
pub const CLUSTER_METADATA_TOPIC_NAME: &str = "__cluster_metadata";

/// Checks a topic name: not empty, not `.` or `..`, at most 249 characters of
/// `[a-zA-Z0-9._-]`. The error message is Kafka's.
pub fn validate(name: &str) -> Result<(), String> {
    match invalid_reason(name) {
        None => Ok(()),
        Some(reason) => Err(format!("Topic name is invalid: {reason}")),
    }
}

/// Whether `name` is a legal topic name.
pub fn is_valid(name: &str) -> bool {
    invalid_reason(name).is_none()
}

fn invalid_reason(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the empty string is not allowed".to_string());
    }
    if name == "." {
        return Some("'.' is not allowed".to_string());
    }
    if name == ".." {
        return Some("'..' is not allowed".to_string());
    }
    // Kafka measures Java `String.length()`, i.e. UTF-16 units; counting the same way keeps the
    // choice between the length and the character message identical for non-ASCII names.
    if name.encode_utf16().count() > MAX_NAME_LENGTH {
        return Some(format!(
            "the length of '{name}' is longer than the max allowed length {MAX_NAME_LENGTH}"
        ));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
    {
        return Some(format!(
            "'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    None
}

/// Whether the name contains `.` or `_`, which collide in metric names.
pub fn has_collision_chars(name: &str) -> bool {
    name.contains(['.', '_'])
}

/// The form under which colliding names are equal (`.` replaced by `_`). Only for comparison;
/// never a name to use.
pub fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// Two names that differ only by `.` vs `_` collide.
pub fn collide(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let unify = |c: u8| if c == b'.' { b'_' } else { c };
            unify(x) == unify(y)
        })
}

/// Internal topics (`__consumer_offsets`, `__transaction_state`, `__share_group_state`).
pub fn is_internal(name: &str) -> bool {
    matches!(
        name,
        GROUP_METADATA_TOPIC_NAME | TRANSACTION_STATE_TOPIC_NAME | SHARE_GROUP_STATE_TOPIC_NAME
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legal_names() {
        for name in [
            "a",
            "topic",
            "A-b_c.d",
            "0",
            "...",
            "a..b",
            "_",
            "-",
            "__consumer_offsets",
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
            assert!(is_valid(name));
        }
        assert_eq!(validate(&"x".repeat(249)), Ok(()));
    }

    #[test]
    fn illegal_names_have_kafkas_messages() {
        assert_eq!(
            validate(""),
            Err("Topic name is invalid: the empty string is not allowed".to_string())
        );
        assert_eq!(
            validate("."),
            Err("Topic name is invalid: '.' is not allowed".to_string())
        );
        assert_eq!(
            validate(".."),
            Err("Topic name is invalid: '..' is not allowed".to_string())
        );
        let long = "x".repeat(250);
        assert_eq!(
            validate(&long),
            Err(format!(
                "Topic name is invalid: the length of '{long}' is longer than the max allowed length 249"
            ))
        );
        for bad in ["a b", "a/b", "a:b", "ä", "a\0", "topic!", "a\nb"] {
            assert_eq!(
                validate(bad),
                Err(format!(
                    "Topic name is invalid: '{bad}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
                )),
                "{bad:?}"
            );
            assert!(!is_valid(bad));
        }
    }

    #[test]
    fn length_is_counted_in_utf16_units_like_java() {
        // 125 two-unit characters: 250 UTF-16 units, so Kafka reports the length first.
        let name = "😀".repeat(125);
        assert!(
            validate(&name)
                .unwrap_err()
                .contains("longer than the max allowed length")
        );
        let name = "é".repeat(200);
        assert!(
            validate(&name)
                .unwrap_err()
                .contains("contains one or more characters")
        );
    }

    #[test]
    fn collisions() {
        assert!(has_collision_chars("a.b"));
        assert!(has_collision_chars("a_b"));
        assert!(!has_collision_chars("a-b"));
        assert!(collide("a.b", "a_b"));
        assert!(collide("a_b", "a.b"));
        assert!(collide("a.b", "a.b"));
        assert!(collide("x._y", "x_.y"));
        assert!(!collide("a.b", "a-b"));
        assert!(!collide("a.b", "a.bc"));
        assert!(!collide("ab", "a_b"));
        assert_eq!(unify_collision_chars("a.b_c"), "a_b_c");
    }

    #[test]
    fn internal_topics() {
        assert!(is_internal("__consumer_offsets"));
        assert!(is_internal("__transaction_state"));
        assert!(is_internal("__share_group_state"));
        assert!(!is_internal("__cluster_metadata"));
        assert!(!is_internal("consumer_offsets"));
    }
}
