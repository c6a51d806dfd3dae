"""The control socket checks who calls (SO_PEERCRED): other users may only read, or nothing."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rearm.api.client import ApiFailure, DaemonNotRunning, call

from .harness import Cluster

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root (CI is root)")


def _as_user(user: str, socket_path: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call the daemon from a child process running as `user` (credentials set before connect)."""
    entry = pwd.getpwnam(user)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop every privilege, then talk to the socket
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            try:
                answer: dict[str, Any] = {"ok": True, "result": call(socket_path, op, args)}
            except (ApiFailure, DaemonNotRunning) as e:
                answer = {"ok": False, "error": str(e)}
            os.write(write_fd, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


@pytest.fixture
def open_home() -> Iterator[Path]:
    """A home that another user can walk into (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="rearm-access-"))
    root.chmod(0o755)
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_other_users_cannot_even_connect_by_default(open_home: Path) -> None:
    c = Cluster(open_home)
    c.create()
    c.start_daemon()
    try:
        answer = _as_user("nobody", str(open_home / "run" / "rearm.sock"), "status", {})
        assert not answer["ok"] and "permission denied" in answer["error"]
    finally:
        c.cleanup()


def test_with_read_access_everyone_others_read_but_change_nothing(open_home: Path) -> None:
    c = Cluster(open_home)
    c.create(read_access="everyone")
    c.start_daemon()
    try:
        sock = str(open_home / "run" / "rearm.sock")
        c.ok("armload", "GUARDED", "/R", "1", "/bin/sleep", "1000")
        status = _as_user("nobody", sock, "status", {})
        assert status["ok"] and status["result"]["watches"][0]["id"] == "GUARDED"
        kill = _as_user("nobody", sock, "armkill", {"watch_id": "GUARDED"})
        assert not kill["ok"] and "may only read" in kill["error"]
        load = _as_user(
            "nobody", sock, "armload", {"request": {"watch_id": "EVIL", "argv": ["/bin/sh"]}}
        )
        assert not load["ok"] and "may only read" in load["error"]
        stop = _as_user("nobody", sock, "shutdown", {})
        assert not stop["ok"]
        assert c.watch("GUARDED")["state"] == "running"  # type: ignore[index]
        assert c.watch("EVIL") is None
    finally:
        c.cleanup()
