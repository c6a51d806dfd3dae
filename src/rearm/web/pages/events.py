"""GET /events?kind=&group=&watch=&severity=&q=&limit=: the event log, filtered, live."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from rearm.config import group_names
from rearm.web import eventlog
from rearm.web.context import manager_of
from rearm.web.render import page
from rearm.web.views import events_context

routes = web.RouteTableDef()


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    f = eventlog.EventFilter.from_query(dict(request.query))
    query = {**f.as_query(), "limit": str(f.limit)}
    return page(
        request,
        "events.html",
        live_url="/live?" + urlencode({"view": "events", **query}),
        kinds=eventlog.kinds(manager.daemon.store.db),
        groups=group_names(manager.daemon.home),
        severities=eventlog.SEVERITIES,
        **events_context(manager, f),
    )
