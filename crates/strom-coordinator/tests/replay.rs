//! Replaying what a shard wrote into a fresh shard gives the same observable state, over random
//! request sequences: offsets, KIP-848 groups, and classic groups at rest (Stable or Empty; an
//! in-flight classic rebalance is not persisted, in Kafka either).

mod common;

use common::*;
use proptest::prelude::*;
use strom_coordinator::GroupCoordinatorShard;

#[derive(Debug, Clone)]
enum Op {
    Join(usize, usize),
    Sync(usize, usize),
    Beat(usize, usize),
    Leave(usize, usize),
    Commit(usize, usize, i32),
    DeleteGroup(usize),
    CgJoin(usize),
    CgBeat(usize),
    CgLeave(usize),
    Topics(i32),
    Advance(i64),
}

const CLASSIC: [&str; 2] = ["c0", "c1"];
const ALL: [&str; 4] = ["c0", "c1", "simple", "cg"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 0..3usize).prop_map(|(g, m)| Op::Join(g, m)),
        (0..2usize, 0..3usize).prop_map(|(g, m)| Op::Sync(g, m)),
        (0..2usize, 0..3usize).prop_map(|(g, m)| Op::Beat(g, m)),
        (0..2usize, 0..3usize).prop_map(|(g, m)| Op::Leave(g, m)),
        (0..4usize, 0..2usize, 0..3i32).prop_map(|(g, t, p)| Op::Commit(g, t, p)),
        (0..4usize).prop_map(Op::DeleteGroup),
        (0..3usize).prop_map(Op::CgJoin),
        (0..3usize).prop_map(Op::CgBeat),
        (0..3usize).prop_map(Op::CgLeave),
        (2..5i32).prop_map(Op::Topics),
        prop_oneof![Just(1000i64), Just(3000), Just(11_000), Just(50_000)].prop_map(Op::Advance),
    ]
}

/// A KIP-848 member's epoch and owned partitions, as the client tracks them.
type CgSlot = Option<(i32, Vec<(uuid::Uuid, Vec<i32>)>)>;

#[derive(Default)]
struct Slots {
    classic: [[Option<(String, i32)>; 3]; 2],
    cg: [CgSlot; 3],
}

fn observe(
    shard: &GroupCoordinatorShard,
    live: &GroupCoordinatorShard,
    tv: &strom_coordinator::TopicsView,
) -> Vec<String> {
    let mut seen = Vec::new();
    for g in ALL {
        seen.push(format!("{g} offsets {:?}", fetch_from(shard, g, None)));
    }
    seen.push(format!(
        "cg {:?}",
        shard.consumer_group_describe(1, "cg", tv)
    ));
    for g in CLASSIC {
        let state = live.describe_group(5, g).group_state.to_string();
        if state == "Stable" || state == "Empty" || state == "Dead" {
            seen.push(format!("{g} {:?}", shard.describe_group(5, g)));
        }
    }
    seen
}

fn run(ops: Vec<Op>) {
    let mut h = H::new();
    let mut s = Slots::default();
    let mut tv = topics(&[("t0", 2), ("t1", 2)]);
    for op in ops {
        match op {
            Op::Join(g, m) => {
                let id = s.classic[g][m]
                    .as_ref()
                    .map_or(String::new(), |(id, _)| id.clone());
                let t = h.join(CLASSIC[g], &id, None);
                if let Some(r) = h.join_response(t)
                    && !r.member_id.is_empty()
                {
                    s.classic[g][m] = Some((r.member_id.to_string(), r.generation_id));
                }
            }
            Op::Sync(g, m) | Op::Beat(g, m) | Op::Leave(g, m) => {
                let Some((id, _)) = s.classic[g][m].clone() else {
                    continue;
                };
                // The generation as the shard describes it.
                let generation = if h
                    .shard
                    .list_groups(5, &[], &[])
                    .iter()
                    .any(|l| l.group_id.0.as_str() == CLASSIC[g])
                {
                    s.classic[g][m].as_ref().map_or(0, |x| x.1)
                } else {
                    0
                };
                match op {
                    Op::Sync(..) => {
                        let all: Vec<String> =
                            s.classic[g].iter().flatten().map(|x| x.0.clone()).collect();
                        let assignment: Vec<(&str, &[u8])> =
                            all.iter().map(|x| (x.as_str(), b"a".as_slice())).collect();
                        // Try every recent generation: the leader's sync with the right one
                        // completes the rebalance.
                        for gen_ in [generation, generation + 1, generation + 2] {
                            h.sync(CLASSIC[g], &id, gen_, &assignment);
                        }
                    }
                    Op::Beat(..) => {
                        h.heartbeat(CLASSIC[g], &id, None, generation);
                    }
                    _ => {
                        h.leave(5, CLASSIC[g], &[(&id, None)]);
                        s.classic[g][m] = None;
                    }
                }
            }
            Op::Commit(g, t, p) => {
                let topic = ["t0", "t1"][t];
                if g == 2 || g == 3 {
                    h.commit(
                        9,
                        ALL[g],
                        "",
                        -1,
                        None,
                        &[(topic, p, 10 + i64::from(p), Some("m"))],
                    );
                } else if let Some((id, gen_)) = s.classic[g].iter().flatten().next().cloned() {
                    h.commit(9, ALL[g], &id, gen_, None, &[(topic, p, 5, None)]);
                }
            }
            Op::DeleteGroup(g) => {
                let t = h.token(strom_protocol::messages::ApiKey::DeleteGroups, 2);
                let out = h.shard.delete_groups(h.now, t, 2, &[ALL[g].to_string()]);
                h.apply(out);
            }
            Op::CgJoin(m) => {
                let r = h.cg_heartbeat(cg_join("cg", &format!("m{m}"), &["t0", "t1"]), &tv);
                if r.error_code == 0 {
                    s.cg[m] = Some((r.member_epoch, assigned(&r).unwrap_or_default()));
                }
            }
            Op::CgBeat(m) => {
                let Some((epoch, owned)) = s.cg[m].clone() else {
                    continue;
                };
                let r = h.cg_heartbeat(cg_beat("cg", &format!("m{m}"), epoch, &owned), &tv);
                if r.error_code == 0 {
                    let owned = assigned(&r).unwrap_or(owned);
                    s.cg[m] = Some((r.member_epoch, owned));
                } else {
                    s.cg[m] = None;
                }
            }
            Op::CgLeave(m) => {
                if s.cg[m].take().is_some() {
                    h.cg_heartbeat(cg_beat("cg", &format!("m{m}"), -1, &[]), &tv);
                }
            }
            Op::Topics(n) => {
                tv = topics(&[("t0", n), ("t1", 2)]);
                let out = h.shard.on_topics_changed(h.now, &tv);
                h.apply(out);
            }
            Op::Advance(ms) => {
                h.advance(ms);
            }
        }
    }
    let replayed = h.replayed();
    assert_eq!(
        observe(&replayed, &h.shard, &tv),
        observe(&h.shard, &h.shard, &tv)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn replay_gives_the_same_state(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
