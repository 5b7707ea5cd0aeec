#!/usr/bin/env bash
# The EWS toolkit (the root package, ews-toolkit) as a user of the crate gets
# it: its normal dependency tree must hold none of the replicator's crates
# (LDAP, SQLite, command line, WebSocket, TOML, log output), and it must
# package, with its code generator, as crates.io would receive it (`cargo
# package` builds the packaged sources on their own). Prints the dependency
# count the README quotes.
set -euo pipefail
cd "$(dirname "$0")/.."

deps=$(cargo tree -p ews-toolkit -e normal --prefix none --format '{p}' | sed 's/ (\*)//; s/ (proc-macro)//' | sort -u)
count=$(($(printf '%s\n' "$deps" | wc -l) - 1))
echo "ews-toolkit: $count crates in its normal dependency tree (default features)"
forbidden=$(printf '%s\n' "$deps" | grep -E '^(ldap3|lber|rusqlite|libsqlite3-sys|clap|clap_[a-z]+|tokio-tungstenite|tungstenite|toml|toml_[a-z]+|tracing-subscriber|serde_json|prometheus-client) ' || true)
if [ -n "$forbidden" ]; then
  echo "the toolkit's normal dependencies hold replicator crates:" >&2
  echo "$forbidden" >&2
  echo "make them optional (a feature) or move the code that needs them to replicator/" >&2
  exit 1
fi

# --allow-dirty: a developer runs this with uncommitted changes; CI's clone is clean
cargo package --quiet --allow-dirty -p ews-toolkit-codegen -p ews-toolkit
ls -1 target/package/*.crate
