"""Plain data shared by every part of rearm: no I/O, no behaviour beyond small derivations.

The arm commands import only rearm.requests (re-exported here), which imports nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

# The arm commands' requests live in a module without imports, so that armload starts fast;
# for the rest of rearm they are part of the model.
from rearm.requests import (
    FINAL_ACTION_VALUES,
    HOURS_RANGE,
    INTERVAL_RANGE,
    KILL_TIMEOUT_DEFAULT,
    KILL_TIMEOUT_RANGE,
    RESERVED_PREFIX,
    RETRY_RANGE,
    WAIT_RANGE,
    WATCH_ID_MAX,
    KillRequest,
    LoadRequest,
    ModeRequest,
    RestartPolicy,
    request_from_dict,
    request_to_dict,
)

if TYPE_CHECKING:
    from rearm.limits import Limit
    from rearm.monitors.config import MonitorSpec

__all__ = [
    "FINAL_ACTION_VALUES",
    "HOURS_RANGE",
    "INTERVAL_RANGE",
    "KILL_TIMEOUT_DEFAULT",
    "KILL_TIMEOUT_RANGE",
    "RESERVED_PREFIX",
    "RETRY_RANGE",
    "WAIT_RANGE",
    "WATCH_ID_MAX",
    "KillRequest",
    "LoadRequest",
    "ModeRequest",
    "RestartPolicy",
    "request_from_dict",
    "request_to_dict",
]


class FinalAction(enum.StrEnum):
    """What fires when a watch exceeds its threshold (SPEC §6, `armem /M`)."""

    REBOOT = "reboot"
    SHUTDOWN = "shutdown"
    PANIC = "panic"
    STOPGROUP = "stopgroup"
    NONE = "none"

    @property
    def takes_machine_down(self) -> bool:
        return self in (FinalAction.REBOOT, FinalAction.SHUTDOWN, FinalAction.PANIC)


class WatchState(enum.StrEnum):
    """The states a user sees in `rearm status` (SPEC §9), plus `stopping` while armkill runs."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"  # dead, waiting /INT before the restart
    STOPPING = "stopping"  # armkill (or group stop) in progress
    STOPPED = "stopped"  # ended with status 0 and not restarted (no /R)
    FAILED = "failed"  # ended abnormally and not restarted (no /R), or could not start
    ESCALATED = "escalated"  # over the threshold: the final action fired

    @property
    def is_alive(self) -> bool:
        """A live watch owns its ID: armload of the same ID is a duplicate."""
        return self in (
            WatchState.STARTING,
            WatchState.RUNNING,
            WatchState.RESTARTING,
            WatchState.STOPPING,
        )


class GroupState(enum.StrEnum):
    OFFLINE = "offline"
    STARTING = "starting"
    ONLINE = "online"
    STOPPING = "stopping"
    ERROR = "error"


class TargetKind(enum.StrEnum):
    SERVICE = "service"
    APPLICATION = "application"


# The daemon's exit status after `rearm shutdown`: systemd must not restart it (install.py).
OPERATOR_SHUTDOWN_STATUS = 10


def watch_key(watch_id: str) -> str:
    """Watch IDs are case-insensitive: this is the form used to compare and store them."""
    return watch_id.upper()


@dataclass(frozen=True)
class ReadyCheck:
    """How to tell a started service answers: one of a TCP connect, an HTTP GET, a command."""

    tcp: str | None = None
    http: str | None = None
    command: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ServiceDef:
    """`etc/services/NAME.toml` (SPEC §2): what `armload /S NAME` starts."""

    name: str
    command: tuple[str, ...]
    user: str | None = None
    group: str | None = None
    directory: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    pidfile: str | None = None
    stop_signal: str = "TERM"
    stop_command: tuple[str, ...] | None = None
    ready: ReadyCheck | None = None
    limits: tuple[Limit, ...] = ()  # resource limits set (by prlimit) before the command runs
    monitors: tuple[MonitorSpec, ...] = ()  # [[monitors]] over the watch that runs it


class ReturnMode(enum.StrEnum):
    """After a boot, whether auto_start groups come online by themselves (SPEC §8)."""

    AUTO = "auto"
    MANUAL = "manual"


class HeartbeatAction(enum.StrEnum):
    PANIC = "panic"
    REBOOT = "reboot"
    NONE = "none"


@dataclass(frozen=True)
class Cluster:
    """`etc/cluster.toml`. `drill` defaults to True: real final actions need `drill = false`."""

    name: str
    server: str
    ip: str
    interconnect: str | None = None
    final_action: FinalAction = FinalAction.NONE
    drill: bool = True
    return_mode: ReturnMode = ReturnMode.AUTO
    heartbeat_timeout: int = 90
    heartbeat_action: HeartbeatAction = HeartbeatAction.NONE
    max_reboots: int = 3
    reboot_window: int = 3600
    admin_group: str | None = None
    manager_port: int = 8470
    read_access: str = "admin"  # "admin": only admins reach the socket; "everyone": all read
    watchdog_device: str | None = None  # e.g. /dev/watchdog (softdog); None: keeper only
    # Pacemaker decides where groups run (docs/pacemaker.md): no auto_start at boot, and a
    # group-level final action reports the group failed instead (daemon/actions.py).
    pacemaker: bool = False


@dataclass(frozen=True)
class GroupConfig:
    """`etc/groups/NAME/group.toml` (+ start.sh and stop.sh beside it)."""

    name: str
    auto_start: bool = True
    script_timeout: int = 300
    stop_timeout: int = 40
    description: str = ""
    watches: tuple[LoadRequest, ...] = ()
    monitors: tuple[MonitorSpec, ...] = ()  # [[monitors]]: over the group or one of its watches
