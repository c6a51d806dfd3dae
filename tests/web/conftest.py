"""Fixtures for the Manager's tests: a cluster serving it, and Debian's chromium driven by
Playwright (never a browser Playwright downloads: scripts/test-deps-web.sh installs chromium).

Without chromium or Playwright a browser test is skipped on a developer's machine and fails
in CI (CI=true), where scripts/test-deps-web.sh must have installed them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .manager import Manager, start_manager

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} (CI=true: scripts/test-deps-web.sh must install it)")
    pytest.skip(what)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    """A running daemon serving the Manager, its group online."""
    m = start_manager(tmp_path)
    try:
        yield m
    finally:
        m.cluster.cleanup()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh chromium profile (its own user-data-dir), desktop-sized."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=CHROMIUM,
        args=BROWSER_ARGS,
        headless=True,
        viewport={"width": 1280, "height": 860},
        locale="en-US",
        timezone_id="UTC",
    )
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()
