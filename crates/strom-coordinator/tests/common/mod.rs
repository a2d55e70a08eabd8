//! Test harness: drives a shard like the broker does (records written, then responses
//! delivered), keeps the written log for replay checks, and encodes every response at its
//! request's version (the generated encoder refuses fields a version cannot carry).

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use strom_coordinator::{
    ClientInfo, CoordinatorRecord, GroupConfig, GroupCoordinatorShard, Outcome, RequestToken,
    ShardResponse, TopicInfo, TopicsView,
};
use strom_protocol::kafka_protocol::protocol::Encodable;
use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use strom_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::*;
use strom_protocol::{ErrorCode, StrBytes};
use uuid::Uuid;

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn gid(s: &str) -> GroupId {
    GroupId(sb(s))
}

/// A `ConsumerProtocolSubscription` v0: the topics, no user data.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

pub fn code(c: ErrorCode) -> i16 {
    c.code()
}

pub fn topic_id(name: &str) -> Uuid {
    let mut h: u128 = 1469598103934665603;
    for b in name.bytes() {
        h = h.wrapping_mul(1099511628211).wrapping_add(u128::from(b));
    }
    Uuid::from_u128(h)
}

pub fn topics(list: &[(&str, i32)]) -> TopicsView {
    TopicsView::new(
        1,
        list.iter().map(|(n, p)| TopicInfo {
            name: n.to_string(),
            id: topic_id(n),
            partitions: *p,
            internal: n.starts_with("__"),
        }),
    )
}

pub struct H {
    pub shard: GroupCoordinatorShard,
    pub now: i64,
    next: u64,
    pub log: Vec<CoordinatorRecord>,
    /// The producer id of the batch each record of `log` was written in (-1: none).
    pub producers: Vec<i64>,
    /// Control markers written to the partition: (records before it, producer id, commit).
    pub markers: Vec<(usize, i64, bool)>,
    versions: BTreeMap<RequestToken, (ApiKey, i16)>,
    /// Every response delivered, by token.
    pub delivered: BTreeMap<RequestToken, ShardResponse>,
}

impl H {
    pub fn new() -> Self {
        Self::with(GroupConfig::default())
    }

    pub fn with(config: GroupConfig) -> Self {
        Self {
            shard: GroupCoordinatorShard::new(config),
            now: 1_000_000,
            next: 0,
            log: Vec::new(),
            producers: Vec::new(),
            markers: Vec::new(),
            versions: BTreeMap::new(),
            delivered: BTreeMap::new(),
        }
    }

    pub fn token(&mut self, api: ApiKey, version: i16) -> RequestToken {
        self.next += 1;
        let t = RequestToken(self.next);
        self.versions.insert(t, (api, version));
        t
    }

    /// Writes the records (through the codec, as the broker would) and delivers responses.
    pub fn apply(&mut self, out: Outcome) -> Vec<(RequestToken, ShardResponse)> {
        let producer = out.transactional.as_ref().map_or(-1, |t| t.producer_id);
        for r in &out.records {
            self.producers.push(producer);
            let (k, v) = r.encode();
            let back = CoordinatorRecord::decode(&k, v.as_deref())
                .unwrap()
                .unwrap();
            assert_eq!(&back, r);
            self.log.push(back);
        }
        for (t, r) in &out.responses {
            let (_, version) = self.versions[t];
            let mut buf = BytesMut::new();
            let encoded = match r {
                ShardResponse::JoinGroup(r) => r.encode(&mut buf, version),
                ShardResponse::SyncGroup(r) => r.encode(&mut buf, version),
                ShardResponse::Heartbeat(r) => r.encode(&mut buf, version),
                ShardResponse::LeaveGroup(r) => r.encode(&mut buf, version),
                ShardResponse::OffsetCommit(r) => r.encode(&mut buf, version),
                ShardResponse::TxnOffsetCommit(r) => r.encode(&mut buf, version),
                ShardResponse::OffsetDelete(r) => r.encode(&mut buf, version),
                ShardResponse::DeleteGroups(r) => DeleteGroupsResponse::default()
                    .with_results(r.clone())
                    .encode(&mut buf, version),
                ShardResponse::ConsumerGroupHeartbeat(r) => r.encode(&mut buf, version),
            };
            encoded.unwrap_or_else(|e| panic!("{r:?} does not encode at v{version}: {e}"));
            assert!(
                self.delivered.insert(*t, r.clone()).is_none(),
                "token {t:?} answered twice"
            );
        }
        out.responses
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id` written to the partition.
    pub fn marker(&mut self, producer_id: i64, commit: bool) {
        self.shard.replay_end_transaction(producer_id, commit);
        self.markers.push((self.log.len(), producer_id, commit));
    }

    pub fn advance(&mut self, ms: i64) -> Vec<(RequestToken, ShardResponse)> {
        self.now += ms;
        let out = self.shard.on_timer(self.now);
        self.apply(out)
    }

    pub fn client(id: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.to_string(),
            client_host: "/127.0.0.1".to_string(),
        }
    }

    pub fn join_request(
        group: &str,
        member: &str,
        instance: Option<&str>,
        protocols: &[(&str, Bytes)],
    ) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(gid(group))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(sb(member))
            .with_group_instance_id(instance.map(sb))
            .with_protocol_type(sb("consumer"))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(n, m)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(sb(n))
                            .with_metadata(m.clone())
                    })
                    .collect(),
            )
    }

    pub fn join_with(&mut self, version: i16, req: JoinGroupRequest) -> RequestToken {
        let t = self.token(ApiKey::JoinGroup, version);
        let out = self
            .shard
            .join_group(self.now, t, version, req, Self::client("client"));
        self.apply(out);
        t
    }

    /// JoinGroup v9 with the range protocol over topic "t".
    pub fn join(&mut self, group: &str, member: &str, instance: Option<&str>) -> RequestToken {
        let req = Self::join_request(group, member, instance, &[("range", subscription(&["t"]))]);
        self.join_with(9, req)
    }

    pub fn join_response(&self, t: RequestToken) -> Option<JoinGroupResponse> {
        match self.delivered.get(&t) {
            Some(ShardResponse::JoinGroup(r)) => Some(r.clone()),
            None => None,
            Some(other) => panic!("{other:?}"),
        }
    }

    /// Joins with an empty member id and completes the MEMBER_ID_REQUIRED round trip; returns
    /// the token of the second (parked) join and the member id.
    pub fn join_new(&mut self, group: &str) -> (RequestToken, String) {
        let t = self.join(group, "", None);
        let r = self
            .join_response(t)
            .expect("MEMBER_ID_REQUIRED is immediate");
        assert_eq!(r.error_code, code(ErrorCode::MemberIdRequired));
        let id = r.member_id.to_string();
        assert!(id.starts_with("client-"), "{id}");
        (self.join(group, &id, None), id)
    }

    pub fn sync(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) -> RequestToken {
        self.sync_v(5, group, member, None, generation, assignments)
    }

    pub fn sync_v(
        &mut self,
        version: i16,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) -> RequestToken {
        let t = self.token(ApiKey::SyncGroup, version);
        let mut req = SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(sb(member))
            .with_group_instance_id(instance.map(sb))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(m))
                            .with_assignment(Bytes::copy_from_slice(a))
                    })
                    .collect(),
            );
        if version >= 5 {
            req.protocol_type = Some(sb("consumer"));
            req.protocol_name = Some(sb("range"));
        }
        let out = self
            .shard
            .sync_group(self.now, t, version, req, Self::client("client"));
        self.apply(out);
        t
    }

    pub fn sync_response(&self, t: RequestToken) -> Option<SyncGroupResponse> {
        match self.delivered.get(&t) {
            Some(ShardResponse::SyncGroup(r)) => Some(r.clone()),
            None => None,
            Some(other) => panic!("{other:?}"),
        }
    }

    pub fn heartbeat(
        &mut self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        let t = self.token(ApiKey::Heartbeat, 4);
        let req = HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(sb(member))
            .with_group_instance_id(instance.map(sb))
            .with_generation_id(generation);
        let out = self
            .shard
            .heartbeat(self.now, t, 4, req, Self::client("client"));
        self.apply(out);
        match &self.delivered[&t] {
            ShardResponse::Heartbeat(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    }

    pub fn leave(
        &mut self,
        version: i16,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> LeaveGroupResponse {
        let t = self.token(ApiKey::LeaveGroup, version);
        let mut req = LeaveGroupRequest::default().with_group_id(gid(group));
        if version < 3 {
            req.member_id = sb(members[0].0);
        } else {
            req.members = members
                .iter()
                .map(|(m, i)| {
                    leave_group_request::MemberIdentity::default()
                        .with_member_id(sb(m))
                        .with_group_instance_id(i.map(sb))
                })
                .collect();
        }
        let out = self
            .shard
            .leave_group(self.now, t, version, req, Self::client("client"));
        self.apply(out);
        match &self.delivered[&t] {
            ShardResponse::LeaveGroup(r) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &mut self,
        version: i16,
        group: &str,
        member: &str,
        generation: i32,
        instance: Option<&str>,
        partitions: &[(&str, i32, i64, Option<&str>)],
    ) -> Vec<(String, i32, i16)> {
        let t = self.token(ApiKey::OffsetCommit, version);
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, p, offset, md) in partitions {
            let part = OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(if version >= 6 { 3 } else { -1 })
                .with_committed_metadata(md.map(sb));
            match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
                Some(t) => t.partitions.push(part),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(vec![part]),
                ),
            }
        }
        let mut req = OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(sb(member))
            .with_topics(topics);
        if version >= 7 {
            req.group_instance_id = instance.map(sb);
        }
        let out = self
            .shard
            .offset_commit(self.now, t, version, req, Self::client("client"));
        self.apply(out);
        match &self.delivered[&t] {
            ShardResponse::OffsetCommit(r) => r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    /// OffsetFetch of all partitions (topics = None) or the given ones:
    /// (topic, partition, offset, leader epoch, metadata).
    pub fn fetch(
        &self,
        group: &str,
        which: Option<&[(&str, i32)]>,
    ) -> Vec<(String, i32, i64, i32, String)> {
        fetch_from(&self.shard, group, which)
    }

    pub fn cg_heartbeat(
        &mut self,
        req: ConsumerGroupHeartbeatRequest,
        topics: &TopicsView,
    ) -> ConsumerGroupHeartbeatResponse {
        let t = self.token(ApiKey::ConsumerGroupHeartbeat, 1);
        let out = self.shard.consumer_group_heartbeat(
            self.now,
            t,
            1,
            req,
            Self::client("cg-client"),
            topics,
        );
        self.apply(out);
        match &self.delivered[&t] {
            ShardResponse::ConsumerGroupHeartbeat(r) => r.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// A fresh shard loaded from everything written so far.
    pub fn replayed(&self) -> GroupCoordinatorShard {
        let mut s = GroupCoordinatorShard::new(self.shard.config().clone());
        let mut markers = self.markers.iter().peekable();
        for (i, r) in self.log.iter().enumerate() {
            while let Some((_, pid, commit)) = markers.next_if(|m| m.0 == i) {
                s.replay_end_transaction(*pid, *commit);
            }
            s.replay_transactional(self.producers[i], r);
        }
        for (_, pid, commit) in markers {
            s.replay_end_transaction(*pid, *commit);
        }
        s.on_loaded(self.now);
        s
    }
}

pub fn fetch_from(
    shard: &GroupCoordinatorShard,
    group: &str,
    which: Option<&[(&str, i32)]>,
) -> Vec<(String, i32, i64, i32, String)> {
    let topics = which.map(|w| {
        let mut ts: Vec<OffsetFetchRequestTopics> = Vec::new();
        for (t, p) in w {
            match ts.iter_mut().find(|x| x.name.0.as_str() == *t) {
                Some(x) => x.partition_indexes.push(*p),
                None => ts.push(
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(sb(t)))
                        .with_partition_indexes(vec![*p]),
                ),
            }
        }
        ts
    });
    let req = OffsetFetchRequestGroup::default()
        .with_group_id(gid(group))
        .with_member_id(None)
        .with_member_epoch(-1)
        .with_topics(topics);
    let r = shard.offset_fetch(&req, false);
    assert_eq!(r.error_code, 0);
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

/// A full (joining) ConsumerGroupHeartbeat.
pub fn cg_join(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(sb(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(60_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(sb(t))).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

/// A ConsumerGroupHeartbeat that reports the partitions the member owns.
pub fn cg_beat(
    group: &str,
    member: &str,
    epoch: i32,
    owned: &[(Uuid, Vec<i32>)],
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(sb(member))
        .with_member_epoch(epoch)
        .with_topic_partitions(Some(
            owned
                .iter()
                .map(|(t, ps)| {
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(*t)
                        .with_partitions(ps.clone())
                })
                .collect(),
        ))
}

/// The assignment in a heartbeat response, as (topic id, sorted partitions).
pub fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Option<Vec<(Uuid, Vec<i32>)>> {
    r.assignment.as_ref().map(|a| {
        let mut v: Vec<(Uuid, Vec<i32>)> = a
            .topic_partitions
            .iter()
            .map(|tp| {
                let mut ps = tp.partitions.clone();
                ps.sort();
                (tp.topic_id, ps)
            })
            .collect();
        v.sort();
        v
    })
}
