"""A reserve of file descriptors for the restart path.

A restart needs descriptors: the new process opens its log (inside posix_spawn, in a copy of
the daemon's descriptor table) and the daemon opens a pidfd to watch it. If something used up
the daemon's descriptors (connections, a leak), a restart would fail, or worse start a process
it cannot watch. The daemon therefore holds a few descriptors on /dev/null from its start; when
a step of the restart path fails with EMFILE, `retrying` gives them back, tries the step once
more, and takes back what it can. Nothing is paid while descriptors are plentiful.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from typing import TypeVar

from rearm.ratelog import RateLimitedLog

T = TypeVar("T")
SIZE = 32
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
_lines = RateLimitedLog(logging.getLogger("rearm"))


class DescriptorReserve:
    def __init__(self, size: int = 0) -> None:
        self.size = size
        self._fds: list[int] = []
        self.used = 0  # times it was given back

    def keep(self, size: int = SIZE) -> None:
        """Hold `size` descriptors from now on (the daemon calls this at its start)."""
        self.size = size
        self.refill()

    @property
    def held(self) -> int:
        return len(self._fds)

    def refill(self) -> None:
        while len(self._fds) < self.size:
            try:
                self._fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                return  # still short: taken back later, when descriptors are free again

    def release(self) -> int:
        """Give every held descriptor back; how many were."""
        n = len(self._fds)
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if n:
            self.used += 1
        return n

    def retrying(self, step: Callable[[], T]) -> T:
        """step(); if it fails for want of descriptors, once more with the reserve given back.
        `step` raises OSError (or a subclass) with the errno."""
        try:
            return step()
        except OSError as e:
            if e.errno not in OUT_OF_DESCRIPTORS or not self.release():
                raise
            _lines.log(
                "reserve",
                logging.ERROR,
                "out of file descriptors (%s): the reserve kept for restarts is used",
                e.strerror,
            )
        try:
            return step()
        finally:
            self.refill()


# The daemon's one reserve (empty until it calls keep()).
RESERVE = DescriptorReserve()


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (no privilege needed), as far
    as the kernel allows one process (fs.nr_open). Returns the soft limit before and after.

    The daemon's descriptors are its connections, the pidfds of its watches and its files; the
    common soft default of 1024 is far too few for a thousand watches and a busy management
    address. Targets inherit the raised limit (a definition's [limits] nofile sets theirs).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
        if want == resource.RLIM_INFINITY or want > nr_open:
            want = nr_open
    except (OSError, ValueError):
        if want == resource.RLIM_INFINITY:
            return soft, soft
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (OSError, ValueError):
            return soft, soft
        return soft, want
    return soft, soft
