#!/usr/bin/env bash
# Builds the Debian package and tries it on this machine (as root; .ci/run's
# "Debian package" stage): install, --version, the man page, the installed
# unit verified, an upgrade that keeps the configuration and state, then
# purge, after which nothing of the package may be left: files, folders,
# user, group, unit state. PROFILE=dev packages the debug build (quicker).
set -euo pipefail
cd "$(dirname "$0")/.."
name=ews-calendar-replicator

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: dpkg -i and --purge change the system" >&2
  exit 1
fi
command -v man >/dev/null || { echo "man is missing: scripts/install-test-packages.sh installs man-db" >&2; exit 1; }

fail() { echo "package test FAILED: $*" >&2; exit 1; }

replicator/packaging/build-deb.sh
version=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "'$name'"))')
deb=$(ls -t target/debian/${name}_"${version}"*_amd64.deb | head -1)
echo "package: $deb"

# A leftover from an interrupted run would hide what this install does.
if dpkg -s "$name" >/dev/null 2>&1; then
  dpkg --purge "$name"
fi
getent passwd "$name" >/dev/null && fail "user $name exists before the install"

dpkg -i "$deb"

echo "-- installed files"
out=$("$name" --version)
echo "$out"
[[ "$out" =~ ^$name\ $version\ \(commit\ ([0-9a-f]{12}|unknown),\ built\ [0-9]{4}-[0-9]{2}-[0-9]{2}\)$ ]] ||
  fail "--version printed '$out', expected '$name $version (commit <hash>, built <date>)'"
[ "$(command -v "$name")" = "/usr/bin/$name" ] || fail "the binary is not /usr/bin/$name"
man -w "$name"
man -w "$name-check" >/dev/null || fail "no man page for $name-check"
unit=/usr/lib/systemd/system/$name.service
systemd-analyze verify "$unit"
[ -f "/usr/lib/sysusers.d/$name.conf" ] || fail "no sysusers.d file"
getent passwd "$name" >/dev/null || fail "no system user $name"
getent group "$name" >/dev/null || fail "no group $name"
[ "$(stat -c '%a %U:%G' "/etc/$name")" = "750 root:$name" ] ||
  fail "/etc/$name is $(stat -c '%a %U:%G' "/etc/$name"), expected 750 root:$name"
[ -f "/etc/$name/config.example.toml" ] || fail "no /etc/$name/config.example.toml"
[ ! -e "/etc/$name/config.toml" ] || fail "the package shipped a config.toml (config init writes it)"
for doc in README.md CHANGELOG.md docs/exchange-permissions.md docs/migrating-from-estos.md; do
  [ -f "/usr/share/doc/$name/$doc" ] || fail "no /usr/share/doc/$name/$doc"
done
for completion in "/usr/share/bash-completion/completions/$name" \
  "/usr/share/zsh/vendor-completions/_$name" "/usr/share/fish/vendor_completions.d/$name.fish"; do
  [ -s "$completion" ] || fail "no shell completion $completion"
done
grep -q -- '--config' "/usr/share/bash-completion/completions/$name" ||
  fail "the bash completion does not know --config"

echo "-- upgrade (the same package again) keeps the configuration and state"
printf '# written by config init\n' >"/etc/$name/config.toml"
chmod 0640 "/etc/$name/config.toml"
install -d -m 0700 -o "$name" -g "$name" "/var/lib/$name" "/var/log/$name"
printf 'state\n' >"/var/lib/$name/state.sqlite"
printf 'log\n' >"/var/log/$name/$name.log"
dpkg -i "$deb"
[ "$(cat "/etc/$name/config.toml")" = "# written by config init" ] || fail "the upgrade changed config.toml"
[ -f "/var/lib/$name/state.sqlite" ] || fail "the upgrade removed the state database"
[ "$(stat -c '%a %U:%G' "/etc/$name")" = "750 root:$name" ] || fail "the upgrade changed /etc/$name's mode"

echo "-- remove keeps configuration and state; purge removes everything"
# Every file of the package, and every folder named after it (shared
# folders such as /usr/share/man stay).
owned=$(dpkg -L "$name" | while read -r path; do
  if [ ! -d "$path" ] || [[ "$path" == *"$name"* ]]; then echo "$path"; fi
done)
dpkg --remove "$name"
[ -f "/var/lib/$name/state.sqlite" ] || fail "remove (not purge) deleted the state database"
[ -f "/etc/$name/config.toml" ] || fail "remove (not purge) deleted config.toml"
dpkg --purge "$name"
left=()
for path in $owned "/etc/$name" "/var/lib/$name" "/var/log/$name" "/var/lib/private/$name" \
  "/etc/systemd/system/$name.service" "/etc/systemd/system/multi-user.target.wants/$name.service" \
  "/var/lib/systemd/deb-systemd-helper-enabled/$name.service.dsh-also" \
  "/var/lib/systemd/deb-systemd-helper-masked/$name.service"; do
  if [ -e "$path" ] || [ -L "$path" ]; then left+=("$path"); fi
done
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
getent passwd "$name" >/dev/null && fail "user $name left after purge"
getent group "$name" >/dev/null && fail "group $name left after purge"
dpkg -s "$name" >/dev/null 2>&1 && fail "dpkg still knows $name after purge"
echo "package test passed: $deb"
