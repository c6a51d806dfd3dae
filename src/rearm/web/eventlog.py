"""The event log with filters, for the Manager's pages.

Store.events() reads by time and count only; the log page filters by kind, group, watch,
severity and text, so it asks SQLite itself (read-only, parameterized) rather than reading the
whole log into Python to throw most of it away.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from rearm.store import EventRow

SEVERITIES = ("debug", "info", "warning", "error", "critical")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class EventFilter:
    kind: str = ""
    group: str = ""
    watch: str = ""
    severity: str = ""  # the lowest severity shown; "" shows all
    text: str = ""
    limit: int = 200
    since: float | None = None  # seconds since the epoch (`rearm log --since/--until`)
    until: float | None = None

    @classmethod
    def from_query(cls, query: dict[str, str]) -> EventFilter:
        try:
            limit = int(query.get("limit", "200"))
        except ValueError:
            limit = 200
        severity = query.get("severity", "")
        return cls(
            kind=query.get("kind", "").strip()[:100],
            group=query.get("group", "").strip()[:100],
            watch=query.get("watch", "").strip()[:255],
            severity=severity if severity in SEVERITIES else "",
            text=query.get("q", "").strip()[:200],
            limit=min(max(limit, 1), MAX_LIMIT),
        )

    def as_query(self) -> dict[str, str]:
        out = {
            "kind": self.kind,
            "group": self.group,
            "watch": self.watch,
            "severity": self.severity,
            "q": self.text,
        }
        return {k: v for k, v in out.items() if v}


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def query(db: sqlite3.Connection, f: EventFilter) -> list[EventRow]:
    """The newest `f.limit` events matching `f`, newest first."""
    where: list[str] = ["1"]
    args: list[object] = []
    if f.kind:
        where.append("kind = ?")
        args.append(f.kind)
    if f.group:
        where.append("grp = ?")
        args.append(f.group)
    if f.watch:
        where.append("watch = ? COLLATE NOCASE")
        args.append(f.watch)
    if f.severity:
        shown = SEVERITIES[SEVERITIES.index(f.severity) :]
        where.append(f"severity IN ({','.join('?' * len(shown))})")
        args.extend(shown)
    if f.text:
        where.append("message LIKE ? ESCAPE '\\'")
        args.append(_like(f.text))
    if f.since is not None:
        where.append("ts >= ?")
        args.append(f.since)
    if f.until is not None:
        where.append("ts <= ?")
        args.append(f.until)
    sql = (
        "SELECT id, ts, kind, severity, grp, watch, message, data FROM events "
        f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
    )
    rows = db.execute(sql, [*args, f.limit]).fetchall()
    return [
        EventRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else {})
        for r in rows
    ]


def matches(f: EventFilter, event: dict[str, object]) -> bool:
    """Whether an event (its JSON form) passes `f`'s kind, group, watch and time filters:
    for events that arrive one by one (`rearm log --follow`)."""
    watch = str(event.get("watch") or "")
    return (
        (not f.kind or event.get("kind") == f.kind)
        and (not f.group or event.get("group") == f.group)
        and (not f.watch or watch.upper() == f.watch.upper())
    )


def kinds(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT kind FROM events ORDER BY kind")]
