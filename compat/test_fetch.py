"""Fetch as consumers use it: long-poll (a consumer waiting on an empty partition, its fetch
parked in the broker for up to 5 s, gets a record produced 1 s later at once, not when its
wait expires), batches over the fetch limits (KIP-74), many partitions in one consumer, and
OFFSET_OUT_OF_RANGE."""

import json
import threading
import time

import pytest
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from support import CLIENTS, ck_consumer, consume, kp_consumer, produce

MAX_WAIT_MS = 5000
PRODUCE_AFTER_S = 1.0


def create_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(30)


def produce_later(bootstrap, topic, acked_at):
    def run():
        time.sleep(PRODUCE_AFTER_S)  # part of the scenario: the record arrives 1 s later
        produce("confluent", bootstrap, topic, [{"value": b"wake up"}], **{"linger.ms": 0})
        acked_at.append(time.monotonic())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def check_latency(started, acked_at, received_at):
    assert acked_at, "the producer thread did not get its acknowledgement"
    latency = received_at - acked_at[0]
    waited = received_at - started
    # Woken by the append: well before the fetch's 5 s would have run out. (Without the
    # wake-up the record would arrive about MAX_WAIT_MS - PRODUCE_AFTER_S after the ack.)
    assert latency < 1.5, f"record arrived {latency:.3f}s after its produce was acknowledged"
    assert waited < MAX_WAIT_MS / 1000, f"consumer waited {waited:.3f}s"


def test_confluent_long_poll_is_woken_by_a_produce(bootstrap, topic_name):
    create_topic(bootstrap, topic_name)
    fetches = []  # Fetch requests sent so far, from librdkafka's statistics

    def on_stats(raw):
        stats = json.loads(raw)
        fetches.append(sum(b["req"].get("Fetch", 0) for b in stats["brokers"].values()))

    c = ck_consumer(bootstrap, **{"fetch.wait.max.ms": MAX_WAIT_MS, "fetch.min.bytes": 1,
                                  "statistics.interval.ms": 100, "stats_cb": on_stats})
    try:
        c.assign([CkTopicPartition(topic_name, 0, 0)])
        acked_at = []
        started = time.monotonic()
        t = produce_later(bootstrap, topic_name, acked_at)
        msg = None
        while msg is None and time.monotonic() - started < 15:
            msg = c.poll(0.1)
        received_at = time.monotonic()
        t.join(30)
        assert msg is not None, "no record within 15 s"
        assert msg.error() is None, msg.error()
        assert (msg.offset(), msg.value()) == (0, b"wake up")
        check_latency(started, acked_at, received_at)
        # The consumer was parked, not spinning: a broker that answered empty fetches at once
        # would have seen hundreds of them during the second before the produce.
        assert fetches, "no statistics"
        assert max(fetches) <= 3, f"{max(fetches)} Fetch requests before the record arrived"
    finally:
        c.close()


def test_kafka_python_long_poll_is_woken_by_a_produce(bootstrap, topic_name):
    from kafka import TopicPartition

    create_topic(bootstrap, topic_name)
    c = kp_consumer(bootstrap, fetch_max_wait_ms=MAX_WAIT_MS, fetch_min_bytes=1)
    try:
        tp = TopicPartition(topic_name, 0)
        c.assign([tp])
        c.seek(tp, 0)
        acked_at = []
        started = time.monotonic()
        t = produce_later(bootstrap, topic_name, acked_at)
        records = []
        while not records and time.monotonic() - started < 15:
            records = c.poll(timeout_ms=100).get(tp, [])
        received_at = time.monotonic()
        t.join(30)
        assert records, "no record within 15 s"
        assert [(r.offset, r.value) for r in records] == [(0, b"wake up")]
        check_latency(started, acked_at, received_at)
    finally:
        c.close()


def test_a_batch_larger_than_the_fetch_limits_is_still_returned(bootstrap, topic_name):
    """KIP-74: the first batch is returned even when it exceeds max.partition.fetch.bytes and
    fetch.max.bytes, so a consumer with small limits is never stuck."""
    value = bytes(range(256)) * 2000  # 512,000 bytes
    produce("confluent", bootstrap, topic_name, [{"value": value}, {"value": b"next"}],
            **{"message.max.bytes": 2_000_000, "linger.ms": 0})
    got = consume("kafka-python", bootstrap, topic_name, 2,
                  max_partition_fetch_bytes=1024, fetch_max_bytes=1024)
    assert [(r.offset, r.value) for r in got] == [(0, value), (1, b"next")]
    got = consume("confluent", bootstrap, topic_name, 2,
                  **{"max.partition.fetch.bytes": 1024, "fetch.max.bytes": 1024,
                     "message.max.bytes": 1000})
    assert [(r.offset, r.value) for r in got] == [(0, value), (1, b"next")]


@pytest.mark.parametrize("client", CLIENTS)
def test_many_partitions_in_one_consumer(bootstrap, topic_name, client):
    """One consumer assigned to every partition of a topic: each partition's records arrive
    in order with their own contiguous offsets."""
    from confluent_kafka.admin import AdminClient, NewTopic

    partitions = 6
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic_name, partitions)])[topic_name].result(30)
    per_partition = 200
    for p in range(partitions):
        produce("confluent" if p % 2 else "kafka-python", bootstrap, topic_name,
                [{"value": b"p%d-%d" % (p, i)} for i in range(per_partition)], partition=p)
    seen = {}
    if client == "confluent":
        c = ck_consumer(bootstrap)
        try:
            c.assign([CkTopicPartition(topic_name, p, 0) for p in range(partitions)])
            deadline = time.monotonic() + 30
            while sum(map(len, seen.values())) < partitions * per_partition:
                assert time.monotonic() < deadline, "timed out"
                for m in c.consume(1000, 0.5):
                    assert m.error() is None, m.error()
                    seen.setdefault(m.partition(), []).append((m.offset(), m.value()))
        finally:
            c.close()
    else:
        from kafka import TopicPartition

        c = kp_consumer(bootstrap)
        try:
            tps = [TopicPartition(topic_name, p) for p in range(partitions)]
            c.assign(tps)
            c.seek_to_beginning()
            deadline = time.monotonic() + 30
            while sum(map(len, seen.values())) < partitions * per_partition:
                assert time.monotonic() < deadline, "timed out"
                for tp, recs in c.poll(timeout_ms=500).items():
                    seen.setdefault(tp.partition, []).extend((r.offset, r.value) for r in recs)
        finally:
            c.close()
    assert seen == {p: [(i, b"p%d-%d" % (p, i)) for i in range(per_partition)]
                    for p in range(partitions)}


def test_offset_out_of_range_resets_or_reports(bootstrap, topic_name):
    """A fetch past the end gets OFFSET_OUT_OF_RANGE: with auto.offset.reset the clients
    start over from the beginning, without it they report the error."""
    from confluent_kafka import KafkaError
    from kafka import TopicPartition

    produce("confluent", bootstrap, topic_name, [{"value": b"%d" % i} for i in range(5)])

    got = consume("confluent", bootstrap, topic_name, 5, offset=100,
                  **{"auto.offset.reset": "earliest"})
    assert [r.offset for r in got] == [0, 1, 2, 3, 4]
    c = ck_consumer(bootstrap)  # auto.offset.reset=error
    try:
        c.assign([CkTopicPartition(topic_name, 0, 100)])
        deadline = time.monotonic() + 15
        err = None
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None:
                assert m.error() is not None, "got a record from offset 100 of 5"
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "out of range" in err.str().lower() or "OFFSET_OUT_OF_RANGE" in err.str(), err
    finally:
        c.close()

    got = consume("kafka-python", bootstrap, topic_name, 5, offset=100,
                  auto_offset_reset="earliest")
    assert [r.offset for r in got] == [0, 1, 2, 3, 4]
    import kafka.errors as kp_errors

    kc = kp_consumer(bootstrap, auto_offset_reset="none")
    try:
        tp = TopicPartition(topic_name, 0)
        kc.assign([tp])
        kc.seek(tp, 100)
        with pytest.raises(kp_errors.OffsetOutOfRangeError):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                assert not kc.poll(timeout_ms=200), "got records from offset 100 of 5"
    finally:
        kc.close()
