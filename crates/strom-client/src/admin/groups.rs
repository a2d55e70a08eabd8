//! Groups: list (every broker's ListGroups), describe (ConsumerGroupDescribe for KIP-848
//! groups, DescribeGroups for classic ones, with the consumer protocol's member bytes decoded)
//! and delete.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use futures::future::join_all;
use strom_protocol::ErrorCode;
use strom_protocol::StrBytes;
use strom_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, consumer_group_describe_response, describe_groups_response,
};

use super::Admin;
use super::coordinator::split_group_error;
use crate::cluster::{Node, Topics};
use crate::error::{ClientError, Result};
use crate::group_protocol::{CONSUMER_PROTOCOL_TYPE, ConsumerAssignment, ConsumerSubscription};
use crate::record::TopicPartition;

/// The outcome of an operation on one group.
#[derive(Debug, Clone)]
pub struct GroupResult<T> {
    pub group_id: String,
    pub result: Result<T>,
}

/// A group's state (Kafka's `GroupState`): the classic protocol's states, plus `Assigning`
/// and `Reconciling` of KIP-848 groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupState {
    Unknown,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
    Empty,
    Assigning,
    Reconciling,
}

impl GroupState {
    /// Every state a group can be in (not `Unknown`).
    pub const ALL: [GroupState; 7] = [
        Self::PreparingRebalance,
        Self::CompletingRebalance,
        Self::Stable,
        Self::Dead,
        Self::Empty,
        Self::Assigning,
        Self::Reconciling,
    ];

    /// Kafka's spelling, which is also what brokers send.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
        }
    }

    /// A state a broker sent, case-insensitively; `Unknown` for anything else.
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .unwrap_or(Self::Unknown)
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupState {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match Self::parse(s.trim()) {
            Self::Unknown => Err(format!(
                "`{s}` is not a group state; valid states are: {}",
                Self::ALL.map(Self::as_str).join(", ")
            )),
            state => Ok(state),
        }
    }
}

/// Which protocol a group follows (Kafka's `GroupType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupType {
    Unknown,
    /// KIP-848: the broker assigns partitions (ConsumerGroupHeartbeat).
    Consumer,
    /// JoinGroup/SyncGroup; the leader member assigns.
    Classic,
    Share,
}

impl GroupType {
    pub const ALL: [GroupType; 3] = [Self::Consumer, Self::Classic, Self::Share];

    /// The name on the wire (ListGroups v5).
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Consumer => "consumer",
            Self::Classic => "classic",
            Self::Share => "share",
        }
    }

    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|t| t.wire_name().eq_ignore_ascii_case(s))
            .unwrap_or(Self::Unknown)
    }
}

impl fmt::Display for GroupType {
    /// Kafka's `GroupType.toString()`, as `kafka-consumer-groups.sh --list --type` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "Unknown",
            Self::Consumer => "Consumer",
            Self::Classic => "Classic",
            Self::Share => "Share",
        })
    }
}

impl FromStr for GroupType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match Self::parse(s.trim()) {
            Self::Unknown => Err(format!(
                "`{s}` is not a group type; valid types are: {}",
                Self::ALL.map(Self::wire_name).join(", ")
            )),
            t => Ok(t),
        }
    }
}

/// One group in `list_groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// `consumer` for consumer groups, empty for groups that only store offsets.
    pub protocol_type: String,
    /// `None` from brokers older than ListGroups v4.
    pub state: Option<GroupState>,
    /// `None` from brokers older than ListGroups v5.
    pub group_type: Option<GroupType>,
}

/// What a member was assigned: decoded for consumer groups, the raw bytes for other protocol
/// types (Connect workers, ...) or bytes that do not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberAssignment {
    Consumer(ConsumerAssignment),
    Raw(Bytes),
}

impl MemberAssignment {
    /// The assigned partitions; none for raw assignments.
    pub fn partitions(&self) -> &[TopicPartition] {
        match self {
            Self::Consumer(a) => &a.partitions,
            Self::Raw(_) => &[],
        }
    }
}

/// What a member subscribed to: decoded for consumer groups, raw bytes otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberSubscription {
    Consumer(ConsumerSubscription),
    Raw(Bytes),
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    /// Static membership (`group.instance.id`).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    /// As the broker saw the connection, `/127.0.0.1`.
    pub host: String,
    pub assignment: MemberAssignment,
    pub subscription: MemberSubscription,
    /// KIP-848 members: the topic regex they subscribed with.
    pub subscribed_topic_regex: Option<String>,
    /// KIP-848 members: their epoch.
    pub member_epoch: Option<i32>,
    /// KIP-848 members: what the broker will assign once the member has caught up.
    pub target_assignment: Option<Vec<TopicPartition>>,
    pub rack_id: Option<String>,
}

/// A described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub group_type: GroupType,
    pub state: GroupState,
    /// `consumer` for consumer groups (both protocols), empty for offset-only groups.
    pub protocol_type: String,
    /// The chosen assignor: the classic protocol name once Stable, or the KIP-848 assignor.
    pub partition_assignor: String,
    pub members: Vec<MemberDescription>,
    pub coordinator: Node,
    /// KIP-848 groups only.
    pub group_epoch: Option<i32>,
    /// KIP-848 groups only.
    pub assignment_epoch: Option<i32>,
}

fn group_id(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

/// Decodes a classic member's bytes when the group speaks the consumer protocol, falling back
/// to the raw bytes (other protocol types, or bytes that are not what they claim).
fn classic_member(
    consumer_protocol: bool,
    m: describe_groups_response::DescribedGroupMember,
) -> MemberDescription {
    let (assignment, subscription) = if consumer_protocol {
        let assignment = match ConsumerAssignment::decode(&m.member_assignment) {
            Ok(a) => MemberAssignment::Consumer(a),
            Err(_) => MemberAssignment::Raw(m.member_assignment.clone()),
        };
        // Outside Stable the broker sends no metadata; that is "no subscription known".
        let subscription = if m.member_metadata.is_empty() {
            MemberSubscription::Consumer(ConsumerSubscription::default())
        } else {
            match ConsumerSubscription::decode(&m.member_metadata) {
                Ok(s) => MemberSubscription::Consumer(s),
                Err(_) => MemberSubscription::Raw(m.member_metadata.clone()),
            }
        };
        (assignment, subscription)
    } else {
        (
            MemberAssignment::Raw(m.member_assignment.clone()),
            MemberSubscription::Raw(m.member_metadata.clone()),
        )
    };
    MemberDescription {
        member_id: m.member_id.to_string(),
        group_instance_id: m.group_instance_id.map(|i| i.to_string()),
        client_id: m.client_id.to_string(),
        host: m.client_host.to_string(),
        assignment,
        subscription,
        subscribed_topic_regex: None,
        member_epoch: None,
        target_assignment: None,
        rack_id: None,
    }
}

fn kip848_partitions(a: &consumer_group_describe_response::Assignment) -> Vec<TopicPartition> {
    let mut out: Vec<TopicPartition> = a
        .topic_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic_name.0.to_string(), *p))
        })
        .collect();
    out.sort();
    out
}

fn kip848_group(
    g: consumer_group_describe_response::DescribedGroup,
    node: Node,
) -> GroupDescription {
    let members = g
        .members
        .into_iter()
        .map(|m| MemberDescription {
            member_id: m.member_id.to_string(),
            group_instance_id: m.instance_id.map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            assignment: MemberAssignment::Consumer(ConsumerAssignment::new(kip848_partitions(
                &m.assignment,
            ))),
            subscription: MemberSubscription::Consumer(ConsumerSubscription {
                topics: m
                    .subscribed_topic_names
                    .iter()
                    .map(|t| t.0.to_string())
                    .collect(),
                rack_id: m.rack_id.as_ref().map(|r| r.to_string()),
                ..ConsumerSubscription::default()
            }),
            subscribed_topic_regex: m.subscribed_topic_regex.map(|r| r.to_string()),
            member_epoch: Some(m.member_epoch),
            target_assignment: Some(kip848_partitions(&m.target_assignment)),
            rack_id: m.rack_id.map(|r| r.to_string()),
        })
        .collect();
    GroupDescription {
        group_id: g.group_id.0.to_string(),
        group_type: GroupType::Consumer,
        state: GroupState::parse(&g.group_state),
        protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
        partition_assignor: g.assignor_name.to_string(),
        members,
        coordinator: node,
        group_epoch: Some(g.group_epoch),
        assignment_epoch: Some(g.assignment_epoch),
    }
}

fn classic_group(g: describe_groups_response::DescribedGroup, node: Node) -> GroupDescription {
    let protocol_type = g.protocol_type.to_string();
    let consumer_protocol = protocol_type == CONSUMER_PROTOCOL_TYPE;
    GroupDescription {
        group_id: g.group_id.0.to_string(),
        group_type: GroupType::Classic,
        state: GroupState::parse(&g.group_state),
        members: g
            .members
            .into_iter()
            .map(|m| classic_member(consumer_protocol, m))
            .collect(),
        protocol_type,
        partition_assignor: g.protocol_data.to_string(),
        coordinator: node,
        group_epoch: None,
        assignment_epoch: None,
    }
}

impl Admin {
    /// Every group of the cluster (each broker lists the groups it coordinates), sorted by id,
    /// optionally only those in `states` (ListGroups v4+) and of `types` (v5+). Fails when a
    /// broker cannot be asked within `default.api.timeout.ms`, as Kafka's `all()` does:
    /// a partial list would silently miss groups.
    pub async fn list_groups(
        &self,
        states: &[GroupState],
        types: &[GroupType],
    ) -> Result<Vec<GroupListing>> {
        let metadata = self
            .cluster
            .retry(&[], || self.cluster.refresh(Topics::None))
            .await?;
        let request = ListGroupsRequest::default()
            .with_states_filter(
                states
                    .iter()
                    .map(|s| StrBytes::from_static_str(s.as_str()))
                    .collect(),
            )
            .with_types_filter(
                types
                    .iter()
                    .map(|t| StrBytes::from_static_str(t.wire_name()))
                    .collect(),
            );
        let mut groups: Vec<GroupListing> = Vec::new();
        for &node in metadata.brokers.keys() {
            let response = self
                .cluster
                .retry(&[], || async {
                    let conn = self.cluster.connection(node).await?;
                    let version = conn.version::<ListGroupsRequest>(None)?;
                    let needed = if !types.is_empty() {
                        5
                    } else if !states.is_empty() {
                        4
                    } else {
                        0
                    };
                    if version < needed {
                        return Err(ClientError::UnsupportedVersion {
                            addr: conn.addr().to_string(),
                            api: ApiKey::ListGroups,
                            reason: format!(
                                "filtering groups by {} needs ListGroups v{needed}, the broker \
                                 serves up to v{version}",
                                if needed == 5 { "type" } else { "state" }
                            ),
                        });
                    }
                    let response = conn
                        .call_at(&request, version, self.cluster.config().request_timeout())
                        .await?;
                    ClientError::check(response.error_code, None)?;
                    Ok((version, response))
                })
                .await?;
            let (version, response) = response;
            groups.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: (version >= 4).then(|| GroupState::parse(&g.group_state)),
                group_type: (version >= 5).then(|| GroupType::parse(&g.group_type)),
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// Describes each group: KIP-848 groups with ConsumerGroupDescribe, classic groups with
    /// DescribeGroups (a group unknown to the first is asked of the second, as Kafka's admin
    /// client does). A group that does not exist is GROUP_ID_NOT_FOUND from brokers with
    /// DescribeGroups v6, a `Dead` group without members from older ones.
    pub async fn describe_groups(
        &self,
        ids: &[String],
    ) -> Result<Vec<GroupResult<GroupDescription>>> {
        let results = join_all(ids.iter().map(|id| async move {
            GroupResult {
                group_id: id.clone(),
                result: self.describe_group(id).await,
            }
        }))
        .await;
        Ok(results)
    }

    async fn describe_group(&self, id: &str) -> Result<GroupDescription> {
        if id.is_empty() {
            return Err(ClientError::kafka_described(
                ErrorCode::InvalidGroupId,
                None,
            ));
        }
        self.with_coordinator(id, |conn, node| async move {
            if conn
                .broker_versions(ApiKey::ConsumerGroupDescribe)
                .is_some()
            {
                let response = conn
                    .call(
                        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(id)]),
                    )
                    .await?;
                let g = response
                    .groups
                    .into_iter()
                    .find(|g| g.group_id.0.as_str() == id)
                    .ok_or_else(|| no_answer("ConsumerGroupDescribe", id))?;
                match ErrorCode::try_from_code(g.error_code) {
                    None => return Ok(kip848_group(g, node)),
                    // Not a KIP-848 group: maybe a classic one.
                    Some(ErrorCode::GroupIdNotFound) => {}
                    Some(_) => {
                        split_group_error(g.error_code, g.error_message.as_deref())??;
                    }
                }
            }
            let response = conn
                .call(&DescribeGroupsRequest::default().with_groups(vec![group_id(id)]))
                .await?;
            let g = response
                .groups
                .into_iter()
                .find(|g| g.group_id.0.as_str() == id)
                .ok_or_else(|| no_answer("DescribeGroups", id))?;
            split_group_error(g.error_code, g.error_message.as_deref())??;
            Ok(classic_group(g, node))
        })
        .await
    }

    /// Deletes groups and their committed offsets; refused (NON_EMPTY_GROUP) for groups that
    /// still have members.
    pub async fn delete_groups(&self, ids: &[String]) -> Result<Vec<GroupResult<()>>> {
        let results = join_all(ids.iter().map(|id| async move {
            let result = self
                .with_coordinator(id, |conn, _| async move {
                    let response = conn
                        .call(&DeleteGroupsRequest::default().with_groups_names(vec![group_id(id)]))
                        .await?;
                    let r = response
                        .results
                        .into_iter()
                        .find(|r| r.group_id.0.as_str() == id)
                        .ok_or_else(|| no_answer("DeleteGroups", id))?;
                    split_group_error(r.error_code, None)
                })
                .await
                .and_then(|inner| inner);
            GroupResult {
                group_id: id.clone(),
                result,
            }
        }))
        .await;
        Ok(results)
    }
}

pub(crate) fn no_answer(api: &str, group: &str) -> ClientError {
    ClientError::Protocol(format!(
        "the {api} response has no answer for group '{group}'"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_types_parse_like_kafka() {
        assert_eq!(GroupState::parse("stable"), GroupState::Stable);
        assert_eq!(GroupState::parse("Weird"), GroupState::Unknown);
        assert_eq!("EMPTY".parse::<GroupState>(), Ok(GroupState::Empty));
        assert!("nope".parse::<GroupState>().is_err());
        assert_eq!("Classic".parse::<GroupType>(), Ok(GroupType::Classic));
        assert_eq!(GroupType::Consumer.to_string(), "Consumer");
        assert_eq!(GroupType::Consumer.wire_name(), "consumer");
    }

    #[test]
    fn non_consumer_protocol_members_keep_raw_bytes() {
        let m = describe_groups_response::DescribedGroupMember::default()
            .with_member_id(StrBytes::from_static_str("m"))
            .with_member_assignment(Bytes::from_static(b"connect-bytes"))
            .with_member_metadata(Bytes::from_static(b"meta"));
        let d = classic_member(false, m.clone());
        assert_eq!(
            d.assignment,
            MemberAssignment::Raw(Bytes::from_static(b"connect-bytes"))
        );
        assert!(d.assignment.partitions().is_empty());
        // A consumer group whose bytes do not decode falls back too.
        let d = classic_member(true, m);
        assert!(matches!(d.assignment, MemberAssignment::Raw(_)));
        assert!(matches!(d.subscription, MemberSubscription::Raw(_)));
    }
}
