"""Fixtures of the Pacemaker tests: the agent installed in a scratch OCF tree, a rearm cluster set
up for Pacemaker (drill mode), and the cluster tools from Debian's packages
(scripts/test-deps-cluster.sh). Without them the tests skip, and fail on CI (CI=true)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..integration.harness import BIN, Cluster

SEARCH = f"{os.environ.get('PATH', '')}:/usr/local/sbin:/usr/sbin:/sbin"


def tool(name: str) -> str:
    """The absolute path of a cluster tool; skips the test when it is missing (fails on CI)."""
    path = shutil.which(name, path=SEARCH)
    if path is not None:
        return path
    why = f"{name} is not installed (scripts/test-deps-cluster.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def agent() -> Iterator[Path]:
    """`rearm ocf install --prefix` into a scratch tree that user nobody may read (ocf-tester
    runs meta-data as nobody)."""
    prefix = Path(tempfile.mkdtemp(prefix="rearm-ocf-"))
    try:
        prefix.chmod(0o755)
        r = subprocess.run(
            [str(BIN / "rearm"), "ocf", "install", "--prefix", str(prefix)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        path = prefix / "usr/lib/ocf/resource.d/rearm/group"
        assert str(path) in r.stdout
        yield path
    finally:
        shutil.rmtree(prefix)


@pytest.fixture
def pcmk_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A rearm cluster with `pacemaker = true`, its daemon running, in drill mode."""
    c = Cluster(tmp_path / "home")
    c.create(pacemaker="true")
    c.ok("armem", "/M", "stopgroup")
    c.start_daemon()
    try:
        yield c
    finally:
        c.cleanup()


FAILOVERS: list[tuple[str, float]] = []


def record_failover(what: str, seconds: float) -> None:
    """A measured recovery: from the kill to the first answer the client got again."""
    FAILOVERS.append((what, seconds))
    print(f"failover {what}: {seconds:.2f} s")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FAILOVERS:
        return
    terminalreporter.section("two-node cluster: kill -> the client's first answer again")
    for what, seconds in FAILOVERS:
        terminalreporter.write_line(f"{what:<40} {seconds:6.2f} s")
