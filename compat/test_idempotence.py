"""Idempotent producers (InitProducerId, per-partition sequence numbers) across broker crashes:
the broker is SIGKILLed and restarted on the same data dir and port while an idempotent producer
with acks=all keeps sending. The producer retries what was in flight with the same producer id
and sequence numbers, and the restarted broker, having rebuilt its producer state from the log,
must answer a retry of an already written batch with its original offsets instead of writing it
again. In the end every record is in the log exactly once, in send order, at the offset the
producer was told, with no gap."""

import threading
import time

from confluent_kafka import TopicPartition

from support import (TORN_TAIL_AFTER_KILL, ck_consumer, ck_producer, create_topic, kp_consumer,
                     wait_until)

PARTITIONS = 3


def read_partition_values(bootstrap, topic, partition, count, timeout=60):
    """Every record of a partition from offset 0 as [(offset, value)] (exactly `count`)."""
    c = ck_consumer(bootstrap, **{"fetch.max.bytes": 8 * 1024 * 1024})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=10000, timeout=0.5):
                assert not m.error(), m.error()
                out.append((m.offset(), m.value()))
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10,
                                            cached=False)
    finally:
        c.close()
    assert (low, high) == (0, count), f"partition {partition}: watermarks {(low, high)}"
    return out


def check_exactly_once(bootstrap, topic, total, acked):
    """`acked` holds (partition, offset, seq) of every acknowledged record; sequence number i
    went to partition i % PARTITIONS with the value b"%08d" % i."""
    assert len(acked) == total, f"{total - len(acked)} records never acknowledged"
    for p in range(PARTITIONS):
        want = list(range(p, total, PARTITIONS))
        log = read_partition_values(bootstrap, topic, p, len(want))
        seqs = [int(v) for _, v in log]
        dups = len(seqs) - len(set(seqs))
        assert dups == 0, f"partition {p}: {dups} duplicated records"
        assert seqs == want, f"partition {p}: records missing or out of order"
        at = dict(log)
        wrong = [(o, s) for q, o, s in acked if q == p and at.get(o) != b"%08d" % s]
        assert not wrong, f"partition {p}: acknowledged offsets that hold something else: " \
                          f"{wrong[:5]}"


def kill_at(broker, acked_count, thresholds, done):
    """SIGKILLs and restarts `broker` each time the producer passed the next threshold."""
    for threshold in thresholds:
        wait_until(lambda: acked_count() >= threshold or done.is_set(), 90,
                   f"{threshold} acknowledged records")
        # Acknowledgements first: the producer may pass the threshold and finish between two
        # checks, which is no failure (it just means the last kill comes after the load).
        if acked_count() < threshold:
            raise AssertionError(f"the producer finished before {threshold} records were acked")
        assert broker.kill() == -9
        broker.restart()


@TORN_TAIL_AFTER_KILL
def test_confluent_idempotent_producer_across_broker_kills(broker_factory, topic_name):
    total = 100_000
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    p = ck_producer(b.bootstrap, **{
        "enable.idempotence": True, "acks": "all", "linger.ms": 20,
        "message.timeout.ms": 60000, "reconnect.backoff.max.ms": 500,
        "queue.buffering.max.messages": 20000,
    })
    acked, errors = [], []
    done = threading.Event()

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.partition(), msg.offset(), int(msg.value())))

    def run():
        try:
            for i in range(total):
                while True:
                    try:
                        p.produce(topic_name, value=b"%08d" % i, partition=i % PARTITIONS,
                                  on_delivery=on_delivery)
                        break
                    except BufferError:
                        p.poll(0.05)
                p.poll(0)
                if i % 1000 == 999:
                    # Paced to about 1 s in all, so that the kills land under load rather
                    # than after a producer that finished between two checks.
                    time.sleep(0.01)
            p.flush(90)
        finally:
            done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    kill_at(b, lambda: len(acked), [15_000, 45_000, 75_000], done)
    assert done.wait(100), "the producer did not finish"
    t.join(5)
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]}"
    check_exactly_once(b.bootstrap, topic_name, total, acked)


@TORN_TAIL_AFTER_KILL
def test_kafka_python_idempotent_producer_across_broker_kills(broker_factory, topic_name):
    from kafka import KafkaProducer

    total = 6000
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, enable_idempotence=True, acks="all",
                      linger_ms=5, delivery_timeout_ms=60000, reconnect_backoff_max_ms=500)
    acked, errors = [], []
    done = threading.Event()

    def run():
        try:
            for i in range(total):
                f = p.send(topic_name, value=b"%08d" % i, partition=i % PARTITIONS)
                f.add_callback(lambda md, i=i: acked.append((md.partition, md.offset, i)))
                f.add_errback(lambda e: errors.append(e))
                if i % 500 == 499:
                    time.sleep(0.05)  # spread the load so the kills land mid-stream
            p.flush(90)
        finally:
            done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    kill_at(b, lambda: len(acked), [1500, 3500], done)
    assert done.wait(100), "the producer did not finish"
    t.join(5)
    p.close(10)
    assert not errors, f"{len(errors)} delivery errors, first: {errors[0]!r}"
    check_exactly_once(b.bootstrap, topic_name, total, acked)
    # And kafka-python reads the same back.
    from kafka import TopicPartition as KpTopicPartition

    c = kp_consumer(b.bootstrap)
    try:
        tps = [KpTopicPartition(topic_name, q) for q in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning()
        n = 0
        deadline = time.monotonic() + 30
        while n < total and time.monotonic() < deadline:
            n += sum(len(r) for r in c.poll(timeout_ms=500).values())
        assert n == total
    finally:
        c.close()
