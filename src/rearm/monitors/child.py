"""A probe's child process: started in a session of its own, ended whole, never waited for.

The child leads a new session and process group (posix_spawn with setsid), so one killpg ends
it with everything it forked; a process that moved to another group of the session is found
through /proc and killed as well (only a double fork with a new session of its own escapes,
as it escapes every process-group supervisor). Its stdout and stderr go to a pipe read by the
event loop, up to OUTPUT_MAX bytes; its exit is seen through a pidfd. Nothing here blocks: a
child stuck in uninterruptible I/O (a frozen or dead disk) cannot die until the I/O ends, so
after SIGKILL it is left to be reaped whenever it does, and `ended` tells whether it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import time
from collections.abc import Mapping, Sequence

OUTPUT_MAX = 8192
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProbeProcess:
    def __init__(self, pid: int, pidfd: int, out_fd: int) -> None:
        self.pid = pid
        self.started = time.monotonic()
        self._pidfd: int | None = pidfd
        self._out_fd: int | None = out_fd
        self._output = bytearray()
        self._exit: tuple[int, int] | None = None  # (si_code, si_status)
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(pidfd, self._on_exit)
        self._loop.add_reader(out_fd, self._on_output)

    @classmethod
    def spawn(
        cls, argv: Sequence[str], env: Mapping[str, str], *, output: bool = True
    ) -> ProbeProcess:
        """Start argv (argv[0] an absolute path) in a new session. Raises OSError."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, write_end, 1),
            (os.POSIX_SPAWN_DUP2, write_end, 2),
        ]
        if not output:
            actions[1:] = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)]
            actions.append((os.POSIX_SPAWN_DUP2, 1, 2))
        try:
            # The write end is O_NONBLOCK for us; dup2 gives the child a descriptor sharing
            # that flag, and a plugin writing to a full pipe must block, not fail: clear it.
            os.set_blocking(write_end, True)
            pid = os.posix_spawn(
                argv[0],
                list(argv),
                dict(env),
                file_actions=actions,
                setsid=True,
                # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive exec.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            # Cannot happen for our own unreaped child; keep the invariant anyway.
            os.close(read_end)
            raise
        return cls(pid, pidfd, read_end)

    # --- reading --------------------------------------------------------------------------
    def _on_output(self) -> None:
        fd = self._out_fd
        if fd is None:
            return
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._close_output()
                return
            room = OUTPUT_MAX - len(self._output)
            if room > 0:
                self._output += chunk[:room]  # the rest is read and dropped: never blocks it

    def _close_output(self) -> None:
        if self._out_fd is not None:
            self._loop.remove_reader(self._out_fd)
            os.close(self._out_fd)
            self._out_fd = None

    def _on_exit(self) -> None:
        fd = self._pidfd
        if fd is None:
            return
        try:
            result = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            result = None
            self._exit = (os.CLD_KILLED, signal.SIGKILL)  # reaped elsewhere: treat as gone
        if result is None and self._exit is None:
            return
        if result is not None:
            self._exit = (result.si_code, result.si_status)
        self._loop.remove_reader(fd)
        os.close(fd)
        self._pidfd = None
        if not self._exited.done():
            self._exited.set_result(None)

    # --- results ----------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        """Reaped: the process is gone for good."""
        return self._exit is not None

    async def wait(self) -> None:
        """Until the child exits; then its output is read to the end of what is there, and
        what it left in its process group is killed."""
        await asyncio.shield(self._exited)
        self._on_output()
        self._close_output()
        _killpg(self.pid)

    def output(self) -> str:
        return self._output.decode("utf-8", errors="replace")

    @property
    def exit_code(self) -> int | None:
        """The exit status, or None when it was killed by a signal (or has not ended)."""
        if self._exit is None or self._exit[0] != os.CLD_EXITED:
            return None
        return self._exit[1]

    def describe_exit(self) -> str:
        if self._exit is None:
            return "still running"
        code, status = self._exit
        if code == os.CLD_EXITED:
            return f"exit status {status}"
        try:
            name = signal.Signals(status).name
        except ValueError:
            name = f"signal {status}"
        return f"killed by {name}"

    # --- ending -----------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the child's process group and the rest of its session, now. The child is
        reaped when it ends (at once, unless it is stuck in uninterruptible I/O)."""
        _killpg(self.pid)
        for pid in session_members(self.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._close_output()
        self._on_exit()  # reaped at once when it is already gone; else the reader stays


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # a member changed its user: the session scan still finds it
        pass


def session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (the child's; setsid made its sid its pid). The kernel
    does not reuse a pid that still names a session, so these are the child's own."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def probe_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A probe's environment: a plain PATH and the C locale (plugins' numbers parse the same
    everywhere), then the monitor's own variables."""
    env = {"PATH": PATH, "LC_ALL": "C", "LANG": "C"}
    env.update(extra)
    return env


def explain_spawn_error(program: str, e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return f"{program}: no such file"
    if e.errno == errno.EACCES:
        return f"{program}: not executable"
    return f"{program}: cannot start: {e.strerror}"
