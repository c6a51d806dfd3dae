"""What the database monitors (postgresql, mysql) share: where and as whom they log in, the
query they run, and how its answer is judged. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rearm.monitors import keys
from rearm.monitors.base import Result, error, ok
from rearm.validate import Table


@dataclass(frozen=True)
class Login:
    user: str
    host: str
    port: int
    socket: str | None = None  # a Unix socket instead of host and port
    database: str | None = None
    password_file: str | None = None  # its first line is the password, read at each probe
    query: str = "SELECT 1"
    expect: re.Pattern[str] | None = None  # for the first row's first value

    def verdict(self, value: str | None) -> Result:
        """The query answered `value` (None: no rows, or NULL)."""
        shown = "no rows" if value is None else repr(value)
        if self.expect is not None and (value is None or not self.expect.search(value)):
            return error(
                f"{self.query!r} returned {shown}, which does not match /{self.expect.pattern}/"
            )
        return ok(f"{self.query!r} returned {shown}")


def login(t: Table, port: int) -> Login:
    keys.either(t, "host", "socket")
    user = keys.text(t, "user", required=True)
    assert user is not None
    return Login(
        user=user,
        host=keys.host(t, "host", "127.0.0.1"),
        port=keys.port(t, "port", port) or port,
        socket=keys.abs_path(t, "socket"),
        database=keys.text(t, "database"),
        password_file=keys.abs_path(t, "password_file"),
        query=keys.text(t, "query") or "SELECT 1",
        expect=keys.pattern(t, "expect"),
    )
