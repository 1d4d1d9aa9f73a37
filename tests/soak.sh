#!/usr/bin/env bash
# Long fault-injection runs: the soak profile of tests/nemesis.rs (the #[ignore] soak_* tests)
# with a release build. Each run starts its own cluster on free loopback ports, injects one
# nemesis for the given time under load, heals, checks the whole history for linearizability
# and lost writes, and prints a RESULT line; this script also prints them as a markdown table
# for docs/testing.md.
#
# usage: tests/soak.sh [-s SECONDS] [-j PARALLEL] [NEMESIS...]
#   NEMESIS: pause kill isolate transfer membership burst (default: all of them)
#   -s: seconds of faults per run (default 600)
#   -j: runs at once (default 1; each run is a 3-node cluster of 2 cores per node)
# environment: LEASEKV_NEMESIS_SEED=<n> repeats a run's random choices.
# Logs: target/soak/<date>/<nemesis>.log. Exit status 1 if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=600
parallel=1
while getopts "s:j:h" opt; do
    case "$opt" in
        s) secs="$OPTARG" ;;
        j) parallel="$OPTARG" ;;
        *) sed -n '2,13p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
all=(pause kill isolate transfer membership burst)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then names=("${all[@]}"); fi
for n in "${names[@]}"; do
    case " ${all[*]} " in
        *" $n "*) ;;
        *) echo "unknown nemesis '$n' (choose from: ${all[*]})" >&2; exit 2 ;;
    esac
done

echo "== building (release)"
build_log=$(cargo test --release --test nemesis --no-run 2>&1) || { echo "$build_log"; exit 1; }
bin=$(echo "$build_log" | sed -n 's/.*Executable tests\/nemesis.rs (\(.*\))/\1/p' | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "$build_log"
    echo "could not find the nemesis test binary" >&2
    exit 1
fi

dir="target/soak/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$dir"
echo "== ${#names[@]} run(s) of ${secs}s, ${parallel} at a time; logs in $dir"

# Each run bounds its own waits; this is the backstop (faults + recovery, check, slack).
limit=$((secs + 1200))
run_one() {
    local n=$1
    local start=$SECONDS
    if LEASEKV_SOAK_SECS="$secs" timeout --kill-after=30s "$limit" \
        "$bin" --ignored --exact "soak_$n" --nocapture --test-threads=1 >"$dir/$n.log" 2>&1; then
        echo "   $n: passed after $((SECONDS - start)) s"
    else
        echo "   $n: FAILED after $((SECONDS - start)) s (see $dir/$n.log)"
    fi
}

running=0
for n in "${names[@]}"; do
    run_one "$n" &
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

echo "== results"
status=0
echo "| nemesis | fault time | operations | ok | failed | indeterminate | faults injected | keys | compactions | verdict | check time | seed |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${names[@]}"; do
    # With --nocapture the RESULT line may follow "test soak_x ... " on the same line.
    line=$(grep -o 'RESULT .*' "$dir/$n.log" | tail -1 || true)
    if [ -z "$line" ] || ! grep -q '^test result: ok\. 1 passed' "$dir/$n.log"; then
        status=1
        line=""
    fi
    if [ -z "$line" ]; then
        echo "| $n | | | | | | | | | FAILED (see $dir/$n.log) | | |"
        continue
    fi
    field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    echo "| $n | $(field secs) s | $(field ops) | $(field ok) | $(field failed) | $(field indeterminate) | $(field faults) | $(field keys) | $(field compactions) | $(field verdict) | $(field check) | $(field seed) |"
done
grep -ho 'RESULT .*' "$dir"/*.log || true
exit $status
