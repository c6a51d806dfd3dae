"""Streams for the protocol monitors: a connection that is always closed, TLS contexts, reads
bounded in size, and the Endpoint + Conversation that tcp, smtp and imap share. Deadlines are
the scheduler's (it cancels the probe); nothing here waits on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from rearm.monitors import keys
from rearm.monitors.base import Result, Target, error
from rearm.validate import Table

READ_LIMIT = 1 << 16  # one line (a status line, a header, a banner) is at most this long


def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """Certificates checked against the system's CAs, or `ca_file`'s; or not at all."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.asynccontextmanager
async def connection(
    host: str,
    port: int,
    *,
    path: str | None = None,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A TCP (or, with `path`, Unix socket) connection, closed however the block ends: cleanly
    when it ends well, at once (no TLS goodbye, no lingering) when it fails or is cancelled."""
    if path is not None:
        reader, writer = await asyncio.open_unix_connection(path, limit=READ_LIMIT)
    else:
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=tls,
            server_hostname=(server_hostname or host) if tls is not None else None,
            limit=READ_LIMIT,
            ssl_handshake_timeout=None if tls is None else 3600,
        )
    try:
        yield reader, writer
    except BaseException:
        writer.transport.abort()
        raise
    if tls is not None:
        writer.transport.abort()  # a TLS close waits for the peer's goodbye: not worth it
    else:
        writer.close()


async def read_line(reader: asyncio.StreamReader) -> bytes:
    """One line, without its CR LF; ConnectionError when the peer closes first."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as e:
        raise ConnectionError(
            "the connection was closed" + (" mid-line" if e.partial else "")
        ) from None
    except asyncio.LimitOverrunError:
        raise ConnectionError(f"a line longer than {READ_LIMIT} bytes") from None
    return line.rstrip(b"\r\n")


def describe_os_error(e: OSError) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        return f"TLS error: {e.reason or e}"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset by the peer"
    if e.strerror:
        return e.strerror[0].lower() + e.strerror[1:]
    return str(e) or type(e).__name__


@dataclass(frozen=True)
class Endpoint:
    """Where a conversation monitor (tcp, smtp, imap) connects, and whether over TLS."""

    host: str
    port: int
    tls: bool = False
    verify: bool = True  # TLS: check the certificate (false: skip-verify)
    ca_file: str | None = None  # TLS: the CA that signed it (default: the system's)

    def describe(self, kind: str) -> str:
        return f"{kind}{'+tls' * self.tls} {self.host}:{self.port}"


def endpoint(t: Table, port: int | None, tls_port: int | None = None) -> Endpoint:
    """host (default 127.0.0.1), port (`port`, or `tls_port` with tls = true), tls, verify,
    ca_file. A `port` of None: the table must give one."""
    tls = t.bool_("tls", False)
    chosen = keys.port(t, "port", tls_port if tls and tls_port else port)
    if chosen is None:
        raise t.error("port", "is required: the port to connect to, 1-65535")
    return Endpoint(
        host=keys.host(t, "host", "127.0.0.1"),
        port=chosen,
        tls=tls,
        verify=t.bool_("verify", True),
        ca_file=keys.abs_path(t, "ca_file"),
    )


class Conversation:
    """A probe that connects to an Endpoint and talks; a kind says what in `talk`."""

    def __init__(self, where: Endpoint) -> None:
        self.where = where
        self.step = ""
        self._tls = tls_context(where.verify, where.ca_file) if where.tls else None

    async def probe(self, target: Target, deadline: float) -> Result:
        w = self.where
        try:
            self.step = "connecting"
            async with connection(w.host, w.port, tls=self._tls) as (reader, writer):
                return await self.talk(reader, writer)
        except OSError as e:
            return error(f"{w.host}:{w.port}: {describe_os_error(e)}")

    async def talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Result:
        raise NotImplementedError

    async def close(self) -> None:
        return None
