"""Open things (connections, live streams) counted per key and bounded: at most `per_key` for
one key (a client address, a uid, a Manager user) and `total` in all. Pure bookkeeping."""

from __future__ import annotations

from collections import Counter
from typing import Literal

Full = Literal["key", "total"]


class Quota:
    def __init__(self, per_key: int, total: int) -> None:
        self.per_key = per_key
        self.total = total
        self.open: Counter[str | int] = Counter()

    @property
    def count(self) -> int:
        return sum(self.open.values())

    def admit(self, key: str | int) -> Full | None:
        """Count one more for `key`; or, when that would pass a bound, which one ("key": the
        key has its share, "total": all are taken) and count nothing."""
        if self.count >= self.total:
            return "total"
        if self.open[key] >= self.per_key:
            return "key"
        self.open[key] += 1
        return None

    def take(self, key: str | int, *, key_full: str, all_full: str) -> str | None:
        """`admit`, saying why not in words: `key_full` or `all_full`."""
        full = self.admit(key)
        return None if full is None else key_full if full == "key" else all_full

    def release(self, key: str | int) -> None:
        self.open[key] -= 1
        if self.open[key] <= 0:
            del self.open[key]
