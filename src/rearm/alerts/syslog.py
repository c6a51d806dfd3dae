"""Syslog: to the local socket (/dev/log) or to a remote collector over UDP.

Keys of an `[[alerts]]` table with `type = "syslog"`:
    target = "/dev/log"               a socket path (unix datagram; the default),
                                      or HOST[:PORT] for UDP (port 514)
    facility = "daemon"               kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron,
                                      authpriv, ftp, local0 ... local7
    tag = "rearm"                     the program name in each line
    format = "rfc3164" | "rfc5424"    default rfc3164 for a socket path (what journald and rsyslog
                                      read there), rfc5424 for UDP (with structured data)

Not logging.handlers.SysLogHandler: it sends with a blocking socket, so a full /dev/log (a
stalled journald) would block the daemon's loop. Here the socket is non-blocking and a full
buffer is waited for, under the dispatcher's timeout, on the loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass

from rearm.alerts import fields
from rearm.alerts.model import Alert, DeliveryError, cut_utf8
from rearm.validate import Table

FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}
LEVELS = {"info": 6, "warning": 4, "error": 3, "critical": 2}
# RFC 5424 asks receivers to take 2048 octets; longer datagrams may be cut or dropped.
MAX_BYTES = 2048
# RFC 5424 SD-ID: a private one carries an enterprise number -- the documentation one, see snmp.
SD_ID = "rearm@32473"


@dataclass(frozen=True)
class SyslogSettings:
    path: str | None
    host: str
    port: int
    facility: str
    tag: str
    format: str

    def describe(self) -> str:
        where = self.path if self.path else f"udp {self.host}:{self.port}"
        return f"syslog {where} ({self.facility}, {self.format})"

    def create(self, timeout: float) -> SyslogSink:
        return SyslogSink(self)


def parse(t: Table, base_dir: str, server: str) -> SyslogSettings:
    target = t.str_("target", "/dev/log") or "/dev/log"
    path: str | None = None
    host, port = "", 514
    if target.startswith("/"):
        path = target
    else:
        host, port = fields.host_port(t, "target", 514)
    tag = t.str_("tag", "rearm") or "rearm"
    if len(tag) > 48 or not all(c.isascii() and c.isprintable() and c not in " :[]" for c in tag):
        raise t.error("tag", "must be 1-48 printable ASCII characters without spaces, ':' or '[]'")
    return SyslogSettings(
        path=path,
        host=host,
        port=port,
        facility=fields.one_of(t, "facility", tuple(FACILITIES), "daemon"),
        tag=tag,
        format=fields.one_of(t, "format", ("rfc3164", "rfc5424"), "rfc3164" if path else "rfc5424"),
    )


def _sd_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def line(s: SyslogSettings, alert: Alert, hostname: str, pid: int) -> bytes:
    e = alert.event
    pri = FACILITIES[s.facility] * 8 + LEVELS.get(e.severity, 6)
    text = alert.summary()
    if s.format == "rfc3164":
        # Local sockets: the receiver adds the host name and trusts its own clock.
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(e.ts))
        head = f"<{pri}>{stamp} {s.tag}[{pid}]: "
        return cut_utf8(head + f"[{alert.cluster}] {text}", MAX_BYTES)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e.ts)) + f".{int(e.ts % 1 * 1e6):06d}Z"
    params = [("cluster", alert.cluster), ("server", alert.server), ("kind", e.kind)]
    params += [(k, v) for k, v in (("group", e.group), ("watch", e.watch)) if v]
    params.append(("event", str(e.id)))
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_value(v)}"' for k, v in params) + "]"
    msgid = e.kind[:32]
    head = f"<{pri}>1 {ts} {hostname[:255]} {s.tag} {pid} {msgid} {sd} "
    # BOM: RFC 5424 marks a UTF-8 message this way.
    return cut_utf8(head + "\ufeff" + text, MAX_BYTES)


class SyslogSink:
    def __init__(self, settings: SyslogSettings) -> None:
        self.s = settings
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._hostname = socket.gethostname()

    async def open(self) -> None:
        if self._sock is not None:
            return
        s = self.s
        if s.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect(s.path)
            except OSError as e:
                sock.close()
                raise DeliveryError(f"syslog socket {s.path}: {e.strerror}") from None
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                s.host, s.port, type=socket.SOCK_DGRAM
            )
            if not infos:
                raise DeliveryError(f"syslog host {s.host}: no address")
            family, _, _, _, address = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(address)
        self._sock = sock

    async def send(self, alert: Alert) -> str:
        await self.open()
        assert self._sock is not None
        data = line(self.s, alert, self._hostname, os.getpid())
        try:
            await asyncio.get_running_loop().sock_sendall(self._sock, data)
        except OSError as e:
            # The receiver went away (journald restarted, port unreachable): reconnect next time.
            await self.close()
            raise DeliveryError(f"syslog {self.s.describe()}: {e.strerror or e}") from None
        where = self.s.path or f"{self.s.host}:{self.s.port}"
        return f"sent to {where}"

    async def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
