"""Typed reads from parsed TOML tables, with errors that name the file, the key and the rule.

Pure: works on dicts that tomllib produced. Every loader in config.py goes through these, so a
bad file always reads the same way: `etc/services/redis.toml: key 'user': must be a string`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

E = TypeVar("E")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NAME_RULE = "1-64 characters of A-Z, a-z, 0-9, _, . and -, starting with a letter or digit"


class ConfigError(ValueError):
    """A configuration file or value is wrong. str() is one line: where, which key, what rule."""


class Table:
    """A TOML table being read: each get_* consumes a key; `finish()` refuses unknown keys."""

    def __init__(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        self._data = data
        self._where = where
        self._prefix = prefix
        self._seen: set[str] = set()

    @property
    def where(self) -> str:
        """The file (as shown in messages) this table was read from."""
        return self._where

    def error(self, key: str, rule: str) -> ConfigError:
        return ConfigError(f"{self._where}: key '{self._prefix}{key}': {rule}")

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        return self._data.get(key)

    def has(self, key: str) -> bool:
        return key in self._data

    def str_(
        self,
        key: str,
        default: str | None = None,
        *,
        required: bool = False,
        empty_ok: bool = False,
    ) -> str | None:
        value = self._get(key)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str) or not (value or empty_ok):
            raise self.error(key, "must be a non-empty string")
        return value

    def req_str(self, key: str) -> str:
        value = self.str_(key, required=True)
        assert value is not None
        return value

    def bool_(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def int_(self, key: str, default: int, low: int, high: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"must be a whole number from {low} to {high}")
        return value

    def opt_int(self, key: str, low: int, high: int) -> int | None:
        if self._data.get(key) is None:
            self._seen.add(key)
            return None
        return self.int_(key, 0, low, high)

    def choice(self, key: str, enum: type[E], default: E) -> E:
        value = self._get(key)
        if value is None:
            return default
        allowed = [m.value for m in enum]  # type: ignore[attr-defined]
        if not isinstance(value, str) or value.lower() not in allowed:
            raise self.error(key, "must be one of " + ", ".join(allowed))
        return enum(value.lower())  # type: ignore[call-arg]

    def argv(self, key: str, *, required: bool = False) -> tuple[str, ...] | None:
        value = self._get(key)
        if value is None:
            if required:
                raise self.error(
                    key, "is required: a list of strings, the program then its arguments"
                )
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and "\0" not in v for v in value)
            or not value[0]
        ):
            raise self.error(key, "must be a non-empty list of strings (program, then arguments)")
        return tuple(value)

    def str_map(self, key: str) -> dict[str, str]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.error(key, 'must be a table of string values, e.g. { LANG = "C.UTF-8" }')
        return dict(value)

    def environment(self, key: str) -> dict[str, str]:
        """A table of environment variables: str_map, with names and values a process can
        be given (posix_spawn refuses the rest, and the start would fail only then)."""
        env = self.str_map(key)
        problem = environment_problem(env)
        if problem is not None:
            raise self.error(key, problem)
        return env

    def table(self, key: str) -> Table | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return Table(value, self._where, f"{self._prefix}{key}.")

    def tables(self, key: str) -> list[Table]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(key, f"must be an array of tables ([[{key}]])")
        return [Table(v, self._where, f"{self._prefix}{key}[{i}].") for i, v in enumerate(value)]

    def raw(self, key: str) -> Any:
        return self._get(key)

    def finish(self, allowed_extra: frozenset[str] = frozenset()) -> None:
        unknown = sorted(set(self._data) - self._seen - allowed_extra)
        if unknown:
            known = ", ".join(sorted(self._seen | allowed_extra))
            raise ConfigError(
                # repr-like escaping: a key may hold a newline, and the message is one line.
                f"{self._where}: unknown key '{_one_line(self._prefix + unknown[0])}' "
                f"(known keys: {known})"
            )


def _one_line(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


def check_name(kind: str, name: str) -> str:
    """Group and cluster-object names: safe as a folder name, readable in a log."""
    if not NAME_RE.fullmatch(name):
        raise ConfigError(f"{kind} name '{name}': use {NAME_RULE}")
    return name


def environment_problem(env: dict[str, str]) -> str | None:
    """Why `env` cannot be a process's environment, or None. A name is not empty and holds no
    '=' and no NUL byte; a value holds no NUL byte."""
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            return f"{name!r} is not a variable name (not empty, and no '=' or NUL byte)"
        if "\0" in value:
            return f"the value of {name} holds a NUL byte"
    return None
