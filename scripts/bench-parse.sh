#!/usr/bin/env bash
# Times parsing of a 100-mailbox x 10-event GetUserAvailability response
# (benches/parse_availability.rs) and prints the result table.
#
#   scripts/bench-parse.sh
#
# Builds with the release profile and only the EWS toolkit (-p ews-toolkit).
# Set CARGO_TARGET_DIR to keep the release build apart from other builds.
set -euo pipefail
cd "$(dirname "$0")/.."

cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
echo "machine: ${cpu:-unknown CPU}, $(nproc) cores, $(rustc --version)"
exec cargo bench --quiet -p ews-toolkit --bench parse_availability
