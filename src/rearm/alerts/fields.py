"""Reading the keys every sink type shares the shape of: secrets, durations, addresses, lists.

Built on `rearm.validate.Table`, so a bad value reads like every other configuration error:
`etc/cluster.toml: key 'alerts[1].port': must be a whole number from 1 to 65535`.
"""

from __future__ import annotations

import ipaddress
import os
import re

from rearm.validate import Table

HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


def secret(t: Table, key: str, base_dir: str) -> str | None:
    """`key = "..."` inline, or `key_file = "PATH"` (relative to etc/): the file's first line.

    A file keeps the secret out of cluster.toml, which `rearm cluster show` and backups copy
    around; only its first line counts, so a trailing newline from `echo` does no harm.
    """
    inline = t.str_(key)
    path = t.str_(f"{key}_file")
    if inline is not None and path is not None:
        raise t.error(f"{key}_file", f"give either '{key}' or '{key}_file', not both")
    if path is None:
        return inline
    full = os.path.join(base_dir, path)
    try:
        with open(full, encoding="utf-8") as f:
            text = f.readline().rstrip("\r\n")
    except OSError as e:
        raise t.error(f"{key}_file", f"cannot read {full}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise t.error(f"{key}_file", f"{full} is not UTF-8 text") from None
    if not text:
        raise t.error(f"{key}_file", f"the first line of {full} is empty")
    return text


def seconds(t: Table, key: str, default: float, low: float, high: float) -> float:
    value = t.raw(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise t.error(key, f"must be a number of seconds from {low:g} to {high:g}")
    return float(value)


def host_port(t: Table, key: str, default_port: int, *, required: bool = True) -> tuple[str, int]:
    """HOST, HOST:PORT, [IPV6] or [IPV6]:PORT."""
    text = t.str_(key, required=required)
    if text is None:
        return "", default_port
    rule = f"must be HOST or HOST:PORT (IPv6 in brackets: [::1]:{default_port})"
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise t.error(key, rule)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise t.error(key, rule) from None
        if rest:
            port = _port(t, key, rest[1:], rule)
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _port(t, key, rest, rule)
    elif text.count(":") > 1:
        raise t.error(key, rule)
    if not host or (":" not in host and not HOST_RE.fullmatch(host)):
        raise t.error(key, rule)
    return host, port


def _port(t: Table, key: str, text: str, rule: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise t.error(key, rule + "; the port is from 1 to 65535")
    return int(text)


def text_list(t: Table, key: str, *, required: bool = False) -> tuple[str, ...]:
    """A string or a list of strings."""
    value = t.raw(key)
    if value is None:
        if required:
            raise t.error(key, "is required")
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise t.error(key, "must be a non-empty string or list of non-empty strings")
    return tuple(value)


def one_of(t: Table, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = t.raw(key)
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # `version = 3` reads as well as `version = "3"`
    if not isinstance(value, str) or value.lower() not in allowed:
        raise t.error(key, "must be one of " + ", ".join(f'"{a}"' for a in allowed))
    return value.lower()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
