#!/usr/bin/env bash
# Install the Debian packages the tests need (idempotent): real receivers and MIB tools for the
# alert tests. Packages already installed are skipped; it prints what it installed.
#   snmptrapd    receives the SNMP traps and informs (tests/alerts/test_snmp.py)
#   snmp         snmptranslate, checks REARM-MIB and its OIDs
#   smitools     smilint, lints REARM-MIB
#   erlang-snmp  the SMIv2 base modules (SNMPv2-SMI, -TC, -CONF, -MIB) as text: Debian's net-snmp
#                and libsmi ship without them (they are in the non-free snmp-mibs-downloader)
#   systemd      systemd-analyze (unit checks) and the systemd run as PID 1 of the test sandbox
#   dbus         the system bus inside that sandbox
#   procps       /bin/kill, named by the unit's ExecReload
#   util-linux   setpriv (/U and service users), unshare (private namespaces in tests)
# Without root it only says what is missing: those tests then skip (and fail under CI=true).
set -euo pipefail

PACKAGES=(snmptrapd snmp smitools erlang-snmp systemd dbus procps util-linux)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "test-deps: not root, cannot install: ${missing[*]} (their tests will be skipped)" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# snmptrapd and snmpd (a dependency) come with system services; the tests run their own
# snmptrapd on a loopback port. While apt-get runs, a policy-rc.d answering 101 ("action
# forbidden") keeps maintainer scripts from starting them -- unless one is already in place.
POLICY=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
    own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "test-deps: installed ${missing[*]}"
