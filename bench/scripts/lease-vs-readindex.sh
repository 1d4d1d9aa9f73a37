#!/usr/bin/env bash
# Lease vs ReadIndex in one run: a 3-node `leasekv demo` per mode, GETs sent to the leader
# of group 0 with keys hash-tagged into group 0 (no forwarding), open loop 2000 ops/s,
# 1 s warm-up + 5 s. Needs release builds and redis-cli. Interim until the scenario runner.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
L=$root/target/release/leasekv; B=$root/target/release/leasekv-bench
base=${BASE_PORT:-7521}
for mode in lease readindex; do
  "$L" demo --nodes 3 --base-port "$base" --read-mode "$mode" > "/tmp/leasekv-bench-$mode.out" 2>&1 &
  demo=$!
  trap 'kill -TERM $demo 2>/dev/null || true' EXIT
  sleep 5
  tag=""
  for t in a b c d e f g h i j k l m n o p; do
    if [ "$(redis-cli -p "$base" cluster keyslot "{$t}")" -lt 4096 ]; then tag=$t; break; fi
  done
  leader=""
  for p in $base $((base + 1)) $((base + 2)); do
    redis-cli -p "$p" info leasekv | grep -q "group0:.*role=leader" && leader=$p
  done
  echo "=== read_mode=$mode (tag {$tag} -> group 0, leader on port $leader)"
  "$B" load --target "127.0.0.1:$leader" --connections 8 --threads 1 --keys 1000 --value-size 64 \
    --read-ratio 1.0 --hash-tag "$tag" --warmup 1 --duration 5 --rate 2000 --preload \
    --max-generator-lag-us 100000 --max-generator-cpu 1.0 --json "/tmp/leasekv-bench-$mode.json" \
    | grep -E "throughput|errors|latency us|read "
  redis-cli -p "$leader" info leasekv | grep "group0:" | tr ',' '\n' | grep -E "lease_hits|lease_misses|readindex_mean"
  kill -TERM "$demo"; wait "$demo" 2>/dev/null || true
done
