"""rearm.requests: hand-written value objects that must behave like the frozen dataclasses
they replaced, and the constants the parser keeps in step with the model's enums."""

from __future__ import annotations

import pytest

from rearm.model import FinalAction, TargetKind
from rearm.requests import (
    FINAL_ACTION_VALUES,
    KillRequest,
    LoadRequest,
    ModeRequest,
    RestartPolicy,
    request_from_dict,
    request_to_dict,
)


def test_final_action_values_match_the_enum() -> None:
    assert tuple(mode.value for mode in FinalAction) == FINAL_ACTION_VALUES


def test_equality_and_hash_follow_the_fields() -> None:
    a = LoadRequest("W", RestartPolicy(3, 1, 5), argv=("/bin/sleep", "1"))
    b = LoadRequest("W", RestartPolicy(3, 1, 5), argv=("/bin/sleep", "1"))
    c = LoadRequest("W", RestartPolicy(3, 1, 6), argv=("/bin/sleep", "1"))
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    # Another class with the same field values is not equal.
    assert KillRequest("W") != ModeRequest(None)
    assert RestartPolicy() == RestartPolicy(None, None, 0, False)


def test_frozen() -> None:
    req = KillRequest("W", keep_running=True, timeout=5)
    with pytest.raises(AttributeError, match="frozen"):
        req.timeout = 1  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del req.watch_id  # type: ignore[misc]
    with pytest.raises(AttributeError):
        req.other = 1  # type: ignore[attr-defined]


def test_repr_names_every_field() -> None:
    assert repr(KillRequest("W")) == "KillRequest(watch_id='W', keep_running=False, timeout=40)"
    assert repr(ModeRequest(FinalAction.NONE)).startswith("ModeRequest(mode=")


def test_kind_and_target() -> None:
    service = LoadRequest("W", RestartPolicy(), service="nginx")
    app = LoadRequest("W", RestartPolicy(), argv=("/bin/sleep", "9"))
    assert service.kind is TargetKind.SERVICE and service.target == "nginx"
    assert app.kind is TargetKind.APPLICATION and app.target == "/bin/sleep 9"


def test_dict_round_trip() -> None:
    req = LoadRequest(
        "Web_1", RestartPolicy(2, 4, 10, True), adopt=True, wait=0, argv=("/x", "a b"), user="www"
    )
    assert request_from_dict(request_to_dict(req)) == req
