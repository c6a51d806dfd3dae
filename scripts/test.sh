#!/usr/bin/env bash
# Install what the tests need and run them: lint, types, unit and integration tests.
# Works on a fresh Debian machine with Python 3.11 (as root it installs missing Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        # Debian's python3 ships venv separately.
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf .venv && "$PY" -m venv .venv
        else
            echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# Debian packages: receivers and tools for the alert tests, systemd for the unit tests, and the
# real servers (PostgreSQL, Redis, nginx, MariaDB, Postfix, Dovecot) for tests/services, and
# corosync and Pacemaker for tests/cluster.
bash scripts/test-deps.sh
bash scripts/test-deps-services.sh
bash scripts/test-deps-web.sh
bash scripts/test-deps-cluster.sh

echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
