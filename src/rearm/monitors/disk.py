"""`disk`: a real write+fsync and a real read of a file, with a timeout (diskw).

    [[monitors]]
    name = "data-disk-io"
    kind = "disk"
    file = "/var/lib/postgresql/.rearm-disk-probe"   # made if missing; one block is written
    interval = 30
    timeout = 10

A disk that hangs is the classic silent failure: every process touching it stops, nothing
dies, nothing is logged. Each probe writes a fresh random block with O_DIRECT, fsyncs it, reads
it back with O_DIRECT (from the device, not the page cache) and compares. Where O_DIRECT is
not supported (tmpfs), it writes and reads through the cache, with fsync and the cache dropped
for the file, and says so.

The I/O runs in a child process of its own, never in the daemon or one of its threads: at the
timeout the child is sent SIGKILL and left behind. A process blocked in uninterruptible I/O
cannot die until the I/O ends, so while that child lingers the next probes do not start
another one: they fail at once saying the previous one is still stuck. When the disk comes back
the child ends, is reaped, and the next probe runs normally.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from rearm.monitors import keys
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok, unknown
from rearm.monitors.child import ProbeProcess, explain_spawn_error, probe_env
from rearm.validate import Table

BLOCK = 4096
# Run as `python -I -S -c CODE FILE`: no site, no user paths; a few milliseconds to start.
CODE = r"""
import errno, mmap, os, sys, time
path = sys.argv[1]
size = int(sys.argv[2])
data = mmap.mmap(-1, size)
data.write(os.urandom(16) * (size // 16))
flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
direct = True
try:
    fd = os.open(path, flags | os.O_DIRECT, 0o600)
except OSError as e:
    if e.errno != errno.EINVAL:
        raise
    direct = False
    fd = os.open(path, flags, 0o600)
began = time.monotonic()
os.pwrite(fd, data, 0)
os.fsync(fd)
wrote = time.monotonic()
if not direct:
    os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)
back = mmap.mmap(-1, size)
got = os.preadv(fd, [back], 0)
read = time.monotonic()
os.close(fd)
if got != size or back[:] != data[:]:
    print(f"read back {got} bytes that differ from the {size} written")
    sys.exit(2)
mode = "O_DIRECT" if direct else "cached (no O_DIRECT here), fsync"
print(f"write+fsync {(wrote - began) * 1000:.1f} ms, read {(read - wrote) * 1000:.1f} ms, {mode}")
"""


@dataclass(frozen=True)
class DiskOptions(Options):
    file: str

    @property
    def spawns(self) -> bool:
        return True

    @property
    def default_failures(self) -> int:
        return 2

    def build(self, env: ProbeEnv) -> Probe:
        return DiskProbe(self)

    def describe(self) -> str:
        return f"disk {self.file}"


def parse(t: Table) -> DiskOptions:
    file = keys.abs_path(t, "file", required=True)
    assert file is not None
    return DiskOptions(file=file)


class DiskProbe:
    def __init__(self, options: DiskOptions) -> None:
        self.options = options
        self.step = ""
        self._child: ProbeProcess | None = None

    async def probe(self, target: Target, deadline: float) -> Result:
        previous = self._child
        if previous is not None and not previous.ended:
            stuck = time.monotonic() - previous.started
            return error(
                f"{self.options.file}: the previous probe (pid {previous.pid}) is still stuck "
                f"in I/O after {stuck:.0f} s"
            )
        python = sys.executable or "/usr/bin/python3"
        argv = [python, "-I", "-S", "-c", CODE, self.options.file, str(BLOCK)]
        try:
            child = await ProbeProcess.start(argv, probe_env({}))
        except OSError as e:
            return unknown(explain_spawn_error(python, e))
        self._child = child
        self.step = f"writing, syncing and reading {self.options.file}"
        try:
            await child.wait()
        finally:
            if not child.ended:
                child.kill()  # left to be reaped whenever its I/O ends
        lines = child.output().strip().splitlines()
        said = lines[-1] if lines else child.describe_exit()
        if child.exit_code == 0:
            return ok(said)
        return error(f"{self.options.file}: {said}")

    async def close(self) -> None:
        if self._child is not None and not self._child.ended:
            self._child.kill()
