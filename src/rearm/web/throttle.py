"""Login rate limits: per client address, and per user name with a growing back-off.

Per address: after FAILURES wrong passwords from one address within WINDOW seconds, that
address gets 429 (with Retry-After) until the oldest failure leaves the window. A successful
login does not clear that count: otherwise anyone holding one valid (say read-only) account
could reset it between guesses at another.

Per user name: addresses are cheap to an attacker (a whole 127.0.0.0/8 on loopback, many on
IPv6), and behind a proxy every client has the proxy's address. So each name may fail
NAME_FREE times freely; then every further try for that name must wait, after the last failure,
NAME_BASE seconds doubled at each failure, at most NAME_MAX: guessing one password costs hours
whatever the addresses, while its owner is only ever delayed (by NAME_MAX at worst), never locked
out. Failures older than NAME_WINDOW are forgotten, and a successful login clears its name.
Unknown names are counted like known ones (nothing tells them apart).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

FAILURES = 5
WINDOW = 60.0
MAX_CLIENTS = 10_000  # bounded memory under a spray from many addresses or names
NAME_FREE = 10
NAME_BASE = 2.0
NAME_MAX = 300.0
NAME_WINDOW = 3600.0


@dataclass
class _NameFailures:
    count: int
    last: float


class LoginThrottle:
    def __init__(
        self,
        failures: int = FAILURES,
        window: float = WINDOW,
        name_free: int = NAME_FREE,
        name_base: float = NAME_BASE,
        name_max: float = NAME_MAX,
    ) -> None:
        self.failures = failures
        self.window = window
        self.name_free = name_free
        self.name_base = name_base
        self.name_max = name_max
        self._seen: dict[str, deque[float]] = {}
        self._names: dict[str, _NameFailures] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._seen.get(client)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._seen[client]
        return times

    def _name_wait(self, user: str, now: float) -> float:
        entry = self._names.get(user)
        if entry is None:
            return 0.0
        if now - entry.last >= NAME_WINDOW:
            del self._names[user]
            return 0.0
        if entry.count < self.name_free:
            return 0.0
        delay = min(self.name_base * 2.0 ** (entry.count - self.name_free), self.name_max)
        return entry.last + delay - now

    def retry_after(self, client: str, user: str = "", now: float | None = None) -> int | None:
        """Seconds to wait before `client` may try again (to log in as `user`), or None."""
        now = time.monotonic() if now is None else now
        waits = [self._name_wait(user, now)]
        times = self._recent(client, now)
        if len(times) >= self.failures:
            waits.append(self.window - (now - times[0]))
        wait = max(waits)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, client: str, user: str = "", now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if client not in self._seen and len(self._seen) >= MAX_CLIENTS:
            # Forget the client whose last failure is oldest.
            stale = min(self._seen, key=lambda c: self._seen[c][-1])
            del self._seen[stale]
        times = self._seen.setdefault(client, deque())
        times.append(now)
        while len(times) > self.failures:
            times.popleft()
        entry = self._names.get(user)
        if entry is None:
            if len(self._names) >= MAX_CLIENTS:
                stale = min(self._names, key=lambda n: self._names[n].last)
                del self._names[stale]
            self._names[user] = _NameFailures(1, now)
        else:
            if now - entry.last >= NAME_WINDOW:
                entry.count = 0
            entry.count += 1
            entry.last = now

    def succeeded(self, user: str) -> None:
        """Its owner knows the password: the name's back-off ends (the address's does not)."""
        self._names.pop(user, None)
