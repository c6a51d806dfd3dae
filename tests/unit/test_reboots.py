"""reboots.py: what the reboot-loop guard counts -- the window, the last clear, drill apart."""

from __future__ import annotations

from rearm import reboots
from rearm.reboots import Reboot

T = 1_700_000_000.0


def _row(n: int, when: float, drill: bool) -> Reboot:
    return Reboot(n, when, "reboot", "reboot", f"W{n}", "g", drill)


ROWS = [
    _row(1, T - 7200, False),  # outside the window
    _row(2, T - 60, False),
    _row(3, T - 50, True),
    _row(4, T - 40, False),
    _row(5, T - 30, True),
]


def test_drill_and_real_reboots_are_counted_apart() -> None:
    assert reboots.count(T, ROWS, 0, False, 3600) == 2
    assert reboots.count(T, ROWS, 0, True, 3600) == 2
    real = reboots.summary(T, ROWS, (0, None), False, 2, 3600)
    assert (real["count"], real["real"], real["drill_count"], real["guard"]) == (2, 2, 2, True)
    assert real["mode"] == "real"


def test_a_clear_counts_from_zero_and_keeps_the_history() -> None:
    assert reboots.count(T, ROWS, 4, False, 3600) == 0
    assert reboots.count(T, ROWS, 4, True, 3600) == 1
    listed = reboots.listing(T, ROWS, 4, True, 3600)
    assert [r["id"] for r in listed] == [1, 2, 3, 4, 5]
    assert [r["counted"] for r in listed] == [False, False, False, False, True]
    assert listed[0]["cause"] == "watch W1 of group g"


def test_the_cleared_mark_reads_back() -> None:
    assert reboots.parse_cleared(None) == (0, None)
    assert reboots.parse_cleared("7 1700000000.5") == (7, 1700000000.5)
    assert reboots.parse_cleared("garbage") == (0, None)
