"""The Prometheus exposition of one scrape of /metrics (see metrics.py for the series)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from rearm.web.metrics import GROUP_STATES, WATCH_STATES, EventCounts

if TYPE_CHECKING:
    from rearm.alerts.dispatch import SinkCounters


ALL_PARTS = ("daemon", "watches", "groups", "events", "alerts")


def render(
    status: dict[str, Any],
    alert_counters: Sequence[SinkCounters],
    uptime: float,
    events: EventCounts | None,
    parts: Sequence[str] = ALL_PARTS,
) -> bytes:
    """The exposition of `parts` (each a group of metric families; see _Snapshot.collect)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(status, alert_counters, uptime, events, parts))
    return generate_latest(registry)


class _Snapshot:
    """One scrape's view, handed to prometheus_client as a collector."""

    def __init__(
        self,
        status: dict[str, Any],
        alerts: Sequence[SinkCounters],
        uptime: float,
        events: EventCounts | None,
        parts: Sequence[str] = ALL_PARTS,
    ) -> None:
        self.status = status
        self.alerts = alerts
        self.uptime = uptime
        self.events = events
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        if "daemon" in self.parts:
            yield from self._daemon()
        if "watches" in self.parts:
            yield from self._watches()
        if "groups" in self.parts:
            yield from self._groups()
        if "events" in self.parts and self.events is not None:
            yield from self._events(self.events)
        if "alerts" in self.parts:
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
