#!/usr/bin/env bash
# Install what bench/suite.py compares rearm with, from Debian's packages: gcc (for probe.c
# and floor.c), runit (runsvdir/runsv), s6 (s6-svscan/s6-supervise) and monit.
# supervisord is not installed here: the bench puts it in a venv of its own (bench/.work/).
#
# Only the supervisors, never an init: runit-init, s6-linux-init and the like replace PID 1 and
# are not installed (--no-install-recommends keeps runit's "Recommends: runit-init" out, and
# this script refuses to go on should apt plan to install one). No system service is started: a
# policy-rc.d answering 101 is in place while apt-get runs (scripts/lib-deps.sh). Should a
# maintainer script start a runsvdir, s6-svscan or monit all the same, the processes that
# appeared during this install are stopped, by pid, and no others.
#
# Idempotent: nothing is installed when everything is there.
# Usage: bash bench/setup.sh      (as root; without root it only reports what is missing)
set -euo pipefail

PACKAGES=(gcc runit s6 monit)
# Packages that would take over PID 1 or the boot: never to be installed by the bench.
FORBIDDEN='^(runit-init|runit-run|runit-systemd|s6-linux-init|sysvinit-core|systemd-sysv)$'
# Process names an install could start as a system service.
DAEMONS='^(runsvdir|runsv|s6-svscan|s6-supervise|monit)$'

. "$(dirname "$0")/../scripts/lib-deps.sh"

deps_missing bench-setup "${PACKAGES[@]}"
[ ${#missing[@]} -gt 0 ] || exit 0
deps_can_install bench-setup || exit 0
deps_update_lists bench-setup

# What apt would install, simulated first: nothing that replaces init may come along.
planned=$(apt-get install -s --no-install-recommends "${missing[@]}" | awk '/^Inst / { print $2 }')
bad=$(printf '%s\n' "$planned" | grep -E "$FORBIDDEN" || true)
if [ -n "$bad" ]; then
    echo "bench-setup: refusing: apt would install $bad, which replaces init" >&2
    exit 1
fi

daemon_pids() {
    ps -eo pid=,comm= | awk -v re="$DAEMONS" '$2 ~ re { print $1 }' | sort -n
}
before=$(daemon_pids)

deps_forbid_services bench-setup
deps_install bench-setup "${missing[@]}"

after=$(daemon_pids)
started=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
for pid in $started; do
    echo "bench-setup: stopping pid $pid ($(ps -o comm= -p "$pid" || true)), started by the install"
    kill -TERM "$pid" 2>/dev/null || true
done
