"""Reading the values of a `[[monitors]]` table: seconds, counts, sizes, addresses, patterns.

Pure, built on rearm.validate.Table, and every refusal is one line naming the file, the key,
the value that was given and the rule:
`etc/groups/web/group.toml: key 'monitors[0].interval': got 0; must be a number of seconds
from 0.1 to 86400`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import Any

from rearm.validate import ConfigError, Table

HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SIZE_RULE = 'a number of bytes, or a size such as "512M", "2G" (K, M, G, T: powers of 1024)'


def shown(value: Any) -> str:
    """A value as it would be written in TOML (strings quoted), for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    if isinstance(value, int | float):
        return repr(value)
    return type(value).__name__


def bad(t: Table, key: str, value: Any, rule: str) -> ConfigError:
    return t.error(key, f"got {shown(value)}; {rule}")


def seconds(
    t: Table,
    key: str,
    default: float | None,
    *,
    low: float = 0.0,
    high: float = 86400.0,
    above: bool = False,
) -> float | None:
    """A number of seconds from `low` (excluded when `above`) to `high`."""
    value = t.raw(key)
    if value is None:
        return default
    if above:
        rule = f"must be a number of seconds above {low:g} and at most {high:g}"
    else:
        rule = f"must be a number of seconds from {low:g} to {high:g}"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value  # NaN
        or value > high
        or value < low
        or (above and value == low)
    ):
        raise bad(t, key, value, rule)
    return float(value)


def count(t: Table, key: str, default: int | None, low: int, high: int) -> int | None:
    value = t.raw(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(t, key, value, f"must be a whole number from {low} to {high}")
    return value


def size(t: Table, key: str) -> int | None:
    """Bytes: a whole number, or "512M" and the like."""
    value = t.raw(key)
    if value is None:
        return None
    parsed = parse_size(value)
    if parsed is None:
        raise bad(t, key, value, f"must be {SIZE_RULE}")
    return parsed


def parse_size(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = SIZE_RE.fullmatch(value.strip())
    if match is None:
        return None
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def size_or_percent(t: Table, key: str) -> tuple[float, bool] | None:
    """`"10%"` -> (10.0, True); a size -> (bytes, False)."""
    value = t.raw(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            number = -1.0
        if not 0 <= number <= 100:
            raise bad(t, key, value, "a percentage must be from 0% to 100%")
        return number, True
    parsed = parse_size(value)
    if parsed is None:
        raise bad(t, key, value, f'must be a percentage such as "10%", or {SIZE_RULE}')
    return float(parsed), False


def number(t: Table, key: str, low: float, high: float) -> float | None:
    value = t.raw(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(t, key, value, f"must be a number from {low:g} to {high:g}")
    return float(value)


def choice(t: Table, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = t.raw(key)
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in allowed:
        raise bad(t, key, value, "must be one of " + ", ".join(f'"{a}"' for a in allowed))
    return value.lower()


def text(t: Table, key: str, *, required: bool = False, empty_ok: bool = False) -> str | None:
    value = t.raw(key)
    if value is None:
        if required:
            raise t.error(key, "is required")
        return None
    if not isinstance(value, str) or not (value or empty_ok) or "\0" in value:
        raise bad(t, key, value, "must be a non-empty string")
    return value


def pattern(t: Table, key: str) -> re.Pattern[str] | None:
    """A regular expression (Python's re syntax), searched anywhere in the text."""
    value = text(t, key)
    if value is None:
        return None
    try:
        return re.compile(value)
    except re.error as e:
        raise bad(t, key, value, f"must be a regular expression ({e})") from None


def host(t: Table, key: str, default: str) -> str:
    value = t.raw(key)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            if HOST_RE.fullmatch(value):
                return value
    raise bad(t, key, value, "must be a host name or an IP address (IPv6 without brackets)")


def port(t: Table, key: str, default: int | None) -> int | None:
    value = t.raw(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise bad(t, key, value, "must be a port number from 1 to 65535")
    return value


def abs_path(t: Table, key: str, *, required: bool = False) -> str | None:
    value = text(t, key, required=required)
    if value is not None and not os.path.isabs(value):
        raise bad(t, key, value, "must be an absolute path")
    return value


def argv(t: Table, key: str) -> tuple[str, ...]:
    """A command: a list of strings, the program (an absolute path) then its arguments."""
    value = t.raw(key)
    rule = "must be a list of strings, the program (an absolute path) then its arguments"
    if value is None:
        raise t.error(key, "is required: " + rule.removeprefix("must be "))
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and "\0" not in v for v in value)
        or not os.path.isabs(value[0])
    ):
        shown_value = value[0] if isinstance(value, list) and value else value
        raise bad(t, key, shown_value, rule)
    return tuple(value)


def either(t: Table, *keys: str) -> None:
    """At most one of `keys` may be given."""
    given = [k for k in keys if t.has(k)]
    if len(given) > 1:
        raise t.error(given[1], f"give either '{given[0]}' or '{given[1]}', not both")


def human_size(n: float) -> str:
    """Bytes as people read them: 512.0 MiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
