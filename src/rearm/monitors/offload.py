"""Blocking calls of a probe (statvfs, a scan of /proc) in a thread, never on the event loop.

Each probe object owns one Offload: a call runs in a thread of its own and is awaited (the
scheduler cancels the wait at the probe's deadline). A call that hangs -- statvfs of a dead
NFS mount, /proc/PID/cmdline of a process whose memory map is locked -- keeps its thread, but
only that one: while it is stuck the next call is refused with Stuck instead of starting
another thread, so a hung filesystem costs one thread per monitor, not one per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._since: float | None = None  # a call is running (in its thread) since then

    async def run(self, fn: Callable[[], T]) -> T:
        if self._since is not None:
            raise Stuck(self._since)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()

        def deliver(value: T | None, error: BaseException | None) -> None:
            if answer.done():  # the probe was cancelled meanwhile: nobody waits
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(value)  # type: ignore[arg-type]

        def work() -> None:
            value: T | None = None
            error: BaseException | None = None
            try:
                value = fn()
            except BaseException as e:
                error = e
            finally:
                self._since = None
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(deliver, value, error)

        self._since = time.monotonic()
        threading.Thread(target=work, name=f"rearm-monitor-{self._name}", daemon=True).start()
        return await answer
