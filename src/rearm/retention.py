"""How much history rearm keeps: the event log, and the watches' log files.

A crash loop writes a few events per restart and whatever the target prints, restart after
restart; without limits it fills var/ (and a full var/ is a crisis of its own). The optional
[retention] table of cluster.toml sets the limits; every key has a default:

    [retention]
    events_days = 90          # events older than this are deleted
    events_max = 100000       # and never more than this many are kept
    watch_log_max_mb = 10     # a watch's log over this is rotated when the target (re)starts
    watch_log_keep = 3        # rotated logs kept: NAME.log.1 (newest) .. NAME.log.3
    watch_log_days = 30       # rotated logs older than this are removed

Group script logs are rotated the same way. Faults need no setting: only those a live watch's
/R /H rule can still count are kept (see Store.prune_faults).

The rotation itself (`rotate_if_over`, `sweep`) is plain file work, used by the daemon.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from rearm.validate import Table

MIB = 1 << 20
_ROTATED = re.compile(r".+\.log\.[0-9]+$")


@dataclass(frozen=True)
class Retention:
    events_days: int = 90
    events_max: int = 100_000
    watch_log_max_mb: int = 10
    watch_log_keep: int = 3
    watch_log_days: int = 30

    @property
    def log_max_bytes(self) -> int:
        return self.watch_log_max_mb * MIB


def retention_from(data: dict[str, Any], where: str = "cluster.toml") -> Retention:
    """The [retention] table of a parsed cluster.toml (defaults when there is none)."""
    t = Table(data, where).table("retention")
    if t is None:
        return Retention()
    retention = Retention(
        events_days=t.int_("events_days", 90, 1, 36_500),
        events_max=t.int_("events_max", 100_000, 100, 100_000_000),
        watch_log_max_mb=t.int_("watch_log_max_mb", 10, 1, 1 << 20),
        watch_log_keep=t.int_("watch_log_keep", 3, 0, 1000),
        watch_log_days=t.int_("watch_log_days", 30, 1, 36_500),
    )
    t.finish()
    return retention


def load_retention(home: Any) -> Retention:
    """[retention] of home's cluster.toml; raises ConfigError (rearm.validate) for a bad
    table."""
    from rearm.config import read_toml

    try:
        data = read_toml(home, home.cluster_file)
    except FileNotFoundError:
        return Retention()
    return retention_from(data)


def rotate_if_over(path: str, max_bytes: int, keep: int) -> bool:
    """When `path` holds more than `max_bytes`, move it to PATH.1 (PATH.1 to PATH.2, ...,
    dropping what goes past PATH.`keep`); a new PATH is then made by its next writer. True if
    it was rotated. Costs one stat when it is not (this runs before every restart)."""
    try:
        if os.stat(path).st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    try:
        if keep == 0:
            os.unlink(path)
            return True
        oldest = f"{path}.{keep}"
        if os.path.exists(oldest):
            os.unlink(oldest)
        for n in range(keep - 1, 0, -1):
            if os.path.exists(f"{path}.{n}"):
                os.replace(f"{path}.{n}", f"{path}.{n + 1}")
        os.replace(path, f"{path}.1")
    except OSError:
        return False  # a full or read-only var/: the writer appends to the old file
    return True


def sweep(folder: str, max_age: float, now: float, keep: int | None = None) -> int:
    """Remove rotated logs (NAME.log.N) in `folder` older than `max_age` seconds, and those
    numbered beyond `keep`. Returns how many were removed."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not _ROTATED.fullmatch(name):
            continue
        path = os.path.join(folder, name)
        try:
            too_many = keep is not None and int(name.rsplit(".", 1)[1]) > keep
            if too_many or now - os.stat(path).st_mtime > max_age:
                os.unlink(path)
                removed += 1
        except (OSError, ValueError):
            continue
    return removed
