"""ListOffsets: earliest, latest, max-timestamp and offset-by-time, with known CreateTime
timestamps, through the consumers' and admin clients' offset look-ups."""

import pytest
from confluent_kafka import TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from support import ck_consumer, kp_consumer, produce

T0 = 1_700_000_000_000
# Two batches; timestamps rise within the first and not within the second, so that "the
# first record at or after T" has to be found record by record, not batch by batch.
BATCH_A = [T0, T0 + 1000, T0 + 2000]  # offsets 0..2
BATCH_B = [T0 + 5000, T0 + 3000, T0 + 4000]  # offsets 3..5

# target timestamp -> (offset, timestamp of that record), None: no such record
BY_TIME = {
    T0 - 10_000: (0, T0),
    T0: (0, T0),
    T0 + 500: (1, T0 + 1000),
    T0 + 1000: (1, T0 + 1000),
    T0 + 1500: (2, T0 + 2000),
    T0 + 2500: (3, T0 + 5000),
    T0 + 3500: (3, T0 + 5000),
    T0 + 5000: (3, T0 + 5000),
    T0 + 5001: None,
}
MAX_TIMESTAMP = (3, T0 + 5000)


@pytest.fixture
def timed_topic(bootstrap, topic_name):
    for i, batch in enumerate((BATCH_A, BATCH_B)):
        acks = produce("confluent", bootstrap, topic_name,
                       [{"value": b"%d" % ts, "timestamp": ts} for ts in batch],
                       **{"linger.ms": 100})
        assert [o for o, _ in acks] == [3 * i, 3 * i + 1, 3 * i + 2]
    return topic_name


def test_confluent_consumer_offsets(bootstrap, timed_topic):
    c = ck_consumer(bootstrap)
    try:
        tp = CkTopicPartition(timed_topic, 0)
        assert c.get_watermark_offsets(tp, timeout=10, cached=False) == (0, 6)
        got = {}
        for t in BY_TIME:
            # One timestamp per partition and call.
            (res,) = c.offsets_for_times([CkTopicPartition(timed_topic, 0, t)], timeout=10)
            assert res.error is None, res.error
            got[t] = res.offset
        # "No such record" is the end offset (-1, OFFSET_END) for librdkafka.
        assert got == {t: (v[0] if v else -1) for t, v in BY_TIME.items()}
    finally:
        c.close()


def test_confluent_admin_list_offsets(bootstrap, timed_topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = CkTopicPartition(timed_topic, 0)

    def one(spec):
        return admin.list_offsets({tp: spec})[tp].result(30)

    assert one(OffsetSpec.earliest()).offset == 0
    assert one(OffsetSpec.latest()).offset == 6
    res = one(OffsetSpec.max_timestamp())
    assert (res.offset, res.timestamp) == MAX_TIMESTAMP
    for t, want in BY_TIME.items():
        res = one(OffsetSpec.for_timestamp(t))
        if want is None:
            assert res.offset == -1, (t, res.offset)
        else:
            assert (res.offset, res.timestamp) == want, t


def test_kafka_python_consumer_offsets(bootstrap, timed_topic):
    from kafka import TopicPartition

    c = kp_consumer(bootstrap)
    try:
        tp = TopicPartition(timed_topic, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 6}
        for t, want in BY_TIME.items():
            res = c.offsets_for_times({tp: t})[tp]
            if want is None:
                assert res is None, (t, res)
            else:
                assert (res.offset, res.timestamp) == want, t
    finally:
        c.close()


def test_kafka_python_admin_list_offsets(bootstrap, timed_topic):
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.protocol.consumer.offsets import OffsetSpec as KpOffsetSpec

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        tp = TopicPartition(timed_topic, 0)

        def one(spec):
            return admin.list_partition_offsets({tp: spec})[tp]

        assert one(KpOffsetSpec.EARLIEST).offset == 0
        assert one(KpOffsetSpec.LATEST).offset == 6
        res = one(KpOffsetSpec.MAX_TIMESTAMP)
        assert (res.offset, res.timestamp) == MAX_TIMESTAMP
        res = one(T0 + 1500)
        assert (res.offset, res.timestamp) == BY_TIME[T0 + 1500]
    finally:
        admin.close()


def test_offsets_of_an_empty_partition(bootstrap, topic_name):
    from confluent_kafka.admin import NewTopic
    from kafka import TopicPartition

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic_name, 1)])[topic_name].result(30)
    c = ck_consumer(bootstrap)
    try:
        assert c.get_watermark_offsets(CkTopicPartition(topic_name, 0), timeout=10,
                                       cached=False) == (0, 0)
        (res,) = c.offsets_for_times([CkTopicPartition(topic_name, 0, T0)], timeout=10)
        assert res.offset == -1
    finally:
        c.close()
    kc = kp_consumer(bootstrap)
    try:
        tp = TopicPartition(topic_name, 0)
        assert kc.beginning_offsets([tp]) == {tp: 0}
        assert kc.end_offsets([tp]) == {tp: 0}
        assert kc.offsets_for_times({tp: T0}) == {tp: None}
    finally:
        kc.close()
