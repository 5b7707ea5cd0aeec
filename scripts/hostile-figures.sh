#!/usr/bin/env bash
# Issue #15: the figures of README "Reliability / Hostile servers". Runs the
# release binary's `check` against servers that lie, one at a time, on
# loopback (examples/hostile_server.rs: the servers the hostile_* tests use),
# and prints one table row per attack: what the server got out before the
# binary hung up, the binary's peak RSS and CPU seconds (GNU time), and the
# step `check` failed with.
#
#   scripts/hostile-figures.sh            # all attacks
#   scripts/hostile-figures.sh --list     # their names
#   scripts/hostile-figures.sh NAME...    # some of them
#
# Needs /usr/bin/time (Debian: apt-get install time). Builds with
# `cargo build --release`. Not part of .ci/run: the figures are machine
# dependent and go to the README, never into an assertion. "Server got out"
# counts what the kernel accepted from the server: what the binary read,
# plus what the loopback socket buffers held when it hung up (a few MB).
set -euo pipefail
cd "$(dirname "$0")/.."

attacks=(ldap-4gib-message ldap-endless-entries createsession-endless
    ews-error-answers-60mb ews-endless-body ews-escape-text)
if [[ "${1:-}" == --list ]]; then
    printf '%s\n' "${attacks[@]}"
    exit 0
fi
[[ $# -gt 0 ]] && attacks=("$@")
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

# PROFILE=debug tries the script out without a release build; the README's
# figures are from the release build.
profile=${PROFILE:-release}
if [[ "$profile" == release ]]; then
    cargo build --release --bin ews-calendar-replicator --example hostile_server >&2
else
    cargo build --bin ews-calendar-replicator --example hostile_server >&2
fi
profile_dir=$PWD/target/$([[ "$profile" == release ]] && echo release || echo debug)
bin=$profile_dir/ews-calendar-replicator
server_bin=$profile_dir/examples/hostile_server

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# A port nothing listens on: the servers not under attack fail at once.
closed=127.0.0.1:9

cat >"$work/users.toml" <<'EOF'
[[user]]
sam_account_name = "alice"
smtp = "alice@corp.example.com"
EOF

# config ATTACKED_AREA ADDRESS: every other server is the closed port.
config() {
    local area=$1 addr=$2
    local uc="http://$closed/" ews="http://$closed/EWS/Exchange.asmx"
    local directory="kind = \"static\"
file = \"$work/users.toml\""
    case $area in
    directory) directory="kind = \"ad\"
url = \"ldap://$addr\"
starttls = false
bind_user = \"svc-replicator@corp.example.com\"
password = \"not-a-real-password\"" ;;
    ucserver) uc="http://$addr/" ;;
    exchange) ews="http://$addr/EWS/Exchange.asmx" ;;
    esac
    cat >"$work/config.toml" <<EOF
[ucserver]
url = "$uc"
username = "Administrator"
password = "not-a-real-password"
allow_plain_http = true

[directory]
$directory

[exchange]
url = "$ews"
username = 'CORP\\svc-replicator'
password = "not-a-real-password"

[state]
path = "$work/state.sqlite"
EOF
    chmod 600 "$work/config.toml"
}

# measure ATTACK AREA: one row.
measure() {
    local attack=$1 area=$2
    mkfifo "$work/stdin"
    "$server_bin" "$attack" <"$work/stdin" >"$work/server.out" &
    server_pid=$!
    exec 3>"$work/stdin"
    local addr=
    for _ in $(seq 100); do
        addr=$(head -n1 "$work/server.out" 2>/dev/null || true)
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    config "$area" "$addr"
    timeout 600 /usr/bin/time -v -o "$work/time" "$bin" check --config "$work/config.toml" \
        >"$work/check.out" 2>&1 || true
    exec 3>&-
    wait "$server_pid" || true
    server_pid=
    rm -f "$work/stdin"
    local sent peak_kb user sys failed control=none
    sent=$(sed -n 's/^sent //p' "$work/server.out")
    if [[ "$sent" == *bytes ]]; then
        sent=$(awk -v n="${sent% bytes}" 'BEGIN { if (n < 1048576) printf "%d bytes", n; else printf "%.1f MiB", n / 1048576 }')
    fi
    peak_kb=$(sed -n 's/^\tMaximum resident set size (kbytes): //p' "$work/time")
    user=$(sed -n 's/^\tUser time (seconds): //p' "$work/time")
    sys=$(sed -n 's/^\tSystem time (seconds): //p' "$work/time")
    failed=$(grep -m1 "^\[FAIL\] $area" "$work/check.out" | sed 's/  */ /g' | cut -c1-320 || true)
    # Any control character in what check printed (other than the line ends).
    if tr -d '\n' <"$work/check.out" | LC_ALL=C grep -q '[[:cntrl:]]'; then control=some; fi
    printf '| %s | %s | %d MiB | %.2f | %s | %s |\n' "$attack" "$sent" $((peak_kb / 1024)) \
        "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" \
        "$control" "${failed//|/\\|}"
}

area_of() {
    case $1 in
    ldap-*) echo directory ;;
    createsession-*) echo ucserver ;;
    ews-*) echo exchange ;;
    *) echo "unknown attack $1 (--list names them)" >&2; exit 1 ;;
    esac
}

echo "hostile-figures: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $profile build, $(nproc) cores" >&2
echo '| attack | server got out | peak RSS | CPU s | control characters in the output | what `check` said |'
echo '|---|---|---|---|---|---|'
for attack in "${attacks[@]}"; do
    measure "$attack" "$(area_of "$attack")"
done
