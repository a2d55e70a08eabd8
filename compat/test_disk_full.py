"""A full disk: one of the broker's two log dirs is a 4 MiB tmpfs. Producing to a partition
there until the disk is full gets KAFKA_STORAGE_ERROR (56) back, with both clients; the broker
takes that log dir offline and keeps running: the other log dir still takes writes and serves
reads, and metadata is answered. After space is freed (the tmpfs remounted bigger) and the
broker restarted, every record acknowledged before the failure is read back at its offset, and
the partition takes writes again. Needs root (mount); skipped otherwise."""

import os
import subprocess

import pytest
from confluent_kafka import KafkaError

from support import ck_producer, consume, create_topic, kp_producer, produce, wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.broker_warnings(r"No space left on device", r"log directory .* is offline",
                                r"storage error"),
]


def sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (run the compat suite as root)")
    d = tmp_path / "tmpfs"
    d.mkdir()
    r = sh("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield str(d)
    finally:
        if sh("umount", str(d)).returncode != 0:
            sh("umount", "-l", str(d))


def log_dir_of(broker_dirs, topic):
    return [d for d in broker_dirs if os.path.isdir(os.path.join(d, f"{topic}-0"))]


def two_dirs_one_full(broker_factory, topic_name, tmpfs):
    """A broker with log dirs <data>/logs and <tmpfs>/logs, a topic on each, and the tmpfs one
    filled with acks=all, retries=0 records until the broker refuses one. Returns
    (broker, full topic, other topic, [(offset, value)] acknowledged, [errors])."""
    full_dir = os.path.join(tmpfs, "logs")
    b = broker_factory()
    b.stop()
    normal_dir = os.path.join(b.data_dir, "logs")
    b.overrides["log.dirs"] = f"{normal_dir},{full_dir}"
    b.restart()
    # New partitions go to the log dir with the fewest: one topic lands in each.
    on = {}
    for i in range(6):
        name = f"{topic_name}-{i}"
        create_topic(b.bootstrap, name)
        [where] = log_dir_of([normal_dir, full_dir], name)
        on.setdefault(where, name)
        if len(on) == 2:
            break
    assert len(on) == 2, f"no topic was placed on each log dir: {on}"
    full_topic, other_topic = on[full_dir], on[normal_dir]

    # Fill the tmpfs. retries=0, so the first storage error is reported as it is.
    p = ck_producer(b.bootstrap, **{"acks": "all", "retries": 0, "linger.ms": 5})
    acked, errors = [], []

    def on_delivery(err, msg):
        (errors.append(err) if err else acked.append((msg.offset(), msg.value())))

    n = 0
    while not errors and n < 20_000:
        for _ in range(200):
            p.produce(full_topic, value=os.urandom(1000) + b"%08d" % n, on_delivery=on_delivery)
            n += 1
        assert p.flush(30) == 0
    return b, full_topic, other_topic, acked, errors


def test_full_log_dir_goes_offline_and_recovers(broker_factory, topic_name, small_tmpfs):
    b, full_topic, other_topic, acked, errors = two_dirs_one_full(broker_factory, topic_name,
                                                                  small_tmpfs)
    try:
        assert errors, "4 MiB took 20,000 records of 1 kB"
        assert {e.code() for e in errors} == {KafkaError.KAFKA_STORAGE_ERROR}, errors[:3]
        assert [o for o, _ in acked] == list(range(len(acked)))
        assert 1000 < len(acked) < 4 * 1024 * 1024 // 1008

        # The broker lives on; the dir stays offline: its partition has no leader now, so
        # kafka-python cannot deliver there and times out, as against Kafka once the
        # controller has moved leadership away (KIP-858). The other dir keeps working and
        # metadata is served.
        assert b.alive()
        import kafka.errors as kp_errors

        kp = kp_producer(b.bootstrap, retries=0, max_block_ms=3000, request_timeout_ms=3000,
                         delivery_timeout_ms=5000)
        try:
            with pytest.raises(kp_errors.KafkaTimeoutError):
                kp.send(full_topic, b"more").get(20)
        finally:
            kp.close(0)
        assert [o for o, _ in produce("kafka-python", b.bootstrap, other_topic,
                                      [{"value": b"still fine"}])] == [0]
        assert [r.value for r in consume("confluent", b.bootstrap, other_topic, 1)] == \
            [b"still fine"]
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
        assert {full_topic, other_topic} <= set(md.topics)

        # Free space, restart: everything acknowledged is there, and the partition is back.
        assert sh("mount", "-o", "remount,size=64m", small_tmpfs).returncode == 0
        assert b.stop() == 0
        b.restart()
        got = consume("confluent", b.bootstrap, full_topic, len(acked))
        assert [(r.offset, r.value) for r in got] == acked
        assert [o for o, _ in produce("confluent", b.bootstrap, full_topic,
                                      [{"value": b"space again"}])] == [len(acked)]
        assert b.stop() == 0
    finally:
        b.stop()  # before the tmpfs is unmounted


# Kafka (KRaft, KIP-858) reports the dir in its broker heartbeat and the controller moves
# leadership away: with one replica, leader -1 and LEADER_NOT_AVAILABLE in Metadata.
def test_partition_on_offline_dir_has_no_leader(broker_factory, topic_name, small_tmpfs):
    from confluent_kafka.admin import AdminClient

    b, full_topic, other_topic, acked, errors = two_dirs_one_full(broker_factory, topic_name,
                                                                  small_tmpfs)
    try:
        assert errors and {e.code() for e in errors} == {KafkaError.KAFKA_STORAGE_ERROR}
        admin = AdminClient({"bootstrap.servers": b.bootstrap})

        def offline():
            md = admin.list_topics(full_topic, timeout=10).topics[full_topic].partitions[0]
            return md.leader == -1 and md.error is not None and \
                md.error.code() == KafkaError.LEADER_NOT_AVAILABLE

        wait_until(offline, 5, "the partition on the offline dir to lose its leader")
        md = admin.list_topics(other_topic, timeout=10).topics[other_topic].partitions[0]
        assert md.leader == 1 and md.error is None
    finally:
        b.stop()
