"""The store when var/ takes no writes (full, read-only, failing): nothing raises, what could not
be written is kept in order, and `retry` leaves the database exactly as if nothing had failed.

The failures are injected between the store and SQLite (the errors SQLite raises for a full or
read-only disk); tests/integration/test_disk_full.py does the same on real filesystems.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rearm import store as store_module
from rearm.policy import Stamp
from rearm.store import Store, StoreUnavailable, WatchRow, WriteFailure, open_store

FULL = "database or disk is full"
READ_ONLY = "attempt to write a readonly database"
IO_ERROR = "disk I/O error"
# What SQLite sets on the exceptions it raises (primary result codes).
CODES = {
    FULL: (13, "SQLITE_FULL"),
    READ_ONLY: (8, "SQLITE_READONLY"),
    IO_ERROR: (10, "SQLITE_IOERR"),
}
READS = ("SELECT", "PRAGMA", "ROLLBACK")


def sqlite_error(message: str) -> sqlite3.OperationalError:
    e = sqlite3.OperationalError(message)
    e.sqlite_errorcode, e.sqlite_errorname = CODES[message]
    return e


class Disk:
    """Between the store and its connection: makes writes fail like a full or read-only disk.

    `fail_on="write"`: every write statement fails (and BEGIN IMMEDIATE, which takes the write
    lock); `fail_on="commit"`: statements work, the COMMIT fails (WAL frames are written then).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.error: str | None = None
        self.fail_on = "write"

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        if self.error is not None and not sql.lstrip().upper().startswith(READS):
            verb = sql.lstrip().upper().split()[0]
            if self.fail_on == "write" or verb == "COMMIT":
                raise sqlite_error(self.error)
        return self.db.execute(sql, args)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def close(self) -> None:
        self.db.close()


def tolerant(path: Path) -> tuple[Store, Disk, list[WriteFailure]]:
    s = Store(str(path))
    disk = Disk(s.db)
    s.db = disk  # type: ignore[assignment]
    reported: list[WriteFailure] = []
    s.tolerate_write_failures(reported.append)
    return s, disk, reported


def row(key: str, state: str = "running", restarts: int = 0, pid: int | None = 100) -> WatchRow:
    return WatchRow(
        key=key,
        instance=f"inst-{key}",
        group="g",
        request={"watch_id": key},
        state=state,
        pid=pid,
        pid_start=12345,
        own_group=True,
        token="t",
        restarts=restarts,
        restart_due=None,
        boot_id="boot",
        created=1.0,
        detail=None,
    )


def dump(s: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table, minus the columns stamped with the time of the write itself."""
    db = s.db
    return {
        "watches": db.execute("SELECT * FROM watches ORDER BY key").fetchall(),
        "faults": db.execute("SELECT * FROM faults ORDER BY id").fetchall(),
        "events": db.execute("SELECT * FROM events ORDER BY id").fetchall(),
        "groups": db.execute("SELECT name, state, boot_id, detail FROM groups").fetchall(),
        "final_actions": db.execute(
            "SELECT id, requested, action, watch, grp, drill, boot_id, done, mono"
            " FROM final_actions ORDER BY id"
        ).fetchall(),
        "meta": db.execute("SELECT * FROM meta ORDER BY key").fetchall(),
    }


# --- the plain behaviour is kept for other users -----------------------------------------


def test_without_tolerance_a_failing_write_raises(tmp_path: Path) -> None:
    s = Store(str(tmp_path / "state.db"))
    disk = Disk(s.db)
    s.db = disk  # type: ignore[assignment]
    disk.error = FULL
    with pytest.raises(sqlite3.OperationalError, match="full"), s.transaction():
        s.put_watch(row("A"))
    assert s.failure is None


def test_bugs_still_raise(tmp_path: Path) -> None:
    s, _, _ = tolerant(tmp_path / "state.db")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        s._write("INSERT INTO nowhere VALUES (?)", [1])
    assert s.failure is None  # a bug is not a full disk


# --- a failure ------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_on", ["write", "commit"])
def test_a_failed_transaction_is_kept_whole_and_reported_once(tmp_path: Path, fail_on: str) -> None:
    s, disk, reported = tolerant(tmp_path / "state.db")
    with s.transaction():
        s.put_watch(row("A"))
    disk.error, disk.fail_on = FULL, fail_on
    with s.transaction():  # does not raise
        s.add_fault("inst-A", "A", Stamp(10.0, "boot", 5.0), "killed by SIGKILL")
        s.put_watch(row("A", state="restarting", restarts=1, pid=None))
        event = s.add_event(10.0, "fault", "warning", "g", "A", "A ended")
    with s.transaction():
        s.put_watch(row("A", restarts=1, pid=200))
    assert len(reported) == 1 and reported[0].error == FULL
    assert s.health()["writable"] is False and s.health()["error"] == FULL
    assert s.pending_writes == 3  # the fault, the event, and watch A's last row
    # Nothing of it reached the database...
    assert s.db.execute("SELECT restarts, pid FROM watches").fetchall() == [(0, 100)]
    assert s.fault_times("inst-A") == []
    # ...until the disk takes writes again.
    assert not s.retry()
    assert s.failure is not None and s.failure.attempts == 2
    disk.error = None
    assert s.retry()
    assert s.failure is None and s.pending_writes == 0 and s.health() == {"writable": True}
    assert s.db.execute("SELECT restarts, pid FROM watches").fetchall() == [(1, 200)]
    assert s.fault_times("inst-A") == [Stamp(10.0, "boot", 5.0)]
    # The event has the id it was shown with during the outage.
    assert [e.id for e in s.events()] == [event.id]


def test_a_block_that_raises_still_rolls_back_and_keeps_nothing(tmp_path: Path) -> None:
    s, disk, _ = tolerant(tmp_path / "state.db")
    disk.error = READ_ONLY
    with pytest.raises(KeyError), s.transaction():
        s.put_watch(row("A"))
        raise KeyError("a bug in the block")
    assert s.pending_writes == 0


def test_writes_outside_a_transaction_are_kept_too(tmp_path: Path) -> None:
    s, disk, reported = tolerant(tmp_path / "state.db")
    disk.error = READ_ONLY
    first = s.add_event(1.0, "a", "info", None, None, "one")
    second = s.add_event(2.0, "b", "info", None, None, "two")
    assert second.id == first.id + 1
    assert len(reported) == 1
    disk.error = None
    assert s.retry()
    assert [(e.id, e.kind) for e in s.events()] == [(first.id, "a"), (second.id, "b")]


def test_a_deleted_watch_stays_deleted(tmp_path: Path) -> None:
    s, disk, _ = tolerant(tmp_path / "state.db")
    with s.transaction():
        s.put_watch(row("A"))
        s.put_watch(row("B"))
    disk.error = FULL
    with s.transaction():
        s.delete_watch("A")
    with s.transaction():
        s.put_watch(row("B", restarts=3))
        s.put_watch(row("C"))
    disk.error = None
    assert s.retry()
    assert [(w.key, w.restarts) for w in s.watches()] == [("B", 3), ("C", 0)]


def test_final_actions_keep_their_ids(tmp_path: Path) -> None:
    s, disk, _ = tolerant(tmp_path / "state.db")
    disk.error = FULL
    with s.transaction():
        action_id = s.add_final_action(
            "reboot", "reboot", "A", "g", True, "boot", Stamp(1.0, "boot", 42.0)
        )
    with s.transaction():
        s.mark_final_action_done(action_id)
    disk.error = None
    assert s.retry()
    assert s.pending_final_actions() == []
    (when,) = s.machine_action_times()
    assert isinstance(when, Stamp) and (when.boot, when.mono) == ("boot", 42.0)


def test_an_event_id_taken_meanwhile_by_another_writer(tmp_path: Path) -> None:
    s, disk, _ = tolerant(tmp_path / "state.db")
    disk.error = FULL
    mine = s.add_event(1.0, "fault", "warning", None, "A", "mine")
    # The heartbeat keeper writes to the same database with a connection of its own.
    other = Store(str(tmp_path / "state.db"))
    with other.transaction():
        theirs = other.add_event(2.0, "heartbeat_timeout", "critical", None, None, "theirs")
    assert theirs.id == mine.id
    disk.error = None
    assert s.retry()
    assert sorted(e.message for e in s.events()) == ["mine", "theirs"]


def test_the_oldest_events_are_dropped_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BACKLOG_EVENTS", 3)
    s, disk, _ = tolerant(tmp_path / "state.db")
    disk.error = FULL
    with s.transaction():
        s.add_fault("i", "A", 1.0, "one")  # faults are never dropped
    for n in range(5):
        s.add_event(float(n), "fault", "warning", None, None, f"event {n}")
    assert s.dropped_events == 2 and s.health()["dropped_events"] == 2
    disk.error = None
    assert s.retry()
    assert [e.message for e in s.events()] == ["event 2", "event 3", "event 4"]
    assert s.fault_times("i") == [1.0]


def test_sync_hard_does_not_keep_the_machine_from_going_down(tmp_path: Path) -> None:
    s, disk, _ = tolerant(tmp_path / "state.db")
    disk.error = IO_ERROR
    disk.fail_on = "write"
    disk.execute = lambda *a: (_ for _ in ()).throw(sqlite_error(IO_ERROR))  # type: ignore[method-assign]
    s.sync_hard()  # does not raise


# --- the end state equals a store that never failed -----------------------------------------

op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from("ABC"), st.integers(0, 9)),
    st.tuples(st.just("delete"), st.sampled_from("ABC"), st.just(0)),
    st.tuples(st.just("fault"), st.sampled_from("ABC"), st.integers(0, 9)),
    st.tuples(st.just("event"), st.sampled_from("ABC"), st.integers(0, 9)),
    st.tuples(st.just("group"), st.sampled_from("GH"), st.integers(0, 3)),
    st.tuples(st.just("action"), st.sampled_from("ABC"), st.integers(0, 1)),
    st.tuples(st.just("disk"), st.sampled_from(["ok", FULL, READ_ONLY, IO_ERROR]), st.booleans()),
    st.tuples(st.just("retry"), st.just(""), st.just(0)),
)


def apply(s: Store, ops: list[tuple[str, str, Any]], disk: Disk | None) -> None:
    for what, key, n in ops:
        if what == "disk":
            if disk is not None:
                disk.error = None if key == "ok" else key
                disk.fail_on = "commit" if n else "write"
        elif what == "retry":
            s.retry()
        else:
            with s.transaction():
                if what == "put":
                    s.put_watch(row(key, restarts=n))
                elif what == "delete":
                    s.delete_watch(key)
                elif what == "fault":
                    s.add_fault(f"inst-{key}", key, Stamp(float(n), "boot", float(n)), "x")
                    s.add_event(float(n), "fault", "warning", None, key, f"fault {n}")
                elif what == "group":
                    s.set_group_state(key, ["online", "offline", "error", "starting"][n], "b", None)
                elif what == "action":
                    action_id = s.add_final_action(
                        "none", "none", key, None, True, "b", Stamp(1.0, "b", 1.0)
                    )
                    if n:
                        s.mark_final_action_done(action_id)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, max_size=40))
def test_after_retry_the_database_is_as_if_nothing_failed(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str, Any]]
) -> None:
    folder = tmp_path_factory.mktemp("db")
    failing, disk, _ = tolerant(folder / "failing.db")
    reference = Store(str(folder / "reference.db"))
    apply(failing, ops, disk)
    apply(reference, ops, None)
    disk.error = None
    assert failing.retry()
    assert dump(failing) == dump(reference)


# --- opening ---------------------------------------------------------------------------------


def test_a_database_that_cannot_be_opened_is_not_set_aside(tmp_path: Path) -> None:
    # Not damage (a directory where the file should be: SQLite cannot open it): the file must
    # stay where it is -- setting a healthy database aside on a full disk would lose the state.
    path = tmp_path / "state.db"
    path.mkdir()
    with pytest.raises(StoreUnavailable, match="cannot open the state database"):
        open_store(str(path))
    assert path.is_dir() and not list(tmp_path.glob("state.db.corrupt-*"))


def test_a_corrupt_database_is_still_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    s, problem = open_store(str(path))
    assert problem is not None and "kept as" in problem
    assert list(tmp_path.glob("state.db.corrupt-*"))
    s.close()


def test_old_databases_get_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE faults (id INTEGER PRIMARY KEY, instance TEXT NOT NULL, watch TEXT NOT NULL,"
        " ts REAL NOT NULL, detail TEXT NOT NULL);"
        "INSERT INTO faults (instance, watch, ts, detail) VALUES ('i', 'A', 123.0, 'old');"
    )
    db.close()
    s = Store(str(path))
    assert s.fault_times("i") == [123.0]  # a bare wall time: its boot is unknown
    s.add_fault("i", "A", Stamp(124.0, "boot", 7.0), "new")
    assert s.fault_times("i") == [123.0, Stamp(124.0, "boot", 7.0)]
