//! KIP-848 consumer groups: epochs, incremental reconciliation, regex subscriptions, topic
//! changes, session expiry, validation errors.

mod common;

use common::*;
use strom_coordinator::{GroupConfig, RecordKey};
use strom_protocol::ErrorCode;

const G: &str = "cg";

#[test]
fn epochs_through_join_revocation_and_stable() {
    let mut h = H::new();
    let tv = topics(&[("t", 3)]);
    let t = topic_id("t");
    // First member: everything, epoch 1.
    let r = h.cg_heartbeat(cg_join(G, "m1", &["t"]), &tv);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5000);
    assert_eq!(assigned(&r), Some(vec![(t, vec![0, 1, 2])]));
    assert_eq!(
        h.shard
            .consumer_group_describe(1, G, &tv)
            .group_state
            .as_str(),
        "Stable"
    );

    // Second member: the group moves to epoch 2, but m1 still owns what m2 should get.
    let r2 = h.cg_heartbeat(cg_join(G, "m2", &["t"]), &tv);
    assert_eq!(r2.member_epoch, 2);
    assert_eq!(assigned(&r2), Some(vec![]));
    let d = h.shard.consumer_group_describe(1, G, &tv);
    assert_eq!((d.group_epoch, d.assignment_epoch), (2, 2));
    assert_eq!(d.group_state.as_str(), "Reconciling");
    // m1 must revoke first, staying at epoch 1.
    let r = h.cg_heartbeat(cg_beat(G, "m1", 1, &[(t, vec![0, 1, 2])]), &tv);
    assert_eq!(r.member_epoch, 1);
    let kept = assigned(&r).unwrap();
    let kept_count = kept[0].1.len();
    assert!(kept_count < 3);
    // Still owning the revoked partition: no progress.
    let r = h.cg_heartbeat(cg_beat(G, "m1", 1, &[(t, vec![0, 1, 2])]), &tv);
    assert_eq!(r.member_epoch, 1);
    // Revoked: m1 moves to epoch 2.
    let r = h.cg_heartbeat(cg_beat(G, "m1", 1, &kept), &tv);
    assert_eq!(r.member_epoch, 2);
    // m2 gets the released partitions.
    let r2 = h.cg_heartbeat(cg_beat(G, "m2", 2, &[]), &tv);
    let got = assigned(&r2).unwrap();
    assert_eq!(got[0].1.len() + kept_count, 3);
    let d = h.shard.consumer_group_describe(1, G, &tv);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.members[0].member_type, 1);
    assert_eq!(
        d.members[0].assignment.topic_partitions[0]
            .topic_name
            .0
            .as_str(),
        "t"
    );

    // A third member, then m2 leaves.
    let r3 = h.cg_heartbeat(cg_join(G, "m3", &["t"]), &tv);
    assert_eq!(r3.member_epoch, 3);
    let r = h.cg_heartbeat(cg_beat(G, "m2", -1, &[]).with_member_epoch(-1), &tv);
    assert_eq!(r.member_epoch, -1);
    assert_eq!(h.shard.consumer_group_describe(1, G, &tv).group_epoch, 4);
    // The departed member is unknown.
    let r = h.cg_heartbeat(cg_beat(G, "m2", 2, &[]), &tv);
    assert_eq!(r.error_code, code(ErrorCode::UnknownMemberId));
    // An epoch from the future is fenced.
    let r = h.cg_heartbeat(cg_beat(G, "m1", 9, &[]), &tv);
    assert_eq!(r.error_code, code(ErrorCode::FencedMemberEpoch));
}

#[test]
fn regex_subscription_picks_up_new_topics() {
    let mut h = H::new();
    let tv = topics(&[("foo1", 2), ("bar", 1)]);
    let req = cg_join(G, "m1", &[])
        .with_subscribed_topic_names(None)
        .with_subscribed_topic_regex(Some(sb("foo.*")));
    let r = h.cg_heartbeat(req, &tv);
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(assigned(&r), Some(vec![(topic_id("foo1"), vec![0, 1])]));
    assert!(h.log.iter().any(|r| matches!(&r.key, RecordKey::ConsumerGroupRegularExpression { regex, .. } if regex == "foo.*")));

    let tv2 = topics(&[("foo1", 2), ("bar", 1), ("foo2", 1), ("__foo_internal", 1)]);
    let out = h.shard.on_topics_changed(h.now, &tv2);
    assert!(!out.records.is_empty());
    h.apply(out);
    assert_eq!(h.shard.consumer_group_describe(1, G, &tv2).group_epoch, 2);
    let r = h.cg_heartbeat(cg_beat(G, "m1", 1, &[(topic_id("foo1"), vec![0, 1])]), &tv2);
    assert_eq!(r.member_epoch, 2);
    let mut want = vec![(topic_id("foo1"), vec![0, 1]), (topic_id("foo2"), vec![0])];
    want.sort();
    assert_eq!(assigned(&r), Some(want));
    // Nothing changed: no new epoch.
    let out = h.shard.on_topics_changed(h.now, &tv2);
    assert!(out.records.is_empty());
}

#[test]
fn partitions_added_trigger_a_new_assignment() {
    let mut h = H::new();
    let r = h.cg_heartbeat(cg_join(G, "m1", &["t"]), &topics(&[("t", 2)]));
    assert_eq!(assigned(&r), Some(vec![(topic_id("t"), vec![0, 1])]));
    let tv = topics(&[("t", 4)]);
    let out = h.shard.on_topics_changed(h.now, &tv);
    h.apply(out);
    let r = h.cg_heartbeat(cg_beat(G, "m1", 1, &[(topic_id("t"), vec![0, 1])]), &tv);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(assigned(&r), Some(vec![(topic_id("t"), vec![0, 1, 2, 3])]));
}

#[test]
fn session_expiry_fences_the_member() {
    let mut h = H::new();
    let tv = topics(&[("t", 2)]);
    h.cg_heartbeat(cg_join(G, "m1", &["t"]), &tv);
    h.cg_heartbeat(cg_join(G, "m2", &["t"]), &tv);
    let before = h.shard.consumer_group_describe(1, G, &tv).group_epoch;
    h.advance(40_000);
    h.cg_heartbeat(cg_beat(G, "m1", 1, &[(topic_id("t"), vec![0, 1])]), &tv);
    h.advance(6_000); // m2's 45s session is over, m1's is not
    let d = h.shard.consumer_group_describe(1, G, &tv);
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.group_epoch, before + 1);
    let r = h.cg_heartbeat(cg_beat(G, "m2", 2, &[]), &tv);
    assert_eq!(r.error_code, code(ErrorCode::UnknownMemberId));
    // Rejoining with epoch 0 makes it a member again.
    let r = h.cg_heartbeat(cg_join(G, "m2", &["t"]), &tv);
    assert_eq!(r.error_code, 0);
    assert!(r.member_epoch > before);
}

#[test]
fn static_member_leaves_and_comes_back_without_rebalance() {
    let mut h = H::new();
    let tv = topics(&[("t", 2)]);
    let r = h.cg_heartbeat(
        cg_join(G, "m1", &["t"]).with_instance_id(Some(sb("i1"))),
        &tv,
    );
    assert_eq!(r.member_epoch, 1);
    let r = h.cg_heartbeat(
        cg_beat(G, "m1", -2, &[]).with_instance_id(Some(sb("i1"))),
        &tv,
    );
    assert_eq!(r.member_epoch, -2);
    // Another id while the instance is held: refused until it left; now it left, so the new
    // id takes over its partitions at the same group epoch.
    let r = h.cg_heartbeat(
        cg_join(G, "m1b", &["t"]).with_instance_id(Some(sb("i1"))),
        &tv,
    );
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(assigned(&r), Some(vec![(topic_id("t"), vec![0, 1])]));
    let r = h.cg_heartbeat(
        cg_join(G, "m1c", &["t"]).with_instance_id(Some(sb("i1"))),
        &tv,
    );
    assert_eq!(r.error_code, code(ErrorCode::UnreleasedInstanceId));
}

#[test]
fn heartbeat_validation_errors() {
    let mut h = H::with(GroupConfig {
        consumer_max_size: 1,
        ..GroupConfig::default()
    });
    let tv = topics(&[("t", 1)]);
    let err = |h: &mut H, req| h.cg_heartbeat(req, &tv).error_code;
    assert_eq!(
        err(&mut h, cg_join("", "m", &["t"])),
        code(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        err(&mut h, cg_join(G, "", &["t"])),
        code(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        err(
            &mut h,
            cg_join(G, "m", &["t"]).with_rebalance_timeout_ms(-1)
        ),
        code(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        err(&mut h, cg_join(G, "m", &["t"]).with_member_epoch(-3)),
        code(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        err(
            &mut h,
            cg_join(G, "m", &["t"]).with_server_assignor(Some(sb("sticky")))
        ),
        code(ErrorCode::UnsupportedAssignor)
    );
    assert_eq!(
        err(
            &mut h,
            cg_join(G, "m", &[]).with_subscribed_topic_regex(Some(sb("(")))
        ),
        code(ErrorCode::InvalidRegularExpression)
    );
    assert_eq!(
        err(&mut h, cg_beat(G, "m", 1, &[])),
        code(ErrorCode::GroupIdNotFound)
    );
    assert_eq!(
        err(
            &mut h,
            cg_join(G, "m", &["t"]).with_server_assignor(Some(sb("range")))
        ),
        0
    );
    assert_eq!(
        err(&mut h, cg_join(G, "m2", &["t"])),
        code(ErrorCode::GroupMaxSizeReached)
    );
    assert_eq!(
        h.shard
            .consumer_group_describe(0, G, &tv)
            .assignor_name
            .as_str(),
        "range"
    );
    // Classic APIs on a consumer group, and the other way round.
    let t = h.join(G, "", None);
    assert_eq!(
        h.join_response(t).unwrap().error_code,
        code(ErrorCode::InconsistentGroupProtocol)
    );
    let (tc, _) = h.join_new("classic");
    h.advance(3000);
    assert!(h.join_response(tc).is_some());
    assert_eq!(
        err(&mut h, cg_join("classic", "x", &["t"])),
        code(ErrorCode::GroupIdNotFound)
    );
    let d = h.shard.consumer_group_describe(0, "classic", &tv);
    assert_eq!(d.error_code, code(ErrorCode::GroupIdNotFound));
    // Offset commits of KIP-848 members need v9 and the current epoch.
    assert_eq!(h.commit(9, G, "m", 1, None, &[("t", 0, 1, None)])[0].2, 0);
    assert_eq!(
        h.commit(9, G, "m", 0, None, &[("t", 0, 1, None)])[0].2,
        code(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(
        h.commit(8, G, "m", 1, None, &[("t", 0, 1, None)])[0].2,
        code(ErrorCode::UnsupportedVersion)
    );
}
