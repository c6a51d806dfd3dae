"""What each live page shows, as data and as the HTML fragments that the live stream pushes.

A page and its live updates render the very same fragment templates from the very same data,
so what arrives over the stream is exactly what a reload would show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rearm.web import eventlog
from rearm.web.render import render
from rearm.web.sessions import Session

if TYPE_CHECKING:
    from rearm.web.context import Manager

RECENT = 8
LAST_FAULTS = 10

# view -> the fragment IDs it shows (element IDs on the page, template fragments/ID.html)
VIEWS: dict[str, tuple[str, ...]] = {
    "tree": ("tree", "recent"),
    "group": ("group-head", "watches", "faults"),
    "events": ("events",),
}


def tree_context(manager: Manager) -> dict[str, Any]:
    status = manager.daemon.status()
    recent = eventlog.query(manager.daemon.store.db, eventlog.EventFilter(limit=RECENT))
    return {"status": status, "recent": recent}


def find_group(status: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((g for g in status["groups"] if g["name"] == name), None)


def group_context(manager: Manager, name: str) -> dict[str, Any] | None:
    status = manager.daemon.status()
    group = find_group(status, name)
    if group is None:
        return None
    faults = eventlog.query(
        manager.daemon.store.db,
        eventlog.EventFilter(kind="fault", group=name, limit=LAST_FAULTS),
    )
    return {"status": status, "group": group, "faults": faults}


def events_context(manager: Manager, f: eventlog.EventFilter) -> dict[str, Any]:
    return {"events": eventlog.query(manager.daemon.store.db, f), "filter": f}


def context_for(manager: Manager, view: str, params: dict[str, str]) -> dict[str, Any] | None:
    if view == "tree":
        return tree_context(manager)
    if view == "group":
        return group_context(manager, params.get("group", ""))
    if view == "events":
        return events_context(manager, eventlog.EventFilter.from_query(params))
    return None


def fragments(
    manager: Manager, session: Session, view: str, params: dict[str, str]
) -> dict[str, str] | None:
    """Each fragment of `view`, rendered; None when the view (or its group) does not exist."""
    context = context_for(manager, view, params)
    if context is None:
        return None
    context["session"] = session
    return {fragment: render(f"fragments/{fragment}.html", **context) for fragment in VIEWS[view]}
