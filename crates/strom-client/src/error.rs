//! The client's one error type. Every public call returns [`ClientError`]; its
//! [`is_retriable`](ClientError::is_retriable) says whether trying again (after a metadata
//! refresh and a backoff) can succeed, which is how the producer, the consumer and the admin
//! client decide between retrying and giving up.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::ErrorCode;
use strom_protocol::messages::ApiKey;

/// Result alias used throughout the crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything that can go wrong in the client.
///
/// `Clone` because one failure often has many recipients: every record of a failed batch, every
/// request in flight on a broken connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with a Kafka error code.
    #[error("{}", KafkaDisplay(*.code, .message.as_deref()))]
    Kafka {
        code: ErrorCode,
        message: Option<String>,
    },
    /// A TCP connection could not be established. (The I/O error is in `cause`, not
    /// `source`: the message already contains it, and error-chain printers such as anyhow's
    /// `{:#}` would print it twice.)
    #[error("cannot connect to {addr}: {}", IoDisplay(cause))]
    Connect { addr: String, cause: Arc<io::Error> },
    /// An established connection failed while reading or writing.
    #[error("connection to {addr} failed: {}", IoDisplay(cause))]
    Io { addr: String, cause: Arc<io::Error> },
    /// The peer closed the connection while requests were waiting for their responses.
    #[error("connection to {addr} was closed")]
    Disconnected { addr: String },
    /// No answer within the allotted time (`request.timeout.ms`, `max.block.ms`, ...).
    #[error("timed out after {} ms: {what}", elapsed.as_millis())]
    Timeout { what: String, elapsed: Duration },
    /// The broker sent something we cannot make sense of.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker does not serve a version of an API that this client can speak.
    #[error(
        "broker at {addr} does not support {api:?} in any version this client speaks ({reason})"
    )]
    UnsupportedVersion {
        addr: String,
        api: ApiKey,
        reason: String,
    },
    /// A configuration property has an invalid value, or a required one is missing.
    #[error("invalid configuration `{key}`: {reason}")]
    Config { key: String, reason: String },
    /// The caller passed something that can never succeed (unknown partition, bad offset...).
    #[error("{0}")]
    InvalidArgument(String),
    /// A record is larger than `max.request.size` (or the broker's limit).
    #[error("the record is {size} bytes when serialized, which is larger than {limit} ({setting})")]
    RecordTooLarge {
        size: usize,
        limit: usize,
        setting: &'static str,
    },
    /// `buffer.memory` had no room for a record within `max.block.ms` (Java's
    /// `BufferExhaustedException`, a `TimeoutException`, hence retriable).
    #[error(
        "Failed to allocate {requested} bytes within the configured max blocking time {} ms. \
         Total memory: {total} bytes.",
        waited.as_millis()
    )]
    BufferExhausted {
        requested: usize,
        total: u64,
        waited: Duration,
    },
    /// The idempotent producer hit an error it cannot recover from (its producer id could
    /// not be obtained); every later send fails with it.
    #[error("the producer failed: {0}")]
    Fatal(Box<ClientError>),
    /// A transactional call made in a state that does not allow it: `send` outside a
    /// transaction, `begin_transaction` twice, a commit before `init_transactions` (Java's
    /// `IllegalStateException`).
    #[error("{0}")]
    IllegalState(String),
    /// The current transaction hit an error (a batch failed for good, offsets could not be
    /// committed): it cannot be committed, only aborted with `abort_transaction`, after which
    /// a new one may begin (Java's abortable errors).
    #[error("the transaction must be aborted: {0}")]
    Abortable(Box<ClientError>),
    /// A record of a transaction that was aborted before the record was sent (Java's
    /// `TransactionAbortedException`).
    #[error("Failing batch since transaction was aborted")]
    TransactionAborted,
    /// A key or value could not be serialized or deserialized by a
    /// [`Serializer`](crate::Serializer) or [`Deserializer`](crate::Deserializer) (Java's
    /// `SerializationException`). Not retriable: the same data fails the same way again.
    #[error("{0}")]
    Serialization(String),
    /// The producer or consumer was closed.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    /// True when the same operation may succeed if tried again: Kafka's retriable error codes,
    /// connection problems and timeouts.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Kafka { code, .. } => code.is_retriable(),
            Self::Connect { .. } | Self::Io { .. } | Self::Disconnected { .. } => true,
            Self::Timeout { .. } | Self::BufferExhausted { .. } => true,
            Self::Fatal(_)
            | Self::IllegalState(_)
            | Self::Abortable(_)
            | Self::TransactionAborted
            | Self::Protocol(_)
            | Self::UnsupportedVersion { .. }
            | Self::Config { .. }
            | Self::InvalidArgument(_)
            | Self::RecordTooLarge { .. }
            | Self::Serialization(_)
            | Self::Closed => false,
        }
    }

    /// The Kafka error code, when the broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Kafka { code, .. } => Some(*code),
            Self::Fatal(inner) | Self::Abortable(inner) => inner.code(),
            _ => None,
        }
    }

    /// True when the error means the client's view of partition leadership is stale, so
    /// metadata must be refreshed before retrying (Kafka's `InvalidMetadataException` family,
    /// plus every connection failure: the node may be gone).
    pub fn invalidates_metadata(&self) -> bool {
        match self {
            Self::Kafka { code, .. } => code_invalidates_metadata(*code),
            Self::Connect { .. }
            | Self::Io { .. }
            | Self::Disconnected { .. }
            | Self::Timeout { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn kafka(code: ErrorCode, message: Option<String>) -> Self {
        Self::Kafka {
            code,
            message: message.filter(|m| !m.is_empty()),
        }
    }

    /// A Kafka error with the broker's message, or Kafka's standard description of the code
    /// when the broker sent none (the admin tools print these to users).
    pub(crate) fn kafka_described(code: ErrorCode, message: Option<String>) -> Self {
        let message = message
            .filter(|m| !m.is_empty())
            .or_else(|| error_code_description(code).map(str::to_string));
        Self::Kafka { code, message }
    }

    /// `Ok(())` for error code 0, the Kafka error otherwise.
    pub(crate) fn check(code: i16, message: Option<&str>) -> Result<()> {
        match ErrorCode::try_from_code(code) {
            None => Ok(()),
            Some(code) => Err(Self::kafka(code, message.map(str::to_string))),
        }
    }

    pub(crate) fn config(key: &str, reason: impl Into<String>) -> Self {
        Self::Config {
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn timeout(what: impl Into<String>, elapsed: Duration) -> Self {
        Self::Timeout {
            what: what.into(),
            elapsed,
        }
    }
}

/// The error codes after which Kafka clients refresh metadata.
pub(crate) fn code_invalidates_metadata(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotLeaderOrFollower
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::UnknownTopicId
            | ErrorCode::InconsistentTopicId
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::KafkaStorageError
            | ErrorCode::ReplicaNotAvailable
            | ErrorCode::NotController
            | ErrorCode::BrokerNotAvailable
            | ErrorCode::OffsetNotAvailable
    )
}

/// Kafka's standard description of an error code (`Errors.java`), for the codes the admin
/// client reports per item; `None` for the rest.
pub fn error_code_description(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::UnknownServerError => {
            "The server experienced an unexpected error when processing the request."
        }
        ErrorCode::OffsetOutOfRange => {
            "The requested offset is not within the range of offsets maintained by the server."
        }
        ErrorCode::UnknownTopicOrPartition => "This server does not host this topic-partition.",
        ErrorCode::LeaderNotAvailable => {
            "There is no leader for this topic-partition as we are in the middle of a leadership \
             election."
        }
        ErrorCode::RequestTimedOut => "The request timed out.",
        ErrorCode::CoordinatorLoadInProgress => {
            "The coordinator is loading and hence can't process requests."
        }
        ErrorCode::CoordinatorNotAvailable => "The coordinator is not available.",
        ErrorCode::NotCoordinator => "This is not the correct coordinator.",
        ErrorCode::InvalidTopicException => {
            "The request attempted to perform an operation on an invalid topic."
        }
        ErrorCode::IllegalGeneration => "Specified group generation id is not valid.",
        ErrorCode::InvalidGroupId => "The configured groupId is invalid.",
        ErrorCode::UnknownMemberId => "The coordinator is not aware of this member.",
        ErrorCode::RebalanceInProgress => "The group is rebalancing, so a rejoin is needed.",
        ErrorCode::TopicAuthorizationFailed => "Topic authorization failed.",
        ErrorCode::GroupAuthorizationFailed => "Group authorization failed.",
        ErrorCode::ClusterAuthorizationFailed => "Cluster authorization failed.",
        ErrorCode::UnsupportedVersion => "The version of API is not supported.",
        ErrorCode::InvalidConfig => "Configuration is invalid.",
        ErrorCode::PolicyViolation => "Request parameters do not satisfy the configured policy.",
        ErrorCode::KafkaStorageError => "Disk error when trying to access log file on the disk.",
        ErrorCode::NonEmptyGroup => "The group is not empty.",
        ErrorCode::GroupIdNotFound => "The group id does not exist.",
        ErrorCode::GroupSubscribedToTopic => {
            "Deleting offsets of a topic is forbidden while the consumer group is actively \
             subscribed to it."
        }
        ErrorCode::UnstableOffsetCommit => "There are unstable offsets that need to be cleared.",
        ErrorCode::StaleMemberEpoch => {
            "The member epoch is stale. The member must retry after receiving its updated member \
             epoch via the ConsumerGroupHeartbeat API."
        }
        _ => return None,
    })
}

/// Kafka's spelling of an error code, `TOPIC_ALREADY_EXISTS`, which is what users search for;
/// `kafka-protocol` only gives the Rust variant name.
pub fn error_code_name(code: ErrorCode) -> String {
    let camel = format!("{code:?}");
    if let ErrorCode::Unknown(n) = code {
        return format!("UNKNOWN_ERROR_CODE_{n}");
    }
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

struct KafkaDisplay<'a>(ErrorCode, Option<&'a str>);

impl fmt::Display for KafkaDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = error_code_name(self.0);
        match self.1 {
            Some(m) => write!(f, "{name}: {m}"),
            None => f.write_str(&name),
        }
    }
}

/// An I/O error without Rust's ` (os error 111)` suffix: the CLI prints these to users, who
/// expect `Connection refused`.
struct IoDisplay<'a>(&'a io::Error);

impl fmt::Display for IoDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        match text.rfind(" (os error ") {
            Some(at) if text.ends_with(')') => f.write_str(&text[..at]),
            _ => f.write_str(&text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_kafka_spelling() {
        assert_eq!(
            error_code_name(ErrorCode::TopicAlreadyExists),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            error_code_name(ErrorCode::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(
            error_code_name(ErrorCode::Unknown(999)),
            "UNKNOWN_ERROR_CODE_999"
        );
    }

    #[test]
    fn display_and_retriable() {
        let e = ClientError::kafka(
            ErrorCode::TopicAlreadyExists,
            Some("Topic 'a' already exists.".into()),
        );
        assert_eq!(
            e.to_string(),
            "TOPIC_ALREADY_EXISTS: Topic 'a' already exists."
        );
        assert!(!e.is_retriable());
        assert!(ClientError::kafka(ErrorCode::NotLeaderOrFollower, None).is_retriable());
        let refused = ClientError::Connect {
            addr: "127.0.0.1:9092".into(),
            cause: Arc::new(io::Error::from_raw_os_error(111)),
        };
        assert!(refused.is_retriable());
        assert_eq!(
            refused.to_string(),
            "cannot connect to 127.0.0.1:9092: Connection refused"
        );
    }
}
