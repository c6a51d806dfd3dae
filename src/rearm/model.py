"""Plain data shared by every part of rearm: no I/O, no behaviour beyond small derivations.

Imported by the arm commands too, so it must stay cheap: stdlib dataclasses and enums only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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


# Limits of the arm commands (SPEC §4-5), in one place for the parser, the docs and the API.
WATCH_ID_MAX = 255
RETRY_RANGE = (1, 9)
HOURS_RANGE = (1, 24)
INTERVAL_RANGE = (0, 3600)
WAIT_RANGE = (0, 3600)
KILL_TIMEOUT_RANGE = (0, 3600)
KILL_TIMEOUT_DEFAULT = 40
RESERVED_PREFIX = "REARM_"
# The daemon's exit status after `rearm shutdown`: systemd must not restart it (install.py).
OPERATOR_SHUTDOWN_STATUS = 10


@dataclass(frozen=True)
class RestartPolicy:
    """The /R /H /INT /SCR options of one watch. `retry=None` means: do not restart."""

    retry: int | None = None
    hours: int | None = None
    interval: int = 0
    script: bool = False


@dataclass(frozen=True)
class LoadRequest:
    """A parsed `armload` command line.

    Exactly one of `service` (with /S; lower-cased) and `argv` (an application: PATH then its
    arguments, unchanged) is set. `wait` is None without /WAIT, 0 for no limit, else seconds.
    """

    watch_id: str
    policy: RestartPolicy
    adopt: bool = False
    wait: int | None = None
    service: str | None = None
    argv: tuple[str, ...] | None = None
    user: str | None = None

    @property
    def kind(self) -> TargetKind:
        return TargetKind.SERVICE if self.service is not None else TargetKind.APPLICATION

    @property
    def target(self) -> str:
        if self.service is not None:
            return self.service
        assert self.argv is not None
        return " ".join(self.argv)


@dataclass(frozen=True)
class KillRequest:
    """A parsed `armkill` command line. `timeout` 0 means no limit; `keep_running` is /C."""

    watch_id: str
    keep_running: bool = False
    timeout: int = KILL_TIMEOUT_DEFAULT


@dataclass(frozen=True)
class ModeRequest:
    """A parsed `armem` command line: `mode` None prints the current final action."""

    mode: FinalAction | None = None


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


@dataclass(frozen=True)
class GroupConfig:
    """`etc/groups/NAME/group.toml` (+ start.sh and stop.sh beside it)."""

    name: str
    auto_start: bool = True
    script_timeout: int = 300
    stop_timeout: int = 40
    description: str = ""
    watches: tuple[LoadRequest, ...] = ()


def request_to_dict(req: LoadRequest) -> dict[str, object]:
    """The stored and transmitted form of an armload request (plain JSON types)."""
    return {
        "watch_id": req.watch_id,
        "retry": req.policy.retry,
        "hours": req.policy.hours,
        "interval": req.policy.interval,
        "script": req.policy.script,
        "adopt": req.adopt,
        "wait": req.wait,
        "service": req.service,
        "argv": list(req.argv) if req.argv is not None else None,
        "user": req.user,
    }


def request_from_dict(d: dict[str, object]) -> LoadRequest:
    def opt_int(key: str) -> int | None:
        v = d.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    argv = d.get("argv")
    service = d.get("service")
    user = d.get("user")
    return LoadRequest(
        watch_id=str(d["watch_id"]),
        policy=RestartPolicy(
            retry=opt_int("retry"),
            hours=opt_int("hours"),
            interval=opt_int("interval") or 0,
            script=bool(d.get("script")),
        ),
        adopt=bool(d.get("adopt")),
        wait=opt_int("wait"),
        service=service if isinstance(service, str) else None,
        argv=tuple(str(a) for a in argv) if isinstance(argv, list) else None,
        user=user if isinstance(user, str) else None,
    )
