"""Helpers shared by the compat tests: the broker process, waiting, and thin client wrappers.

The plain helpers here keep the clients simple: consumers `assign()` explicit offsets and never
commit, producers do not enable idempotence. Consumer groups are `group_support.py`'s and
test_groups.py's; idempotent producers are test_idempotence.py's.
"""

import os
import signal
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer as CkConsumer
from confluent_kafka import KafkaException
from confluent_kafka import Producer as CkProducer
from confluent_kafka import TopicPartition as CkTopicPartition

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0

# A SIGKILL during a write can leave a torn, unacknowledged batch (the kernel stops a large
# write between pages on a fatal signal: seen with 1328 of 2597 bytes written, ending on a page
# boundary); recovery cuts it with these warnings, as Kafka's LogSegment.recover does. Tests
# that kill the broker under load allow them.
TORN_TAIL_AFTER_KILL = pytest.mark.broker_warnings(r"invalid batch found during recovery",
                                                  r"truncating log segment after recovery")

def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_until(condition, timeout, what, interval=0.05):
    """Polls `condition()` until it returns a truthy value (returned) or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- raw Kafka framing (just enough for readiness checks and malformed-input tests) ---------

def api_versions_v0_frame(correlation_id, client_id=b"compat-raw"):
    """An ApiVersions v0 request: api_key 18, version 0, correlation id, client id, empty body."""
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header)) + header


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def api_versions_roundtrip(sock, correlation_id):
    """Sends ApiVersions v0 on `sock`; returns (error_code, {api_key: (min, max)})."""
    sock.sendall(api_versions_v0_frame(correlation_id))
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    body = recv_exact(sock, size)
    (corr, err, n) = struct.unpack(">ihi", body[:10])
    assert corr == correlation_id, f"correlation id {corr} != {correlation_id}"
    apis = {}
    for i in range(n):
        key, lo, hi = struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])
        apis[key] = (lo, hi)
    return err, apis


class StromBroker:
    """One `strom server` process on 127.0.0.1:<free port> with its data in `data_dir`.

    `start()` waits until the broker answers ApiVersions; `stop()` sends SIGTERM (SIGKILL after
    STOP_TIMEOUT_S); `kill()` sends SIGKILL; `restart()` starts again on the same data dir and
    port. stderr of every run is appended to `<data_dir>/../<name>.log`.
    """

    def __init__(self, binary, data_dir, overrides=None):
        self.binary = str(binary)
        self.data_dir = str(data_dir)
        self.overrides = dict(overrides or {})
        self.port = None
        self.proc = None
        self.log_path = self.data_dir.rstrip("/") + ".log"
        self.exit_codes = []

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def _command(self):
        props = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": os.path.join(self.data_dir, "logs"),
        }
        props.update(self.overrides)
        cmd = [self.binary, "server"]
        for k, v in props.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    def start(self):
        # A port picked by binding to 0 can be taken by someone else before the broker binds
        # it; retry with another port when that is what went wrong (first start only).
        attempts = 3 if self.port is None else 1
        for attempt in range(attempts):
            if self.port is None or attempt > 0:
                self.port = free_port()
            try:
                self._spawn_and_wait()
                return self
            except BrokerStartError as e:
                if attempt + 1 < attempts and "Address already in use" in str(e):
                    continue
                raise

    def _spawn_and_wait(self):
        os.makedirs(self.data_dir, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"  # plain log lines, readable in test reports
        mark = self.log_size()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== starting: {' '.join(self._command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self._command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"strom server exited with {self.proc.returncode} during start-up:\n"
                    + self.log_text(since=mark)
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    err, apis = api_versions_roundtrip(s, 1)
                    if err == 0 and 18 in apis:
                        return
                    last_error = f"ApiVersions error {err}"
            except (OSError, EOFError) as e:
                last_error = repr(e)
            time.sleep(0.05)
        self.kill()
        raise BrokerStartError(
            f"strom server did not answer on {self.bootstrap} within {START_TIMEOUT_S}s "
            f"(last error: {last_error}):\n" + self.log_text(since=mark)
        )

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL if it has not exited after `timeout` s. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.exit_codes.append(code)
        self.proc = None
        return code

    def kill(self):
        """SIGKILL: no chance to flush or checkpoint anything."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        code = self.proc.returncode
        self.exit_codes.append(code)
        self.proc = None
        return code

    def restart(self):
        """Starts again on the same data dir and port (after stop() or kill())."""
        assert self.proc is None, "restart() needs the broker stopped or killed first"
        self._spawn_and_wait()
        return self

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def problems_since(self, mark):
        """Log lines since byte `mark` that show the broker hurt a connection or itself:
        every WARN/ERROR line (closed connections, refused frames, storage errors)."""
        return [
            line for line in self.log_text(since=mark, max_chars=None).splitlines()
            if " WARN " in line or " ERROR " in line
        ]

    def log_text(self, since=0, max_chars=20000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        if max_chars is not None and len(text) > max_chars:
            text = "... (earlier lines cut)\n" + text[-max_chars:]
        return text


class BrokerStartError(RuntimeError):
    pass


# --- confluent-kafka (librdkafka) ----------------------------------------------------------

def ck_producer(bootstrap, **conf):
    base = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,  # (librdkafka's default) idempotence: test_idempotence.py
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    }
    base.update(conf)
    return CkProducer(base)


def ck_consumer(bootstrap, **conf):
    base = {
        "bootstrap.servers": bootstrap,
        # librdkafka's Consumer needs a group.id even for assign()-only use; it never joins
        # or commits to that group here (see README.md).
        "group.id": "strom-compat-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
    }
    base.update(conf)
    return CkConsumer(base)


def ck_consume(bootstrap, topic, count, partition=0, offset=0, timeout=30, **conf):
    """Reads exactly `count` messages from `offset` of one partition with assign()."""
    c = ck_consumer(bootstrap, **conf)
    try:
        c.assign([CkTopicPartition(topic, partition, offset)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"confluent consumer got {len(out)} of {count} messages from "
                    f"{topic}[{partition}]@{offset} within {timeout}s"
                )
            batch = c.consume(num_messages=min(10000, count - len(out)), timeout=min(left, 1.0))
            for m in batch:
                if m.error():
                    raise KafkaException(m.error())
                out.append(m)
        return out
    finally:
        c.close()


# --- kafka-python --------------------------------------------------------------------------

def kp_producer(bootstrap, **conf):
    from kafka import KafkaProducer

    base = {
        "bootstrap_servers": bootstrap,
        # kafka-python 3.x defaults enable_idempotence=True (KIP-679), which also forces
        # acks=all; the plain helper sends what it is told (idempotence: test_idempotence.py).
        "enable_idempotence": False,
        "linger_ms": 5,
        "request_timeout_ms": 30000,
    }
    base.update(conf)
    return KafkaProducer(**base)


def kp_consumer(bootstrap, **conf):
    from kafka import KafkaConsumer

    base = {
        "bootstrap_servers": bootstrap,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "consumer_timeout_ms": 1000,
    }
    base.update(conf)
    return KafkaConsumer(**base)


def kp_consume(bootstrap, topic, count, partition=0, offset=0, timeout=30, **conf):
    """Reads exactly `count` records from `offset` of one partition with assign() + seek()."""
    from kafka import TopicPartition

    c = kp_consumer(bootstrap, **conf)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek(tp, offset)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"kafka-python consumer got {len(out)} of {count} records from "
                    f"{topic}[{partition}]@{offset} within {timeout}s"
                )
            polled = c.poll(timeout_ms=int(min(left, 1.0) * 1000), max_records=count - len(out))
            for records in polled.values():
                out.extend(records)
        return out
    finally:
        c.close()


# --- kcat ----------------------------------------------------------------------------------

def kcat(bootstrap, *args, input=None, timeout=60, check=True):
    """Runs kcat against `bootstrap`; returns the CompletedProcess (stdout/stderr as bytes)."""
    cmd = ["kcat", "-b", bootstrap, *args]
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout[-4000:]!r}\n"
            f"stderr: {p.stderr[-4000:]!r}"
        )
    return p


# --- one interface over both Python clients ------------------------------------------------

CLIENTS = ("confluent", "kafka-python")


class Rec:
    """A consumed record, the same for both clients: timestamp_type is "create" or "append"."""

    __slots__ = ("offset", "key", "value", "headers", "timestamp", "timestamp_type")

    def __init__(self, offset, key, value, headers, timestamp, timestamp_type):
        self.offset, self.key, self.value = offset, key, value
        self.headers, self.timestamp, self.timestamp_type = headers, timestamp, timestamp_type

    def tuple(self):
        return (self.offset, self.key, self.value, self.headers, self.timestamp,
                self.timestamp_type)

    def __repr__(self):
        return "Rec%r" % (self.tuple(),)


def _ck_rec(m):
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

    ts_type, ts = m.timestamp()
    kind = {TIMESTAMP_CREATE_TIME: "create", TIMESTAMP_LOG_APPEND_TIME: "append"}.get(ts_type)
    return Rec(m.offset(), m.key(), m.value(), list(m.headers() or []), ts, kind)


def _kp_rec(r):
    kind = {0: "create", 1: "append"}.get(r.timestamp_type)
    return Rec(r.offset, r.key, r.value, list(r.headers or []), r.timestamp, kind)


def produce(client, bootstrap, topic, records, partition=0, timeout=60, **conf):
    """Produces `records` (dicts with optional key/value/headers/timestamp) to one partition
    with `client` and waits for every acknowledgement. Returns [(offset, timestamp)] in send
    order, as the client reported them. `conf` is client configuration (confluent property
    names or kafka-python keyword arguments)."""
    if client == "confluent":
        p = ck_producer(bootstrap, **conf)
        acks = []
        reports = [None] * len(records)

        def cb(i):
            def on_delivery(err, msg):
                reports[i] = (err, msg.offset(), msg.timestamp()[1])
            return on_delivery

        for i, r in enumerate(records):
            kwargs = {k: v for k, v in r.items() if v is not None or k in ("key", "value")}
            while True:
                try:
                    p.produce(topic, partition=partition, on_delivery=cb(i), **kwargs)
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)
        left = p.flush(timeout)
        assert left == 0, f"{left} messages undelivered after {timeout}s"
        for i, rep in enumerate(reports):
            assert rep is not None, f"no delivery report for record {i}"
            assert rep[0] is None, f"record {i} failed: {rep[0]}"
            acks.append((rep[1], rep[2]))
        return acks
    if client == "kafka-python":
        p = kp_producer(bootstrap, **conf)
        try:
            futures = []
            for r in records:
                futures.append(p.send(
                    topic, partition=partition, key=r.get("key"), value=r.get("value"),
                    headers=r.get("headers"), timestamp_ms=r.get("timestamp"),
                ))
            p.flush(timeout)
            return [(m.offset, m.timestamp) for m in (f.get(timeout) for f in futures)]
        finally:
            p.close(10)
    raise ValueError(client)


def consume(client, bootstrap, topic, count, partition=0, offset=0, timeout=60, **conf):
    """Reads exactly `count` records of one partition from `offset` with `client`, as [Rec]."""
    if client == "confluent":
        return [_ck_rec(m) for m in ck_consume(bootstrap, topic, count, partition, offset,
                                                 timeout, **conf)]
    if client == "kafka-python":
        return [_kp_rec(r) for r in kp_consume(bootstrap, topic, count, partition, offset,
                                                 timeout, **conf)]
    raise ValueError(client)


def assert_no_more(client, bootstrap, topic, partition, offset):
    """Asserts that `offset` is the end of the partition: the high watermark equals it."""
    if client == "confluent":
        c = ck_consumer(bootstrap)
        try:
            low, high = c.get_watermark_offsets(CkTopicPartition(topic, partition), timeout=10,
                                                cached=False)
        finally:
            c.close()
    else:
        from kafka import TopicPartition

        c = kp_consumer(bootstrap)
        try:
            tp = TopicPartition(topic, partition)
            high = c.end_offsets([tp], timeout_ms=10000)[tp]
        finally:
            c.close()
    assert high == offset, f"{topic}[{partition}] ends at {high}, expected {offset}"


# --- what the broker stored ----------------------------------------------------------------

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def stored_batches(broker, topic, partition=0):
    """Reads the batch headers of a partition's segment files straight from the broker's data
    dir (Kafka's layout: <log.dirs>/<topic>-<partition>/<base offset>.log). Returns a list of
    dicts: base_offset, last_offset, magic, codec, timestamp_type, count."""
    d = os.path.join(broker.data_dir, "logs", f"{topic}-{partition}")
    out = []
    for name in sorted(f for f in os.listdir(d) if f.endswith(".log")):
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0:
                break
            magic = data[pos + 16]
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            (last_delta,) = struct.unpack_from(">i", data, pos + 23)
            (count,) = struct.unpack_from(">i", data, pos + 57)
            out.append({
                "base_offset": base_offset,
                "last_offset": base_offset + last_delta,
                "magic": magic,
                "codec": CODECS.get(attributes & 0x7, attributes & 0x7),
                "timestamp_type": "append" if attributes & 0x8 else "create",
                "count": count,
            })
            pos += 12 + length
    return out


# --- topics and multi-partition produce -----------------------------------------------------

def create_topic(bootstrap, topic, partitions=1, config=None, timeout=30):
    """Creates `topic` with confluent's AdminClient and waits for it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                       config=dict(config or {}))], operation_timeout=10)
    fs[topic].result(timeout)


def produce_spread(bootstrap, topic, records, timeout=60, **conf):
    """Produces [(partition, key, value)] with one confluent producer, waiting for every
    acknowledgement; returns the offsets in send order."""
    p = ck_producer(bootstrap, **conf)
    reports = [None] * len(records)

    def cb(i):
        def on_delivery(err, msg):
            reports[i] = (err, msg.offset())
        return on_delivery

    for i, (partition, key, value) in enumerate(records):
        while True:
            try:
                p.produce(topic, partition=partition, key=key, value=value, on_delivery=cb(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages undelivered after {timeout}s"
    for i, rep in enumerate(reports):
        assert rep is not None and rep[0] is None, f"record {i} failed: {rep}"
    return [rep[1] for rep in reports]
