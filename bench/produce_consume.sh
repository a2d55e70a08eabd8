#!/usr/bin/env bash
# End-to-end throughput of a release strom broker driven by librdkafka (kcat):
# RECORDS records of SIZE bytes (default 1,000,000 x 100 B), acks=1, linger.ms=5,
# batch.size=1 MiB, no compression, one topic with 6 partitions. Reports records/s and MB/s for
# produce and consume, and the broker's CPU seconds (utime+stime from /proc) for each phase.
# Then rounds of kcat and `strom perf-test producer` with the same settings against the same
# broker, and the ratio of the two producers' medians.
#
#   bench/produce_consume.sh                 build the release broker, then run
#   STROM_BIN=path/to/strom bench/produce_consume.sh
#   RECORDS=5000000 SIZE=100 ROUNDS=5 bench/produce_consume.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}
SIZE=${SIZE:-100}
PARTITIONS=${PARTITIONS:-6}
command -v kcat >/dev/null || scripts/setup-test-deps
if [ -z "${STROM_BIN:-}" ]; then
  cargo build --release --bin strom >&2
  STROM_BIN=$PWD/target/release/strom
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bs=127.0.0.1:$port
"$STROM_BIN" server --override "log.dirs=$work/data" --override "listeners=PLAINTEXT://$bs" >"$work/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

"$STROM_BIN" topics create bench --partitions "$PARTITIONS" --bootstrap-server "$bs" >/dev/null
python3 - "$work/records.txt" "$RECORDS" "$SIZE" <<'PY'
import sys
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
base = (alphabet * (size // len(alphabet) + 2))
with open(path, "wb") as f:
    for i in range(n):
        start = i % len(alphabet)
        f.write(base[start:start + size] + b"\n")
PY

hz=$(getconf CLK_TCK)
cpu() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$broker/stat"; }
now() { date +%s.%N; }

c0=$(cpu); t0=$(now)
kcat -P -b "$bs" -t bench -l \
  -X acks=1 -X linger.ms=5 -X batch.size=1048576 -X compression.codec=none \
  -X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2097151 \
  "$work/records.txt"
t1=$(now); c1=$(cpu)
kcat -C -b "$bs" -t bench -e -o beginning -q -f 'x' -X fetch.wait.max.ms=100 >"$work/consumed"
t2=$(now); c2=$(cpu)
consumed=$(wc -c <"$work/consumed")

python3 - "$RECORDS" "$SIZE" "$consumed" "$t0" "$t1" "$t2" "$c0" "$c1" "$c2" <<'PY'
import sys
n, size, consumed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0, t1, t2, c0, c1, c2 = map(float, sys.argv[4:])
gb = n * size / 1e9
print(f"records: {n:,} x {size} B ({gb * 1000:.0f} MB), 6 partitions, acks=1, linger.ms=5, batch.size=1MiB")
print(f"produce: {n / (t1 - t0):>12,.0f} records/s {n * size / (t1 - t0) / 1e6:8.1f} MB/s  "
      f"broker CPU {c1 - c0:.2f} s ({(c1 - c0) / gb:.2f} CPU-s/GB)")
print(f"consume: {consumed / (t2 - t1):>12,.0f} records/s {consumed * size / (t2 - t1) / 1e6:8.1f} MB/s  "
      f"broker CPU {c2 - c1:.2f} s")
if consumed != n:
    sys.exit(f"consumed {consumed} records, expected {n}")
PY

# The Rust client against librdkafka with the same settings, same broker: ROUNDS rounds, each
# producing into fresh topics with kcat and then with `strom perf-test producer`, so that both
# see the same machine noise; the medians and their ratio are what to report. kcat's time
# includes its start and reading the records file (a few ms), strom's starts once connected.
ROUNDS=${ROUNDS:-3}
kcat_rates=()
strom_rates=()
for round in $(seq "$ROUNDS"); do
  "$STROM_BIN" topics create "bench-kcat-$round" --partitions "$PARTITIONS" --bootstrap-server "$bs" >/dev/null
  "$STROM_BIN" topics create "bench-strom-$round" --partitions "$PARTITIONS" --bootstrap-server "$bs" >/dev/null
  t0=$(now)
  kcat -P -b "$bs" -t "bench-kcat-$round" -l \
    -X acks=1 -X linger.ms=5 -X batch.size=1048576 -X compression.codec=none \
    -X queue.buffering.max.messages=2000000 -X queue.buffering.max.kbytes=2097151 \
    "$work/records.txt"
  t1=$(now)
  kcat_rates+=("$(python3 -c "print($RECORDS / ($t1 - $t0))")")
  strom_json=$("$STROM_BIN" perf-test producer --topic "bench-strom-$round" --num-records "$RECORDS" \
    --record-size "$SIZE" --throughput -1 --bootstrap-server "$bs" --output json \
    --producer-props acks=1 linger.ms=5 batch.size=1048576 compression.type=none 2>/dev/null)
  strom_rates+=("$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["records_per_sec"])' "$strom_json")")
done
python3 - "${kcat_rates[*]}" "${strom_rates[*]}" <<'PY'
import statistics, sys
kcat = [float(x) for x in sys.argv[1].split()]
strom = [float(x) for x in sys.argv[2].split()]
for i, (k, s) in enumerate(zip(kcat, strom), 1):
    print(f"round {i}: librdkafka/kcat {k:>12,.0f} records/s   strom perf-test producer {s:>12,.0f} records/s   ratio {s / k:.2f}")
k, s = statistics.median(kcat), statistics.median(strom)
print(f"median:  librdkafka/kcat {k:>12,.0f} records/s   strom perf-test producer {s:>12,.0f} records/s   ratio strom/librdkafka {s / k:.2f}")
PY
