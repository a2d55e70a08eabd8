//! Classic group protocol scenarios: JoinGroup / SyncGroup / Heartbeat / LeaveGroup.

mod common;

use common::*;
use strom_coordinator::{GroupConfig, RecordKey, RecordValue};
use strom_protocol::ErrorCode;

const G: &str = "g";

fn describe_state(h: &H, group: &str) -> String {
    h.shard.describe_group(5, group).group_state.to_string()
}

/// One member: MEMBER_ID_REQUIRED, the initial delay, sync, heartbeat, leave.
#[test]
fn single_member_lifecycle() {
    let mut h = H::new();
    let (t, m) = h.join_new(G);
    // The new group is written right away (empty) so it survives a failover.
    assert!(matches!(&h.log[0].value, Some(RecordValue::GroupMetadata(v)) if v.members.is_empty()));
    // Parked behind group.initial.rebalance.delay.ms.
    assert!(h.join_response(t).is_none());
    assert_eq!(h.shard.next_deadline(), Some(h.now + 3000));
    h.advance(2999);
    assert!(h.join_response(t).is_none());
    h.advance(1);
    let r = h.join_response(t).unwrap();
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader.as_str(), m);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(describe_state(&h, G), "CompletingRebalance");

    let s = h.sync(G, &m, 1, &[(&m, b"A")]);
    let r = h.sync_response(s).unwrap();
    assert_eq!(r.error_code, 0);
    assert_eq!(&r.assignment[..], b"A");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(describe_state(&h, G), "Stable");
    let Some(RecordValue::GroupMetadata(v)) = &h.log.last().unwrap().value else {
        panic!()
    };
    assert_eq!(v.generation, 1);
    assert_eq!(&v.members[0].assignment[..], b"A");

    assert_eq!(h.heartbeat(G, &m, None, 1), 0);
    assert_eq!(
        h.heartbeat(G, &m, None, 2),
        code(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        h.heartbeat(G, "nobody", None, 1),
        code(ErrorCode::UnknownMemberId)
    );

    let r = h.leave(5, G, &[(&m, None)]);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(describe_state(&h, G), "Empty");
    let Some(RecordValue::GroupMetadata(v)) = &h.log.last().unwrap().value else {
        panic!()
    };
    assert_eq!(v.generation, 2);
    assert!(v.members.is_empty());
    // A departed member is unknown, and v0-2 report that at top level.
    let r = h.leave(1, G, &[(&m, None)]);
    assert_eq!(r.error_code, code(ErrorCode::UnknownMemberId));
}

#[test]
fn initial_delay_is_extended_while_members_arrive() {
    let mut h = H::new();
    // v3: no member id round trip.
    let req = H::join_request(G, "", None, &[("range", subscription(&["t"]))]);
    let a = h.join_with(3, req.clone());
    h.advance(2000);
    let b = h.join_with(3, req);
    h.advance(1000); // first delay over, but a member arrived: wait again
    assert!(h.join_response(a).is_none());
    h.advance(2999);
    assert!(h.join_response(a).is_none());
    h.advance(1);
    let (ra, rb) = (h.join_response(a).unwrap(), h.join_response(b).unwrap());
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    // The first joiner leads and gets the members; v3 has no protocol type.
    assert_eq!(ra.leader, ra.member_id);
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty());
    assert_eq!(ra.protocol_type, None);
}

fn stable_two(h: &mut H) -> (String, String) {
    let (ta, a) = h.join_new(G);
    let (tb, b) = h.join_new(G);
    // b arrived during the initial delay, which is extended once.
    h.advance(3000);
    assert!(h.join_response(ta).is_none());
    h.advance(3000);
    assert_eq!(h.join_response(ta).unwrap().generation_id, 1);
    assert_eq!(h.join_response(tb).unwrap().generation_id, 1);
    // The follower's sync waits for the leader's.
    let sb_ = h.sync(G, &b, 1, &[]);
    assert!(h.sync_response(sb_).is_none());
    let sa = h.sync(G, &a, 1, &[(&a, b"a1"), (&b, b"b1")]);
    assert_eq!(&h.sync_response(sa).unwrap().assignment[..], b"a1");
    assert_eq!(&h.sync_response(sb_).unwrap().assignment[..], b"b1");
    (a, b)
}

#[test]
fn third_member_triggers_rebalance_and_everyone_rejoins() {
    let mut h = H::new();
    let (a, b) = stable_two(&mut h);
    let (tc, c) = h.join_new(G);
    assert_eq!(describe_state(&h, G), "PreparingRebalance");
    assert_eq!(
        h.heartbeat(G, &a, None, 1),
        code(ErrorCode::RebalanceInProgress)
    );
    // Sync during the join phase is refused.
    let s = h.sync(G, &b, 1, &[]);
    assert_eq!(
        h.sync_response(s).unwrap().error_code,
        code(ErrorCode::RebalanceInProgress)
    );
    let ta = h.join(G, &a, None);
    assert!(h.join_response(tc).is_none());
    let tb = h.join(G, &b, None);
    // Everyone is back: the join completes at once (no initial delay outside Empty).
    for t in [ta, tb, tc] {
        let r = h.join_response(t).unwrap();
        assert_eq!(r.generation_id, 2);
        assert_eq!(r.leader.as_str(), a);
    }
    assert_eq!(h.join_response(ta).unwrap().members.len(), 3);
    let _ = c;
}

#[test]
fn session_expiry_removes_member_and_rebalances() {
    let mut h = H::new();
    let (a, b) = stable_two(&mut h);
    for _ in 0..2 {
        h.advance(4000);
        assert_eq!(h.heartbeat(G, &a, None, 1), 0);
    }
    // b never heartbeat: its 10s session is over.
    h.advance(4000);
    assert_eq!(describe_state(&h, G), "PreparingRebalance");
    assert_eq!(
        h.heartbeat(G, &b, None, 1),
        code(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat(G, &a, None, 1),
        code(ErrorCode::RebalanceInProgress)
    );
    let t = h.join(G, &a, None);
    let r = h.join_response(t).unwrap();
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut h = H::new();
    let (a, b) = stable_two(&mut h);
    // The leader rejoining forces a rebalance.
    let t = h.join(G, &a, None);
    assert!(h.join_response(t).is_none());
    // b keeps heartbeating but never rejoins.
    for _ in 0..5 {
        h.advance(5000);
        assert_eq!(
            h.heartbeat(G, &b, None, 1),
            code(ErrorCode::RebalanceInProgress)
        );
    }
    assert!(h.join_response(t).is_none());
    h.advance(5000); // 30s rebalance timeout
    let r = h.join_response(t).unwrap();
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        h.heartbeat(G, &b, None, 2),
        code(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn static_member_replacement_keeps_assignment_and_fences_old_id() {
    let mut h = H::new();
    let t = h.join(G, "", Some("i1"));
    h.advance(3000);
    let r = h.join_response(t).unwrap();
    let old = r.member_id.to_string();
    assert!(old.starts_with("i1-"));
    let s = h.sync_v(5, G, &old, Some("i1"), 1, &[(&old, b"mine")]);
    assert_eq!(h.sync_response(s).unwrap().error_code, 0);
    let records = h.log.len();

    // The same instance restarts: new member id, same generation, no rebalance.
    let t = h.join(G, "", Some("i1"));
    let r = h.join_response(t).unwrap();
    let new = r.member_id.to_string();
    assert_ne!(new, old);
    assert_eq!(r.generation_id, 1);
    assert!(r.skip_assignment, "a v9 static leader skips the assignment");
    assert_eq!(describe_state(&h, G), "Stable");
    assert_eq!(h.log.len(), records + 1, "the new member id is persisted");

    assert_eq!(
        h.heartbeat(G, &old, Some("i1"), 1),
        code(ErrorCode::FencedInstanceId)
    );
    assert_eq!(h.heartbeat(G, &new, Some("i1"), 1), 0);
    let s = h.sync_v(5, G, &new, Some("i1"), 1, &[]);
    assert_eq!(&h.sync_response(s).unwrap().assignment[..], b"mine");
    let s = h.sync_v(5, G, &old, Some("i1"), 1, &[]);
    assert_eq!(
        h.sync_response(s).unwrap().error_code,
        code(ErrorCode::FencedInstanceId)
    );
    // Leave by instance id (admin style) removes the static member.
    let r = h.leave(5, G, &[("", Some("i1"))]);
    assert_eq!(r.members[0].error_code, 0);
    assert_eq!(describe_state(&h, G), "Empty");
}

/// Cooperative rebalancing is two join/sync rounds; the coordinator carries the assignment
/// bytes untouched through both.
#[test]
fn cooperative_two_phase_rebalance() {
    let mut h = H::new();
    let coop = |h: &mut H, member: &str| {
        let req = H::join_request(
            G,
            member,
            None,
            &[("cooperative-sticky", subscription(&["t"]))],
        );
        h.join_with(9, req)
    };
    let ta = coop(&mut h, "");
    let a = h.join_response(ta).unwrap().member_id.to_string();
    let ta = coop(&mut h, &a);
    h.advance(3000);
    assert_eq!(
        h.join_response(ta).unwrap().protocol_name.as_deref(),
        Some("cooperative-sticky")
    );
    let sa = h.sync_v(3, G, &a, None, 1, &[(&a, b"p0 p1")]);
    assert_eq!(&h.sync_response(sa).unwrap().assignment[..], b"p0 p1");
    // b arrives: round 1, a keeps p0 and revokes p1.
    let tb = coop(&mut h, "");
    let b = h.join_response(tb).unwrap().member_id.to_string();
    let tb = coop(&mut h, &b);
    assert_eq!(
        h.heartbeat(G, &a, None, 1),
        code(ErrorCode::RebalanceInProgress)
    );
    let ta = coop(&mut h, &a);
    assert_eq!(h.join_response(tb).unwrap().generation_id, 2);
    assert_eq!(h.join_response(ta).unwrap().generation_id, 2);
    let sb_ = h.sync_v(3, G, &b, None, 2, &[]);
    let sa = h.sync_v(3, G, &a, None, 2, &[(&a, b"p0"), (&b, b"")]);
    assert_eq!(&h.sync_response(sa).unwrap().assignment[..], b"p0");
    assert_eq!(&h.sync_response(sb_).unwrap().assignment[..], b"");
    // Round 2: a revoked, rejoins at once; b gets p1.
    let ta = coop(&mut h, &a);
    assert_eq!(
        h.heartbeat(G, &b, None, 2),
        code(ErrorCode::RebalanceInProgress)
    );
    let tb = coop(&mut h, &b);
    assert_eq!(h.join_response(ta).unwrap().generation_id, 3);
    assert_eq!(h.join_response(tb).unwrap().generation_id, 3);
    let sa = h.sync_v(3, G, &a, None, 3, &[(&a, b"p0"), (&b, b"p1")]);
    let sb_ = h.sync_v(3, G, &b, None, 3, &[]);
    assert_eq!(&h.sync_response(sa).unwrap().assignment[..], b"p0");
    assert_eq!(&h.sync_response(sb_).unwrap().assignment[..], b"p1");
    // A stale generation is refused.
    let s = h.sync_v(3, G, &b, None, 2, &[]);
    assert_eq!(
        h.sync_response(s).unwrap().error_code,
        code(ErrorCode::IllegalGeneration)
    );
}

#[test]
fn join_validation_errors() {
    let mut h = H::with(GroupConfig {
        max_size: 1,
        ..GroupConfig::default()
    });
    let mut req = H::join_request(G, "", None, &[("range", subscription(&["t"]))]);
    req.session_timeout_ms = 1000;
    let t = h.join_with(9, req);
    assert_eq!(
        h.join_response(t).unwrap().error_code,
        code(ErrorCode::InvalidSessionTimeout)
    );
    let req = H::join_request("", "", None, &[("range", subscription(&["t"]))]);
    let t = h.join_with(9, req);
    assert_eq!(
        h.join_response(t).unwrap().error_code,
        code(ErrorCode::InvalidGroupId)
    );
    // Unknown member id for a group that does not exist.
    let t = h.join(G, "ghost", None);
    assert_eq!(
        h.join_response(t).unwrap().error_code,
        code(ErrorCode::UnknownMemberId)
    );

    let (t, a) = h.join_new(G);
    h.advance(3000);
    assert_eq!(h.join_response(t).unwrap().generation_id, 1);
    // group.max.size = 1: a second member is refused (before any member id is handed out).
    let t = h.join(G, "", None);
    assert_eq!(
        h.join_response(t).unwrap().error_code,
        code(ErrorCode::GroupMaxSizeReached)
    );
    // Another protocol than the group's is inconsistent.
    let req = H::join_request(G, &a, None, &[("roundrobin", subscription(&["t"]))]);
    let t = h.join_with(9, req);
    assert_eq!(
        h.join_response(t).unwrap().error_code,
        code(ErrorCode::InconsistentGroupProtocol)
    );
    // Old versions get a non-null protocol name on errors.
    let mut req = H::join_request(G, "", None, &[("range", subscription(&["t"]))]);
    req.session_timeout_ms = 1;
    let t = h.join_with(2, req);
    assert_eq!(
        h.join_response(t).unwrap().protocol_name.as_deref(),
        Some("")
    );
}

#[test]
fn sync_validation_errors() {
    let mut h = H::new();
    let (t, a) = h.join_new(G);
    h.advance(3000);
    assert!(h.join_response(t).is_some());
    let s = h.sync(G, "ghost", 1, &[]);
    assert_eq!(
        h.sync_response(s).unwrap().error_code,
        code(ErrorCode::UnknownMemberId)
    );
    let s = h.sync(G, &a, 7, &[]);
    assert_eq!(
        h.sync_response(s).unwrap().error_code,
        code(ErrorCode::IllegalGeneration)
    );
    let s = h.sync_v(5, "other", &a, None, 1, &[]);
    assert_eq!(
        h.sync_response(s).unwrap().error_code,
        code(ErrorCode::UnknownMemberId)
    );
    // v5 checks the protocol name.
    let t = h.token(strom_protocol::messages::ApiKey::SyncGroup, 5);
    let req = strom_protocol::messages::SyncGroupRequest::default()
        .with_group_id(gid(G))
        .with_generation_id(1)
        .with_member_id(sb(&a))
        .with_protocol_type(Some(sb("consumer")))
        .with_protocol_name(Some(sb("roundrobin")));
    let out = h.shard.sync_group(h.now, t, 5, req, H::client("c"));
    h.apply(out);
    assert_eq!(
        h.sync_response(t).unwrap().error_code,
        code(ErrorCode::InconsistentGroupProtocol)
    );
}

#[test]
fn pending_member_that_never_rejoins_expires() {
    let mut h = H::new();
    let (t, _a) = h.join_new(G);
    // A second member gets an id but never comes back.
    let t2 = h.join(G, "", None);
    assert_eq!(
        h.join_response(t2).unwrap().error_code,
        code(ErrorCode::MemberIdRequired)
    );
    let pending = h.join_response(t2).unwrap().member_id.to_string();
    // The initial delay ends the join phase without the pending member (as in Kafka).
    h.advance(3000);
    let r = h.join_response(t).unwrap();
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.members.len(), 1);
    assert!(matches!(h.log[0].key, RecordKey::GroupMetadata { .. }));
    // Its session ends: the id it was given is no longer good.
    h.advance(7000);
    let t3 = h.join(G, &pending, None);
    assert_eq!(
        h.join_response(t3).unwrap().error_code,
        code(ErrorCode::UnknownMemberId)
    );
}
