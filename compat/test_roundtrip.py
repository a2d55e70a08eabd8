"""Records go through strom unchanged: keys, values, headers, CreateTime timestamps, null keys,
tombstones and empty values, with contiguous offsets, across both Python clients."""

import time

import pytest

from support import CLIENTS, assert_no_more, consume, produce

T0 = 1_700_000_000_123  # a CreateTime the producer sets (Nov 2023)


def sample_records(producer):
    # kafka-python's producer only takes (str, bytes) headers; confluent also sends null ones.
    null_header = b"" if producer == "kafka-python" else None
    return [
        {"key": b"k1", "value": b"v1", "headers": [("h1", b"x"), ("h2", null_header)],
         "timestamp": T0},
        {"key": None, "value": b"no key", "timestamp": T0 + 1},
        {"key": b"tombstone", "value": None, "timestamp": T0 + 2},
        {"key": b"empty value", "value": b"", "timestamp": T0 + 3},
        {"key": b"", "value": b"empty key", "timestamp": T0 + 4},
        {"key": bytes(range(256)), "value": bytes(range(255, -1, -1)) * 40,
         "headers": [("dup", b"1"), ("dup", b"2"), ("\u00fcnicode", "\u00e9t\u00e9".encode())],
         "timestamp": T0 - 86_400_000},  # older than the one before: not monotonic
        {"key": b"now", "value": b"producer picks the timestamp"},  # no timestamp given
    ]


@pytest.mark.parametrize("consumer", CLIENTS)
@pytest.mark.parametrize("producer", CLIENTS)
def test_roundtrip_fields(bootstrap, topic_name, producer, consumer):
    records = sample_records(producer)
    before = int(time.time() * 1000)
    acks = produce(producer, bootstrap, topic_name, records)
    after = int(time.time() * 1000)
    assert [o for o, _ in acks] == list(range(len(records)))

    got = consume(consumer, bootstrap, topic_name, len(records))
    assert [r.offset for r in got] == list(range(len(records)))
    for sent, (offset, acked_ts), rec in zip(records, acks, got):
        assert rec.key == sent["key"], offset
        assert rec.value == sent["value"], offset
        want_headers = sent.get("headers") or []
        assert rec.headers == want_headers, offset
        assert rec.timestamp_type == "create", offset
        if "timestamp" in sent:
            assert rec.timestamp == sent["timestamp"], offset
        else:
            assert before - 1000 <= rec.timestamp <= after + 1000, offset
        if acked_ts not in (None, -1):
            assert acked_ts == rec.timestamp, offset
    assert_no_more(consumer, bootstrap, topic_name, 0, len(records))


@pytest.mark.parametrize("consumer", CLIENTS)
def test_consume_from_the_middle(bootstrap, topic_name, consumer):
    records = [{"key": b"k%d" % i, "value": b"v%d" % i, "timestamp": T0 + i} for i in range(20)]
    produce("confluent", bootstrap, topic_name, records)
    got = consume(consumer, bootstrap, topic_name, 7, offset=13)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, b"k%d" % i, b"v%d" % i) for i in range(13, 20)
    ]


@pytest.mark.parametrize("consumer", CLIENTS)
@pytest.mark.parametrize("producer", CLIENTS)
def test_ten_thousand_in_order(bootstrap, topic_name, producer, consumer):
    n = 10_000
    records = [{"value": b"%08d" % i, "key": b"k%d" % (i % 7)} for i in range(n)]
    conf = {"linger.ms": 20, "batch.num.messages": 1000} if producer == "confluent" else {
        "linger_ms": 20, "batch_size": 64 * 1024}
    acks = produce(producer, bootstrap, topic_name, records, timeout=90, **conf)
    assert [o for o, _ in acks] == list(range(n))

    got = consume(consumer, bootstrap, topic_name, n, timeout=90)
    assert [r.offset for r in got] == list(range(n))
    assert [r.value for r in got] == [r["value"] for r in records]
    assert [r.key for r in got] == [r["key"] for r in records]
    assert_no_more(consumer, bootstrap, topic_name, 0, n)


@pytest.mark.parametrize("producer", CLIENTS)
def test_log_append_time_topic(bootstrap, topic_name, producer):
    """On a LogAppendTime topic the broker stamps the batches; both the produce response (the
    producer's report) and the consumers see its time, not the producer's."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, config={
        "message.timestamp.type": "LogAppendTime"})])[topic_name].result(30)
    before = int(time.time() * 1000)
    acks = produce(producer, bootstrap, topic_name,
                   [{"value": b"old", "timestamp": T0}, {"value": b"unset"}])
    after = int(time.time() * 1000)
    assert [o for o, _ in acks] == [0, 1]
    for _, ts in acks:
        assert before <= ts <= after, (ts, before, after)
    for consumer in CLIENTS:
        got = consume(consumer, bootstrap, topic_name, 2)
        assert [(r.value, r.timestamp_type) for r in got] == [(b"old", "append"),
                                                              (b"unset", "append")]
        assert [r.timestamp for r in got] == [ts for _, ts in acks], consumer
