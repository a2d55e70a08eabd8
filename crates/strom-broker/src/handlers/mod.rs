//! One module per Kafka API. Each declares the versions it serves in its `API` constant; the
//! registry [`APIS`] is the single list that both request decoding (which versions are
//! accepted) and ApiVersions (what is advertised) are derived from. An API with no module here
//! is neither accepted nor advertised.

pub(crate) mod alter_configs;
pub(crate) mod api_versions;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod describe_log_dirs;
pub(crate) mod describe_producers;
pub(crate) mod fetch;
pub(crate) mod find_coordinator;
pub(crate) mod group;
pub(crate) mod init_producer_id;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod produce;
pub(crate) mod txn;

use strom_protocol::envelope::Request;
use strom_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use strom_protocol::{StrBytes, VersionRange};
use tracing::debug;

use crate::connection::ConnectionState;
use crate::server::Shared;

/// The versions of one API that strom serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiSpec {
    pub(crate) key: ApiKey,
    pub(crate) versions: VersionRange,
}

impl ApiSpec {
    pub(crate) const fn new(key: ApiKey, min: i16, max: i16) -> Self {
        Self {
            key,
            versions: VersionRange { min, max },
        }
    }
}

/// Every API strom serves.
pub(crate) const APIS: &[ApiSpec] = &[
    produce::API,
    fetch::API,
    list_offsets::API,
    metadata::API,
    api_versions::API,
    create_topics::API,
    delete_topics::API,
    create_partitions::API,
    describe_configs::API,
    describe_cluster::API,
    alter_configs::API,
    alter_configs::INCREMENTAL_API,
    find_coordinator::API,
    init_producer_id::API,
    delete_records::API,
    describe_producers::API,
    describe_log_dirs::API,
    group::join::API,
    group::sync::API,
    group::heartbeat::API,
    group::leave::API,
    group::offset_commit::API,
    group::offset_fetch::API,
    group::offset_delete::API,
    group::list::API,
    group::describe::API,
    group::delete::API,
    group::consumer_heartbeat::API,
    group::consumer_describe::API,
    group::txn_offset_commit::API,
    txn::add_partitions::API,
    txn::add_offsets::API,
    txn::end_txn::API,
    txn::write_markers::API,
    txn::describe::API,
    txn::list::API,
];

/// The versions served for `key`, `None` if the API is not served.
pub(crate) fn version_range(key: ApiKey) -> Option<VersionRange> {
    APIS.iter().find(|a| a.key == key).map(|a| a.versions)
}

/// What to send back for a request.
#[derive(Debug)]
pub(crate) enum Reply {
    Response(Box<ResponseKind>),
    /// No response at all (produce with acks=0).
    None,
    /// Close the connection (acks=0 produce that failed, so the client notices).
    Close(String),
}

/// Per-request context handed to handlers.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) conn: &'a mut ConnectionState,
    pub(crate) version: i16,
    pub(crate) client_id: Option<&'a str>,
}

pub(crate) async fn dispatch(
    shared: &Shared,
    conn: &mut ConnectionState,
    request: Request,
) -> Reply {
    let version = request.version();
    let client_id = request.header.client_id.as_deref();
    debug!(api = ?request.api_key, version, client_id, "request");
    let mut ctx = Ctx {
        shared,
        conn,
        version,
        client_id,
    };
    let response = match request.body {
        RequestKind::Produce(r) => return produce::handle(&mut ctx, r).await,
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(&mut ctx, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(&mut ctx, r).await)
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(&mut ctx, r).await),
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(&mut ctx, r)),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(&mut ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(&mut ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(&mut ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(&mut ctx, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle(&mut ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            alter_configs::handle_incremental(&mut ctx, r).await,
        ),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(&mut ctx, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(&mut ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(&mut ctx, r))
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(&mut ctx, r))
        }
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(&mut ctx, r))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(group::join::handle(&mut ctx, r).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(group::sync::handle(&mut ctx, r).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(group::heartbeat::handle(&mut ctx, r).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(group::leave::handle(&mut ctx, r).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(group::offset_commit::handle(&mut ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(group::offset_fetch::handle(&mut ctx, r))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(group::offset_delete::handle(&mut ctx, r).await)
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group::list::handle(&mut ctx, r)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group::describe::handle(&mut ctx, r))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(group::delete::handle(&mut ctx, r).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            group::consumer_heartbeat::handle(&mut ctx, r).await,
        ),
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(group::consumer_describe::handle(&mut ctx, r))
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(group::txn_offset_commit::handle(&mut ctx, r).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions::handle(&mut ctx, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets::handle(&mut ctx, r).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn::handle(&mut ctx, r).await),
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(txn::write_markers::handle(&mut ctx, r))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe::handle(&mut ctx, r))
        }
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn::list::handle(&mut ctx, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(&mut ctx, r))
        }
        other => {
            // decode_request only lets through APIs listed in APIS, so this is a registry
            // entry without a dispatch arm.
            return Reply::Close(format!(
                "no handler for {:?}",
                std::mem::discriminant(&other)
            ));
        }
    };
    Reply::Response(Box::new(response))
}

/// Kafka's `AclOperation` codes used below (org.apache.kafka.common.acl.AclOperation).
mod acl_op {
    pub(super) const READ: u8 = 3;
    pub(super) const WRITE: u8 = 4;
    pub(super) const CREATE: u8 = 5;
    pub(super) const DELETE: u8 = 6;
    pub(super) const ALTER: u8 = 7;
    pub(super) const DESCRIBE: u8 = 8;
    pub(super) const CLUSTER_ACTION: u8 = 9;
    pub(super) const DESCRIBE_CONFIGS: u8 = 10;
    pub(super) const ALTER_CONFIGS: u8 = 11;
    pub(super) const IDEMPOTENT_WRITE: u8 = 12;
}

/// A set of ACL operations as the protocol's authorized-operations bit field (bit n = code n).
const fn bit_field(ops: &[u8]) -> i32 {
    let mut bits = 0i32;
    let mut i = 0;
    while i < ops.len() {
        bits |= 1 << ops[i];
        i += 1;
    }
    bits
}

/// What a client asking for `include_topic_authorized_operations` is told it may do on a
/// topic. With no authorizer configured (strom has none yet) Kafka reports every operation the
/// resource type supports (`AuthHelper.authorizedOperations`, `AclEntry.supportedOperations`).
pub(crate) const TOPIC_AUTHORIZED_OPERATIONS: i32 = {
    use acl_op::*;
    bit_field(&[
        READ,
        WRITE,
        CREATE,
        DESCRIBE,
        DELETE,
        ALTER,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
    ])
};

/// The same for the cluster resource (`include_cluster_authorized_operations`).
pub(crate) const CLUSTER_AUTHORIZED_OPERATIONS: i32 = {
    use acl_op::*;
    bit_field(&[
        CREATE,
        CLUSTER_ACTION,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        IDEMPOTENT_WRITE,
        ALTER,
        DESCRIBE,
    ])
};

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn now_ms() -> i64 {
    crate::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::kafka_protocol::protocol::{Message, Request as _};
    use strom_protocol::messages::*;

    fn crate_range<R: Message>() -> VersionRange {
        R::VERSIONS
    }

    fn below_newest<R: Message>() -> VersionRange {
        VersionRange {
            min: R::VERSIONS.min,
            max: R::VERSIONS.max - 1,
        }
    }

    #[test]
    fn registry_serves_the_newest_versions_kafka_protocol_knows() {
        let expected = [
            (ApiKey::Produce, crate_range::<ProduceRequest>()),
            (ApiKey::Fetch, crate_range::<FetchRequest>()),
            (ApiKey::ListOffsets, crate_range::<ListOffsetsRequest>()),
            (ApiKey::Metadata, crate_range::<MetadataRequest>()),
            (ApiKey::ApiVersions, crate_range::<ApiVersionsRequest>()),
            (ApiKey::CreateTopics, crate_range::<CreateTopicsRequest>()),
            (ApiKey::DeleteTopics, crate_range::<DeleteTopicsRequest>()),
            (
                ApiKey::CreatePartitions,
                crate_range::<CreatePartitionsRequest>(),
            ),
            (
                ApiKey::DescribeConfigs,
                crate_range::<DescribeConfigsRequest>(),
            ),
            (
                ApiKey::DescribeCluster,
                crate_range::<DescribeClusterRequest>(),
            ),
            (ApiKey::AlterConfigs, crate_range::<AlterConfigsRequest>()),
            (
                ApiKey::IncrementalAlterConfigs,
                crate_range::<IncrementalAlterConfigsRequest>(),
            ),
            (
                ApiKey::FindCoordinator,
                crate_range::<FindCoordinatorRequest>(),
            ),
            (
                ApiKey::InitProducerId,
                crate_range::<InitProducerIdRequest>(),
            ),
            (ApiKey::DeleteRecords, crate_range::<DeleteRecordsRequest>()),
            (
                ApiKey::DescribeProducers,
                crate_range::<DescribeProducersRequest>(),
            ),
            (
                ApiKey::DescribeLogDirs,
                crate_range::<DescribeLogDirsRequest>(),
            ),
            (ApiKey::JoinGroup, crate_range::<JoinGroupRequest>()),
            (ApiKey::SyncGroup, crate_range::<SyncGroupRequest>()),
            (ApiKey::Heartbeat, crate_range::<HeartbeatRequest>()),
            (ApiKey::LeaveGroup, crate_range::<LeaveGroupRequest>()),
            (ApiKey::OffsetCommit, crate_range::<OffsetCommitRequest>()),
            (ApiKey::OffsetFetch, crate_range::<OffsetFetchRequest>()),
            (ApiKey::OffsetDelete, crate_range::<OffsetDeleteRequest>()),
            (ApiKey::ListGroups, crate_range::<ListGroupsRequest>()),
            (
                ApiKey::DescribeGroups,
                crate_range::<DescribeGroupsRequest>(),
            ),
            (ApiKey::DeleteGroups, crate_range::<DeleteGroupsRequest>()),
            (
                ApiKey::ConsumerGroupHeartbeat,
                crate_range::<ConsumerGroupHeartbeatRequest>(),
            ),
            (
                ApiKey::ConsumerGroupDescribe,
                crate_range::<ConsumerGroupDescribeRequest>(),
            ),
            (
                ApiKey::AddOffsetsToTxn,
                crate_range::<AddOffsetsToTxnRequest>(),
            ),
            (
                ApiKey::WriteTxnMarkers,
                crate_range::<WriteTxnMarkersRequest>(),
            ),
            (
                ApiKey::DescribeTransactions,
                crate_range::<DescribeTransactionsRequest>(),
            ),
            (
                ApiKey::ListTransactions,
                crate_range::<ListTransactionsRequest>(),
            ),
            // The newest version of these is transactions v2 (KIP-890 part 2), which needs the
            // `transaction.version` feature strom does not finalize: one below.
            (ApiKey::EndTxn, below_newest::<EndTxnRequest>()),
            (
                ApiKey::AddPartitionsToTxn,
                below_newest::<AddPartitionsToTxnRequest>(),
            ),
            (
                ApiKey::TxnOffsetCommit,
                below_newest::<TxnOffsetCommitRequest>(),
            ),
        ];
        assert_eq!(APIS.len(), expected.len());
        for (key, range) in expected {
            assert_eq!(version_range(key), Some(range), "{key:?}");
        }
        assert_eq!(ProduceRequest::KEY, ApiKey::Produce as i16);
    }

    #[test]
    fn authorized_operations_are_kafkas_bit_fields() {
        // Kafka with no authorizer: topic READ..ALTER_CONFIGS without CLUSTER_ACTION and
        // IDEMPOTENT_WRITE; cluster CREATE, ALTER, DESCRIBE, CLUSTER_ACTION..IDEMPOTENT_WRITE.
        assert_eq!(TOPIC_AUTHORIZED_OPERATIONS, 0b1101_1111_1000);
        assert_eq!(CLUSTER_AUTHORIZED_OPERATIONS, 0b1_1111_1010_0000);
    }

    #[test]
    fn unserved_apis_have_no_range() {
        assert_eq!(version_range(ApiKey::SaslHandshake), None);
    }
}
