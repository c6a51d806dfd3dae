"""The durable truth (SQLite in WAL mode): watches, fault history, events, groups, final actions.

Every decision that must survive a crash is written here before it is acted on. WAL with
synchronous=NORMAL survives a crash of the daemon without losing a committed transaction; the
last few transactions may be lost on power loss, so a final action that takes the machine down
checkpoints with a full sync first (`sync_hard`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watches (
    key         TEXT PRIMARY KEY,       -- upper-cased watch ID
    instance    TEXT NOT NULL,          -- one armload; faults belong to it
    grp         TEXT,                   -- group, NULL for a watch made outside a group script
    request     TEXT NOT NULL,          -- the armload request, JSON
    state       TEXT NOT NULL,
    pid         INTEGER,
    pid_start   INTEGER,                -- /proc/PID/stat starttime: tells a reused pid apart
    own_group   INTEGER NOT NULL DEFAULT 0,  -- pid leads a process group rearm created
    token       TEXT,                   -- REARM_SPAWN_TOKEN of the last spawn
    restarts    INTEGER NOT NULL DEFAULT 0,
    restart_due REAL,                   -- wall time a pending restart is due
    boot_id     TEXT NOT NULL,
    created     REAL NOT NULL,
    detail      TEXT                    -- last exit or error, for status
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY, instance TEXT NOT NULL, watch TEXT NOT NULL, ts REAL NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faults_instance ON faults (instance);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,
    grp TEXT, watch TEXT, message TEXT NOT NULL, data TEXT
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, boot_id TEXT NOT NULL, since REAL NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS final_actions (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, requested TEXT NOT NULL, action TEXT NOT NULL,
    watch TEXT, grp TEXT, drill INTEGER NOT NULL, boot_id TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class WatchRow:
    key: str
    instance: str
    group: str | None
    request: dict[str, Any]
    state: str
    pid: int | None
    pid_start: int | None
    own_group: bool
    token: str | None
    restarts: int
    restart_due: float | None
    boot_id: str
    created: float
    detail: str | None


@dataclass(frozen=True)
class EventRow:
    id: int
    ts: float
    kind: str
    severity: str
    group: str | None
    watch: str | None
    message: str
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": iso8601(self.ts),
            "kind": self.kind,
            "severity": self.severity,
            "group": self.group,
            "watch": self.watch,
            "message": self.message,
            **({"data": self.data} if self.data else {}),
        }


def iso8601(ts: float) -> str:
    t = time.gmtime(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(ts % 1 * 1000):03d}Z"


class Store:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        # isolation_level=None: we open transactions ourselves, so each one is explicit.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        os.chmod(path, 0o600)

    def close(self) -> None:
        self.db.close()

    def sync_hard(self) -> None:
        """Before the machine goes down: everything committed reaches the disk."""
        self.db.execute("PRAGMA wal_checkpoint(FULL)")
        os.sync()

    # --- meta ---
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- watches ---
    def watches(self) -> list[WatchRow]:
        rows = self.db.execute(
            "SELECT key, instance, grp, request, state, pid, pid_start, own_group, token,"
            " restarts, restart_due, boot_id, created, detail FROM watches ORDER BY created"
        ).fetchall()
        return [
            WatchRow(
                key=r[0],
                instance=r[1],
                group=r[2],
                request=json.loads(r[3]),
                state=r[4],
                pid=r[5],
                pid_start=r[6],
                own_group=bool(r[7]),
                token=r[8],
                restarts=r[9],
                restart_due=r[10],
                boot_id=r[11],
                created=r[12],
                detail=r[13],
            )
            for r in rows
        ]

    def put_watch(self, w: WatchRow, request_json: str | None = None) -> None:
        """Store a watch; `request_json`, when given, is w.request already serialised."""
        self.db.execute(
            "INSERT OR REPLACE INTO watches (key, instance, grp, request, state, pid, pid_start,"
            " own_group, token, restarts, restart_due, boot_id, created, detail)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                w.key,
                w.instance,
                w.group,
                request_json if request_json is not None else json.dumps(w.request),
                w.state,
                w.pid,
                w.pid_start,
                int(w.own_group),
                w.token,
                w.restarts,
                w.restart_due,
                w.boot_id,
                w.created,
                w.detail,
            ),
        )

    def delete_watch(self, key: str) -> None:
        self.db.execute("DELETE FROM watches WHERE key=?", (key,))

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # --- faults ---
    def add_fault(self, instance: str, watch: str, ts: float, detail: str) -> None:
        self.db.execute(
            "INSERT INTO faults (instance, watch, ts, detail) VALUES (?,?,?,?)",
            (instance, watch, ts, detail),
        )

    def fault_times(self, instance: str) -> list[float]:
        rows = self.db.execute(
            "SELECT ts FROM faults WHERE instance=? ORDER BY ts", (instance,)
        ).fetchall()
        return [float(r[0]) for r in rows]

    # --- events ---
    def add_event(
        self,
        ts: float,
        kind: str,
        severity: str,
        group: str | None,
        watch: str | None,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> EventRow:
        cur = self.db.execute(
            "INSERT INTO events (ts, kind, severity, grp, watch, message, data)"
            " VALUES (?,?,?,?,?,?,?)",
            (ts, kind, severity, group, watch, message, json.dumps(data) if data else None),
        )
        assert cur.lastrowid is not None
        return EventRow(cur.lastrowid, ts, kind, severity, group, watch, message, data or {})

    def events(
        self, since: float | None = None, after_id: int = 0, limit: int | None = None
    ) -> Iterator[EventRow]:
        sql = "SELECT id, ts, kind, severity, grp, watch, message, data FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        if limit is not None:
            # The newest `limit` events, still printed oldest first.
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id"
            args.append(limit)
        else:
            sql += " ORDER BY id"
        for r in self.db.execute(sql, args):
            yield EventRow(
                r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else {}
            )

    # --- groups ---
    def group_states(self) -> dict[str, tuple[str, str, str | None]]:
        rows = self.db.execute("SELECT name, state, boot_id, detail FROM groups").fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def set_group_state(self, name: str, state: str, boot_id: str, detail: str | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO groups (name, state, boot_id, since, detail)"
            " VALUES (?,?,?,?,?)",
            (name, state, boot_id, time.time(), detail),
        )

    def delete_group(self, name: str) -> None:
        self.db.execute("DELETE FROM groups WHERE name=?", (name,))

    # --- final actions ---
    def add_final_action(
        self,
        requested: str,
        action: str,
        watch: str | None,
        group: str | None,
        drill: bool,
        boot_id: str,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO final_actions (ts, requested, action, watch, grp, drill, boot_id)"
            " VALUES (?,?,?,?,?,?,?)",
            (time.time(), requested, action, watch, group, int(drill), boot_id),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def pending_final_actions(self) -> list[tuple[int, str, str | None, str | None, bool, str]]:
        """Final actions recorded but not marked done: (id, action, watch, group, drill, boot)."""
        rows = self.db.execute(
            "SELECT id, action, watch, grp, drill, boot_id FROM final_actions WHERE done=0"
            " ORDER BY id"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def mark_final_action_done(self, action_id: int) -> None:
        self.db.execute("UPDATE final_actions SET done=1 WHERE id=?", (action_id,))

    def machine_actions_since(self, since: float) -> int:
        """Reboots and panics rearm performed (or drilled) since `since`: the loop guard's count."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM final_actions WHERE ts >= ? AND action IN ('reboot', 'panic')",
            (since,),
        ).fetchone()
        return int(row[0])


def open_store(path: str) -> tuple[Store, str | None]:
    """Open the state database; a corrupt one is set aside (kept for a post-mortem) and a new,
    empty one takes its place. Returns the store and, when that happened, what was wrong."""
    try:
        store = Store(path)
        problem = store.db.execute("PRAGMA quick_check").fetchone()[0]
        if problem == "ok":
            return store, None
        store.close()
    except sqlite3.DatabaseError as e:
        problem = str(e)
    aside = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return Store(path), f"{problem} (the damaged file is kept as {aside})"


class _Transaction:
    """`with store.transaction():` -- all or nothing, committed before the block's effects run."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
