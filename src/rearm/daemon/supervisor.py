"""Drives every watch's state machine with real processes, pidfds and timers.

The respawn path, in full: the pidfd becomes readable -> `_on_exits` reaps the status -> the
watch decides (policy) -> `_apply` commits the fault, the new state and the events in one
transaction -> the restart timer fires after /INT -> `_spawn` starts the target again.

Every pidfd sits in one epoll set of the supervisor's own, which is the only thing the event
loop watches for exits: when many targets die together (a mass failure, an OOM kill of a
group), one wake-up reads them all and one transaction records them all, instead of one wake-up
and two commits per target.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import select
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearm import claims, policy, uses
from rearm.api.server import ApiError
from rearm.backends import pidfile, process
from rearm.backends.process import Proc, SpawnError
from rearm.config import load_service
from rearm.daemon import readiness
from rearm.daemon.bus import EventBus
from rearm.daemon.units import UnitDriver
from rearm.model import (
    KillRequest,
    LoadRequest,
    ReadyCheck,
    ServiceDef,
    TargetKind,
    WatchState,
    request_from_dict,
    request_to_dict,
    watch_key,
)
from rearm.paths import Home, make_folders
from rearm.policy import Stamp
from rearm.retention import Retention, rotate_if_over
from rearm.store import Store, WatchRow
from rearm.validate import ConfigError
from rearm.watch import (
    CancelRestart,
    Effect,
    Emit,
    FireFinalAction,
    Forget,
    InvalidTransition,
    KillLeftovers,
    RecordFault,
    RunRecoverScript,
    ScheduleRestart,
    Spawn,
    StopTarget,
    Watch,
)

log = logging.getLogger("rearm.supervisor")

S = WatchState
PIDFILE_TIMEOUT = 30.0  # a forking daemon must have written its pid file by then
PIDFILE_POLL = 0.05
STATE_VAR = "REARM_STATE_DIR"
REQUEST_VAR = "REARM_REQUEST"
TARGET_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Caller variables that describe the caller, not the target: never passed on.
DROP_ENV = (
    "REARM_EVENT",
    "REARM_WATCH",
    process.TOKEN_VAR,
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
)


@dataclass
class Runtime:
    """What the daemon holds for one watch besides its pure state."""

    watch: Watch
    env: dict[str, str] = field(default_factory=dict)  # caller's environment (applications)
    pid_start: int | None = None
    own_group: bool = False
    token: str | None = None
    pidfd: int | None = None
    timer: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    main_exited: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # left STARTING
    forgotten: bool = False
    created: float = field(default_factory=time.time)
    stored_request: str = ""  # the request and env as stored, JSON
    stored_for: LoadRequest | None = None  # the request that stored_request was made from
    request_json: str = ""  # the request as the target's REARM_REQUEST carries it
    request_json_for: LoadRequest | None = None
    unit: str | None = None  # the systemd unit, when systemd runs the target (units.py)
    unit_unwatch: Callable[[], None] | None = None
    claims: claims.Claims | None = None  # what it holds (claims.py); None: not looked up yet
    definition: str | None = None  # digest of the service definition it was started from

    def state(self) -> WatchState:
        """Read afresh: the state changes while a coroutine awaits."""
        return self.watch.state

    @property
    def key(self) -> str:
        return watch_key(self.watch.watch_id)


RecoverScript = Callable[[str, str], Awaitable[str | None]]
RecordAction = Callable[[str, str | None], Any]  # inside a transaction; returns a pending action
CompleteAction = Callable[[Any], Awaitable[None]]


class Supervisor:
    def __init__(self, home: Home, store: Store, bus: EventBus, boot_id: str) -> None:
        self.home = home
        self.store = store
        self.bus = bus
        self.boot_id = boot_id
        self.runtimes: dict[str, Runtime] = {}
        self._kept: set[asyncio.Task[Any]] = set()
        self.hour_seconds = test_hour_seconds()
        # Every moment the policy sees, on both clocks (policy.Stamp); timers use the loop's
        # monotonic clock. A wall-clock step moves neither a restart nor the /H window.
        self.clock = make_clock(boot_id)
        # Wired by main.py: the group runner and the final actions (kept out of this module).
        self.run_recover_script: RecoverScript | None = None
        self.record_final_action: RecordAction | None = None
        self.complete_final_action: CompleteAction | None = None
        # Writes what the store kept while var/ took no writes; True once all is written.
        self.write_state_now: Callable[[], bool] = store.retry
        self.units = UnitDriver(self)
        # The pidfds of all watched targets (see the module's doc), registered with the loop
        # at the first one.
        self._exits = select.epoll()
        self._exit_fds: dict[int, Runtime] = {}
        self._exits_listened = False
        # While a batch acts (_apply_many), the effects of what it starts are gathered here and
        # committed together after it, not one transaction per target.
        self._gathered: list[tuple[Runtime, list[Effect]]] | None = None
        # During recover(): the live processes by spawn token (see recover).
        self._token_index: tuple[set[str], dict[str, list[Proc]]] = (set(), {})
        # Definition file -> (its signature, its digest): status compares what each watch was
        # started from with the file on disk, reading a file again only once it has changed.
        self._on_disk: dict[str, tuple[tuple[int, int, int] | None, str | None]] = {}
        # How big a watch's log may grow before it is rotated (set by main.py, rearm.retention).
        self.retention = Retention()

    # ------------------------------------------------------------------------------------------
    # armload
    async def load(
        self,
        req: LoadRequest,
        group: str | None,
        event: str | None,
        env: dict[str, str],
    ) -> dict[str, Any]:
        key = watch_key(req.watch_id)
        existing = self.runtimes.get(key)
        if existing is not None and existing.watch.state.is_alive:
            w = existing.watch
            if event == "RECOVER" and w.group == group:
                if w.state is S.STARTING and w.pid is None:
                    # The watch being recovered by /SCR: start it again, keeping its counters.
                    existing.watch.request = req
                    existing.env = _clean_env(env)
                    self._spawn(existing)
                    return await self._await_start(existing, req)
                return {
                    "id": w.watch_id,
                    "state": w.state.value,
                    "pid": w.pid,
                    "message": f"{w.watch_id} is already running",
                }
            where = f"group {w.group}" if w.group else "no group"
            raise ApiError(
                f"watch ID '{req.watch_id}' is already in use by a live watch ({where}, "
                f"{w.state.value}): armkill {w.watch_id} first, or choose another ID"
            )
        if req.policy.script and group is None:
            raise ApiError(
                "/SCR needs a group: it re-runs the group's start script, so the watch must be "
                "created by a group's start script (REARM_GROUP is not set)"
            )
        if not self.write_state_now():
            # A watch that is not on disk could not be re-adopted by a restarted daemon: its
            # process would run on unwatched, or be started twice. Running watches go on.
            raise ApiError(f"{req.watch_id}: not started: {self.unwritable()}")
        service = self._service_def(req) if req.kind is TargetKind.SERVICE else None
        unit = None
        if req.service is not None and service is None:
            unit = await self.units.resolve(req.service, self.home.service_file(req.service))
            again = self.runtimes.get(key)
            if again is not None and again.watch.state.is_alive:  # armloaded while we asked
                raise ApiError(f"watch ID '{req.watch_id}' is already in use by a live watch")
        wanted = claims.claims_of(
            req.service,
            service.pidfile if service is not None else None,
            unit.name if unit is not None else None,
        )
        held = self._held(wanted)
        if held is not None:
            assert req.service is not None
            if not req.adopt:
                raise ApiError(claims.refusal(req.watch_id, req.service, held))
            return {
                "id": held.watch_id,
                "state": held.state,
                "message": claims.already_watched(req.service, held),
            }
        running = await self._find_running(req, service) if unit is None else None
        if unit is not None and self.units.running(unit) and not req.adopt:
            raise ApiError(
                f"service '{req.service}' is already running (unit {unit.name}, pid "
                f"{unit.main_pid}): use /A to adopt it, or stop it first"
            )
        if running and not req.adopt and service is not None:
            raise ApiError(
                f"service '{service.name}' is already running (pid {running.pid}): "
                "use /A to adopt it, or stop it first"
            )
        if existing is not None:  # a dead watch of the same ID: the new one replaces it
            self._forget(existing)
        rt = Runtime(
            watch=Watch(
                req.watch_id,
                req,
                group,
                instance=uuid.uuid4().hex,
                hour=self.hour_seconds,
                ran=False,  # until a start lasts (watch.classify_end)
            ),
            env=_clean_env(env),
            claims=wanted,
        )
        self.runtimes[key] = rt
        if unit is not None:
            rt.unit = unit.name
            if self.units.running(unit):
                await self.units.attach(
                    rt, unit, "watch_adopt", f"adopted the running unit {unit.name}"
                )
            else:
                self._prepare_spawn(rt)
                self._persist(rt)
                problem = self.unwritable() if self.store.failure else None
                problem = problem or await self.units.start(rt, first=True)
                if problem is not None:
                    with self.store.transaction():
                        self.store.delete_watch(key)
                    self._forget(rt)
                    raise ApiError(f"{req.watch_id}: cannot start {req.target}: {problem}")
            return await self._await_start(rt, req)
        if running and req.adopt:
            self._adopt(rt, running, "adopted the running process")
            if self.store.failure is not None:
                with self.store.transaction():
                    self.store.delete_watch(key)
                self._forget(rt)  # it runs on as it did before this armload
                raise ApiError(f"{req.watch_id}: not adopted: {self.unwritable()}")
        else:
            problem = self._spawn(rt, first=True)
            if problem is not None:
                # A target that cannot even start once is a bad armload, not a fault to retry.
                with self.store.transaction():
                    self.store.delete_watch(key)
                self._forget(rt)
                raise ApiError(f"{req.watch_id}: cannot start {req.target}: {problem}")
        return await self._await_start(rt, req)

    async def _await_start(self, rt: Runtime, req: LoadRequest) -> dict[str, Any]:
        w = rt.watch
        if req.wait is not None and rt.state() is S.STARTING:
            try:
                await asyncio.wait_for(rt.settled.wait(), req.wait or None)
            except TimeoutError:
                raise ApiError(
                    f"{w.watch_id} did not start within {req.wait} s (still starting; it stays "
                    "watched: see 'rearm status')"
                ) from None
            if rt.state() is not S.RUNNING:
                raise ApiError(f"{w.watch_id} did not start: {w.detail or w.state.value}")
        return {"id": w.watch_id, "state": w.state.value, "pid": w.pid}

    def _service_def(self, req: LoadRequest) -> ServiceDef | None:
        """The service's definition file, None when there is none (then: a systemd unit)."""
        assert req.service is not None
        try:
            return load_service(self.home, req.service)
        except ConfigError as e:
            raise ApiError(str(e)) from None

    def _service(self, req: LoadRequest) -> ServiceDef:
        service = self._service_def(req)
        if service is None:
            assert req.service is not None
            raise ApiError(
                f"unknown service '{req.service}': no definition at "
                f"{self.home.service_file(req.service)} (see SPEC §2 for its keys)"
            )
        return service

    def _held(self, wanted: claims.Claims) -> claims.Holder | None:
        """The live watch that already holds any of `wanted` (a service, unit or pid file)."""
        if not wanted:
            return None
        return claims.holder(
            wanted,
            (
                (rt.watch.watch_id, rt.watch.group, rt.watch.state.value, self._claims(rt))
                for rt in list(self.runtimes.values())
                if rt.watch.state.is_alive
            ),
        )

    def _claims(self, rt: Runtime) -> claims.Claims:
        """What rt holds; looked up once (after a daemon restart, from its definition now)."""
        if rt.claims is None:
            req = rt.watch.request
            pidfile = None
            if req.service is not None and rt.unit is None:
                with contextlib.suppress(ApiError):
                    service = self._service_def(req)
                    pidfile = service.pidfile if service is not None else None
            rt.claims = claims.claims_of(req.service, pidfile, rt.unit)
        return rt.claims

    def _watched_pids(self) -> set[int]:
        return {rt.watch.pid for rt in self.runtimes.values() if rt.watch.pid is not None}

    async def _find_running(self, req: LoadRequest, service: ServiceDef | None) -> Proc | None:
        if service is not None and service.pidfile is not None:
            # A refused pid file (not a plain file of the service's user, or a pid of another
            # user's) names nothing to adopt: the start that follows says why it fails.
            found_one = await pidfile.look_off_loop(
                service.pidfile, service.command[0], user=service.user
            )
            if isinstance(found_one, Proc) and found_one.pid not in self._watched_pids():
                return found_one
            return None
        # Only a process of the user the target would run as: another user's process with
        # the same command line is not ours to signal, nor to restart as this user.
        try:
            if service is not None:
                uid = process.uid_of(service.user)
                found = process.find_by_argv(list(service.command), self._watched_pids(), uid)
            elif req.adopt:
                assert req.argv is not None
                uid = process.uid_of(req.user)
                found = process.find_by_argv(list(req.argv), self._watched_pids(), uid)
            else:
                return None
        except SpawnError:
            return None  # no such user: the start says so
        return found[0] if found else None

    # ------------------------------------------------------------------------------------------
    # starting and adopting
    def _target(self, rt: Runtime) -> tuple[list[str], dict[str, str], ServiceDef | None]:
        req = rt.watch.request
        env = {"PATH": TARGET_PATH, "LANG": os.environ.get("LANG", "C.UTF-8")}
        service: ServiceDef | None = None
        if req.service is not None:
            service = self._service(req)
            argv = list(service.command)
            if service.user is not None:
                env.update(process.login_env(service.user))
            env.update(service.environment)
        else:
            assert req.argv is not None
            argv = list(req.argv)
            if req.user is not None:
                # As `su - USER` would: none of the caller's (root's) environment, which may
                # hold root's secrets, reaches a target of another user.
                env.update(process.login_env(req.user))
            else:
                env.update(rt.env)
        env["REARM_WATCH"] = rt.watch.watch_id
        if rt.watch.group:
            env["REARM_GROUP"] = rt.watch.group
        # What a lost state database can be rebuilt from: this home and the armload request.
        env[STATE_VAR] = self.home.var
        if rt.request_json_for is not req:  # made once per armload, not at every restart
            rt.request_json = json.dumps(request_to_dict(req), separators=(",", ":"))
            rt.request_json_for = req
        env[REQUEST_VAR] = rt.request_json
        return argv, env, service

    def _spawn(self, rt: Runtime, first: bool = False, prepared: bool = False) -> str | None:
        """Start the target. The spawn token is committed first: a crash right after the spawn
        lets the next daemon find this process instead of starting a second one.

        With `first` (armload itself), a failure is returned for the caller to refuse; later
        (a restart) it is a fault of the watch.
        """
        w = rt.watch
        if not prepared:
            self._prepare_spawn(rt)
            self._persist(rt)
            if first and self.store.failure is not None:
                return self.unwritable()  # its spawn token is not on disk: do not spawn
        if rt.unit is not None:
            self._task(rt, self.units.start(rt, first=False))
            return None
        try:
            argv, env, service = self._target(rt)
            if service is not None:
                self._started_from(rt, service)
            assert rt.token is not None  # set by _prepare_spawn, committed before this spawn
            env[process.TOKEN_VAR] = rt.token
            user = service.user if service else w.request.user
            proc = process.spawn(
                argv,
                env,
                self._log_for(rt),
                cwd=service.directory if service else None,
                user=user,
                group=service.group if service else None,
                limits=service.limits if service else (),
            )
        except (SpawnError, ApiError) as e:
            reason = e.strerror if isinstance(e, SpawnError) else str(e)
            if first:
                return str(reason)
            short = isinstance(e, SpawnError) and e.errno in process.SHORTAGES
            self._apply(
                rt, w.start_failed(self.clock(), f"cannot start: {reason}", cannot_run=not short)
            )
            return None
        if service is not None and service.pidfile is not None:
            self._apply(
                rt,
                [
                    Emit(
                        "watch_start",
                        "info",
                        f"started {w.watch_id}: "
                        f"{w.request.target} (pid {proc.pid}; following "
                        f"{service.pidfile})",
                    )
                ],
            )
            self._task(rt, self._follow_pidfile(rt, service, proc))
            return None
        try:
            rt.pidfd = process.child_pidfd(proc.pid)  # our child: its pid is its own until reaped
        except OSError as e:
            return self._unwatchable(rt, proc, e, first)
        rt.pid_start = proc.start
        rt.own_group = True
        ready_check = service.ready if service else None
        effects: list[Effect] = [
            Emit(
                "watch_start", "info", f"started {w.watch_id}: {w.request.target} (pid {proc.pid})"
            )
        ]
        effects += w.started(proc.pid, ready=ready_check is None, now=self.clock())
        self._apply(rt, effects)
        self._listen(rt)
        if ready_check is not None:
            self._task(rt, self._await_ready(rt, ready_check))
        return None

    def _unwatchable(self, rt: Runtime, proc: Proc, e: OSError, first: bool) -> str | None:
        """A target started but cannot be watched (no descriptor for its pidfd, even with the
        reserve given back): it is killed, never left to run unseen, and that is a failed
        start (a fault), or a refused armload."""
        process.kill_unwatched(proc.pid)
        reason = (
            f"cannot watch the started process ({e.strerror}: the daemon is out of file "
            f"descriptors), so pid {proc.pid} was killed"
        )
        log.error("%s: %s", rt.watch.watch_id, reason)
        if first:
            return reason
        self._apply(rt, rt.watch.start_failed(self.clock(), reason))
        return None

    def unwritable(self) -> str:
        """Why an armload is refused while var/ takes no writes: one line."""
        failure = self.store.failure
        error = failure.error if failure else "unknown error"
        return (
            f"the state in {self.home.var} cannot be written ({error}); rearm takes no new "
            "watch it could not re-adopt after a restart (running watches go on). Free space "
            f"in {self.home.var} or make it writable, then try again"
        )

    def _log_for(self, rt: Runtime) -> str:
        """The target's output file: its log in var/, or /dev/null when var/ refuses it (full of
        inodes, read-only): a restart must not fail for want of a log."""
        path = self.home.watch_log(rt.watch.watch_id)
        # A crash loop appends a run's output at every restart: rotated when it grew too big.
        rotate_if_over(path, self.retention.log_max_bytes, self.retention.watch_log_keep)
        if self.store.failure is None:
            return path  # the usual case: one stat of the log before a spawn
        try:
            make_folders(os.path.dirname(path))
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640))
        except OSError as e:
            if e.errno not in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO):
                return path  # let the spawn report it, as before
            self.bus.emit(
                "watch_log_unwritable",
                f"{rt.watch.watch_id}: cannot open its log {path} ({e.strerror}): "
                "its output goes to /dev/null",
                severity="warning",
                group=rt.watch.group,
                watch=rt.watch.watch_id,
            )
            return os.devnull
        return path

    def _prepare_spawn(self, rt: Runtime) -> None:
        rt.token = uuid.uuid4().hex
        rt.pid_start = None
        rt.main_exited.clear()
        rt.settled.clear()

    async def _follow_pidfile(self, rt: Runtime, service: ServiceDef, launcher: Proc) -> None:
        """A daemon that forks: its start command exits, the real process is in the pid file.

        Only while starting, the file is looked at every PIDFILE_POLL seconds; from then on the
        real process is watched through its pidfd like any other.
        """
        assert service.pidfile is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PIDFILE_TIMEOUT
        try:
            launcher_fd: int | None = process.child_pidfd(launcher.pid)
        except OSError as e:
            self._unwatchable(rt, launcher, e, first=False)
            return
        w = rt.watch
        try:
            while not rt.forgotten:
                if launcher_fd is not None:
                    ended = process.reap_status(launcher_fd)
                    if ended is not None:
                        os.close(launcher_fd)
                        launcher_fd = None
                        if not ended[1]:
                            failed = w.start_failed(
                                self.clock(),
                                f"the start command {ended[0]}",
                                exit_status=ended[2],
                            )
                            self._apply(rt, failed)
                            return
                found = await pidfile.look_off_loop(
                    service.pidfile,
                    service.command[0],
                    not_before=launcher.start,
                    user=service.user,
                    launcher=launcher,
                )
                if rt.forgotten:
                    return
                if isinstance(found, str):  # what the service's user left there is refused
                    if launcher_fd is not None:
                        process.signal_target(launcher.pid, True, signal.SIGKILL)
                    self._apply(rt, w.start_failed(self.clock(), f"pid file refused: {found}"))
                    return
                if found is not None:
                    self._follow_found(rt, service, found, launcher)
                    if found.pid == launcher.pid:
                        launcher_fd = None  # now the watch's own pidfd holds it
                    return
                if loop.time() > deadline:
                    if launcher_fd is not None:
                        process.signal_target(launcher.pid, True, signal.SIGKILL)
                    self._apply(
                        rt,
                        w.start_failed(
                            self.clock(),
                            f"no live {os.path.basename(service.command[0])} process "
                            f"in {service.pidfile} within {PIDFILE_TIMEOUT:g} s",
                        ),
                    )
                    return
                await asyncio.sleep(PIDFILE_POLL)
        finally:
            if launcher_fd is not None:
                self._reap_later(launcher_fd)

    def _follow_found(self, rt: Runtime, service: ServiceDef, found: Proc, launcher: Proc) -> None:
        w = rt.watch
        if found.pid == launcher.pid:
            # It stayed in the foreground and wrote its own pid: it is our child after all.
            try:
                rt.pidfd = process.child_pidfd(found.pid)
            except OSError as e:
                self._unwatchable(rt, found, e, first=False)
                return
            rt.own_group = True
        else:
            fd = process.open_pidfd(found)
            if fd is None:
                self._apply(rt, w.start_failed(self.clock(), "the process in the pid file ended"))
                return
            rt.pidfd = fd
            rt.own_group = process.leads_own_group(found.pid)
        rt.pid_start = found.start
        effects: list[Effect] = [
            Emit("watch_follow", "info", f"{w.watch_id}: {service.pidfile} names pid {found.pid}")
        ]
        effects += w.started(found.pid, ready=service.ready is None, now=self.clock())
        self._apply(rt, effects)
        self._listen(rt)
        if service.ready is not None:
            self._task(rt, self._await_ready(rt, service.ready))

    def _reap_later(self, fd: int) -> None:
        """A start command still running after the pid file was found: reap it when it ends."""
        loop = asyncio.get_running_loop()

        def done() -> None:
            loop.remove_reader(fd)
            process.reap(fd)
            os.close(fd)

        loop.add_reader(fd, done)

    def _adopt(self, rt: Runtime, proc: Proc, how: str) -> None:
        pidfd = process.open_pidfd(proc)
        if pidfd is None:  # it ended between finding and adopting: start it instead
            self._spawn(rt)
            return
        rt.pidfd = pidfd
        rt.pid_start = proc.start
        rt.own_group = process.leads_own_group(proc.pid)
        w = rt.watch
        effects: list[Effect] = [
            Emit("watch_adopt", "info", f"{w.watch_id}: {how} (pid {proc.pid})")
        ]
        effects += w.started(proc.pid, ready=True)
        self._apply(rt, effects)
        self._listen(rt)

    async def _await_ready(self, rt: Runtime, check: ReadyCheck) -> None:
        env: dict[str, str] | None = None
        if check.command is not None:
            # Run like the stop command: as the service's user, with the service's environment.
            try:
                _, env, service = self._target(rt)
            except (SpawnError, ApiError):
                return  # the definition is gone or broken: the watch stays starting, as before
            if service is not None:
                check = dataclasses.replace(
                    check, command=tuple(_as_service(check.command, service))
                )
        await readiness.wait_ready(
            check, lambda: rt.watch.state is S.STARTING and rt.watch.pid is not None, env
        )
        if rt.watch.state is S.STARTING and rt.watch.pid is not None and not rt.forgotten:
            self._apply(
                rt,
                [
                    Emit("watch_ready", "info", f"{rt.watch.watch_id} is ready"),
                    *rt.watch.became_ready(),
                ],
            )

    def _listen(self, rt: Runtime) -> None:
        assert rt.pidfd is not None
        if not self._exits_listened:
            asyncio.get_running_loop().add_reader(self._exits.fileno(), self._on_exits)
            self._exits_listened = True
        self._exit_fds[rt.pidfd] = rt
        self._exits.register(rt.pidfd, select.EPOLLIN)

    def _unlisten(self, rt: Runtime) -> None:
        """Stop watching rt's pidfd and close it."""
        assert rt.pidfd is not None
        if self._exit_fds.pop(rt.pidfd, None) is not None:
            self._exits.unregister(rt.pidfd)
        os.close(rt.pidfd)
        rt.pidfd = None

    # ------------------------------------------------------------------------------------------
    # exits, restarts, final actions
    def _on_exits(self) -> None:
        """Every target that has ended since the last look: reaped, decided, then applied as
        one batch. Level-triggered: what one poll cannot take wakes the loop again."""
        batch: list[tuple[Runtime, list[Effect]]] = []
        for fd, _ in self._exits.poll(0):
            rt = self._exit_fds.get(fd)
            if rt is None or rt.pidfd != fd:
                continue
            effects = self._exited(rt)
            if effects is not None:
                batch.append((rt, effects))
        self._apply_many(batch)

    def _exited(self, rt: Runtime) -> list[Effect] | None:
        """Reap rt's target and let its watch decide; None when there is nothing to apply."""
        assert rt.pidfd is not None
        outcome = process.reap_status(rt.pidfd)
        self._unlisten(rt)
        detail, clean, status = outcome or (
            "ended (exit status unknown: not started by this daemon)",
            False,
            None,
        )
        rt.main_exited.set()
        try:
            return rt.watch.exited(self.clock(), detail, clean, exit_status=status)
        except InvalidTransition:
            log.exception("exit of %s ignored", rt.watch.watch_id)
            return None

    def _restart_due(self, rt: Runtime) -> None:
        rt.timer = None
        if rt.forgotten or rt.watch.state is not S.RESTARTING:
            return
        self._apply(rt, rt.watch.restart_due_now())

    async def _recover_by_script(self, rt: Runtime) -> None:
        w = rt.watch
        problem: str | None = "the watch has no group"
        if w.group is not None and self.run_recover_script is not None:
            try:
                problem = await self.run_recover_script(w.group, w.watch_id)
            except OSError as e:  # its log in var/ cannot be written (full, read-only)
                problem = f"the start script (RECOVER) could not run: {e}"
        if not rt.forgotten and w.state is S.STARTING and w.pid is None:
            detail = problem or "the start script (RECOVER) did not start it again"
            self._apply(rt, w.recover_script_missed(self.clock(), detail))

    def _apply(self, rt: Runtime, effects: list[Effect]) -> None:
        """Commit what must survive a crash, then act on the rest."""
        if self._gathered is not None:
            self._gathered.append((rt, effects))  # a batch is acting: it commits these next
            return
        self._apply_many([(rt, effects)])

    def _apply_many(self, batch: list[tuple[Runtime, list[Effect]]]) -> None:
        """`_apply` for many watches: one transaction for all their records, then their acts.
        What those acts start is committed by one more transaction, and so on until done."""
        with self.bus.held():  # log lines and alerts after the restarts, not before them
            while batch:
                decided = [(rt, self._decide_now(rt, effects)) for rt, effects in batch]
                with self.store.transaction():
                    pending = [self._record(rt, effects) for rt, effects in decided]
                self._gathered = []
                try:
                    for (rt, effects), actions in zip(decided, pending, strict=True):
                        self._act(rt, effects, actions)
                finally:
                    batch, self._gathered = self._gathered, None

    def _decide_now(self, rt: Runtime, effects: list[Effect]) -> list[Effect]:
        w = rt.watch
        if any(isinstance(e, ScheduleRestart) and e.delay == 0 for e in effects):
            # /INT 0: the restart is due now. Deciding it here lets one commit cover the fault,
            # the restart and the spawn token: the shortest safe path from exit to exec.
            effects = [e for e in effects if not (isinstance(e, ScheduleRestart) and e.delay == 0)]
            effects += w.restart_due_now()
        if any(isinstance(e, Spawn) for e in effects):
            self._prepare_spawn(rt)
        return effects

    def _record(self, rt: Runtime, effects: list[Effect]) -> list[Any]:
        """The part of `effects` that must survive a crash; inside the caller's transaction.
        Returns the final actions recorded, for `_act` to complete."""
        w = rt.watch
        pending: list[Any] = []
        for e in effects:
            if isinstance(e, RecordFault):
                self.store.add_fault(w.instance, rt.key, e.ts, e.detail)
            elif isinstance(e, Emit):
                self.bus.emit(
                    e.kind, e.message, severity=e.severity, group=w.group, watch=w.watch_id
                )
            elif isinstance(e, Forget):
                self.store.delete_watch(rt.key)
            elif isinstance(e, FireFinalAction) and self.record_final_action is not None:
                # Recorded with the escalation itself: no crash can separate the two.
                pending.append(self.record_final_action(w.watch_id, w.group))
        if not any(isinstance(e, Forget) for e in effects):
            self._save(rt)
        return pending

    def _act(self, rt: Runtime, effects: list[Effect], pending: list[Any]) -> None:
        """The rest of `effects`, once their records are committed."""
        if rt.watch.state is not S.STARTING:
            rt.settled.set()
        for e in effects:
            if isinstance(e, KillLeftovers):
                # Workers of the dead main process would hold its ports and files: end them.
                # The group to end is the one whose id is the dead pid. Only that process can
                # have created it, and Linux reuses no pid while a group of that id lives, so
                # this is right even for a daemon that called setsid() after writing its pid
                # file (nginx): the group is looked up now, not remembered from its start.
                process.signal_target(e.pid, True, signal.SIGKILL)
            elif isinstance(e, ScheduleRestart):
                rt.timer = asyncio.get_running_loop().call_later(e.delay, self._restart_due, rt)
            elif isinstance(e, CancelRestart):
                if rt.timer is not None:
                    rt.timer.cancel()
                    rt.timer = None
            elif isinstance(e, Spawn):
                self._restart(rt)
            elif isinstance(e, RunRecoverScript):
                self._task(rt, self._recover_by_script(rt))
            elif isinstance(e, FireFinalAction):
                if self.complete_final_action is not None:
                    for p in pending:
                        self._task(rt, self.complete_final_action(p), keep=True)
            elif isinstance(e, StopTarget):
                pass  # armkill drives the stop itself (see kill)
            elif isinstance(e, Forget):
                self._forget(rt)

    def _restart(self, rt: Runtime) -> None:
        """Spawn for a restart. It runs in a timer or an exit callback, where an exception
        would only reach the loop's handler and leave the watch `starting` with no process:
        one the spawn did not foresee is logged with its traceback and is a fault."""
        try:
            self._spawn(rt, prepared=True)
        except Exception as e:
            log.exception("%s: the restart failed", rt.watch.watch_id)
            w = rt.watch
            if not rt.forgotten and w.state is S.STARTING and w.pid is None and rt.pidfd is None:
                self._apply(rt, w.start_failed(self.clock(), f"cannot start: {e}"))

    def _persist(self, rt: Runtime) -> None:
        with self.store.transaction():
            self._save(rt)

    def _save(self, rt: Runtime) -> None:
        w = rt.watch
        if rt.stored_for is not w.request:  # serialised once per armload, not per save
            stored = request_to_dict(w.request)
            stored["env"] = rt.env
            stored["unit"] = rt.unit
            stored["definition"] = rt.definition
            rt.stored_request = json.dumps(stored)
            rt.stored_for = w.request
        due = w.restart_due
        self.store.put_watch(
            WatchRow(
                key=rt.key,
                instance=w.instance,
                group=w.group,
                request={},
                state=w.state.value,
                pid=w.pid,
                pid_start=rt.pid_start,
                own_group=rt.own_group,
                token=rt.token,
                restarts=w.restarts,
                restart_due=None if due is None else policy.wall(due),
                boot_id=self.boot_id,
                created=rt.created,
                detail=w.detail,
                restart_mono=due.mono
                if isinstance(due, Stamp) and due.boot == self.boot_id
                else None,
            ),
            rt.stored_request,
        )

    def _forget(self, rt: Runtime) -> None:
        rt.forgotten = True
        self.units.detach(rt)
        rt.settled.set()
        if rt.timer is not None:
            rt.timer.cancel()
        if rt.pidfd is not None:
            self._unlisten(rt)
        for task in rt.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self.runtimes.get(rt.key) is rt:
            del self.runtimes[rt.key]

    def _task(self, rt: Runtime, coro: Awaitable[Any], keep: bool = False) -> None:
        """Run `coro` for this watch. Its tasks end with it, except those that must `keep`
        going when the watch is forgotten (a final action that takes its group offline)."""
        task = asyncio.ensure_future(coro)
        owner = self._kept if keep else rt.tasks
        owner.add(task)
        task.add_done_callback(owner.discard)

    # ------------------------------------------------------------------------------------------
    # armkill
    async def kill(self, req: KillRequest) -> dict[str, Any]:
        rt = self.runtimes.get(watch_key(req.watch_id))
        if rt is None:
            raise ApiError(f"unknown watch ID '{req.watch_id}' (see 'rearm status')")
        result = await self.stop(rt, req.keep_running, req.timeout)
        failure = self.store.failure
        if failure is not None:
            # Accepted all the same: stopping a service is what an operator does in a disk
            # emergency (maybe the one filling the disk). The end is written when var/ takes
            # writes again; only a daemon crash before then would bring the watch back.
            warning = (
                f"the state in {self.home.var} cannot be written ({failure.error}): the end of "
                f"{rt.watch.watch_id} is kept in memory and written as soon as it can be"
            )
            log.warning("armkill %s: %s", rt.watch.watch_id, warning)
            result["warning"] = warning
        return result

    async def stop(self, rt: Runtime, keep_running: bool, timeout: int) -> dict[str, Any]:
        w = rt.watch
        try:
            effects = w.kill(keep_running, timeout)
        except InvalidTransition as e:
            raise ApiError(str(e)) from None
        pid = w.pid
        self._apply(rt, effects)
        stop = next((e for e in effects if isinstance(e, StopTarget)), None)
        if stop is None:
            left = " (left running)" if keep_running and pid else ""
            return {"id": w.watch_id, "message": f"{w.watch_id}: watch ended{left}"}
        assert pid is not None
        message = await self._stop_target(rt, pid, stop.timeout)
        return {"id": w.watch_id, "message": message}

    async def _stop_target(self, rt: Runtime, pid: int, timeout: int) -> str:
        if rt.unit is not None:
            return await self.units.stop(rt, timeout)
        w = rt.watch
        killed = await self._end_target(rt, pid, timeout)
        detail = f"killed with SIGKILL after {timeout} s" if killed else (w.detail or "ended")
        self._apply(rt, w.stop_finished(detail))
        return f"{w.watch_id} stopped" + (f": {detail}" if killed else "")

    async def _end_target(self, rt: Runtime, pid: int, timeout: int) -> bool:
        """Stop command or signal, then SIGKILL after `timeout` s (0: never); True if killed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout == 0 else loop.time() + timeout
        w = rt.watch
        service = None
        if w.request.service is not None:
            with contextlib.suppress(ApiError):
                service = self._service(w.request)
        if service is not None and service.stop_command is not None:
            await self._run_stop_command(rt, list(service.stop_command), deadline)
        else:
            sig = signal.Signals["SIG" + service.stop_signal] if service else signal.SIGTERM
            # Whether it leads its group is looked up now: a forking daemon may have called
            # setsid() after its pid file was read.
            rt.own_group = rt.own_group or process.leads_own_group(pid)
            process.signal_target(pid, rt.own_group, sig)
        killed = not await self._wait_gone(rt, pid, deadline)
        if killed:
            process.signal_target(pid, rt.own_group, signal.SIGKILL)
            await self._wait_gone(rt, pid, loop.time() + 10)
        return killed

    # ------------------------------------------------------------------------------------------
    # rearm restart
    async def restart(self, watch_id: str, timeout: int = 40) -> dict[str, Any]:
        """Stop the target and start it again, as an operator asks: not a fault."""
        rt = self.runtimes.get(watch_key(watch_id))
        if rt is None:
            raise ApiError(f"unknown watch ID '{watch_id}' (see 'rearm status')")
        w = rt.watch
        if rt.unit is not None:
            raise ApiError(
                f"{w.watch_id} runs as the systemd unit {rt.unit}: restart it with "
                f"'armkill {w.watch_id}' and armload again (systemctl restart would be a fault)"
            )
        pid = w.pid
        try:
            effects = w.restart_requested(timeout)
        except InvalidTransition as e:
            raise ApiError(str(e)) from None
        self._apply(rt, effects)
        if pid is not None and any(isinstance(e, StopTarget) for e in effects):
            message = await self._finish_restart(rt, pid, timeout)
            return {"id": w.watch_id, "message": message}
        return {"id": w.watch_id, "message": f"{w.watch_id} started again"}

    async def _finish_restart(self, rt: Runtime, pid: int, timeout: int) -> str:
        w = rt.watch
        killed = await self._end_target(rt, pid, timeout)
        if rt.forgotten or rt.state() is not S.RESTARTING or w.pid is not None:
            return f"{w.watch_id}: the restart was overtaken (see 'rearm status')"
        self._apply(rt, w.restart_due_now())
        how = f" (killed with SIGKILL after {timeout} s)" if killed else ""
        return f"{w.watch_id} stopped{how} and started again"

    async def _wait_gone(self, rt: Runtime, pid: int, deadline: float | None) -> bool:
        """Wait for the main process to exit and, for a group rearm created, all its members."""
        loop = asyncio.get_running_loop()
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await asyncio.wait_for(rt.main_exited.wait(), remaining)
        except TimeoutError:
            return False
        # Members of the group have no pidfd of ours: look every 20 ms, only while stopping.
        while rt.own_group and process.group_alive(pid):
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _run_stop_command(self, rt: Runtime, argv: list[str], deadline: float | None) -> None:
        try:
            _, env, service = self._target(rt)
            # As the service's user, in its folder: the stop command acts for the service and
            # is often the service's own script, which its user may change.
            if service is not None:
                argv = _as_service(argv, service)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except (OSError, ApiError) as e:
            self.bus.emit(
                "stop_command_failed",
                f"{rt.watch.watch_id}: stop command: {e}",
                severity="warning",
                group=rt.watch.group,
                watch=rt.watch.watch_id,
            )
            return
        loop = asyncio.get_running_loop()
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await asyncio.wait_for(proc.wait(), remaining)
        except TimeoutError:
            process.signal_target(proc.pid, True, signal.SIGKILL)
            await proc.wait()

    # ------------------------------------------------------------------------------------------
    # groups and status
    def watches_of(self, group: str | None) -> list[Runtime]:
        return [rt for rt in self.runtimes.values() if rt.watch.group == group]

    async def end_group(self, group: str, timeout: int) -> None:
        """After a group's stop script: end every watch of the group that is still there."""
        jobs = []
        for rt in self.watches_of(group):
            if rt.watch.state is S.STOPPING:
                jobs.append(self._wait_forgotten(rt))
            else:
                jobs.append(self.stop(rt, keep_running=False, timeout=timeout))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                log.warning("ending a watch of group %s: %s", group, r)

    async def _wait_forgotten(self, rt: Runtime) -> dict[str, Any]:
        while not rt.forgotten:
            await asyncio.sleep(0.05)
        return {}

    def describe(self, rt: Runtime, now: policy.Time) -> dict[str, Any]:
        """`now`: self.clock() -- a bare wall time would count the /H window by the wall clock."""
        w = rt.watch
        p = w.request.policy
        state = w.state
        return {
            "id": w.watch_id,
            "target": w.request.target,
            "kind": w.request.kind.value,
            # `stopping` is not a state of the contract: the target still runs until it ends.
            "state": (S.RUNNING if state is S.STOPPING else state).value,
            "stopping": state is S.STOPPING,
            "pid": w.pid,
            "restarts": w.restarts,
            "faults_in_window": w.faults_in_window(now),
            "retry": p.retry,
            "hours": p.hours,
            "interval": p.interval,
            "script": p.script,
            "detail": w.detail,
            # A unit's output goes to systemd's journal, not to a log file of rearm's.
            "log": None if rt.unit else self.home.watch_log(w.watch_id),
            "backend": "systemd" if rt.unit else "process",
            "unit": rt.unit,
            # The definition file changed since the target was started from it: the next
            # (re)start runs something else. Said here, so no change goes unseen.
            "definition_changed": self._definition_changed(rt),
        }

    def _started_from(self, rt: Runtime, service: ServiceDef) -> None:
        digest = uses.definition_digest(service)
        if digest != rt.definition:
            rt.definition = digest
            rt.stored_for = None  # stored with the request: made again at the next save

    def _definition_changed(self, rt: Runtime) -> bool:
        req = rt.watch.request
        if rt.definition is None or req.service is None or rt.unit is not None:
            return False
        path = self.home.service_file(req.service.lower())
        signature = uses.file_signature(path)
        known = self._on_disk.get(path)
        if known is None or known[0] != signature:
            digest = None
            if signature is not None:
                with contextlib.suppress(ApiError):
                    service = self._service_def(req)
                    digest = uses.definition_digest(service) if service is not None else None
            known = (signature, digest)
            self._on_disk[path] = known
        return known[1] != rt.definition

    # ------------------------------------------------------------------------------------------
    # after losing the state database
    def fault_windows(self, now: float) -> dict[str, float]:
        """For the housekeeping (daemon/housekeeping.py): per armload with /H, the wall time
        before which its faults no longer count, with a whole window more as margin (the wall
        clock may step). Faults of armloads without /H all count: none are given."""
        return {
            rt.watch.instance: now - 2 * rt.watch.request.policy.hours * self.hour_seconds
            for rt in self.runtimes.values()
            if rt.watch.request.policy.hours
        }

    def _service_user(self, name: str) -> str | None:
        """The `user =` of service NAME's definition (None: none, or no usable definition)."""
        try:
            service = load_service(self.home, name)
        except ConfigError:
            return None
        return service.user if service is not None else None

    def rebuild_from_processes(self) -> dict[str, str | None]:
        """Watch again every live target this home started, found by its environment.

        Each target carries its home and its armload request (see _target). A target's children
        inherit both, so only the session leader of each watch -- the process rearm (or the
        daemon itself, after forking) made leader -- is taken. Returns watch ID -> group.
        """
        leaders: dict[str, tuple[Proc, dict[str, str]]] = {}
        for proc, env in process.processes_with_env(STATE_VAR, self.home.var, self._service_user):
            try:
                if os.getsid(proc.pid) != proc.pid:
                    continue
            except ProcessLookupError:
                continue
            key = watch_key(env.get("REARM_WATCH", ""))
            if key and (key not in leaders or proc.start < leaders[key][0].start):
                leaders[key] = (proc, env)
        found: dict[str, str | None] = {}
        for key, (proc, env) in leaders.items():
            try:
                req = request_from_dict(json.loads(env[REQUEST_VAR]))
            except (KeyError, ValueError, TypeError, RecursionError):
                continue
            group = env.get("REARM_GROUP") or None
            rt = Runtime(
                watch=Watch(req.watch_id, req, group, uuid.uuid4().hex, hour=self.hour_seconds),
                env=_clean_env({k: v for k, v in env.items() if not k.startswith("REARM_")}),
            )
            self.runtimes[key] = rt
            self._adopt(rt, proc, "re-adopted after the state database was rebuilt")
            found[req.watch_id] = group
        return found

    # ------------------------------------------------------------------------------------------
    # after a daemon restart
    def recover(self) -> None:
        """Rebuild every watch from the store and re-attach to its live process."""
        now = self.clock()
        rows = self.store.watches()
        # The tokens of spawns a crash may have cut off from their record (no pid yet), looked
        # up in one pass over /proc: per watch, that would be N passes at N watches.
        tokens = {r.token for r in rows if r.token and (r.pid is None or r.pid_start is None)}
        self._token_index = (tokens, process.find_by_tokens(tokens))
        try:
            self._recover_rows(rows, now)
        finally:
            self._token_index = (set(), {})

    def _spawned_before(self, token: str) -> list[Proc]:
        looked_up, index = self._token_index
        return index.get(token, []) if token in looked_up else process.find_by_token(token)

    def _recover_rows(self, rows: list[WatchRow], now: Stamp) -> None:
        for row in rows:
            if row.boot_id != self.boot_id:
                with self.store.transaction():
                    self.store.delete_watch(row.key)
                    self.bus.emit(
                        "watch_lost",
                        f"{row.request.get('watch_id', row.key)}: from before the last boot; "
                        "its group's start script starts it again",
                        severity="warning",
                        group=row.group,
                        watch=row.key,
                    )
                continue
            self._recover_one(row, now)

    def _recover_one(self, row: WatchRow, now: Stamp) -> None:
        if watch_key(str(row.request.get("watch_id", ""))) in self.runtimes:
            return  # rebuilt from its process already
        req = request_from_dict(row.request)
        env = row.request.get("env")
        w = Watch(
            req.watch_id,
            req,
            row.group,
            row.instance,
            state=WatchState(row.state),
            pid=row.pid,
            restarts=row.restarts,
            fault_times=self.store.fault_times(row.instance),
            detail=row.detail,
            restart_due=row.restart_stamp,
            hour=self.hour_seconds,
        )
        rt = Runtime(
            watch=w,
            env=_clean_env(env) if isinstance(env, dict) else {},
            pid_start=row.pid_start,
            own_group=row.own_group,
            token=row.token,
            created=row.created,
        )
        unit = row.request.get("unit")
        rt.unit = unit if isinstance(unit, str) else None
        definition = row.request.get("definition")
        rt.definition = definition if isinstance(definition, str) else None
        self.runtimes[rt.key] = rt
        if w.state in (S.STOPPED, S.FAILED, S.ESCALATED):
            rt.settled.set()
            return
        if w.state is S.RESTARTING and w.pid is not None:
            # The daemon stopped while `rearm restart` stopped the target: finish that.
            pidfd = None
            if rt.pid_start is not None:
                pidfd = process.open_pidfd(Proc(w.pid, rt.pid_start))
            if pidfd is not None:
                rt.pidfd = pidfd
                self._listen(rt)
                self._task(rt, self._finish_restart(rt, w.pid, 40))
                return
            w.pid = None
            rt.main_exited.set()
            w.restart_due = None
        if w.state is S.RESTARTING:
            # What is left of /INT, by the boot clock (policy.until): a wall-clock step while
            # no daemon ran makes the restart neither early nor late. Never more than /INT.
            left = policy.until(now, w.restart_due) if w.restart_due is not None else 0.0
            due = max(0.0, min(left, float(req.policy.interval)))
            rt.timer = asyncio.get_running_loop().call_later(due, self._restart_due, rt)
            return
        if rt.unit is not None:
            self._task(rt, self.units.recover(rt))
            return
        if w.pid is not None and rt.pid_start is not None:
            pidfd = process.open_pidfd(Proc(w.pid, rt.pid_start))
            if pidfd is not None:
                rt.pidfd = pidfd
                self._listen(rt)
                self.bus.emit(
                    "watch_readopt",
                    f"{w.watch_id}: re-adopted pid {w.pid}",
                    group=w.group,
                    watch=w.watch_id,
                )
                if w.state is S.STOPPING:
                    self._task(rt, self._stop_target(rt, w.pid, 40))
                elif w.state is S.STARTING:
                    self._apply(rt, w.became_ready())
                return
            # It ended while no daemon was watching: that is a fault like any other.
            rt.main_exited.set()
            if w.state is S.STOPPING:
                self._apply(rt, w.stop_finished("ended while the daemon was not running"))
            else:
                self._apply(
                    rt, w.exited(now, "ended while the daemon was not running", False, seen=False)
                )
            return
        # STARTING without a recorded pid: a spawn may have happened just before a crash.
        found = self._spawned_before(rt.token) if rt.token else []
        if found:
            self._adopt(rt, found[0], "re-adopted the process started before the daemon stopped")
            rt.own_group = True
        elif w.state is S.STARTING:
            self._spawn(rt)
        else:  # STOPPING with nothing left to stop
            self._apply(rt, w.stop_finished("ended while the daemon was not running"))


def _as_service(argv: Sequence[str], service: ServiceDef) -> list[str]:
    """A command run for the service (stop, ready) as the service itself runs: its user,
    group and folder (not its limits: they are for the service's own processes)."""
    return process.wrap(argv, cwd=service.directory, user=service.user, group=service.group)


def make_clock(boot_id: str) -> Callable[[], Stamp]:
    """Now, on both clocks: the wall clock and this boot's CLOCK_BOOTTIME (which, unlike
    CLOCK_MONOTONIC, goes on counting while the machine is suspended, as /H hours do).

    Tests move the daemon's wall clock without touching the machine's: the file named by
    REARM_TEST_WALL_OFFSET_FILE holds seconds to add to it, read at every look. Like
    REARM_TEST_HOUR_SECONDS it is honoured only with REARM_DRILL=1.
    """
    offset_file = os.environ.get("REARM_TEST_WALL_OFFSET_FILE")
    if offset_file and os.environ.get("REARM_DRILL", "") not in ("", "0"):

        def test_clock() -> Stamp:
            try:
                with open(offset_file) as f:
                    offset = float(f.read().strip() or 0)
            except (OSError, ValueError):
                offset = 0.0
            return Stamp(time.time() + offset, boot_id, time.clock_gettime(time.CLOCK_BOOTTIME))

        return test_clock

    def clock() -> Stamp:
        return Stamp(time.time(), boot_id, time.clock_gettime(time.CLOCK_BOOTTIME))

    return clock


def test_hour_seconds() -> float:
    """The length of an /H hour. Tests shorten it with REARM_TEST_HOUR_SECONDS to see a window
    expire; it is honoured only with REARM_DRILL=1 too, so no real setup can be fooled by it."""
    text = os.environ.get("REARM_TEST_HOUR_SECONDS")
    if text and os.environ.get("REARM_DRILL", "") not in ("", "0"):
        return float(text)
    return float(policy.SECONDS_PER_HOUR)


# The armload lines of one start script all send the same environment. Watches with equal
# environments share one (never mutated) dict: at 1,000 watches that is megabytes of memory.
# Bounded, so that callers with ever-changing environments cannot make it grow.
_ENV_SHARED_MAX = 256
_shared_envs: dict[frozenset[tuple[str, str]], dict[str, str]] = {}


def _clean_env(env: dict[str, str]) -> dict[str, str]:
    """The caller's environment as a watch keeps it: without rearm's own variables, and
    shared with the other watches that have the same one. The result must not be changed."""
    clean = {k: v for k, v in env.items() if k not in DROP_ENV and not k.startswith("REARM_SPAWN")}
    key = frozenset(clean.items())
    shared = _shared_envs.get(key)
    if shared is not None:
        return shared
    if len(_shared_envs) >= _ENV_SHARED_MAX:
        _shared_envs.clear()
    _shared_envs[key] = clean
    return clean
