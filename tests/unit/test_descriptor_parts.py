"""The small parts behind issue 18's High 3: the descriptor reserve, the connection guard of
the management address, and log lines an attacker can cause, rate-limited."""

from __future__ import annotations

import errno
import logging

import pytest

from rearm.backends.fdreserve import DescriptorReserve
from rearm.ratelog import RateLimitedLog
from rearm.web.connections import ConnectionGuard


def test_the_reserve_is_given_back_only_when_descriptors_run_out() -> None:
    reserve = DescriptorReserve()
    reserve.keep(4)
    assert reserve.held == 4
    assert reserve.retrying(lambda: "fine") == "fine" and reserve.used == 0
    tries: list[int] = []

    def step() -> str:
        tries.append(reserve.held)
        if len(tries) == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return "done"

    assert reserve.retrying(step) == "done"
    assert tries == [4, 0] and reserve.used == 1 and reserve.held == 4  # taken back after

    def other() -> str:
        raise OSError(errno.ENOENT, "No such file")

    with pytest.raises(FileNotFoundError):
        reserve.retrying(other)
    assert reserve.held == 4 and reserve.used == 1
    reserve.release()


def test_the_guard_bounds_connections_per_address_and_in_all() -> None:
    guard = ConnectionGuard(per_address=2, total=3)
    assert guard.admit("10.0.0.1") is None and guard.admit("10.0.0.1") is None
    assert guard.admit("10.0.0.1") == "2 connections from 10.0.0.1 are open"
    assert guard.admit("10.0.0.2") is None
    assert guard.admit("10.0.0.3") == "3 connections are open"
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.3") is None and guard.count == 3
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        guard.release(address)
    assert guard.count == 0 and not guard.quota.open


def test_log_lines_of_a_kind_come_once_an_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    lines = RateLimitedLog(logging.getLogger("test.ratelog"), interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.ratelog"):
        assert lines.log("flood", logging.WARNING, "refused %s", "a")
        for i in range(100):
            now[0] = i * 0.5
            assert not lines.log("flood", logging.WARNING, "refused %s", "b")
        assert lines.log("other", logging.WARNING, "another kind")
        now[0] = 61
        assert lines.log("flood", logging.WARNING, "refused %s", "c")
    assert [r.getMessage() for r in caplog.records] == [
        "refused a",
        "another kind",
        "refused c (100 more like this in the last 60 s not logged)",
    ]


def test_a_quota_says_which_bound_it_hit() -> None:
    from rearm.quota import Quota

    quota = Quota(per_key=1, total=2)
    assert quota.admit("a") is None and quota.admit("a") == "key"
    assert quota.admit(7) is None and quota.admit("b") == "total"
    quota.release("a")
    assert quota.admit("b") is None and quota.count == 2


def test_only_accept_errors_are_rate_limited_a_callback_s_is_logged_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Out of descriptors, asyncio's accept() fails again every second: one line a minute. An
    exception of a callback (a restart's timer) with the same errno is another matter: logged
    in full every time, never hidden behind the accept lines (it once was, silently)."""
    import asyncio
    import types

    from rearm.daemon.main import Daemon

    daemon = types.SimpleNamespace(lines=RateLimitedLog(logging.getLogger("rearm.test")))
    loop = asyncio.new_event_loop()
    emfile = OSError(errno.EMFILE, "Too many open files")
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                context = {"message": "socket.accept() out of system resource"}
                Daemon._loop_exception(daemon, loop, {**context, "exception": emfile})  # type: ignore[arg-type]
            for _ in range(2):
                context = {"message": "Exception in callback Supervisor._restart_due()"}
                Daemon._loop_exception(daemon, loop, {**context, "exception": emfile})  # type: ignore[arg-type]
    finally:
        loop.close()
    accept = [r for r in caplog.records if "socket.accept()" in r.getMessage()]
    callback = [r for r in caplog.records if "_restart_due" in r.getMessage()]
    assert len(accept) == 1
    assert len(callback) == 2 and all(r.exc_info for r in callback)
