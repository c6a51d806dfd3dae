#!/usr/bin/env bash
# Install the real servers that tests/services/ runs, from Debian's packages.
#
# Idempotent: a package already installed is skipped; nothing is installed when all are there.
# It never starts or enables a system service: a policy-rc.d that answers 101 ("action
# forbidden") is in place while apt-get runs, so the packages' maintainer scripts do not start
# their system instances. The tests run each server themselves, on loopback, in temporary
# directories. Should a maintainer script start a server all the same, this script stops the
# processes that appeared during its own install (by pid), and no others.
#
# Usage: bash scripts/test-deps-services.sh      (as root; without root it only reports)
set -euo pipefail

PACKAGES=(postgresql redis-server nginx postfix dovecot-imapd dovecot-pop3d mariadb-server)
# The programs the servers run as; processes of these names that appear during the install
# were started by it.
DAEMONS='^(postgres|redis-server|nginx|master|dovecot|mariadbd|mysqld)$'
POLICY=/usr/sbin/policy-rc.d

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    if installed "$p"; then
        echo "test-deps-services: $p is installed"
    else
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "test-deps-services: nothing to install"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "test-deps-services: missing ${missing[*]}; run this script as root to install them" >&2
    exit 1
fi

# Package lists: fetched once, and only when a missing package has no candidate yet.
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'
}
for p in "${missing[@]}"; do
    c=$(candidate "$p")
    if [ -z "$c" ] || [ "$c" = "(none)" ]; then
        echo "test-deps-services: apt-get update (no candidate for $p yet)"
        apt-get update -qq
        break
    fi
done
wanted=()
for p in "${missing[@]}"; do
    c=$(candidate "$p")
    if [ -z "$c" ] || [ "$c" = "(none)" ]; then
        echo "test-deps-services: $p is not available from the configured sources: skipped" >&2
    else
        wanted+=("$p")
    fi
done
[ ${#wanted[@]} -gt 0 ] || exit 0

daemon_pids() {
    ps -eo pid=,comm= | awk -v re="$DAEMONS" '$2 ~ re { print $1 }' | sort -n
}
before=$(daemon_pids)

# Our policy-rc.d for the time of the install; the machine's own one (if any) comes back after.
saved=""
if [ -e "$POLICY" ]; then
    saved=$(mktemp)
    cp -p "$POLICY" "$saved"
fi
restore_policy() {
    if [ -n "$saved" ]; then
        cp -p "$saved" "$POLICY"
        rm -f "$saved"
    else
        rm -f "$POLICY"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# test-deps-services.sh: no service starts during this install\nexit 101\n' \
    >"$POLICY"
chmod 755 "$POLICY"

# Postfix asks how to configure the system's mail: no configuration at all (the tests give it
# a configuration directory of their own).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "test-deps-services: installing ${wanted[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}" \
    >/tmp/test-deps-services.log 2>&1 || {
    tail -n 30 /tmp/test-deps-services.log >&2
    exit 1
}
echo "test-deps-services: installed ${wanted[*]} (apt-get output: /tmp/test-deps-services.log)"

# Anything of ours that a maintainer script started regardless: stop it, by pid.
after=$(daemon_pids)
started=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
if [ -n "$started" ]; then
    for pid in $started; do
        echo "test-deps-services: stopping pid $pid ($(ps -o comm= -p "$pid" || true)), started by the install"
        kill -TERM "$pid" 2>/dev/null || true
    done
fi
