"""The management address's connections: bounded per client address and in all, and a
connection must finish its first request's headers within HEADER_TIMEOUT.

Every connection costs the daemon a file descriptor, and the daemon needs descriptors to
restart services (the pidfd it watches a target through, the target's log). Unbounded, about a
thousand idle or slow-header connections from the network used up the daemon's descriptors:
root was locked out of the control socket, and a restart started a process that could not be
watched. So a connection over the limits is closed as soon as it is accepted; one that has not
sent a whole request head within HEADER_TIMEOUT is closed (later requests on a kept-alive
connection are bounded by aiohttp's keep-alive timeout, KEEPALIVE_TIMEOUT, which closes a
connection that has not finished a request that long after its last answer).

The guard wraps aiohttp's protocol rather than replacing anything of aiohttp's: each accepted
connection gets a small asyncio.Protocol that counts it and hands everything on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from rearm.quota import Quota
from rearm.ratelog import RateLimitedLog

PER_ADDRESS = 16  # a browser opens about six per server; a few tabs with live pages
TOTAL = 128
HEADER_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 15.0

log = logging.getLogger("rearm.web")


class ConnectionGuard:
    def __init__(
        self,
        per_address: int = PER_ADDRESS,
        total: int = TOTAL,
        header_timeout: float = HEADER_TIMEOUT,
    ) -> None:
        self.quota = Quota(per_address, total)
        self.header_timeout = header_timeout
        self.refused = 0
        self.timed_out = 0
        self.lines = RateLimitedLog(log)

    @property
    def count(self) -> int:
        return self.quota.count

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`; why it is refused, or None."""
        return self.quota.take(
            address,
            key_full=f"{self.quota.per_key} connections from {address} are open",
            all_full=f"{self.quota.total} connections are open",
        )

    def release(self, address: str) -> None:
        self.quota.release(address)

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for loop.create_server that guards `inner`'s protocols."""
        return lambda: _Guarded(self, inner())


class _Guarded(asyncio.Protocol):
    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.address: str | None = None  # set once admitted
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tail = b""  # the last bytes seen, to find the end of the first request head

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        refusal = self.guard.admit(address)
        if refusal is not None:
            self.guard.refused += 1
            transport.abort()  # its descriptor is closed now, not when the client goes
            self.guard.lines.log(
                "refused",
                logging.WARNING,
                "Manager: connection from %s refused: %s",
                address,
                refusal,
            )
            return
        self.address = address
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(
            self.guard.header_timeout, self._too_slow
        )
        self.inner.connection_made(transport)

    def _too_slow(self) -> None:
        self.timer = None
        self.guard.timed_out += 1
        self.guard.lines.log(
            "slow",
            logging.WARNING,
            "Manager: connection from %s closed: no whole request within %g s",
            self.address,
            self.guard.header_timeout,
        )
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.address is None:
            return
        if self.timer is not None:
            seen = self.tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self.timer.cancel()
                self.timer = None
            else:
                self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.address is None:
            return None
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        if self.address is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.address is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.address is None:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.release(self.address)
        self.inner.connection_lost(exc)
