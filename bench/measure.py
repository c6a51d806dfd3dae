"""What the suite reads: the probes' start datagrams, and /proc counters of the supervisors.

Collector: the bench's end of the socket N probes report to. A thread receives every
datagram as it comes, so a probe never waits on a full queue (a Unix datagram socket
queues only net.unix.max_dgram_qlen datagrams, often 10) and the bench can ask "have all
these tags started since t0?" with a deadline.

Counters: CPU time (utime + stime in clock ticks, and the exact run time from schedstat) and
context switches (voluntary + nonvoluntary, each one
a wake-up of the task) per task (thread) from /proc/PID/task/TID/{stat,status}; RSS from
/proc/PID/status; PSS from /proc/PID/smaps_rollup.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from common import CLOCK_TICK, Alive, SetupError, proc_argv, proc_stat


def now_ns() -> int:
    """CLOCK_MONOTONIC, the clock the probes stamp their start with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# --------------------------------------------------------------------------- starts


@dataclass(frozen=True)
class Start:
    ns: int  # CLOCK_MONOTONIC when the probe reached main()
    pid: int
    tag: str


class Collector:
    """Receives the start datagrams of every probe reporting to `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)  # how often the thread looks whether it should end
        self.starts: list[Start] = []
        self.cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._receive, name=f"collector {path}")
        self._thread.daemon = True
        self._thread.start()

    def _receive(self) -> None:
        while not self._closing:
            try:
                data = self.sock.recv(512)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            fields = data.split()
            if len(fields) < 3:
                continue
            start = Start(int(fields[0]), int(fields[1]), fields[2].decode(errors="replace"))
            with self.cond:
                self.starts.append(start)
                self.cond.notify_all()

    def close(self) -> None:
        self._closing = True
        self._thread.join(2)
        self.sock.close()
        self.path.unlink(missing_ok=True)

    def latest(self) -> dict[str, Start]:
        """Each tag's most recent start."""
        with self.cond:
            return {s.tag: s for s in self.starts}

    def wait_for(
        self, tags: Iterable[str], after_ns: int, timeout: float, alive: Alive
    ) -> dict[str, Start]:
        """The first start after `after_ns` of each tag, once every tag has one.

        At the deadline, what has come so far (fewer tags than asked); SetupError when the
        supervisor died meanwhile.
        """
        wanted = set(tags)
        got: dict[str, Start] = {}
        seen = 0
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for start in self.starts[seen:]:
                    if start.ns > after_ns and start.tag in wanted and start.tag not in got:
                        got[start.tag] = start
                seen = len(self.starts)
                remaining = deadline - time.monotonic()
                if len(got) == len(wanted) or remaining <= 0:
                    return got
                self.cond.wait(min(remaining, 0.5))
                problem = alive()
                if problem:
                    raise SetupError(problem)


def spread(starts: Iterable[Start], t0_ns: int) -> dict[str, float]:
    """When the first, the median and the last start came, in s after t0."""
    offsets = sorted((s.ns - t0_ns) / 1e9 for s in starts)
    if not offsets:
        return {}
    return {"first_s": offsets[0], "median_s": statistics.median(offsets), "all_s": offsets[-1]}


# --------------------------------------------------------------------------- counters


@dataclass(frozen=True)
class TaskSample:
    pid: int
    tid: int
    process: str  # a short name of the process (its argv)
    cpu_s: float  # utime + stime, in clock ticks (10 ms each here): coarse
    run_s: float | None  # time on a CPU from schedstat, in ns: exact; None if unavailable
    wakes: int  # voluntary + nonvoluntary context switches


def process_label(pid: int) -> str:
    """argv, shortened to what tells a process apart: `rearm daemon`, `runsv p12`..."""
    argv = [os.path.basename(a.decode(errors="replace")) for a in proc_argv(pid) if a][:4]
    if argv and argv[0].startswith("python"):
        argv = argv[1:]  # the interpreter of a script says nothing
        if argv[:1] == ["-m"]:
            argv = argv[1:]  # python -m rearm.keeper ...: the module
    return " ".join(argv[:2]) or f"pid {pid}"


def _switches(pid: int, tid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
            total += int(line.split()[1])
    return total


def _run_time(pid: int, tid: int) -> float | None:
    """Seconds the task has run on a CPU (the scheduler's own account, ns resolution)."""
    try:
        return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def sample_tasks(pids: Iterable[int]) -> dict[tuple[int, int], TaskSample]:
    """Every thread of these processes now, keyed by (pid, tid)."""
    out: dict[tuple[int, int], TaskSample] = {}
    for pid in pids:
        label = process_label(pid)
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            got = proc_stat(pid, tid)
            wakes = _switches(pid, tid)
            if got is None or wakes is None:
                continue
            fields = got[1]
            cpu = (int(fields[11]) + int(fields[12])) * CLOCK_TICK
            out[(pid, tid)] = TaskSample(pid, tid, label, cpu, _run_time(pid, tid), wakes)
    return out


@dataclass(frozen=True)
class TaskDelta:
    pid: int
    tid: int
    process: str
    cpu_s: float
    run_s: float | None
    wakes: int
    new: bool  # started during the window: counted from zero


def deltas(
    before: dict[tuple[int, int], TaskSample], after: dict[tuple[int, int], TaskSample]
) -> tuple[list[TaskDelta], list[TaskSample]]:
    """What each task did between two samples; and the tasks that ended meanwhile (their
    last part is lost: /proc forgets a task once it is reaped)."""
    out = []
    for key, end in after.items():
        start = before.get(key)
        cpu0, run0, wakes0 = (start.cpu_s, start.run_s, start.wakes) if start else (0.0, 0.0, 0)
        run = None if end.run_s is None or run0 is None else end.run_s - run0
        out.append(
            TaskDelta(
                end.pid,
                end.tid,
                end.process,
                end.cpu_s - cpu0,
                run,
                end.wakes - wakes0,
                start is None,
            )
        )
    gone = [s for key, s in before.items() if key not in after]
    return out, gone


def memory_kb(pid: int) -> tuple[int | None, int | None]:
    """(RSS, PSS) of one process in KiB; None where it could not be read."""
    rss = pss = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss
