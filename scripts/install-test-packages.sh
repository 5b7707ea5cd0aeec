#!/usr/bin/env bash
# Installs the Debian packages the tests need beyond the Rust toolchain, when
# missing (as root; .ci/run and scripts/soak-tests.sh call it):
#   xmllint (libxml2-utils)  ews-validate checks request snapshots and the
#                            Exchange simulator's answers against the schema
#   samba, ldap-utils        the test domain controller (scripts/test-dc.sh)
#   faketime                 the fault matrix's clock-jump rows, the soak and the
#                            Kerberos clock-skew tests
#   python3-gssapi           MIT Kerberos for the system /usr/bin/python3: the
#                            independent Kerberos acceptor the Kerberos tests
#                            authenticate against (tests/fixtures/kerberos/)
#   chromium                 replicator/tests/engine/monitoring.rs renders the status page headless
#   man-db                   `man -w` finds the Debian package's man page
#                            (scripts/package-test.sh)
set -euo pipefail
missing=()
command -v xmllint >/dev/null || missing+=(libxml2-utils)
command -v samba >/dev/null || missing+=(samba)
command -v ldapsearch >/dev/null || missing+=(ldap-utils)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(faketime)
command -v chromium >/dev/null || missing+=(chromium)
/usr/bin/python3 -c 'import gssapi' 2>/dev/null || missing+=(python3-gssapi)
# the Debian package stage (scripts/package-test.sh)
command -v man >/dev/null || missing+=(man-db)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${missing[*]}: apt-get install ${missing[*]} (as root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
