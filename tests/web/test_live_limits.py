"""Live pages (/live) are bounded per Manager user and in all (issue 18, Medium 5).

Before the fix a read-only user could open any number of them: 300 made a 1 s restart take
7.7 s (each stream renders the page again after every burst of events) and the daemon's memory
grow from 53 to 307 MB.
"""

from __future__ import annotations

import http.client
import os
import signal
import time

from rearm.web.context import LIVE_PER_USER

from .manager import VIEWER, WATCH, Manager


def _open_live(manager: Manager, cookies: dict[str, str], source: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(
        "127.0.0.1", manager.port, timeout=30, source_address=(source, 0)
    )
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    conn.request("GET", "/live?view=tree", headers={"Cookie": cookie})
    return conn.getresponse()


def test_a_user_gets_a_few_live_pages_and_restarts_stay_quick(manager: Manager) -> None:
    viewer = manager.client("127.0.5.1")
    viewer.login(VIEWER)
    opened = [_open_live(manager, viewer.cookies, f"127.0.6.{i + 1}") for i in range(40)]
    try:
        statuses = [r.status for r in opened]
        assert statuses[:LIVE_PER_USER] == [200] * LIVE_PER_USER
        assert statuses[LIVE_PER_USER:] == [429] * (40 - LIVE_PER_USER), statuses
        refused = opened[-1].read().decode()
        assert f"user {VIEWER[0]} has {LIVE_PER_USER} open" in refused
        # Another user still gets a live page.
        admin = manager.client("127.0.5.2")
        admin.login()
        other = _open_live(manager, admin.cookies, "127.0.5.3")
        assert other.status == 200
        opened.append(other)
        # A restart with these streams open takes about what it takes without them.
        watch = manager.cluster.watch(WATCH)
        assert watch is not None
        started = time.monotonic()
        os.kill(watch["pid"], signal.SIGKILL)
        manager.cluster.wait_running(WATCH, other_than=watch["pid"], timeout=10)
        assert time.monotonic() - started < 3.0
    finally:
        for r in opened:
            r.close()
