"""Transactions (KIP-98) with real clients: InitProducerId with a transactional id,
AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, the markers the coordinator
writes, the last stable offset (LSO) that Fetch and ListOffsets report to read_committed
consumers, and DescribeTransactions / ListTransactions.

Kafka's layout is checked where it is deterministic: a transaction's records, then one control
record (the COMMIT or ABORT marker, one offset, never returned to applications) per partition.
Markers are written after EndTxn is answered, so whatever depends on them is waited for."""

import os
import random
import subprocess
import sys
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from support import (CLIENTS, TORN_TAIL_AFTER_KILL, create_topic, produce, produce_spread,
                     wait_until)
from txn_support import (
    PartitionReader,
    TxnCopier,
    TxnProducer,
    end_offsets,
    is_fenced,
    produce_txn,
    read_records,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def recs(first_offset, values):
    """[(offset, key, value)] of `values` written from `first_offset` (keys = values)."""
    return [(first_offset + i, v, v) for i, v in enumerate(values)]


def wait_equal(fn, want, timeout, what):
    """Polls fn() until it returns `want`; the failure names the last value seen."""
    last = []

    def check():
        last[:] = [fn()]
        return last[0] == want

    try:
        wait_until(check, timeout, what, interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}: last {last[0]!r}, want {want!r}") from None


def admin_latest(bootstrap, topic, isolation, partition=0):
    """The latest offset by confluent's AdminClient.list_offsets at an isolation level."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, partition)
    level = {"committed": IsolationLevel.READ_COMMITTED,
             "uncommitted": IsolationLevel.READ_UNCOMMITTED}[isolation]
    res = admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level)
    return res[tp].result(30).offset


# --- 1. visibility: committed vs aborted, the last stable offset -----------------------------

@pytest.mark.parametrize("producer,consumer", [(p, c) for p in CLIENTS for c in CLIENTS],
                         ids=[f"{p}-to-{c}" for p in CLIENTS for c in CLIENTS])
def test_committed_visible_aborted_hidden(bootstrap, topic_name, producer, consumer):
    """Three transactions of one producer: committed, aborted after its records were flushed
    (so they are really in the log), committed. read_committed sees the committed ones,
    read_uncommitted all records; neither sees the markers."""
    create_topic(bootstrap, topic_name)
    p = TxnProducer(producer, bootstrap, f"{topic_name}-txn")
    a = [b"A%d" % i for i in range(5)]
    b = [b"B%d" % i for i in range(4)]
    c = [b"C%d" % i for i in range(3)]
    try:
        p.init()
        produce_txn(p, topic_name, a, commit=True)  # 0-4, COMMIT marker at 5
        produce_txn(p, topic_name, b, commit=False)  # 6-9, ABORT marker at 10
        produce_txn(p, topic_name, c, commit=True)  # 11-13, COMMIT marker at 14
    finally:
        p.close()
    committed = read_records(consumer, bootstrap, topic_name, "committed", 8)
    assert committed == recs(0, a) + recs(11, c), "read_committed"
    everything = read_records(consumer, bootstrap, topic_name, "uncommitted", 12)
    assert everything == recs(0, a) + recs(6, b) + recs(11, c), "read_uncommitted"
    # With no transaction open, the LSO is the high watermark (past the last marker).
    wait_equal(lambda: end_offsets(consumer, bootstrap, topic_name, "committed"), {0: (0, 15)},
               10, "ListOffsets(read_committed) to reach the high watermark")
    assert end_offsets(consumer, bootstrap, topic_name, "uncommitted") == {0: (0, 15)}


@pytest.mark.parametrize("consumer", CLIENTS)
def test_read_committed_stops_at_last_stable_offset(bootstrap, topic_name, consumer):
    """A transaction left open with flushed records holds the LSO at its first offset: a
    read_committed consumer gets nothing past it, not even the non-transactional records
    written after it, and ListOffsets(latest, read_committed) answers the LSO; read_uncommitted
    reads everything. Once committed, the same read_committed consumer gets the rest."""
    create_topic(bootstrap, topic_name)
    a, t = [b"A0", b"A1", b"A2"], [b"T0", b"T1", b"T2"]
    plain = [b"P0", b"P1"]
    p = TxnProducer("confluent", bootstrap, f"{topic_name}-txn")
    reader = None
    try:
        p.init()
        produce_txn(p, topic_name, a)  # 0-2, COMMIT marker at 3
        p.begin()
        for v in t:  # 4-6, left open
            p.send(topic_name, v, key=v)
        p.flush()
        acks = produce("confluent", bootstrap, topic_name, [{"key": v, "value": v} for v in plain])
        assert [o for o, _ in acks] == [7, 8]

        assert end_offsets(consumer, bootstrap, topic_name, "uncommitted") == {0: (0, 9)}
        wait_equal(lambda: end_offsets(consumer, bootstrap, topic_name, "committed"),
                   {0: (0, 4)}, 10, "ListOffsets(read_committed) = the open transaction's start")
        assert admin_latest(bootstrap, topic_name, "committed") == 4
        assert admin_latest(bootstrap, topic_name, "uncommitted") == 9
        assert read_records(consumer, bootstrap, topic_name, "uncommitted", 8) == \
            recs(0, a) + recs(4, t) + recs(7, plain)

        reader = PartitionReader(consumer, bootstrap, topic_name, "committed")
        assert reader.read(3) == recs(0, a)
        past = reader.idle(1.5)
        assert past == [], "read_committed read past the LSO (4) of the open transaction"

        p.commit()  # COMMIT marker at 9
        assert reader.read(5, timeout=15) == recs(4, t) + recs(7, plain)
        assert reader.idle(0.3) == []
        wait_equal(lambda: end_offsets(consumer, bootstrap, topic_name, "committed"),
                   {0: (0, 10)}, 10, "ListOffsets(read_committed) after the commit")
        assert end_offsets(consumer, bootstrap, topic_name, "uncommitted") == {0: (0, 10)}
        assert admin_latest(bootstrap, topic_name, "committed") == 10
    finally:
        if reader is not None:
            reader.close()
        p.close()


# --- transactional offsets (TxnOffsetCommit); an open transaction across broker kills ----------

def group_offset(bootstrap, group, topic, partition=0, require_stable=False):
    """The group's committed offset of a partition by confluent's AdminClient (OffsetFetch;
    require_stable=False: pending transactional offsets are not visible, not waited for)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, partition)])],
        require_stable=require_stable)[group].result(30)
    (tp,) = res.topic_partitions
    assert tp.error is None, tp.error
    return tp.offset


class GroupConsumer:
    """A read_committed consumer of `client` subscribed to `topic` in `group` (no auto
    commit), for send_offsets_to_transaction: `read(count)`, `metadata()` (the group metadata
    to pass), `close()`."""

    def __init__(self, client, bootstrap, group, topic):
        self.client = client
        if client == "confluent":
            self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                               "isolation.level": "read_committed",
                               "enable.auto.commit": False, "auto.offset.reset": "earliest"})
            self.c.subscribe([topic])
        else:
            from kafka import KafkaConsumer

            self.c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                   isolation_level="read_committed", enable_auto_commit=False,
                                   auto_offset_reset="earliest")

    def read(self, count, timeout=30):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            if self.client == "confluent":
                for m in self.c.consume(num_messages=count - len(out), timeout=0.5):
                    assert not m.error(), m.error()
                    out.append(m.value())
            else:
                for rs in self.c.poll(timeout_ms=500, max_records=count - len(out)).values():
                    out += [r.value for r in rs]
        assert len(out) == count, f"the group consumer read {len(out)} of {count}: {out}"
        return out

    def metadata(self):
        if self.client == "confluent":
            return self.c.consumer_group_metadata()
        return self.c.group_metadata()

    def close(self):
        self.c.close()


def send_offsets(producer, consumer, topic, offset, partition=0):
    if producer.client == "confluent":
        producer.p.send_offsets_to_transaction([TopicPartition(topic, partition, offset)],
                                               consumer.metadata(), 30)
    else:
        from kafka import TopicPartition as KpTopicPartition
        from kafka.structs import OffsetAndMetadata

        producer.p.send_offsets_to_transaction(
            {KpTopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)},
            consumer.metadata())


@pytest.mark.parametrize("client", CLIENTS)
def test_offsets_committed_only_with_their_transaction(bootstrap, topic_name, client):
    """send_offsets_to_transaction with a subscribed group consumer's metadata (TxnOffsetCommit
    with generation and member id, KIP-447): the offsets become the group's committed offsets
    when the transaction commits, never when it aborts, and are not visible (require_stable
    =false) while it is open."""
    src, dst = f"{topic_name}-in", f"{topic_name}-out"
    create_topic(bootstrap, src)
    create_topic(bootstrap, dst)
    produce("confluent", bootstrap, src, [{"value": b"%d" % i} for i in range(10)])
    group = f"{topic_name}-group"
    consumer = GroupConsumer(client, bootstrap, group, src)
    p = TxnProducer(client, bootstrap, f"{topic_name}-txn")
    try:
        assert consumer.read(10) == [b"%d" % i for i in range(10)]
        p.init()
        p.begin()
        p.send(dst, b"t1")
        send_offsets(p, consumer, src, 4)
        p.commit()
        wait_equal(lambda: group_offset(bootstrap, group, src), 4, 10,
                   "the committed transaction's offset")

        p.begin()
        p.send(dst, b"t2")
        send_offsets(p, consumer, src, 7)
        p.flush()
        p.abort()
        p.begin()
        p.send(dst, b"t3")
        send_offsets(p, consumer, src, 9)
        # The coordinator takes the next transaction's partitions only once the abort is
        # complete (CONCURRENT_TRANSACTIONS before), so its markers are written by now.
        p.flush()
        assert group_offset(bootstrap, group, src) == 4, \
            "an aborted or open transaction's offsets are visible as committed"
        p.commit()
        wait_equal(lambda: group_offset(bootstrap, group, src), 9, 10,
                   "the second committed transaction's offset")
        assert group_offset(bootstrap, group, src, require_stable=True) == 9
    finally:
        p.close()
        consumer.close()
    assert [v for _, _, v in read_records(client, bootstrap, dst, "committed", 2)] == \
        [b"t1", b"t3"]


def test_transactions_across_broker_kills(broker_factory, topic_name):
    """The broker is SIGKILLed while a transaction is open with flushed records: after the
    restart (producer state, LSO and coordinator state rebuilt from the logs) the open
    transaction still holds the LSO, and the producer commits it. Then a flushed and aborted
    transaction, another SIGKILL: read_committed from the start still skips the aborted
    records (the aborted-transaction index survives), read_uncommitted has them all."""
    b = broker_factory()
    create_topic(b.bootstrap, topic_name)
    p = TxnProducer("confluent", b.bootstrap, f"{topic_name}-txn",
                    **{"reconnect.backoff.max.ms": 500, "metadata.recovery.strategy": "none"})
    a, t, plain, x = [b"A0", b"A1"], [b"T0", b"T1", b"T2"], [b"P0", b"P1"], [b"X0", b"X1"]
    try:
        p.init()
        produce_txn(p, topic_name, a)  # 0-1, COMMIT at 2
        p.begin()
        for v in t:  # 3-5, open across the kill
            p.send(topic_name, v, key=v)
        p.flush()
        acks = produce("confluent", b.bootstrap, topic_name, [{"key": v, "value": v}
                                                               for v in plain])
        assert [o for o, _ in acks] == [6, 7]
        wait_equal(lambda: end_offsets("confluent", b.bootstrap, topic_name, "committed"),
                   {0: (0, 3)}, 10, "the LSO at the open transaction")

        assert b.kill() == -9
        b.restart()
        assert end_offsets("confluent", b.bootstrap, topic_name, "uncommitted") == {0: (0, 8)}
        assert end_offsets("confluent", b.bootstrap, topic_name, "committed") == {0: (0, 3)}, \
            "after the restart the open transaction no longer holds the LSO"
        assert read_records("confluent", b.bootstrap, topic_name, "committed", 2, idle=1.0) \
            == recs(0, a)

        p.commit(30)  # COMMIT at 8
        produce_txn(p, topic_name, x, commit=False)  # 9-10, ABORT at 11
        wait_equal(lambda: end_offsets("confluent", b.bootstrap, topic_name, "committed"),
                   {0: (0, 12)}, 10, "the LSO past the aborted transaction")
    finally:
        p.close()
    committed = recs(0, a) + recs(3, t) + recs(6, plain)
    assert read_records("confluent", b.bootstrap, topic_name, "committed", 7) == committed

    assert b.kill() == -9
    b.restart()
    for client in CLIENTS:
        assert read_records(client, b.bootstrap, topic_name, "committed", 7) == committed, client
        assert read_records(client, b.bootstrap, topic_name, "uncommitted", 9) == \
            committed + recs(9, x), client
    assert end_offsets("confluent", b.bootstrap, topic_name, "committed") == {0: (0, 12)}


# --- 2. consume-transform-produce, exactly once across broker kills --------------------------

PARTITIONS = 3


def read_values(bootstrap, topic, partition, count, isolation="read_committed", timeout=60):
    """Every record of a partition from offset 0 as a list of values, reading until `count`
    records came (then 1 s more, in which nothing may come)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "strom-compat-unused",
                  "enable.auto.commit": False, "auto.offset.reset": "error",
                  "isolation.level": isolation, "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        out = []
        deadline = time.monotonic() + timeout
        idle_until = None
        while time.monotonic() < deadline:
            batch = c.consume(num_messages=10000, timeout=0.2)
            for m in batch:
                if m.error():
                    raise KafkaException(m.error())
                out.append(m.value())
            if len(out) >= count:
                idle_until = idle_until or time.monotonic() + 1.0
                if time.monotonic() >= idle_until:
                    break
        return out
    finally:
        c.close()


def diff_report(want, got):
    """What differs between two lists of values: missing, duplicated, unexpected, first
    out-of-order position."""
    cw, cg = Counter(want), Counter(got)
    missing = sorted(v for v in cw if cg[v] < cw[v])
    dups = sorted(v for v in cg if cg[v] > 1)
    extra = sorted(v for v in cg if v not in cw)
    first = next((i for i, (x, y) in enumerate(zip(want, got)) if x != y), None)
    return (f"{len(want)} expected, {len(got)} read: {len(missing)} missing {missing[:5]}, "
            f"{len(dups)} duplicated {dups[:5]}, {len(extra)} unexpected {extra[:5]}, first "
            f"difference at index {first}"
            + (f" (want {want[first]!r}, got {got[first]!r})" if first is not None else ""))


# The torn batch a kill can leave was not acknowledged: the producer sends it again.
@TORN_TAIL_AFTER_KILL
@pytest.mark.long
def test_consume_transform_produce_exactly_once_across_broker_kills(broker_factory, topic_name):
    """Kafka's transactions_test pattern: a copier (read_committed consumer in a group +
    transactional producer, send_offsets_to_transaction) copies 100,000 records from 3 input
    partitions to the same partitions of an output topic while the broker is SIGKILLed and
    restarted 3-5 times at random moments (seed printed; STROM_TXN_SEED replays); like Kafka's
    copier with --enable-random-aborts it also aborts 10% of its transactions after flushing
    them and copies their input again. In the end read_committed sees every input record
    exactly once in each output partition, in input order, and the group's committed offsets
    are the input's ends."""
    seed = int(os.environ.get("STROM_TXN_SEED", random.randrange(1 << 30)))
    print(f"STROM_TXN_SEED={seed}")
    rng = random.Random(seed)
    total = 100_000
    b = broker_factory()
    src, dst = f"{topic_name}-in", f"{topic_name}-out"
    create_topic(b.bootstrap, src, partitions=PARTITIONS)
    create_topic(b.bootstrap, dst, partitions=PARTITIONS)
    produce_spread(b.bootstrap, src, [(i % PARTITIONS, b"k%08d" % i, b"v%08d" % i)
                                      for i in range(total)],
                   **{"enable.idempotence": True, "linger.ms": 20})
    want = {p: [b"v%08d" % i for i in range(p, total, PARTITIONS)] for p in range(PARTITIONS)}
    ends = {p: len(v) for p, v in want.items()}

    copier = TxnCopier(b.bootstrap, src, dst, ends, group=f"{topic_name}-copier",
                       transactional_id=f"{topic_name}-copier", rate=15_000,
                       abort_rng=random.Random(rng.random()), abort_ratio=0.1).start()
    kills, open_txns = [], []
    try:
        thresholds = sorted(rng.sample(range(5_000, 90_000, 1000), rng.randint(3, 5)))
        for threshold in thresholds:
            # Each kill after progress since the previous restart.
            threshold = max(threshold, (kills[-1] if kills else 0) + 2000)
            wait_until(lambda: copier.copied() >= threshold or copier.done.is_set(), 60,
                       f"the copier to copy {threshold} records ({copier.report()})")
            if copier.done.is_set():
                raise AssertionError(f"the copier stopped before {threshold} records "
                                     f"(seed {seed}): {copier.error!r}\n{copier.report()}")
            time.sleep(rng.uniform(0, 0.3))  # the random moment
            kills.append(copier.copied())
            open_txns.append(copier.open_txn())
            assert b.kill() == -9
            time.sleep(rng.uniform(0, 0.5))
            b.restart()
        finished = copier.wait(100)
        assert finished and copier.error is None, (
            f"the copier {'failed' if finished else 'did not finish'} (seed {seed}, kills at "
            f"{kills} copied records): {copier.error!r}\n{copier.report()}")
    finally:
        copier.close()
    print(f"kills at {kills} copied records, with {open_txns} records in the open "
          f"transaction; {copier.report()}")

    problems = []
    for p in range(PARTITIONS):
        got = read_values(b.bootstrap, dst, p, ends[p])
        if got != want[p]:
            problems.append(f"output partition {p}: {diff_report(want[p], got)}")
    assert not problems, (f"seed {seed}, kills at {kills}:\n" + "\n".join(problems)
                          + f"\ncopier: {copier.report()}")
    # The aborted transactions' records are in the log all the same.
    assert copier.random_aborts > 0, copier.report()
    uncommitted = sum(len(read_values(b.bootstrap, dst, p, ends[p], "read_uncommitted"))
                      for p in range(PARTITIONS))
    print(f"read_uncommitted sees {uncommitted} records, {uncommitted - total} of them aborted")
    assert uncommitted > total
    # The input offsets were committed with the last transaction.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": f"{topic_name}-copier",
                  "isolation.level": "read_committed"})
    try:
        got = c.committed([TopicPartition(src, p) for p in range(PARTITIONS)], timeout=10)
        assert {tp.partition: tp.offset for tp in got} == ends
    finally:
        c.close()
    # LSO = high watermark on every output partition (no transaction left open).
    wait_equal(lambda: {p: lo_hi[1] for p, lo_hi in end_offsets(
        "confluent", b.bootstrap, dst, "committed", range(PARTITIONS)).items()},
        {p: hi for p, (_, hi) in end_offsets("confluent", b.bootstrap, dst, "uncommitted",
                                              range(PARTITIONS)).items()},
        10, "the LSO of every output partition to be its high watermark")


# --- 3. fencing ------------------------------------------------------------------------------

def assert_fenced(producer, err):
    """The fenced producer's error. Kafka answers a producer whose epoch is older than the
    transactional id's with PRODUCER_FENCED (90): the coordinator for EndTxn / AddPartitions /
    AddOffsets, and (Kafka >= 3.6, KIP-890 verification) for a transactional Produce whose
    partition is no longer in an ongoing transaction; a partition leader answers a plain stale
    epoch with INVALID_PRODUCER_EPOCH (47). Both are fatal for a transactional producer.
    librdkafka folds both into its fatal _FENCED (rd_kafka_txn_normalize_err); kafka-python
    raises ProducerFencedError, or, once in FATAL_ERROR, a KafkaError quoting it."""
    if producer.client == "confluent":
        assert isinstance(err, KafkaException), repr(err)
        e = err.args[0]
        assert is_fenced(e), (f"want a fatal _FENCED error, got {e.name()} (fatal={e.fatal()}, "
                              f"abortable={e.txn_requires_abort()}): {e.str()}")
    else:
        from kafka.errors import ProducerFencedError

        fatal = producer.fatal_error()
        assert isinstance(err, ProducerFencedError) or isinstance(fatal, ProducerFencedError), \
            f"want ProducerFencedError, got {err!r} (fatal error state: {fatal!r})"
        assert isinstance(fatal, ProducerFencedError), \
            f"kafka-python is not in FATAL_ERROR with ProducerFencedError: {fatal!r}"


@pytest.mark.parametrize("next_op", ["commit", "produce"])
@pytest.mark.parametrize("client", CLIENTS)
def test_second_producer_fences_first(bootstrap, topic_name, client, next_op):
    """Producer 1 opens a transaction and flushes records; producer 2 with the same
    transactional.id calls init_transactions, which bumps the epoch and aborts producer 1's
    transaction. Producer 1's next operation (commit, or produce + flush then commit) fails
    with a fatal fenced error; its records are never visible to read_committed; producer 2
    works."""
    create_topic(bootstrap, topic_name)
    tid = f"{topic_name}-txn"
    first = [b"F0", b"F1", b"F2"]
    p1 = TxnProducer(client, bootstrap, tid)
    p2 = TxnProducer(client, bootstrap, tid)
    try:
        p1.init()
        p1.begin()
        for v in first:  # 0-2
            p1.send(topic_name, v, key=v)
        p1.flush()
        p2.init()  # fences p1: ABORT marker at 3
        with pytest.raises(Exception) as info:
            if next_op == "produce":
                p1.send(topic_name, b"late", key=b"late")
                try:
                    p1.flush(15)
                except AssertionError as e:
                    print(f"producer 1's late record: {e}")
            p1.commit(15)
        print(f"producer 1 ({client}, {next_op}): commit raised {info.value!r}")
        err = info.value
        if (client == "confluent" and next_op == "produce" and isinstance(err, KafkaException)
                and err.args[0].txn_requires_abort()):
            # Kafka >= 3.6 verifies a transactional Produce with the coordinator
            # (KIP-890), which answers a stale epoch with PRODUCER_FENCED; librdkafka treats
            # Produce errors other than INVALID_PRODUCER_EPOCH as abortable, and the abort
            # (EndTxn with the old epoch) then gets PRODUCER_FENCED: fatal _FENCED.
            assert err.args[0].code() in (KafkaError.PRODUCER_FENCED,
                                          KafkaError.INVALID_PRODUCER_EPOCH), err
            with pytest.raises(KafkaException) as info:
                p1.abort(15)
            print(f"producer 1: abort raised {info.value!r}")
            err = info.value
        assert_fenced(p1, err)
        if client == "confluent" and next_op == "produce":
            errs = {e.code() for e in p1.delivery_errors}
            assert errs and errs <= {KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FENCED,
                                     KafkaError.PRODUCER_FENCED, KafkaError._PURGE_QUEUE}, \
                f"late record's delivery errors: {p1.delivery_errors}"
        second = [b"G0", b"G1"]
        produce_txn(p2, topic_name, second)  # 4-5, COMMIT marker at 6
    finally:
        p1.close()
        p2.close()
    assert read_records(client, bootstrap, topic_name, "committed", 2) == recs(4, second)
    assert read_records(client, bootstrap, topic_name, "uncommitted", 5) == \
        recs(0, first) + recs(4, second)


# --- 4. a producer that dies mid-transaction ------------------------------------------------

DEAD_TIMEOUT_MS = 3000
CLEANUP_INTERVAL_MS = 500


def test_dead_producer_transaction_is_aborted_after_timeout(broker_factory, topic_name):
    """A transactional producer (transaction.timeout.ms=3000) writes records in a transaction
    and is SIGKILLed. The coordinator (checking every 500 ms) aborts the transaction once it
    is 3 s old: a read_committed consumer that was reading gets the records another producer
    wrote after it within timeout + interval + slack, and never the dead transaction's."""
    b = broker_factory(**{
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": str(CLEANUP_INTERVAL_MS)})
    create_topic(b.bootstrap, topic_name)
    tid = f"{topic_name}-txn"
    before = [b"A0", b"A1"]
    after = [b"P0", b"P1", b"P2"]
    dead_count = 5
    p = TxnProducer("confluent", b.bootstrap, f"{topic_name}-other")
    p.init()
    produce_txn(p, topic_name, before)  # 0-1, COMMIT marker at 2
    reader = PartitionReader("confluent", b.bootstrap, topic_name, "committed")
    proc = None
    try:
        assert reader.read(2) == recs(0, before)
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "txn_dead_producer.py"), b.bootstrap, tid,
             topic_name, str(dead_count), str(DEAD_TIMEOUT_MS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("flushed "), (
            f"the dying producer said {line!r}; stderr: {proc.stderr.read()[-3000:]}"
            if proc.poll() is not None or not line else f"the dying producer said {line!r}")
        started = float(line.split()[1])  # wall clock before its first record
        proc.kill()
        proc.wait(10)
        killed = time.time()
        # The dead transaction holds 3-7; these non-transactional records go to 8-10.
        acks = produce("confluent", b.bootstrap, topic_name, [{"key": v, "value": v}
                                                               for v in after])
        assert [o for o, _ in acks] == [8, 9, 10]
        got = reader.read(3, timeout=DEAD_TIMEOUT_MS / 1000 + 20)
        seen = time.time()
        assert got == recs(8, after), "read_committed after the dead transaction"
        waited = seen - started
        print(f"the records after the dead transaction became visible {waited:.2f}s after it "
              f"started ({seen - killed:.2f}s after the kill)")
        # Kafka aborts a transaction once txnStartTimestamp + timeout < now, not before.
        assert waited >= DEAD_TIMEOUT_MS / 1000 - 0.05, \
            f"the transaction was aborted after {waited:.2f}s, before its timeout"
        slack = 4.0
        assert waited <= (DEAD_TIMEOUT_MS + CLEANUP_INTERVAL_MS) / 1000 + slack, \
            f"read_committed was blocked {waited:.2f}s by a transaction with a 3 s timeout"
        assert reader.idle(0.5) == []
    finally:
        reader.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
    dead = [b"dead-%d" % i for i in range(dead_count)]
    assert read_records("confluent", b.bootstrap, topic_name, "uncommitted", 10) == \
        recs(0, before) + recs(3, dead) + recs(8, after)
    # ABORT marker at 11: nothing open, LSO = high watermark = 12.
    wait_equal(lambda: end_offsets("confluent", b.bootstrap, topic_name, "committed"),
               {0: (0, 12)}, 10, "the LSO past the dead transaction's ABORT marker")
    # The transactional id is usable again, and its aborted records stay invisible.
    again = TxnProducer("confluent", b.bootstrap, tid)
    try:
        again.init()
        produce_txn(again, topic_name, [b"R0"])  # 12, COMMIT marker at 13
    finally:
        again.close()
        p.close()
    assert read_records("confluent", b.bootstrap, topic_name, "committed", 6) == \
        recs(0, before) + recs(8, after) + recs(12, [b"R0"])


# --- 5. DescribeTransactions / ListTransactions ---------------------------------------------

def test_describe_and_list_transactions(bootstrap, topic_name):
    """confluent-kafka 2.16.1's AdminClient has no list_transactions / describe_transactions
    (librdkafka has no such admin API), so kafka-python's KafkaAdminClient (KIP-664 tooling)
    asks: an initialised id is Empty, an open transaction is Ongoing with its partitions and
    start time, a committed one CompleteCommit; ListTransactions filters by state, producer
    id, duration and id pattern; an unknown id is TRANSACTIONAL_ID_NOT_FOUND."""
    from kafka.admin import KafkaAdminClient
    from kafka.admin._transactions import TransactionState
    from kafka.errors import TransactionalIdNotFoundError
    from kafka.structs import TopicPartition as KpTopicPartition

    create_topic(bootstrap, topic_name, partitions=2)
    tid = f"{topic_name}-txn"
    p = TxnProducer("confluent", bootstrap, tid, timeout_ms=45000)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        p.init()
        d = admin.describe_transactions([tid])[tid]
        assert d.state == TransactionState.EMPTY, d
        assert d.producer_id >= 0 and d.producer_epoch == 0, d
        assert d.transaction_timeout_ms == 45000, d
        assert d.topic_partitions == set(), d
        pid = d.producer_id

        def listed(**filters):
            by_node = admin.list_transactions(**filters)
            return sorted((t.transactional_id, t.producer_id, t.state)
                          for ts in by_node.values() for t in ts if t.transactional_id == tid)

        assert listed() == [(tid, pid, TransactionState.EMPTY)]

        t0 = time.time() * 1000
        p.begin()
        p.send(topic_name, b"x", partition=0)
        p.send(topic_name, b"y", partition=1)
        p.flush()
        t1 = time.time() * 1000
        d = admin.describe_transactions([tid])[tid]
        assert d.state == TransactionState.ONGOING, d
        assert (d.producer_id, d.producer_epoch) == (pid, 0), d
        assert d.topic_partitions == {KpTopicPartition(topic_name, 0),
                                      KpTopicPartition(topic_name, 1)}, d
        assert t0 - 1000 <= d.transaction_start_time_ms <= t1 + 1000, (t0, d, t1)

        assert listed(state_filters=["Ongoing"]) == [(tid, pid, TransactionState.ONGOING)]
        assert listed(state_filters=["CompleteCommit", "Empty"]) == []
        assert listed(producer_id_filters=[pid]) == [(tid, pid, TransactionState.ONGOING)]
        assert listed(producer_id_filters=[pid + 1_000_000]) == []
        assert listed(duration_filter_ms=3_600_000) == []
        assert listed(transactional_id_pattern=tid) == [(tid, pid, TransactionState.ONGOING)]
        assert listed(transactional_id_pattern="no-such-id-.*") == []

        p.commit()
        wait_equal(lambda: admin.describe_transactions([tid])[tid].state,
                   TransactionState.COMPLETE_COMMIT, 10, "CompleteCommit")
        d = admin.describe_transactions([tid])[tid]
        assert (d.producer_id, d.producer_epoch) == (pid, 0), d
        assert d.topic_partitions == set(), d
        assert listed(state_filters=["CompleteCommit"]) == \
            [(tid, pid, TransactionState.COMPLETE_COMMIT)]

        with pytest.raises(TransactionalIdNotFoundError):
            admin.describe_transactions([f"{tid}-unknown"])
    finally:
        admin.close()
        p.close()
