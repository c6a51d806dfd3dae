"""Daemons that fork: follow the pid file to the real process, and prove it is the right one.

A pid file may be stale (left by a crash) and its pid may since belong to another program. A pid
read from it is trusted only if that process runs the service's own program (its /proc/PID/exe
is the command's executable) and, after a start by rearm, began no earlier than that start.
"""

from __future__ import annotations

import os

from rearm.backends.process import Proc, start_time


def read_pid(path: str) -> int | None:
    """The pid written in `path`, or None when the file is missing, empty or not a pid."""
    try:
        with open(path, "rb") as f:
            text = f.read(64).split(b"\n", 1)[0].strip()
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return None
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


def boot_ticks_now() -> int:
    """Clock ticks since boot now, in the unit of /proc/PID/stat's start time."""
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK"))


def verified(path: str, program: str, not_before: int | None = None) -> Proc | None:
    """The process named by the pid file, if it is really the service's; else None.

    `not_before` (clock ticks since boot) refuses a process older than the start that was
    meant to write the file: then the file is stale, even if the program matches.
    """
    pid = read_pid(path)
    if pid is None:
        return None
    start = start_time(pid)
    if start is None or not _same_program(pid, program):
        return None
    if not_before is not None and start < not_before:
        return None
    # Read again: the process may have ended and its pid been reused between the two reads.
    if start_time(pid) != start:
        return None
    return Proc(pid, start)
