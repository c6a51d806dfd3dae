"""Fixtures of the real-server tests (Debian's packages; see docs/services.md).

Each test gets a cluster in drill mode with the final action `reboot` (recorded, never
executed), scratch folders, and a record of every server process it saw: after the cluster's
clean-up (groups stopped, recorded watches killed) none of them may be left.

Recovery times (SIGKILL of the main process -> the server answers again) are printed at the
end of the run, one line per server and mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..integration.harness import Cluster
from .servers import Scratch, Seen

RECOVERIES: list[tuple[str, int, list[float]]] = []


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "home")
    c.create()
    c.ok("armem", "/M", "reboot")  # the guide's final action; drill mode only records it
    c.start_daemon()
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    s = Scratch()
    try:
        yield s
    finally:
        s.remove()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, for `seen` to know whether the test passed."""
    report: pytest.TestReport = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def seen(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Seen]:
    """Depends on `cluster` so that it is checked after the cluster's clean-up has run."""
    s = Seen()
    yield s
    cluster.cleanup()
    call = getattr(request.node, "report_call", None)
    s.end(complain=call is not None and call.passed)


def record_recovery(what: str, interval: int, seconds: list[float]) -> None:
    RECOVERIES.append((what, interval, seconds))
    shown = ", ".join(f"{t:.2f}" for t in seconds)
    print(f"recovery {what} (/INT {interval}): {shown} s")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RECOVERIES:
        return
    terminalreporter.section("recovery times: SIGKILL of the main process -> answers again")
    for what, interval, seconds in RECOVERIES:
        mean = sum(seconds) / len(seconds)
        terminalreporter.write_line(
            f"{what:<28} /INT {interval}: {mean:6.2f} s (restart beyond /INT "
            f"{mean - interval:5.2f} s; {len(seconds)} crash{'es' if len(seconds) > 1 else ''})"
        )
