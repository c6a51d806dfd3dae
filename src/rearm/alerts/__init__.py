"""Alerts: events of the bus sent out as SNMP notifications, mail, webhooks and syslog lines.

The API the daemon and the CLI use:
    load_sinks(home) -> list[SinkConfig]             the [[alerts]] tables of cluster.toml
    AlertDispatcher(sinks, cluster_name, server, emit)
        .offer(event)                                  for every event of the bus; never blocks
        await .start() / await .stop(timeout)
        await .flush(event, timeout) -> bool           a final action waits for its own alert
        await .reconfigure(sinks, cluster_name, server)   after a reload
        .counters() -> list[SinkCounters]              for /metrics
    await send_test(sinks, cluster_name, server) -> list[TestResult]   `rearm alert test`

Importing this package is cheap: the sink libraries (pysnmp, aiohttp, aiosmtplib) are imported
when a sink is first used.
"""

from rearm.alerts.check import TestResult, send_test
from rearm.alerts.config import SinkConfig, load_sinks, sinks_from_table
from rearm.alerts.dispatch import FLUSH_TIMEOUT, AlertDispatcher, SinkCounters
from rearm.alerts.model import DEFAULT_KINDS, KNOWN_KINDS, Alert, EventFilter

__all__ = [
    "DEFAULT_KINDS",
    "FLUSH_TIMEOUT",
    "KNOWN_KINDS",
    "Alert",
    "AlertDispatcher",
    "EventFilter",
    "SinkConfig",
    "SinkCounters",
    "TestResult",
    "load_sinks",
    "send_test",
    "sinks_from_table",
]
