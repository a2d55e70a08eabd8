//! The group side of transactions: TxnOffsetCommit, pending offsets and the COMMIT/ABORT
//! markers that settle them.

mod common;

use common::*;
use strom_coordinator::records::RecordKey;
use strom_coordinator::{GroupCoordinatorShard, ShardResponse, TransactionalWrite};
use strom_protocol::ErrorCode;
use strom_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use strom_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use strom_protocol::messages::*;

const PID: i64 = 4000;

fn txn_request(
    group: &str,
    producer_id: i64,
    member: &str,
    generation: i32,
    partitions: &[(&str, i32, i64)],
) -> TxnOffsetCommitRequest {
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (topic, p, offset) in partitions {
        let part = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(2)
            .with_committed_metadata(Some(sb("m")));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(sb("tx")))
        .with_group_id(gid(group))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(3)
        .with_generation_id(generation)
        .with_member_id(sb(member))
        .with_topics(topics)
}

/// TxnOffsetCommit v3; returns the per-partition codes and checks the outcome's producer.
fn txn_commit(h: &mut H, version: i16, req: TxnOffsetCommitRequest) -> Vec<i16> {
    let t = h.token(ApiKey::TxnOffsetCommit, version);
    let out = h.shard.txn_offset_commit(h.now, t, version, &req);
    if !out.records.is_empty() {
        assert_eq!(
            out.transactional,
            Some(TransactionalWrite {
                transactional_id: "tx".into(),
                producer_id: req.producer_id.0,
                producer_epoch: 3,
            })
        );
    }
    h.apply(out);
    match &h.delivered[&t] {
        ShardResponse::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn fetch_stable(
    shard: &GroupCoordinatorShard,
    group: &str,
    which: Option<&[(&str, i32)]>,
) -> Vec<(i32, i64, i16)> {
    let topics = which.map(|w| {
        w.iter()
            .map(|(t, p)| {
                OffsetFetchRequestTopics::default()
                    .with_name(TopicName(sb(t)))
                    .with_partition_indexes(vec![*p])
            })
            .collect()
    });
    let req = OffsetFetchRequestGroup::default()
        .with_group_id(gid(group))
        .with_member_id(None)
        .with_member_epoch(-1)
        .with_topics(topics);
    shard
        .offset_fetch(&req, true)
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        })
        .collect()
}

#[test]
fn pending_offsets_are_invisible_until_the_commit_marker() {
    let mut h = H::new();
    let codes = txn_commit(&mut h, 3, txn_request("g", PID, "", -1, &[("t", 0, 42)]));
    assert_eq!(codes, vec![0]);
    assert!(matches!(h.log[0].key, RecordKey::OffsetCommit { .. }));
    assert_eq!(h.producers, vec![PID]);
    // Not visible before the marker, neither listed nor by name.
    assert!(h.fetch("g", None).is_empty());
    assert_eq!(h.fetch("g", Some(&[("t", 0)]))[0].2, -1);
    h.marker(PID, true);
    assert_eq!(h.fetch("g", None)[0].2, 42);
    assert_eq!(h.fetch("g", None)[0].3, 2, "leader epoch kept");
}

#[test]
fn abort_marker_drops_pending_offsets() {
    let mut h = H::new();
    h.commit(8, "g", "", -1, None, &[("t", 0, 10, None)]);
    txn_commit(&mut h, 3, txn_request("g", PID, "", -1, &[("t", 0, 42)]));
    h.marker(PID, false);
    assert_eq!(h.fetch("g", None)[0].2, 10);
    // A marker of another producer changes nothing.
    h.marker(PID + 1, true);
    assert_eq!(h.fetch("g", None)[0].2, 10);
}

#[test]
fn require_stable_answers_unstable_offset_commit() {
    let mut h = H::new();
    h.commit(
        8,
        "g",
        "",
        -1,
        None,
        &[("t", 0, 10, None), ("t", 1, 11, None)],
    );
    txn_commit(&mut h, 3, txn_request("g", PID, "", -1, &[("t", 0, 42)]));
    let unstable = ErrorCode::UnstableOffsetCommit.code();
    assert_eq!(
        fetch_stable(&h.shard, "g", Some(&[("t", 0), ("t", 1)])),
        vec![(0, -1, unstable), (1, 11, 0)]
    );
    assert_eq!(
        fetch_stable(&h.shard, "g", None),
        vec![(0, -1, unstable), (1, 11, 0)]
    );
    // Without require_stable the committed offset shows.
    assert_eq!(h.fetch("g", Some(&[("t", 0)]))[0].2, 10);
    h.marker(PID, true);
    assert_eq!(
        fetch_stable(&h.shard, "g", Some(&[("t", 0)])),
        vec![(0, 42, 0)]
    );
}

#[test]
fn a_later_plain_commit_wins_over_an_earlier_transactional_one() {
    let mut h = H::new();
    txn_commit(
        &mut h,
        3,
        txn_request("g", PID, "", -1, &[("t", 0, 42), ("t", 1, 43)]),
    );
    h.commit(8, "g", "", -1, None, &[("t", 0, 50, None)]);
    h.marker(PID, true);
    let got: Vec<i64> = h.fetch("g", None).iter().map(|r| r.2).collect();
    assert_eq!(got, vec![50, 43]);
    let replayed = h.replayed();
    assert_eq!(fetch_from(&replayed, "g", None), h.fetch("g", None));
}

#[test]
fn validation_follows_kafka() {
    let mut h = H::new();
    // Unknown group with a generation: ILLEGAL_GENERATION.
    assert_eq!(
        txn_commit(&mut h, 3, txn_request("nope", PID, "m", 1, &[("t", 0, 1)])),
        vec![ErrorCode::IllegalGeneration.code()]
    );
    assert_eq!(
        txn_commit(&mut h, 3, txn_request("", PID, "", -1, &[("t", 0, 1)])),
        vec![ErrorCode::InvalidGroupId.code()]
    );
    // A classic group with a member: member and generation are checked from v3.
    let (_, member) = h.join_new("cg");
    h.advance(3_000);
    let unknown = txn_commit(&mut h, 3, txn_request("cg", PID, "who", 1, &[("t", 0, 1)]));
    assert_eq!(unknown, vec![ErrorCode::UnknownMemberId.code()]);
    let wrong_gen = txn_commit(
        &mut h,
        3,
        txn_request("cg", PID, &member, 7, &[("t", 0, 1)]),
    );
    assert_eq!(wrong_gen, vec![ErrorCode::IllegalGeneration.code()]);
    // Before v3 there is no member: accepted whatever the group's state.
    let v2 = txn_commit(&mut h, 2, txn_request("cg", PID, "", -1, &[("t", 0, 1)]));
    assert_eq!(v2, vec![0]);
    let mut big = txn_request("g", PID, "", -1, &[("t", 0, 1)]);
    big.topics[0].partitions[0].committed_metadata = Some(sb(&"x".repeat(5000)));
    assert_eq!(
        txn_commit(&mut h, 3, big),
        vec![ErrorCode::OffsetMetadataTooLarge.code()]
    );
}

#[test]
fn delete_groups_tombstones_pending_offsets() {
    let mut h = H::new();
    txn_commit(&mut h, 3, txn_request("g", PID, "", -1, &[("t", 0, 42)]));
    let t = h.token(ApiKey::DeleteGroups, 2);
    let out = h.shard.delete_groups(h.now, t, 2, &["g".to_string()]);
    h.apply(out);
    assert!(h.log.iter().any(|r| r.value.is_none()
        && matches!(&r.key, RecordKey::OffsetCommit { group, topic, partition: 0 } if group == "g" && topic == "t")));
    h.marker(PID, true);
    assert!(h.fetch("g", None).is_empty(), "nothing left to materialise");
}

#[test]
fn expiration_keeps_offsets_and_groups_with_open_transactions() {
    let mut h = H::new();
    h.commit(8, "g", "", -1, None, &[("t", 0, 10, None)]);
    txn_commit(&mut h, 3, txn_request("g", PID, "", -1, &[("t", 0, 42)]));
    // Past retention (7 days) and a check interval.
    h.advance(7 * 24 * 3600 * 1000 + 600_000);
    assert_eq!(
        h.fetch("g", Some(&[("t", 0)]))[0].2,
        10,
        "not expired while pending"
    );
    assert!(h.shard.group_ids().contains(&"g".to_string()));
    h.marker(PID, false);
    h.advance(600_000);
    assert!(h.fetch("g", None).is_empty());
    assert!(!h.shard.group_ids().contains(&"g".to_string()));
}

#[test]
fn replay_keeps_pending_offsets_pending() {
    let mut h = H::new();
    h.commit(8, "g", "", -1, None, &[("t", 0, 10, None)]);
    txn_commit(
        &mut h,
        3,
        txn_request("g", PID, "", -1, &[("t", 0, 42), ("u", 1, 7)]),
    );
    txn_commit(
        &mut h,
        3,
        txn_request("g2", PID + 1, "", -1, &[("t", 0, 5)]),
    );
    h.marker(PID + 1, true);
    let replayed = h.replayed();
    for g in ["g", "g2"] {
        assert_eq!(fetch_from(&replayed, g, None), h.fetch(g, None));
        assert_eq!(
            fetch_stable(&replayed, g, None),
            fetch_stable(&h.shard, g, None)
        );
    }
    // Both settle the same way.
    let mut replayed = replayed;
    replayed.replay_end_transaction(PID, true);
    h.marker(PID, true);
    assert_eq!(fetch_from(&replayed, "g", None), h.fetch("g", None));
    assert_eq!(h.fetch("g", None).len(), 2);
}
