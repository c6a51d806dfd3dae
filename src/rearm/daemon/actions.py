"""Final actions (SPEC §6): reboot, shutdown, panic, stopgroup, none; drill mode; loop guard.

Drill mode records reboot, shutdown and panic as `final_action` events with "drill": true and
executes nothing. It is on unless cluster.toml says `drill = false` AND the daemon's environment
does not say REARM_DRILL=1: a real reboot needs an explicit, deliberate setting.

Under Pacemaker (`pacemaker = true` in cluster.toml) the group-level actions, `stopgroup` and
`none` (and the `stopgroup` of the loop guard), become "report the group failed": the group goes
to state error and is left as it is, Pacemaker's monitor (ocf:rearm:group) sees the failure and
moves the group to another node, stopping it here first. reboot, shutdown and panic stay what
they are: they end the whole node, which Pacemaker sees as the node's loss (docs/pacemaker.md).

Only `MachineControl` touches the machine; its methods are reviewed here and never run by tests,
demos or benchmarks (they all run in drill mode, and the fixtures set REARM_DRILL=1 as well).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rearm import policy, reboots
from rearm.daemon.bus import EventBus
from rearm.model import Cluster, FinalAction
from rearm.store import EventRow, Store

log = logging.getLogger("rearm.actions")


def drill_forced_by_env() -> bool:
    return os.environ.get("REARM_DRILL", "") not in ("", "0")


def is_drill(cluster: Cluster) -> bool:
    return cluster.drill or drill_forced_by_env()


class MachineControl:
    """The real thing. Orderly where possible: services get to stop, disks get synced."""

    def reboot(self) -> None:
        self._systemctl("reboot", fallback=["/sbin/reboot"])

    def shutdown(self) -> None:
        self._systemctl("poweroff", fallback=["/sbin/poweroff"])

    def panic(self) -> None:
        # The guide's STOP error: a kernel crash, so a configured kdump captures the state.
        with open("/proc/sys/kernel/sysrq", "w") as f:
            f.write("1")
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("c")

    @staticmethod
    def _systemctl(verb: str, fallback: list[str]) -> None:
        systemctl = shutil.which("systemctl")
        under_systemd = systemctl is not None and os.path.isdir("/run/systemd/system")
        if under_systemd and subprocess.run([systemctl or "", "--no-block", verb]).returncode == 0:
            return
        subprocess.run(fallback, check=False)


def reports_failure(cluster: Cluster, action: FinalAction, group: str | None) -> bool:
    """Whether `action` becomes "report the group failed" (under Pacemaker, see above)."""
    return (
        cluster.pacemaker
        and group is not None
        and action in (FinalAction.STOPGROUP, FinalAction.NONE)
    )


@dataclass(frozen=True)
class Outcome:
    requested: FinalAction
    action: FinalAction
    drill: bool
    guarded: bool
    reported: bool = False  # to Pacemaker, as the group's failure


@dataclass(frozen=True)
class Pending:
    """A final action recorded and not yet carried out."""

    action_id: int
    outcome: Outcome
    watch: str | None
    group: str | None
    event: EventRow


StopGroup = Callable[[str | None, str], Awaitable[None]]
FailGroup = Callable[[str, str], None]


class FinalActions:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        boot_id: str,
        stop_group: StopGroup,
        machine: MachineControl | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.boot_id = boot_id
        self.stop_group = stop_group
        self.machine = machine or MachineControl()
        self.send_alert: Callable[[EventRow], Awaitable[object]] | None = None
        # Marks a group failed (state error) for Pacemaker to see; main.py wires Groups.fail.
        self.fail_group: FailGroup | None = None
        # Now on both clocks (main.py wires the supervisor's): the loop guard's window must
        # hold across a reboot and a wall-clock step (policy.ages).
        self.clock: Callable[[], policy.Time] = time.time

    def choose(
        self, cluster: Cluster, requested: FinalAction, now: policy.Time
    ) -> tuple[FinalAction, bool]:
        """The action to take and whether the reboot-loop guard changed it."""
        if requested in (FinalAction.REBOOT, FinalAction.PANIC):
            if self.store.failure is not None:
                # A reboot that cannot be recorded cannot be counted: with var/ still full
                # after the boot, the guard would never see the loop. Stop the group instead.
                return FinalAction.STOPGROUP, True
            recent = reboots.count(
                now,
                self.store.reboot_rows(),
                self.cleared()[0],
                is_drill(cluster),
                cluster.reboot_window,
            )
            if recent >= cluster.max_reboots:
                return FinalAction.STOPGROUP, True
        return requested, False

    def cleared(self) -> tuple[int, float | None]:
        return reboots.parse_cleared(self.store.get_meta(reboots.CLEARED_KEY))

    def reboot_summary(self, cluster: Cluster) -> dict[str, object]:
        """The reboot-loop counter for status (reboots.summary)."""
        return reboots.summary(
            self.clock(),
            self.store.reboot_rows(),
            self.cleared(),
            is_drill(cluster),
            cluster.max_reboots,
            cluster.reboot_window,
        )

    def reboot_list(self, cluster: Cluster) -> list[dict[str, Any]]:
        return reboots.listing(
            self.clock(),
            self.store.reboot_rows(),
            self.cleared()[0],
            is_drill(cluster),
            cluster.reboot_window,
        )

    def clear_reboots(self, who: str) -> dict[str, object]:
        """`rearm reboots --clear`: the guard counts from zero again (the history stays)."""
        last = self.store.last_final_action_id()
        with self.store.transaction():
            self.store.set_meta(reboots.CLEARED_KEY, f"{last} {time.time()}")
            self.bus.emit(
                "reboots_cleared",
                f"reboot-loop counter cleared by {who}: the guard counts from zero",
                severity="warning",
                data={"cleared_after": last},
            )
        return {"message": "reboot-loop counter cleared: the guard counts from zero"}

    def record(self, cluster: Cluster, watch: str | None, group: str | None) -> Pending:
        """Decide and record the final action, inside the caller's store transaction.

        The supervisor calls this in the very transaction that marks the watch escalated, so a
        crash can never leave an escalated watch without its final action: what is recorded is
        carried out by `complete`, or by `resume` after a restart.
        """
        requested = cluster.final_action
        now = self.clock()
        action, guarded = self.choose(cluster, requested, now)
        drill = is_drill(cluster)
        action_id = self.store.add_final_action(
            requested.value, action.value, watch, group, drill, self.boot_id, now
        )
        if guarded:
            why = (
                "the state cannot be written, so the reboot-loop guard could not count it"
                if self.store.failure is not None
                else f"{cluster.max_reboots} reboots/panics already within "
                f"{cluster.reboot_window} s"
            )
            self.bus.emit(
                "reboot_loop_guard",
                f"{requested.value} refused: {why}; taking the group offline instead",
                severity="critical",
                group=group,
                watch=watch,
                data={
                    "requested": requested.value,
                    "max_reboots": cluster.max_reboots,
                    "reboot_window": cluster.reboot_window,
                },
            )
        machine = action.takes_machine_down
        reported = reports_failure(cluster, action, group)
        event = self.bus.emit(
            "final_action",
            f"final action {action.value}"
            + (" (drill: recorded, not executed)" if drill and machine else "")
            + (f" for {watch}" if watch else "")
            + (f": group {group} reported failed to Pacemaker" if reported else ""),
            severity="critical",
            group=group,
            watch=watch,
            data={
                "action": action.value,
                "requested": requested.value,
                "drill": drill,
                "guarded": guarded,
                **({"pacemaker": True} if reported else {}),
            },
        )
        outcome = Outcome(requested, action, drill, guarded, reported)
        return Pending(action_id, outcome, watch, group, event)

    async def complete(self, pending: Pending) -> None:
        """Alert (a bounded wait), then act: after the record is committed."""
        if self.send_alert is not None:
            await self.send_alert(pending.event)
        o = pending.outcome
        await self._carry_out(
            pending.action_id, o.action, pending.watch, pending.group, o.drill, o.reported
        )

    async def fire(self, cluster: Cluster, watch: str | None, group: str | None) -> Outcome:
        """Record (committed before anything irreversible happens), then act."""
        with self.store.transaction():
            pending = self.record(cluster, watch, group)
        await self.complete(pending)
        return pending.outcome

    async def _carry_out(
        self,
        action_id: int,
        action: FinalAction,
        watch: str | None,
        group: str | None,
        drill: bool,
        reported: bool = False,
    ) -> None:
        if reported and group is not None and self.fail_group is not None:
            self.fail_group(group, f"final action {action.value} for {watch}")
        elif action is FinalAction.STOPGROUP:
            await self.stop_group(group, f"final action for {watch}")
        elif action.takes_machine_down and not drill:
            self.store.sync_hard()
            log.critical("executing final action %s", action.value)
            getattr(self.machine, action.value)()
        with self.store.transaction():
            self.store.mark_final_action_done(action_id)

    async def resume(self, cluster: Cluster | None = None) -> None:
        """After a daemon crash: finish the final actions that were recorded but not done.

        One from an earlier boot was done (the machine went down); one from this boot was cut
        short by the crash and is carried out now -- recorded once, never fired twice (under
        Pacemaker, by the configuration of now: see reports_failure).
        """
        for action_id, action, watch, group, drill, boot in self.store.pending_final_actions():
            if boot != self.boot_id:
                with self.store.transaction():
                    self.store.mark_final_action_done(action_id)
                continue
            self.bus.emit(
                "final_action_resumed",
                f"carrying out final action {action} for {watch} (interrupted by a daemon restart)",
                severity="warning",
                group=group,
                watch=watch,
            )
            final = FinalAction(action)
            reported = cluster is not None and reports_failure(cluster, final, group)
            await self._carry_out(action_id, final, watch, group, drill, reported)
