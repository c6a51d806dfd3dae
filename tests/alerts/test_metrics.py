"""/metrics: rendered from a status dict and the alert counters, parsed back with
prometheus_client's own parser, and served by the aiohttp app."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from rearm.alerts import SinkCounters
from rearm.web.metrics import EventCounts, metrics_app, render_metrics

from .helpers import event


def _watch(watch_id: str, state: str, restarts: int = 0, faults: int = 0) -> dict[str, Any]:
    return {
        "id": watch_id,
        "target": "/bin/sleep",
        "kind": "application",
        "state": state,
        "pid": 42,
        "restarts": restarts,
        "faults_in_window": faults,
        "retry": 3,
        "hours": 1,
        "interval": 0,
    }


STATUS: dict[str, Any] = {
    "cluster": {"name": "testcl", "server": "test-server", "final_action": "reboot", "drill": True},
    "daemon": {"pid": 1, "version": "0.1.0", "since": time.time() - 100},
    "groups": [
        {"name": "web", "state": "online", "watches": [_watch("WEB1", "running", 2, 1)]},
        {"name": "db", "state": "error", "watches": [_watch("DB", "escalated", 3, 4)]},
    ],
    "watches": [_watch("ADHOC", "running")],
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def _events() -> EventCounts:
    counts = EventCounts()
    for e in (
        event("fault", group="web", watch="WEB1"),
        event("fault", group="web", watch="WEB1"),
        event("restart", "info", group="web", watch="WEB1"),
        event("final_action", "critical", data={"action": "reboot", "drill": True}),
    ):
        counts.offer(e)
    return counts


def test_render_parses_with_prometheus_client() -> None:
    counters = [SinkCounters("noc", "snmp", delivered=5, failed=1, attempts_failed=3, dropped=2)]
    text = render_metrics(STATUS, counters, 100.0, _events()).decode()
    s = _samples(text)
    assert s["rearm_daemon_uptime_seconds", ()] == 100.0
    info = (
        ("cluster", "testcl"),
        ("drill", "true"),
        ("server", "test-server"),
        ("version", "0.1.0"),
    )
    assert s["rearm_daemon_info", info] == 1
    assert s["rearm_watches", (("state", "running"),)] == 2
    assert s["rearm_watches", (("state", "escalated"),)] == 1
    assert s["rearm_watches", (("state", "failed"),)] == 0
    assert s["rearm_watch_state", (("group", "db"), ("state", "escalated"), ("watch", "DB"))] == 1
    assert s["rearm_watch_state", (("group", "db"), ("state", "running"), ("watch", "DB"))] == 0
    assert s["rearm_watch_restarts", (("group", "web"), ("watch", "WEB1"))] == 2
    assert s["rearm_watch_faults_in_window", (("group", ""), ("watch", "ADHOC"))] == 0
    assert s["rearm_groups", (("state", "online"),)] == 1
    assert s["rearm_group_state", (("group", "db"), ("state", "error"))] == 1
    assert s["rearm_faults_total", (("group", "web"), ("watch", "WEB1"))] == 2
    assert s["rearm_restarts_total", (("group", "web"), ("watch", "WEB1"))] == 1
    assert s["rearm_final_actions_total", (("action", "reboot"), ("drill", "true"))] == 1
    assert s["rearm_events_total", (("kind", "fault"), ("severity", "warning"))] == 2
    sink = (("sink", "noc"), ("type", "snmp"))
    assert s["rearm_alert_deliveries_total", sink] == 5
    assert s["rearm_alert_failures_total", sink] == 1
    assert s["rearm_alert_attempt_failures_total", sink] == 3
    assert s["rearm_alert_dropped_total", sink] == 2
    assert s["rearm_alert_queue_length", sink] == 0


def test_render_without_watches_sinks_or_events() -> None:
    status = {"cluster": {"name": "c", "server": "s", "drill": False}, "groups": [], "watches": []}
    s = _samples(render_metrics(status).decode())
    assert s["rearm_watches", (("state", "running"),)] == 0
    assert not any(name.startswith("rearm_alert_") for name, _ in s)


@pytest.mark.asyncio
async def test_the_app_serves_metrics() -> None:
    # The daemon started 100 s before this scrape (not before the module was imported: a long
    # test session would otherwise age it).
    status = {**STATUS, "daemon": {**STATUS["daemon"], "since": time.time() - 100}}
    async with TestClient(TestServer(metrics_app(lambda: status, None, _events()))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        s = _samples(await response.text())
        assert 99 < s["rearm_daemon_uptime_seconds", ()] < 200
        assert s["rearm_faults_total", (("group", "web"), ("watch", "WEB1"))] == 2
        assert (await client.get("/other")).status == 404


@pytest.mark.asyncio
async def test_scrapes_walk_the_watches_only_after_an_event() -> None:
    """Issue 18 (Low): /metrics needs no login, and each scrape made the daemon's whole status
    (O(watches)). Now it is made again only after an event (every change of a watch or group
    is one) or after CACHE_MAX_AGE; the uptime and alert counters stay fresh."""
    calls = 0
    since = time.time() - 100

    def status() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {**STATUS, "daemon": {**STATUS["daemon"], "since": since}}

    counts = EventCounts()
    async with TestClient(TestServer(metrics_app(status, None, counts))) as client:
        for _ in range(50):
            response = await client.get("/metrics")
            assert response.status == 200
        assert calls == 1
        counts.offer(event("fault", group="web", watch="WEB1"))
        s = _samples(await (await client.get("/metrics")).text())
        assert calls == 2
        assert s["rearm_faults_total", (("group", "web"), ("watch", "WEB1"))] == 1
        assert 99 < s["rearm_daemon_uptime_seconds", ()] < 200
        assert s["rearm_watches", (("state", "running"),)] == 2


def test_the_cache_is_made_again_when_it_is_old() -> None:
    from rearm.web.metrics import CACHE_MAX_AGE, MetricsCache

    now = [0.0]
    calls: list[float] = []

    def status() -> dict[str, Any]:
        calls.append(now[0])
        return STATUS

    cache = MetricsCache(status, EventCounts(), clock=lambda: now[0])
    cache.current()
    now[0] = CACHE_MAX_AGE - 0.1
    cache.current()
    now[0] = CACHE_MAX_AGE + 0.1  # faults leave their /H window with no event at all
    cache.current()
    assert calls == [0.0, CACHE_MAX_AGE + 0.1]
