"""The restart policy (SPEC §4): a pure function of an injected clock and the fault history.

Rule: at a fault, count the faults within the last /H hours, this one included; at most /R
means restart after /INT seconds, more than /R fires the final action. No /R: let it die.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rearm.model import HOURS_RANGE, INTERVAL_RANGE, RETRY_RANGE, RestartPolicy
from rearm.policy import (
    SECONDS_PER_HOUR,
    Escalate,
    LetDie,
    Restart,
    decide,
    faults_in_window,
    prune,
    window_start,
)

NOW = 1_700_000_000.0  # a wall-clock time, as the store keeps them
HOUR = SECONDS_PER_HOUR


# --- strategies ---------------------------------------------------------------------------

retries = st.integers(*RETRY_RANGE)
hours = st.integers(*HOURS_RANGE)
intervals = st.integers(*INTERVAL_RANGE)

policies = st.builds(
    RestartPolicy,
    retry=st.none() | retries,
    hours=st.none() | hours,
    interval=intervals,
    script=st.booleans(),
)
restarting_policies = st.builds(
    RestartPolicy, retry=retries, hours=st.none() | hours, interval=intervals, script=st.booleans()
)
windowed_policies = st.builds(
    RestartPolicy, retry=retries, hours=hours, interval=intervals, script=st.booleans()
)
# Whole seconds keep the oracles below exact; the float boundary has its own example tests.
nows = st.integers(0, 4_000_000_000)
# Ages in seconds relative to `now`: negative ages are faults stamped in the future.
ages = st.lists(st.integers(-3 * 24 * HOUR, 30 * 24 * HOUR), max_size=25)


def times(now: int, fault_ages: list[int]) -> list[float]:
    """Fault times from ages, plus the fault happening at `now` (decide() includes it)."""
    return [float(now - age) for age in fault_ages] + [float(now)]


# --- window_start ---------------------------------------------------------------------------


def test_window_start_without_hours_is_none() -> None:
    assert window_start(NOW, RestartPolicy(retry=3)) is None


@pytest.mark.parametrize("h", [1, 2, 24])
def test_window_start_is_hours_before_now(h: int) -> None:
    assert window_start(NOW, RestartPolicy(retry=3, hours=h)) == NOW - h * 3600


def test_window_start_scales_with_the_hour_parameter() -> None:
    assert window_start(NOW, RestartPolicy(retry=3, hours=2), hour=1.5) == NOW - 3.0


# --- the rule, by example -------------------------------------------------------------------


def test_faults_up_to_retry_restart() -> None:
    policy = RestartPolicy(retry=3, hours=1)
    history = [NOW - 3000, NOW - 2000, NOW]
    assert decide(NOW, history, policy) == Restart(delay=0, via_script=False, faults_in_window=3)


def test_one_fault_more_than_retry_escalates() -> None:
    policy = RestartPolicy(retry=3, hours=1)
    history = [NOW - 3000, NOW - 2000, NOW - 1000, NOW]
    assert decide(NOW, history, policy) == Escalate(faults_in_window=4)


def test_the_current_fault_is_counted() -> None:
    # retry = 1: the first fault is within the threshold, the second one exceeds it.
    policy = RestartPolicy(retry=1, hours=1)
    assert decide(NOW, [NOW], policy) == Restart(0, False, 1)
    assert decide(NOW, [NOW - 10, NOW], policy) == Escalate(2)


@pytest.mark.parametrize("retry", range(RETRY_RANGE[0], RETRY_RANGE[1] + 1))
def test_threshold_for_every_retry_value(retry: int) -> None:
    policy = RestartPolicy(retry=retry, hours=1)
    at_threshold = [NOW - i for i in range(retry)]
    over_threshold = [NOW - i for i in range(retry + 1)]
    assert decide(NOW, at_threshold, policy) == Restart(0, False, retry)
    assert decide(NOW, over_threshold, policy) == Escalate(retry + 1)


@pytest.mark.parametrize("interval", [0, 1, 5, 3600])
def test_interval_is_the_restart_delay(interval: int) -> None:
    decision = decide(NOW, [NOW], RestartPolicy(retry=3, interval=interval))
    assert isinstance(decision, Restart)
    assert decision.delay == interval


@pytest.mark.parametrize("script", [True, False])
def test_via_script_follows_scr(script: bool) -> None:
    decision = decide(NOW, [NOW], RestartPolicy(retry=3, script=script))
    assert isinstance(decision, Restart)
    assert decision.via_script is script


def test_escalate_ignores_interval_and_script() -> None:
    policy = RestartPolicy(retry=1, hours=1, interval=30, script=True)
    assert decide(NOW, [NOW - 1, NOW], policy) == Escalate(2)


@pytest.mark.parametrize("history", [[NOW], [NOW - i for i in range(50)]])
def test_without_retry_nothing_restarts_and_nothing_escalates(history: list[float]) -> None:
    for policy in (RestartPolicy(), RestartPolicy(hours=1), RestartPolicy(interval=5)):
        assert decide(NOW, history, policy) == LetDie()


def test_without_hours_every_fault_counts_forever() -> None:
    policy = RestartPolicy(retry=2)
    ten_years = 10 * 365 * 24 * HOUR
    history = [NOW - ten_years, NOW - ten_years / 2, NOW]
    assert faults_in_window(NOW, history, policy) == 3
    assert decide(NOW, history, policy) == Escalate(3)
    # The same history with a one-hour window only counts the current fault.
    assert decide(NOW, history, RestartPolicy(retry=2, hours=1)) == Restart(0, False, 1)


@pytest.mark.parametrize("h", [1, 5, 24])
def test_a_fault_exactly_hours_old_no_longer_counts(h: int) -> None:
    policy = RestartPolicy(retry=1, hours=h)
    history = [NOW - h * HOUR, NOW]
    assert faults_in_window(NOW, history, policy) == 1
    assert decide(NOW, history, policy) == Restart(0, False, 1)
    assert prune(NOW, history, policy) == [NOW]


@pytest.mark.parametrize("h", [1, 5, 24])
def test_a_fault_just_inside_the_window_counts(h: int) -> None:
    policy = RestartPolicy(retry=1, hours=h)
    history = [NOW - h * HOUR + 0.001, NOW]
    assert faults_in_window(NOW, history, policy) == 2
    assert decide(NOW, history, policy) == Escalate(2)
    assert prune(NOW, history, policy) == history


def test_faults_stamped_in_the_future_still_count() -> None:
    # The clock was stepped back by two hours after two faults: they now look like the future.
    policy = RestartPolicy(retry=2, hours=1)
    history = [NOW + 2 * HOUR, NOW + 2 * HOUR + 5, NOW]
    assert faults_in_window(NOW, history, policy) == 3
    assert decide(NOW, history, policy) == Escalate(3)
    assert prune(NOW, history, policy) == history


def test_faults_far_in_the_future_count_without_hours_too() -> None:
    policy = RestartPolicy(retry=1)
    assert decide(NOW, [NOW + 365 * 24 * HOUR, NOW], policy) == Escalate(2)


def test_hour_parameter_scales_the_window() -> None:
    policy = RestartPolicy(retry=1, hours=2)
    history = [NOW - 1.5, NOW]
    # With one-second "hours" the window is 2 s: the fault 1.5 s ago still counts.
    assert decide(NOW, history, policy, hour=1.0) == Escalate(2)
    # With half-second "hours" the window is 1 s: it no longer does.
    assert decide(NOW, history, policy, hour=0.5) == Restart(0, False, 1)
    assert prune(NOW, history, policy, hour=0.5) == [NOW]
    # With real hours, 1.5 s is of course inside the window.
    assert decide(NOW, history, policy) == Escalate(2)


def test_fault_times_may_be_any_iterable() -> None:
    policy = RestartPolicy(retry=1, hours=1)
    assert decide(NOW, (t for t in [NOW - 1, NOW]), policy) == Escalate(2)
    assert faults_in_window(NOW, (NOW - 1, NOW), RestartPolicy(retry=1)) == 2
    assert prune(NOW, iter([NOW - 2 * HOUR, NOW]), policy) == [NOW]


def test_prune_keeps_order_and_duplicates() -> None:
    policy = RestartPolicy(retry=9, hours=1)
    history = [NOW - 2 * HOUR, NOW - 5, NOW - 5, NOW - 7200, NOW + 3, NOW]
    assert prune(NOW, history, policy) == [NOW - 5, NOW - 5, NOW + 3, NOW]


def test_prune_without_hours_keeps_everything() -> None:
    history = [0.0, NOW - 10 * 365 * 24 * HOUR, NOW]
    assert prune(NOW, history, RestartPolicy(retry=3)) == history
    assert prune(NOW, history, RestartPolicy()) == history


def test_prune_returns_a_new_list() -> None:
    history = [NOW - 1, NOW]
    pruned = prune(NOW, history, RestartPolicy(retry=3))
    pruned.append(NOW + 1)
    assert history == [NOW - 1, NOW]


# --- properties -----------------------------------------------------------------------------


@given(now=nows, fault_ages=ages, policy=policies)
def test_decision_kind_follows_the_rule(
    now: int, fault_ages: list[int], policy: RestartPolicy
) -> None:
    history = times(now, fault_ages)
    count = faults_in_window(now, history, policy)
    decision = decide(now, history, policy)
    if policy.retry is None:
        assert decision == LetDie()
    elif count > policy.retry:
        assert decision == Escalate(faults_in_window=count)
    else:
        assert decision == Restart(
            delay=policy.interval, via_script=policy.script, faults_in_window=count
        )


@given(now=nows, fault_ages=ages, policy=restarting_policies)
def test_escalates_iff_count_exceeds_retry(
    now: int, fault_ages: list[int], policy: RestartPolicy
) -> None:
    history = times(now, fault_ages)
    assert policy.retry is not None
    escalated = isinstance(decide(now, history, policy), Escalate)
    assert escalated == (faults_in_window(now, history, policy) > policy.retry)


@given(now=nows, fault_ages=ages, policy=policies)
def test_count_matches_a_direct_reading_of_the_rule(
    now: int, fault_ages: list[int], policy: RestartPolicy
) -> None:
    # "Within the last /H hours": younger than /H hours, or not yet happened (clock stepped back).
    history = times(now, fault_ages)
    if policy.hours is None:
        expected = len(history)
    else:
        expected = sum(1 for age in [*fault_ages, 0] if age < policy.hours * HOUR)
    assert faults_in_window(now, history, policy) == expected


@given(now=nows, fault_ages=ages, policy=policies)
def test_the_current_fault_always_counts(
    now: int, fault_ages: list[int], policy: RestartPolicy
) -> None:
    assert faults_in_window(now, times(now, fault_ages), policy) >= 1


@given(now=nows, fault_ages=ages, h1=hours, h2=hours, retry=retries)
def test_count_is_monotonic_in_the_window_length(
    now: int, fault_ages: list[int], h1: int, h2: int, retry: int
) -> None:
    short, long_ = sorted((h1, h2))
    history = times(now, fault_ages)
    in_short = faults_in_window(now, history, RestartPolicy(retry=retry, hours=short))
    in_long = faults_in_window(now, history, RestartPolicy(retry=retry, hours=long_))
    forever = faults_in_window(now, history, RestartPolicy(retry=retry))
    assert in_short <= in_long <= forever


@given(
    now=nows,
    fault_ages=ages,
    policy=windowed_policies,
    hour1=st.floats(0.001, 7200.0),
    hour2=st.floats(0.001, 7200.0),
)
def test_count_is_monotonic_in_the_hour_parameter(
    now: int, fault_ages: list[int], policy: RestartPolicy, hour1: float, hour2: float
) -> None:
    short, long_ = sorted((hour1, hour2))
    history = times(now, fault_ages)
    assert faults_in_window(now, history, policy, short) <= faults_in_window(
        now, history, policy, long_
    )


@given(
    now=nows,
    fault_ages=ages,
    policy=windowed_policies,
    extra=st.integers(0, 10 * 365 * 24 * HOUR),
    position=st.integers(0, 30),
)
def test_an_old_fault_outside_the_window_never_changes_the_decision(
    now: int, fault_ages: list[int], policy: RestartPolicy, extra: int, position: int
) -> None:
    assert policy.hours is not None
    history = times(now, fault_ages)
    old = float(now - policy.hours * HOUR - extra)  # at or before the window's start
    with_old = [*history[:position], old, *history[position:]]
    assert decide(now, with_old, policy) == decide(now, history, policy)
    assert faults_in_window(now, with_old, policy) == faults_in_window(now, history, policy)


@given(now=nows, fault_ages=ages, policy=restarting_policies, extra=st.integers(0, 10**9))
def test_without_hours_an_old_fault_always_adds_one(
    now: int, fault_ages: list[int], policy: RestartPolicy, extra: int
) -> None:
    forever = RestartPolicy(policy.retry, None, policy.interval, policy.script)
    history = times(now, fault_ages)
    with_old = [float(now - extra), *history]
    assert faults_in_window(now, with_old, forever) == faults_in_window(now, history, forever) + 1


@given(now=nows, fault_ages=ages, policy=policies)
def test_prune_then_decide_equals_decide(
    now: int, fault_ages: list[int], policy: RestartPolicy
) -> None:
    history = times(now, fault_ages)
    pruned = prune(now, history, policy)
    assert decide(now, pruned, policy) == decide(now, history, policy)
    assert faults_in_window(now, pruned, policy) == faults_in_window(now, history, policy)


@given(now=nows, fault_ages=ages, policy=policies)
def test_prune_keeps_exactly_the_faults_that_count_now(
    now: int, fault_ages: list[int], policy: RestartPolicy
) -> None:
    history = times(now, fault_ages)
    pruned = prune(now, history, policy)
    # Everything kept counts now, in the original order, and nothing that counts is dropped.
    assert len(pruned) == faults_in_window(now, history, policy)
    assert pruned == [t for t in history if t in pruned]
    dropped = [t for t in history if t not in pruned]
    for t in dropped:
        assert faults_in_window(now, [t], policy) == 0
    assert prune(now, pruned, policy) == pruned


@given(now=nows, fault_ages=ages, policy=policies, later=st.integers(0, 30 * 24 * HOUR))
def test_pruned_faults_can_never_count_again(
    now: int, fault_ages: list[int], policy: RestartPolicy, later: int
) -> None:
    # What prune() drops is gone for good: at any later time it would not count either, so
    # the kept list decides every future fault exactly as the full history would.
    history = times(now, fault_ages)
    pruned = prune(now, history, policy)
    then = now + later
    assert faults_in_window(then, pruned, policy) == faults_in_window(then, history, policy)
    assert decide(then, [*pruned, then], policy) == decide(then, [*history, then], policy)


@given(now=nows, fault_ages=ages, policy=windowed_policies)
def test_future_faults_are_never_pruned(
    now: int, fault_ages: list[int], policy: RestartPolicy
) -> None:
    history = times(now, fault_ages)
    future = [t for t in history if t > now]
    assume(future)
    pruned = prune(now, history, policy)
    assert all(t in pruned for t in future)


@given(policy=policies, history=st.lists(st.floats(-1e12, 1e12), max_size=20), now=nows)
def test_decide_is_pure(policy: RestartPolicy, history: list[float], now: int) -> None:
    copy = list(history)
    first = decide(now, history, policy)
    assert decide(now, history, policy) == first
    prune(now, history, policy)
    assert history == copy
