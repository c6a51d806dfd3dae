"""`rearm install` / `rearm uninstall`: the systemd unit that starts the daemon at boot.

The unit text is a pure function of a few parameters (`unit_text`), so every directive is tested
without touching the file system; the rest of this module writes or removes one file and says
which systemctl commands go with it. The command line lives in cli/lifecycle_cmd.py.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rearm.config import write_atomic
from rearm.model import OPERATOR_SHUTDOWN_STATUS
from rearm.validate import ConfigError

UNIT_NAME = "rearm.service"
DEFAULT_UNIT_DIR = "/etc/systemd/system"
WANTED_BY = "multi-user.target"
# Short: while the daemon is down nobody restarts a failed service. Not zero: a daemon that
# cannot start (a broken cluster.toml) then retries every few seconds instead of spinning.
RESTART_SEC = 2
# Stopping the daemon leaves the services running, so a healthy daemon exits at once; one that
# has not exited after this long is hung and gets SIGKILL (also the bound for the watchdog's
# SIGABRT, which TimeoutAbortSec= takes from here).
STOP_TIMEOUT_SEC = 30

Runner = Callable[[Sequence[str]], None]


def watchdog_seconds(heartbeat_timeout: int) -> int:
    """WatchdogSec= for a cluster's heartbeat_timeout: a third of it, at least 1 s.

    Two layers watch for a hung daemon. systemd's watchdog is the gentle one: it aborts the
    daemon and starts a new one, and the services keep running (KillMode=process). The heartbeat
    keeper is the drastic one: after heartbeat_timeout without a beat it takes the heartbeat
    action (reboot, panic). The gentle layer must act first, with time left for the abort,
    RestartSec and the new daemon's start before the keeper would fire: a third of the timeout
    (30 s of the default 90 s) leaves two thirds for that. When systemd's restart cures the
    hang, the keeper sees its pipe close and ends quietly; a daemon that cannot even be killed
    (stuck in the kernel) keeps the pipe open, and then the keeper fires as configured.
    The daemon beats at least twice per watchdog period (daemon/heartbeat.py).
    """
    if heartbeat_timeout < 1:
        raise ConfigError(f"heartbeat_timeout {heartbeat_timeout}: must be at least 1 second")
    return max(1, heartbeat_timeout // 3)


@dataclass(frozen=True)
class UnitParams:
    """What the unit depends on. `home` is REARM_HOME, or None for the default paths."""

    rearm: str  # absolute path of the `rearm` console script
    home: str | None = None
    heartbeat_timeout: int = 90


def _refuse_control_chars(what: str, text: str) -> None:
    # A newline would end the directive and start another: never write one into a unit file.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ConfigError(f"{what} {text!r}: control characters cannot be written into a unit")


def exec_start(program: str) -> str:
    """The ExecStart= value that runs `program daemon`, for systemd to parse back to `program`.

    systemd takes the executable's path literally (no $VARIABLE expansion there) but expands
    %-specifiers in the whole line, so `%` is doubled; a path with blanks is double-quoted.
    It refuses paths with quotes, backslashes or control characters ("special characters") and
    paths that are not normalized, so those are refused here, with a clearer message.
    """
    if not os.path.isabs(program) or os.path.normpath(program) != program:
        raise ConfigError(
            f"the rearm command '{program}' must be an absolute, normalized path "
            "(no '.', '..' or '//')"
        )
    _refuse_control_chars("the rearm command", program)
    if any(ch in program for ch in "\\\"'"):
        raise ConfigError(
            f"the rearm command '{program}': systemd refuses an executable path with quotes "
            "or backslashes; install rearm under another directory"
        )
    path = program.replace("%", "%%")
    if any(ch.isspace() for ch in program):
        path = f'"{path}"'
    return f"{path} daemon"


def environment_assignment(name: str, value: str) -> str:
    """The value of an Environment= line setting `name` to exactly `value`.

    Environment= does not expand $ but does expand %-specifiers and C escapes inside quotes;
    the assignment is always quoted so a value with blanks stays one assignment.
    """
    _refuse_control_chars(name, value)
    escaped = value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{name}={escaped}"'


LIMIT_NOFILE = 65536


def unit_text(params: UnitParams) -> str:
    """The whole rearm.service file for these parameters."""
    if params.home is not None and not os.path.isabs(params.home):
        raise ConfigError(f"REARM_HOME '{params.home}' must be an absolute path")
    watchdog = watchdog_seconds(params.heartbeat_timeout)
    lines = [
        "# Written by 'rearm install'; run it again instead of editing this file (it is",
        "# overwritten). Local additions belong in a drop-in: systemctl edit rearm.service",
        "[Unit]",
        "Description=rearm application recovery daemon",
        # Start scripts bring up services that listen on the management address and mount or
        # reach remote file systems: start once the network is configured.
        "Wants=network-online.target",
        "After=network-online.target remote-fs.target",
        "# Restart=always must never give up: without this, five quick failures would leave",
        "# the unit failed and nothing would watch the services any more.",
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "# READY=1 once the control socket answers, WATCHDOG=1 from the daemon's event loop.",
        "# Only the daemon itself may notify: a watched service that speaks sd_notify must not",
        "# be taken for the daemon.",
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=" + exec_start(params.rearm),
        "ExecReload=/bin/kill -HUP $MAINPID",
    ]
    if params.home is not None:
        lines.append("Environment=" + environment_assignment("REARM_HOME", params.home))
    lines += [
        "# KillMode=process: on stop or restart systemd signals the daemon alone. The services",
        "# it watches run in sessions of their own but live in this unit's cgroup; the default",
        "# (control-group) would kill every one of them whenever the daemon is restarted,",
        "# upgraded or aborted by the watchdog. The next daemon re-adopts them instead.",
        "KillMode=process",
        "Restart=always",
        f"RestartSec={RESTART_SEC}",
        "# 'rearm shutdown' ends the daemon with this status on purpose: not a crash to undo.",
        f"SuccessExitStatus={OPERATOR_SHUTDOWN_STATUS}",
        f"RestartPreventExitStatus={OPERATOR_SHUTDOWN_STATUS}",
        f"# A third of heartbeat_timeout ({params.heartbeat_timeout} s), so that systemd restarts",
        "# a hung daemon before the heartbeat keeper takes the heartbeat action. Run",
        "# 'rearm install' again after changing heartbeat_timeout.",
        f"WatchdogSec={watchdog}",
        f"TimeoutStopSec={STOP_TIMEOUT_SEC}",
        "# The watched services share this cgroup: an OOM kill of one of them is a fault for",
        "# rearm to handle, not a reason for systemd to stop the daemon; and their threads and",
        "# processes count against this unit's task limit, which must not cap them.",
        "OOMPolicy=continue",
        "TasksMax=infinity",
        "# Descriptors: a pidfd per watch, the Manager's connections, logs. The daemon raises its",
        "# soft limit to this at start and keeps a reserve for restarts; the services it starts",
        "# inherit it (a definition's [limits] nofile sets theirs).",
        f"LimitNOFILE={LIMIT_NOFILE}",
        "# No sandboxing (ProtectSystem=, PrivateTmp=, NoNewPrivileges=, CapabilityBoundingSet=,",
        "# SystemCallFilter=...): every such setting is inherited by the services the daemon",
        "# starts, which must run as they would run without rearm. See docs/install.md.",
        "",
        "[Install]",
        f"WantedBy={WANTED_BY}",
        "",
    ]
    return "\n".join(lines)


def _directives(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", ";"))
    ]


def describe_changes(old: str, new: str) -> list[str]:
    """What re-installing changes, as `- old` / `+ new` directive lines (comments ignored)."""
    changes = [
        line
        for line in difflib.ndiff(_directives(old), _directives(new))
        if line.startswith(("- ", "+ "))
    ]
    if not changes and old != new:
        return ["(comments only)"]
    return changes


# --- the console script -----------------------------------------------------------------------


def find_rearm_script() -> str:
    """The installed `rearm` command of this interpreter: its scripts directory (a venv's bin/,
    /usr/local/bin for pip as root), else the directory of the interpreter itself."""
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if not folder:
            continue
        path = os.path.join(os.path.abspath(folder), "rearm")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise ConfigError(
        f"cannot find the 'rearm' command beside this Python ({sys.executable}): "
        "install rearm with pip into this interpreter or venv first"
    )


# --- files and systemctl ----------------------------------------------------------------------


@dataclass(frozen=True)
class InstallResult:
    path: str
    created: bool
    changes: list[str]  # empty when the file was already up to date


def unit_path(unit_dir: str) -> str:
    return os.path.join(unit_dir, UNIT_NAME)


def write_unit(unit_dir: str, text: str) -> InstallResult:
    """Write (or rewrite) the unit file; only when its text differs. Idempotent."""
    path = unit_path(unit_dir)
    try:
        with open(path, encoding="utf-8") as f:
            old: str | None = f.read()
    except FileNotFoundError:
        old = None
    if old == text:
        return InstallResult(path, False, [])
    write_atomic(path, text, 0o644)
    if old is None:
        return InstallResult(path, True, [])
    return InstallResult(path, False, describe_changes(old, text))


def remove_unit(unit_dir: str) -> bool:
    """Remove the unit file; False when there was none."""
    try:
        os.unlink(unit_path(unit_dir))
    except FileNotFoundError:
        return False
    return True


def is_enabled(unit_dir: str) -> bool:
    """Whether `systemctl enable` linked the unit into its target (seen in the file system)."""
    return os.path.lexists(os.path.join(unit_dir, f"{WANTED_BY}.wants", UNIT_NAME))


INSTALL_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("systemctl", "daemon-reload"),
    ("systemctl", "enable", "--now", UNIT_NAME),
)
DISABLE_COMMAND: tuple[str, ...] = ("systemctl", "disable", "--now", UNIT_NAME)
RELOAD_COMMAND: tuple[str, ...] = ("systemctl", "daemon-reload")


def systemd_booted() -> bool:
    """sd_booted(): this machine runs systemd as its init (so systemctl can do anything)."""
    return os.path.isdir("/run/systemd/system")


def run_systemctl(argv: Sequence[str]) -> None:
    """Run one systemctl command; a failure becomes a refusal that quotes systemctl."""
    program = shutil.which(argv[0])
    if program is None:
        raise ConfigError(f"{argv[0]} not found: is this a systemd machine? (--no-systemctl)")
    result = subprocess.run(
        [program, *argv[1:]], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().replace("\n", " ")
        raise ConfigError(f"'{' '.join(argv)}' failed (status {result.returncode}): {detail}")


# --- the two commands -------------------------------------------------------------------------


def _systemctl(
    commands: Sequence[Sequence[str]], runner: Runner | None, out: Callable[[str], None]
) -> None:
    for argv in commands:
        if runner is None:
            out(f"not run (--no-systemctl): {' '.join(argv)}")
        else:
            out(f"running: {' '.join(argv)}")
            runner(argv)


def _need_systemd(runner: Runner | None, booted: Callable[[], bool]) -> None:
    # Checked before anything is written: a half-done install is worse than a clear refusal.
    if runner is not None and not booted():
        raise ConfigError(
            "this machine does not run systemd (/run/systemd/system is missing): nothing "
            "changed; give --no-systemctl to only write the unit file"
        )


def _cannot(what: str, unit_dir: str, e: OSError) -> ConfigError:
    return ConfigError(
        f"cannot {what} {unit_path(unit_dir)}: {e.strerror or e} "
        "(run as root, or give --unit-dir DIR)"
    )


def install(
    params: UnitParams,
    unit_dir: str,
    runner: Runner | None,
    out: Callable[[str], None],
    booted: Callable[[], bool] = systemd_booted,
) -> InstallResult:
    """Write the unit, then `systemctl daemon-reload` and `enable --now` (runner None: say so)."""
    text = unit_text(params)  # refuses bad parameters before anything is touched
    _need_systemd(runner, booted)
    try:
        result = write_unit(unit_dir, text)
    except OSError as e:
        raise _cannot("write", unit_dir, e) from None
    if result.created:
        out(f"installed {result.path}")
    elif result.changes:
        out(f"updated {result.path}:")
        for change in result.changes:
            out(f"    {change}")
    else:
        out(f"{result.path} is up to date")
    watchdog = watchdog_seconds(params.heartbeat_timeout)
    out(
        f"    ExecStart={exec_start(params.rearm)}; WatchdogSec={watchdog} "
        f"(heartbeat_timeout {params.heartbeat_timeout} s)"
        + (f"; REARM_HOME={params.home}" if params.home is not None else "")
    )
    _systemctl(INSTALL_COMMANDS, runner, out)
    if result.changes and runner is not None:
        out(
            "a daemon already running keeps its old settings until "
            "'systemctl restart rearm' (the services it watches keep running)"
        )
    return result


def uninstall(
    unit_dir: str,
    runner: Runner | None,
    out: Callable[[str], None],
    booted: Callable[[], bool] = systemd_booted,
) -> bool:
    """Stop and disable the unit, then remove its file. False when it was not installed."""
    path = unit_path(unit_dir)
    if not os.path.lexists(path):
        out(f"{UNIT_NAME} is not installed (no {path}): nothing to do")
        return False
    _need_systemd(runner, booted)
    _systemctl([DISABLE_COMMAND], runner, out)
    try:
        remove_unit(unit_dir)
    except OSError as e:
        raise _cannot("remove", unit_dir, e) from None
    out(f"removed {path}")
    _systemctl([RELOAD_COMMAND], runner, out)
    if runner is not None:
        # KillMode=process: `disable --now` stopped the daemon alone.
        out(
            "the daemon is stopped and no longer starts at boot; the services it watched "
            "keep running, unwatched"
        )
    return True
