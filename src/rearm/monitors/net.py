"""Streams for the protocol monitors: a connection that is always closed, TLS contexts, reads
bounded in size. Deadlines are the scheduler's (it cancels the probe); nothing here waits on
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

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
