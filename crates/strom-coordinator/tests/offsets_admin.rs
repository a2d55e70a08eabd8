//! Offsets (commit, fetch, delete, expiry) and the admin APIs (ListGroups, DescribeGroups,
//! DeleteGroups).

mod common;

use common::*;
use strom_coordinator::{RecordKey, ShardResponse};
use strom_protocol::ErrorCode;
use strom_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use strom_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse, TopicName};

const NONE: i16 = 0;

fn stable_group(h: &mut H, group: &str) -> String {
    let (t, m) = h.join_new(group);
    h.advance(3000);
    assert_eq!(h.join_response(t).unwrap().generation_id, 1);
    let s = h.sync(group, &m, 1, &[(&m, b"x")]);
    assert_eq!(h.sync_response(s).unwrap().error_code, 0);
    m
}

fn delete(h: &mut H, group: &str, topic: &str, partitions: &[i32]) -> OffsetDeleteResponse {
    let t = h.token(ApiKey::OffsetDelete, 0);
    let req = OffsetDeleteRequest::default()
        .with_group_id(gid(group))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                        .collect(),
                ),
        ]);
    let out = h.shard.offset_delete(h.now, t, 0, req, H::client("admin"));
    h.apply(out);
    match &h.delivered[&t] {
        ShardResponse::OffsetDelete(r) => r.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn simple_consumer_commit_and_fetch() {
    let mut h = H::new();
    let r = h.commit(
        9,
        "simple",
        "",
        -1,
        None,
        &[("t", 0, 42, Some("meta")), ("t", 1, 7, None)],
    );
    assert_eq!(r, vec![("t".into(), 0, NONE), ("t".into(), 1, NONE)]);
    // The commit created an empty classic group without protocol type.
    let listed = h.shard.list_groups(5, &[], &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].protocol_type.as_str(), "");
    assert_eq!(listed[0].group_state.as_str(), "Empty");
    assert_eq!(
        h.fetch("simple", None),
        vec![
            ("t".into(), 0, 42, 3, "meta".into()),
            ("t".into(), 1, 7, 3, "".into())
        ]
    );
    assert_eq!(
        h.fetch("simple", Some(&[("t", 0), ("u", 5)])),
        vec![
            ("t".into(), 0, 42, 3, "meta".into()),
            ("u".into(), 5, -1, -1, "".into())
        ]
    );
    assert_eq!(
        h.fetch("nope", Some(&[("t", 0)])),
        vec![("t".into(), 0, -1, -1, "".into())]
    );
    assert!(h.fetch("nope", None).is_empty());
    // Older versions carry no leader epoch.
    let r = h.commit(5, "simple", "", -1, None, &[("t", 0, 43, None)]);
    assert_eq!(r[0].2, NONE);
    assert_eq!(h.fetch("simple", Some(&[("t", 0)]))[0].3, -1);
}

#[test]
fn commit_errors() {
    let mut h = H::new();
    let big = "x".repeat(4097);
    let r = h.commit(
        9,
        "g",
        "",
        -1,
        None,
        &[("t", 0, 1, Some(&big)), ("t", 1, 1, None)],
    );
    assert_eq!(r[0].2, code(ErrorCode::OffsetMetadataTooLarge));
    assert_eq!(r[1].2, NONE);
    assert_eq!(
        h.commit(9, "", "", -1, None, &[("t", 0, 1, None)])[0].2,
        code(ErrorCode::InvalidGroupId)
    );
    // A member commit to a group that does not exist.
    assert_eq!(
        h.commit(8, "missing", "m", 1, None, &[("t", 0, 1, None)])[0].2,
        code(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        h.commit(9, "missing", "m", 1, None, &[("t", 0, 1, None)])[0].2,
        code(ErrorCode::GroupIdNotFound)
    );

    let m = stable_group(&mut h, "cg");
    assert_eq!(
        h.commit(9, "cg", &m, 1, None, &[("t", 0, 5, None)])[0].2,
        NONE
    );
    assert_eq!(
        h.commit(9, "cg", &m, 2, None, &[("t", 0, 5, None)])[0].2,
        code(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        h.commit(9, "cg", "other", 1, None, &[("t", 0, 5, None)])[0].2,
        code(ErrorCode::UnknownMemberId)
    );
    // A simple commit is only for groups without members.
    assert_eq!(
        h.commit(9, "cg", "", -1, None, &[("t", 0, 5, None)])[0].2,
        code(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        h.commit(9, "cg", &m, 1, Some("i9"), &[("t", 0, 5, None)])[0].2,
        code(ErrorCode::UnknownMemberId)
    );
    // During CompletingRebalance members must finish the rebalance first.
    let t = h.join(G2, "", Some("s1"));
    h.advance(3000);
    let s1 = h.join_response(t).unwrap().member_id.to_string();
    assert_eq!(
        h.commit(9, G2, &s1, 1, Some("s1"), &[("t", 0, 5, None)])[0].2,
        code(ErrorCode::RebalanceInProgress)
    );
    assert_eq!(
        h.commit(9, G2, "stale", 1, Some("s1"), &[("t", 0, 5, None)])[0].2,
        code(ErrorCode::FencedInstanceId)
    );
}

const G2: &str = "static-group";

#[test]
fn offset_delete_rules() {
    let mut h = H::new();
    let del = delete(&mut h, "missing", "t", &[0]);
    assert_eq!(del.error_code, code(ErrorCode::GroupIdNotFound));
    h.commit(
        9,
        "s",
        "",
        -1,
        None,
        &[("t", 0, 1, None), ("u", 0, 1, None)],
    );
    let del = delete(&mut h, "s", "t", &[0, 1]);
    assert_eq!(del.error_code, NONE);
    assert!(
        matches!(h.log.last().unwrap().key, RecordKey::OffsetCommit { ref topic, .. } if topic == "t")
    );
    assert_eq!(h.fetch("s", None), vec![("u".into(), 0, 1, 3, "".into())]);

    // A stable consumer group subscribed to "t".
    let m = stable_group(&mut h, "cg");
    h.commit(
        9,
        "cg",
        &m,
        1,
        None,
        &[("t", 0, 5, None), ("old", 0, 5, None)],
    );
    let del = delete(&mut h, "cg", "t", &[0]);
    assert_eq!(
        del.topics[0].partitions[0].error_code,
        code(ErrorCode::GroupSubscribedToTopic)
    );
    let del = delete(&mut h, "cg", "old", &[0]);
    assert_eq!(del.topics[0].partitions[0].error_code, NONE);
    assert_eq!(h.fetch("cg", None).len(), 1);

    // A non-consumer protocol group with members cannot have offsets deleted.
    let req = H::join_request("connect", "", None, &[("default", subscription(&[]))]);
    let mut req = req;
    req.protocol_type = sb("connect");
    req.member_id = sb("");
    let t = h.join_with(3, req);
    h.advance(3000);
    assert!(h.join_response(t).is_some());
    let del = delete(&mut h, "connect", "t", &[0]);
    assert_eq!(del.error_code, code(ErrorCode::NonEmptyGroup));
}

#[test]
fn offsets_of_empty_groups_expire_and_the_group_goes() {
    let mut h = H::new();
    h.commit(9, "simple", "", -1, None, &[("t", 0, 1, None)]);
    let retention = h.shard.config().offsets_retention_ms;
    let check = h.shard.config().offsets_retention_check_interval_ms;
    // Not yet.
    while h.now + check < 1_000_000 + retention {
        h.advance(check);
    }
    assert_eq!(h.fetch("simple", None).len(), 1);
    h.advance(check);
    assert!(h.fetch("simple", None).is_empty());
    assert!(h.shard.list_groups(5, &[], &[]).is_empty());
    let tail: Vec<_> = h.log.iter().rev().take(2).collect();
    assert!(
        tail.iter().all(|r| r.value.is_none()),
        "offset and group tombstones"
    );
    // A stable group keeps the offsets of topics it consumes.
    let m = stable_group(&mut h, "cg");
    h.commit(
        9,
        "cg",
        &m,
        1,
        None,
        &[("t", 0, 5, None), ("gone", 0, 5, None)],
    );
    for _ in 0..(retention / check + 2) {
        h.now += check;
        assert_eq!(h.heartbeat("cg", &m, None, 1), 0);
        let out = h.shard.on_timer(h.now);
        h.apply(out);
    }
    assert_eq!(h.fetch("cg", None), vec![("t".into(), 0, 5, 3, "".into())]);
}

#[test]
fn delete_groups_and_list_describe_filters() {
    let mut h = H::new();
    let m = stable_group(&mut h, "busy");
    h.commit(
        9,
        "idle",
        "",
        -1,
        None,
        &[("t", 0, 1, None), ("t", 1, 1, None)],
    );
    let t = h.token(ApiKey::DeleteGroups, 2);
    let out = h
        .shard
        .delete_groups(h.now, t, 2, &["busy".into(), "idle".into(), "ghost".into()]);
    assert_eq!(out.records.len(), 3, "two offsets and the group");
    h.apply(out);
    let ShardResponse::DeleteGroups(results) = &h.delivered[&t] else {
        panic!()
    };
    let codes: Vec<i16> = results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            code(ErrorCode::NonEmptyGroup),
            NONE,
            code(ErrorCode::GroupIdNotFound)
        ]
    );
    assert!(h.fetch("idle", None).is_empty());

    h.commit(9, "other", "", -1, None, &[("t", 0, 1, None)]);
    let names = |h: &H, states: &[&str], types: &[&str]| -> Vec<String> {
        let states: Vec<String> = states.iter().map(|s| s.to_string()).collect();
        let types: Vec<String> = types.iter().map(|s| s.to_string()).collect();
        h.shard
            .list_groups(5, &states, &types)
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect()
    };
    assert_eq!(names(&h, &[], &[]), vec!["busy", "other"]);
    assert_eq!(names(&h, &["stable"], &[]), vec!["busy"]);
    assert_eq!(names(&h, &["Empty"], &["classic"]), vec!["other"]);
    assert!(names(&h, &[], &["consumer"]).is_empty());
    // v3 carries no state.
    assert_eq!(h.shard.list_groups(3, &[], &[])[0].group_state.as_str(), "");

    let d = h.shard.describe_group(5, "busy");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members[0].member_id.as_str(), m);
    assert_eq!(&d.members[0].member_assignment[..], b"x");
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    let d = h.shard.describe_group(5, "ghost");
    assert_eq!((d.group_state.as_str(), d.error_code), ("Dead", NONE));
    let d = h.shard.describe_group(6, "ghost");
    assert_eq!(d.error_code, code(ErrorCode::GroupIdNotFound));
}
