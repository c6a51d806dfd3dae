"""Heartbeat timing (rearm.monitors.beats) and sd_notify datagrams: pure."""

from __future__ import annotations

from rearm.monitors.base import Status
from rearm.monitors.beats import Beats, judge
from rearm.monitors.notify import parse_notify


def test_a_recent_beat_is_ok_a_late_one_an_error_and_a_warning_between() -> None:
    assert judge(now=105, since=0, last_beat=100, period=10).status is Status.OK
    late = judge(now=111, since=0, last_beat=100, period=10)
    assert (late.status, late.message) == (Status.ERROR, "last heartbeat 11.0 s ago (period 10 s)")
    warn = judge(now=108, since=0, last_beat=100, period=10, warn_after=7)
    assert warn.status is Status.WARNING and "warning after 7 s" in warn.message


def test_the_first_beat_may_take_a_period_and_beats_of_a_previous_run_do_not_count() -> None:
    assert judge(now=105, since=100, last_beat=None, period=10).status is Status.OK
    old = judge(now=111, since=100, last_beat=99, period=10)  # from before the restart
    assert old.status is Status.ERROR and "since the start" in old.message


def test_beats_are_kept_per_watch_case_insensitively() -> None:
    beats = Beats()
    beats.beat("web", 5)
    assert beats.last("WEB") == 5 and beats.last("db") is None
    beats.trigger("Web", "WATCHDOG=trigger")
    assert beats.take_trigger("WEB") == "WATCHDOG=trigger" and beats.take_trigger("WEB") is None
    beats.forget("WEB")
    assert beats.last("web") is None


def test_notify_datagrams() -> None:
    assert parse_notify(b"READY=1\nSTATUS=Serving 3 clients\nWATCHDOG=1") == {
        "READY": "1",
        "STATUS": "Serving 3 clients",
        "WATCHDOG": "1",
    }
    assert parse_notify(b"garbage\n=1\nlower=1\n\xff\xfe=1\nX_Y=2") == {"X_Y": "2"}
