"""A Manager that cannot listen (its port held by another program, e.g. another cluster's
Manager) is an event, an alert and a line in `rearm status`, and status never shows a URL that
is not this daemon's (issue 13)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.web.manager import free_port

from .harness import Cluster


def test_a_manager_port_held_by_another_program_is_said_and_never_shown_as_ours(
    tmp_path: Path,
) -> None:
    port = free_port()
    other = socket.socket()
    other.bind(("127.0.0.1", port))
    other.listen()  # the other cluster's Manager
    c = Cluster(tmp_path / "home")
    try:
        c.create(manager_port=str(port))
        c.start_daemon()
        status = c.status()["cluster"]
        assert status["manager_url"] is None
        problem = status["manager"]["problem"]
        assert f"cannot listen on 127.0.0.1:{port}" in problem
        assert "in use" in problem
        [event] = c.events("manager_unavailable")
        assert event["severity"] == "error" and "manager_port" in event["message"]
        line = next(x for x in c.rearm("status").splitlines() if x.strip().startswith("Manager"))
        assert "Error" in line and f"127.0.0.1:{port}" in line and "http://" not in line
    finally:
        c.cleanup()
        other.close()
