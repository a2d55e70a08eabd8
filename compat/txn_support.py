"""Helpers for the transaction tests (test_transactions.py): transactional producers of both
clients behind one interface, reading a partition at an isolation level, end offsets as
ListOffsets reports them per isolation level, and the consume-transform-produce copier.

The copier (`TxnCopier`) follows librdkafka's `examples/transactions.c` (the error handling
confluent's EOS examples use): consume with `isolation.level=read_committed` and no auto
commit, produce each record to the same partition of the output topic inside a transaction,
`send_offsets_to_transaction` + `commit_transaction` every batch; an error that requires abort
-> `abort_transaction` and rewind the consumer to its committed offsets; a retriable error ->
call again; anything else (fatal) -> stop and report.
"""

import logging
import threading
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

log = logging.getLogger("txn_support")


# --- transactional producers, one interface over both clients -------------------------------

class TxnProducer:
    """A transactional producer of `client` ("confluent" or "kafka-python") with
    `transactional_id`: init(), begin(), send(), flush(), commit(), abort(), close(). Calls
    raise what the client raises (confluent: KafkaException carrying a KafkaError;
    kafka-python: kafka.errors.*)."""

    def __init__(self, client, bootstrap, transactional_id, timeout_ms=30000, **conf):
        self.client = client
        self.transactional_id = transactional_id
        self.delivery_errors = []
        if client == "confluent":
            base = {
                "bootstrap.servers": bootstrap,
                "transactional.id": transactional_id,
                "transaction.timeout.ms": timeout_ms,
                "linger.ms": 5,
            }
            base.update(conf)
            self.p = Producer(base)
        elif client == "kafka-python":
            from kafka import KafkaProducer

            base = {
                "bootstrap_servers": bootstrap,
                "transactional_id": transactional_id,
                "transaction_timeout_ms": timeout_ms,
                "linger_ms": 5,
            }
            base.update(conf)
            self.p = KafkaProducer(**base)
            self.futures = []
        else:
            raise ValueError(client)

    def init(self, timeout=30):
        if self.client == "confluent":
            self.p.init_transactions(timeout)
        else:
            self.p.init_transactions()

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic, value, key=None, partition=0):
        if self.client == "confluent":
            def on_delivery(err, msg):
                if err is not None:
                    self.delivery_errors.append(err)
            self.p.produce(topic, value=value, key=key, partition=partition,
                           on_delivery=on_delivery)
            self.p.poll(0)
        else:
            f = self.p.send(topic, value=value, key=key, partition=partition)
            f.add_errback(lambda e: self.delivery_errors.append(e))
            self.futures.append(f)

    def flush(self, timeout=30):
        """Waits until every record sent so far is acknowledged (really written)."""
        if self.client == "confluent":
            left = self.p.flush(timeout)
            assert left == 0, f"{left} records not delivered within {timeout}s"
        else:
            self.p.flush(timeout)
        assert not self.delivery_errors, f"delivery errors: {self.delivery_errors[:3]}"

    def commit(self, timeout=30):
        if self.client == "confluent":
            self.p.commit_transaction(timeout)
        else:
            self.p.commit_transaction()

    def abort(self, timeout=30):
        if self.client == "confluent":
            self.p.abort_transaction(timeout)
        else:
            self.p.abort_transaction()

    def close(self):
        """Closes the producer (an open transaction is aborted by the client); errors of a
        producer already failed (fenced) are not the caller's concern here."""
        try:
            if self.client == "confluent":
                self.p.close()
            else:
                self.p.close(5)
        except Exception as e:  # noqa: BLE001
            log.info("closing the %s producer %s: %r", self.client, self.transactional_id, e)

    def fatal_error(self):
        """kafka-python: the error that put the transaction manager in its FATAL_ERROR state
        (None if it is not there). Its transactional methods then raise a KafkaError that only
        quotes it ("Cannot execute transactional method because we are in an error state")."""
        tm = self.p._transaction_manager
        return tm.last_error if tm.has_fatal_error() else None


def produce_txn(producer, topic, values, partition=0, commit=True):
    """One transaction of `values` (keys = values): begin, send, flush, commit or abort."""
    producer.begin()
    for v in values:
        producer.send(topic, value=v, key=v, partition=partition)
    producer.flush()
    if commit:
        producer.commit()
    else:
        producer.abort()


# --- reading at an isolation level ----------------------------------------------------------

ISOLATION = {"committed": "read_committed", "uncommitted": "read_uncommitted"}


class PartitionReader:
    """A consumer of `client` assigned to one partition from `offset`, at an isolation level
    ("committed" or "uncommitted"), kept open: `read(count, timeout)` returns the next
    `count` records as (offset, key, value); `idle(seconds)` returns whatever arrives within
    `seconds` (to show that nothing does)."""

    def __init__(self, client, bootstrap, topic, isolation, partition=0, offset=0):
        self.client, self.topic, self.partition = client, topic, partition
        if client == "confluent":
            self.c = Consumer({
                "bootstrap.servers": bootstrap,
                "group.id": "strom-compat-unused",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
                "isolation.level": ISOLATION[isolation],
                "fetch.wait.max.ms": 100,
            })
            self.c.assign([TopicPartition(topic, partition, offset)])
        else:
            from kafka import KafkaConsumer
            from kafka import TopicPartition as KpTopicPartition

            self.c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                   enable_auto_commit=False, auto_offset_reset="earliest",
                                   isolation_level=ISOLATION[isolation], fetch_max_wait_ms=100)
            self.tp = KpTopicPartition(topic, partition)
            self.c.assign([self.tp])
            self.c.seek(self.tp, offset)

    def _poll(self, max_records, timeout):
        if self.client == "confluent":
            out = []
            for m in self.c.consume(num_messages=max_records, timeout=timeout):
                if m.error():
                    raise KafkaException(m.error())
                out.append((m.offset(), m.key(), m.value()))
            return out
        polled = self.c.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [(r.offset, r.key, r.value) for rs in polled.values() for r in rs]

    def read(self, count, timeout=30):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.client} consumer got {len(out)} of {count} records of "
                    f"{self.topic}[{self.partition}] within {timeout}s: {out}")
            out += self._poll(count - len(out), min(left, 0.5))
        return out

    def idle(self, seconds):
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            out += self._poll(1000, min(left, 0.2))
        return out

    def close(self):
        self.c.close()


def read_records(client, bootstrap, topic, isolation, count, partition=0, offset=0,
                 timeout=30, idle=0.5):
    """Exactly `count` records from `offset` at an isolation level, then `idle` seconds in which
    nothing more may arrive. Returns [(offset, key, value)]."""
    r = PartitionReader(client, bootstrap, topic, isolation, partition, offset)
    try:
        out = r.read(count, timeout)
        more = r.idle(idle)
        assert not more, (f"{client} {ISOLATION[isolation]} read more than the {count} "
                          f"expected records of {topic}[{partition}]: {more}")
        return out
    finally:
        r.close()


def end_offsets(client, bootstrap, topic, isolation, partitions=(0,)):
    """(earliest, latest) of each partition as ListOffsets answers a consumer at `isolation`:
    latest is the high watermark for read_uncommitted, the last stable offset for
    read_committed. confluent: get_watermark_offsets(cached=False); kafka-python:
    beginning_offsets / end_offsets."""
    if client == "confluent":
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "strom-compat-unused",
                      "isolation.level": ISOLATION[isolation]})
        try:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                               cached=False) for p in partitions}
        finally:
            c.close()
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                      isolation_level=ISOLATION[isolation])
    try:
        tps = [KpTopicPartition(topic, p) for p in partitions]
        low = c.beginning_offsets(tps, timeout_ms=10000)
        high = c.end_offsets(tps, timeout_ms=10000)
        return {tp.partition: (low[tp], high[tp]) for tp in tps}
    finally:
        c.close()


# --- consume-transform-produce --------------------------------------------------------------

class CopierFailed(AssertionError):
    pass


class TxnCopier:
    """Copies every record of `src` partition p to `dst` partition p (same key and value), in
    transactions of up to `batch` records, committing the input offsets with
    `send_offsets_to_transaction` (group `group`). Runs in a thread until the committed input
    offsets reach `ends` ({partition: end offset}). Counters for the report: `commits`,
    `aborts`, `retries`, `rewinds`, `delivery_errors`, `consumer_errors`, `events` (a log of
    every error handled, with the time)."""

    def __init__(self, bootstrap, src, dst, ends, group, transactional_id, batch=500,
                 max_txn_s=0.2, rate=None, abort_rng=None, abort_ratio=0.0,
                 consumer_conf=None, producer_conf=None):
        self.src, self.dst, self.ends = src, dst, dict(ends)
        self.batch, self.max_txn_s, self.rate = batch, max_txn_s, rate
        self.abort_rng, self.abort_ratio = abort_rng, abort_ratio
        self.random_aborts = 0
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "reconnect.backoff.max.ms": 500,
            "fetch.wait.max.ms": 100,
            **(consumer_conf or {}),
        })
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": 60000,
            "linger.ms": 5,
            "reconnect.backoff.max.ms": 500,
            "queue.buffering.max.messages": 100000,
            # librdkafka re-bootstraps when every known broker is down (a single broker
            # killed), which decommissions the broker handle its coordinator cache still holds:
            # send_offsets_to_transaction then waits forever for that handle to come up,
            # ignoring its timeout (librdkafka issues #5511 and #5456; the same against Kafka).
            "metadata.recovery.strategy": "none",
            **(producer_conf or {}),
        })
        self.committed = {p: 0 for p in ends}  # input offsets committed with a transaction
        self.commits = self.aborts = self.retries = self.rewinds = 0
        self.delivery_errors, self.consumer_errors, self.events = [], [], []
        self.error = None
        self.done = threading.Event()
        self.stop = False
        self._in_txn = False
        self._txn_offsets = {}  # partition -> next input offset, for the open transaction
        self._txn_started = 0.0
        self._txn_count = 0
        self._t0 = time.monotonic()
        self.t = threading.Thread(target=self._run, name="txn-copier", daemon=True)

    # progress, read by the test thread
    def copied(self):
        return sum(self.committed.values())

    def open_txn(self):
        """How many records the open transaction has produced (0: none open)."""
        return self._txn_count if self._in_txn else 0

    def start(self):
        self.t.start()
        return self

    def _event(self, what):
        line = f"{time.monotonic() - self._t0:7.2f}s {what}"
        self.events.append(line)
        log.info("copier: %s", line)

    def _on_delivery(self, err, msg):
        if err is not None:
            self.delivery_errors.append(err)

    def _on_revoke(self, consumer, partitions):
        # Losing the partitions: what this transaction consumed will be read again by whoever
        # gets them, from the committed offsets, so the transaction must not commit.
        self._event(f"revoked {[p.partition for p in partitions]}")
        if self._in_txn and not self.stop:  # (close() after a failure: leave it be)
            self._abort("partitions revoked")

    def _on_assign(self, consumer, partitions):
        self._event(f"assigned {[p.partition for p in partitions]}")

    def _run(self):
        try:
            self._call(lambda: self.producer.init_transactions(10), "init_transactions")
            self.consumer.subscribe([self.src], on_assign=self._on_assign,
                                    on_revoke=self._on_revoke)
            while not self.stop:
                polled = time.monotonic()
                msgs = self.consumer.consume(num_messages=100, timeout=0.1)
                for m in msgs:
                    if m.error():
                        # Consumer errors are informational (the broker went away, ...);
                        # librdkafka recovers by itself.
                        self.consumer_errors.append(m.error())
                        if m.error().fatal():
                            raise KafkaException(m.error())
                        continue
                    if not self._in_txn:
                        self.producer.begin_transaction()
                        self._in_txn = True
                        self._txn_count = 0
                        self._txn_started = time.monotonic()
                    while True:
                        try:
                            self.producer.produce(self.dst, key=m.key(), value=m.value(),
                                                  partition=m.partition(),
                                                  on_delivery=self._on_delivery)
                            break
                        except BufferError:
                            self.producer.poll(0.05)
                    self._txn_offsets[m.partition()] = m.offset() + 1
                    self._txn_count += 1
                self.producer.poll(0)
                if self.rate and msgs:  # spread the work so that the kills land mid-stream
                    time.sleep(max(0.0, len(msgs) / self.rate - (time.monotonic() - polled)))
                if self._in_txn and (
                        not msgs or self._txn_count >= self.batch
                        or time.monotonic() - self._txn_started >= self.max_txn_s):
                    self._commit()
                if not self._in_txn and all(
                        self.committed[p] >= e for p, e in self.ends.items()):
                    break
        except BaseException as e:  # reported by wait()
            self.error = e
            self._event(f"copier stopped by {e!r}")
        finally:
            self.done.set()

    def _call(self, fn, what, deadline_s=90):
        """Calls a transactional API, again while it fails with a retriable error. Errors that
        require abort and fatal ones go to the caller."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                return fn()
            except KafkaException as e:
                err = e.args[0]
                if err.retriable() and not err.txn_requires_abort() and not err.fatal() \
                        and time.monotonic() < deadline:
                    self.retries += 1
                    self._event(f"{what}: retriable {err.name()}: {err.str()}")
                    time.sleep(0.1)
                    continue
                raise

    def _commit(self):
        if self.abort_rng is not None and self.abort_rng.random() < self.abort_ratio:
            # Kafka's TransactionalMessageCopier --enable-random-aborts: its records are
            # written (flushed) and then aborted; the input is copied again.
            self.producer.flush(30)
            self.random_aborts += 1
            self._abort("random abort")
            return
        offsets = [TopicPartition(self.src, p, o) for p, o in sorted(self._txn_offsets.items())]
        try:
            if offsets:
                self._call(lambda: self.producer.send_offsets_to_transaction(
                    offsets, self.consumer.consumer_group_metadata(), 10),
                    "send_offsets_to_transaction")
            self._call(lambda: self.producer.commit_transaction(10), "commit_transaction")
        except KafkaException as e:
            err = e.args[0]
            if err.txn_requires_abort():
                self._event(f"commit needs abort: {err.name()}: {err.str()}")
                self._abort(err.str())
                return
            raise
        self.commits += 1
        for p, o in self._txn_offsets.items():
            self.committed[p] = o
        self._txn_offsets = {}
        self._in_txn = False

    def _abort(self, why):
        self._call(lambda: self.producer.abort_transaction(10), "abort_transaction")
        self.aborts += 1
        self._in_txn = False
        self._txn_offsets = {}
        self._rewind(why)

    def _rewind(self, why):
        """Seeks the consumer back to its committed offsets (the aborted transaction's input is
        copied again)."""
        assignment = self.consumer.assignment()
        if not assignment:
            return
        committed = self._call(lambda: self.consumer.committed(assignment, timeout=10),
                               "committed")
        for tp in committed:
            if tp.error:
                raise KafkaException(tp.error)
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
            self.consumer.seek(tp)
        self.rewinds += 1
        self._event(f"rewound to {[(tp.partition, tp.offset) for tp in committed]} ({why})")

    def wait(self, timeout):
        finished = self.done.wait(timeout)
        if not finished:
            self.stop = True
            self.done.wait(15)
        self.t.join(5)
        return finished

    def close(self):
        self.stop = True
        if self.t.ident is not None:
            self.t.join(15)
        if self.t.is_alive():  # stuck in a client call: do not close under its feet
            return
        try:
            self.consumer.close()
            self.producer.close()
        except Exception:  # noqa: BLE001 - closing after a failure
            pass

    def report(self):
        return (f"copied (committed) {self.copied()} of {sum(self.ends.values())}, "
                f"committed offsets {self.committed}, {self.commits} commits, {self.aborts} "
                f"aborts ({self.random_aborts} on purpose), {self.rewinds} rewinds, "
                f"{self.retries} retries, "
                f"{len(self.delivery_errors)} delivery errors "
                f"{[str(e) for e in self.delivery_errors[:3]]}, "
                f"{len(self.consumer_errors)} consumer errors "
                f"{[str(e) for e in self.consumer_errors[:3]]}; events:\n  "
                + "\n  ".join(self.events[-60:]))


def is_fenced(err):
    """confluent: a fatal KafkaError whose code is librdkafka's _FENCED (librdkafka folds
    PRODUCER_FENCED and INVALID_PRODUCER_EPOCH into it, rd_kafka_txn_normalize_err)."""
    return err.fatal() and err.code() == KafkaError._FENCED
