"""Building sinks and events for the alert tests the way the daemon does: from TOML tables."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from rearm.alerts import Alert, SinkConfig, sinks_from_table
from rearm.store import EventRow
from rearm.validate import Table

CLUSTER = "testcl"
SERVER = "test-server"
_ids = itertools.count(1)


def sinks(*tables: dict[str, Any], base_dir: Path | str = "/nonexistent") -> list[SinkConfig]:
    """The sinks of a cluster.toml whose [[alerts]] are `tables`."""
    data = {"name": CLUSTER, "server": SERVER, "alerts": list(tables)}
    return sinks_from_table(Table(data, "etc/cluster.toml"), str(base_dir))


def sink(base_dir: Path | str = "/nonexistent", **table: Any) -> SinkConfig:
    (config,) = sinks(table, base_dir=base_dir)
    return config


def event(
    kind: str = "fault",
    severity: str = "warning",
    *,
    group: str | None = "web",
    watch: str | None = "WEB1",
    message: str = "WEB1 ended: killed by SIGKILL; fault 1 of 3 allowed, restart in 0 s",
    data: dict[str, Any] | None = None,
    id: int | None = None,
) -> EventRow:
    return EventRow(
        id=next(_ids) if id is None else id,
        ts=time.time(),
        kind=kind,
        severity=severity,
        group=group,
        watch=watch,
        message=message,
        data=data or {},
    )


def alert(**kw: Any) -> Alert:
    return Alert(CLUSTER, SERVER, event(**kw))
