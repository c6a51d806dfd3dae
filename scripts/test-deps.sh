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
#   util-linux   setpriv (/U and service users), unshare (private namespaces in tests),
#                fsfreeze (the disk monitor's frozen file system, tests/faults)
#   iproute2     ip: a veth pair in a test's own network namespace (the link monitor)
#   e2fsprogs    mkfs.ext4: file systems on loop devices in private mount namespaces
#   man-db, groff-base  `man -l` renders the shipped man pages (tests/integration/test_manpages.py)
#   zsh          the zsh completion is loaded in a real zsh (tests/integration/test_completion.py)
#   passwd       useradd, userdel, groupadd: the users the security tests make and remove
#   python3      /usr/bin/python3, run by those users (a venv under /root is not theirs to run)
# Without root it only says what is missing: those tests then skip (and fail under CI=true).
set -euo pipefail

PACKAGES=(snmptrapd snmp smitools erlang-snmp systemd dbus procps util-linux iproute2 e2fsprogs
    man-db groff-base zsh passwd python3)

. "$(dirname "$0")/lib-deps.sh"

deps_missing test-deps "${PACKAGES[@]}"
[ ${#missing[@]} -gt 0 ] || exit 0
deps_can_install test-deps || exit 0
export DEBIAN_FRONTEND=noninteractive
# snmptrapd and snmpd (a dependency) come with system services; the tests run their own
# snmptrapd on a loopback port.
deps_forbid_services test-deps
deps_update_lists test-deps
deps_install test-deps "${missing[@]}"
