"""A transactional producer that opens a transaction and then waits to be SIGKILLed
(test_transactions.py::test_dead_producer_transaction_is_aborted_after_timeout).

    python txn_dead_producer.py BOOTSTRAP TRANSACTIONAL_ID TOPIC COUNT TIMEOUT_MS

init_transactions, begin_transaction, COUNT records to partition 0, flush (so they are written),
then prints one line `flushed <wall clock before the first produce>` and sleeps."""

import sys
import time

from confluent_kafka import Producer


def main():
    bootstrap, tid, topic, count, timeout_ms = sys.argv[1:6]
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                  "transaction.timeout.ms": int(timeout_ms), "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    started = time.time()  # the coordinator starts the transaction's clock after this
    for i in range(int(count)):
        p.produce(topic, value=b"dead-%d" % i, key=b"dead-%d" % i, partition=0)
    left = p.flush(30)
    if left:
        print(f"error {left} records not delivered", flush=True)
        sys.exit(1)
    print(f"flushed {started:.6f}", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
