"""Consumer groups through `subscribe()`: classic groups (FindCoordinator, JoinGroup, SyncGroup,
Heartbeat, LeaveGroup) with confluent-kafka's range / roundrobin / cooperative-sticky and
kafka-python's range / roundrobin / sticky assignors, and KIP-848 groups
(ConsumerGroupHeartbeat) through librdkafka's `group.protocol=consumer`; commits
(OffsetCommit / OffsetFetch), auto commit, `auto.offset.reset` of a new group, several groups
on one topic. Members run as in `group_support.py`."""

import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

from group_support import (MAIN_VARIANTS, SESSION_TIMEOUT_MS, VARIANTS, Member, MemberProcess,
                           close_all, wait_balanced, wait_records)
from support import create_topic, produce_spread, wait_until

# One per client and protocol, for the tests where the assignor does not matter.
PROTOCOL_VARIANTS = ["confluent-range", "confluent-consumer", "kafka-python-range"]


@pytest.fixture
def join():
    """join(variant, bootstrap, group, topics, **conf) -> a started Member; all are closed at
    the end of the test."""
    made = []

    def make(variant, bootstrap, group, topics, **conf):
        m = Member(variant, bootstrap, group, topics, name=f"{variant}#{len(made)}", **conf)
        made.append(m)
        return m

    yield make
    close_all(made)


def parts(topic, n):
    return frozenset((topic, p) for p in range(n))


def committed_offsets(bootstrap, group, timeout=30):
    """The group's committed offsets as {(topic, partition): offset}, seen by an AdminClient."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    res = fs[group].result(timeout)
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions}


def by_partition(records):
    out = {}
    for topic, partition, offset, key, value in records:
        out.setdefault(partition, []).append((offset, value))
    return {p: sorted(v) for p, v in out.items()}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_three_members_share_six_partitions(bootstrap, topic_name, variant, join):
    create_topic(bootstrap, topic_name, partitions=6)
    group = f"g-{topic_name}"
    members = [join(variant, bootstrap, group, [topic_name]) for _ in range(3)]
    assigned = wait_balanced(members, parts(topic_name, 6))  # 2 partitions each
    balanced_at = round(time.monotonic(), 3)

    n = 40
    produce_spread(bootstrap, topic_name,
                   [(p, None, b"%d-%d" % (p, i)) for i in range(n) for p in range(6)])
    wait_records(members, 6 * n)
    # What each read, before anyone leaves (the others would then take over and, with nothing
    # committed, read the leaver's partitions again); no rebalance happened meanwhile.
    got = [m.records() for m in members]
    assert [m.assignment() for m in members] == assigned
    close_all(members)

    seen = []
    for m, owned, recs in zip(members, assigned, got):
        assert not m.errors(), m.errors()
        # A member reads only its own partitions, all of them.
        assert {(t, p) for t, p, *_ in recs} == owned, (
            f"{m.name} read partitions {sorted({p for _, p, *_ in recs})}; assignments seen: "
            f"{[(at, [p for _, p in a]) for at, a in m.history()]}; balanced at {balanced_at}")
        seen += recs
    # Every record exactly once across the group, at its offset.
    assert len(seen) == 6 * n
    assert by_partition(seen) == {p: [(i, b"%d-%d" % (p, i)) for i in range(n)]
                                  for p in range(6)}


@pytest.mark.parametrize("variant", MAIN_VARIANTS)
def test_partitions_of_departed_members_are_taken_over(bootstrap, topic_name, variant, join):
    """A member that closes (LeaveGroup) hands its partitions over at once; a member that is
    SIGKILLed (in a process of its own) cannot leave, and its partitions move once the
    coordinator expires it, after the session timeout."""
    create_topic(bootstrap, topic_name, partitions=6)
    group = f"g-{topic_name}"
    everything = parts(topic_name, 6)
    a = join(variant, bootstrap, group, [topic_name])
    b = join(variant, bootstrap, group, [topic_name])
    c = MemberProcess(variant, bootstrap, group, [topic_name])
    try:
        wait_balanced([a, b, c], everything, timeout=45)

        started = time.monotonic()
        a.close()
        # Well within a session timeout: the LeaveGroup (or the KIP-848 leave heartbeat,
        # member epoch -1) started the rebalance, not the expiry of `a`.
        wait_balanced([b, c], everything, timeout=SESSION_TIMEOUT_MS / 1000 - 1)
        leave_s = time.monotonic() - started

        c.kill()
        killed = time.monotonic()
        wait_balanced([b], everything, timeout=SESSION_TIMEOUT_MS / 1000 + 10)
        takeover_s = time.monotonic() - killed
    finally:
        c.stop()

    # `b` really consumes all six partitions now.
    produce_spread(bootstrap, topic_name, [(p, None, b"after-%d" % p) for p in range(6)])
    wait_until(lambda: {(p, v) for _, p, _, _, v in b.records() if v.startswith(b"after-")}
               == {(p, b"after-%d" % p) for p in range(6)}, 30, "b reading every partition")
    print(f"leave handled in {leave_s:.1f}s, killed member replaced in {takeover_s:.1f}s")


@pytest.mark.parametrize("variant", PROTOCOL_VARIANTS)
def test_committed_offsets_resume_also_after_broker_restart(broker_factory, topic_name, variant,
                                                            join):
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, partitions=3)
    group = f"g-{topic_name}"
    everything = parts(topic_name, 3)
    produce_spread(b.bootstrap, topic_name,
                   [(p, None, b"%d-%d" % (p, i)) for i in range(10) for p in range(3)])

    m1 = join(variant, b.bootstrap, group, [topic_name])
    wait_balanced([m1], everything)
    wait_records([m1], 30)
    m1.commit({(topic_name, p): 3 + p for p in range(3)})
    m1.close()
    assert committed_offsets(b.bootstrap, group) == {(topic_name, p): 3 + p for p in range(3)}

    # A new member of the group starts at the committed offsets, not at the beginning.
    m2 = join(variant, b.bootstrap, group, [topic_name])
    wait_records([m2], 7 + 6 + 5)
    assert by_partition(m2.records()) == {p: [(i, b"%d-%d" % (p, i)) for i in range(3 + p, 10)]
                                          for p in range(3)}
    m2.commit()  # the consumed positions: 10 each
    m2.close()
    assert committed_offsets(b.bootstrap, group) == {(topic_name, p): 10 for p in range(3)}

    # The commits are records of __consumer_offsets: a SIGKILL and restart keeps them.
    assert b.kill() == -9
    b.restart()
    assert committed_offsets(b.bootstrap, group) == {(topic_name, p): 10 for p in range(3)}
    produce_spread(b.bootstrap, topic_name,
                   [(p, None, b"%d-%d" % (p, i)) for i in range(10, 12) for p in range(3)])
    m3 = join(variant, b.bootstrap, group, [topic_name])
    wait_records([m3], 6)
    m3.close()
    assert by_partition(m3.records()) == {p: [(10, b"%d-10" % p), (11, b"%d-11" % p)]
                                          for p in range(3)}


@pytest.mark.parametrize("variant", PROTOCOL_VARIANTS)
def test_auto_commit_resumes(bootstrap, topic_name, variant, join):
    create_topic(bootstrap, topic_name, partitions=2)
    group = f"g-{topic_name}"
    produce_spread(bootstrap, topic_name,
                   [(p, None, b"%d-%d" % (p, i)) for i in range(20) for p in range(2)])
    if variant.startswith("confluent"):
        auto = {"enable.auto.commit": True, "auto.commit.interval.ms": 200}
    else:
        auto = {"enable_auto_commit": True, "auto_commit_interval_ms": 200}

    m1 = join(variant, bootstrap, group, [topic_name], **auto)
    wait_records([m1], 40)
    # The interval commits while the member is still running (not only its close).
    want = {(topic_name, 0): 20, (topic_name, 1): 20}
    wait_until(lambda: committed_offsets(bootstrap, group) == want, 20,
               "the auto commit of the consumed positions", interval=0.2)
    m1.close()

    produce_spread(bootstrap, topic_name,
                   [(p, None, b"%d-%d" % (p, i)) for i in range(20, 25) for p in range(2)])
    m2 = join(variant, bootstrap, group, [topic_name], **auto)
    wait_records([m2], 10)
    m2.close()
    assert by_partition(m2.records()) == {p: [(i, b"%d-%d" % (p, i)) for i in range(20, 25)]
                                          for p in range(2)}
    assert committed_offsets(bootstrap, group) == {(topic_name, 0): 25, (topic_name, 1): 25}


@pytest.mark.parametrize("variant", PROTOCOL_VARIANTS)
def test_auto_offset_reset_of_a_new_group(bootstrap, topic_name, variant, join):
    create_topic(bootstrap, topic_name, partitions=1)
    produce_spread(bootstrap, topic_name, [(0, None, b"old-%d" % i) for i in range(5)])
    key = "auto.offset.reset" if variant.startswith("confluent") else "auto_offset_reset"

    early = join(variant, bootstrap, f"early-{topic_name}", [topic_name], **{key: "earliest"})
    if variant.startswith("confluent"):
        late = join(variant, bootstrap, f"late-{topic_name}", [topic_name],
                    **{key: "latest", "enable.partition.eof": True})
        resolved = lambda: (topic_name, 0, 5) in late.eofs()  # noqa: E731
    else:
        late = join(variant, bootstrap, f"late-{topic_name}", [topic_name], **{key: "latest"})
        resolved = lambda: (late.assignment()  # noqa: E731
                            and late.kp_position(topic_name, 0) == 5)
    wait_records([early], 5)
    # The new group's position resolves to the log end (ListOffsets latest) before new data.
    wait_until(resolved, 20, "the latest group's position at the log end (5)")
    produce_spread(bootstrap, topic_name, [(0, None, b"new-%d" % i) for i in range(3)])
    wait_records([early], 8)
    wait_records([late], 3)
    close_all([early, late])
    assert by_partition(early.records()) == {0: [(i, b"old-%d" % i) for i in range(5)]
                                             + [(5 + i, b"new-%d" % i) for i in range(3)]}
    assert by_partition(late.records()) == {0: [(5 + i, b"new-%d" % i) for i in range(3)]}


def test_every_group_reads_everything(bootstrap, topic_name, join):
    """Groups are independent: three groups, of different clients and protocols, each read
    every record of a 4-partition topic exactly once."""
    create_topic(bootstrap, topic_name, partitions=4)
    everything = parts(topic_name, 4)
    groups = {
        "confluent-roundrobin": 2,
        "kafka-python-range": 2,
        "confluent-consumer": 1,
    }
    members = {v: [join(v, bootstrap, f"{v}-{topic_name}", [topic_name]) for _ in range(n)]
               for v, n in groups.items()}
    for ms in members.values():
        wait_balanced(ms, everything)
    produce_spread(bootstrap, topic_name,
                   [(p, None, b"%d-%d" % (p, i)) for i in range(25) for p in range(4)])
    got = {v: wait_records(ms, 100) for v, ms in members.items()}
    for ms in members.values():
        close_all(ms)
    for v, recs in got.items():
        assert len(recs) == 100, v
        assert by_partition(recs) == {p: [(i, b"%d-%d" % (p, i)) for i in range(25)]
                                      for p in range(4)}, v


@pytest.mark.parametrize("variant", ["confluent-range", "kafka-python-range"])
def test_static_member_rejoins_without_rebalance(bootstrap, topic_name, variant, join):
    """KIP-345 static membership: a member with a group.instance.id that closes does not leave
    the group (neither client sends LeaveGroup for it); a new consumer with the same instance
    id within the session timeout gets the same partitions back, and the other member sees no
    rebalance."""
    create_topic(bootstrap, topic_name, partitions=4)
    group = f"g-{topic_name}"
    everything = parts(topic_name, 4)
    key = "group.instance.id" if variant.startswith("confluent") else "group_instance_id"
    # `a` joins alone first and stays the group leader; `b` is the one that comes back.
    a = join(variant, bootstrap, group, [topic_name], **{key: "instance-a"})
    wait_balanced([a], everything)
    b = join(variant, bootstrap, group, [topic_name], **{key: "instance-b"})
    _, b_had = wait_balanced([a, b], everything)
    a_history, a_rebalances = a.history(), a.assign_events()

    b.close()
    again = join(variant, bootstrap, group, [topic_name], **{key: "instance-b"})
    wait_until(lambda: again.assignment(), SESSION_TIMEOUT_MS / 1000 - 1,
               "the static member's assignment")
    assert again.assignment() == b_had
    # `a` kept its partitions all along: no rebalance happened.
    assert a.history() == a_history
    assert a.assign_events() == a_rebalances
    assert again.assign_events() == [b_had]
    produce_spread(bootstrap, topic_name, [(p, None, b"%d" % p) for p in range(4)])
    wait_records([a, again], 4)
    assert {p for _, p, *_ in again.records()} == {p for _, p in b_had}
