"""JSON for the control protocol without importing `json`, which pulls in `re` (~6 ms).

armload and armkill each send one request and read one answer, so their start-up is most of
their cost. The codec below uses the C parts that `json` itself is built on: `_json`'s string
encoder and its scanner, which parses exactly what `json.loads` parses. The output is standard
JSON (ASCII, as `json.dumps` writes by default), so the daemon reads it with `json`.
"""

from __future__ import annotations

# CPython's accelerator module, which every CPython build has (rearm supports only CPython).
from _json import encode_basestring_ascii as _quote
from _json import make_scanner as _make_scanner

TYPE_CHECKING = False
if TYPE_CHECKING:  # only for the checker: typing costs milliseconds at run time
    from typing import Any


def encode(value: Any) -> str:
    """One JSON text for dicts (string keys), lists, tuples, str, int, float, bool, None."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} has no JSON form")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            if index:
                out.append(",")
            out.append(_quote(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} has no JSON form")


class _Context:
    """What `_json.make_scanner` reads from a JSONDecoder: strict standard JSON, plain types."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not standard JSON")


_WHITESPACE = " \t\n\r"


def decode(text: str) -> Any:
    """The value of one JSON text; ValueError when it is not exactly one JSON value."""
    scan = _make_scanner(_Context())  # type: ignore[arg-type]  # it reads these attributes only
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
    except StopIteration:
        raise ValueError(f"not JSON at character {start}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value
