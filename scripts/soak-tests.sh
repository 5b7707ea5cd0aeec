#!/usr/bin/env bash
# Runs the whole test suite (`cargo test --workspace`) again and again, each
# time under a different wall clock or CPU load, to show that no test
# depends on the time of day, the date or the machine's speed.
#
#   scripts/soak-tests.sh                 every scenario below, in order
#   scripts/soak-tests.sh NAME [NAME...]  only these (see `scenarios`)
#   scripts/soak-tests.sh --list          the scenarios
#
# Clock scenarios move the clock of every test process, and of everything
# they start (the replicator binary, the simulators), to the given UTC
# instant, through libfaketime (Debian's `faketime`), and let it run at the
# normal rate. The shift is one offset from the real clock (FAKETIME=+Ns,
# computed when the scenario starts), so that every process agrees on the
# time, however late it starts. Cargo itself runs on the real clock: a runner wrapper
# (CARGO_TARGET_<triple>_RUNNER) preloads libfaketime into the test
# binaries only, so the build's file times are not disturbed. The instants
# lie after today, so that the test domain's certificates (issued now, valid
# ten years) stay valid. The `load` scenario keeps both cores busy with two
# busy loops beside the tests.
#
# The test domain controller (scripts/test-dc.sh) runs on the real clock;
# LDAP simple binds do not depend on time.
#
# Each scenario prints one line `soak: NAME passed|FAILED in N s`, and the
# script ends with `soak: N passed, M failed`. Logs are kept in
# $SOAK_LOG_DIR (default: a new temporary directory), one file a scenario.
set -euo pipefail
cd "$(dirname "$0")/.."

LIBFAKETIME=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1

# name|UTC instant at the start (empty: real clock)|time zone of the processes
# The daylight-saving days run in Europe/Berlin, whose clocks change at
# 01:00 UTC on those days; the others in UTC.
scenarios=(
  "before-midnight|2026-12-31 23:59:40|UTC"
  "after-midnight|2027-01-01 00:00:05|UTC"
  "last-day-of-month|2027-02-28 23:58:00|UTC"
  "eu-summer-time-starts|2027-03-28 00:59:30|Europe/Berlin"
  "eu-summer-time-ends|2027-10-31 00:59:30|Europe/Berlin"
  "load||" # real clock and time zone, two busy loops beside the tests
)
# The load scenario's busy loops.
LOAD_LOOPS=2

if [ "${1:-}" = --list ]; then
  for s in "${scenarios[@]}"; do echo "${s%%|*}"; done
  exit 0
fi

scripts/install-test-packages.sh
scripts/test-dc.sh start
log_dir="${SOAK_LOG_DIR:-$(mktemp -d)}"
mkdir -p "$log_dir"
echo "soak: logs in $log_dir"

# Build once on the real clock; each scenario then only runs the tests.
cargo test --workspace --no-run --quiet

runner="$log_dir/faketime-runner"
cat >"$runner" <<EOF
#!/bin/sh
# Runs a test binary with its clock shifted by \$SOAK_OFFSET seconds.
exec env LD_PRELOAD="$LIBFAKETIME" FAKETIME="+\${SOAK_OFFSET}s" "\$@"
EOF
chmod +x "$runner"
triple=$(rustc -vV | sed -n 's/^host: //p' | tr 'a-z-' 'A-Z_')

selected=("$@")
passed=0
failed=0
busy=()
stop_load() {
  for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null || true; done
  busy=()
}
trap stop_load EXIT

for scenario in "${scenarios[@]}"; do
  IFS='|' read -r name instant zone <<<"$scenario"
  if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" $name "* ]]; then
    continue
  fi
  env_args=()
  if [ -n "$instant" ]; then
    offset=$(($(date -u -d "$instant" +%s) - $(date -u +%s)))
    env_args=("CARGO_TARGET_${triple}_RUNNER=$runner" "SOAK_OFFSET=$offset" "TZ=$zone")
  fi
  if [ "$name" = load ]; then
    for _ in $(seq "$LOAD_LOOPS"); do
      sh -c 'while :; do :; done' &
      busy+=($!)
    done
  fi
  started=$(date +%s)
  if env "${env_args[@]}" cargo test --workspace --no-fail-fast >"$log_dir/$name.log" 2>&1; then
    result=passed
    passed=$((passed + 1))
  else
    result=FAILED
    failed=$((failed + 1))
  fi
  stop_load
  echo "soak: $name $result in $(($(date +%s) - started)) s (log: $log_dir/$name.log)"
done

echo "soak: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
