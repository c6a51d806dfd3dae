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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rearm.store import EventRow

if TYPE_CHECKING:
    from aiohttp import web

    from rearm.alerts.dispatch import AlertDispatcher, SinkCounters

WATCH_STATES = ("running", "starting", "restarting", "stopped", "failed", "escalated")
GROUP_STATES = ("online", "offline", "starting", "stopping", "error")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EventCounts:
    """Counts the bus's events for the *_total metrics. Give `offer` every event, like alerts."""

    def __init__(self) -> None:
        self.faults: Counter[tuple[str, str]] = Counter()
        self.restarts: Counter[tuple[str, str]] = Counter()
        self.final_actions: Counter[tuple[str, str]] = Counter()
        self.events: Counter[tuple[str, str]] = Counter()

    def offer(self, event: EventRow) -> None:
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


class _Snapshot:
    """One scrape's view, handed to prometheus_client as a collector."""

    def __init__(
        self,
        status: dict[str, Any],
        alerts: Sequence[SinkCounters],
        uptime: float,
        events: EventCounts | None,
    ) -> None:
        self.status = status
        self.alerts = alerts
        self.uptime = uptime
        self.events = events

    def collect(self) -> Iterator[Metric]:
        yield from self._daemon()
        yield from self._watches()
        yield from self._groups()
        if self.events is not None:
            yield from self._events(self.events)
        yield from self._alerts()

    def _daemon(self) -> Iterator[Metric]:
        cluster = self.status.get("cluster", {})
        daemon = self.status.get("daemon", {})
        info = GaugeMetricFamily(
            "rearm_daemon_info",
            "The rearm daemon: version, cluster, server, drill mode.",
            labels=["version", "cluster", "server", "drill"],
        )
        info.add_metric(
            [
                str(daemon.get("version", "")),
                str(cluster.get("name", "")),
                str(cluster.get("server", "")),
                "true" if cluster.get("drill") else "false",
            ],
            1,
        )
        yield info
        yield GaugeMetricFamily(
            "rearm_daemon_uptime_seconds", "Seconds since the daemon started.", value=self.uptime
        )

    def _all_watches(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for group in self.status.get("groups", []):
            for watch in group.get("watches", []):
                yield group["name"], watch
        for watch in self.status.get("watches", []):
            yield "", watch

    def _watches(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("rearm_watches", "Watches per state.", labels=["state"])
        state = GaugeMetricFamily(
            "rearm_watch_state",
            "1 for the state the watch is in, 0 for the others.",
            labels=["group", "watch", "state"],
        )
        restarts = GaugeMetricFamily(
            "rearm_watch_restarts",
            "Restarts of the watch since armload (status 'restarts').",
            labels=["group", "watch"],
        )
        faults = GaugeMetricFamily(
            "rearm_watch_faults_in_window",
            "Faults of the watch within its /H window (status 'faults_in_window').",
            labels=["group", "watch"],
        )
        counts = Counter({s: 0 for s in WATCH_STATES})
        for group, w in self._all_watches():
            counts[w["state"]] += 1
            for s in WATCH_STATES:
                state.add_metric([group, w["id"], s], 1 if w["state"] == s else 0)
            restarts.add_metric([group, w["id"]], w.get("restarts", 0))
            faults.add_metric([group, w["id"]], w.get("faults_in_window", 0))
        for s, n in counts.items():
            by_state.add_metric([s], n)
        yield from (by_state, state, restarts, faults)

    def _groups(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("rearm_groups", "Groups per state.", labels=["state"])
        state = GaugeMetricFamily(
            "rearm_group_state",
            "1 for the state the group is in, 0 for the others.",
            labels=["group", "state"],
        )
        counts = Counter({s: 0 for s in GROUP_STATES})
        for g in self.status.get("groups", []):
            counts[g["state"]] += 1
            for s in GROUP_STATES:
                state.add_metric([g["name"], s], 1 if g["state"] == s else 0)
        for s, n in counts.items():
            by_state.add_metric([s], n)
        yield from (by_state, state)

    def _events(self, e: EventCounts) -> Iterator[Metric]:
        def counter(
            name: str, text: str, labels: list[str], values: Counter[tuple[str, str]]
        ) -> Metric:
            family = CounterMetricFamily(name, text, labels=labels)
            for key, n in sorted(values.items()):
                family.add_metric(list(key), n)
            return family

        yield counter(
            "rearm_faults", "Fault events since the daemon started.", ["group", "watch"], e.faults
        )
        yield counter(
            "rearm_restarts",
            "Restart events since the daemon started.",
            ["group", "watch"],
            e.restarts,
        )
        yield counter(
            "rearm_final_actions",
            "Final actions since the daemon started (drill: recorded, not executed).",
            ["action", "drill"],
            e.final_actions,
        )
        yield counter(
            "rearm_events", "Events since the daemon started.", ["kind", "severity"], e.events
        )

    def _alerts(self) -> Iterator[Metric]:
        labels = ["sink", "type"]
        families: list[
            tuple[CounterMetricFamily | GaugeMetricFamily, Callable[[SinkCounters], float]]
        ] = [
            (
                CounterMetricFamily(
                    "rearm_alert_deliveries", "Alerts a receiver accepted.", labels=labels
                ),
                lambda c: c.delivered,
            ),
            (
                CounterMetricFamily(
                    "rearm_alert_failures", "Alerts given up on after every attempt.", labels=labels
                ),
                lambda c: c.failed,
            ),
            (
                CounterMetricFamily(
                    "rearm_alert_attempt_failures",
                    "Single delivery attempts that failed (retried or not).",
                    labels=labels,
                ),
                lambda c: c.attempts_failed,
            ),
            (
                CounterMetricFamily(
                    "rearm_alert_dropped",
                    "Alerts dropped from a full queue or left unsent at stop.",
                    labels=labels,
                ),
                lambda c: c.dropped,
            ),
            (
                GaugeMetricFamily(
                    "rearm_alert_queue_length", "Alerts waiting or being sent.", labels=labels
                ),
                lambda c: c.queued,
            ),
        ]
        for family, value in families:
            for c in self.alerts:
                family.add_metric([c.name, c.type], value(c))
            yield family


def render_metrics(
    status: dict[str, Any],
    alert_counters: Iterable[SinkCounters] = (),
    uptime: float = 0.0,
    events: EventCounts | None = None,
) -> bytes:
    """The Prometheus text exposition of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(status, list(alert_counters), uptime, events))
    return generate_latest(registry)


def metrics_handler(
    get_status: Callable[[], dict[str, Any]],
    dispatcher: AlertDispatcher | None = None,
    events: EventCounts | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The GET /metrics handler, for an application of its own or the Manager's."""
    from aiohttp import web

    async def metrics(request: web.Request) -> web.StreamResponse:
        status = get_status()
        since = status.get("daemon", {}).get("since")
        uptime = max(0.0, time.time() - since) if isinstance(since, int | float) else 0.0
        counters = dispatcher.counters() if dispatcher is not None else []
        body = render_metrics(status, counters, uptime, events)
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
