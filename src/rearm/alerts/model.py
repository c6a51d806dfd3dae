"""What an alert is: an event of the log, the cluster it comes from, and the filter that picks it.

Pure: no I/O, nothing from the daemon. Every sink renders the same `Alert`, so the webhook's JSON,
the mail, the syslog line and the trap's varbinds always say the same thing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol

from rearm.store import EventRow

SEVERITIES = ("info", "warning", "error", "critical")
RANK = {name: n for n, name in enumerate(SEVERITIES)}

# What alerts when a sink does not say `kinds`: the events issue 6 lists (fault, restart,
# threshold, final action, group start failure, heartbeat timeout, daemon start and stop), plus
# the three that belong with final actions (the reboot-loop guard changing one, one resumed after
# a daemon crash, a group reported failed to Pacemaker), a license problem, which keeps groups
# from starting, losing systemd, which leaves unit watches blind until it is back, and var/
# taking no state writes (full, read-only), and taking them again.
DEFAULT_KINDS = (
    "daemon_start",
    "daemon_stop",
    "fault",
    "restart",
    "threshold",
    "final_action",
    "final_action_resumed",
    "reboot_loop_guard",
    "group_error",
    "group_failed",
    "license_problem",
    "heartbeat_timeout",
    "systemd_unavailable",
    "systemd_connection_lost",
    "state_rebuilt",
    "state_write_failed",
    "state_write_recovered",
    "config_fault",  # a watch failed by its configuration (not counted toward /R)
    "manager_unavailable",  # the Manager could not listen on its address
    "reboots_cleared",  # the reboot-loop guard counts from zero again
)

# Every kind of event the daemon emits. A sink's `kinds` must name one of these (or be a pattern
# matching one), so that a typo is refused when the file is read instead of silently never
# alerting. tests/alerts/test_kinds.py fails when the daemon emits a kind missing here.
KNOWN_KINDS = frozenset(
    {
        *DEFAULT_KINDS,
        "watch_start",
        "watch_adopt",
        "watch_follow",
        "watch_readopt",
        "watch_ready",
        "watch_stopped",
        "watch_end",
        "watch_lost",
        "stop_command_failed",
        "watch_log_unwritable",
        "group_log_unwritable",
        "group_start",
        "group_online",
        "group_stop",
        "group_offline",
        "group_waiting",
        "group_stop_script_failed",
        "group_deleted",
        "watch_restart",
        "operator_restart",
        "config_reload",
        "config_error",
        # What operators do in the Manager, each naming the user.
        "drill_fault",
        "manager_login",
        "manager_login_failed",
        "manager_logout",
        "manager_group_start",
        "manager_group_stop",
        "manager_group_create",
        "manager_script_edit",
        "manager_template_import",
        "manager_cluster_set",
        "manager_license_register",
        "manager_watch_restart",
    }
)

# The dispatcher's own events. They are logged, never alerted: a failing sink must not feed
# itself (or another failing sink) an endless chain of failure alerts.
ALERT_FAILED = "alert_failed"
ALERT_DROPPED = "alert_dropped"
ALERT_RECOVERED = "alert_recovered"
OWN_KINDS = frozenset({ALERT_FAILED, ALERT_DROPPED, ALERT_RECOVERED})

# What `rearm alert test` sends. Never emitted on the bus, so it has no place in KNOWN_KINDS.
TEST_KIND = "alert_test"


@dataclass(frozen=True)
class EventFilter:
    """Which events a sink gets: kinds (exact names or shell-style patterns) at a severity."""

    kinds: tuple[str, ...] = DEFAULT_KINDS
    min_severity: str = "info"
    _cache: dict[str, bool] = field(default_factory=dict, init=False, compare=False, repr=False)

    def accepts(self, kind: str, severity: str) -> bool:
        if kind in OWN_KINDS:
            return False
        if RANK.get(severity, 0) < RANK[self.min_severity]:
            return False
        hit = self._cache.get(kind)
        if hit is None:
            # offer() runs for every event of the daemon: match each kind's patterns once.
            hit = self._cache[kind] = any(fnmatchcase(kind, p) for p in self.kinds)
        return hit


@dataclass(frozen=True)
class Alert:
    """One event as it leaves the machine."""

    cluster: str
    server: str
    event: EventRow

    @property
    def test(self) -> bool:
        return self.event.kind == TEST_KIND

    @property
    def where(self) -> str:
        """'group/watch', 'group', 'watch' or '' -- the way `rearm log` shows it."""
        return "/".join(x for x in (self.event.group, self.event.watch) if x)

    def summary(self) -> str:
        """One line: what a subject, a syslog message or a pager shows."""
        where = f" {self.where}" if self.where else ""
        return f"{self.event.kind}{where}: {self.event.message}"

    def as_json(self) -> dict[str, Any]:
        """The webhook's body: the event as `rearm log --json` prints it, plus where it is from."""
        return {
            "source": "rearm",
            "cluster": self.cluster,
            "server": self.server,
            **self.event.as_json(),
            "test": self.test,
        }


def make_test_alert(cluster: str, server: str, now: float | None = None) -> Alert:
    """The alert `rearm alert test` sends: id 0, so that no receiver takes it for a real event."""
    event = EventRow(
        id=0,
        ts=time.time() if now is None else now,
        kind=TEST_KIND,
        severity="info",
        group=None,
        watch=None,
        message=f"test alert from rearm on {server} (cluster {cluster})",
        data={},
    )
    return Alert(cluster, server, event)


class DeliveryError(Exception):
    """A sink could not deliver. `permanent`: trying again cannot help (refused, bad request)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class Sink(Protocol):
    """The means to reach one receiver. `open` prepares (imports, engines, sockets) and may be
    skipped: `send` opens when needed. `send` returns what the receiver said."""

    async def open(self) -> None: ...

    async def send(self, alert: Alert) -> str: ...

    async def close(self) -> None: ...


def cut_utf8(text: str, limit: int) -> bytes:
    """`text` in UTF-8, at most `limit` bytes, never cut inside a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode("utf-8", errors="ignore").encode("utf-8")
