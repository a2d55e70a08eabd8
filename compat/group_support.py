"""Consumer-group members for the compat tests: one consumer per thread (or per process), with
each client's assignors and, for confluent-kafka, the KIP-848 `group.protocol=consumer`.

A `Member` owns its consumer in a thread of its own: every call on the consumer happens in that
thread, the thread polls without pause, and the test reads what the member saw (`records()`,
`assignment()`) or asks it to do something (`call(fn)`, `commit(...)`, `close()`).

Why a thread per member and not one loop polling every consumer in turn: kafka-python 3.0.12
drops a group join that completes while no `poll()` is waiting for it (`join_group_async`
discards a finished join task without applying its assignment and never re-enables the
heartbeat; the member is then expired after `session.timeout.ms` and the group rebalances over
and over). Polling each consumer without pause keeps a `poll()` waiting almost all the time.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer as CkConsumer
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as CkTopicPartition

from support import produce_spread, wait_until

SESSION_TIMEOUT_MS = 6000  # classic members; == the brokers' group.consumer.session.timeout.ms
HEARTBEAT_MS = 500

# The brokers of the compat suite run with these (conftest.py): rebalances start at once and
# KIP-848 members time out like the classic ones here.
FAST_GROUP_OVERRIDES = {
    "group.initial.rebalance.delay.ms": "0",
    "group.consumer.heartbeat.interval.ms": str(HEARTBEAT_MS),
    "group.consumer.min.heartbeat.interval.ms": str(HEARTBEAT_MS),
    "group.consumer.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "group.consumer.min.session.timeout.ms": str(SESSION_TIMEOUT_MS),
}


def _kp_assignor(name):
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

    return {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
            "sticky": StickyPartitionAssignor}[name]


# variant id -> (client, group protocol, assignor). "consumer" is KIP-848 with the broker's
# assignor (`group.remote.assignor`, None = the broker's default, uniform).
VARIANTS = {
    "confluent-range": ("confluent", "classic", "range"),
    "confluent-roundrobin": ("confluent", "classic", "roundrobin"),
    "confluent-cooperative-sticky": ("confluent", "classic", "cooperative-sticky"),
    "confluent-consumer": ("confluent", "consumer", None),
    "confluent-consumer-range": ("confluent", "consumer", "range"),
    "kafka-python-range": ("kafka-python", "classic", "range"),
    "kafka-python-roundrobin": ("kafka-python", "classic", "roundrobin"),
    "kafka-python-sticky": ("kafka-python", "classic", "sticky"),
}
# The ones most tests run: each client's assignors and the KIP-848 protocol once.
MAIN_VARIANTS = [v for v in VARIANTS if v != "confluent-consumer-range"]


def consumer_config(variant, bootstrap, group, **conf):
    """The configuration of a group member of `variant` (confluent property names or
    kafka-python keyword arguments); `conf` is added last."""
    client, protocol, assignor = VARIANTS[variant]
    if client == "confluent":
        base = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        if protocol == "consumer":
            # librdkafka refuses session.timeout.ms, heartbeat.interval.ms and
            # partition.assignment.strategy here: they are the broker's (KIP-848).
            base["group.protocol"] = "consumer"
            if assignor:
                base["group.remote.assignor"] = assignor
        else:
            base.update({
                "partition.assignment.strategy": assignor,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": HEARTBEAT_MS,
            })
    else:
        base = {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            "heartbeat_interval_ms": HEARTBEAT_MS,
            "partition_assignment_strategy": [_kp_assignor(assignor)],
        }
    base.update(conf)
    return base


class MemberError(AssertionError):
    pass


class Member:
    """A consumer subscribed to `topics` in `group`, polled by a thread of its own."""

    def __init__(self, variant, bootstrap, group, topics, name=None, **conf):
        self.variant = variant
        self.client = VARIANTS[variant][0]
        self.group = group
        self.topics = list(topics)
        self.name = name or f"{variant}@{group}"
        self._conf = consumer_config(variant, bootstrap, group, **conf)
        self._lock = threading.Lock()
        self._records = []  # (topic, partition, offset, key, value)
        self._errors = []
        self._eofs = []  # confluent with enable.partition.eof: (topic, partition, offset)
        self._assignment = frozenset()
        self._history = []  # (monotonic time, assignment) at every change
        self._assign_events = []  # the partitions of every assignment callback
        self._calls = queue.Queue()
        self._stop = False
        self._closed = threading.Event()
        self._started = threading.Event()
        self._failure = None
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise MemberError(f"{self.name}: consumer not created within 30s")
        if self._failure:
            raise MemberError(f"{self.name}: {self._failure!r}")

    # --- the member's thread ---------------------------------------------------------------

    def _run(self):
        consumer = None
        try:
            if self.client == "confluent":
                consumer = CkConsumer(self._conf)
                # With no assign() of its own in the callback, confluent-kafka assigns
                # (eager) or incrementally assigns (cooperative, KIP-848) the partitions.
                consumer.subscribe(self.topics, on_assign=lambda c, tps: self._on_assign(
                    {(tp.topic, tp.partition) for tp in tps}))
            else:
                from kafka import ConsumerRebalanceListener, KafkaConsumer

                member = self

                class Listener(ConsumerRebalanceListener):
                    def on_partitions_revoked(self, revoked):
                        pass

                    def on_partitions_assigned(self, assigned):
                        member._on_assign({(tp.topic, tp.partition) for tp in assigned})

                consumer = KafkaConsumer(**self._conf)
                consumer.subscribe(self.topics, listener=Listener())
            self._started.set()
            while True:
                while True:
                    try:
                        fn, reply = self._calls.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        reply.put((True, fn(consumer)))
                    except BaseException as e:  # handed to the caller
                        reply.put((False, e))
                if self._stop:
                    break
                self._poll_once(consumer)
        except BaseException as e:
            self._failure = e
        finally:
            self._started.set()
            if consumer is not None:
                try:
                    consumer.close()
                except BaseException as e:
                    if self._failure is None:
                        self._failure = e
            self._closed.set()

    def _on_assign(self, partitions):
        with self._lock:
            self._assign_events.append(frozenset(partitions))

    def _poll_once(self, consumer):
        if self.client == "confluent":
            got = []
            for m in consumer.consume(num_messages=500, timeout=0.2):
                if m.error() and m.error().code() == KafkaError._PARTITION_EOF:
                    self._eofs.append((m.topic(), m.partition(), m.offset()))
                elif m.error():
                    self._errors.append(m.error())
                else:
                    got.append((m.topic(), m.partition(), m.offset(), m.key(), m.value()))
            assignment = frozenset((tp.topic, tp.partition) for tp in consumer.assignment())
        else:
            polled = consumer.poll(timeout_ms=500)
            got = [(r.topic, r.partition, r.offset, r.key, r.value)
                   for rs in polled.values() for r in rs]
            assignment = frozenset((tp.topic, tp.partition) for tp in consumer.assignment())
        with self._lock:
            self._records.extend(got)
            if assignment != self._assignment:
                self._history.append((round(time.monotonic(), 3), sorted(assignment)))
            self._assignment = assignment

    # --- the test's side -------------------------------------------------------------------

    def _check(self):
        if self._failure is not None:
            raise MemberError(f"{self.name} failed: {self._failure!r}")

    def records(self):
        self._check()
        with self._lock:
            return list(self._records)

    def history(self):
        """Every assignment the member had, with the (monotonic) time it was first seen."""
        with self._lock:
            return list(self._history)

    def assign_events(self):
        """The partitions handed over by each rebalance callback (on_assign /
        on_partitions_assigned) so far: one entry per completed rebalance of this member."""
        with self._lock:
            return list(self._assign_events)

    def eofs(self):
        with self._lock:
            return list(self._eofs)

    def errors(self):
        with self._lock:
            return list(self._errors)

    def assignment(self):
        """The partitions assigned right now, as {(topic, partition)}."""
        self._check()
        with self._lock:
            return self._assignment

    def call(self, fn, timeout=30):
        """Runs `fn(consumer)` in the member's thread; returns its result or raises its error."""
        self._check()
        reply = queue.Queue()
        self._calls.put((fn, reply))
        try:
            ok, value = reply.get(timeout=timeout)
        except queue.Empty:
            self._check()
            raise MemberError(f"{self.name}: call not done within {timeout}s") from None
        if not ok:
            raise value
        return value

    def commit(self, offsets=None):
        """Synchronous commit: of the consumed positions, or of {(topic, partition): offset}."""
        if self.client == "confluent":
            def do(c):
                if offsets is None:
                    return c.commit(asynchronous=False)
                return c.commit(offsets=[CkTopicPartition(t, p, o)
                                         for (t, p), o in offsets.items()], asynchronous=False)
        else:
            def do(c):
                from kafka import TopicPartition
                from kafka.structs import OffsetAndMetadata

                if offsets is None:
                    return c.commit()
                return c.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                 for (t, p), o in offsets.items()})
        return self.call(do)

    def kp_position(self, topic, partition):
        """kafka-python's fetch position of one assigned partition (it resolves a reset).
        (librdkafka's position() is only the offset after the last consumed message; with
        `enable.partition.eof` the end of a partition shows in `eofs()` instead.)"""
        def do(c):
            from kafka import TopicPartition

            return c.position(TopicPartition(topic, partition), timeout_ms=5000)
        return self.call(do)

    def close(self, timeout=30):
        """Closes the consumer (leaving the group) and stops the thread."""
        self._stop = True
        if not self._closed.wait(timeout):
            raise MemberError(f"{self.name}: not closed within {timeout}s")
        self._thread.join(5)
        self._check()

    @property
    def closed(self):
        return self._closed.is_set()


def close_all(members):
    """Closes every member still open, then raises the first failure (if any)."""
    first = None
    for m in members:
        if m.closed:
            continue
        try:
            m.close()
        except BaseException as e:
            first = first or e
    if first is not None:
        raise first


def wait_balanced(members, partitions, timeout=30, counts=None):
    """Waits until the members' assignments are disjoint, cover exactly `partitions`
    ({(topic, partition)}) and each holds `counts[i]` partitions (default: as even as can be).
    Returns the assignments."""
    partitions = frozenset(partitions)
    if counts is None:
        n, k = len(partitions), len(members)
        counts = sorted([n // k + (1 if i < n % k else 0) for i in range(k)])
    else:
        counts = sorted(counts)
    last = []

    def balanced():
        nonlocal last
        last = [m.assignment() for m in members]
        union = frozenset().union(*last)
        return (sum(len(a) for a in last) == len(union) and union == partitions
                and sorted(len(a) for a in last) == counts) and last

    try:
        return wait_until(balanced, timeout, "a balanced assignment")
    except AssertionError:
        raise AssertionError(
            f"no balanced assignment of {sorted(partitions)} within {timeout}s; last seen: "
            + "; ".join(f"{m.name}: {sorted(a)}" for m, a in zip(members, last))
        ) from None


def wait_records(members, count, timeout=30):
    """Waits until the members together have read at least `count` records; returns them all."""
    def enough():
        return sum(len(m.records()) for m in members) >= count

    try:
        wait_until(enough, timeout, f"{count} records")
    except AssertionError:
        raise AssertionError(
            f"the members read {[len(m.records()) for m in members]} records, not {count}, "
            f"within {timeout}s; errors: {[m.errors() for m in members]}"
        ) from None
    return [r for m in members for r in m.records()]


# --- a member in a process of its own (to SIGKILL it) -------------------------------------

class MemberProcess:
    """`group_member.py` in a subprocess: a member the test can kill without it leaving the
    group. It prints its assignment as a JSON line whenever that changes."""

    def __init__(self, variant, bootstrap, group, topics):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "group_member.py")
        self._stderr = tempfile.TemporaryFile()  # client logs; a pipe nobody reads could fill
        self.proc = subprocess.Popen(
            [sys.executable, script, variant, bootstrap, group, ",".join(topics)],
            stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
        )
        self._lock = threading.Lock()
        self._assignment = frozenset()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self._assignment = frozenset((t, p) for t, p in msg["assignment"])

    @property
    def name(self):
        return f"subprocess member pid {self.proc.pid}"

    def assignment(self):
        if self.proc.poll() is not None and self.proc.returncode != -9:
            self._stderr.seek(0)
            raise MemberError(f"member process exited {self.proc.returncode}: "
                              f"{self._stderr.read()[-3000:]!r}")
        with self._lock:
            return self._assignment

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._stderr.close()


class StromMember:
    """`strom verifiable-consumer --group-id` as a subprocess; its JSON events are read on a
    thread and turned into the current assignment and the records it consumed. `protocol`
    "classic" (range, the suite's session timeout and heartbeat) or "consumer" (KIP-848: no
    session or heartbeat setting, those are the broker's)."""

    def __init__(self, strom_bin, bootstrap, group, topic, tmp_path, max_messages=-1,
                 protocol="classic"):
        props = tmp_path / f"strom-consumer-{group}.properties"
        args = ["--max-messages", str(max_messages)]
        if protocol == "classic":
            props.write_text(f"heartbeat.interval.ms={HEARTBEAT_MS}\n")
            args += ["--assignment-strategy", "range", "--session-timeout",
                     str(SESSION_TIMEOUT_MS)]
        else:
            props.write_text(f"group.protocol={protocol}\n")
        self.proc = subprocess.Popen(
            [strom_bin, "verifiable-consumer", "--topic", topic, "--group-id", group,
             *args, "--verbose", "--consumer.config", str(props),
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


def share_then_take_over(bootstrap, topic, ck, strom, split):
    """A confluent member `ck` and a StromMember of one group on `topic` (4 partitions):
    they split the partitions 2 + 2 (`split` says why) with no overlap and read 200 records
    exactly once; when strom leaves, having committed, confluent takes its partitions over
    at strom's commits and reads only what comes later. Closes both."""
    all_partitions = {(topic, p) for p in range(4)}
    try:
        def shared():
            a, b = ck.assignment(), strom.owned()
            return a and b and not (a & b) and (a | b) == all_partitions
        wait_until(shared, 60, "strom and confluent sharing the partitions")
        assert len(strom.owned()) == 2, split

        produce_spread(bootstrap, topic,
                       [(i % 4, f"k{i}".encode(), f"v{i}".encode()) for i in range(200)])
        wait_until(lambda: len(ck.records()) + len(strom.read()) >= 200, 60, "200 records")
        seen = [(p, o) for (_, p, o, _, _) in ck.records()] + [(p, o) for p, o, _ in strom.read()]
        assert len(seen) == 200 and len(set(seen)) == 200, "every record read exactly once"
        strom_partitions = {p for (_, p) in strom.owned()}
        assert {p for p, _, _ in strom.read()} <= strom_partitions

        # confluent commits its own; strom leaves, having committed after every poll;
        # confluent takes over at strom's commits.
        ck.commit()
        strom.stop()
        assert strom.committed == {p: 50 for p in strom_partitions}, strom.committed
        wait_until(lambda: ck.assignment() == all_partitions, 60, "confluent taking over")
        before = len(ck.records())
        produce_spread(bootstrap, topic,
                       [(i % 4, b"k", f"late{i}".encode()) for i in range(40)])
        wait_until(lambda: len(ck.records()) >= before + 40, 60, "40 late records")
        late = ck.records()[before:]
        assert len(late) == 40, "nothing strom committed was read again"
        assert all(v.startswith(b"late") for (_, _, _, _, v) in late)
    finally:
        if strom.proc.poll() is None:
            strom.proc.kill()
        close_all([ck])
