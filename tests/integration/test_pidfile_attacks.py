"""What a service's own user can leave at its pid file's path (issue 18, High 2 and Medium 4).

The shipped forking templates give the pid file's folder to the service's user, so the service
(or whoever has its user) decides what is found there. Each test plays that user: the start
command runs as a user the test makes, and puts a FIFO, a link to a root-only file, a socket or
the pid of a root process where the pid file goes. The daemon must go on answering and restarting
other watches, read nothing but a plain file of that user's, and adopt no process of root's.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .harness import Cluster, alive, wait_for
from .unix_users import Accounts

IN_OPEN = 0x20
IN_NONBLOCK = os.O_NONBLOCK


@contextmanager
def opens_of(path: Path) -> Iterator[list[str]]:
    """Every open(2) of `path` while the block runs (inotify IN_OPEN), as a list of its events,
    filled when the block ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(IN_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    seen: list[str] = []
    try:
        wd = libc.inotify_add_watch(fd, str(path).encode(), IN_OPEN)
        assert wd >= 0, os.strerror(ctypes.get_errno())
        yield seen
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            data = b""
        while data:
            _, mask, _, length = struct.unpack_from("iIII", data)
            if mask & IN_OPEN:
                seen.append("IN_OPEN")
            data = data[16 + length :]
    finally:
        os.close(fd)


def _service_user_home(unix: Accounts, open_dir: Path) -> tuple[pwd.struct_passwd, Path, Cluster]:
    """A service user owning the folder of its pid file (as the forking templates set it up),
    a cluster with its daemon running, and a watch OTHER to show the daemon still recovers."""
    svc = unix.user("rsvc")
    run = open_dir / "run-svc"
    run.mkdir()
    os.chown(run, svc.pw_uid, svc.pw_gid)
    c = Cluster(open_dir / "home")
    c.create()
    c.start_daemon()
    c.ok("armload", "OTHER", "/R", "9", "/INT", "0", "/bin/sleep", "1000")
    return svc, run, c


def _forking_service(c: Cluster, svc: pwd.struct_passwd, run: Path, script: str) -> Path:
    """Service `evil`: its start command (as `svc`) runs `script` and stays, as the launcher
    of a forking daemon does until its pid file is written."""
    pidfile = run / "evil.pid"
    c.write_service(
        "evil",
        f'command = ["/bin/sh", "-c", "{script}; exec /bin/sleep 300"]\n'
        f'user = "{svc.pw_name}"\npidfile = "{pidfile}"\n',
    )
    return pidfile


def _still_recovers(c: Cluster) -> None:
    """The daemon answers at once and restarts another watch that dies."""
    r = c.run("rearm", "status", "--json", timeout=10)
    assert r.returncode == 0, r.stderr
    other = c.wait_running("OTHER")["pid"]
    os.kill(other, signal.SIGKILL)
    c.wait_running("OTHER", other_than=other, timeout=10)


def _failed_with(c: Cluster, watch: str, words: str) -> dict[str, object]:
    def check() -> dict[str, object] | None:
        w = c.watch(watch)
        if w and w["state"] == "failed" and words in str(w["detail"]):
            return w
        return None

    return wait_for(f"{watch} failed with '{words}'", check, timeout=20)


def test_a_fifo_as_pid_file_does_not_freeze_the_daemon(unix: Accounts, open_dir: Path) -> None:
    """Opened as root, blocking, on the event loop (main before the fix), a FIFO froze the whole
    daemon: no status, no restarts. Now it is refused without being opened."""
    svc, run, c = _service_user_home(unix, open_dir)
    try:
        pidfile = _forking_service(c, svc, run, f"mkfifo {run}/evil.pid")
        c.ok("armload", "EVIL", "/S", "evil")
        wait_for("the FIFO", lambda: pidfile.is_fifo())
        _still_recovers(c)
        w = _failed_with(c, "EVIL", "is a FIFO, not a pid file")
        assert str(w["detail"]).startswith("pid file refused:")
        _still_recovers(c)
    finally:
        c.cleanup()


def test_a_link_to_a_root_only_file_is_never_opened(unix: Accounts, open_dir: Path) -> None:
    """A link at the pid file's path could name a root-only file or a device (a watchdog device
    reboots the machine when opened). A plain root-only file stands in for the device here:
    the daemon must refuse the link without ever opening what it names."""
    svc, run, c = _service_user_home(unix, open_dir)
    device = open_dir / "stand-in-for-a-device"
    device.write_text("1\n")
    device.chmod(0o600)
    try:
        _forking_service(c, svc, run, f"ln -s {device} {run}/evil.pid")
        with opens_of(device) as opened:
            c.ok("armload", "EVIL", "/S", "evil")
            _failed_with(c, "EVIL", "is a symbolic link, not a pid file")
            _still_recovers(c)
        assert opened == [], "the daemon opened the file the link names"
    finally:
        c.cleanup()


def test_a_socket_as_pid_file_fails_the_start_instead_of_leaving_it_starting(
    unix: Accounts, open_dir: Path
) -> None:
    """open() of a socket fails with ENXIO, which the daemon did not expect (main before the
    fix): the follow ended with an error and the watch stayed `starting` for good."""
    svc, run, c = _service_user_home(unix, open_dir)
    try:
        bind = (
            "import socket, time; s = socket.socket(socket.AF_UNIX); "
            f"s.bind('{run}/evil.pid'); time.sleep(300)"
        )
        c.write_service(
            "evil",
            f'command = ["/usr/bin/python3", "-c", "{bind}"]\n'
            f'user = "{svc.pw_name}"\npidfile = "{run}/evil.pid"\n',
        )
        c.ok("armload", "EVIL", "/S", "evil")
        _failed_with(c, "EVIL", "is a socket, not a pid file")
        _still_recovers(c)
    finally:
        c.cleanup()


def test_a_pid_file_of_another_owner_is_refused(unix: Accounts, open_dir: Path) -> None:
    """A file of a third user (who could write it) is not the service's word."""
    svc, run, c = _service_user_home(unix, open_dir)
    stranger = unix.user("rstr")
    try:
        pidfile = run / "evil.pid"
        pidfile.write_text("1234\n")
        os.chown(pidfile, stranger.pw_uid, stranger.pw_gid)
        _forking_service(c, svc, run, "true")
        c.ok("armload", "EVIL", "/S", "evil")
        _failed_with(c, "EVIL", f"belongs to uid {stranger.pw_uid} ({stranger.pw_name})")
    finally:
        c.cleanup()


def test_a_root_process_named_by_the_service_user_is_not_adopted(
    unix: Accounts, open_dir: Path
) -> None:
    """Medium 4: the service's user writes the pid of a root process running the same program
    into its pid file. Before the fix rearm adopted it, and armkill killed it."""
    svc, run, c = _service_user_home(unix, open_dir)
    victim_pid = open_dir / "victim.pid"
    try:
        _forking_service(
            c,
            svc,
            run,
            f"while [ ! -s {victim_pid} ]; do sleep 0.05; done; "
            f"cat {victim_pid} > {run}/evil.pid.tmp; mv {run}/evil.pid.tmp {run}/evil.pid",
        )
        c.ok("armload", "EVIL", "/S", "evil")
        # Root's process, running the service's program, started after the service's start.
        victim = c.spawn("/bin/sh", "-c", "sleep 300; true")
        wait_for("the victim", lambda: alive(victim.pid))
        victim_pid.write_text(f"{victim.pid}\n")
        w = _failed_with(c, "EVIL", f"names pid {victim.pid}, which runs as uid 0 (root)")
        assert w["pid"] is None
        assert not [e for e in c.events("watch_follow") if e["watch"] == "EVIL"]
        c.ok("armkill", "EVIL")
        assert alive(victim.pid)
    finally:
        c.cleanup()


def test_a_forking_daemon_of_the_service_user_is_still_followed(
    unix: Accounts, open_dir: Path
) -> None:
    """The rules take nothing from an honest service: a daemon that forks twice (leaving the
    start command's session and parentage) and writes its pid as its own user is followed."""
    svc, run, c = _service_user_home(unix, open_dir)
    try:
        forker = open_dir / "forker.py"
        forker.write_text(
            "import os, sys, time\n"
            "if os.fork():\n    os._exit(0)\n"
            "os.setsid()\n"
            "if os.fork():\n    os._exit(0)\n"
            "with open(sys.argv[1] + '.tmp', 'w') as f:\n    f.write(f'{os.getpid()}\\n')\n"
            "os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
            "time.sleep(300)\n"
        )
        pidfile = run / "honest.pid"
        c.write_service(
            "honest",
            f'command = ["/usr/bin/python3", "{forker}", "{pidfile}"]\n'
            f'user = "{svc.pw_name}"\npidfile = "{pidfile}"\n',
        )
        c.ok("armload", "HONEST", "/S", "/WAIT", "20", "honest")
        w = c.wait_running("HONEST")
        assert w["pid"] == int(pidfile.read_text())
        c.ok("armkill", "HONEST")
        assert not alive(int(pidfile.read_text()))
    finally:
        c.cleanup()
