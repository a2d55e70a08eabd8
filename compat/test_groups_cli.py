"""`strom groups` on groups that real clients run: the lag `strom groups describe` shows is
what was produced minus what the client committed, with the member that owns each partition;
`strom groups reset-offsets` refuses the active group, and once it is empty moves its offsets
so that a confluent-kafka consumer of the group starts over."""

import json
import subprocess

import pytest
from confluent_kafka import OFFSET_STORED

from group_support import Member, close_all, wait_balanced, wait_records
from support import consume, create_topic, produce_spread, wait_until

PARTITIONS = 3


def strom(strom_bin, bootstrap, *args, check=True):
    r = subprocess.run([strom_bin, *args, "--bootstrap-server", bootstrap],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"strom {' '.join(args)}: {r.returncode} {r.stderr}"
    return r


def describe(strom_bin, bootstrap, group):
    [g] = json.loads(strom(strom_bin, bootstrap, "groups", "describe", group,
                           "--output", "json").stdout)
    return g


@pytest.mark.parametrize("variant", ["confluent-range", "kafka-python-range"])
def test_lag_is_produced_minus_committed(bootstrap, topic_name, strom_bin, variant):
    group = f"g-{topic_name}"
    create_topic(bootstrap, topic_name, partitions=PARTITIONS)
    produced = {0: 10, 1: 20, 2: 30}
    produce_spread(bootstrap, topic_name, [(p, None, b"%d-%d" % (p, i))
                                           for p, n in produced.items() for i in range(n)])
    member = Member(variant, bootstrap, group, [topic_name])
    try:
        wait_balanced([member], {(topic_name, p) for p in range(PARTITIONS)})
        wait_records([member], sum(produced.values()))
        committed = {0: 4, 1: 20, 2: 0}
        member.commit({(topic_name, p): o for p, o in committed.items()})
        # More records after the commit: the log end moves, the lag with it.
        produce_spread(bootstrap, topic_name, [(0, None, b"late")] * 5 + [(2, None, b"late")] * 7)
        produced[0] += 5
        produced[2] += 7

        g = describe(strom_bin, bootstrap, group)
        assert g["state"] == "Stable"
        [m] = g["members"]
        rows = {r["partition"]: r for r in g["offsets"] if r["topic"] == topic_name}
        assert sorted(rows) == list(range(PARTITIONS))
        for p in range(PARTITIONS):
            assert rows[p]["current_offset"] == committed[p]
            assert rows[p]["log_end_offset"] == produced[p]
            assert rows[p]["lag"] == produced[p] - committed[p]
            assert rows[p]["consumer_id"] == m["consumer_id"]

        # Kafka refuses to reset the offsets of a group with members.
        r = strom(strom_bin, bootstrap, "groups", "reset-offsets", "--group", group,
                  "--topic", topic_name, "--to-earliest", "--execute", check=False)
        assert r.returncode != 0 and "inactive" in r.stderr.lower(), r.stderr
    finally:
        close_all([member])

    wait_until(lambda: describe(strom_bin, bootstrap, group)["state"] == "Empty", 30,
               "the group to be empty")
    strom(strom_bin, bootstrap, "groups", "reset-offsets", "--group", group, "--topic",
          f"{topic_name}:1", "--to-offset", "15", "--execute")
    rows = {r["partition"]: r for r in describe(strom_bin, bootstrap, group)["offsets"]}
    assert rows[1]["current_offset"] == 15 and rows[1]["lag"] == produced[1] - 15

    # A consumer of the group resumes at the reset offset.
    got = consume("confluent", bootstrap, topic_name, 5, partition=1, offset=OFFSET_STORED,
                  **{"group.id": group})
    assert [r.offset for r in got] == list(range(15, 20))
