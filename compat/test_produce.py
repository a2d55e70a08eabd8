"""Produce semantics the clients rely on: acks 0 / 1 / all, and MESSAGE_TOO_LARGE for a record
over message.max.bytes, after which the broker keeps serving."""

import pytest
from confluent_kafka import KafkaError

import kafka.errors as kp_errors

from support import CLIENTS, ck_producer, consume, kp_producer, produce

N = 500


def acks_conf(client, acks):
    if client == "confluent":
        return {"acks": acks}
    return {"acks": {"all": "all", "0": 0, "1": 1}[acks]}


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("producer", CLIENTS)
def test_acks(bootstrap, topic_name, producer, acks):
    records = [{"key": b"%d" % i, "value": b"acks-%s-%d" % (acks.encode(), i)} for i in range(N)]
    reported = produce(producer, bootstrap, topic_name, records, **acks_conf(producer, acks))
    offsets = [o for o, _ in reported]
    # With acks=0 there is no response and so no offset; what the clients report then is
    # their own invention (confluent: None, kafka-python: counts from 0), not checked here.
    if acks != "0":
        assert offsets == list(range(N))
    # Every record is there, in order (with acks=0 too: nothing was refused).
    other = "kafka-python" if producer == "confluent" else "confluent"
    got = consume(other, bootstrap, topic_name, N)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, r["key"], r["value"]) for i, r in enumerate(records)
    ]


# --- MESSAGE_TOO_LARGE ----------------------------------------------------------------------

BIG = 2 * 1024 * 1024  # over the broker's message.max.bytes (1048588)


def test_confluent_record_over_message_max_bytes_is_refused_by_the_broker(bootstrap,
                                                                          topic_name):
    # librdkafka refuses locally above its own message.max.bytes (1000000 by default), in
    # produce() itself; raised, it lets the record through so that the BROKER must refuse it.
    p = ck_producer(bootstrap, **{"message.max.bytes": 10_000_000, "linger.ms": 0})
    results = []
    p.produce(topic_name, value=b"x" * BIG, partition=0,
              on_delivery=lambda err, msg: results.append(err))  # must not raise locally
    assert p.flush(30) == 0
    assert len(results) == 1
    err = results[0]
    assert err is not None, "a 2 MB record was accepted"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err  # the broker's MESSAGE_TOO_LARGE
    assert not err.retriable()

    # The broker keeps serving, on the same producer and a new connection alike.
    results.clear()
    p.produce(topic_name, value=b"small", partition=0,
              on_delivery=lambda err, msg: results.append((err, msg.offset())))
    assert p.flush(30) == 0
    assert results == [(None, 0)]
    assert [o for o, _ in produce("confluent", bootstrap, topic_name, [{"value": b"after"}])] == [1]
    got = consume("confluent", bootstrap, topic_name, 2)
    assert [(r.offset, r.value) for r in got] == [(0, b"small"), (1, b"after")]


def test_kafka_python_record_over_message_max_bytes_is_refused_by_the_broker(bootstrap,
                                                                             topic_name):
    # kafka-python checks max_request_size locally in send(); raised, the broker decides.
    p = kp_producer(bootstrap, max_request_size=10_000_000, linger_ms=0, retries=0)
    try:
        future = p.send(topic_name, value=b"x" * BIG, partition=0)  # must not raise locally
        with pytest.raises(kp_errors.MessageSizeTooLargeError):
            future.get(30)
        meta = p.send(topic_name, value=b"small", partition=0).get(30)
        assert meta.offset == 0
    finally:
        p.close(10)
    got = consume("kafka-python", bootstrap, topic_name, 1)
    assert [(r.offset, r.value) for r in got] == [(0, b"small")]


def test_record_just_under_the_limit_is_accepted(bootstrap, topic_name):
    # 1,000,000 bytes of value fits under message.max.bytes (1048588) with the batch overhead.
    value = bytes(range(256)) * (1_000_000 // 256)
    p = ck_producer(bootstrap, **{"message.max.bytes": 10_000_000})
    results = []
    p.produce(topic_name, value=value, partition=0,
              on_delivery=lambda err, msg: results.append((err, msg.offset())))
    assert p.flush(30) == 0
    assert results == [(None, 0)]
    for client in CLIENTS:
        conf = {"fetch.max.bytes": 2_000_000} if client == "confluent" else {}
        (rec,) = consume(client, bootstrap, topic_name, 1, **conf)
        assert rec.value == value


@pytest.mark.broker_warnings(r"closing connection: produce with acks=0 refused")
@pytest.mark.parametrize("producer", CLIENTS)
def test_acks_0_refusal_closes_the_connection(broker, topic_name, producer):
    """With acks=0 there is no response to carry MESSAGE_TOO_LARGE, so the broker closes the
    connection (as Kafka does); the client reconnects and the next record arrives."""
    from support import assert_no_more, wait_until

    mark = broker.log_size()
    closed = "closing connection: produce with acks=0 refused"
    if producer == "confluent":
        p = ck_producer(broker.bootstrap, **{"acks": 0, "message.max.bytes": 10_000_000,
                                             "linger.ms": 0})
        p.produce(topic_name, value=b"x" * BIG, partition=0)
        assert p.flush(30) == 0
        wait_until(lambda: closed in broker.log_text(since=mark), 15, "the broker to close")
        p.produce(topic_name, value=b"small", partition=0)
        assert p.flush(30) == 0
    else:
        p = kp_producer(broker.bootstrap, acks=0, max_request_size=10_000_000, linger_ms=0)
        try:
            p.send(topic_name, value=b"x" * BIG, partition=0).get(30)
            wait_until(lambda: closed in broker.log_text(since=mark), 15, "the broker to close")
            p.send(topic_name, value=b"small", partition=0).get(30)
            p.flush(30)
        finally:
            p.close(10)
    other = "kafka-python" if producer == "confluent" else "confluent"
    got = consume(other, broker.bootstrap, topic_name, 1)
    assert [(r.offset, r.value) for r in got] == [(0, b"small")]
    assert_no_more(other, broker.bootstrap, topic_name, 0, 1)


def test_writes_to_internal_topics_are_refused(bootstrap):
    """__consumer_offsets is the group coordinator's state: a client's record there is refused
    (INVALID_TOPIC_EXCEPTION, as Kafka's broker answers). kafka-python never sends there (its
    metadata leaves internal topics without partitions), so confluent-kafka is the client."""
    from confluent_kafka.admin import AdminClient

    # Describing a group looks up its coordinator, which creates __consumer_offsets.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.describe_consumer_groups(["internal-probe"])["internal-probe"].result(30)
    assert "__consumer_offsets" in admin.list_topics(timeout=10).topics

    errors = []
    p = ck_producer(bootstrap, retries=0)
    p.produce("__consumer_offsets", value=b"forged", partition=0,
              on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_EXCEPTION], errors
