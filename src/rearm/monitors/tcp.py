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
from dataclasses import dataclass

from rearm.monitors import keys, net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, error, ok
from rearm.validate import Table

ANSWER_MAX = 1 << 16


@dataclass(frozen=True)
class TcpOptions(Options):
    where: net.Endpoint
    send: bytes | None = None
    expect: re.Pattern[str] | None = None

    def build(self, env: ProbeEnv) -> Probe:
        return TcpProbe(self)

    def describe(self) -> str:
        return self.where.describe("tcp")


def parse(t: Table) -> TcpOptions:
    send = keys.text(t, "send")
    return TcpOptions(
        where=net.endpoint(t, None),
        send=None if send is None else send.encode("utf-8"),
        expect=keys.pattern(t, "expect"),
    )


class TcpProbe(net.Conversation):
    def __init__(self, options: TcpOptions) -> None:
        super().__init__(options.where)
        self.options = options

    async def talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Result:
        o = self.options
        if o.send is not None:
            self.step = "sending"
            writer.write(o.send)
            await writer.drain()
        if o.expect is None:
            return ok(f"connected to {self.where.host}:{self.where.port}")
        self.step = "waiting for the answer"
        return await _expect(reader, o.expect)


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
