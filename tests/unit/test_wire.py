"""rearm.api.wire: the armload client's JSON must be exactly what `json` reads and writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rearm.api import wire

# JSON values as the protocol carries them: any text (lone surrogates too, as os.environ may
# hold), whole numbers of any size, finite floats.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(_values)
def test_encode_is_what_json_dumps_writes(value: Any) -> None:
    assert wire.encode(value) == json.dumps(value, separators=(",", ":"))


@given(_values)
def test_decode_reads_what_json_writes(value: Any) -> None:
    assert wire.decode(json.dumps(value)) == value
    assert wire.decode(json.dumps(value, indent=2, ensure_ascii=False)) == value


@given(st.text(max_size=40))
def test_decode_accepts_exactly_what_json_accepts(text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            wire.decode(text)
        return
    if isinstance(expected, float) and not math.isfinite(expected):
        # json reads NaN and Infinity, which are not JSON: the wire codec refuses them.
        with pytest.raises(ValueError):
            wire.decode(text)
        return
    assert wire.decode(text) == expected


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "1 2", '{"a":1}x', "NaN", "-Infinity"])
def test_decode_refuses_non_json(text: str) -> None:
    with pytest.raises(ValueError):
        wire.decode(text)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "x"}, object(), b"bytes"])
def test_encode_refuses_what_has_no_json_form(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        wire.encode(value)
