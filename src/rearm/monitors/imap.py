"""`imap`: the server's greeting (`* OK` or `* PREAUTH`), then LOGOUT.

    [[monitors]]
    name = "imap"
    kind = "imap"
    host = "127.0.0.1"
    port = 143
    tls = false               # true: implicit TLS (port 993); verify, ca_file as for http

A `* BYE` greeting ("too many connections", shutting down) is an error.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rearm.monitors import net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, error, ok
from rearm.validate import Table


@dataclass(frozen=True)
class ImapOptions(Options):
    where: net.Endpoint

    def build(self, env: ProbeEnv) -> Probe:
        return ImapProbe(self.where)

    def describe(self) -> str:
        return self.where.describe("imap")


def parse(t: Table) -> ImapOptions:
    return ImapOptions(net.endpoint(t, 143, tls_port=993))


class ImapProbe(net.Conversation):
    async def talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Result:
        self.step = "waiting for the greeting"
        greeting = (await net.read_line(reader)).decode("utf-8", errors="replace")
        writer.write(b"r1 LOGOUT\r\n")
        if greeting.startswith(("* OK", "* PREAUTH")):
            return ok(greeting)
        return error(f"greeting {greeting[:80]!r}")
