"""`redis`: PING, answered by PONG, in Redis's protocol (RESP).

    [[monitors]]
    name = "cache"
    kind = "redis"
    host = "127.0.0.1"        # or socket = "/run/redis/redis-server.sock"
    port = 6379
    user = "monitor"          # optional: an ACL user (Redis 6+); default: the default user
    password_file = "/etc/rearm/redis.pass"   # optional: AUTH first

A Redis busy in a slow command (`DEBUG SLEEP`, a KEYS * on a large set, a Lua script) does not
answer PING: the probe times out. `-LOADING` (a restart reading its dump) is an error too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rearm.monitors import keys, net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok, unknown
from rearm.monitors.secrets import SecretError, read_secret
from rearm.validate import Table


@dataclass(frozen=True)
class RedisOptions(Options):
    host: str = "127.0.0.1"
    port: int = 6379
    socket: str | None = None
    user: str | None = None
    password_file: str | None = None

    def build(self, env: ProbeEnv) -> Probe:
        return RedisProbe(self)

    def describe(self) -> str:
        return f"redis {self.socket or f'{self.host}:{self.port}'}"


def parse(t: Table) -> RedisOptions:
    keys.either(t, "host", "socket")
    options = RedisOptions(
        host=keys.host(t, "host", "127.0.0.1"),
        port=keys.port(t, "port", 6379) or 6379,
        socket=keys.abs_path(t, "socket"),
        user=keys.text(t, "user"),
        password_file=keys.abs_path(t, "password_file"),
    )
    if options.user is not None and options.password_file is None:
        raise t.error("user", "an ACL user needs password_file as well")
    return options


def command(*args: str) -> bytes:
    """A RESP array of bulk strings."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisProbe:
    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.step = ""

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.options
        try:
            request = b""
            if o.password_file is not None:
                password = read_secret(o.password_file)
                request += command("AUTH", *([o.user] if o.user else []), password)
            request += command("PING")
            self.step = "connecting"
            async with net.connection(o.host, o.port, path=o.socket) as (reader, writer):
                writer.write(request)
                if o.password_file is not None:
                    self.step = "waiting for AUTH's answer"
                    answer = await _simple_reply(reader)
                    if answer != "OK":
                        return error(f"AUTH refused: {answer}")
                self.step = "waiting for PONG"
                answer = await _simple_reply(reader)
                writer.write(command("QUIT"))
        except SecretError as e:
            return unknown(str(e))
        except (OSError, EOFError) as e:
            what = net.describe_os_error(e) if isinstance(e, OSError) else "connection closed"
            return error(f"{o.describe()}: {what}")
        if answer != "PONG":
            return error(f"PING answered {answer!r}")
        return ok("PONG")

    async def close(self) -> None:
        return None


async def _simple_reply(reader: asyncio.StreamReader) -> str:
    """A simple string (+OK) or an error (-ERR ...), as text; an error keeps its '-' sign."""
    line = (await net.read_line(reader)).decode("utf-8", errors="replace")
    if line.startswith("+"):
        return line[1:]
    if line.startswith("-"):
        return line
    return f"unexpected {line[:60]!r}"
