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

# monitoring-plugins-*: check_http, check_disk... run as `exec` monitors (tests/services/
# test_monitors.py); the plugins are programs, they start no service.
PACKAGES=(postgresql redis-server nginx postfix dovecot-imapd dovecot-pop3d mariadb-server
    monitoring-plugins-basic monitoring-plugins-standard)
# The programs the servers run as; processes of these names that appear during the install
# were started by it.
DAEMONS='^(postgres|redis-server|nginx|master|dovecot|mariadbd|mysqld)$'

. "$(dirname "$0")/lib-deps.sh"

deps_missing test-deps-services "${PACKAGES[@]}"
[ ${#missing[@]} -gt 0 ] || exit 0
deps_can_install test-deps-services || exit 0
deps_update_lists test-deps-services
wanted=()
for p in "${missing[@]}"; do
    c=$(deps_candidate "$p")
    if [ -z "$c" ] || [ "$c" = "(none)" ]; then
        echo "test-deps-services: $p is not available from the configured sources: skipped" >&2
    else
        wanted+=("$p")
    fi
done
[ ${#wanted[@]} -gt 0 ] || exit 0

before=$(deps_daemon_pids "$DAEMONS")

deps_forbid_services test-deps-services

# Postfix asks how to configure the system's mail: no configuration at all (the tests give it
# a configuration directory of their own).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
deps_install test-deps-services "${wanted[@]}"

# Anything of ours that a maintainer script started regardless: stop it, by pid.
deps_stop_started test-deps-services "$before" "$DAEMONS" || true
