"""Readiness checks of a started service: a TCP connect, an HTTP GET, or a command exiting 0.

Tried every PROBE_INTERVAL while the service is starting -- the only repeated timer a starting
service costs, and it stops as soon as the service answers or ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from urllib.parse import urlsplit

from rearm.model import ReadyCheck

PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 2.0


async def probe(check: ReadyCheck, env: dict[str, str] | None = None) -> bool:
    try:
        if check.tcp is not None:
            host, _, port = check.tcp.rpartition(":")
            return await _connect(host.strip("[]"), int(port))
        if check.http is not None:
            return await _http_ok(check.http)
        if check.command is not None:
            proc = await asyncio.create_subprocess_exec(
                *check.command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                return await asyncio.wait_for(proc.wait(), PROBE_TIMEOUT) == 0
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False
    except (OSError, TimeoutError, ValueError):
        return False
    return True


async def _connect(host: str, port: int) -> bool:
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _http_ok(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), PROBE_TIMEOUT)
    finally:
        writer.close()
    fields = status.split()
    return len(fields) >= 2 and fields[1][:1] in (b"2", b"3")


async def wait_ready(
    check: ReadyCheck, still_starting: Callable[[], bool], env: dict[str, str] | None = None
) -> bool:
    """Probe until the check passes (True) or the service stops starting (False). A command
    runs with `env` (None: the daemon's)."""
    while still_starting():
        if await probe(check, env):
            return True
        await asyncio.sleep(PROBE_INTERVAL)
    return False
