"""`strom transactions` on transactions a confluent-kafka producer runs: `list` and `describe`
show the ongoing transaction with its partitions, and `abort --start-offset` ends a hanging
transaction on a partition so that read_committed consumers get past it (what
`kafka-transactions.sh abort` is for)."""

import json
import subprocess

from confluent_kafka import Consumer, TopicPartition

from support import ck_producer, create_topic, wait_until


def strom(strom_bin, bootstrap, *args, check=True):
    r = subprocess.run([strom_bin, "transactions", *args, "--bootstrap-server", bootstrap],
                       capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"strom transactions {' '.join(args)}: {r.stderr}"
    return r


def committed_end(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                  "isolation.level": "read_committed"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    finally:
        c.close()


def test_list_describe_and_abort_a_hanging_transaction(bootstrap, topic_name, strom_bin):
    create_topic(bootstrap, topic_name, partitions=1)
    txn_id = f"tx-{topic_name}"
    p = ck_producer(bootstrap, **{"transactional.id": txn_id, "enable.idempotence": True,
                                  "transaction.timeout.ms": 60000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic_name, value=b"pending-%d" % i, partition=0)
    assert p.flush(30) == 0

    listed = json.loads(strom(strom_bin, bootstrap, "list", "--output", "json").stdout)
    mine = [t for t in listed if t["transactional_id"] == txn_id]
    assert len(mine) == 1 and mine[0]["state"] == "Ongoing", listed
    ongoing = json.loads(strom(strom_bin, bootstrap, "list", "--state", "Ongoing",
                               "--output", "json").stdout)
    assert txn_id in {t["transactional_id"] for t in ongoing}
    table = strom(strom_bin, bootstrap, "list").stdout.splitlines()
    assert table[0].split() == ["TransactionalId", "Coordinator", "ProducerId",
                                "TransactionState"]

    d = json.loads(strom(strom_bin, bootstrap, "describe", "--transactional-id", txn_id,
                         "--output", "json").stdout)
    assert d["state"] == "Ongoing"
    assert d["partitions"] == [f"{topic_name}-0"]
    assert d["producer_id"] == mine[0]["producer_id"]
    assert d["transaction_timeout_ms"] == 60000
    assert d["transaction_start_time_ms"] is not None

    r = strom(strom_bin, bootstrap, "describe", "--transactional-id", "no-such-id", check=False)
    assert r.returncode != 0 and "TRANSACTIONAL_ID_NOT_FOUND" in r.stderr.upper() \
        .replace(" ", "_"), r.stderr

    # The transaction holds the last stable offset at its first record.
    assert committed_end(bootstrap, topic_name) == 0
    r = strom(strom_bin, bootstrap, "abort", "--topic", topic_name, "--partition", "0",
              "--start-offset", "5", check=False)
    assert r.returncode != 0 and "offset 5" in r.stderr, r.stderr
    strom(strom_bin, bootstrap, "abort", "--topic", topic_name, "--partition", "0",
          "--start-offset", "0")
    wait_until(lambda: committed_end(bootstrap, topic_name) == 4, 10,
               "the last stable offset to pass the aborted transaction")
    p.abort_transaction(30)
