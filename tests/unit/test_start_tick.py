"""process.start_tick_between: the start time of a child, known from the clock around its spawn."""

from __future__ import annotations

from rearm.backends.process import _TICK_NS, start_tick_between


def test_both_readings_in_one_tick_give_that_tick() -> None:
    assert start_tick_between(5 * _TICK_NS, 5 * _TICK_NS + _TICK_NS - 1) == 5
    assert start_tick_between(7 * _TICK_NS + 3, 7 * _TICK_NS + 3) == 7


def test_readings_across_a_tick_boundary_give_none() -> None:
    assert start_tick_between(5 * _TICK_NS - 1, 5 * _TICK_NS) is None
    assert start_tick_between(5 * _TICK_NS, 9 * _TICK_NS) is None
