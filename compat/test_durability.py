"""Nothing acknowledged is lost: records acknowledged with acks=all survive a SIGKILL of the
broker, come back with the same offsets after a restart on the same data dir, and producing
continues at the next offset."""

from support import consume, kcat, produce

N = 2000


def test_acknowledged_records_survive_sigkill(broker_factory, topic_name):
    b = broker_factory()
    records = [{"key": b"k%d" % i, "value": b"durable-%d" % i, "timestamp": 1_700_000_000_000 + i}
               for i in range(N)]
    # Several partitions, one of them written by each client.
    acks = produce("confluent", b.bootstrap, topic_name, records, acks="all",
                   **{"linger.ms": 5})
    assert [o for o, _ in acks] == list(range(N))
    kp_acks = produce("kafka-python", b.bootstrap, topic_name + "-kp", records[:100], acks="all")
    assert [o for o, _ in kp_acks] == list(range(100))

    assert b.kill() == -9
    b.restart()

    for client in ("confluent", "kafka-python"):
        got = consume(client, b.bootstrap, topic_name, N)
        assert [(r.offset, r.key, r.value, r.timestamp) for r in got] == [
            (i, r["key"], r["value"], r["timestamp"]) for i, r in enumerate(records)
        ], client
    got = consume("confluent", b.bootstrap, topic_name + "-kp", 100)
    assert [(r.offset, r.value) for r in got] == [(i, r["value"]) for i, r in
                                                  enumerate(records[:100])]

    # Producing continues at offset N, with both clients.
    assert [o for o, _ in produce("confluent", b.bootstrap, topic_name,
                                  [{"value": b"after restart"}], acks="all")] == [N]
    assert [o for o, _ in produce("kafka-python", b.bootstrap, topic_name,
                                  [{"value": b"and again"}], acks="all")] == [N + 1]

    # A second unclean stop right after: the post-restart records are kept too.
    assert b.kill() == -9
    b.restart()
    out = kcat(b.bootstrap, "-C", "-t", topic_name, "-p", "0", "-o", str(N - 1), "-e", "-q",
               "-f", "%o %s\n").stdout.decode()
    assert out.splitlines() == [f"{N - 1} durable-{N - 1}", f"{N} after restart",
                                f"{N + 1} and again"]
    # And a clean stop (SIGTERM) exits 0 and keeps everything as well.
    assert b.stop() == 0
    b.restart()
    got = consume("kafka-python", b.bootstrap, topic_name, 2, offset=N)
    assert [(r.offset, r.value) for r in got] == [(N, b"after restart"), (N + 1, b"and again")]
