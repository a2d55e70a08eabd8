"""Crash loop: the broker is SIGKILLed 20 times at random moments while a producer (acks=all)
writes; after every restart each record acknowledged so far is read back at the offset it was
acknowledged with, and `strom dump-log --verify-index-only` finds no problem in any segment
(.log, .index, .timeindex) of the data dir. The random schedule comes from a seed printed at the
start (set STROM_CRASH_SEED to replay one)."""

import os
import random
import re
import subprocess
import threading
import time

import pytest
from confluent_kafka import TopicPartition

from support import TORN_TAIL_AFTER_KILL, ck_consumer, ck_producer, create_topic, wait_until

KILLS = 20
PARTITIONS = 3
SEGMENT_FILE = re.compile(r"^\d{20}\.(log|index|timeindex)$")


class LoadProducer:
    """A confluent producer (acks=all, retries) in a thread, writing numbered records at a
    bounded rate while `go` is set. `pause()` stops sending and waits until everything sent has
    a delivery report. `acked` holds (partition, offset, value) of every acknowledged record."""

    def __init__(self, bootstrap, topic):
        self.p = ck_producer(bootstrap, **{
            "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000,
            "reconnect.backoff.max.ms": 200,
        })
        self.topic = topic
        self.acked, self.failed = [], []
        self.go = threading.Event()
        self.idle = threading.Event()
        self.stop = False
        self.error = None
        self.sent = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _on_delivery(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            self.failed.append(err)

    def _run(self):
        try:
            while not self.stop:
                if not self.go.is_set():
                    self.p.flush(90)
                    self.idle.set()
                    self.go.wait(0.1)
                    continue
                self.idle.clear()
                for _ in range(25):  # ~25 records every 10 ms: a few thousand a second
                    v = b"%09d" % self.sent
                    try:
                        self.p.produce(self.topic, value=v, partition=self.sent % PARTITIONS,
                                       on_delivery=self._on_delivery)
                    except BufferError:
                        break
                    self.sent += 1
                self.p.poll(0.01)
            self.p.flush(90)
        except BaseException as e:
            self.error = e
            self.idle.set()

    def resume(self):
        self.idle.clear()
        self.go.set()

    def pause(self, timeout=100):
        self.go.clear()
        assert self.idle.wait(timeout), "the producer did not drain"
        assert self.error is None, self.error

    def close(self):
        self.stop = True
        self.go.set()
        self.t.join(100)


def read_everything(bootstrap, topic):
    """{partition: {offset: value}} of the whole topic."""
    c = ck_consumer(bootstrap, **{"fetch.max.bytes": 8 * 1024 * 1024})
    try:
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                            cached=False)[1] for p in range(PARTITIONS)}
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        out = {p: {} for p in range(PARTITIONS)}
        left = sum(highs.values())
        deadline = time.monotonic() + 60
        while left > 0 and time.monotonic() < deadline:
            for m in c.consume(num_messages=10000, timeout=0.5):
                assert not m.error(), m.error()
                out[m.partition()][m.offset()] = m.value()
                left -= 1
        assert left == 0, f"{left} records not read back (high watermarks {highs})"
        return out
    finally:
        c.close()


def verify_segments(strom_bin, data_dir):
    """Runs `strom dump-log --verify-index-only` over every segment file of the data dir."""
    files = sorted(os.path.join(root, f) for root, _, names in os.walk(data_dir)
                   for f in names if SEGMENT_FILE.match(f))
    assert files
    r = subprocess.run([strom_bin, "dump-log", "--verify-index-only", "--files", ",".join(files)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, (
        f"dump-log --verify-index-only exited {r.returncode}:\n{r.stderr.decode()[-4000:]}")
    return len(files)


@TORN_TAIL_AFTER_KILL
@pytest.mark.long
def test_crash_loop_keeps_acknowledged_records(broker_factory, topic_name, strom_bin):
    seed = int(os.environ.get("STROM_CRASH_SEED", random.randrange(1 << 30)))
    print(f"STROM_CRASH_SEED={seed}")
    rng = random.Random(seed)
    b = broker_factory()
    create_topic(b.bootstrap, topic_name, partitions=PARTITIONS)
    load = LoadProducer(b.bootstrap, topic_name)
    try:
        for cycle in range(KILLS):
            load.resume()
            before = len(load.acked)
            wait_until(lambda: len(load.acked) > before, 30, "the load to get going")
            time.sleep(rng.uniform(0.1, 1.2))  # the random moment of the crash
            assert b.kill() == -9
            b.restart()
            load.pause()

            log = read_everything(b.bootstrap, topic_name)
            lost = [(p, o, v) for p, o, v in load.acked if log[p].get(o) != v]
            assert not lost, (f"cycle {cycle} (seed {seed}): {len(lost)} acknowledged records "
                              f"not at their offsets, e.g. {lost[:5]}")
            files = verify_segments(strom_bin, os.path.join(b.data_dir, "logs"))
            print(f"cycle {cycle}: {len(load.acked)} acked, "
                  f"{sum(len(v) for v in log.values())} in the log, {files} files verified")
    finally:
        load.close()
    # Failed deliveries (retries exhausted) are allowed, but none should happen here.
    assert not load.failed, load.failed[:3]
