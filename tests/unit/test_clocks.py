"""The two clocks of the /H window and of /INT (policy.Stamp): wall-clock jumps and reboots.

A moment is kept as the wall clock plus (boot id, CLOCK_BOOTTIME). Within one boot the boot clock
decides, so no step of the wall clock -- forward or back, while the daemon runs or while it is
down -- moves a restart or changes what counts. Across a reboot only the wall clock links the
two boots, bounded below by the new boot's uptime.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rearm import policy
from rearm.model import LoadRequest, RestartPolicy, WatchState
from rearm.policy import Escalate, Restart, Stamp, ages, decide, faults_in_window, prune, until
from rearm.watch import ScheduleRestart, Watch

HOUR = policy.SECONDS_PER_HOUR
WALL = 1_700_000_000.0
BOOT, NEXT_BOOT = "boot-a", "boot-b"


def at(mono: float, wall_offset: float = 0.0, boot: str = BOOT) -> Stamp:
    """A moment `mono` seconds into the boot, read on a wall clock `wall_offset` off the truth."""
    return Stamp(WALL + mono + wall_offset, boot, mono)


ONE_HOUR = RestartPolicy(retry=2, hours=1)


# --- same boot: the boot clock decides ------------------------------------------------------


def test_same_boot_forward_jump_does_not_age_faults_out() -> None:
    # Two faults 10 minutes apart; then the wall clock jumps two hours ahead (a bad NTP step).
    history = [at(1000), at(1600)]
    now = at(2200, wall_offset=2 * HOUR)
    assert ages(now, history) == [1200, 600]
    assert faults_in_window(now, [*history, now], ONE_HOUR) == 3
    assert decide(now, [*history, now], ONE_HOUR) == Escalate(3)


def test_same_boot_backward_jump_does_not_keep_old_faults_counting() -> None:
    # A fault 2 h ago, then the wall clock is set back 3 h: its wall stamp is now "in the
    # future", which by the wall clock alone would count it for 3 more hours.
    old = at(1000)
    now = at(1000 + 2 * HOUR, wall_offset=-3 * HOUR)
    assert now.wall < old.wall
    assert ages(now, [old]) == [2 * HOUR]
    assert faults_in_window(now, [old, now], ONE_HOUR) == 1
    assert prune(now, [old, now], ONE_HOUR) == [now]


def test_same_boot_backward_jump_does_not_make_new_faults_vanish() -> None:
    # The fault happened after the clock was set back: it is recent, whatever the wall says.
    recent = at(5000, wall_offset=-3 * HOUR)
    now = at(5300)  # the clock was put right again since
    assert ages(now, [recent]) == [300]
    assert faults_in_window(now, [recent, now], ONE_HOUR) == 2


@given(
    monos=st.lists(st.floats(0, 10 * HOUR), min_size=1, max_size=12),
    offsets=st.lists(st.floats(-30 * 24 * HOUR, 30 * 24 * HOUR), min_size=13, max_size=13),
    hours=st.integers(1, 24),
    retry=st.integers(1, 9),
)
def test_same_boot_wall_clock_never_matters(
    monos: list[float], offsets: list[float], hours: int, retry: int
) -> None:
    monos = sorted(monos)
    rule = RestartPolicy(retry=retry, hours=hours)
    true = [at(m) for m in monos]
    jumped = [at(m, offsets[i]) for i, m in enumerate(monos)]
    now_true, now_jumped = at(monos[-1]), at(monos[-1], offsets[-1])
    assert decide(now_jumped, jumped, rule) == decide(now_true, true, rule)
    kept = prune(now_jumped, jumped, rule)
    assert [s.mono for s in kept] == [s.mono for s in prune(now_true, true, rule)]


def test_until_uses_the_boot_clock_in_the_same_boot() -> None:
    due = at(100).plus(30)  # /INT 30 from a fault at 100 s
    assert until(at(110, wall_offset=+HOUR), due) == 20  # not "overdue by an hour"
    assert until(at(110, wall_offset=-HOUR), due) == 20  # not "due in an hour"
    assert until(at(140), due) == -10


# --- across a reboot ----------------------------------------------------------------------


def test_reboot_with_a_correct_clock_uses_the_wall_clock() -> None:
    # A fault at the end of the last boot; the machine was down 20 minutes; now 5 min of uptime.
    fault = at(9000)
    now = Stamp(fault.wall + 25 * 60, NEXT_BOOT, 5 * 60)
    assert ages(now, [fault]) == [25 * 60]
    assert faults_in_window(now, [fault, now], ONE_HOUR) == 2


def test_reboot_with_the_clock_set_back_counts_until_the_uptime_passes_the_window() -> None:
    # The RTC came back two days slow: the old boot's faults look like the future.
    faults = [at(9000), at(9500)]
    early = Stamp(WALL - 2 * 24 * HOUR, NEXT_BOOT, 600)
    # At least this boot's uptime old, and 500 s apart as they were: they still count...
    assert ages(early, faults) == [1100, 600]
    assert faults_in_window(early, [*faults, early], ONE_HOUR) == 3
    # ...but not forever: once this boot has run an hour they are over an hour old.
    later = Stamp(WALL - 2 * 24 * HOUR + HOUR, NEXT_BOOT, 600 + HOUR)
    assert faults_in_window(later, [*faults, later], ONE_HOUR) == 1
    assert prune(later, [*faults, later], ONE_HOUR) == [later]


def test_reboot_keeps_the_order_of_the_old_boots_faults_whatever_its_wall_clock_did() -> None:
    # In the old boot the wall clock was stepped back between the two faults.
    first, second = at(1000), at(2000, wall_offset=-5000)
    now = Stamp(WALL + 3000, NEXT_BOOT, 100)
    first_age, second_age = ages(now, [first, second])
    assert first_age == second_age + 1000  # the boot clock keeps their distance


def test_faults_of_two_earlier_boots_each_have_their_own_anchor() -> None:
    a = Stamp(WALL, "boot-1", 50.0)
    b = Stamp(WALL + 600, "boot-2", 40.0)
    now = Stamp(WALL + 1200, "boot-3", 30.0)
    assert ages(now, [a, b]) == [1200, 600]


@given(
    n_old=st.integers(0, 6),
    n_new=st.integers(0, 6),
    wall_gap=st.floats(-30 * 24 * HOUR, 30 * 24 * HOUR),
    uptime=st.floats(0, 48 * HOUR),
    hours=st.integers(1, 24),
    retry=st.integers(1, 9),
    later=st.floats(0, 48 * HOUR),
)
def test_prune_across_boots_keeps_what_counts_and_only_that(
    n_old: int,
    n_new: int,
    wall_gap: float,
    uptime: float,
    hours: int,
    retry: int,
    later: float,
) -> None:
    rule = RestartPolicy(retry=retry, hours=hours)
    old = [at(1000 + 600 * i) for i in range(n_old)]
    base = WALL + 1000 + 600 * n_old + wall_gap  # the new boot's wall clock, maybe set back
    new = [Stamp(base + 300 * i, NEXT_BOOT, 300 * i) for i in range(n_new)]
    now = Stamp(base + uptime + 300 * n_new, NEXT_BOOT, uptime + 300 * n_new)
    history = [*old, *new, now]
    pruned = prune(now, history, rule)
    assert decide(now, pruned, rule) == decide(now, history, rule)
    # Later in the same boot (both clocks moving on together) the kept list still decides as
    # the whole history would: nothing pruned comes back.
    then = now.plus(later)
    assert decide(then, [*pruned, then], rule) == decide(then, [*history, then], rule)


# --- bare wall times: the rule as it always was -------------------------------------------


def test_bare_wall_times_keep_the_old_rule() -> None:
    # Rows written before both clocks were kept: the wall clock alone, the future counts.
    assert ages(WALL, [WALL - 10, WALL + 10]) == [10, 0]
    assert faults_in_window(at(0), [WALL + 3 * HOUR, at(0)], ONE_HOUR) == 2


# --- the watch: restart delay and window across a jump -----------------------------------------


def test_watch_restart_due_is_kept_on_both_clocks() -> None:
    request = LoadRequest("WEB", RestartPolicy(retry=3, hours=1, interval=30), argv=("/bin/x",))
    w = Watch("WEB", request, group=None, instance="i")
    w.started(100, ready=True)
    effects = w.exited(at(500), "exit status 1", clean=False)
    assert ScheduleRestart(30) in effects
    assert w.restart_due == at(530)
    # A daemon that restarts with the wall clock an hour ahead waits the 20 s that are left.
    assert until(at(510, wall_offset=HOUR), w.restart_due) == 20


def test_watch_counts_by_the_boot_clock_across_jumps() -> None:
    request = LoadRequest("WEB", RestartPolicy(retry=2, hours=1), argv=("/bin/x",))
    w = Watch("WEB", request, group=None, instance="i")
    decisions = []
    # Faults 15 minutes apart, the wall clock jumping about between them.
    for n, offset in enumerate([0, 2 * HOUR, -5 * HOUR]):
        if w.state is WatchState.RESTARTING:
            w.restart_due_now()
        w.started(100 + n, ready=True)
        w.exited(at(1000 + 900 * n, offset), "exit status 1", clean=False)
        decisions.append(w.state)
    assert decisions == [WatchState.RESTARTING, WatchState.RESTARTING, WatchState.ESCALATED]
    assert w.faults_in_window(at(1000 + 1800, 7 * HOUR)) == 3


def test_restart_decision_is_unchanged_for_bare_times() -> None:
    assert decide(WALL, [WALL], RestartPolicy(retry=1)) == Restart(0, False, 1)
