"""strom's group consumer with `group.protocol=consumer` (KIP-848, ConsumerGroupHeartbeat) in
one group with a confluent-kafka consumer speaking the same protocol: the broker's assignor
splits the partitions between them without overlap, every record is read once, and when strom
leaves (epoch -1) confluent takes its partitions over at the offsets strom committed. Also
`strom consume --group G --consumer-property group.protocol=consumer`."""

import json
import signal
import subprocess
import threading

from group_support import Member, close_all
from support import create_topic, produce_spread, wait_until


class StromKip848Member:
    """`strom verifiable-consumer --group-id` with `group.protocol=consumer` (no session or
    heartbeat setting: those are the broker's); its JSON events give its assignment."""

    def __init__(self, strom_bin, bootstrap, group, topic, tmp_path):
        props = tmp_path / f"strom-kip848-{group}.properties"
        props.write_text("group.protocol=consumer\n")
        self.proc = subprocess.Popen(
            [strom_bin, "verifiable-consumer", "--topic", topic, "--group-id", group,
             "--verbose", "--consumer.config", str(props), "--bootstrap-server", bootstrap],
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
                elif e["name"] in ("partitions_revoked", "partitions_lost"):
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


def test_strom_and_confluent_share_a_kip848_group(broker, bootstrap, topic_name, strom_bin,
                                                  tmp_path):
    create_topic(bootstrap, topic_name, partitions=4)
    group = f"kip848-{topic_name}"
    all_partitions = {(topic_name, p) for p in range(4)}
    ck = Member("confluent-consumer", bootstrap, group, [topic_name])
    strom = StromKip848Member(strom_bin, bootstrap, group, topic_name, tmp_path)
    members = [ck]
    try:
        def shared():
            a, b = ck.assignment(), strom.owned()
            return a and b and not (a & b) and (a | b) == all_partitions
        wait_until(shared, 60, "strom and confluent sharing the partitions")
        assert len(strom.owned()) == 2, "the uniform assignor splits 4 partitions 2 + 2"

        produce_spread(bootstrap, topic_name,
                       [(i % 4, f"k{i}".encode(), f"v{i}".encode()) for i in range(200)])
        wait_until(lambda: len(ck.records()) + len(strom.read()) >= 200, 60, "200 records")
        seen = [(p, o) for (_, p, o, _, _) in ck.records()] + [(p, o) for p, o, _ in strom.read()]
        assert len(seen) == 200 and len(set(seen)) == 200, "every record read exactly once"
        strom_partitions = {p for (_, p) in strom.owned()}
        assert {p for p, _, _ in strom.read()} <= strom_partitions

        # strom commits after every poll and leaves with epoch -1; confluent takes over at
        # strom's commits and reads only what comes later.
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


def test_strom_consume_joins_a_kip848_group(broker, bootstrap, topic_name, strom_bin):
    create_topic(bootstrap, topic_name, partitions=4)
    group = f"kip848-cli-{topic_name}"
    all_partitions = {(topic_name, p) for p in range(4)}
    ck = Member("confluent-consumer", bootstrap, group, [topic_name])
    members = [ck]
    proc = None
    try:
        wait_until(lambda: ck.assignment() == all_partitions, 60, "confluent owning all")
        proc = subprocess.Popen(
            [strom_bin, "consume", topic_name, "--group", group, "--from-beginning",
             "--consumer-property", "group.protocol=consumer",
             "--property", "print.partition=true", "--max-messages", "50",
             "--timeout-ms", "60000", "--bootstrap-server", bootstrap],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: len(ck.assignment()) == 2, 60, "strom taking two partitions")
        mine = ck.assignment()
        produce_spread(bootstrap, topic_name,
                       [(i % 4, b"k", f"v{i}".encode()) for i in range(100)])
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Processed a total of 50 messages" in err, err
        lines = out.splitlines()
        assert len(lines) == 50, lines
        strom_partitions = {int(line.split("\t")[0].removeprefix("Partition:")) for line in lines}
        assert strom_partitions == {p for (_, p) in all_partitions - mine}
        wait_until(lambda: len(ck.records()) >= 50, 60, "confluent's 50 records")
        assert {p for (_, p, _, _, _) in ck.records()} == {p for (_, p) in mine}
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        close_all(members)
