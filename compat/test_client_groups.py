"""strom's own group consumer (strom-client, through `strom verifiable-consumer --group-id`)
in one classic group with a confluent-kafka consumer (librdkafka, range assignor): the two
share the partitions without overlap, every record is read once, the survivor takes over the
partitions of the one that leaves at the offsets it committed, and offsets committed by
confluent-kafka are where strom's consumer starts."""

import json
import os
import signal
import subprocess
import threading

from confluent_kafka import TopicPartition as CkTopicPartition

from group_support import HEARTBEAT_MS, SESSION_TIMEOUT_MS, Member, close_all
from support import ck_consumer, create_topic, produce_spread, wait_until


class StromMember:
    """`strom verifiable-consumer --group-id` as a subprocess; its JSON events are read on a
    thread and turned into the current assignment and the records it consumed."""

    def __init__(self, strom_bin, bootstrap, group, topic, tmp_path, max_messages=-1):
        props = tmp_path / f"strom-consumer-{group}.properties"
        props.write_text(f"heartbeat.interval.ms={HEARTBEAT_MS}\n")
        self.proc = subprocess.Popen(
            [strom_bin, "verifiable-consumer", "--topic", topic, "--group-id", group,
             "--assignment-strategy", "range", "--session-timeout", str(SESSION_TIMEOUT_MS),
             "--max-messages", str(max_messages), "--verbose", "--consumer.config", str(props),
             "--bootstrap-server", bootstrap],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.events = []
        self.assignment = set()
        self.records = []  # (partition, offset, value)
        self.committed = {}  # partition -> offset
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            e = json.loads(line)
            with self.lock:
                self.events.append(e)
                parts = {(p["topic"], p["partition"]) for p in e.get("partitions", [])}
                if e["name"] == "partitions_assigned":
                    self.assignment |= parts
                elif e["name"] == "partitions_revoked":
                    self.assignment -= parts
                elif e["name"] == "record_data":
                    self.records.append((e["partition"], e["offset"], e["value"]))
                elif e["name"] == "offsets_committed":
                    assert e["success"], e
                    for o in e["offsets"]:
                        self.committed[o["partition"]] = o["offset"]

    def owned(self):
        with self.lock:
            return frozenset(self.assignment)

    def read(self):
        with self.lock:
            return list(self.records)

    def stop(self):
        """SIGTERM: the tool commits, leaves the group and prints `shutdown_complete`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.thread.join(10)
        assert code == 0, f"strom verifiable-consumer exited {code}: {self.proc.stderr.read()}"
        with self.lock:
            assert self.events[-1]["name"] == "shutdown_complete", self.events[-3:]


def test_strom_and_confluent_share_a_group_and_honour_each_others_commits(
        broker, bootstrap, topic_name, strom_bin, tmp_path):
    create_topic(bootstrap, topic_name, partitions=4)
    group = f"mixed-{topic_name}"
    all_partitions = {(topic_name, p) for p in range(4)}
    ck = Member("confluent-range", bootstrap, group, [topic_name])
    strom = StromMember(strom_bin, bootstrap, group, topic_name, tmp_path)
    members = [ck]
    try:
        def shared():
            a, b = ck.assignment(), strom.owned()
            return a and b and not (a & b) and (a | b) == all_partitions
        wait_until(shared, 60, "strom and confluent sharing the partitions")
        assert len(strom.owned()) == 2, "range splits 4 partitions 2 + 2"

        produce_spread(bootstrap, topic_name,
                       [(i % 4, f"k{i}".encode(), f"v{i}".encode()) for i in range(200)])
        wait_until(lambda: len(ck.records()) + len(strom.read()) >= 200, 60, "200 records")
        seen = [(p, o) for (_, p, o, _, _) in ck.records()] + [(p, o) for p, o, _ in strom.read()]
        assert len(seen) == 200 and len(set(seen)) == 200, "every record read exactly once"
        strom_partitions = {p for (_, p) in strom.owned()}
        assert {p for p, _, _ in strom.read()} <= strom_partitions

        # confluent commits its own (it re-reads nothing of its own after the rebalance);
        # strom leaves, having committed after every poll; confluent takes over at strom's
        # commits.
        ck.commit()
        strom.stop()
        assert strom.committed == {p: 50 for p in strom_partitions}, strom.committed
        wait_until(lambda: ck.assignment() == all_partitions, 60, "confluent taking over")
        before = len(ck.records())
        produce_spread(bootstrap, topic_name,
                       [(i % 4, b"k", f"late{i}".encode()) for i in range(40)])
        wait_until(lambda: len(ck.records()) >= before + 40, 60, "40 late records")
        late = ck.records()[before:]
        assert len(late) == 40, "nothing strom committed was read again"
        assert all(v.startswith(b"late") for (_, _, _, _, v) in late)
    finally:
        if strom.proc.poll() is None:
            strom.proc.kill()
        close_all(members)


def test_strom_starts_at_offsets_confluent_committed(broker, bootstrap, topic_name, strom_bin,
                                                      tmp_path):
    create_topic(bootstrap, topic_name, partitions=1)
    group = f"resume-{topic_name}"
    produce_spread(bootstrap, topic_name, [(0, None, f"old{i}".encode()) for i in range(10)])
    c = ck_consumer(bootstrap, **{"group.id": group})
    try:
        c.commit(offsets=[CkTopicPartition(topic_name, 0, 7)], asynchronous=False)
    finally:
        c.close()
    strom = StromMember(strom_bin, bootstrap, group, topic_name, tmp_path, max_messages=3)
    try:
        code = strom.proc.wait(60)
        strom.thread.join(10)
        assert code == 0, strom.proc.stderr.read()
        assert [o for _, o, _ in strom.read()] == [7, 8, 9]
        assert strom.committed == {0: 10}
    finally:
        if strom.proc.poll() is None:
            strom.proc.kill()
    # And confluent's next member of the group starts where strom committed.
    c = ck_consumer(bootstrap, **{"group.id": group})
    try:
        committed = c.committed([CkTopicPartition(topic_name, 0)], timeout=10)
        assert committed[0].offset == 10
    finally:
        c.close()
    assert os.path.exists(tmp_path)
