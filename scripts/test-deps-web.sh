#!/usr/bin/env bash
# Install the browser that tests/web/ drives: Debian's chromium, run by Playwright for Python
# through executable_path (Playwright's own browser download is never used: nothing is fetched
# from outside the package registries). Fonts come with it, so screenshots show text.
# Idempotent; the package starts no service. Without root it only reports.
set -euo pipefail
. "$(dirname "$0")/lib-deps.sh"

deps_missing test-deps-web chromium fonts-dejavu-core
[ ${#missing[@]} -gt 0 ] || exit 0
deps_can_install test-deps-web || exit 0
deps_update_lists test-deps-web
deps_install test-deps-web "${missing[@]}"
