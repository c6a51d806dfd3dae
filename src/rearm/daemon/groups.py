"""Groups (SPEC §7): bring them online and offline with their scripts and declarative watches.

One operation per group at a time (a lock each). Start: declarative watches, then start.sh
with REARM_EVENT=START; stop: stop.sh with REARM_EVENT=STOP, then every watch of the group that
is still there is ended as armkill would, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import sys
import sysconfig
import time
from collections.abc import Callable
from typing import Any

from rearm.api.server import ApiError
from rearm.config import group_names, load_group, script_path, script_refusal
from rearm.daemon.bus import EventBus
from rearm.daemon.launchers import write_launchers
from rearm.daemon.supervisor import Supervisor
from rearm.logtail import tail
from rearm.model import Cluster, GroupState, ReturnMode
from rearm.paths import Home, make_folders
from rearm.retention import rotate_if_over
from rearm.store import Store
from rearm.trust import UntrustedFile
from rearm.validate import ConfigError

log = logging.getLogger("rearm.groups")
G = GroupState
# How much of a failed script's output is kept to say why: the last lines, as `rearm group
# start`, `rearm status` and the Manager show them (the whole output is in its log).
OUTPUT_LINES = 10


def commands_dir() -> str:
    """The folder holding armload, armkill and armem, put first on the scripts' PATH."""
    candidates = [
        os.path.dirname(os.path.abspath(sys.argv[0])),
        sysconfig.get_path("scripts"),
        os.path.dirname(sys.executable),
    ]
    for folder in candidates:
        if os.access(os.path.join(folder, "armload"), os.X_OK):
            return folder
    return candidates[1]


class Groups:
    def __init__(
        self,
        home: Home,
        store: Store,
        bus: EventBus,
        supervisor: Supervisor,
        boot_id: str,
        cluster: Callable[[], Cluster],
    ) -> None:
        self.home = home
        self.store = store
        self.bus = bus
        self.supervisor = supervisor
        self.boot_id = boot_id
        self.cluster = cluster
        self.states: dict[str, tuple[GroupState, str | None]] = {}
        # The last lines a group's failed script printed, until the group starts or stops again.
        self.output: dict[str, list[str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        launchers = os.path.join(home.run, "bin")
        self.bin_dir = launchers if write_launchers(launchers) else commands_dir()

    def state(self, name: str) -> GroupState:
        return self.states.get(name, (G.OFFLINE, None))[0]

    def detail(self, name: str) -> str | None:
        return self.states.get(name, (G.OFFLINE, None))[1]

    def _set(
        self,
        name: str,
        state: GroupState,
        detail: str | None,
        kind: str,
        message: str,
        severity: str = "info",
    ) -> None:
        with self.store.transaction():
            self.states[name] = (state, detail)
            self.store.set_group_state(name, state.value, self.boot_id, detail)
            self.bus.emit(kind, message, severity=severity, group=name)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    # ------------------------------------------------------------------------------------------
    async def start(self, name: str, reason: str = "operator") -> dict[str, Any]:
        try:
            config = load_group(self.home, name)
        except UntrustedFile as e:
            # A refusal for safety is worth an event (and an alert), not only the caller's error.
            self.bus.emit("config_error", str(e), severity="error", group=name)
            raise ApiError(str(e)) from None
        except ConfigError as e:
            raise ApiError(str(e)) from None
        lock = self._lock(name)
        if lock.locked():
            raise ApiError(f"group '{name}' is {self.state(name).value}: wait for it to finish")
        async with lock:
            if self.state(name) is G.ONLINE:
                # As `systemctl start` of an active unit: what was asked is already so.
                return {
                    "group": name,
                    "state": G.ONLINE.value,
                    "message": f"group {name} is already online (nothing done)",
                }
            unlicensed = self._unlicensed()
            if unlicensed is not None:
                raise ApiError(f"group '{name}' not started: {unlicensed}")
            if self.state(name) is G.ERROR:
                # Its failed start may have left watches behind: a clean stop comes first.
                raise ApiError(
                    f"group '{name}' is in error ({self.detail(name)}): take it "
                    f"offline first with 'rearm group stop {name}', then start it"
                )
            self.output.pop(name, None)
            self._set(name, G.STARTING, None, "group_start", f"starting group {name} ({reason})")
            problem = None
            for request in config.watches:
                try:
                    await self.supervisor.load(request, name, "START", {})
                except ApiError as e:
                    problem = f"declarative watch {request.watch_id}: {e}"
                    break
            if problem is None:
                path = script_path(self.home, name, "start")
                if os.path.exists(path) or not config.watches:
                    problem = await self.run_script(name, "start", "START", config.script_timeout)
            if problem is not None:
                output = self.output.get(name, [])
                with self.store.transaction():
                    self.states[name] = (G.ERROR, problem)
                    self.store.set_group_state(name, G.ERROR.value, self.boot_id, problem)
                    self.bus.emit(
                        "group_error",
                        f"group {name} failed to start: {problem}",
                        severity="error",
                        group=name,
                        data={"output": output} if output else None,
                    )
                raise ApiError(f"group '{name}' failed to start: {problem}" + _shown(output))
            self._set(name, G.ONLINE, None, "group_online", f"group {name} is online")
        return {"group": name, "state": G.ONLINE.value}

    def _unlicensed(self) -> str | None:
        """Why groups may not come online, when cluster.toml asks for a license; else None."""
        from rearm.license import license_problem, license_required

        try:
            if not license_required(self.home):
                return None
        except ConfigError as e:
            return str(e)
        problem = license_problem(self.home, time.time())
        if problem is not None:
            self.bus.emit("license_problem", problem, severity="error")
        return problem

    async def stop(self, name: str, reason: str = "operator") -> dict[str, Any]:
        try:
            config = load_group(self.home, name)
            script_timeout, stop_timeout = config.script_timeout, config.stop_timeout
        except ConfigError:
            if name not in self.states:
                raise ApiError(f"no group named '{name}' (see 'rearm group show')") from None
            script_timeout, stop_timeout = 300, 40  # its files are gone: still end its watches
        async with self._lock(name):
            if self.state(name) is G.OFFLINE and not self.supervisor.watches_of(name):
                return {
                    "group": name,
                    "state": G.OFFLINE.value,
                    "message": f"group {name} is already offline (nothing done)",
                }
            self.output.pop(name, None)
            self._set(name, G.STOPPING, None, "group_stop", f"stopping group {name} ({reason})")
            problem = None
            if os.path.exists(script_path(self.home, name, "stop")):
                problem = await self.run_script(name, "stop", "STOP", script_timeout)
                if problem is not None:
                    self.bus.emit(
                        "group_stop_script_failed",
                        f"group {name}: {problem}",
                        severity="warning",
                        group=name,
                    )
            await self.supervisor.end_group(name, stop_timeout)
            self._set(name, G.OFFLINE, problem, "group_offline", f"group {name} is offline")
        return {"group": name, "state": G.OFFLINE.value}

    def fail(self, name: str, reason: str) -> None:
        """Under Pacemaker, a group's final action: mark it failed (state error) and leave it as
        it is. The resource agent's monitor reports the failure; Pacemaker stops the group here
        (group_stop, which the error state allows) and starts it on another node."""
        if self.state(name) in (G.OFFLINE, G.STOPPING):
            return  # already on its way out
        self._set(
            name,
            G.ERROR,
            reason,
            "group_failed",
            f"group {name} failed ({reason}): reported to Pacemaker",
            "error",
        )

    async def run_recover(self, name: str, watch_id: str) -> str | None:
        """/SCR: the start script again, with REARM_EVENT=RECOVER and REARM_WATCH."""
        try:
            config = load_group(self.home, name)
        except ConfigError as e:
            return str(e)
        return await self.run_script(
            name, "start", "RECOVER", config.script_timeout, {"REARM_WATCH": watch_id}
        )

    async def run_script(
        self, name: str, which: str, event: str, timeout: int, extra: dict[str, str] | None = None
    ) -> str | None:
        """Run a group script; None when it succeeded, else why it did not."""
        path = script_path(self.home, name, which)
        problem = script_refusal(path, f"{which}.sh of group {name}")
        if problem is not None:
            return problem
        cluster = self.cluster()
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "REARM_EVENT": event,
            "REARM_GROUP": name,
            "REARM_CLUSTER": cluster.name,
            "REARM_SERVER": cluster.server,
            "REARM_HOME": self.home.root or "",
            **(extra or {}),
        }
        if self.home.root is None:
            del env["REARM_HOME"]
        log_path = self._open_log(name)
        with open(log_path, "ab") as log_file:
            log_file.write(f"--- {which}.sh {event}\n".encode())
            log_file.flush()
            began = log_file.tell()
            try:
                proc = await asyncio.create_subprocess_exec(
                    path,
                    env=env,
                    cwd=self.home.group_dir(name),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,
                )
            except OSError as e:
                return f"{which}.sh could not run: {e.strerror}"
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            # The script's own session only: services it armloaded run in sessions of their own.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            self.output[name] = tail(log_path, began, OUTPUT_LINES)
            return f"{which}.sh exceeded its timeout of {timeout} s and was killed"
        if code != 0:
            self.output[name] = tail(log_path, began, OUTPUT_LINES)
            return f"{which}.sh exited with status {code} (its output is in {log_path})"
        return None

    def _open_log(self, name: str) -> str:
        """The group's script log in var/, or /dev/null when var/ takes no writes (full,
        read-only): a script that brings services back must not fail for want of a log."""
        path = os.path.join(self.home.group_logs, f"{name}.log")
        r = self.supervisor.retention
        rotate_if_over(path, r.log_max_bytes, r.watch_log_keep)
        try:
            make_folders(self.home.group_logs)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640))
        except OSError as e:
            if e.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO):
                raise
            self.bus.emit(
                "group_log_unwritable",
                f"group {name}: cannot write its log {path} ({e.strerror}): the script's output"
                " goes to /dev/null",
                severity="warning",
                group=name,
            )
            return os.devnull
        return path

    def forget_deleted(self) -> list[str]:
        """At reload: groups whose folder is gone, offline and without watches, are dropped
        (their state too). Returns their names."""
        on_disk = set(group_names(self.home))
        gone = [
            name
            for name, (state, _) in self.states.items()
            if name not in on_disk
            and state is G.OFFLINE
            and not self.supervisor.watches_of(name)
            and not self._lock(name).locked()
        ]
        if gone:
            with self.store.transaction():
                for name in gone:
                    del self.states[name]
                    self.output.pop(name, None)
                    self.store.delete_group(name)
                    self.bus.emit("group_deleted", f"group {name} was deleted", group=name)
        return gone

    # ------------------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Group states after a daemon start; returns the groups to bring online now."""
        stored = self.store.group_states()
        to_start = []
        cluster = self.cluster()
        for name in group_names(self.home):
            state, boot, detail = stored.get(name, (G.OFFLINE.value, "", None))
            if boot == self.boot_id:
                # The daemon restarted within this boot: groups are as the operator left them.
                if state in (G.STARTING.value, G.STOPPING.value):
                    why = f"the daemon stopped while the group was {state}: start or stop it again"
                    self.states[name] = (G.ERROR, why)
                else:
                    self.states[name] = (GroupState(state), detail)
                continue
            self.states[name] = (G.OFFLINE, None)
            try:
                auto = load_group(self.home, name).auto_start
            except ConfigError as e:
                self.bus.emit("config_error", str(e), severity="error", group=name)
                continue
            if auto and cluster.pacemaker:
                self.bus.emit(
                    "group_waiting",
                    f"group {name} waits for Pacemaker to start it (pacemaker = true)",
                    group=name,
                )
            elif auto and cluster.return_mode is ReturnMode.AUTO:
                to_start.append(name)
            elif auto:
                self.bus.emit(
                    "group_waiting",
                    f"group {name} waits for an operator "
                    "(return_mode = manual): rearm group start " + name,
                    group=name,
                )
        return to_start


def _shown(output: list[str]) -> str:
    if not output:
        return ""
    return "\n  last lines of its output:\n" + "\n".join(f"  | {line}" for line in output)
