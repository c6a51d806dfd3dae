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
import ssl
from dataclasses import dataclass

from rearm.monitors import keys, net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok
from rearm.validate import Table

LINES_MAX = 100


@dataclass(frozen=True)
class SmtpOptions(Options):
    host: str = "127.0.0.1"
    port: int = 25
    ehlo: bool = True
    tls: bool = False
    verify: bool = True
    ca_file: str | None = None

    def build(self, env: ProbeEnv) -> Probe:
        return SmtpProbe(self)

    def describe(self) -> str:
        return f"smtp{'s' * self.tls} {self.host}:{self.port}"


def parse(t: Table) -> SmtpOptions:
    tls = t.bool_("tls", False)
    return SmtpOptions(
        host=keys.host(t, "host", "127.0.0.1"),
        port=keys.port(t, "port", 465 if tls else 25) or 25,
        ehlo=t.bool_("ehlo", True),
        tls=tls,
        verify=t.bool_("verify", True),
        ca_file=keys.abs_path(t, "ca_file"),
    )


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


class SmtpProbe:
    def __init__(self, options: SmtpOptions) -> None:
        self.options = options
        self.step = ""
        self._tls: ssl.SSLContext | None = None
        if options.tls:
            self._tls = net.tls_context(options.verify, options.ca_file)

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.options
        try:
            self.step = "connecting"
            async with net.connection(o.host, o.port, tls=self._tls) as (reader, writer):
                self.step = "waiting for the greeting"
                code, text = await reply(reader)
                if code != 220:
                    return error(f"greeting {code} {text}")
                said = f"220 {text}"
                if o.ehlo:
                    writer.write(b"EHLO rearm-monitor\r\n")
                    self.step = "waiting for the answer to EHLO"
                    code, text = await reply(reader)
                    if code != 250:
                        return error(f"EHLO answered {code} {text}")
                writer.write(b"QUIT\r\n")
        except OSError as e:
            return error(f"{o.host}:{o.port}: {net.describe_os_error(e)}")
        return ok(said)

    async def close(self) -> None:
        return None
