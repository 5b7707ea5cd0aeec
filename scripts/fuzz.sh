#!/usr/bin/env bash
# Fuzzes the parsers of what the network hands us: the SOAP responses
# (GetUserAvailability, autodiscover) and the UCServer's ROSE JSON; and checks
# that the streaming GetUserAvailability reader agrees with the generated
# bindings on any input (availability_differential).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60; CI uses 60)
#
# First replays fuzz/regressions/<target>/ (inputs that once failed, kept so
# they stay fixed), then fuzzes each target, seeded from the project's own
# fixtures. cargo fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. No sanitizer (`-s none`): the code under test is
# safe Rust; what we look for is panics, hangs and unbounded memory, which
# libFuzzer reports without one, and the build is much faster.
# A crash leaves its input in fuzz/artifacts/<target>/; copy it into
# fuzz/regressions/<target>/ with the fix.
set -euo pipefail
# Run from fuzz/: cargo fuzz started elsewhere builds everything again.
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# fuzz SUBCOMMAND [ARGS...]: the same build flags everywhere, so one build serves all.
fuzz() { local sub="$1"; shift; cargo fuzz "$sub" -s none -O "$@"; }
fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Seeds: the EWS fixtures, and the JSON bodies of the UCServer snapshots.
mkdir -p "$work/seed/soap_response" "$work/seed/rose_json" "$work/seed/availability_differential"
cp ../tests/fixtures/ews/*.xml "$work/seed/soap_response/"
cp ../tests/fixtures/ews/gua_*.xml ../tests/fixtures/ews/tol_*.xml ../tests/fixtures/ews/fault_*.xml "$work/seed/availability_differential/"
for snap in ../replicator/snapshots/ucserver_*.snap; do
    awk 'n >= 2 { print } /^---$/ { n++ }' "$snap" >"$work/seed/rose_json/$(basename "$snap" .snap).json"
done

for target in soap_response rose_json availability_differential; do
    if compgen -G "regressions/$target/*" >/dev/null; then
        echo "== $target: replaying fuzz/regressions/$target"
        fuzz run "$target" regressions/"$target"/* -- -runs=1
    fi
    echo "== $target: fuzzing for ${seconds}s"
    mkdir -p "$work/corpus/$target"
    fuzz run "$target" "$work/corpus/$target" "$work/seed/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=262144 -print_final_stats=1
done
