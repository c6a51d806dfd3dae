"""The daemon's wiring: build the parts, recover, serve, bring groups online, stop cleanly.

Stopping the daemon (SIGTERM, SIGINT) leaves every service running: a restarted daemon
re-adopts them. Only `rearm shutdown --stop-groups` takes the groups offline first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from rearm.alerts import AlertDispatcher, load_sinks
from rearm.api.server import ApiError, ControlServer
from rearm.backends import process
from rearm.backends.fdreserve import OUT_OF_DESCRIPTORS, RESERVE, raise_descriptor_limit
from rearm.config import NEEDS_RESTART, address_only, group_names, load_cluster, load_group
from rearm.daemon.actions import FinalActions, is_drill
from rearm.daemon.bus import EventBus
from rearm.daemon.control import Control
from rearm.daemon.durability import StateWrites
from rearm.daemon.groups import Groups
from rearm.daemon.heartbeat import Heartbeat
from rearm.daemon.housekeeping import Housekeeping
from rearm.daemon.notify import notify
from rearm.daemon.supervisor import Supervisor
from rearm.model import OPERATOR_SHUTDOWN_STATUS, Cluster, GroupState
from rearm.paths import Home, make_folders
from rearm.ratelog import RateLimitedLog
from rearm.retention import Retention, load_retention
from rearm.store import StoreUnavailable, open_store
from rearm.validate import ConfigError
from rearm.web.connections import KEEPALIVE_TIMEOUT, ConnectionGuard
from rearm.web.connections import TOTAL as WEB_TOTAL
from rearm.web.metrics import EventCounts

log = logging.getLogger("rearm")


def _version() -> str:
    try:
        return version("rearm")
    except PackageNotFoundError:
        return "dev"


class Daemon:
    def __init__(self, home: Home, cluster: Cluster) -> None:
        self.home = home
        self.cluster = cluster
        self.pid = os.getpid()
        self.version = _version()
        self.started = time.time()
        self.boot_id = test_boot_id() or process.boot_id()
        self.store, self.store_problem = open_store(home.state_db)
        self.bus = EventBus(self.store)
        # From here on a full or read-only var/ does not stop recovery (durability.py).
        self.state_writes = StateWrites(self.store, self.bus, home.var)
        self.supervisor = Supervisor(home, self.store, self.bus, self.boot_id)
        self.supervisor.write_state_now = self.state_writes.try_now
        self.groups = Groups(
            home, self.store, self.bus, self.supervisor, self.boot_id, lambda: self.cluster
        )
        self.actions = FinalActions(self.store, self.bus, self.boot_id, self._stop_group_for)
        self.actions.clock = self.supervisor.clock
        self.supervisor.run_recover_script = self.groups.run_recover
        self.supervisor.record_final_action = lambda watch, group: self.actions.record(
            self.cluster, watch, group
        )
        self.supervisor.complete_final_action = self.actions.complete
        self.server = ControlServer(
            home.socket, cluster.admin_group, cluster.read_access == "everyone"
        )
        self.heartbeat = Heartbeat(home.state_db, is_drill(cluster), home.root)
        try:
            sinks = load_sinks(home)
        except ConfigError as e:
            log.error("alerts disabled: %s", e)
            sinks = []
        self.alerts = AlertDispatcher(sinks, cluster.name, cluster.server, self.bus.emit)
        self.event_counts = EventCounts()
        self.housekeeping = Housekeeping(home, self.store, self.supervisor)
        self._set_retention(_retention_or_defaults(home))
        self.bus.listeners += [self.alerts.offer, self.event_counts.offer, self.housekeeping.offer]
        self.actions.send_alert = self.alerts.flush
        self.actions.fail_group = self.groups.fail
        self._metrics: web.AppRunner | None = None
        self._web_server: asyncio.AbstractServer | None = None
        # Connections to the management address: a quarter of the descriptors at most.
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.web_guard = ConnectionGuard(total=max(8, min(WEB_TOTAL, soft // 4)))
        self.lines = RateLimitedLog(log)
        self.manager_url: str | None = None  # set once the Manager is served
        self.manager_problem: str | None = None  # why it is not, when it could not listen
        Control(self).register()
        self._exit = asyncio.Event()
        self._by_operator = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_groups_on_exit = False

    # ------------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_exit, False)
        loop.add_signal_handler(signal.SIGHUP, self._reload_from_signal)
        self.bus.emit(
            "daemon_start",
            f"rearm daemon {self.version} started (pid {self.pid}, "
            f"drill {'on' if is_drill(self.cluster) else 'OFF'})",
            data={"pid": self.pid, "drill": is_drill(self.cluster)},
        )
        self.heartbeat.start(self.cluster, is_drill(self.cluster))
        if self.store_problem is not None:
            found = self.supervisor.rebuild_from_processes()
            for group in sorted({g for g in found.values() if g is not None}):
                # Its services run: it is online, and its start script must not run again.
                self.groups.states[group] = (GroupState.ONLINE, "rebuilt after state loss")
                with self.store.transaction():
                    self.store.set_group_state(group, "online", self.boot_id, "rebuilt")
            self.bus.emit(
                "state_rebuilt",
                f"the state database was unreadable: {self.store_problem}; rebuilt from the "
                f"running processes: {len(found)} watch(es) re-adopted, their fault history lost",
                severity="critical",
                data={"watches": sorted(found)},
            )
        self.supervisor.recover()
        loop.call_soon(self.housekeeping.run)  # what the last daemon left, then by events
        to_start = self.groups.recover()
        await self.server.start()
        await self.alerts.start()
        await self._serve_web()
        write_pid_file(self.home.pidfile, self.pid)
        notify("READY=1\nSTATUS=watching")
        log.info("control socket %s", self.home.socket)
        self._background(self.actions.resume(self.cluster))
        for name in to_start:
            self._background(self._auto_start(name))
        await self._exit.wait()
        notify("STOPPING=1")
        if self._stop_groups_on_exit:
            for name, (state, _) in list(self.groups.states.items()):
                if state is not GroupState.OFFLINE:
                    with contextlib.suppress(ApiError):
                        await self.groups.stop(name, "daemon shutdown")
            for rt in self.supervisor.watches_of(None):
                with contextlib.suppress(ApiError):
                    await self.supervisor.stop(rt, keep_running=False, timeout=40)
        await self.server.close()
        self.heartbeat.stop()
        self.bus.emit(
            "daemon_stop",
            "rearm daemon stopped; services left running"
            if not self._stop_groups_on_exit
            else "rearm daemon stopped",
        )
        await self.alerts.stop(5)
        await self.supervisor.units.close()
        if self._web_server is not None:
            self._web_server.close()
        if self._metrics is not None:
            await self._metrics.cleanup()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.home.pidfile)
        self.state_writes.close()
        if not self.state_writes.try_now():
            # The services run on; a new daemon re-adopts them from what the disk holds.
            log.error(
                "stopping with %d state write(s) not made (%s): the next daemon starts from "
                "the state last written",
                self.store.pending_writes,
                self.store.failure.error if self.store.failure else "",
            )
        self.store.close()
        # SIGTERM (systemctl stop) is an ordinary stop; `rearm shutdown` says "stay down".
        return OPERATOR_SHUTDOWN_STATUS if self._by_operator else 0

    async def _serve_web(self) -> None:
        """The Manager and /metrics on the management address (cluster.ip, manager_port)."""
        from rearm.web.app import manager_app
        from rearm.web.settings import manager_url, settings_or_problem

        settings, problem = settings_or_problem(self.home)
        if problem is not None:
            log.error("the Manager is not served, only /metrics: %s", problem)
        runner = web.AppRunner(
            manager_app(self, settings), access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT
        )
        await runner.setup()
        assert runner.server is not None
        address, port = address_only(self.cluster.ip), self.cluster.manager_port
        # Not a web.TCPSite: every connection goes through the guard (web/connections.py).
        guarded = self.web_guard.factory(runner.server)
        loop = asyncio.get_running_loop()
        try:
            if self.cluster.pacemaker:
                # The management address is Pacemaker's IPaddr2 resource: it comes and goes with
                # the groups. Bound with IP_FREEBIND, the Manager answers on the node holding it.
                self._web_server = await loop.create_server(
                    guarded, sock=freebind_socket(address, port)
                )
            else:
                self._web_server = await loop.create_server(guarded, address, port)
        except OSError as e:
            # Most often the port is another program's (another cluster's Manager): never show
            # its URL as ours. Said where it is seen: an event (and so an alert), and status.
            where = f"{address_only(self.cluster.ip)}:{self.cluster.manager_port}"
            self.manager_problem = f"cannot listen on {where}: {e.strerror or e}"
            self.bus.emit(
                "manager_unavailable",
                f"the Manager and /metrics are not served: {self.manager_problem} (another "
                "program holds it? change manager_port with 'rearm cluster set', then restart "
                "the daemon)",
                severity="error",
                data={"address": where, "error": e.strerror or str(e)},
            )
            await runner.cleanup()
            return
        self._metrics = runner
        if settings is not None and settings.enabled:
            self.manager_url = manager_url(self.cluster.ip, self.cluster.manager_port)
            log.info("Manager at %s", self.manager_url)

    async def _auto_start(self, name: str) -> None:
        try:
            await self.groups.start(name, "auto start")
        except ApiError as e:
            log.error("%s", e)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's own errors; running out of descriptors (accept() fails, and asyncio tries
        again every second) is logged once a minute, not once a second. Only accept()'s: an
        exception of a callback or a task is logged in full, whatever its errno (a restart that
        failed for want of a descriptor once went unlogged here, behind the accept lines)."""
        error = context.get("exception")
        accept = str(context.get("message", "")).startswith("socket.accept()")
        if accept and isinstance(error, OSError) and error.errno in OUT_OF_DESCRIPTORS:
            self.lines.log(
                "descriptors",
                logging.ERROR,
                "out of file descriptors: %s (%s)",
                context.get("message", ""),
                error,
            )
            return
        loop.default_exception_handler(context)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        # The loop keeps only weak references to tasks: hold them until they are done.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def request_exit(self, stop_groups: bool, by_operator: bool = False) -> None:
        self._stop_groups_on_exit = self._stop_groups_on_exit or stop_groups
        self._by_operator = self._by_operator or by_operator
        self._exit.set()

    # ------------------------------------------------------------------------------------------
    def reload(self) -> dict[str, Any]:
        """Re-read cluster.toml; on error keep the running configuration and say why."""
        try:
            new = load_cluster(self.home)
            sinks = load_sinks(self.home)
            retention = load_retention(self.home)
        except ConfigError as e:
            self.bus.emit(
                "config_error", f"reload refused, configuration kept: {e}", severity="error"
            )
            raise ApiError(f"reload refused, the running configuration is kept: {e}") from None
        needs_restart = [
            k for k in sorted(NEEDS_RESTART) if getattr(new, k) != getattr(self.cluster, k)
        ]
        self.groups.forget_deleted()
        self.cluster = new
        self._set_retention(retention)
        self._background(self.alerts.reconfigure(sinks, new.name, new.server))
        self.heartbeat.start(new, is_drill(new))  # restarts the keeper only if its settings changed
        self.bus.emit(
            "config_reload",
            "configuration reloaded"
            + (f"; needs a daemon restart: {', '.join(needs_restart)}" if needs_restart else ""),
            data={"needs_restart": needs_restart},
        )
        return {"message": "configuration reloaded", "needs_restart": needs_restart}

    def _set_retention(self, retention: Retention) -> None:
        self.housekeeping.retention = self.supervisor.retention = retention

    def _reload_from_signal(self) -> None:
        with contextlib.suppress(ApiError):
            self.reload()

    async def _stop_group_for(self, group: str | None, reason: str) -> None:
        if group is not None:
            await self.groups.stop(group, reason)

    # ------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        now = self.supervisor.clock()
        c = self.cluster
        groups = []
        # A group deleted on disk leaves status at once, unless it still has something to
        # show (watches, or a state other than offline).
        names = set(group_names(self.home)) | {
            name
            for name, (state, _) in self.groups.states.items()
            if state is not GroupState.OFFLINE or self.supervisor.watches_of(name)
        }
        for name in sorted(names):
            try:
                auto_start: bool | None = load_group(self.home, name).auto_start
            except ConfigError:
                auto_start = None
            groups.append(
                {
                    "name": name,
                    "state": self.groups.state(name).value,
                    "detail": self.groups.detail(name),
                    # Why a script failed: its last lines (var/log/groups/NAME.log has it all).
                    "output": self.groups.output.get(name, []),
                    "auto_start": auto_start,
                    "watches": [
                        self.supervisor.describe(rt, now) for rt in self.supervisor.watches_of(name)
                    ],
                }
            )
        return {
            "cluster": {
                "name": c.name,
                "server": c.server,
                "final_action": c.final_action.value,
                "drill": is_drill(c),
                "manager_url": self.manager_url,  # only ever this daemon's own
                "manager": {"url": self.manager_url, "problem": self.manager_problem},
                "return_mode": c.return_mode.value,
                "pacemaker": c.pacemaker,
                # The reboot-loop guard's counter (rearm reboots; reboots.summary).
                "reboots": self.actions.reboot_summary(c),
            },
            "daemon": {"pid": self.pid, "version": self.version, "since": self.started},
            # {"writable": true}, or why var/ takes no writes, since when, what waits.
            "state": self.store.health(),
            "groups": groups,
            # Watches made outside any group script (e.g. armload typed at a shell).
            "watches": [
                self.supervisor.describe(rt, now) for rt in self.supervisor.watches_of(None)
            ],
        }


IP_FREEBIND = 15  # <linux/in.h>; the socket module names it from Python 3.12 on


def freebind_socket(address: str, port: int) -> socket.socket:
    """A listening TCP socket on an address this node may not hold yet (IP_FREEBIND)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _retention_or_defaults(home: Home) -> Retention:
    """[retention] at the daemon's start; a mistake in it costs the defaults, not the start
    (the daemon must come up to watch the services), and is logged."""
    try:
        return load_retention(home)
    except ConfigError as e:
        log.error("retention: the defaults are used: %s", e)
        return Retention()


def write_pid_file(path: str, pid: int) -> None:
    """run/rearm.pid, 0644 whatever the umask; never through a link someone left there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, f"{pid}\n".encode())
    finally:
        os.close(fd)


def _already_running(home: Home) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(home.socket)
        except OSError:
            return False
    return True


def run(home: Home) -> int:
    # Descriptors left open by whoever started the daemon would reach every target it starts
    # (posix_spawn closes only close-on-exec ones), whatever the target's user.
    inherited = process.close_inherited_fds()
    # Descriptors: as many as the hard limit allows, and a reserve for the restart path.
    nofile_before, nofile = raise_descriptor_limit()
    RESERVE.keep()
    logging.basicConfig(
        level=os.environ.get("REARM_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(message)s"
        if sys.stderr.isatty()
        else "%(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if inherited:
        log.info("closed descriptors inherited from the daemon's parent: %s", inherited)
    if nofile != nofile_before:
        log.info("descriptor limit raised from %d to %d", nofile_before, nofile)
    try:
        cluster = load_cluster(home)
    except ConfigError as e:
        print(f"rearm daemon: {e}", file=sys.stderr)
        return 2
    for folder in (home.etc, home.var, home.run):
        make_folders(folder)
    if _already_running(home):
        print(
            f"rearm daemon: already running (control socket {home.socket} answers)", file=sys.stderr
        )
        return 1
    try:
        daemon = Daemon(home, cluster)
    except StoreUnavailable as e:
        print(f"rearm daemon: {e}", file=sys.stderr)
        return 1
    return asyncio.run(daemon.run())


def test_boot_id() -> str | None:
    """A boot id for tests that play a reboot (REARM_TEST_BOOT_ID), honoured only with
    REARM_DRILL=1 like every other test setting: the real one comes from the kernel."""
    value = os.environ.get("REARM_TEST_BOOT_ID")
    if value and os.environ.get("REARM_DRILL", "") not in ("", "0"):
        return value
    return None
