"""The last lines of a log file: what a failed script or daemon said last, shown where the
failure is seen (rearm group start, rearm status, the Manager, rearm daemon --wait-ready)."""

from __future__ import annotations

import os

MAX_BYTES = 8192  # only the end of a file is read, however large it has grown
MAX_LINE = 500


def tail(path: str, offset: int = 0, lines: int = 10, max_bytes: int = MAX_BYTES) -> list[str]:
    """The last `lines` non-blank lines written to `path` from `offset` on (e.g. one run of a
    script appended to a shared log), each cut to MAX_LINE characters; [] when unreadable."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            start = max(offset, end - max_bytes)
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    found = data.decode("utf-8", "replace").splitlines()
    if start > offset:
        found = found[1:]  # the first line read may be cut
    return [line.rstrip()[:MAX_LINE] for line in found if line.strip()][-lines:]
