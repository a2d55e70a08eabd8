"""The storage engine as clients see it: time and size retention and the log start offset (low
watermark), DeleteRecords, log compaction (latest value per key, tombstones removed after
`delete.retention.ms`, keyless records refused), and topic / broker configuration through
DescribeConfigs, AlterConfigs and IncrementalAlterConfigs (values, sources, synonyms, and the
change taking effect)."""

import os
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, ResourceType)

from support import (_ck_rec, _kp_rec, ck_consumer, ck_producer, consume, create_topic,
                     kp_consumer, kp_producer, produce, wait_until)

HOUR_MS = 3600 * 1000


def now_ms():
    return int(time.time() * 1000)


def watermarks(bootstrap, topic, partition=0):
    c = ck_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def segment_bases(broker, topic, partition=0):
    """Base offsets of the partition's live segment files (not those renamed .deleted)."""
    d = os.path.join(broker.data_dir, "logs", f"{topic}-{partition}")
    return sorted(int(f[:-4]) for f in os.listdir(d) if f.endswith(".log"))


def kp_first_offset(bootstrap, topic, partition=0):
    """kafka-python: the first record an `earliest` reset reaches from offset 0."""
    from kafka import TopicPartition as KpTopicPartition

    c = kp_consumer(bootstrap, auto_offset_reset="earliest")
    try:
        tp = KpTopicPartition(topic, partition)
        c.assign([tp])
        c.seek(tp, 0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=1000).values():
                return recs[0].offset, c.beginning_offsets([tp])[tp]
        raise AssertionError("kafka-python read nothing")
    finally:
        c.close()


# --- retention ----------------------------------------------------------------------------

def test_time_retention_deletes_old_segments(broker_factory, topic_name):
    b = broker_factory(**{"log.retention.check.interval.ms": "200"})
    create_topic(b.bootstrap, topic_name, config={
        "retention.ms": "60000", "segment.ms": "1000", "file.delete.delay.ms": "0"})
    # Records an hour old: their segment is past retention.ms as soon as it is not the active
    # one. A record of now rolls a new segment (the active one's first record is older than
    # segment.ms) and stays.
    old = produce("confluent", b.bootstrap, topic_name,
                  [{"value": b"old-%d" % i, "timestamp": now_ms() - HOUR_MS} for i in range(20)])
    assert [o for o, _ in old] == list(range(20))
    fresh = produce("kafka-python", b.bootstrap, topic_name,
                    [{"value": b"fresh-%d" % i} for i in range(5)])
    assert [o for o, _ in fresh] == list(range(20, 25))

    wait_until(lambda: watermarks(b.bootstrap, topic_name) == (20, 25), 20,
               "retention to move the log start offset to 20")
    wait_until(lambda: segment_bases(b, topic_name) == [20], 10,
               "the old segment files to be removed")
    # Both consumers: offset 0 is out of range now; an earliest reset lands on 20.
    got = consume("confluent", b.bootstrap, topic_name, 5, offset=0,
                  **{"auto.offset.reset": "earliest"})
    assert [(r.offset, r.value) for r in got] == [(20 + i, b"fresh-%d" % i) for i in range(5)]
    assert kp_first_offset(b.bootstrap, topic_name) == (20, 20)
    # The log start offset survives a restart.
    b.stop()
    b.restart()
    assert watermarks(b.bootstrap, topic_name) == (20, 25)


def test_size_retention_deletes_oldest_segments(broker_factory, topic_name):
    b = broker_factory(**{"log.retention.check.interval.ms": "200"})
    mb = 1024 * 1024
    # Kafka 4's smallest segment.bytes is 1 MiB.
    create_topic(b.bootstrap, topic_name, config={
        "retention.bytes": str(mb), "segment.bytes": str(mb), "file.delete.delay.ms": "0"})
    value = b"v" * 10_000
    acks = produce("confluent", b.bootstrap, topic_name, [{"value": value}] * 350,
                   **{"linger.ms": 0})
    assert [o for o, _ in acks] == list(range(350))

    def trimmed():
        low, high = watermarks(b.bootstrap, topic_name)
        return low > 0 and low == segment_bases(b, topic_name)[0] and (low, high)

    low, high = wait_until(trimmed, 20, "size retention to delete the oldest segments")
    assert high == 350
    # Kafka deletes whole segments, oldest first, while the rest stays over retention.bytes.
    d = os.path.join(b.data_dir, "logs", f"{topic_name}-0")
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".log"))
    assert size <= 2 * mb, size
    got = consume("kafka-python", b.bootstrap, topic_name, high - low, offset=low)
    assert [r.offset for r in got] == list(range(low, high))


# --- DeleteRecords ------------------------------------------------------------------------

def test_confluent_delete_records(broker_factory, topic_name):
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, partitions=2)
    for p in range(2):
        produce("confluent", b.bootstrap, topic_name, [{"value": b"%d" % i} for i in range(10)],
                partition=p)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = admin.delete_records([TopicPartition(topic_name, 0, 4),
                               TopicPartition(topic_name, 1, -1)])  # -1: the high watermark
    lows = {tp.partition: f.result(30).low_watermark for tp, f in fs.items()}
    assert lows == {0: 4, 1: 10}
    assert watermarks(b.bootstrap, topic_name, 0) == (4, 10)
    assert watermarks(b.bootstrap, topic_name, 1) == (10, 10)

    # Below the low watermark: with auto.offset.reset=error librdkafka reports the broker's
    # OFFSET_OUT_OF_RANGE; with earliest it resets to 4.
    c = ck_consumer(b.bootstrap)
    try:
        c.assign([TopicPartition(topic_name, 0, 2)])
        err = None
        deadline = time.monotonic() + 20
        while err is None and time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None:
                assert m.error(), f"read offset {m.offset()} below the low watermark"
                err = m.error()
        assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "Offset out of range" in err.str()
    finally:
        c.close()
    got = consume("confluent", b.bootstrap, topic_name, 6, offset=2,
                  **{"auto.offset.reset": "earliest"})
    assert [(r.offset, r.value) for r in got] == [(i, b"%d" % i) for i in range(4, 10)]

    # Past the high watermark: OFFSET_OUT_OF_RANGE.
    fs = admin.delete_records([TopicPartition(topic_name, 0, 11)])
    with pytest.raises(KafkaException) as info:
        list(fs.values())[0].result(30)
    assert info.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    # A lower offset than the current low watermark changes nothing.
    fs = admin.delete_records([TopicPartition(topic_name, 0, 2)])
    assert list(fs.values())[0].result(30).low_watermark == 4

    # The log start offsets are kept over a SIGKILL.
    assert b.kill() == -9
    b.restart()
    assert watermarks(b.bootstrap, topic_name, 0) == (4, 10)
    assert watermarks(b.bootstrap, topic_name, 1) == (10, 10)


def test_kafka_python_delete_records(bootstrap, topic_name):
    import kafka.errors as kp_errors
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KpTopicPartition

    create_topic(bootstrap, topic_name)
    produce("kafka-python", bootstrap, topic_name, [{"value": b"%d" % i} for i in range(10)])
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    tp = KpTopicPartition(topic_name, 0)
    try:
        result = admin.delete_records({tp: 6})
    finally:
        admin.close()
    assert result == {tp: {"partition_index": 0, "low_watermark": 6, "error_code": 0}}

    c = kp_consumer(bootstrap, auto_offset_reset="none")
    try:
        c.assign([tp])
        assert c.beginning_offsets([tp]) == {tp: 6}
        c.seek(tp, 1)
        with pytest.raises(kp_errors.OffsetOutOfRangeError):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert not c.poll(timeout_ms=1000), "read below the low watermark"
    finally:
        c.close()
    assert kp_first_offset(bootstrap, topic_name) == (6, 6)


# --- compaction ---------------------------------------------------------------------------

def test_compaction_keeps_the_latest_value_per_key(broker_factory, topic_name):
    b = broker_factory(**{"log.cleaner.backoff.ms": "100"})
    create_topic(b.bootstrap, topic_name, config={
        "cleanup.policy": "compact", "segment.ms": "100", "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "1000", "file.delete.delay.ms": "0"})
    keys = [b"k%d" % k for k in range(10)]
    latest = {}
    for r in range(5):
        records = [{"key": k, "value": b"r%d-%s" % (r, k)} for k in keys]
        produce("confluent", b.bootstrap, topic_name, records)
        latest.update((rec["key"], rec["value"]) for rec in records)
    produce("kafka-python", b.bootstrap, topic_name,
            [{"key": b"k3", "value": None}, {"key": b"k7", "value": None}])
    latest[b"k3"] = latest[b"k7"] = None
    end = 52

    # The cleaner only compacts inactive segments: a record under another key now and then
    # rolls the active segment (segment.ms=100) and makes the log dirty again.
    p = ck_producer(b.bootstrap, **{"linger.ms": 0})
    ticks = 0

    def tick():
        nonlocal ticks
        ticks += 1
        p.produce(topic_name, key=b"tick", value=b"%d" % ticks)
        assert p.flush(10) == 0

    def read_all(client):
        high = watermarks(b.bootstrap, topic_name)[1]
        got = []
        # Offsets of a compacted log have gaps: read until the high watermark.
        for r in consume_until(client, b.bootstrap, topic_name, high):
            if r.key != b"tick":
                got.append((r.offset, r.key, r.value))
        return got

    def compacted():
        tick()
        got = read_all("confluent")
        return len(got) == len(keys) and got

    got = wait_until(compacted, 60, "compaction down to one record per key", interval=0.2)
    assert {k: v for _, k, v in got} == latest
    # The survivors keep their offsets: round 4's at 40..49, the tombstones at 50 and 51.
    assert [o for o, k, _ in got] == sorted(o for o, _, _ in got)
    assert {k: o for o, k, _ in got} == {
        **{k: 40 + i for i, k in enumerate(keys)}, b"k3": 50, b"k7": 51}
    assert read_all("kafka-python") == got
    assert watermarks(b.bootstrap, topic_name)[1] >= end

    # Tombstones go after delete.retention.ms (counted from the cleaning that first kept them).
    def tombstones_gone():
        tick()
        return {k for _, k, _ in read_all("confluent")} == set(keys) - {b"k3", b"k7"}

    wait_until(tombstones_gone, 60, "the tombstones to be removed", interval=0.2)
    final = {k: v for _, k, v in read_all("kafka-python")}
    assert final == {k: v for k, v in latest.items() if v is not None}

    # A compacted topic refuses records without a key: INVALID_RECORD.
    errors = []
    p.produce(topic_name, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(10) == 0
    assert [e.code() for e in errors] == [KafkaError.INVALID_RECORD]
    import kafka.errors as kp_errors

    kp = kp_producer(b.bootstrap, retries=0)
    try:
        with pytest.raises(kp_errors.InvalidRecordError, match="without key"):
            kp.send(topic_name, value=b"no key").get(20)
    finally:
        kp.close(10)


def consume_until(client, bootstrap, topic, high, partition=0, timeout=30):
    """Reads a partition from its start to `high` (exclusive), whatever the gaps."""
    out = []
    if client == "confluent":
        c = ck_consumer(bootstrap, **{"auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition(topic, partition, 0)])
            deadline = time.monotonic() + timeout
            while (not out or out[-1].offset < high - 1) and time.monotonic() < deadline:
                for m in c.consume(num_messages=1000, timeout=0.5):
                    if m.error():
                        raise KafkaException(m.error())
                    out.append(_ck_rec(m))
        finally:
            c.close()
        assert not out or out[-1].offset >= high - 1, "did not reach the high watermark"
        return out
    from kafka import TopicPartition as KpTopicPartition

    c = kp_consumer(bootstrap)
    try:
        tp = KpTopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while (not out or out[-1].offset < high - 1) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
    finally:
        c.close()
    assert not out or out[-1].offset >= high - 1, "did not reach the high watermark"
    return [_kp_rec(r) for r in out]


# --- configs ------------------------------------------------------------------------------

def ck_describe(admin, resource, names):
    """{name: (value, source, [(synonym, value, source)])} for `names` of one resource."""
    got = admin.describe_configs([resource])[resource].result(30)
    return {n: (got[n].value, ConfigSource(got[n].source),
                [(s.name, s.value, ConfigSource(s.source)) for s in got[n].synonyms.values()])
            for n in names}


def ck_incremental(admin, resource_type, name, ops):
    """Runs IncrementalAlterConfigs with [(key, op, value)] on one resource."""
    res = ConfigResource(resource_type, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, op, v in ops])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(30)


def ck_produce_one(bootstrap, topic, size):
    """Produces one record of `size` bytes alone in its batch; returns the error (or None)."""
    p = ck_producer(bootstrap, **{"message.max.bytes": 10_000_000, "retries": 0})
    errors = []
    p.produce(topic, value=b"x" * size, on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(30) == 0
    return errors[0]


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_confluent_topic_configs_round_trip(broker_factory, topic_name):
    b = broker_factory()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    create_topic(b.bootstrap, topic_name, config={"retention.ms": "12345"})
    topic = ConfigResource(ResourceType.TOPIC, topic_name)
    S = ConfigSource
    assert ck_describe(admin, topic, ["retention.ms", "max.message.bytes", "cleanup.policy"]) == {
        "retention.ms": ("12345", S.DYNAMIC_TOPIC_CONFIG, [
            ("retention.ms", "12345", S.DYNAMIC_TOPIC_CONFIG),
            ("log.retention.hours", "168", S.DEFAULT_CONFIG)]),
        "max.message.bytes": ("1048588", S.DEFAULT_CONFIG, [
            ("message.max.bytes", "1048588", S.DEFAULT_CONFIG)]),
        "cleanup.policy": ("delete", S.DEFAULT_CONFIG, [
            ("log.cleanup.policy", "delete", S.DEFAULT_CONFIG)]),
    }

    # Incremental: SET one key, DELETE another (back to its default), APPEND to a list.
    ck_incremental(admin, ResourceType.TOPIC, topic_name, [
        ("max.message.bytes", AlterConfigOpType.SET, "2000"),
        ("retention.ms", AlterConfigOpType.DELETE, None),
        ("cleanup.policy", AlterConfigOpType.APPEND, "compact"),
    ])
    got = ck_describe(admin, topic, ["retention.ms", "max.message.bytes", "cleanup.policy"])
    assert got["max.message.bytes"][:2] == ("2000", S.DYNAMIC_TOPIC_CONFIG)
    assert got["retention.ms"][:2] == ("604800000", S.DEFAULT_CONFIG)
    assert got["cleanup.policy"][:2] == ("delete,compact", S.DYNAMIC_TOPIC_CONFIG)
    ck_incremental(admin, ResourceType.TOPIC, topic_name, [
        ("cleanup.policy", AlterConfigOpType.SUBTRACT, "compact")])
    assert ck_describe(admin, topic, ["cleanup.policy"])["cleanup.policy"][:2] == \
        ("delete", S.DYNAMIC_TOPIC_CONFIG)

    # The new limit applies to produce at once (batch size against max.message.bytes).
    err = ck_produce_one(b.bootstrap, topic_name, 5000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    assert ck_produce_one(b.bootstrap, topic_name, 100) is None

    # Legacy AlterConfigs replaces the whole set: max.message.bytes falls back to its default.
    for f in admin.alter_configs([ConfigResource(ResourceType.TOPIC, topic_name,
                                                 set_config={"segment.ms": "600000"})]).values():
        f.result(30)
    got = ck_describe(admin, topic, ["max.message.bytes", "segment.ms", "cleanup.policy"])
    assert got["max.message.bytes"][:2] == ("1048588", S.DEFAULT_CONFIG)
    assert got["segment.ms"][:2] == ("600000", S.DYNAMIC_TOPIC_CONFIG)
    assert got["cleanup.policy"][:2] == ("delete", S.DEFAULT_CONFIG)
    assert ck_produce_one(b.bootstrap, topic_name, 5000) is None

    # Invalid values are refused and change nothing.
    with pytest.raises(KafkaException) as info:
        ck_incremental(admin, ResourceType.TOPIC, topic_name, [
            ("max.message.bytes", AlterConfigOpType.SET, "not-a-number")])
    assert info.value.args[0].code() == KafkaError.INVALID_CONFIG
    with pytest.raises(KafkaException) as info:
        ck_incremental(admin, ResourceType.TOPIC, topic_name, [
            ("no.such.config", AlterConfigOpType.SET, "1")])
    assert info.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert ck_describe(admin, topic, ["max.message.bytes"])["max.message.bytes"][0] == "1048588"


def test_confluent_broker_configs_round_trip(broker_factory, topic_name):
    b = broker_factory(**{"log.cleaner.backoff.ms": "1234"})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    create_topic(b.bootstrap, topic_name)
    broker = ConfigResource(ResourceType.BROKER, "1")
    topic = ConfigResource(ResourceType.TOPIC, topic_name)
    S = ConfigSource
    # (confluent-kafka keys `synonyms` by name, so of a static value and the default of the
    # same name it shows only the last: kafka-python's test checks the whole list.)
    assert ck_describe(admin, broker, ["log.cleaner.backoff.ms", "log.retention.ms",
                                       "message.max.bytes"]) == {
        "log.cleaner.backoff.ms": ("1234", S.STATIC_BROKER_CONFIG, [
            ("log.cleaner.backoff.ms", "15000", S.DEFAULT_CONFIG)]),
        "log.retention.ms": (None, S.DEFAULT_CONFIG, []),
        "message.max.bytes": ("1048588", S.DEFAULT_CONFIG, [
            ("message.max.bytes", "1048588", S.DEFAULT_CONFIG)]),
    }

    # A dynamic per-broker value: the broker and every topic without its own value see it.
    ck_incremental(admin, ResourceType.BROKER, "1", [
        ("log.retention.ms", AlterConfigOpType.SET, "999999"),
        ("message.max.bytes", AlterConfigOpType.SET, "3000")])
    got = ck_describe(admin, broker, ["log.retention.ms", "message.max.bytes"])
    assert got["log.retention.ms"] == ("999999", S.DYNAMIC_BROKER_CONFIG, [
        ("log.retention.ms", "999999", S.DYNAMIC_BROKER_CONFIG),
        ("log.retention.hours", "168", S.DEFAULT_CONFIG)])
    assert got["message.max.bytes"][:2] == ("3000", S.DYNAMIC_BROKER_CONFIG)
    got = ck_describe(admin, topic, ["retention.ms", "max.message.bytes"])
    assert got["retention.ms"][:2] == ("999999", S.DYNAMIC_BROKER_CONFIG)
    assert got["max.message.bytes"][:2] == ("3000", S.DYNAMIC_BROKER_CONFIG)
    err = ck_produce_one(b.bootstrap, topic_name, 5000)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err

    # Dynamic broker configs are kept over a restart; a static-only one cannot be changed.
    b.stop()
    b.restart()
    assert ck_describe(admin, broker, ["log.retention.ms"])["log.retention.ms"][:2] == \
        ("999999", S.DYNAMIC_BROKER_CONFIG)
    with pytest.raises(KafkaException):
        ck_incremental(admin, ResourceType.BROKER, "1", [
            ("log.retention.check.interval.ms", AlterConfigOpType.SET, "5")])

    ck_incremental(admin, ResourceType.BROKER, "1", [
        ("log.retention.ms", AlterConfigOpType.DELETE, None),
        ("message.max.bytes", AlterConfigOpType.DELETE, None)])
    got = ck_describe(admin, topic, ["retention.ms", "max.message.bytes"])
    assert got["retention.ms"][:2] == ("604800000", S.DEFAULT_CONFIG)
    assert got["max.message.bytes"][:2] == ("1048588", S.DEFAULT_CONFIG)
    assert ck_produce_one(b.bootstrap, topic_name, 5000) is None


def test_kafka_python_configs_round_trip(bootstrap, topic_name):
    import kafka.errors as kp_errors
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType as KpType

    create_topic(bootstrap, topic_name, config={"retention.ms": "12345"})
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        def describe(**kw):
            r = admin.describe_configs([KpConfigResource(KpType.TOPIC, topic_name)], **kw)
            return r["topic"][topic_name]

        modified = describe(include_synonyms=True)  # default filter: only non-default keys
        assert set(modified) == {"retention.ms"}
        assert modified["retention.ms"]["value"] == "12345"
        assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert modified["retention.ms"]["synonyms"] == [
            {"name": "retention.ms", "value": "12345", "source": "DYNAMIC_TOPIC_CONFIG"},
            {"name": "log.retention.hours", "value": "168", "source": "DEFAULT_CONFIG"}]
        everything = describe(config_filter="all")
        assert everything["max.message.bytes"]["value"] == "1048588"
        assert everything["max.message.bytes"]["config_source"] == "DEFAULT_CONFIG"

        # kafka-python sends IncrementalAlterConfigs (SET) to a 2.3+ broker.
        assert admin.alter_configs([KpConfigResource(
            KpType.TOPIC, topic_name, {"max.message.bytes": "2000"})]) == {
            "topic": {topic_name: "OK"}}
        modified = describe()
        assert {k: (v["value"], v["config_source"]) for k, v in modified.items()} == {
            "retention.ms": ("12345", "DYNAMIC_TOPIC_CONFIG"),
            "max.message.bytes": ("2000", "DYNAMIC_TOPIC_CONFIG")}
        p = kp_producer(bootstrap, max_request_size=10_000_000, retries=0)
        try:
            with pytest.raises(kp_errors.MessageSizeTooLargeError):
                p.send(topic_name, b"x" * 5000).get(20)
            assert p.send(topic_name, b"x" * 100).get(20).offset == 0
        finally:
            p.close(10)

        admin.reset_configs([KpConfigResource(KpType.TOPIC, topic_name,
                                              {"max.message.bytes": None})])
        assert set(describe()) == {"retention.ms"}

        broker = admin.describe_configs([KpConfigResource(KpType.BROKER, "1")],
                                        config_filter="all", include_synonyms=True)
        conf = broker["broker"]["1"]
        # The shared broker's --override values are static broker configs.
        delay = conf["group.initial.rebalance.delay.ms"]
        assert (delay["value"], delay["config_source"]) == ("0", "STATIC_BROKER_CONFIG")
        assert delay["synonyms"] == [
            {"name": "group.initial.rebalance.delay.ms", "value": "0",
             "source": "STATIC_BROKER_CONFIG"},
            {"name": "group.initial.rebalance.delay.ms", "value": "3000",
             "source": "DEFAULT_CONFIG"}]
        assert conf["num.partitions"]["config_source"] == "DEFAULT_CONFIG"
    finally:
        admin.close()
