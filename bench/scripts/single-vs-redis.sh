#!/usr/bin/env bash
# One leasekv node vs redis-server (no persistence) in one run: open loop 5000 ops/s,
# 90% GET, 8 connections, 1 s warm-up + 5 s. Needs release builds and redis-server.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
L=$root/target/release/leasekv; B=$root/target/release/leasekv-bench
dir=$(mktemp -d)
redis-server --port 7950 --save '' --appendonly no > "$dir/redis.log" 2>&1 &
rp=$!
"$L" serve --listen 127.0.0.1:7951 --data-dir "$dir/leasekv" > "$dir/leasekv.log" 2>&1 &
lp=$!
trap 'kill -TERM $rp $lp 2>/dev/null || true; rm -rf "$dir"' EXIT
sleep 3
for target in redis:7950 leasekv:7951; do
  echo "=== ${target%%:*}"
  "$B" load --target "127.0.0.1:${target##*:}" --connections 8 --threads 1 --keys 10000 \
    --value-size 64 --read-ratio 0.9 --warmup 1 --duration 5 --rate 5000 --preload \
    --max-generator-lag-us 100000 --max-generator-cpu 1.0 | grep -E "throughput|errors|latency us|read |write "
done
