"""Login rate limit: after FAILURES wrong passwords from one address within WINDOW seconds,
that address gets 429 (with Retry-After) until the oldest failure leaves the window.

Counted per client address, not per user name, so that guessing across many names is slowed
as much as guessing one, and an attacker cannot lock a real admin out of their own desk.
A successful login does not clear the count: otherwise anyone holding one valid (say
read-only) account could reset it between guesses at another.
"""

from __future__ import annotations

import math
import time
from collections import deque

FAILURES = 5
WINDOW = 60.0
MAX_CLIENTS = 10_000  # bounded memory under a spray from many addresses


class LoginThrottle:
    def __init__(self, failures: int = FAILURES, window: float = WINDOW) -> None:
        self.failures = failures
        self.window = window
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._seen.get(client)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._seen[client]
        return times

    def retry_after(self, client: str, now: float | None = None) -> int | None:
        """Seconds `client` must wait before trying again, or None when it may try now."""
        now = time.monotonic() if now is None else now
        times = self._recent(client, now)
        if len(times) < self.failures:
            return None
        return max(1, math.ceil(self.window - (now - times[0])))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if client not in self._seen and len(self._seen) >= MAX_CLIENTS:
            # Forget the client whose last failure is oldest.
            stale = min(self._seen, key=lambda c: self._seen[c][-1])
            del self._seen[stale]
        times = self._seen.setdefault(client, deque())
        times.append(now)
        while len(times) > self.failures:
            times.popleft()
