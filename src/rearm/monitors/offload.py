"""Blocking calls of a probe (statvfs, a scan of /proc) in a thread, never on the event loop.

Each probe object owns one Offload: a call runs in a thread of its own and is awaited (the
scheduler cancels the wait at the probe's deadline). A call that hangs -- statvfs of a dead
NFS mount, /proc/PID/cmdline of a process whose memory map is locked -- keeps its thread, but
only that one: while it is stuck the next call is refused with Stuck instead of starting
another thread, so a hung filesystem costs one thread per monitor, not one per interval.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Stuck(Exception):
    """The previous call has not returned yet."""

    def __init__(self, since: float) -> None:
        stuck = time.monotonic() - since
        super().__init__(f"the previous check is still stuck after {stuck:.0f} s")


class Offload:
    def __init__(self, name: str) -> None:
        self._name = name
        self._busy: concurrent.futures.Future[object] | None = None
        self._since = 0.0

    async def run(self, fn: Callable[[], T]) -> T:
        if self._busy is not None and not self._busy.done():
            raise Stuck(self._since)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def work() -> None:
            try:
                value = fn()
            except BaseException as e:
                future.set_exception(e)
            else:
                future.set_result(value)

        self._busy = future  # type: ignore[assignment]
        self._since = time.monotonic()
        threading.Thread(target=work, name=f"rearm-monitor-{self._name}", daemon=True).start()
        return await asyncio.wrap_future(future)
