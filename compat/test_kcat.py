"""kcat (librdkafka 2.0.2 on Debian): metadata listing, producing with keys, headers and
compression, consuming with formats and relative/absolute offsets."""

import json

from confluent_kafka.admin import AdminClient, NewTopic

from support import consume, kcat, stored_batches

LINES = [("k%d" % i, "value number %d" % i) for i in range(10)]


def kcat_produce(bootstrap, topic, *extra, lines=LINES):
    data = "".join(f"{k}:{v}\n" for k, v in lines).encode()
    kcat(bootstrap, "-P", "-t", topic, "-p", "0", "-K:", *extra, input=data)


def kcat_consume(bootstrap, topic, *args, fmt="%k %s %h %o\n"):
    out = kcat(bootstrap, "-C", "-t", topic, "-p", "0", "-e", "-q", "-f", fmt, *args).stdout
    return out.decode().splitlines()


def test_kcat_metadata_lists_broker_and_topic(broker, topic_name):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic_name, 3)])[topic_name].result(30)

    text = kcat(broker.bootstrap, "-L").stdout.decode()
    assert f"broker 1 at 127.0.0.1:{broker.port} (controller)" in text, text
    assert f'topic "{topic_name}" with 3 partitions:' in text, text

    meta = json.loads(kcat(broker.bootstrap, "-L", "-J", "-t", topic_name).stdout)
    assert meta["controllerid"] == 1
    assert meta["brokers"] == [{"id": 1, "name": f"127.0.0.1:{broker.port}"}]
    (topic,) = meta["topics"]
    assert topic["topic"] == topic_name
    assert "error" not in topic, topic
    assert [p["partition"] for p in topic["partitions"]] == [0, 1, 2]
    for p in topic["partitions"]:
        assert p["leader"] == 1
        assert p["replicas"] == [{"id": 1}] and p["isrs"] == [{"id": 1}]


def test_kcat_produce_keys_headers_compression_and_consume(broker, topic_name):
    # zstd: the one codec this librdkafka 2.0.2 compresses against a Kafka 4.x-style broker
    # (see test_compression.py for gzip/snappy/lz4).
    kcat_produce(broker.bootstrap, topic_name, "-H", "h1=v1", "-H", "trace=abc", "-z", "zstd")
    batches = stored_batches(broker, topic_name)
    assert {b["codec"] for b in batches} == {"zstd"}, batches

    lines = kcat_consume(broker.bootstrap, topic_name, "-o", "beginning")
    assert lines == [f"{k} {v} h1=v1,trace=abc {i}" for i, (k, v) in enumerate(LINES)]

    # The same records as the Python clients see them.
    for client in ("confluent", "kafka-python"):
        got = consume(client, broker.bootstrap, topic_name, len(LINES))
        assert [(r.offset, r.key, r.value, r.headers) for r in got] == [
            (i, k.encode(), v.encode(), [("h1", b"v1"), ("trace", b"abc")])
            for i, (k, v) in enumerate(LINES)
        ], client


def test_kcat_offsets(broker, topic_name):
    kcat_produce(broker.bootstrap, topic_name)
    fmt = "%o %k\n"
    assert kcat_consume(broker.bootstrap, topic_name, "-o", "-1", fmt=fmt) == ["9 k9"]
    assert kcat_consume(broker.bootstrap, topic_name, "-o", "-3", fmt=fmt) == [
        "7 k7", "8 k8", "9 k9"]
    assert kcat_consume(broker.bootstrap, topic_name, "-o", "4", "-c", "2", fmt=fmt) == [
        "4 k4", "5 k5"]
    assert kcat_consume(broker.bootstrap, topic_name, "-o", "end", fmt=fmt) == []
    assert len(kcat_consume(broker.bootstrap, topic_name, "-o", "beginning", fmt=fmt)) == 10


def test_kcat_reads_what_python_clients_wrote(broker, topic_name):
    from support import produce

    produce("confluent", broker.bootstrap, topic_name,
            [{"key": b"ck", "value": b"from confluent", "headers": [("from", b"ck")]}])
    produce("kafka-python", broker.bootstrap, topic_name,
            [{"key": None, "value": b"from kafka-python", "headers": [("from", b"kp")]},
             {"key": b"tomb", "value": None}])
    # %K / %S print the lengths: -1 for null
    lines = kcat_consume(broker.bootstrap, topic_name, "-o", "beginning",
                         fmt="%o|%K|%k|%S|%s|%h\n")
    assert lines == [
        "0|2|ck|14|from confluent|from=ck",
        "1|-1||17|from kafka-python|from=kp",
        "2|4|tomb|-1||",
    ]


def test_kcat_query_offsets_by_time(broker, topic_name):
    from support import produce

    t0 = 1_700_000_000_000
    produce("confluent", broker.bootstrap, topic_name,
            [{"value": b"%d" % i, "timestamp": t0 + 1000 * i} for i in range(5)])
    for target, offset in [(t0 - 1, 0), (t0, 0), (t0 + 2500, 3), (t0 + 4000, 4),
                           (t0 + 4001, -1)]:
        out = kcat(broker.bootstrap, "-Q", "-t", f"{topic_name}:0:{target}").stdout.decode()
        assert out.strip() == f"{topic_name} [0] offset {offset}", (target, out)
    # %T prints the CreateTime of each record.
    assert kcat_consume(broker.bootstrap, topic_name, "-o", "beginning", fmt="%o %T\n") == [
        f"{i} {t0 + 1000 * i}" for i in range(5)]
