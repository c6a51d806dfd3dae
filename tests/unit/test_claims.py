"""claims.py: which live watch already holds a service, its systemd unit or its pid file."""

from __future__ import annotations

from rearm import claims


def test_an_application_claims_nothing() -> None:
    assert claims.claims_of(None, "/run/x.pid", "x.service") == frozenset()
    assert claims.holder(frozenset(), [("A", None, "running", frozenset({"service a"}))]) is None


def test_a_service_is_held_by_name_case_insensitively() -> None:
    tel = claims.claims_of("tel")
    h = claims.holder(claims.claims_of("TEL"), [("TEL", "SRE-GRP", "running", tel)])
    assert h == claims.Holder("TEL", "SRE-GRP", "service tel", "running")
    line = claims.refusal("TEL3", "TEL", h)
    assert "\n" not in line and "TEL" in line and "group SRE-GRP" in line


def test_two_names_for_one_unit_or_one_pid_file_are_one_service() -> None:
    held = [
        ("U", None, "running", claims.claims_of("tel", unit="tel.service")),
        ("P", "G", "restarting", claims.claims_of("redis", pidfile="/run/redis/../redis/r.pid")),
    ]
    by_unit = claims.holder(claims.claims_of("tel.service", unit="tel.service"), held)
    assert by_unit is not None and by_unit.watch_id == "U" and by_unit.claim == "unit tel.service"
    by_pidfile = claims.holder(claims.claims_of("redis2", pidfile="/run/redis/r.pid"), held)
    assert by_pidfile is not None and by_pidfile.watch_id == "P"
    assert by_pidfile.claim == "pid file /run/redis/r.pid"
    assert "nothing changed" in claims.already_watched("redis2", by_pidfile)
    assert claims.holder(claims.claims_of("other", pidfile="/run/o.pid"), held) is None
