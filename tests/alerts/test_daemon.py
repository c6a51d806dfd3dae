"""Alerts through the real daemon (drill mode): a fault reaches a webhook receiver, a final
action's alert is sent before the action and waits for a dead receiver only boundedly, and
/metrics is served on the management address."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rearm.alerts.dispatch import FLUSH_TIMEOUT
from tests.integration.harness import Cluster, wait_for

from .conftest import BlackHole, HookServer, free_port


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster whose daemon the test starts. Request it after the receivers, so that they
    outlive the daemon's last alerts (daemon_stop) at clean-up."""
    c = Cluster(tmp_path / "home")
    c.create()
    try:
        yield c
    finally:
        c.cleanup()


def _alerts(cluster: Cluster, text: str) -> None:
    with open(cluster.home / "etc" / "cluster.toml", "a") as f:
        f.write(text)


def _webhook(url: str, kinds: str = '["*"]') -> str:
    return (
        f'\n[[alerts]]\ntype = "webhook"\nurl = "{url}"\nsecret = "hook-secret"\nkinds = {kinds}\n'
    )


def test_a_fault_reaches_the_webhook(hook_server: HookServer, offline: Cluster) -> None:
    _alerts(offline, _webhook(hook_server.url, '["daemon_start", "fault", "restart"]'))
    offline.start_daemon()
    offline.write_group("web", "armload WEB1 /R 3 /INT 0 /bin/sleep 1000")
    offline.rearm("group", "start", "web")
    pid = offline.wait_running("WEB1")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for("fault and restart alerts", lambda: {"fault", "restart"} <= set(hook_server.kinds()))
    assert hook_server.bad_signatures == 0
    fault = next(r for r in hook_server.received if r["kind"] == "fault")
    assert (fault["cluster"], fault["server"]) == ("testcl", "test-server")
    assert (fault["group"], fault["watch"], fault["severity"]) == ("web", "WEB1", "warning")
    assert "daemon_start" in hook_server.kinds()
    logged = next(e for e in offline.events("fault"))
    assert fault["id"] == logged["id"] and fault["message"] == logged["message"]


def test_the_final_action_alert_is_sent_before_the_action(
    hook_server: HookServer, offline: Cluster
) -> None:
    _alerts(offline, _webhook(hook_server.url, '["final_action"]'))
    offline.start_daemon()
    offline.ok("armem", "/M", "stopgroup")
    offline.write_group("fa", "armload FA /R 1 /INT 0 /bin/sleep 1000")
    offline.rearm("group", "start", "fa")
    pid = offline.wait_running("FA")["pid"]
    os.kill(pid, signal.SIGKILL)
    pid = offline.wait_running("FA", other_than=pid)["pid"]
    os.kill(pid, signal.SIGKILL)
    stopping = wait_for(
        "the group to stop",
        lambda: [e for e in offline.events("group_stop") if e["group"] == "fa"],
    )[0]
    assert hook_server.kinds() == ["final_action"]
    stop_ts = _epoch(stopping["ts"])
    assert hook_server.arrival[0] <= stop_ts + 0.002  # event times are in milliseconds


def test_a_dead_receiver_holds_a_final_action_only_boundedly(
    offline: Cluster, black_hole: BlackHole
) -> None:
    _alerts(offline, _webhook(f"http://127.0.0.1:{black_hole.tcp_port}/hook", '["*"]'))
    offline.start_daemon()
    offline.ok("armem", "/M", "stopgroup")
    offline.write_group("fa", "armload FA /R 1 /INT 0 /bin/sleep 1000")
    offline.rearm("group", "start", "fa")
    pid = offline.wait_running("FA")["pid"]
    os.kill(pid, signal.SIGKILL)
    pid = offline.wait_running("FA", other_than=pid)["pid"]
    os.kill(pid, signal.SIGKILL)
    action = wait_for("the final action", lambda: offline.events("final_action"))[0]
    stopping = wait_for(
        "the group to stop",
        lambda: [e for e in offline.events("group_stop") if e["group"] == "fa"],
        timeout=FLUSH_TIMEOUT + 15,
    )[0]
    held = _epoch(stopping["ts"]) - _epoch(action["ts"])
    assert held <= FLUSH_TIMEOUT + 1.0, f"the final action waited {held:.1f} s for its alert"
    black_hole.tcp.setblocking(False)
    black_hole.tcp.accept()[0].close()  # the daemon did connect: the sink was in play


def test_metrics_on_the_management_address(hook_server: HookServer, offline: Cluster) -> None:
    port = free_port()
    offline.rearm("cluster", "set", f"manager_port={port}")
    _alerts(offline, _webhook(hook_server.url))
    offline.start_daemon()
    offline.ok("armload", "M1", "/R", "3", "/INT", "0", "/bin/sleep", "1000")
    pid = offline.wait_running("M1")["pid"]
    os.kill(pid, signal.SIGKILL)
    offline.wait_running("M1", other_than=pid)
    wait_for("the alerts", lambda: "restart" in hook_server.kinds())

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }

    samples = wait_for(
        "delivery counted",
        lambda: (
            (s := scrape())
            and s.get(
                ("rearm_alert_deliveries_total", (("sink", "webhook"), ("type", "webhook"))), 0
            )
            >= 3
            and s
        ),
    )
    assert samples["rearm_watches", (("state", "running"),)] == 1
    assert samples["rearm_faults_total", (("group", ""), ("watch", "M1"))] == 1
    assert samples["rearm_daemon_uptime_seconds", ()] > 0


def _epoch(iso: str) -> float:
    import calendar

    seconds, _, millis = iso.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(seconds, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000


def test_a_hung_daemon_is_alerted_by_the_keeper(hook_server: HookServer, offline: Cluster) -> None:
    """The daemon cannot send while hung: the heartbeat keeper sends the alert itself."""
    _alerts(offline, _webhook(hook_server.url, '["heartbeat_timeout"]'))
    offline.rearm("cluster", "set", "heartbeat_timeout=2", "heartbeat_action=reboot")
    offline.start_daemon()
    assert offline.daemon is not None
    offline.daemon.send_signal(signal.SIGSTOP)
    try:
        wait_for(
            "the heartbeat alert", lambda: "heartbeat_timeout" in hook_server.kinds(), timeout=15
        )
    finally:
        offline.daemon.send_signal(signal.SIGCONT)
    alert = next(r for r in hook_server.received if r["kind"] == "heartbeat_timeout")
    assert alert["severity"] == "critical" and "drill" in str(alert["message"])
    assert hook_server.bad_signatures == 0
