"""Transactions across clients, with strom's own client on one side: what
`strom perf-test producer --transaction-duration-ms` (strom-client's transactional producer)
commits, confluent-kafka and kafka-python read_committed consumers read exactly, markers
included in the offsets; and `strom consume --isolation-level read_committed` (strom-client's
consumer) skips what a confluent or kafka-python transactional producer aborted."""

import json
import subprocess

import pytest

from support import create_topic
from txn_support import TxnProducer, end_offsets, produce_txn, read_records


def strom(strom_bin, bootstrap, *args, timeout=120):
    r = subprocess.run([strom_bin, *args, "--bootstrap-server", bootstrap],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"strom {' '.join(args)}: {r.returncode} {r.stderr}"
    return r.stdout


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_clients_read_committed_what_strom_transactions_wrote(bootstrap, topic_name, strom_bin,
                                                              client):
    create_topic(bootstrap, topic_name)
    out = strom(strom_bin, bootstrap, "perf-test", "producer", "--topic", topic_name,
                "--num-records", "3000", "--record-size", "20", "--throughput", "20000",
                "--transaction-duration-ms", "30", "--transactional-id", f"perf-{client}",
                "--output", "json")
    result = json.loads(out.splitlines()[-1])
    assert result["records"] == 3000 and result["errors"] == 0, result

    records = read_records(client, bootstrap, topic_name, "committed", 3000)
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets)
    # Each commit wrote a COMMIT marker, which takes an offset between transactions.
    gaps = sum(1 for a, b in zip(offsets, offsets[1:]) if b != a + 1)
    assert gaps >= 2, f"expected several transactions, saw {gaps + 1}"
    (_, committed_end), = end_offsets(client, bootstrap, topic_name, "committed").values()
    (_, end), = end_offsets(client, bootstrap, topic_name, "uncommitted").values()
    assert committed_end == end == offsets[-1] + 2, "the log ends with the last COMMIT marker"


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_strom_consumer_skips_aborted_transactions_of_other_clients(bootstrap, topic_name,
                                                                    strom_bin, client):
    create_topic(bootstrap, topic_name)
    producer = TxnProducer(client, bootstrap, f"aborts-{client}")
    try:
        producer.init()
        produce_txn(producer, topic_name, [b"c1", b"c2"])
        produce_txn(producer, topic_name, [b"a1", b"a2", b"a3"], commit=False)
        produce_txn(producer, topic_name, [b"c3"])
        produce_txn(producer, topic_name, [b"a4"], commit=False)
        produce_txn(producer, topic_name, [b"c4", b"c5"])
    finally:
        producer.close()

    def strom_consume(level, count):
        return strom(strom_bin, bootstrap, "consume", topic_name, "--from-beginning",
                     "--isolation-level", level, "--max-messages", str(count),
                     "--timeout-ms", "5000").split()

    assert strom_consume("read_committed", 5) == ["c1", "c2", "c3", "c4", "c5"]
    # Nothing else follows: asking for more ends at the timeout with the same five.
    assert strom_consume("read_committed", 6) == ["c1", "c2", "c3", "c4", "c5"]
    assert strom_consume("read_uncommitted", 9) == [
        "c1", "c2", "a1", "a2", "a3", "c3", "a4", "c4", "c5"]
