"""The durable truth (SQLite in WAL mode): watches, fault history, events, groups, final actions.

Every decision that must survive a crash is written here before it is acted on. WAL with
synchronous=NORMAL survives a crash of the daemon without losing a committed transaction; the
last few transactions may be lost on power loss, so a final action that takes the machine down
checkpoints with a full sync first (`sync_hard`).

When var/ is full, read-only or failing (SQLite: "database or disk is full", "attempt to write a
readonly database", "disk I/O error"), the daemon's store does not raise: services must keep
running and keep being restarted even though their state cannot be written. A write that fails
-- and every write after it, in order -- is kept in memory (`WriteFailure`, `retry`), and the
daemon retries with a backoff until var/ takes writes again; then everything kept is written in
one transaction, so the database ends exactly as if nothing had failed (bar the oldest events
past BACKLOG_EVENTS). Other users of the store (the keeper, tests) keep the plain behaviour:
the error is raised.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rearm.paths import make_folders
from rearm.policy import Stamp, Time, stamp
from rearm.reboots import MACHINE_ACTIONS, Reboot

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

# Columns added since the first schema: a moment is kept on both clocks (policy.Stamp), the
# boot clock (CLOCK_BOOTTIME) beside the wall time, under the boot id of its row.
COLUMNS = {
    "watches": {"restart_mono": "REAL"},  # boot clock of restart_due, in boot boot_id
    "faults": {"boot_id": "TEXT", "mono": "REAL"},
    "final_actions": {"mono": "REAL"},
}

# Events kept in memory while var/ takes no writes; beyond this the oldest are dropped (they
# were logged to the daemon's log as they happened). Everything else is kept whole: watch and
# group rows collapse to their last write, and faults and final actions are few by nature (at
# most /R + 1 faults per watch within /H hours).
BACKLOG_EVENTS = 100_000
PRUNE_BATCH = 10_000  # rows deleted in one transaction: the loop is not held long


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
    restart_mono: float | None = None

    @property
    def restart_stamp(self) -> Time | None:
        """restart_due on both clocks (a bare wall time in a row from before both were kept)."""
        if self.restart_due is None:
            return None
        if self.restart_mono is None:
            return self.restart_due
        return Stamp(self.restart_due, self.boot_id, self.restart_mono)


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


@dataclass
class WriteFailure:
    """var/ takes no writes: what SQLite said, since when, and what waits to be written."""

    error: str
    since: float  # wall time of the first failed write
    attempts: int = 1  # failed tries, the first write included

    def as_json(self, pending: int, dropped: int) -> dict[str, Any]:
        return {
            "writable": False,
            "error": self.error,
            "since": iso8601(self.since),
            "attempts": self.attempts,
            "pending_writes": pending,
            "dropped_events": dropped,
        }


@dataclass
class _Write:
    """One write statement, kept to be made again when it could not be made in time."""

    sql: str
    args: list[Any]
    row: tuple[str, str] | None = None  # (table, key): only its last write matters
    retry_sql: str | None = None  # an event without its id, when that id was taken meanwhile


# SQLite's primary result codes for trouble with the disk or the file, not with rearm's SQL:
# PERM, BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOLFS, NOTADB.
STORAGE_CODES = frozenset({3, 5, 6, 7, 8, 10, 11, 13, 14, 15, 22, 26})


def storage_failure(e: BaseException) -> bool:
    """An error of the disk or the database file: full, read-only, I/O error, locked, corrupt.
    A bug (no such table, a constraint, a closed connection) is not one and still raises."""
    if not isinstance(e, sqlite3.DatabaseError) or isinstance(e, sqlite3.IntegrityError):
        return False
    code = getattr(e, "sqlite_errorcode", None)
    if code is None:  # not from SQLite's own result code: judge by the class
        return isinstance(e, sqlite3.OperationalError) or type(e) is sqlite3.DatabaseError
    return code & 0xFF in STORAGE_CODES


def iso8601(ts: float) -> str:
    t = time.gmtime(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(ts % 1 * 1000):03d}Z"


class Store:
    def __init__(self, path: str) -> None:
        make_folders(os.path.dirname(path))
        _owner_only(path)
        self.path = path
        # isolation_level=None: we open transactions ourselves, so each one is explicit.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        self._migrate()
        # Write failures: None until tolerate_write_failures(); then kept, not raised.
        self._on_failure: Callable[[WriteFailure], None] | None = None
        self.failure: WriteFailure | None = None
        self._tx: list[_Write] | None = None  # the open transaction's writes
        self._kept: list[_Write] = []  # faults, final actions...: in order
        self._kept_rows: dict[tuple[str, str], _Write] = {}  # a row's last write, by table+key
        self._kept_events: deque[_Write] = deque()
        self.dropped_events = 0
        self._last_ids = {
            table: int(self.db.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])
            for table in ("events", "final_actions")
        }

    def _migrate(self) -> None:
        for table, columns in COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for name, decl in columns.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    def close(self) -> None:
        self.db.close()

    def sync_hard(self) -> None:
        """Before the machine goes down: everything committed reaches the disk."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(FULL)")
        except sqlite3.DatabaseError as e:
            # The machine goes down all the same: a full disk must not keep a reboot from
            # happening. What was committed is in the WAL, which SQLite replays at next open.
            if self._on_failure is None or not storage_failure(e):
                raise
        os.sync()

    # --- write failures (var/ full, read-only, failing) ---
    def tolerate_write_failures(self, on_failure: Callable[[WriteFailure], None]) -> None:
        """From now on a write that fails is kept for `retry` instead of raising; `on_failure`
        is told when writes start failing (once, until `retry` succeeds)."""
        self._on_failure = on_failure

    @property
    def pending_writes(self) -> int:
        return len(self._kept) + len(self._kept_rows) + len(self._kept_events)

    def health(self) -> dict[str, Any]:
        """For `rearm status`: whether state writes work, and if not since when and why."""
        if self.failure is None:
            return {"writable": True}
        return self.failure.as_json(self.pending_writes, self.dropped_events)

    def retry(self) -> bool:
        """Write everything kept since writes began to fail, in one transaction. True when the
        store takes writes again (and holds everything it was given)."""
        if self.failure is None:
            return True
        if self._tx is not None:
            return False  # not from inside a transaction: its writes are not finished yet
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for w in [*self._kept, *self._kept_events, *self._kept_rows.values()]:
                try:
                    self.db.execute(w.sql, w.args)
                except sqlite3.IntegrityError:
                    if w.retry_sql is None:
                        raise
                    # The id went to another writer (the heartbeat keeper) meanwhile.
                    self.db.execute(w.retry_sql, w.args[1:])
            self.db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            self._rollback()
            if not storage_failure(e):
                raise
            self.failure.error = str(e)
            self.failure.attempts += 1
            return False
        self._kept.clear()
        self._kept_rows.clear()
        self._kept_events.clear()
        self.failure = None
        return True

    def _write(self, sql: str, args: list[Any], row: tuple[str, str] | None = None) -> int | None:
        return self._write_one(_Write(sql, args, row))

    def _write_one(self, w: _Write) -> int | None:
        """Make one write now, or keep it for later (see the module's doc). Returns the rowid
        of an insert made now."""
        if self._tx is not None:
            self._tx.append(w)  # kept whole if the transaction cannot commit
        if self.failure is None:
            try:
                return self.db.execute(w.sql, w.args).lastrowid
            except sqlite3.DatabaseError as e:
                if self._on_failure is None or not storage_failure(e):
                    raise
                self._failed(e)
        if self._tx is None:
            self._keep(w)
        return None

    def _keep(self, w: _Write) -> None:
        if w.row is not None:
            self._kept_rows.pop(w.row, None)
            self._kept_rows[w.row] = w
        elif w.retry_sql is not None:  # an event
            if len(self._kept_events) >= BACKLOG_EVENTS:
                self._kept_events.popleft()
                self.dropped_events += 1
            self._kept_events.append(w)
        else:
            self._kept.append(w)

    def _failed(self, e: BaseException) -> None:
        self.failure = WriteFailure(str(e), time.time())
        self.dropped_events = 0
        if self._on_failure is not None:
            self._on_failure(self.failure)

    def _rollback(self) -> None:
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.DatabaseError):
                self.db.execute("ROLLBACK")

    def _next_id(self, table: str, made: int | None) -> int:
        """The id of a row just inserted, or the one it will be written with later."""
        rowid = made if made is not None else self._last_ids[table] + 1
        self._last_ids[table] = max(self._last_ids[table], rowid)
        return rowid

    # --- meta ---
    def get_meta(self, key: str) -> str | None:
        return meta_value(self.db, key)

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value], ("meta", key))

    # --- watches ---
    def watches(self) -> list[WatchRow]:
        rows = self.db.execute(
            "SELECT key, instance, grp, request, state, pid, pid_start, own_group, token,"
            " restarts, restart_due, boot_id, created, detail, restart_mono FROM watches"
            " ORDER BY created"
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
                restart_mono=r[14],
            )
            for r in rows
        ]

    def put_watch(self, w: WatchRow, request_json: str | None = None) -> None:
        """Store a watch; `request_json`, when given, is w.request already serialised."""
        self._write(
            "INSERT OR REPLACE INTO watches (key, instance, grp, request, state, pid, pid_start,"
            " own_group, token, restarts, restart_due, boot_id, created, detail, restart_mono)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
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
                w.restart_mono,
            ],
            ("watches", w.key),
        )

    def delete_watch(self, key: str) -> None:
        self._write("DELETE FROM watches WHERE key=?", [key], ("watches", key))

    def transaction(self) -> _Transaction:
        return _Transaction(self)

    # --- faults ---
    def add_fault(self, instance: str, watch: str, ts: Time, detail: str) -> None:
        t = stamp(ts)
        self._write(
            "INSERT INTO faults (instance, watch, ts, detail, boot_id, mono) VALUES (?,?,?,?,?,?)",
            [instance, watch, t.wall, detail, t.boot or None, t.mono],
        )

    def fault_times(self, instance: str) -> list[Time]:
        """The faults of one armload, oldest first (by insertion: the wall clock may jump)."""
        rows = self.db.execute(
            "SELECT ts, boot_id, mono FROM faults WHERE instance=? ORDER BY id", (instance,)
        ).fetchall()
        return [
            Stamp(float(r[0]), r[1], float(r[2])) if r[1] and r[2] is not None else float(r[0])
            for r in rows
        ]

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
        w = _Write(
            "INSERT INTO events (id, ts, kind, severity, grp, watch, message, data)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [None, ts, kind, severity, group, watch, message, json.dumps(data) if data else None],
            retry_sql="INSERT INTO events (ts, kind, severity, grp, watch, message, data)"
            " VALUES (?,?,?,?,?,?,?)",
        )
        # Made now: SQLite picks the id. Kept for later: the id it is shown with now.
        w.args[0] = event_id = self._next_id("events", self._write_one(w))
        return EventRow(event_id, ts, kind, severity, group, watch, message, data or {})

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

    def id_before_last(self, count: int) -> int:
        """The id after which the newest `count` events begin (0: after the newest)."""
        if count <= 0:
            row = self.db.execute("SELECT max(id) FROM events").fetchone()
            return int(row[0]) if row and row[0] is not None else 0
        row = self.db.execute(
            "SELECT min(id) FROM (SELECT id FROM events ORDER BY id DESC LIMIT ?)", (count,)
        ).fetchone()
        return int(row[0]) - 1 if row and row[0] is not None else 0

    def events_page(self, after_id: int, since: float | None, count: int) -> list[EventRow]:
        """The `count` oldest events after `after_id` (and from `since`), read whole: a reader
        that pages through the log holds no statement open between pages, so it never keeps
        a WAL checkpoint from running however slowly it goes on."""
        sql = "SELECT id, ts, kind, severity, grp, watch, message, data FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        rows = self.db.execute(sql + " ORDER BY id LIMIT ?", [*args, count]).fetchall()
        return [
            EventRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else {})
            for r in rows
        ]

    # --- retention (rearm.retention; run by daemon/housekeeping.py) ---
    def prune_events(self, before: float, keep: int, batch: int = PRUNE_BATCH) -> int:
        """Delete (at most `batch` of) the events older than `before`, or beyond the newest
        `keep`. Returns how many went; call again while it returns `batch`."""
        newest = self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ? OR id <= ?"
                " ORDER BY id LIMIT ?)",
                (before, int(newest) - keep, batch),
            )
        return max(0, cursor.rowcount)

    def prune_faults(self, windows: dict[str, float], batch: int = PRUNE_BATCH) -> int:
        """Delete the faults no /R /H rule can count any more: those of an armload that is no
        longer a watch, and, for the instances in `windows`, those older than its value (a
        wall time: the caller leaves a margin, the wall clock may step). At most `batch`."""
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM faults WHERE id IN (SELECT id FROM faults WHERE instance NOT IN"
                " (SELECT instance FROM watches) LIMIT ?)",
                (batch,),
            )
            gone = max(0, cursor.rowcount)
            for instance, before in windows.items():
                cursor = self.db.execute(
                    "DELETE FROM faults WHERE instance=? AND ts < ?", (instance, before)
                )
                gone += max(0, cursor.rowcount)
        return gone

    # --- groups ---
    def group_states(self) -> dict[str, tuple[str, str, str | None]]:
        rows = self.db.execute("SELECT name, state, boot_id, detail FROM groups").fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def set_group_state(self, name: str, state: str, boot_id: str, detail: str | None) -> None:
        self._write(
            "INSERT OR REPLACE INTO groups (name, state, boot_id, since, detail)"
            " VALUES (?,?,?,?,?)",
            [name, state, boot_id, time.time(), detail],
            ("groups", name),
        )

    def delete_group(self, name: str) -> None:
        self._write("DELETE FROM groups WHERE name=?", [name], ("groups", name))

    # --- final actions ---
    def add_final_action(
        self,
        requested: str,
        action: str,
        watch: str | None,
        group: str | None,
        drill: bool,
        boot_id: str,
        when: Time | None = None,
    ) -> int:
        """Record a final action taken `when` (default: now, by the wall clock alone)."""
        t = stamp(time.time() if when is None else when)
        mono = t.mono if t.boot == boot_id else None
        w = _Write(
            "INSERT INTO final_actions (id, ts, requested, action, watch, grp, drill, boot_id,"
            " mono) VALUES (?,?,?,?,?,?,?,?,?)",
            [None, t.wall, requested, action, watch, group, int(drill), boot_id, mono],
        )
        w.args[0] = action_id = self._next_id("final_actions", self._write_one(w))
        return action_id

    def pending_final_actions(self) -> list[tuple[int, str, str | None, str | None, bool, str]]:
        """Final actions recorded but not marked done: (id, action, watch, group, drill, boot)."""
        rows = self.db.execute(
            "SELECT id, action, watch, grp, drill, boot_id FROM final_actions WHERE done=0"
            " ORDER BY id"
        ).fetchall()
        return [(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def mark_final_action_done(self, action_id: int) -> None:
        self._write("UPDATE final_actions SET done=1 WHERE id=?", [action_id])

    def reboot_rows(self) -> list[Reboot]:
        return reboot_rows(self.db)

    def last_final_action_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM final_actions").fetchone()[0])

    def machine_action_times(self) -> list[Time]:
        """When each reboot and panic was performed (or drilled), on both clocks where known:
        the reboot-loop guard counts those within its window (policy.within)."""
        rows = self.db.execute(
            "SELECT ts, boot_id, mono FROM final_actions WHERE action IN ('reboot', 'panic')"
            " ORDER BY id"
        ).fetchall()
        return [
            Stamp(float(r[0]), r[1], float(r[2])) if r[2] is not None else float(r[0]) for r in rows
        ]


def reboot_rows(db: sqlite3.Connection) -> list[Reboot]:
    """Every reboot and panic recorded, oldest first (what rearm.reboots counts)."""
    rows = db.execute(
        "SELECT id, ts, boot_id, mono, action, requested, watch, grp, drill"
        " FROM final_actions WHERE action IN (?, ?) ORDER BY id",
        MACHINE_ACTIONS,
    ).fetchall()
    return [
        Reboot(
            int(r[0]),
            Stamp(float(r[1]), r[2], float(r[3])) if r[3] is not None else float(r[1]),
            r[4],
            r[5],
            r[6],
            r[7],
            bool(r[8]),
        )
        for r in rows
    ]


def meta_value(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def open_read_only(path: str) -> sqlite3.Connection:
    """The state database for reading only, with no daemon running (`rearm log`, `rearm
    reboots`, `rearm bundle`): nothing is created, migrated or written. FileNotFoundError
    when there is none."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    # A database closed cleanly has no write-ahead log: everything is in the file, which is
    # then read as immutable (no -shm or -wal is created beside it). One with a log (a daemon
    # killed, or running) is read through the log, as SQLite must.
    immutable = "&immutable=1" if not os.path.exists(path + "-wal") else ""
    return sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro{immutable}", uri=True)


def _owner_only(path: str) -> None:
    """The database and its -wal and -shm files are 0600 before SQLite opens them: they hold
    every armload request with its environment (a service's DB_PASSWORD, spawn tokens). SQLite
    creates -wal and -shm with the mode of the database file, so a new one is made 0600 first,
    whatever the umask, and files of an older rearm are narrowed."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):  # absent, or a read-only var/: the daemon starts
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)


class StoreUnavailable(Exception):
    """The state database cannot be opened for a reason that is not its content (the disk is
    full, read-only, failing; permissions). Nothing is set aside: the file may well be fine."""


# SQLite's primary result codes that mean the file's content is damaged (not the disk's state).
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26


def open_store(path: str) -> tuple[Store, str | None]:
    """Open the state database; a corrupt one is set aside (kept for a post-mortem) and a new,
    empty one takes its place. Returns the store and, when that happened, what was wrong.

    Only damage sets the file aside: a full or read-only disk, an I/O error or a lock raises
    StoreUnavailable instead -- setting a healthy database aside would lose every counter.
    """
    try:
        store = Store(path)
        problem = store.db.execute("PRAGMA quick_check").fetchone()[0]
        if problem == "ok":
            return store, None
        store.close()
    except sqlite3.DatabaseError as e:
        code = getattr(e, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise StoreUnavailable(f"cannot open the state database {path}: {e}") from None
        problem = str(e)
    except OSError as e:
        raise StoreUnavailable(f"cannot open the state database {path}: {e}") from None
    aside = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, aside + suffix)
    return Store(path), f"{problem} (the damaged file is kept as {aside})"


class _Transaction:
    """`with store.transaction():` -- all or nothing, committed before the block's effects run.

    When the store tolerates write failures, a transaction that cannot be committed is kept
    whole for `Store.retry` (still all or nothing) and the block's effects run all the same.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> None:
        s = self.store
        s._tx = []
        if s.failure is None:
            try:
                s.db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as e:
                if s._on_failure is None or not storage_failure(e):
                    s._tx = None
                    raise
                s._failed(e)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        s = self.store
        writes, s._tx = s._tx or [], None
        if exc_type is not None:
            s._rollback()  # the block did not finish: none of it happened
            return
        if s.failure is None:
            try:
                s.db.execute("COMMIT")
                return
            except sqlite3.DatabaseError as e:
                if s._on_failure is None or not storage_failure(e):
                    s._rollback()
                    raise
                s._failed(e)
        s._rollback()
        for w in writes:
            s._keep(w)
