"""What an admin can do from the Manager, done in-process on the daemon's own parts.

The same operations the control API and the admin CLI perform: groups start and stop through
`Groups`, configuration is written through rearm.config and then the daemon reloads. Each
change is first recorded as an event of kind manager_* (or drill_fault) naming the user and
the client address, so the event log says who asked for what even when it then fails.
Refusals raise OperatorError with one line for the page.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rearm.api.server import ApiError
from rearm.backends import process
from rearm.config import create_group, load_group, script_path, set_cluster_keys, write_atomic
from rearm.model import GroupState, WatchState, watch_key
from rearm.validate import ConfigError

if TYPE_CHECKING:
    from rearm.daemon.main import Daemon

SCRIPTS = ("start", "stop")
MAX_SCRIPT = 256 * 1024
# The cluster properties the Manager may change; the others (name, addresses, drill, access)
# are changed with `rearm cluster set`, deliberately, at the server.
EDITABLE = {
    "final_action": ("reboot", "shutdown", "panic", "stopgroup", "none"),
    "return_mode": ("auto", "manual"),
    "heartbeat_action": ("panic", "reboot", "none"),
    "heartbeat_timeout": (),
    "max_reboots": (),
    "reboot_window": (),
}
# Values that take the machine down when they fire: the page asks again before saving them.
DRASTIC = frozenset({"reboot", "shutdown", "panic"})


class OperatorError(Exception):
    """A refused Manager action; str() is one line for the page."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def read_script(daemon: Daemon, group: str, which: str) -> str:
    check_group(daemon, group)
    if which not in SCRIPTS:
        raise OperatorError(f"no script '{which}': a group has start and stop scripts", 404)
    try:
        with open(script_path(daemon.home, group, which), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as e:
        raise OperatorError(f"{which}.sh cannot be read: {e}") from None


def check_group(daemon: Daemon, name: str) -> None:
    try:
        load_group(daemon.home, name)
    except ConfigError as e:
        if name not in daemon.groups.states:
            raise OperatorError(str(e), 404) from None


def normalize_script(text: str) -> str:
    """A script as sent by a form: browsers send CRLF line ends, which /bin/sh chokes on."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    if "\0" in text:
        raise OperatorError("the script holds a NUL character", 400)
    if len(text.encode()) > MAX_SCRIPT:
        raise OperatorError(f"the script is larger than {MAX_SCRIPT // 1024} KiB", 400)
    if not text.startswith("#!"):
        raise OperatorError("the script must start with an interpreter line such as #!/bin/sh", 400)
    return text


@dataclass(frozen=True)
class Operator:
    """One Manager user acting on the daemon."""

    daemon: Daemon
    user: str
    client: str

    def emit(
        self,
        kind: str,
        message: str,
        *,
        group: str | None = None,
        watch: str | None = None,
        severity: str = "info",
        **data: Any,
    ) -> None:
        self.daemon.bus.emit(
            kind,
            f"{message} (Manager user {self.user} from {self.client})",
            severity=severity,
            group=group,
            watch=watch,
            data={"user": self.user, "client": self.client, **data},
        )

    def _offline(self, group: str, doing: str) -> None:
        state = self.daemon.groups.state(group)
        if state is not GroupState.OFFLINE:
            # The guide's rule: a group's scripts change only while the group is stopped.
            raise OperatorError(f"group {group} is {state.value}: stop it first, then {doing}", 409)

    # --- groups ---------------------------------------------------------------------------------
    async def start_group(self, name: str) -> dict[str, Any]:
        check_group(self.daemon, name)
        self.emit("manager_group_start", f"start group {name}", group=name)
        try:
            return await self.daemon.groups.start(name, f"Manager user {self.user}")
        except ApiError as e:
            raise OperatorError(str(e)) from None

    async def stop_group(self, name: str) -> dict[str, Any]:
        check_group(self.daemon, name)
        self.emit("manager_group_stop", f"stop group {name}", group=name)
        try:
            return await self.daemon.groups.stop(name, f"Manager user {self.user}")
        except ApiError as e:
            raise OperatorError(str(e)) from None

    def create_group(self, name: str, description: str, auto_start: bool) -> None:
        try:
            create_group(self.daemon.home, name, auto_start=auto_start, description=description)
        except ConfigError as e:
            raise OperatorError(str(e), 400) from None
        self.emit("manager_group_create", f"created group {name}", group=name)

    def save_script(self, group: str, which: str, text: str, base: str) -> None:
        current = read_script(self.daemon, group, which)
        text = normalize_script(text)
        self._offline(group, f"edit {which}.sh")
        if text_digest(current) != base:
            raise OperatorError(
                f"{which}.sh was changed by someone else since this page was opened: "
                "your text is below; compare it with the file and save again",
                409,
            )
        write_atomic(script_path(self.daemon.home, group, which), text, 0o755)
        self.emit(
            "manager_script_edit",
            f"edited {which}.sh of group {group}",
            group=group,
            script=f"{which}.sh",
            sha256=text_digest(text),
        )

    def import_template(
        self, group: str, name: str, values: dict[str, str], force: bool
    ) -> list[str]:
        """Write a template's scripts and service definitions; returns the paths written."""
        from rearm import templates, uses

        check_group(self.daemon, group)
        self._offline(group, "import a template")
        home = self.daemon.home
        try:
            template = templates.load(name)
            given = {k: v for k, v in values.items() if v != ""}
            resolved, _ = templates.resolve(template, given)
            rendered = templates.render(template, resolved, given)
            templates.check_rendered(rendered)
            plan = templates.plan_install(
                home,
                group,
                rendered,
                _read_or_none,
                force=force,
                in_use=uses.live_users(self.daemon.status(), home),
            )
        except ConfigError as e:
            raise OperatorError(str(e), 400) from None
        written = []
        for w in plan.writes:
            if w.backup is not None:
                old = _read_or_none(w.path)
                if old is not None:
                    write_atomic(w.backup, old, os.stat(w.path).st_mode & 0o7777)
            write_atomic(w.path, w.text, w.mode)
            written.append(templates.shown_path(home, w.path))
        self.emit(
            "manager_template_import",
            f"imported template {name} into group {group}",
            group=group,
            template=name,
            written=written,
        )
        return written

    # --- cluster --------------------------------------------------------------------------------
    def set_properties(self, changes: dict[str, str]) -> list[str]:
        """Save cluster properties and reload; returns the keys that need a daemon restart."""
        for key, value in changes.items():
            choices = EDITABLE.get(key)
            if choices is None:
                raise OperatorError(f"'{key}' cannot be changed from the Manager", 400)
            if choices and value not in choices:
                raise OperatorError(f"{key}: must be one of {', '.join(choices)}", 400)
        if not changes:
            return []
        try:
            _, needs_restart = set_cluster_keys(self.daemon.home, changes)
        except ConfigError as e:
            raise OperatorError(str(e), 400) from None
        self.emit(
            "manager_cluster_set",
            "set " + ", ".join(f"{k}={v}" for k, v in changes.items()),
            changes=changes,
        )
        try:
            self.daemon.reload()
        except ApiError as e:
            raise OperatorError(f"saved, but the daemon did not take it: {e}") from None
        return needs_restart

    def clear_reboots(self) -> str:
        """`rearm reboots --clear`: the reboot-loop guard counts from zero again."""
        result = self.daemon.actions.clear_reboots(f"Manager user {self.user} from {self.client}")
        return str(result["message"])

    def register_license(self, serial: str, key: str) -> str:
        from rearm import license as licenses

        try:
            lic, _ = licenses.register(self.daemon.home, serial, key, time.time())
        except ConfigError as e:
            raise OperatorError(str(e), 400) from None
        self.emit("manager_license_register", f"registered license {lic.serial}")
        return lic.describe()

    # --- watches --------------------------------------------------------------------------------
    async def restart_watch(self, group: str, watch_id: str) -> str:
        """`rearm restart WATCHID`: stop the target, start it again; not a fault."""
        rt = self.daemon.supervisor.runtimes.get(watch_key(watch_id))
        if rt is None or rt.watch.group != group:
            raise OperatorError(f"group {group} has no watch {watch_id}", 404)
        self.emit(
            "manager_watch_restart",
            f"restart watch {rt.watch.watch_id}",
            group=group,
            watch=rt.watch.watch_id,
        )
        try:
            result = await self.daemon.supervisor.restart(rt.watch.watch_id)
        except ApiError as e:
            raise OperatorError(str(e)) from None
        return str(result["message"])

    # --- drill ----------------------------------------------------------------------------------
    def drill_fault(self, group: str, watch_id: str) -> int:
        """SIGKILL a watch's process, as a crash would: shows the recovery working.

        Only ever the process (group) the daemon itself watches for this watch, and only
        after checking that the pid still names the process it started (its start time).
        """
        rt = self.daemon.supervisor.runtimes.get(watch_key(watch_id))
        if rt is None or rt.watch.group != group:
            raise OperatorError(f"group {group} has no watch {watch_id}", 404)
        w = rt.watch
        if w.state is not WatchState.RUNNING or w.pid is None:
            raise OperatorError(f"{w.watch_id} is {w.state.value}: only a running watch can fail")
        if rt.unit is not None:
            raise OperatorError(
                f"{w.watch_id} is a systemd unit: inject a fault with systemctl kill instead"
            )
        if rt.pid_start is None or process.start_time(w.pid) != rt.pid_start:
            raise OperatorError(f"{w.watch_id}: pid {w.pid} is not the watched process any more")
        pid = w.pid
        self.emit(
            "drill_fault",
            f"drill: SIGKILL to {w.watch_id} (pid {pid}) to show recovery",
            group=group,
            watch=w.watch_id,
            severity="warning",
            pid=pid,
        )
        process.signal_target(pid, rt.own_group, signal.SIGKILL)
        return pid


def _read_or_none(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
