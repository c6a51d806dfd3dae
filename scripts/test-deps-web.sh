#!/usr/bin/env bash
# Install the browser that tests/web/ drives: Debian's chromium, run by Playwright for Python
# through executable_path (Playwright's own browser download is never used: nothing is fetched
# from outside the package registries).
#
# Idempotent: nothing is installed when chromium is already there. Fonts come with the package's
# dependencies, so screenshots show text. The package starts no service.
#
# Usage: bash scripts/test-deps-web.sh      (as root; without root it only reports)
set -euo pipefail

PACKAGES=(chromium fonts-dejavu-core)

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    if installed "$p"; then
        echo "test-deps-web: $p is installed"
    else
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "test-deps-web: nothing to install"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "test-deps-web: missing ${missing[*]}; run this script as root to install them" >&2
    exit 1
fi

# Package lists: fetched only when a missing package has no candidate yet.
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'
}
for p in "${missing[@]}"; do
    c=$(candidate "$p")
    if [ -z "$c" ] || [ "$c" = "(none)" ]; then
        echo "test-deps-web: apt-get update (no candidate for $p yet)"
        apt-get update -qq
        break
    fi
done

echo "test-deps-web: installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/tmp/test-deps-web.log 2>&1 || {
    tail -n 30 /tmp/test-deps-web.log >&2
    exit 1
}
echo "test-deps-web: installed ${missing[*]} (apt-get output: /tmp/test-deps-web.log)"
