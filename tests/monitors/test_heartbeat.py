"""The NOTIFY_SOCKET receiver and the heartbeat monitor: systemd's own `systemd-notify` and a
service's sd_notify datagrams keep a monitor normal; silence or WATCHDOG=trigger is a fault;
a sender of another user is ignored; descriptors passed along are closed."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from rearm.monitors.beats import Beats
from rearm.monitors.notify import NotifySockets

from .helpers import running, spec

NOTIFY = "/usr/bin/systemd-notify"
SETPRIV = "/usr/bin/setpriv"


def notify(path: Path, *assignments: str, user: str | None = None) -> int:
    """systemd-notify, as a service would run it (as `user` when given)."""
    argv = [NOTIFY, *assignments]
    if user is not None:
        gid = pwd.getpwnam(user).pw_gid
        argv = [SETPRIV, f"--reuid={user}", f"--regid={gid}", "--clear-groups", "--", *argv]
    env = {"NOTIFY_SOCKET": str(path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(argv, env=env, capture_output=True, timeout=10).returncode


async def wait(check: object, seconds: float = 5) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not check():  # type: ignore[operator]
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_systemd_notify_beats_and_other_users_are_ignored() -> None:
    if not os.access(NOTIFY, os.X_OK) or os.geteuid() != 0:
        why = "needs systemd-notify (package systemd) and root"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(why)
        pytest.skip(why)
    # pytest's tmp_path is root's alone: the other user's notify must reach the socket.
    folder = Path(tempfile.mkdtemp(prefix="rearm-notify-"))
    folder.chmod(0o755)
    beats = Beats()
    seen: list[tuple[str, dict[str, str]]] = []
    sockets = NotifySockets(beats, on_message=lambda name, fields: seen.append((name, fields)))
    nobody = pwd.getpwnam("nobody")
    try:
        mine = folder / "APP.sock"
        sockets.open("APP", str(mine), uid=nobody.pw_uid, gid=nobody.pw_gid)
        assert (mine.stat().st_mode & 0o777, mine.stat().st_uid) == (0o600, nobody.pw_uid)
        # The service's user, and root, may speak for APP.
        assert await asyncio.to_thread(notify, mine, "WATCHDOG=1", user="nobody") == 0
        await wait(lambda: beats.last("app") is not None)
        assert await asyncio.to_thread(notify, mine, "READY=1", "STATUS=up") == 0
        await wait(lambda: len(seen) == 2)
        assert seen[1] == ("APP", {"READY": "1", "STATUS": "up"})
        # A socket for root's service: another user cannot even connect (0600, root's).
        other = folder / "DB.sock"
        sockets.open("DB", str(other))
        assert await asyncio.to_thread(notify, other, "WATCHDOG=1", user="nobody") != 0
        assert beats.last("DB") is None
    finally:
        sockets.close_all()
        assert not (folder / "APP.sock").exists()
        shutil.rmtree(folder)


@pytest.mark.asyncio
async def test_passed_descriptors_are_closed_not_kept(tmp_path: Path) -> None:
    beats = Beats()
    sockets = NotifySockets(beats)
    path = str(tmp_path / "APP.sock")
    sockets.open("APP", path)
    before = len(os.listdir("/proc/self/fd"))
    r, w = os.pipe()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            socket.send_fds(s, [b"FDSTORE=1\nWATCHDOG=1"], [r, w])
        await wait(lambda: beats.last("APP") is not None)
        assert len(os.listdir("/proc/self/fd")) == before + 2  # our own r and w only
    finally:
        os.close(r)
        os.close(w)
        sockets.close_all()


@pytest.mark.asyncio
async def test_heartbeat_monitor_normal_while_beating_error_when_silent(tmp_path: Path) -> None:
    s = spec('kind = "heartbeat"\nperiod = 0.6\ninterval = 0.1\n')
    async with running(s) as rec:
        assert rec.scheduler is not None
        sockets = NotifySockets(rec.scheduler.env.beats)
        path = str(tmp_path / "T.sock")
        sockets.open("T", path)
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.connect(path)
        try:
            for _ in range(12):  # 1.2 s of beats, every 0.1 s: twice the period
                sender.send(b"WATCHDOG=1")
                await asyncio.sleep(0.1)
            assert rec.states() == ["normal"] and not rec.faults()
            silent = asyncio.get_running_loop().time()
            await rec.until(rec.faults, timeout=5)
            took = rec.result_times[-1] - silent
            assert 0.5 < took < 0.6 + 0.1 + 0.2, took  # within period + interval
            assert "last heartbeat" in rec.faults()[0].event.message
            sender.send(b"WATCHDOG=1")
            await rec.until(lambda: rec.states()[-1] == "normal", timeout=5)
            sender.send(b"WATCHDOG=trigger")
            await rec.until(lambda: len(rec.faults()) == 2, timeout=5)
            assert "asked for recovery (WATCHDOG=trigger)" in rec.faults()[1].event.message
        finally:
            sender.close()
            sockets.close_all()
