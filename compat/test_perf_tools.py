"""What strom's own producer writes, third-party consumers read: confluent-kafka and
kafka-python consume what `strom verifiable-producer` and `strom perf-test producer` (both on
strom-client, idempotent by default) wrote, with the keys, values and offsets the tools
reported, and the stored batches carry the producer id and contiguous sequence numbers."""

import json
import os
import struct
import subprocess

import pytest

from support import assert_no_more, consume, create_topic


def strom(strom_bin, bootstrap, *args):
    r = subprocess.run([strom_bin, *args, "--bootstrap-server", bootstrap],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"strom {' '.join(args)}: {r.returncode} {r.stderr}"
    return r.stdout


def stored_producer_fields(broker, topic, partition=0):
    """(producer id, epoch, base sequence, record count) of each stored batch, read from the
    segment files (v2 batch header: producer id at byte 43, epoch 51, base sequence 53)."""
    d = os.path.join(broker.data_dir, "logs", f"{topic}-{partition}")
    out = []
    for name in sorted(f for f in os.listdir(d) if f.endswith(".log")):
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            if length <= 0:
                break
            pid, epoch, base_seq, count = struct.unpack_from(">qhii", data, pos + 43)
            out.append((pid, epoch, base_seq, count))
            pos += 12 + length
    return out


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_clients_read_what_verifiable_producer_wrote(broker, bootstrap, topic_name, strom_bin,
                                                     client):
    create_topic(bootstrap, topic_name)
    out = strom(strom_bin, bootstrap, "verifiable-producer", "--topic", topic_name,
                "--max-messages", "300", "--value-prefix", "4", "--repeating-keys", "7")
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["name"] == "startup_complete"
    assert [e["name"] for e in events[-2:]] == ["shutdown_complete", "tool_data"]
    acked = [e for e in events if e["name"] == "producer_send_success"]
    assert len(acked) == 300
    assert events[-1]["acked"] == 300

    records = consume(client, bootstrap, topic_name, 300)
    assert [r.offset for r in records] == [e["offset"] for e in acked] == list(range(300))
    assert [r.value for r in records] == [b"4.%d" % i for i in range(300)]
    assert [r.key for r in records] == [b"%d" % (i % 7) for i in range(300)]
    assert_no_more(client, bootstrap, topic_name, 0, 300)

    # Idempotent: one producer id, sequences continuing batch after batch from 0.
    batches = stored_producer_fields(broker, topic_name)
    assert len({(pid, epoch) for pid, epoch, _, _ in batches}) == 1
    assert batches[0][0] >= 0
    expected = 0
    for _, _, base_seq, count in batches:
        assert base_seq == expected
        expected += count
    assert expected == 300


def test_confluent_reads_what_perf_test_producer_wrote(bootstrap, topic_name, strom_bin):
    create_topic(bootstrap, topic_name)
    out = strom(strom_bin, bootstrap, "perf-test", "producer", "--topic", topic_name,
                "--num-records", "2000", "--record-size", "64", "--throughput", "-1",
                "--producer-props", "acks=1", "linger.ms=5", "compression.type=lz4",
                "--output", "json")
    [summary] = [json.loads(line) for line in out.splitlines()]
    assert summary["records"] == 2000 and summary["errors"] == 0
    records = consume("confluent", bootstrap, topic_name, 2000)
    assert all(len(r.value) == 64 and r.value.isupper() for r in records)
    assert [r.offset for r in records] == list(range(2000))

    out = strom(strom_bin, bootstrap, "perf-test", "consumer", "--topic", topic_name,
                "--messages", "2000", "--output", "json")
    assert json.loads(out)["messages"] == 2000
