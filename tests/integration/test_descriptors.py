"""Descriptor exhaustion (issue 18, High 3).

Before the fix, about 1,100 idle connections to the Manager's port used up the daemon's file
descriptors: root could no longer reach the control socket, and a restart started a process it
could not watch (pidfd_open failed), which then ran unwatched while its watch stayed
`starting`. The daemon here runs with a descriptor limit of 512 (soft and hard, so it cannot
raise it) to make the flood affordable for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.manager import free_port

from .harness import Cluster, alive, wait_for
from .unix_users import Accounts, as_user

LIMIT = 512

# Opens N connections to 127.0.0.1:PORT from ever other loopback addresses (11 from each),
# says how many connected and how many failed, and holds them until its stdin closes.
FLOOD = r"""
import resource, socket, sys, time
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n = int(sys.argv[1]), int(sys.argv[2])
held, failed = [], 0
give_up = time.monotonic() + 30  # a daemon that stops accepting makes each connect wait
for i in range(n):
    if time.monotonic() > give_up:
        break
    s = socket.socket()
    s.settimeout(2)
    s.bind((f"127.0.{10 + i // 2000}.{2 + (i // 11) % 250}", 0))
    try:
        s.connect(("127.0.0.1", port))
        held.append(s)
    except OSError:
        failed += 1
        s.close()
print(len(held), failed, flush=True)
sys.stdin.read()
"""


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _restart_is_watched(current: Callable[[], int | None]) -> None:
    """Kill the target twice: each time a new process runs, so the one after the first restart
    was watched (its end was seen) -- not left running on its own."""
    for _ in range(2):
        old = current()
        os.kill(old, signal.SIGKILL)
        new = wait_for(
            f"a restart after pid {old} was killed",
            lambda old=old: (p := current()) and p != old and alive(p) and p,
            timeout=15,
        )
        assert new != old


def test_a_connection_flood_on_the_manager_port_leaves_the_daemon_answering_and_restarting(
    unix: Accounts, tmp_path: Path
) -> None:
    attacker = unix.user("rflood")
    port = free_port()
    c = Cluster(tmp_path / "home")
    c.create(manager_port=str(port))
    flood: subprocess.Popen[str] | None = None
    try:
        c.start_daemon(nofile=LIMIT)
        daemon = c.daemon.pid  # type: ignore[union-attr]
        c.ok("armload", "W", "/R", "9", "/INT", "0", "/bin/sleep", "1000")
        c.wait_running("W")
        flood = subprocess.Popen(
            ["/usr/bin/python3", "-c", FLOOD, str(port), "1100"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            **as_user(attacker),  # type: ignore[arg-type]
        )
        assert flood.stdout is not None
        held, failed = map(int, flood.stdout.readline().split())
        assert held + failed == 1100, "the flood gave up: the daemon stopped accepting"
        # The daemon holds at most its share of them, and keeps descriptors to spare.
        assert _fds(daemon) < LIMIT - 100, _fds(daemon)
        r = c.run("rearm", "status", "--json", timeout=10)
        assert r.returncode == 0, r.stderr

        def pid() -> int | None:
            w = c.watch("W")
            return int(w["pid"]) if w and w["state"] == "running" and w["pid"] else None

        _restart_is_watched(pid)
        w = c.watch("W")
        assert w is not None and w["restarts"] == 2
        # The idle connections never sent a request: closed after the header timeout, and the
        # Manager answers again while the flood still holds its sockets.
        wait_for("the idle connections closed", lambda: _fds(daemon) < 100, timeout=30)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(100).split()[1] == b"200"
        log = c.daemon_log.read_text()
        refused = [line for line in log.splitlines() if "Manager: connection from" in line]
        assert 1 <= len(refused) <= 4, refused  # rate-limited: not one line per connection
    finally:
        if flood is not None:
            flood.kill()
            flood.wait()
        c.cleanup()


def _watch_row(home: Path) -> tuple[int | None, str, int]:
    with sqlite3.connect(f"file:{home}/var/state.db?mode=ro", uri=True) as db:
        row = db.execute("SELECT pid, state, restarts FROM watches WHERE key='W'").fetchone()
    return row[0], row[1], row[2]


def test_out_of_descriptors_a_restart_is_still_watched(tmp_path: Path) -> None:
    """Whatever uses up the daemon's descriptors (here: root holds hundreds of connections to
    the control socket, which root may), a restart takes the reserve, and the new process is
    watched; asyncio's accept errors meanwhile are logged once a minute, not once a second."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    c = Cluster(tmp_path / "home")
    c.create(manager_port=str(free_port()))
    held: list[socket.socket] = []
    try:
        c.start_daemon(nofile=LIMIT)
        daemon = c.daemon.pid  # type: ignore[union-attr]
        # /INT 2: the descriptor the old pidfd leaves is taken by a waiting connection (asyncio
        # tries accept() again every second) before the restart comes.
        c.ok("armload", "W", "/R", "9", "/INT", "2", "/bin/sleep", "1000")
        c.wait_running("W")
        sock = str(c.home / "run" / "rearm.sock")

        def one_more() -> bool:
            """Connect once more; True once the daemon has no descriptor left."""
            s = socket.socket(socket.AF_UNIX)
            s.setblocking(False)  # a full backlog answers EAGAIN: try again as it drains
            try:
                s.connect(sock)
                held.append(s)
            except BlockingIOError:
                s.close()
            return len(held) > LIMIT and _fds(daemon) >= LIMIT

        wait_for("the daemon out of descriptors", one_more, timeout=30, interval=0.002)

        def pid() -> int | None:
            found, state, _ = _watch_row(c.home)
            return found if state == "running" else None

        _restart_is_watched(pid)
        found, state, restarts = _watch_row(c.home)
        assert state == "running" and restarts == 2 and found is not None and alive(found)
        for s in held:
            s.close()
        held.clear()
        wait_for("the daemon to answer again", lambda: c.run("rearm", "status").returncode == 0)
        w = c.watch("W")
        assert w is not None and w["state"] == "running" and w["pid"] == found
        log = c.daemon_log.read_text().splitlines()
        assert [x for x in log if "the reserve kept for restarts is used" in x]
        # asyncio's accept() failed again every second meanwhile: logged once a minute.
        accept = [x for x in log if "out of file descriptors: socket.accept()" in x]
        assert 1 <= len(accept) <= 2, accept
        assert _fds(daemon) < 100
    finally:
        for s in held:
            s.close()
        c.cleanup()


def test_a_started_process_that_cannot_be_watched_is_killed_and_is_a_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should even the reserve not give a pidfd, the process just started must not run on
    unseen (before the fix it did, and its watch stayed `starting`): it is killed, and that is
    a refused armload, or at a restart a fault. In-process, with pidfd_open made to fail."""
    from rearm.api.server import ApiError
    from rearm.arm import parse_armload
    from rearm.backends import process
    from rearm.daemon.bus import EventBus
    from rearm.daemon.supervisor import Supervisor
    from rearm.paths import Home
    from rearm.store import Store

    started: list[int] = []
    real_spawn = process.spawn

    def spawn(*args: Any, **kwargs: Any) -> process.Proc:
        proc = real_spawn(*args, **kwargs)
        started.append(proc.pid)
        return proc

    def no_descriptor(pid: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    async def scenario() -> None:
        home = Home.from_env(str(tmp_path / "home"))
        store = Store(home.state_db)
        sup = Supervisor(home, store, EventBus(store), "test-boot")
        monkeypatch.setattr(process, "spawn", spawn)
        # At armload: refused, and the process it started is gone.
        monkeypatch.setattr(process, "child_pidfd", no_descriptor)
        with pytest.raises(ApiError, match=r"cannot watch the started process.*was killed"):
            await sup.load(parse_armload(["A", "/R", "1", "/bin/sleep", "1000"]), None, None, {})
        assert len(started) == 1 and not alive(started[0]) and not sup.runtimes
        # At a restart: a fault, and the restarted process is gone too.
        monkeypatch.undo()
        monkeypatch.setattr(process, "spawn", spawn)
        await sup.load(parse_armload(["B", "/R", "1", "/bin/sleep", "1000"]), None, None, {})
        rt = sup.runtimes["B"]
        first = rt.watch.pid
        assert first is not None and alive(first)
        monkeypatch.setattr(process, "child_pidfd", no_descriptor)
        os.kill(first, signal.SIGKILL)
        while not (rt.watch.detail or "").startswith("cannot watch"):
            await asyncio.sleep(0.01)
        assert rt.watch.state.value in ("restarting", "escalated", "failed")
        assert rt.watch.pid is None
        assert len(started) == 3 and not alive(started[2])
        for r in list(sup.runtimes.values()):
            if r.watch.pid is not None:
                os.killpg(r.watch.pid, signal.SIGKILL)
        store.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


async def _sleeping(home: Path, key: str) -> tuple[Any, Any, Any, int]:
    """An in-process supervisor watching KEY (/R 9 /INT 1 /bin/sleep 1000): it, its store, the
    watch's runtime and its first pid."""
    from rearm.arm import parse_armload
    from rearm.daemon.bus import EventBus
    from rearm.daemon.supervisor import Supervisor
    from rearm.paths import Home
    from rearm.store import Store

    store = Store(Home.from_env(str(home)).state_db)
    sup = Supervisor(Home.from_env(str(home)), store, EventBus(store), "test-boot")
    argv = [key, "/R", "9", "/INT", "1", "/bin/sleep", "1000"]
    await sup.load(parse_armload(argv), None, None, {})
    rt = sup.runtimes[key]
    first = rt.watch.pid
    assert first is not None and alive(first)
    return sup, store, rt, first


def _end_targets() -> None:
    """End every target this test process started, watched or not (a failing test must not
    leave one behind): the /bin/sleep children of ours, each leading its own session."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                sleeper = f.read().startswith(b"/bin/sleep\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and sleeper:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(entry), signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry), 0)


def test_out_of_descriptors_a_spawn_that_spans_a_tick_is_still_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spawn that spans a clock tick (usual on a loaded machine) reads the new process's start
    time from /proc, which takes a descriptor. Before the fix, out of descriptors that read
    failed outside the reserve: the OSError left the restart's timer callback, the daemon's loop
    handler took it for one more accept() error and logged nothing, and the process ran
    unwatched while its watch stayed `starting`. In-process, under a lowered RLIMIT_NOFILE."""
    from rearm.backends import process
    from rearm.backends.fdreserve import RESERVE

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    filler: list[int] = []

    async def scenario() -> None:
        _sup, store, rt, first = await _sleeping(tmp_path / "home", "W")
        monkeypatch.setattr(process, "start_tick_between", lambda before, after: None)
        resource.setrlimit(resource.RLIMIT_NOFILE, (_fds(os.getpid()) + 64, hard))
        RESERVE.keep()
        used = RESERVE.used

        def use_up() -> None:
            with pytest.raises(OSError):  # every descriptor left
                while True:
                    filler.append(os.open(os.devnull, os.O_RDONLY))

        use_up()
        os.kill(first, signal.SIGKILL)
        while rt.watch.state.value != "restarting":
            await asyncio.sleep(0.01)
        use_up()  # the one the old pidfd left too
        while rt.watch.pid in (None, first) or rt.watch.state.value != "running":
            assert rt.watch.state.value in ("running", "restarting", "starting"), rt.watch.detail
            await asyncio.sleep(0.01)
        for fd in filler:
            os.close(fd)
        filler.clear()
        assert rt.pidfd is not None and alive(rt.watch.pid)
        assert RESERVE.used > used  # the reserve was given back for the restart
        store.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        _end_targets()
        for fd in filler:
            os.close(fd)
        RESERVE.release()
        RESERVE.size = 0
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_started_process_whose_start_time_cannot_be_read_is_killed_and_is_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should even the reserve not let the start time be read, the process just started is
    killed and the restart is a fault that counts (a crash, restarted after /INT): out of
    descriptors is no fault of the configuration, so the watch does not fail for good."""
    from rearm.backends import process

    started: list[int] = []
    real_spawn = os.posix_spawn

    def spawn(*args: Any, **kwargs: Any) -> int:
        pid = real_spawn(*args, **kwargs)
        started.append(pid)
        return pid

    def no_descriptor(pid: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    async def scenario() -> None:
        _sup, store, rt, first = await _sleeping(tmp_path / "home", "B")
        monkeypatch.setattr(os, "posix_spawn", spawn)
        monkeypatch.setattr(process, "start_tick_between", lambda before, after: None)
        monkeypatch.setattr(process, "start_time", no_descriptor)
        os.kill(first, signal.SIGKILL)
        while not (rt.watch.detail or "").startswith("cannot start"):
            await asyncio.sleep(0.01)
        monkeypatch.undo()
        assert "start time could not be read" in (rt.watch.detail or ""), rt.watch.detail
        assert rt.watch.state.value == "restarting", rt.watch.detail  # not `failed`
        assert rt.watch.pid is None and len(started) == 1 and not alive(started[0])
        faults = store.db.execute("SELECT COUNT(*) FROM faults").fetchone()[0]
        assert faults == 2  # the kill, and the restart that could not be watched
        store.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        _end_targets()
