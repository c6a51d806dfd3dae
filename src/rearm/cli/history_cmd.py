"""`rearm log` and `rearm reboots`: what happened, from the daemon or, when none runs, from the
state database itself (opened read-only: nothing is created or written).

Parsing and printing only: the filters are rearm.web.eventlog's (the Manager's event page), the
reboot-loop counter is rearm.reboots'.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from rearm.api.client import DaemonNotRunning, call, stream
from rearm.paths import Home
from rearm.validate import ConfigError


class HistoryError(ConfigError):
    """A refusal: `rearm` prints it as one line, exit 1."""


def _home(args: argparse.Namespace) -> Home:
    return Home.from_env(args.home)


def parse_time(option: str, text: str, now: float | None = None) -> float:
    """An ISO 8601 time, or a duration back from now: 30s, 10m, 2h, 1d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return (time.time() if now is None else now) - int(text[:-1]) * units[text[-1]]
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise HistoryError(
            f"{option} '{text}': give an ISO 8601 time or a duration like 10m, 2h, 1d"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


def _read_only(home: Home) -> sqlite3.Connection:
    from rearm.store import open_read_only

    try:
        return open_read_only(home.state_db)
    except FileNotFoundError:
        raise HistoryError(
            f"the daemon is not running and there is no state database at {home.state_db} "
            "yet: nothing has happened"
        ) from None
    except sqlite3.Error as e:
        raise HistoryError(f"cannot read {home.state_db}: {e}") from None


# --- rearm log --------------------------------------------------------------------------------
def event_line(e: dict[str, Any]) -> str:
    where = "/".join(x for x in (e.get("group"), e.get("watch")) if x)
    return f"{e['ts']}  {e['kind']:<16} {where + '  ' if where else ''}{e['message']}"


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {"limit": args.lines}
    for key in ("kind", "group", "watch"):
        if getattr(args, key):
            payload[key] = getattr(args, key)
    if args.since:
        payload["since"] = parse_time("--since", args.since)
    if args.until:
        payload["until"] = parse_time("--until", args.until)
    return payload


def _events_offline(home: Home, payload: dict[str, Any]) -> list[dict[str, Any]]:
    from rearm.web import eventlog

    chosen = eventlog.EventFilter(
        kind=payload.get("kind", ""),
        group=payload.get("group", ""),
        watch=payload.get("watch", ""),
        since=payload.get("since"),
        until=payload.get("until"),
        limit=payload["limit"],
    )
    db = _read_only(home)
    try:
        return [e.as_json() for e in reversed(eventlog.query(db, chosen))]
    except sqlite3.Error as e:
        raise HistoryError(f"cannot read {home.state_db}: {e}") from None
    finally:
        db.close()


def _follow(home: Home, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    from rearm.web import eventlog

    chosen = eventlog.EventFilter(
        kind=payload.get("kind", ""), group=payload.get("group", ""), watch=payload.get("watch", "")
    )
    since: dict[str, Any] = {k: payload[k] for k in ("since", "limit") if k in payload}
    for event in stream(home.socket, "follow", since):
        if eventlog.matches(chosen, event):
            yield event


def cmd_log(args: argparse.Namespace) -> int:
    home = _home(args)
    payload = _filters(args)

    def show(event: dict[str, Any]) -> None:
        print(json.dumps(event) if args.json else event_line(event), flush=True)

    if args.follow:
        try:
            for event in _follow(home, payload):
                show(event)
        except KeyboardInterrupt:
            return 0
        return 0
    try:
        events = call(home.socket, "events", payload)
    except DaemonNotRunning:
        events = _events_offline(home, payload)
    for event in events:
        show(event)
    return 0


# --- rearm reboots ----------------------------------------------------------------------------
def _reboots_offline(home: Home) -> dict[str, Any]:
    from rearm import policy, reboots
    from rearm.backends.process import boot_id
    from rearm.config import load_cluster
    from rearm.daemon.actions import is_drill
    from rearm.store import iso8601, meta_value, reboot_rows

    cluster = load_cluster(home)
    db = _read_only(home)
    try:
        rows = reboot_rows(db)
        cleared = reboots.parse_cleared(meta_value(db, reboots.CLEARED_KEY))
    except sqlite3.Error as e:
        raise HistoryError(f"cannot read {home.state_db}: {e}") from None
    finally:
        db.close()
    now = policy.Stamp(time.time(), boot_id(), time.clock_gettime(time.CLOCK_BOOTTIME))
    drill = is_drill(cluster)
    listing = reboots.listing(now, rows, cleared[0], drill, cluster.reboot_window)
    return {
        **reboots.summary(now, rows, cleared, drill, cluster.max_reboots, cluster.reboot_window),
        "reboots": [{**r, "ts": iso8601(r["wall"])} for r in listing],
    }


def _clear_offline(home: Home) -> dict[str, Any]:
    """With no daemon: the store is opened as the daemon opens it, for this one write."""
    import os

    from rearm import reboots
    from rearm.store import Store

    if not os.path.exists(home.state_db):
        return {"message": "nothing to clear: there is no state database yet"}
    store = Store(home.state_db)
    try:
        with store.transaction():
            last = store.last_final_action_id()
            store.set_meta(reboots.CLEARED_KEY, f"{last} {time.time()}")
            store.add_event(
                time.time(),
                "reboots_cleared",
                "warning",
                None,
                None,
                "reboot-loop counter cleared with rearm reboots --clear (no daemon running): "
                "the guard counts from zero",
                {"cleared_after": last},
            )
    finally:
        store.close()
    return {"message": "reboot-loop counter cleared: the guard counts from zero"}


def cmd_reboots(args: argparse.Namespace) -> int:
    home = _home(args)
    if args.clear:
        try:
            result = call(home.socket, "reboots_clear")
        except DaemonNotRunning:
            result = _clear_offline(home)
        print(result["message"])
        return 0
    try:
        shown = call(home.socket, "reboots")
    except DaemonNotRunning:
        shown = _reboots_offline(home)
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    mode = shown["mode"]
    print(
        f"reboot-loop guard: {shown['count']} {mode} reboot(s)/panic(s) within the last "
        f"{shown['window']} s, of {shown['max']} allowed"
        + (" -- the next reboot or panic becomes stopgroup" if shown["guard"] else "")
    )
    other = shown["drill_count"] if mode == "real" else shown["real"]
    if other:
        print(f"  ({other} {'drill' if mode == 'real' else 'real'} one(s) counted apart)")
    if shown.get("cleared"):
        print(f"  cleared at {datetime.datetime.fromtimestamp(shown['cleared']).isoformat()}")
    for r in shown["reboots"]:
        kind = "drill " if r["drill"] else ""
        counted = "counted" if r["counted"] else "not counted"
        print(f"  {r['ts']}  {kind}{r['action']:<7} {counted:<12} {r['cause']}")
    if not shown["reboots"]:
        print("  no reboot or panic recorded")
    return 0


# --- parsers ----------------------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("log", help="the event log (also without a running daemon)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--since", metavar="T", help="ISO 8601 time or a duration: 10m, 2h, 1d")
    p.add_argument("--until", metavar="T", help="ISO 8601 time or a duration back from now")
    p.add_argument("--group", metavar="GROUP", help="only events of this group")
    p.add_argument("--watch", metavar="WATCHID", help="only events of this watch")
    p.add_argument("--kind", metavar="KIND", help="only events of this kind, e.g. fault")
    p.add_argument(
        "--lines", "-n", type=int, default=50, metavar="N", help="the last N events (default 50)"
    )
    p.set_defaults(func=cmd_log)

    p = subparsers.add_parser("reboots", help="the reboot-loop counter: show it, or --clear it")
    p.add_argument("--clear", action="store_true", help="set the counter back to zero")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reboots)
