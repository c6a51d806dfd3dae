"""`smtp`: the server's 220 greeting, and optionally its answer to EHLO.

    [[monitors]]
    name = "mta"
    kind = "smtp"
    host = "127.0.0.1"
    port = 25
    ehlo = true               # default: say EHLO and expect 250 as well
    tls = false               # true: implicit TLS (port 465); verify, ca_file as for http

A 4xx or 5xx greeting (421 "too busy", 554 "no service") is an error, as is a refused
EHLO; the probe ends with QUIT.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from rearm.monitors import net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, error, ok
from rearm.validate import Table

LINES_MAX = 100


@dataclass(frozen=True)
class SmtpOptions(Options):
    where: net.Endpoint
    ehlo: bool = True

    def build(self, env: ProbeEnv) -> Probe:
        return SmtpProbe(self.where, self.ehlo)

    def describe(self) -> str:
        return self.where.describe("smtp")


def parse(t: Table) -> SmtpOptions:
    return SmtpOptions(net.endpoint(t, 25, tls_port=465), ehlo=t.bool_("ehlo", True))


async def reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One SMTP reply: its code and its first line's text (continuations `250-` skipped)."""
    first = ""
    for _ in range(LINES_MAX):
        line = (await net.read_line(reader)).decode("utf-8", errors="replace")
        if len(line) < 3 or not line[:3].isdigit():
            raise ConnectionError(f"not an SMTP reply: {line[:60]!r}")
        first = first or line[4:]
        if line[3:4] != "-":
            return int(line[:3]), first
    raise ConnectionError(f"a reply of more than {LINES_MAX} lines")


class SmtpProbe(net.Conversation):
    def __init__(self, where: net.Endpoint, ehlo: bool) -> None:
        super().__init__(where)
        self.ehlo = ehlo

    async def talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Result:
        self.step = "waiting for the greeting"
        code, text = await reply(reader)
        if code != 220:
            return error(f"greeting {code} {text}")
        if self.ehlo:
            writer.write(b"EHLO rearm-monitor\r\n")
            self.step = "waiting for the answer to EHLO"
            answer, said = await reply(reader)
            if answer != 250:
                return error(f"EHLO answered {answer} {said}")
        writer.write(b"QUIT\r\n")
        return ok(f"220 {text}")
