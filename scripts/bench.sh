#!/usr/bin/env bash
# Runs every benchmark and prints a summary for the README's Performance section:
#   1. cycle_scale: full cycles at 1,000 / 10,000 / 20,000 mailboxes against
#      the simulators, and a 10,000-mailbox cycle against a throttled server
#   2. bench-peer-parse.sh: our parser vs a bare quick-xml scan vs exchangelib
#   3. read_availability: the Exchange reader alone at concurrency 1/4/8
#   4. push_latency: change-to-write latency with 1,000 subscribed mailboxes
#
#   scripts/bench.sh                      # everything (about 2 minutes on 2 cores)
#   scripts/bench.sh --sizes 1000,10000   # other cycle sizes
#
# Release profile. The full output goes to target/bench/bench.log.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target/bench"
log="$target/bench/bench.log"
: > "$log"

cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
header="$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), ${cpu:-unknown CPU}, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(rustc --version)"
echo "$header" | tee -a "$log"

echo "== building (release) ==" >&2
cargo bench --quiet --no-run >&2

echo "== cycle_scale ==" | tee -a "$log"
cargo bench --quiet -p ews-calendar-replicator --bench cycle_scale -- "$@" | tee -a "$log"
echo "== push_latency ==" | tee -a "$log"
cargo bench --quiet -p ews-calendar-replicator --bench push_latency | tee -a "$log"
echo "== parsing against a peer ==" | tee -a "$log"
scripts/bench-peer-parse.sh 2>&1 | tee -a "$log"
echo "== read_availability ==" | tee -a "$log"
cargo bench --quiet -p ews-toolkit --bench read_availability | tee -a "$log"

echo
echo "================ summary ================"
echo "$header"
grep -E '^\| +[0-9]+ \||^\| +N |^\|-' "$log" | head -8
grep -E '^throttled:' "$log" || true
grep -E '^PUSH ' "$log" || true
grep -E '^PEER ' "$log" || true
grep -E '^\| (ews-calendar|bare quick|exchangelib)' "$log" || true
echo "(full output: $log)"
