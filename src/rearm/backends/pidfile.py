"""Daemons that fork: follow the pid file to the real process, and prove it is the right one.

A pid file may be stale (left by a crash) and its pid may since belong to another program. A pid
read from it is trusted only if that process runs the service's own program (its /proc/PID/exe
is the command's executable) and, after a start by rearm, began no earlier than that start.

The pid file usually lives in a folder the service's own user can write (/run/redis/), so what
is found there is the service user's word, read by root. It is read only when it is a regular
file of a few bytes that belongs to the service's user or root, opened without following a
link and without blocking (a FIFO would block the reader, a link could name a root-only file or
a device, whose opening alone can act: a watchdog device reboots the machine). The pid it names
is taken only from a process of the service's user (or a descendant of the start command), so
that the service's user cannot hand rearm a process of root's to adopt and later kill. The
reading is done off the event loop, with a time limit (`look_off_loop`).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
from concurrent.futures import ThreadPoolExecutor

from rearm.backends.process import Proc, SpawnError, real_uid, start_time, uid_of

MAX_SIZE = 64  # "4194304\n" with room for blanks: anything longer is not a pid file
READ_TIMEOUT = 5.0
# Its own threads: a read stuck in the kernel (a hung network file system) holds one of these,
# never the event loop nor the loop's default executor.
_READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rearm-pidfile")

_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


class Refused(Exception):
    """The pid file, or the process it names, must not be taken: str() says why."""


def user_uid(user: str | None) -> int:
    """The uid a service runs as: its `user =` (a name or a uid), the daemon's without one."""
    try:
        return uid_of(user)
    except SpawnError as e:
        raise Refused(e.strerror) from None


def _owner(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def read_pid(path: str, owner_uid: int = 0) -> int | None:
    """The pid written in `path`, or None when the file is missing, empty or not a pid.

    Raises Refused when the file is not a regular file of at most MAX_SIZE bytes belonging
    to `owner_uid`, root or the daemon's user.
    """
    try:
        before = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    kind = stat.S_IFMT(before.st_mode)
    if kind != stat.S_IFREG:
        raise Refused(f"{path} is {_KINDS.get(kind, 'not a regular file')}, not a pid file")
    if before.st_uid not in (owner_uid, 0, os.geteuid()):
        raise Refused(
            f"{path} belongs to {_owner(before.st_uid)}, not to the service's user or root"
        )
    if before.st_size > MAX_SIZE:
        raise Refused(f"{path} holds {before.st_size} bytes: a pid file holds one number")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, PermissionError):
        return None
    except OSError as e:  # ELOOP: replaced by a link since the look
        raise Refused(f"{path} changed while it was read ({e.strerror})") from None
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise Refused(f"{path} was replaced while it was read")
        data = os.read(fd, MAX_SIZE + 1)
    finally:
        os.close(fd)
    text = data.split(b"\n", 1)[0].strip()
    if not text.isdigit() or int(text) <= 1:
        return None
    return int(text)


def _same_program(pid: int, program: str) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    exe = exe.removesuffix(" (deleted)")  # upgraded on disk while running: still the same
    return exe == os.path.realpath(program)


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()


def descends_from(pid: int, ancestor: Proc) -> bool:
    """Whether `pid` is `ancestor` or was started by it: in the session it leads (rearm starts
    every target as a session leader, and Linux reuses no pid while its session lives), or
    below it in the parent chain (a child that made a session of its own)."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if int(fields[4]) == ancestor.pid:  # session id
        return True
    seen = 0
    while pid > 1 and seen < 64:
        if pid == ancestor.pid:
            return start_time(pid) == ancestor.start
        fields = _stat_fields(pid)
        if fields is None:
            return False
        pid = int(fields[1])  # parent
        seen += 1
    return False


def verified(
    path: str,
    program: str,
    not_before: int | None = None,
    *,
    user: str | None = None,
    launcher: Proc | None = None,
) -> Proc | None:
    """The process named by the pid file, if it is really the service's; else None.

    `not_before` (clock ticks since boot) refuses a process older than the start that was
    meant to write the file: then the file is stale, even if the program matches. `user` is
    the service's `user =`: the process must run as that user (root without one), or descend
    from `launcher`, the start command. Raises Refused for a file or a pid that must not be
    taken (see the module's doc); None means "not (yet) there".
    """
    uid = user_uid(user)
    pid = read_pid(path, uid)
    if pid is None:
        return None
    start = start_time(pid)
    if start is None or not _same_program(pid, program):
        return None
    if not_before is not None and start < not_before:
        return None
    runs_as = real_uid(pid)
    if runs_as != uid and not (launcher is not None and descends_from(pid, launcher)):
        who = "nobody known" if runs_as is None else _owner(runs_as)
        raise Refused(
            f"{path} names pid {pid}, which runs as {who}, not as the service's user "
            f"({_owner(uid)}), and was not started by its start command"
        )
    # Read again: the process may have ended and its pid been reused between the two reads.
    if start_time(pid) != start:
        return None
    return Proc(pid, start)


async def look_off_loop(
    path: str,
    program: str,
    not_before: int | None = None,
    *,
    user: str | None = None,
    launcher: Proc | None = None,
    timeout: float = READ_TIMEOUT,
) -> Proc | str | None:
    """`verified` in a thread of its own, within `timeout` seconds: the Proc, None, or why the
    file or its pid was refused (a read that takes longer is refused too)."""
    loop = asyncio.get_running_loop()

    def look() -> Proc | str | None:
        try:
            return verified(path, program, not_before, user=user, launcher=launcher)
        except Refused as e:
            return str(e)
        except OSError as e:
            return f"{path}: {e.strerror}"

    try:
        return await asyncio.wait_for(loop.run_in_executor(_READERS, look), timeout)
    except TimeoutError:
        return f"reading {path} took more than {timeout:g} s"


def boot_ticks_now() -> int:
    """Clock ticks since boot now, in the unit of /proc/PID/stat's start time."""
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK"))
