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

import ssl
from dataclasses import dataclass

from rearm.monitors import keys, net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok
from rearm.validate import Table


@dataclass(frozen=True)
class ImapOptions(Options):
    host: str = "127.0.0.1"
    port: int = 143
    tls: bool = False
    verify: bool = True
    ca_file: str | None = None

    def build(self, env: ProbeEnv) -> Probe:
        return ImapProbe(self)

    def describe(self) -> str:
        return f"imap{'s' * self.tls} {self.host}:{self.port}"


def parse(t: Table) -> ImapOptions:
    tls = t.bool_("tls", False)
    return ImapOptions(
        host=keys.host(t, "host", "127.0.0.1"),
        port=keys.port(t, "port", 993 if tls else 143) or 143,
        tls=tls,
        verify=t.bool_("verify", True),
        ca_file=keys.abs_path(t, "ca_file"),
    )


class ImapProbe:
    def __init__(self, options: ImapOptions) -> None:
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
                greeting = (await net.read_line(reader)).decode("utf-8", errors="replace")
                writer.write(b"r1 LOGOUT\r\n")
        except OSError as e:
            return error(f"{o.host}:{o.port}: {net.describe_os_error(e)}")
        if greeting.startswith(("* OK", "* PREAUTH")):
            return ok(greeting)
        return error(f"greeting {greeting[:80]!r}")

    async def close(self) -> None:
        return None
