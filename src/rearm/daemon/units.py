"""Watches whose target is a systemd unit: `armload /S NAME` with no etc/services/NAME.toml.

systemd runs the unit; rearm starts it, learns of its end from systemd's pushed signals (no
polling), restarts it by its own policy and counts its faults. The watch state machine is the
same as for processes; only starting, noticing the end and stopping differ, and they live here.
The D-Bus connection is opened on first use: a machine without systemd pays nothing.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from rearm.api.server import ApiError
from rearm.backends.systemd import SystemdError, SystemdUnits, UnitState, exit_detail, is_down
from rearm.model import WatchState
from rearm.watch import Effect, Emit

if TYPE_CHECKING:
    from rearm.daemon.supervisor import Runtime, Supervisor

S = WatchState


class UnitDriver:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self._units: SystemdUnits | None = None
        self._lock = asyncio.Lock()
        self._guard: asyncio.Future[None] | None = None
        self._closing = False

    async def units(self) -> SystemdUnits:
        async with self._lock:
            if self._units is None or self._units.lost is not None:
                # REARM_SYSTEMD_BUS: a systemd other than the machine's (the test sandbox).
                self._units = await SystemdUnits.connect(os.environ.get("REARM_SYSTEMD_BUS"))
                self._guard = asyncio.ensure_future(self._on_lost(self._units))
            return self._units

    async def _on_lost(self, units: SystemdUnits) -> None:
        """The bus connection ended: its watches are silent now. Reconnect (with backoff) and
        re-attach every unit watch, counting the ends that happened meanwhile."""
        reason = await units.wait_lost()
        if self._closing:
            return
        self.sup.bus.emit(
            "systemd_connection_lost", f"lost the system bus: {reason}", severity="warning"
        )
        delay = 0.5
        while not self._closing:
            try:
                await self.units()
                break
            except SystemdError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        for rt in list(self.sup.runtimes.values()):
            # Only running watches: a start or stop in flight fails on the lost bus by itself.
            if rt.unit is not None and not rt.forgotten and rt.watch.state is S.RUNNING:
                self.detach(rt)
                await self.recover(rt)

    async def close(self) -> None:
        self._closing = True
        if self._guard is not None:
            self._guard.cancel()
        if self._units is not None:
            await self._units.close()

    async def resolve(self, name: str, definition_path: str) -> UnitState:
        """The unit for `armload /S name`, or ApiError saying why there is none."""
        try:
            state = await (await self.units()).unit(name)
        except SystemdError as e:
            raise ApiError(
                f"unknown service '{name}': no definition at {definition_path}, and {e}"
            ) from None
        if state is None:
            raise ApiError(
                f"unknown service '{name}': no definition at {definition_path} and no systemd "
                f"unit {name}.service"
            )
        if state.restart not in (None, "", "no"):
            raise ApiError(
                f"unit {state.name} restarts itself (Restart={state.restart}): set Restart=no "
                "in the unit, so that rearm restarts it and counts its faults"
            )
        return state

    @staticmethod
    def running(state: UnitState) -> bool:
        return state.active_state in ("active", "reloading", "activating") and not is_down(state)

    # --- starting -----------------------------------------------------------------------------
    async def start(self, rt: Runtime, first: bool) -> str | None:
        """Start the watch's unit. With `first`, a failure is returned (armload refuses it);
        later it is a fault of the watch."""
        assert rt.unit is not None
        try:
            state = await (await self.units()).start(rt.unit)
        except SystemdError as e:
            if first:
                return str(e)
            if not rt.forgotten and rt.watch.state is S.STARTING:
                failed = rt.watch.start_failed(
                    self.sup.clock(), f"cannot start: {e}", cannot_run=True
                )
                self.sup._apply(rt, failed)
            return None
        if rt.forgotten or rt.watch.state is not S.STARTING:
            return None
        await self.attach(rt, state, "watch_start", f"started {rt.unit}")
        return None

    async def attach(self, rt: Runtime, state: UnitState, kind: str, how: str) -> None:
        """Follow the unit from now on; the watch runs with systemd's main pid.

        The subscription comes first and its snapshot is checked after: an end that falls
        between the start and the subscription is still seen.
        """
        w = rt.watch
        self.detach(rt)
        try:
            watch = await (await self.units()).watch(state.name, lambda s: self._changed(rt, s))
        except SystemdError as e:
            if w.state is S.STARTING:
                self.sup._apply(rt, w.start_failed(self.sup.clock(), f"cannot follow: {e}"))
            return
        rt.unit_unwatch = watch.cancel
        state = watch.state or state
        if rt.forgotten:
            self.detach(rt)
            return
        if is_down(state) or state.main_pid is None:
            self.detach(rt)
            if is_down(state):
                detail = exit_detail(state)[0]
            else:
                detail = f"{state.name} has no main process (a Type=oneshot unit cannot be watched)"
            if w.state is S.STARTING:
                self.sup._apply(rt, w.start_failed(self.sup.clock(), f"ended at once: {detail}"))
            elif w.state is S.RUNNING:
                self.sup._apply(rt, w.exited(self.sup.clock(), detail, False, seen=False))
            return
        rt.own_group = False  # systemd owns the unit's processes and their cgroup
        rt.pid_start = None
        effects: list[Effect] = [Emit(kind, "info", f"{w.watch_id}: {how} (pid {state.main_pid})")]
        if w.state is S.STARTING:
            effects += w.started(state.main_pid, ready=True)
        else:
            w.pid = state.main_pid
        self.sup._apply(rt, effects)

    def detach(self, rt: Runtime) -> None:
        if rt.unit_unwatch is not None:
            rt.unit_unwatch()
            rt.unit_unwatch = None

    def _changed(self, rt: Runtime, state: UnitState) -> None:
        """systemd pushed a change of the unit: the end of its main process is a fault."""
        w = rt.watch
        if rt.forgotten or not is_down(state):
            if (
                not rt.forgotten
                and state.main_pid
                and w.state is S.RUNNING
                and (state.main_pid != w.pid)
            ):
                w.pid = state.main_pid  # a reload may hand the service to a new main process
                self.sup._persist(rt)
            return
        if w.state is S.STOPPING:
            rt.main_exited.set()
            return
        if w.state in (S.RUNNING, S.STARTING) and w.pid is not None:
            self.detach(rt)
            detail, clean = exit_detail(state)
            rt.main_exited.set()
            # seen=False: the unit's cgroup is systemd's to clean, not ours to signal.
            self.sup._apply(rt, w.exited(self.sup.clock(), detail, clean, seen=False))

    # --- stopping -----------------------------------------------------------------------------
    async def stop(self, rt: Runtime, timeout: int) -> str:
        assert rt.unit is not None
        w = rt.watch
        problem: str | None = None
        try:
            in_time = await (await self.units()).stop(rt.unit, float(timeout))
        except SystemdError as e:
            in_time, problem = True, str(e)
        self.detach(rt)
        detail = problem or (
            f"killed with SIGKILL after {timeout} s" if not in_time else "stopped by systemd"
        )
        self.sup._apply(rt, w.stop_finished(detail))
        return f"{w.watch_id} stopped" + (f": {detail}" if not in_time or problem else "")

    # --- after a daemon restart ---------------------------------------------------------------
    async def recover(self, rt: Runtime) -> None:
        """Re-attach to a unit watched before the daemon restarted, or count its end."""
        assert rt.unit is not None
        w = rt.watch
        try:
            state = await (await self.units()).unit(rt.unit)
        except SystemdError as e:
            self.sup.bus.emit(
                "systemd_unavailable",
                f"{w.watch_id}: {e}",
                severity="error",
                group=w.group,
                watch=w.watch_id,
            )
            return
        now = self.sup.clock()
        alive = state is not None and self.running(state) and state.main_pid is not None
        if w.state is S.STOPPING:
            await self.stop(rt, 40)
        elif w.state is S.STARTING and w.pid is None:
            if alive:
                assert state is not None
                await self.attach(rt, state, "watch_readopt", "re-adopted the unit started before")
            else:
                await self.start(rt, first=False)
        elif alive:
            assert state is not None
            await self.attach(rt, state, "watch_readopt", f"re-adopted {state.name}")
        else:
            detail = "ended while the daemon was not running"
            self.sup._apply(rt, w.exited(now, detail, False, seen=False))

    def describe(self, rt: Runtime) -> dict[str, Any]:
        return {"backend": "systemd", "unit": rt.unit}
