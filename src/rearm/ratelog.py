"""Log lines that an attacker can cause, at most one per kind a minute.

A flood of connections, each refused, must not become a flood of log lines (which would fill
the journal and the disk, and cost the loop more than the refusals). The first line of a kind
is logged at once; later ones within INTERVAL are counted, and the next line that is logged
says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

INTERVAL = 60.0


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def log(self, kind: str, level: int, message: str, *args: object) -> bool:
        """Log `message` unless a line of `kind` was logged within the interval; True if
        it was logged."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return False
        self._last[kind] = now
        left_out = self._left_out.pop(kind, 0)
        if left_out:
            message += f" ({left_out} more like this in the last {self.interval:g} s not logged)"
        self.logger.log(level, message, *args)
        return True
