#!/usr/bin/env bash
# Fuzzes the parsers of what the network hands us: the SOAP responses
# (GetUserAvailability, autodiscover) and the UCServer's ROSE JSON; and checks
# that the streaming GetUserAvailability reader agrees with the generated
# bindings on any input (availability_differential).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   open search: random seed, wall time (default 60)
#   scripts/fuzz.sh --ci                   what .ci/run does: a fixed seed and a
#                                          fixed number of runs per target
#
# CI's verdict should depend on the commit, not on the machine or luck: a
# search bounded by wall time from a random seed is a different search each
# time (a new finding turned CI red at random; a slow machine searched
# less). --ci bounds it by runs from one seed: the same budget everywhere and
# nearly the same search (not exactly: hash-map seeds shift coverage a
# little). The open search is for developers; its findings go to
# fuzz/regressions/ with the fix.
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
# The fuzz package is its own workspace: its lock starts as a copy of the
# root one, so the parsers are fuzzed with the crate versions they ship with
# (an ignored lock of its own floated to the newest versions on the day);
# cargo adds only the fuzz-only crates.
cp ../Cargo.lock Cargo.lock

# The fuzzer's bound per target. --ci: runs sized to about a minute each on
# a 2-core machine (measured here: rose_json ~150,000 inputs/s,
# soap_response ~13,000, availability_differential ~9,000).
targets=(soap_response rose_json availability_differential)
declare -A bound
if [ "${1:-}" = "--ci" ]; then
    bound=(
        [soap_response]="-seed=20261205 -runs=800000"
        [rose_json]="-seed=20261205 -runs=10000000"
        [availability_differential]="-seed=20261205 -runs=600000"
    )
else
    for target in "${targets[@]}"; do
        bound[$target]="-max_total_time=${1:-60}"
    done
fi

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

for target in "${targets[@]}"; do
    if compgen -G "regressions/$target/*" >/dev/null; then
        echo "== $target: replaying fuzz/regressions/$target"
        fuzz run "$target" regressions/"$target"/* -- -runs=1
    fi
    echo "== $target: fuzzing, ${bound[$target]}"
    mkdir -p "$work/corpus/$target"
    # shellcheck disable=SC2086 # the bound is two words or one, on purpose
    fuzz run "$target" "$work/corpus/$target" "$work/seed/$target" -- \
        ${bound[$target]} -rss_limit_mb=2048 -timeout=10 -max_len=262144 -print_final_stats=1
done
