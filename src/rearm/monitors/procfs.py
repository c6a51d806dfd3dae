"""Reading processes from /proc for the process and resource monitors. Blocking: run through
monitors.offload, never on the event loop.

Only /proc/PID/stat is read for every process (it never waits on the process's memory map);
cmdline, status and fd are read for the few that need them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str  # R, S, D, Z, T...
    ppid: int
    session: int
    cpu_ticks: int  # utime + stime
    threads: int
    rss: int  # bytes
    start: int  # clock ticks after boot


def read_stat(pid: int) -> ProcStat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return parse_stat(pid, data)


def parse_stat(pid: int, data: bytes) -> ProcStat | None:
    open_paren, close_paren = data.find(b"("), data.rfind(b")")
    if open_paren < 0 or close_paren < 0:
        return None
    comm = data[open_paren + 1 : close_paren].decode("utf-8", errors="replace")
    f = data[close_paren + 2 :].split()
    if len(f) < 22:
        return None
    # Field numbers of proc(5) minus 3: state is field 3, ppid 4, session 6, utime 14,
    # stime 15, num_threads 20, starttime 22, rss 24.
    return ProcStat(
        pid=pid,
        comm=comm,
        state=f[0].decode(),
        ppid=int(f[1]),
        session=int(f[3]),
        cpu_ticks=int(f[11]) + int(f[12]),
        threads=int(f[17]),
        rss=int(f[21]) * PAGE,
        start=int(f[19]),
    )


def all_stats() -> list[ProcStat]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                found.append(stat)
    return found


def tree(stats: Iterable[ProcStat], root: int) -> list[ProcStat]:
    """`root` and all its descendants (by parent pid), root first."""
    children: dict[int, list[ProcStat]] = {}
    top = None
    for s in stats:
        children.setdefault(s.ppid, []).append(s)
        if s.pid == root:
            top = s
    if top is None:
        return []
    found, todo = [top], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child.pid)
    return found


def cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", errors="replace")


def real_uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
