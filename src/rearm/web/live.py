"""GET /live?view=tree|group|events&...: the page's live updates, as server-sent events.

Driven by the daemon's event bus, never by a timer: the stream subscribes to the bus, and
after each burst of events renders the page's fragments again and sends those that changed
(`event: fragment`, data {"id": ..., "html": ...}). Right after connecting it sends them all,
so nothing that happened between the page's rendering and the connection is missed, and a
reconnection (EventSource does it by itself) brings the page up to date.

A comment line every KEEPALIVE seconds finds clients that went away (the only way to see a
closed connection is to write to it) and keeps proxies from timing the stream out. When the
session ends, the stream says `event: logout` and closes.

Each stream renders pages after every burst of events, so streams are bounded: LIVE_PER_USER
for one Manager user, LIVE_TOTAL in all (context.py; more get 429); a client that does not take
what is sent within SLOW_READER seconds is dropped. Three hundred streams of one read-only user
made a 1 s restart take 7.7 s and the daemon's memory grow from 53 to 307 MB before these
bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web

from rearm.daemon.bus import Subscription
from rearm.web.context import LIVE_PER_USER, LIVE_TOTAL, Manager, manager_of, session_of
from rearm.web.views import VIEWS, fragments

KEEPALIVE = 25.0
SLOW_READER = 10.0


class _Dropped(Exception):
    """The client did not take a write within SLOW_READER seconds."""


async def _send(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    try:
        await asyncio.wait_for(response.write(data), SLOW_READER)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()  # what is buffered for it is dropped with it
        raise _Dropped from None


async def _next_event(sub: Subscription, manager: Manager) -> bool | None:
    """True when an event came (and drained the rest of the burst), False when the server
    closes, None when KEEPALIVE passed without one."""
    getter = asyncio.ensure_future(sub.queue.get())
    closer = asyncio.ensure_future(manager.closing.wait())
    try:
        done, _ = await asyncio.wait(
            {getter, closer}, timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (getter, closer):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if closer in done:
        return False
    if getter not in done:
        return None
    while not sub.queue.empty():  # one render for a burst (a fault, its restart, the start)
        sub.queue.get_nowait()
    return True


def _message(event: str, data: object) -> bytes:
    # json.dumps escapes newlines: the data is always one line, as SSE needs.
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def live(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    session = session_of(request)
    params = {k: v for k, v in request.query.items() if isinstance(v, str)}
    view = params.pop("view", "")
    if view not in VIEWS:
        raise web.HTTPBadRequest(text=f"view must be one of {', '.join(VIEWS)}")
    if fragments(manager, session, view, params) is None:
        raise web.HTTPNotFound(text="nothing to show for this view")
    refusal = manager.live_streams.take(
        session.user,
        key_full=f"too many live pages: user {session.user} has {LIVE_PER_USER} open",
        all_full=f"too many live pages: {LIVE_TOTAL} are open",
    )
    if refusal is not None:
        raise web.HTTPTooManyRequests(text=refusal, headers={"Retry-After": "30"})
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    sub = manager.daemon.bus.subscribe()  # before the first render: no event falls between
    sent: dict[str, str] = {}
    try:
        await response.prepare(request)
        await _send(request, response, b"retry: 2000\n\n")
        while True:
            if manager.session_of(request) is not session:
                await _send(request, response, _message("logout", {}))
                break
            current = fragments(manager, session, view, params)
            if current is None:  # the group was deleted
                await _send(request, response, _message("gone", {}))
                break
            for fragment_id, html in current.items():
                if sent.get(fragment_id) != html:
                    message = _message("fragment", {"id": fragment_id, "html": html})
                    await _send(request, response, message)
                    sent[fragment_id] = html
            while (came := await _next_event(sub, manager)) is None:
                await _send(request, response, b": keepalive\n\n")
            if came is False:
                break
    except ConnectionError:
        pass  # the browser went away (page closed or reloaded)
    except _Dropped:
        manager.lines.log(
            "slow",
            logging.WARNING,
            "Manager: dropped a live stream of %s (reads too slowly)",
            session.user,
        )
    finally:
        manager.daemon.bus.unsubscribe(sub)
        manager.live_streams.release(session.user)
    return response
