"""A probe's child process: started in a session of its own, ended whole, never waited for.

The child leads a new session and process group (setsid), so one killpg ends
it with everything it forked; a process that moved to another group of the session is found
through /proc (in a thread) and killed as well. Only a process that makes a new session of
its own escapes, as it escapes every process-group supervisor.

Its stdout and stderr go to a pipe read by the event loop, up to OUTPUT_MAX bytes; its exit is
seen through a pidfd. Nothing here blocks: a child stuck in uninterruptible I/O (a frozen or
dead disk) cannot die until the I/O ends, so after SIGKILL it is left to be reaped whenever it
does, and `ended` tells whether it has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from subprocess import DEVNULL, STDOUT, Popen

OUTPUT_MAX = 8192
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# Spawning happens in these threads, not on the event loop: os.posix_spawn holds the GIL until
# the child has exec'd (2-10 ms on a busy machine: the whole loop waits), while subprocess's
# fork_exec lets go of it. Two threads: spawns are short, and a third in a row can wait.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="rearm-spawn")


def _spawn(argv: Sequence[str], env: Mapping[str, str], output: bool) -> tuple[Popen[bytes], int]:
    """In a spawner thread: the child in a new session, and the read end of its output."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        popen = Popen(
            list(argv),
            stdin=DEVNULL,
            stdout=write_end if output else DEVNULL,
            stderr=STDOUT if output else DEVNULL,
            env=dict(env),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    os.set_blocking(read_end, False)
    return popen, read_end


class ProbeProcess:
    def __init__(self, popen: Popen[bytes], pidfd: int, out_fd: int) -> None:
        self.pid = popen.pid
        self.started = time.monotonic()
        self._popen = popen  # kept only so that subprocess never reaps it behind our back
        self._pidfd: int | None = pidfd
        self._out_fd: int | None = out_fd
        self._output = bytearray()
        self._exit: tuple[int, int] | None = None  # (si_code, si_status)
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(pidfd, self._on_exit)
        self._loop.add_reader(out_fd, self._on_output)

    @classmethod
    async def start(
        cls, argv: Sequence[str], env: Mapping[str, str], *, output: bool = True
    ) -> ProbeProcess:
        """Start argv (argv[0] an absolute path) in a new session. Raises OSError.

        Cancelled while the spawner thread works, the child is killed as soon as it exists."""
        loop = asyncio.get_running_loop()
        spawning = loop.run_in_executor(_SPAWNER, _spawn, argv, env, output)
        try:
            popen, read_end = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            spawning.add_done_callback(_kill_orphan)
            raise
        return cls(popen, os.pidfd_open(popen.pid), read_end)

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
        assert self._exit is not None
        code, status = self._exit
        self._popen.returncode = status if code == os.CLD_EXITED else -status
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
        """SIGKILL the child's process group now, and the rest of its session from a thread
        (a scan of /proc costs milliseconds: never on the loop). The child is reaped when it
        ends (at once, unless it is stuck in uninterruptible I/O)."""
        _killpg(self.pid)
        _sweeper.add(self.pid)
        self._close_output()
        self._on_exit()  # reaped at once when it is already gone; else the reader stays


def _kill_orphan(spawning: asyncio.Future[tuple[Popen[bytes], int]]) -> None:
    """A spawn whose probe was cancelled meanwhile: end the child, and reap it."""
    if spawning.cancelled() or spawning.exception() is not None:
        return
    popen, read_end = spawning.result()
    ProbeProcess(popen, os.pidfd_open(popen.pid), read_end).kill()


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:  # a member changed its user: the session scan still finds it
        pass


def _session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[3])


class _Sweeper:
    """Ends what is left in the sessions of killed probes: processes that moved to a process
    group of their own. One thread scans /proc once for all the sessions queued meanwhile (a
    burst of timeouts costs one scan), and signals each member through a pidfd after checking
    its session again, so a pid that was reused in between is never hit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[int] = set()
        self._busy = False

    def add(self, sid: int) -> None:
        with self._lock:
            self._pending.add(sid)
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._run, name="rearm-monitor-sweep", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                sids, self._pending = self._pending, set()
                if not sids:
                    self._busy = False
                    return
            for entry in os.listdir("/proc"):
                if entry.isdigit() and _session_of(int(entry)) in sids:
                    _kill_checked(int(entry), sids)


def _kill_checked(pid: int, sids: set[int]) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if _session_of(pid) in sids:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


_sweeper = _Sweeper()


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
