"""process.spawn knows its child's start time without /proc when it can: it must be exactly
what /proc/PID/stat says, which is what re-adoption after a daemon restart compares."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from rearm.backends import process


def test_spawn_start_equals_proc_stat(tmp_path: Path) -> None:
    children = []
    try:
        for _ in range(300):
            proc = process.spawn(["/bin/sleep", "6173"], {}, str(tmp_path / "log"))
            children.append(proc)
        for proc in children:
            assert process.start_time(proc.pid) == proc.start, proc
    finally:
        for proc in children:
            os.killpg(proc.pid, signal.SIGKILL)  # each leads a session (and group) of its own
            os.waitpid(proc.pid, 0)
