"""Prometheus metrics: GET /metrics on the management address.

Rendered on demand from the daemon's status (the dict `rearm status --json` prints), the alert
dispatcher's counters and a count of events since the daemon started. Each scrape builds its own
CollectorRegistry: nothing is registered globally, so tests and a reload never see stale series.

    rearm_daemon_info{version,cluster,server,drill}   1
    rearm_daemon_uptime_seconds
    rearm_watches{state}                              watches per state (every state, 0 included)
    rearm_watch_state{group,watch,state}              1 for the watch's state, 0 for the others
    rearm_watch_restarts{group,watch}                 restarts of the watch (as in status)
    rearm_watch_faults_in_window{group,watch}         faults within its /H window
    rearm_faults_total{group,watch}                   fault events since the daemon started
    rearm_restarts_total{group,watch}                 restart events since the daemon started
    rearm_final_actions_total{action,drill}           final actions since the daemon started
    rearm_groups{state}, rearm_group_state{group,state}
    rearm_events_total{kind,severity}
    rearm_alert_deliveries_total{sink,type}, rearm_alert_failures_total{sink,type},
    rearm_alert_attempt_failures_total{sink,type}, rearm_alert_dropped_total{sink,type},
    rearm_alert_queue_length{sink,type}

A watch outside any group has group="".

Served without login, beside the Manager: Prometheus scrapers cannot log in through a form,
and the page holds only names, states and counts (no scripts, no configuration, no secrets).
Whoever must not see even that keeps the management address on loopback (the default) or
behind a firewall.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from rearm.store import EventRow

if TYPE_CHECKING:
    from aiohttp import web

    from rearm.alerts.dispatch import AlertDispatcher, SinkCounters

WATCH_STATES = ("running", "starting", "restarting", "stopped", "failed", "escalated")
GROUP_STATES = ("online", "offline", "starting", "stopping", "error")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EventCounts:
    """Counts the bus's events for the *_total metrics. Give `offer` every event, like alerts.
    `generation` grows with every event: every change of a watch or a group is an event, so
    what /metrics renders from the status changes only when it grows (see MetricsCache)."""

    def __init__(self) -> None:
        self.generation = 0
        self.faults: Counter[tuple[str, str]] = Counter()
        self.restarts: Counter[tuple[str, str]] = Counter()
        self.final_actions: Counter[tuple[str, str]] = Counter()
        self.events: Counter[tuple[str, str]] = Counter()

    def offer(self, event: EventRow) -> None:
        self.generation += 1
        self.events[event.kind, event.severity] += 1
        where = (event.group or "", event.watch or "")
        if event.kind == "fault":
            self.faults[where] += 1
        elif event.kind == "restart":
            self.restarts[where] += 1
        elif event.kind == "final_action":
            action = str(event.data.get("action", "unknown"))
            drill = "true" if event.data.get("drill") else "false"
            self.final_actions[action, drill] += 1


def render_metrics(
    status: dict[str, Any],
    alert_counters: Iterable[SinkCounters] = (),
    uptime: float = 0.0,
    events: EventCounts | None = None,
) -> bytes:
    """The Prometheus text exposition of one scrape."""
    # prometheus_client is imported at the first scrape, not when the daemon starts (which
    # imports this module for EventCounts): a daemon nobody scrapes does not carry it.
    from rearm.web.exposition import render

    return render(status, list(alert_counters), uptime, events)


# What costs O(watches) is made again only after an event, or when this old: some values change
# with time alone (a fault leaves its /H window without any event).
CACHE_MAX_AGE = 5.0


class MetricsCache:
    """The status and its rendered watch, group and event metrics, made again only when an
    event came (EventCounts.generation) or CACHE_MAX_AGE passed. /metrics needs no login: a
    scraper, or anyone on the management network, must not make each request cost a walk over
    every watch of the daemon."""

    def __init__(
        self,
        get_status: Callable[[], dict[str, Any]],
        events: EventCounts | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.get_status = get_status
        self.events = events
        self.clock = clock
        self._key: int | None = None
        self._at = 0.0
        self._status: dict[str, Any] = {}
        self._body = b""

    def current(self) -> tuple[dict[str, Any], bytes]:
        from rearm.web.exposition import render

        key = self.events.generation if self.events is not None else 0
        now = self.clock()
        if key != self._key or now - self._at >= CACHE_MAX_AGE:
            self._status = self.get_status()
            self._body = render(self._status, [], 0.0, self.events, ("watches", "groups", "events"))
            self._key, self._at = key, now
        return self._status, self._body


def metrics_handler(
    get_status: Callable[[], dict[str, Any]],
    dispatcher: AlertDispatcher | None = None,
    events: EventCounts | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The GET /metrics handler, for an application of its own or the Manager's."""
    from aiohttp import web

    from rearm.web.exposition import render

    cache = MetricsCache(get_status, events)

    async def metrics(request: web.Request) -> web.StreamResponse:
        status, cached = cache.current()
        since = status.get("daemon", {}).get("since")
        uptime = max(0.0, time.time() - since) if isinstance(since, int | float) else 0.0
        counters = dispatcher.counters() if dispatcher is not None else []
        # The daemon's info and uptime and the alert counters are cheap: always fresh.
        body = (
            render(status, [], uptime, None, ("daemon",))
            + cached
            + render(status, counters, 0.0, None, ("alerts",))
        )
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    return metrics


def metrics_app(
    get_status: Callable[[], dict[str, Any]],
    dispatcher: AlertDispatcher | None = None,
    events: EventCounts | None = None,
) -> web.Application:
    """An aiohttp application serving GET /metrics (mount it, or serve it on its own)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(get_status, dispatcher, events))
    return app
