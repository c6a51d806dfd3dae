"""Monitors: periodic or continuous checks of a service's health, beyond "its process runs".

    base.py      the protocol: probe(target, deadline) -> Result (OK/WARNING/ERROR/UNKNOWN)
    registry.py  kind name -> parse; one module per kind (exec, tcp, http, postgresql, ...)
    config.py    [[monitors]] tables -> MonitorSpec (pure)
    state.py     one monitor's state machine (pure): normal, warning, error, suspended, offline
    schedule.py  the asyncio scheduler: intervals, deadlines, slots, jitter; events out
    beats.py     heartbeat timing (pure); notify.py: the NOTIFY_SOCKET receiver
    keys.py sql.py secrets.py             reading settings (pure), database logins, passwords
    net.py child.py offload.py procfs.py  the kinds' I/O edges: streams, processes, threads, /proc

Nothing here imports the daemon, the API or the web Manager: the daemon adapts to this
package (it reports targets starting and stopping, and acts on the fault events).
"""

from __future__ import annotations

from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Status, Target
from rearm.monitors.config import MonitorSpec, Recovery, Timing, check_targets, monitors_from
from rearm.monitors.state import Event, Monitor, MonitorState

__all__ = [
    "Event",
    "Monitor",
    "MonitorSpec",
    "MonitorState",
    "Options",
    "Probe",
    "ProbeEnv",
    "Recovery",
    "Result",
    "Status",
    "Target",
    "Timing",
    "check_targets",
    "monitors_from",
]
