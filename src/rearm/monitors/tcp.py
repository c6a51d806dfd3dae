"""`tcp`: connect; optionally send something and expect an answer matching a pattern.

    [[monitors]]
    name = "memcached"
    kind = "tcp"
    host = "127.0.0.1"          # default
    port = 11211
    send = "version\\r\\n"       # optional
    expect = "^VERSION "        # optional: a regular expression the answer must contain
    tls = false                 # true: TLS first (verify, ca_file as for http)

Without send and expect, a completed connect is the success: the port is open and
accepting (a server whose accept queue is full times out).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

from rearm.monitors import keys, net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok
from rearm.validate import Table

ANSWER_MAX = 1 << 16


@dataclass(frozen=True)
class TcpOptions(Options):
    host: str
    port: int
    send: bytes | None = None
    expect: re.Pattern[str] | None = None
    tls: bool = False
    verify: bool = True
    ca_file: str | None = None

    def build(self, env: ProbeEnv) -> Probe:
        return TcpProbe(self)

    def describe(self) -> str:
        return f"tcp{'+tls' * self.tls} {self.host}:{self.port}"


def parse(t: Table) -> TcpOptions:
    port = keys.port(t, "port", None)
    if port is None:
        raise t.error("port", "is required: the port to connect to, 1-65535")
    send = keys.text(t, "send")
    return TcpOptions(
        host=keys.host(t, "host", "127.0.0.1"),
        port=port,
        send=None if send is None else send.encode("utf-8"),
        expect=keys.pattern(t, "expect"),
        tls=t.bool_("tls", False),
        verify=t.bool_("verify", True),
        ca_file=keys.abs_path(t, "ca_file"),
    )


class TcpProbe:
    def __init__(self, options: TcpOptions) -> None:
        self.options = options
        self.step = ""
        self._tls: ssl.SSLContext | None = None
        if options.tls:
            self._tls = net.tls_context(options.verify, options.ca_file)

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.options
        self.step = "connecting"
        try:
            async with net.connection(o.host, o.port, tls=self._tls) as (reader, writer):
                if o.send is not None:
                    self.step = "sending"
                    writer.write(o.send)
                    await writer.drain()
                if o.expect is None:
                    return ok(f"connected to {o.host}:{o.port}")
                self.step = "waiting for the answer"
                return await _expect(reader, o.expect)
        except OSError as e:
            return error(f"{o.host}:{o.port}: {net.describe_os_error(e)}")

    async def close(self) -> None:
        return None


async def _expect(reader: asyncio.StreamReader, pattern: re.Pattern[str]) -> Result:
    """Read until the answer matches, the peer closes, or ANSWER_MAX bytes came."""
    answer = b""
    while len(answer) < ANSWER_MAX:
        chunk = await reader.read(ANSWER_MAX - len(answer))
        if not chunk:
            break
        answer += chunk
        if pattern.search(answer.decode("utf-8", errors="replace")):
            return ok(f"answered {_first_line(answer)!r}")
    return error(f"answer does not match /{pattern.pattern}/: {_first_line(answer)!r}")


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text.splitlines()[0][:80] if text else ""
