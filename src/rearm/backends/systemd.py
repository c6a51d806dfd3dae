"""systemd units over D-Bus: start, stop and watch `NAME.service` through org.freedesktop.systemd1.

Used for `armload /S NAME` when no service definition exists and systemd manages the unit.
systemd stays the one that runs the process; rearm tells it when to start and stop, and learns of
every change of the unit from signals systemd pushes (no polling).

How it talks to systemd (see docs/systemd-testing.md for what was observed on systemd 252):

* The system bus (dbus-daemon), never /run/systemd/private: that socket serves only peers whose
  credentials systemd can see and does not answer `Hello`.
* `Manager.Subscribe()` once per connection: without it systemd emits no unit signals at all.
* Match rules: `JobRemoved` on the manager (start/stop wait for their own job), and one
  `PropertiesChanged` rule per watched unit path (not one for every unit: a busy server changes
  session scopes and timers all the time, and the bus daemon filters for us).
* Properties are snapshots: a signal carries the state *now*, sometimes repeated or stale; the
  Service interface (MainPID, Result, ExecMain*) and the Unit interface (ActiveState, SubState)
  change in two separate signals. A watch merges both into one cached set and reports a fresh
  `UnitState` whenever that set changes.

dbus-fast is imported lazily: this module is loaded only when a /S target has no definition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rearm.backends.process import describe_exit

if TYPE_CHECKING:
    from dbus_fast import Message
    from dbus_fast.aio import MessageBus

log = logging.getLogger("rearm.systemd")

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
PROPERTIES = "org.freedesktop.DBus.Properties"
DBUS = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"

#: Where the system bus listens when $DBUS_SYSTEM_BUS_ADDRESS does not say otherwise.
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
#: A server without systemd must be told so at once, not after a long hang.
CONNECT_TIMEOUT = 2.0
#: Upper bound for one method call (libdbus's default reply timeout): systemd answers calls at
#: once and runs jobs afterwards, so a call that takes this long means systemd is stuck.
CALL_TIMEOUT = 25.0
#: After SIGKILL to all of a unit's processes, how long the stop job may still take.
KILL_GRACE = 10.0

# The properties a UnitState is made of, by interface; everything else GetAll returns is dropped.
# ConditionResult only serves to explain a start that did nothing.
_UNIT_PROPS = frozenset({"LoadState", "ActiveState", "SubState", "ConditionResult"})
_SERVICE_PROPS = frozenset({"MainPID", "Result", "ExecMainCode", "ExecMainStatus", "Restart"})
_WANTED = {UNIT: _UNIT_PROPS, SERVICE: _SERVICE_PROPS}

# systemd's own exit statuses (`systemd-analyze exit-status`, class "systemd"): the service's
# process exits with one of these when systemd fails to prepare it, before the program runs.
_SETUP_FAILURES = {
    200: "could not change to its WorkingDirectory=",
    203: "could not execute the program",
    204: "ran out of memory",
    208: "could not set up standard input",
    209: "could not set up standard output",
    210: "could not change root (RootDirectory=)",
    216: "could not set the Group=",
    217: "could not set the User=",
    218: "could not set the capabilities",
    222: "could not set up standard error",
    224: "PAM setup failed",
    226: "could not set up the file system namespace",
    233: "could not create the RuntimeDirectory=",
    238: "could not create the StateDirectory=",
    239: "could not create the CacheDirectory=",
    240: "could not create the LogsDirectory=",
    241: "could not create the ConfigurationDirectory=",
    243: "could not load the credentials",
}
_SETUP_RANGE = range(200, 245)  # 255 is in systemd's table too, but programs exit 255 themselves

# The Service Result values that say more than the exit status does.
_RESULTS = {
    "timeout": "timed out",
    "watchdog": "watchdog timeout",
    "oom-kill": "out of memory: the kernel's OOM killer ended it",
    "start-limit-hit": "systemd's start rate limit was hit",
    "resources": "systemd could not set up its resources (a missing user, directory or file?)",
    "protocol": "it did not follow the start-up protocol of its Type= (no PID file or no READY)",
    "exit-code": "it exited with a failure status",
    "signal": "it was killed by a signal",
    "core-dump": "it dumped core",
}


class SystemdError(Exception):
    """A failure talking to systemd or of a unit; str() is one line meant for the user."""


class _CallError(SystemdError):
    """systemd (or the bus) answered a call with a D-Bus error."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(text)
        self.name = name
        self.text = text


@dataclass(frozen=True)
class UnitState:
    """A snapshot of one service unit as systemd reports it. PIDs are those of systemd's PID
    namespace (the machine's, unless systemd runs in a container)."""

    name: str
    load_state: str  # loaded, not-found, masked, error, bad-setting...
    active_state: str  # active, reloading, inactive, failed, activating, deactivating
    sub_state: str  # for services: running, dead, failed, auto-restart, start, exited...
    main_pid: int | None  # None when systemd knows no main process
    result: str | None  # Service Result: success, exit-code, signal, core-dump, timeout...
    exec_main_code: int | None  # 1 CLD_EXITED, 2 CLD_KILLED, 3 CLD_DUMPED; None: no exit yet
    exec_main_status: int | None  # exit status or signal number; None when exec_main_code is
    restart: str | None  # the unit's Restart= setting (no, on-failure, always...)


def unit_name(name: str) -> str:
    """`web` -> `web.service` (armload /S names a service; `web.service` is taken as is)."""
    return name if name.endswith(".service") else name + ".service"


def is_down(state: UnitState) -> bool:
    """The service has ended and systemd is not bringing it back itself.

    `failed`/`inactive` only: `activating`/`auto-restart` means systemd's own Restart= is at
    work, and `deactivating` means it is still stopping. With Restart= other than `no`, systemd
    briefly reports `failed` before switching to `auto-restart`; armload refuses such units, as
    rearm must be the one that restarts and counts.
    """
    return state.active_state in ("inactive", "failed") and state.sub_state != "auto-restart"


def exit_detail(state: UnitState) -> tuple[str, bool]:
    """How the main process ended, e.g. ("killed by SIGKILL", False) or ("exit status 0", True).

    Clean means exit status 0, as for processes rearm spawns itself: a signal is never clean,
    even one systemd counts as success (SIGTERM on stop).
    """
    code, status, result = state.exec_main_code, state.exec_main_status, state.result
    failed = result not in (None, "", "success")
    if code in (os.CLD_EXITED, os.CLD_KILLED, os.CLD_DUMPED) and status is not None:
        text, clean = describe_exit(code, status)
        if code == os.CLD_EXITED and status in _SETUP_RANGE and result == "exit-code":
            text += f" (systemd {_SETUP_FAILURES.get(status, 'could not set up the process')})"
        elif result in ("timeout", "watchdog", "oom-kill"):
            text += f" ({_RESULTS[result]})"
        return text, clean and not failed
    if failed:
        assert result is not None
        return _RESULTS.get(result, f"result {result}"), False
    return "no exit recorded", True


class UnitWatch:
    """A subscription to one unit's changes (from SystemdUnits.watch)."""

    def __init__(
        self, units: SystemdUnits, name: str, path: str, on_change: Callable[[UnitState], None]
    ) -> None:
        self.name = name
        self.path = path
        #: The latest snapshot: as of the subscription, then kept current.
        self.state: UnitState | None = None
        self._units = units
        self._on_change = on_change
        self._props: dict[str, Any] = {}
        self._ready = False
        self._cancelled = False

    def cancel(self) -> None:
        """Stop the callbacks (idempotent)."""
        if not self._cancelled:
            self._cancelled = True
            self._units._drop_watch(self)

    def _merge(self, interface: str, changed: dict[str, Any], invalidated: Iterable[str]) -> None:
        """Fold a GetAll reply or a PropertiesChanged signal into the cache, in bus order."""
        wanted = _WANTED.get(interface)
        if wanted is None or self._cancelled:
            return
        for key, variant in changed.items():
            if key in wanted:
                self._props[key] = variant.value
        if self._ready and wanted.intersection(invalidated):
            # systemd sends these properties' values, but if one is ever only invalidated, its
            # new value must be read before the snapshot means anything.
            self._units._refresh(self)
            return
        self._publish()

    def _publish(self) -> None:
        if not self._ready or self._cancelled or self.path in self._units._busy:
            return
        state = _snapshot(self.name, self._props)
        if state == self.state:
            return  # systemd repeats unchanged values; report changes only
        self.state = state
        try:
            self._on_change(state)
        except Exception:
            log.exception("systemd watch callback for %s failed", self.name)


def _snapshot(name: str, props: dict[str, Any]) -> UnitState:
    code = props.get("ExecMainCode") or None
    pid = props.get("MainPID") or None
    return UnitState(
        name=name,
        load_state=str(props.get("LoadState", "")),
        active_state=str(props.get("ActiveState", "")),
        sub_state=str(props.get("SubState", "")),
        main_pid=int(pid) if pid else None,
        result=props.get("Result") or None,
        exec_main_code=int(code) if code else None,
        exec_main_status=int(props.get("ExecMainStatus", 0)) if code else None,
        restart=props.get("Restart") or None,
    )


def _start_failure(unit: str, job: str, state: UnitState, props: dict[str, Any]) -> str:
    """One line on why a start did not leave the unit running, from the job result and state."""
    journal = f"; see journalctl -u {unit}"
    if job == "done":  # the job succeeded, yet the unit is down
        if props.get("ConditionResult") is False:
            return f"{unit} was not started: a Condition= of the unit is not met"
        return f"{unit} stopped right after it started: {exit_detail(state)[0]}{journal}"
    if job == "failed":
        return f"{unit} failed to start: {exit_detail(state)[0]}{journal}"
    if job == "timeout":
        return f"{unit} did not finish starting within its TimeoutStartSec={journal}"
    if job == "dependency":
        return f"{unit} was not started: a unit it depends on failed to start"
    if job == "assert":
        return f"{unit} was not started: an Assert= of the unit failed"
    if job == "canceled":
        return f"the start of {unit} was canceled (another job for the unit replaced it)"
    return f"the start of {unit} ended with job result '{job}'"


def _where(address: str) -> str:
    """The socket path of a plain `unix:path=...` address (what the user knows), else the
    address itself."""
    prefix = "unix:path="
    if address.startswith(prefix) and "," not in address and ";" not in address:
        return address[len(prefix) :]
    return address


class SystemdUnits:
    """One connection to systemd on the system bus. Create with `await SystemdUnits.connect()`;
    everything runs on the caller's event loop."""

    def __init__(self, bus: MessageBus, where: str) -> None:
        self._bus = bus
        self._where = where
        self._loop = asyncio.get_running_loop()
        self._watches: dict[str, list[UnitWatch]] = {}
        # Calls whose reply must be handled in bus order (see _call), by serial.
        self._reply_hooks: dict[int, Callable[[Message], None]] = {}
        # Jobs being waited for, by object path; and jobs that ended before their waiter was
        # registered (JobRemoved may be handled before the StartUnit reply's await resumes).
        self._job_waiters: dict[str, asyncio.Future[str]] = {}
        self._jobs_ended: dict[str, str] = {}
        self._submitting = 0
        # Unit paths with a start()/stop() of ours in progress, and how many.
        self._busy: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost: str | None = None
        # The unique bus name of systemd's connection: the only sender trusted for its signals.
        self._owner: str | None = None
        self._lost_event = asyncio.Event()
        self._closing = False

    # --- connection ---------------------------------------------------------------------------
    @classmethod
    async def connect(cls, bus_address: str | None = None) -> SystemdUnits:
        """Connect to systemd on the system bus ($DBUS_SYSTEM_BUS_ADDRESS or the standard socket
        unless `bus_address` is given). Raises SystemdError within ~2 s when there is none."""
        from dbus_fast.aio import MessageBus

        address = bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS
        where = _where(address)
        try:
            bus = MessageBus(bus_address=address)
        except Exception as e:
            raise SystemdError(f"bad D-Bus address {address!r}: {e}") from None
        try:
            await asyncio.wait_for(bus.connect(), CONNECT_TIMEOUT)
        except TimeoutError:
            bus.disconnect()
            raise SystemdError(
                f"systemd is not running here (the system bus at {where} did not answer "
                f"within {CONNECT_TIMEOUT:g} s)"
            ) from None
        except Exception as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise SystemdError(
                f"systemd is not running here (no system bus at {where}: {reason})"
            ) from None
        units = cls(bus, where)
        bus.add_message_handler(units._on_message)
        units._spawn(units._watch_connection())
        try:
            await asyncio.wait_for(units._setup(), CONNECT_TIMEOUT)
        except BaseException as e:
            await units.close()
            if isinstance(e, TimeoutError):
                raise SystemdError(
                    f"systemd did not answer on the system bus at {where} "
                    f"within {CONNECT_TIMEOUT:g} s"
                ) from None
            raise
        return units

    async def _setup(self) -> None:
        # NameOwnerChanged first, so that no change of systemd's owner falls between the two.
        await self._add_match(
            f"type='signal',sender='{DBUS}',path='{DBUS_PATH}',interface='{DBUS}',"
            f"member='NameOwnerChanged',arg0='{SYSTEMD}'"
        )
        try:
            [owner] = await self._call(DBUS_PATH, DBUS, "GetNameOwner", "s", [SYSTEMD], to=DBUS)
        except _CallError:
            raise SystemdError(
                f"systemd is not running here (nothing provides {SYSTEMD} "
                f"on the system bus at {self._where})"
            ) from None
        self._owner = str(owner)
        base = f"type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}'"
        await self._add_match(base + ",member='JobRemoved'")
        await self._call(MANAGER_PATH, MANAGER, "Subscribe")

    async def close(self) -> None:
        """Disconnect; watches stop, pending start/stop calls fail. Idempotent."""
        self._closing = True
        for watches in list(self._watches.values()):
            for w in list(watches):
                w.cancel()
        if self._bus.connected:
            self._bus.disconnect()  # systemd drops the subscription when our name goes away
        self._connection_lost("the connection to systemd was closed")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def lost(self) -> str | None:
        """Why the connection ended (None while it works)."""
        return self._lost

    async def wait_lost(self) -> str:
        """Wait until the connection ends (the bus daemon went away, or close()); the reason.
        Watches get no more changes after that: the caller must reconnect and re-watch."""
        await self._lost_event.wait()
        assert self._lost is not None
        return self._lost

    async def _watch_connection(self) -> None:
        try:
            await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            reason = "the system bus closed the connection"
        except (EOFError, ConnectionError):
            reason = "the system bus closed the connection"
        except Exception as e:
            reason = f"the connection to the system bus broke ({type(e).__name__}: {e})"
        self._connection_lost(reason)

    def _connection_lost(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason if not self._closing else "the connection to systemd was closed"
            if not self._closing:
                log.error("systemd backend: %s", reason)
        self._fail_jobs(self._lost)
        self._lost_event.set()

    def _fail_jobs(self, reason: str) -> None:
        for fut in self._job_waiters.values():
            if not fut.done():
                fut.set_exception(SystemdError(reason))
        self._job_waiters.clear()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None:
            log.warning("systemd backend: %s", e)

    # --- D-Bus plumbing -----------------------------------------------------------------------
    async def _call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
        *,
        to: str = SYSTEMD,
        in_order: Callable[[Message], None] | None = None,
    ) -> list[Any]:
        """A method call; a D-Bus error reply raises _CallError with systemd's own message.

        `in_order` gets the reply inside the message handler, i.e. exactly between the signals
        received before and after it. Awaiting the reply is not enough for that: the signals
        that follow it in the same read are handled before the awaiting code resumes.
        """
        from dbus_fast import Message, MessageType

        if self._lost is not None:
            raise SystemdError(self._lost)
        msg = Message(
            destination=to,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
        )
        if in_order is not None:
            msg.serial = self._bus.next_serial()
            self._reply_hooks[msg.serial] = in_order
        try:
            reply = await asyncio.wait_for(self._bus.call(msg), CALL_TIMEOUT)
        except TimeoutError:
            raise SystemdError(
                f"systemd did not answer {member} within {CALL_TIMEOUT:g} s"
            ) from None
        except SystemdError:
            raise
        except Exception as e:
            raise SystemdError(self._lost or f"the system bus connection failed ({e})") from None
        finally:
            if in_order is not None:
                self._reply_hooks.pop(msg.serial, None)
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise _CallError(reply.error_name or "", text or reply.error_name or "error")
        return list(reply.body)

    def _send_no_reply(
        self, path: str, interface: str, member: str, sig: str, body: list[Any]
    ) -> None:
        """Fire and forget (RemoveMatch when a watch ends: nothing waits for it)."""
        from dbus_fast import Message, MessageFlag

        if self._lost is not None or not self._bus.connected:
            return
        msg = Message(
            destination=DBUS if interface == DBUS else SYSTEMD,
            path=path,
            interface=interface,
            member=member,
            signature=sig,
            body=body,
            flags=MessageFlag.NO_REPLY_EXPECTED,
        )
        sent = self._bus.send(msg)
        sent.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _add_match(self, rule: str) -> None:
        await self._call(DBUS_PATH, DBUS, "AddMatch", "s", [rule], to=DBUS)

    def _on_message(self, msg: Message) -> None:
        """Every message the connection receives, in order (dbus-fast's handler)."""
        from dbus_fast import MessageType

        kind = msg.message_type
        if kind is MessageType.METHOD_RETURN or kind is MessageType.ERROR:
            hook = self._reply_hooks.pop(msg.reply_serial, None)
            if hook is not None and kind is MessageType.METHOD_RETURN:
                hook(msg)
            return
        if kind is not MessageType.SIGNAL:
            return
        # Any local client may send a signal straight to our connection (match rules do not
        # filter those): only what systemd's own connection sends, as the bus daemon vouches,
        # may say that a unit changed.
        sender, member = msg.sender, msg.member
        if member == "PropertiesChanged" and msg.interface == PROPERTIES:
            watches = self._watches.get(msg.path or "")
            if watches and sender == self._owner:
                interface, changed, invalidated = msg.body
                for w in list(watches):
                    w._merge(interface, changed, invalidated)
        elif member == "JobRemoved" and msg.interface == MANAGER and sender == self._owner:
            _id, job, _unit, result = msg.body
            waiter = self._job_waiters.pop(job, None)
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(result)
            elif self._submitting:
                self._jobs_ended[job] = result
        elif member == "NameOwnerChanged" and sender == DBUS and msg.body[0] == SYSTEMD:
            self._owner = msg.body[2] or None
            if self._owner:
                log.info("systemd is back on the system bus; subscribing again")
                self._spawn(self._resubscribe())
            else:
                log.error("systemd left the system bus")
                self._fail_jobs("systemd left the system bus")

    async def _resubscribe(self) -> None:
        # AlreadySubscribed is fine: systemd kept the subscription over its re-execution.
        with contextlib.suppress(_CallError):
            await self._call(MANAGER_PATH, MANAGER, "Subscribe")
        for watches in list(self._watches.values()):
            for w in list(watches):
                self._refresh(w)

    # --- units ----------------------------------------------------------------------------------
    async def _load(self, unit: str) -> str:
        """The unit's object path. LoadUnit (not GetUnit): an installed unit nobody has
        referenced yet is not loaded, and GetUnit would call it unknown."""
        try:
            [path] = await self._call(MANAGER_PATH, MANAGER, "LoadUnit", "s", [unit])
        except _CallError as e:
            raise SystemdError(f"systemd cannot load {unit}: {e.text}") from None
        return str(path)

    async def _fetch(self, path: str, sink: Callable[[str, dict[str, Any]], None]) -> None:
        """GetAll on the Service and Unit interfaces; `sink(interface, values)` gets each reply
        in bus order (see _call).

        Service first: systemd answers in order, so the Unit state read second is at least as
        new. The other way round, a main process that exits in between gives a torn snapshot
        (`active`/`running` with its exit status already recorded).
        """

        def hook(interface: str) -> Callable[[Message], None]:
            return lambda reply: sink(interface, reply.body[0])

        await asyncio.gather(
            *(
                self._call(path, PROPERTIES, "GetAll", "s", [i], in_order=hook(i))
                for i in (SERVICE, UNIT)
            )
        )

    async def _props(self, path: str) -> dict[str, Any]:
        props: dict[str, Any] = {}

        def keep(interface: str, values: dict[str, Any]) -> None:
            wanted = _WANTED[interface]
            props.update({k: v.value for k, v in values.items() if k in wanted})

        await self._fetch(path, keep)
        return props

    async def unit(self, name: str) -> UnitState | None:
        """The unit's state now, or None when systemd knows no such unit."""
        unit = unit_name(name)
        props = await self._props(await self._load(unit))
        if props.get("LoadState") == "not-found":
            return None
        return _snapshot(unit, props)

    async def start(self, name: str) -> UnitState:
        """Start the unit, wait for systemd's start job, return the state after it.

        Raises SystemdError saying why when the job fails, or when the unit is down again
        already (Type=simple counts as started once forked, so a program that cannot run is
        often only seen failing a moment later, by a watch). systemd's start rate limit is
        reset first: rearm's own policy decides how often a unit is restarted.
        """
        unit = unit_name(name)
        path = await self._load(unit)
        with self._operation(path):
            await self._reset_failed(unit)
            try:
                job, done = await self._submit("StartUnit", unit)
            except _CallError as e:
                raise SystemdError(f"systemd refused to start {unit}: {e.text}") from None
            try:
                result = await done
            finally:
                self._job_waiters.pop(job, None)
            props = await self._props(path)
        state = _snapshot(unit, props)
        if result == "done" and not is_down(state):
            return state
        raise SystemdError(_start_failure(unit, result, state, props))

    async def stop(self, name: str, timeout: float) -> bool:
        """Stop the unit; after `timeout` seconds (0: no limit) SIGKILL all its processes.

        True when it stopped in time, False when it had to be killed. The unit's failed state is
        reset afterwards, so that a later start is not refused.
        """
        unit = unit_name(name)
        path = await self._load(unit)
        with self._operation(path):
            return await self._stop(unit, timeout)

    async def _stop(self, unit: str, timeout: float) -> bool:
        try:
            job, done = await self._submit("StopUnit", unit)
        except _CallError as e:
            if e.name == NO_SUCH_UNIT:
                return True  # not loaded at all: nothing of it is running
            raise SystemdError(f"systemd refused to stop {unit}: {e.text}") from None
        try:
            finished, _ = await asyncio.wait({done}, timeout=timeout or None)
            in_time = bool(finished)
            if not in_time:
                log.warning(
                    "%s did not stop within %g s: SIGKILL to all its processes", unit, timeout
                )
                try:
                    await self._call(
                        MANAGER_PATH, MANAGER, "KillUnit", "ssi", [unit, "all", int(signal.SIGKILL)]
                    )
                except _CallError as e:
                    raise SystemdError(f"systemd could not kill {unit}: {e.text}") from None
                finished, _ = await asyncio.wait({done}, timeout=KILL_GRACE)
                if not finished:
                    raise SystemdError(f"{unit} is still stopping {KILL_GRACE:g} s after SIGKILL")
            result = done.result()
        finally:
            self._job_waiters.pop(job, None)
        state = await self.unit(unit)
        if state is not None and not is_down(state):
            raise SystemdError(
                f"{unit} did not stop (stop job {result}; now {state.active_state}/"
                f"{state.sub_state}: something started it again)"
            )
        await self._reset_failed(unit)
        return in_time

    @contextlib.contextmanager
    def _operation(self, path: str) -> Iterator[None]:
        """Hold the unit's watch callbacks while our own start/stop runs, then publish the
        outcome once. In between systemd reports the unit's way there, e.g. `inactive` after
        ResetFailedUnit and the new MainPID before `active`: snapshots that would read as the
        unit going down, though it is only being started."""
        self._busy[path] = self._busy.get(path, 0) + 1
        try:
            yield
        finally:
            self._busy[path] -= 1
            if not self._busy[path]:
                del self._busy[path]
                for w in list(self._watches.get(path, ())):
                    w._publish()

    async def _reset_failed(self, unit: str) -> None:
        # Not loaded, or nothing to reset: the start or stop itself reports real problems.
        with contextlib.suppress(_CallError):
            await self._call(MANAGER_PATH, MANAGER, "ResetFailedUnit", "s", [unit])

    async def _submit(self, method: str, unit: str) -> tuple[str, asyncio.Future[str]]:
        """Queue a job (mode replace); the future gets its JobRemoved result."""
        self._submitting += 1
        try:
            [job] = await self._call(MANAGER_PATH, MANAGER, method, "ss", [unit, "replace"])
            done: asyncio.Future[str] = self._loop.create_future()
            if job in self._jobs_ended:
                done.set_result(self._jobs_ended.pop(job))
            else:
                self._job_waiters[job] = done
            return str(job), done
        finally:
            self._submitting -= 1
            if not self._submitting:
                self._jobs_ended.clear()  # other clients' jobs seen meanwhile

    # --- watches ------------------------------------------------------------------------------
    async def watch(self, name: str, on_change: Callable[[UnitState], None]) -> UnitWatch:
        """Call `on_change` with a fresh snapshot at every change systemd pushes for the unit.

        When this returns, the subscription is in place and `watch.state` holds the state as of
        that moment: every later change reaches `on_change`, none falls in between. Call
        `watch.cancel()` to unsubscribe. Raises SystemdError when systemd knows no such unit.
        """
        unit = unit_name(name)
        path = await self._load(unit)
        w = UnitWatch(self, unit, path, on_change)
        rule = self._watch_rule(path)
        await self._add_match(rule)
        self._watches.setdefault(path, []).append(w)
        try:
            # Signals already arriving are merged in bus order together with these replies, so
            # the cache ends up as systemd's latest state whatever the interleaving.
            await self._fetch(path, lambda interface, values: w._merge(interface, values, ()))
        except BaseException:
            w.cancel()
            raise
        if w._props.get("LoadState") == "not-found":
            w.cancel()
            raise SystemdError(f"systemd knows no unit {unit}")
        w._ready = True
        w.state = _snapshot(unit, w._props)
        return w

    @staticmethod
    def _watch_rule(path: str) -> str:
        return (
            f"type='signal',sender='{SYSTEMD}',path='{path}',interface='{PROPERTIES}',"
            "member='PropertiesChanged'"
        )

    def _drop_watch(self, w: UnitWatch) -> None:
        watches = self._watches.get(w.path, [])
        if w in watches:
            watches.remove(w)
            if not watches:
                del self._watches[w.path]
            # Each watch added its own rule; the bus daemon counts identical rules.
            self._send_no_reply(DBUS_PATH, DBUS, "RemoveMatch", "s", [self._watch_rule(w.path)])

    def _refresh(self, w: UnitWatch) -> None:
        """Read the watched properties again and publish (after an invalidation or systemd's
        return to the bus)."""

        async def refresh() -> None:
            await self._fetch(w.path, lambda interface, values: w._merge(interface, values, ()))
            w._publish()

        self._spawn(refresh())
