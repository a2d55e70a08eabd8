"""Bad input never hurts the server: malformed frames over a raw socket close only their own
connection (the socket reads EOF or a reset), while another client's session goes on working
and the broker process stays alive with its memory intact."""

import socket
import struct
import time

import pytest

from support import api_versions_roundtrip, ck_producer, consume, wait_until


def frame(api_key, version, correlation_id, body, client_id=b"bad-client"):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


CASES = {
    # Not Kafka at all: "GET " read as a length is ~1.2 GB, over socket.request.max.bytes.
    "http": (b"GET / HTTP/1.1\r\nHost: strom\r\n\r\n", False),
    # A well-framed request for an API key that does not exist.
    "unknown_api_key": (frame(0x7777, 0, 1, b"\x00" * 16), False),
    # A known API (Metadata v1) whose body ends in the middle of a field.
    "truncated_body": (frame(3, 1, 1, b"\x00\x00\x00\x02\x00\x10ab"), False),
    # Metadata v1 declaring 2^31-2 topics in a tiny frame (array pre-allocation bait).
    "huge_array_count": (frame(3, 1, 1, struct.pack(">i", 0x7FFFFFFE)), False),
    # Random bytes after a plausible length.
    "garbage": (struct.pack(">i", 64) + bytes((i * 97 + 13) % 256 for i in range(64)), False),
    # The length says 100 bytes, 10 are sent, then the client closes its side.
    "truncated_frame": (struct.pack(">i", 100) + b"\x00\x03\x00\x01" + b"\x00" * 6, True),
    # A declared length of 2 GiB - 1.
    "two_gib_length": (struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 128, False),
    # A negative length.
    "negative_length": (struct.pack(">i", -1) + b"\x00" * 16, False),
    # A zero length: no room for even a request header.
    "zero_length": (struct.pack(">i", 0), False),
}


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_until_closed(sock, timeout=10.0):
    """What the peer sent before closing, or raises if it keeps the connection open."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        except socket.timeout:
            break
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the broker kept the connection open for {timeout}s "
                         f"(received {received!r})")


@pytest.mark.broker_warnings(r"closing connection")
@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_closes_only_that_connection(broker, topic_name, case):
    data, close_write = CASES[case]
    pid = broker.proc.pid
    rss_before = rss_kb(pid)

    # Another client's sessions, open before and used after: a raw one and a real producer.
    healthy = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    healthy.settimeout(10)
    assert api_versions_roundtrip(healthy, 100)[0] == 0
    producer = ck_producer(broker.bootstrap, **{"linger.ms": 0})
    delivered = []

    def on_delivery(err, msg):
        delivered.append((err, msg.offset()))

    producer.produce(topic_name, b"before", partition=0, on_delivery=on_delivery)
    assert producer.flush(30) == 0 and delivered == [(None, 0)]

    mark = broker.log_size()
    bad = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    try:
        bad.sendall(data)
        if close_write:
            bad.shutdown(socket.SHUT_WR)
        received = read_until_closed(bad)
    finally:
        bad.close()
    assert received == b"", f"the broker answered a malformed frame with {received!r}"

    # One log line says why the connection was closed.
    wait_until(lambda: "closing connection" in broker.log_text(since=mark), 5,
               "the broker's log line about the closed connection")

    # The other sessions are unaffected, and new ones work too.
    assert api_versions_roundtrip(healthy, 101)[0] == 0
    healthy.close()
    producer.produce(topic_name, b"after", partition=0, on_delivery=on_delivery)
    assert producer.flush(30) == 0 and delivered == [(None, 0), (None, 1)]
    got = consume("kafka-python", broker.bootstrap, topic_name, 2)
    assert [(r.offset, r.value) for r in got] == [(0, b"before"), (1, b"after")]

    assert broker.alive(), "the broker process died"
    rss_after = rss_kb(pid)
    assert rss_after - rss_before < 200 * 1024, f"RSS grew from {rss_before} to {rss_after} kB"


@pytest.mark.broker_warnings(r"closing connection")
def test_many_bad_connections_at_once(broker, topic_name):
    """A burst of bad connections, open at the same time, then a normal produce/consume."""
    socks = []
    try:
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
            socks.append(s)
            data, _ = list(CASES.values())[i % len(CASES)]
            s.sendall(data)
            if i % len(CASES) == list(CASES).index("truncated_frame"):
                s.shutdown(socket.SHUT_WR)
        for s in socks:
            assert read_until_closed(s) == b""
    finally:
        for s in socks:
            s.close()
    assert broker.alive()
    p = ck_producer(broker.bootstrap)
    delivered = []
    p.produce(topic_name, b"still here", partition=0,
              on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    assert p.flush(30) == 0 and delivered == [(None, 0)]
