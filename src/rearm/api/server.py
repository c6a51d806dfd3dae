"""The control API server on the daemon's Unix socket: framing, caller identity, error mapping.

Handlers are plain coroutines registered by name; they raise ApiError for a refusal whose
message goes back to the user as it is. Any other exception is a bug: it is logged with its
traceback and answered with a short message, and the daemon goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from rearm.api.access import AccessPolicy, Caller, peer_caller
from rearm.quota import Quota
from rearm.ratelog import RateLimitedLog

log = logging.getLogger("rearm.api")

MAX_REQUEST = 1 << 20  # a request is a command line, never more than this
REQUEST_TIMEOUT = 30.0  # the request line must have come by then: an idle connection is closed
# After its request a client sends nothing; a stream's client is read only to see it hang up.
# Whoever sends more than this meanwhile is hung up on (it was buffered whole: 400 MiB sent
# made 400 MB of memory).
MAX_AFTER_REQUEST = 64 * 1024
SLOW_READER = 10.0  # an answer not taken within this: the client is dropped
# Connections of callers who may only read (read_access = "everyone"), per uid and in all;
# those of root, the daemon's user and admin_group are not bounded (they may do anything).
READER_CONNECTIONS_PER_UID = 32
READER_CONNECTIONS = 128
# Live streams (`follow`): per uid, for everyone; in all; and in all for those who only read,
# so that they cannot take every stream from the admins.
STREAMS_PER_UID = 16
STREAMS = 128
READER_STREAMS = 64


class ApiError(Exception):
    """A refused request: str() is the one line the user sees."""


Handler = Callable[[dict[str, Any], Caller], Awaitable[Any]]
StreamHandler = Callable[[dict[str, Any], Caller], AsyncIterator[Any]]


class ControlServer:
    def __init__(
        self, path: str, socket_group: str | None = None, everyone_reads: bool = False
    ) -> None:
        self.path = path
        self.socket_group = socket_group
        self.everyone_reads = everyone_reads
        self.access = AccessPolicy(socket_group)
        self.handlers: dict[str, Handler] = {}
        self.streams: dict[str, StreamHandler] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._readers = Quota(READER_CONNECTIONS_PER_UID, READER_CONNECTIONS)  # by uid
        self._streams = Quota(STREAMS_PER_UID, STREAMS)  # live streams, by uid
        self._reader_streams = 0
        self.lines = RateLimitedLog(log)

    def register(self, op: str, handler: Handler) -> None:
        self.handlers[op] = handler

    def register_stream(self, op: str, handler: StreamHandler) -> None:
        self.streams[op] = handler

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        # Created owner-only from the first instant; widened to a group only when configured.
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.path, limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        if self.socket_group:
            import grp

            os.chown(self.path, -1, grp.getgrnam(self.socket_group).gr_gid)
            os.chmod(self.path, 0o660)
        if self.everyone_reads:
            # Anyone may connect; what they may do is checked per request (access.py).
            os.chmod(self.path, 0o666)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        for task in list(self._tasks):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        caller = _peer(writer)
        bounded = not self.access.is_admin(caller)
        try:
            if bounded:
                refusal = self._admit_reader(caller)
                if refusal is not None:
                    self.lines.log("readers", logging.WARNING, "control socket: %s", refusal)
                    await _answer(writer, {"ok": False, "error": refusal})
                    return
            await self._serve_one(caller, bounded, reader, writer)
        except SlowReader:
            self.lines.log(
                "slow",
                logging.WARNING,
                "control socket: dropped a client that reads too slowly (pid %d, uid %d)",
                caller.pid,
                caller.uid,
            )
            writer.transport.abort()  # close() would wait for the client to take the rest
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if bounded:
                self._readers.release(caller.uid)
            self._tasks.discard(task)
            writer.close()

    def _admit_reader(self, caller: Caller) -> str | None:
        """Count a connection of a read-only caller; why it is refused, or None."""
        per_uid = READER_CONNECTIONS_PER_UID
        return self._readers.take(
            caller.uid,
            key_full=f"too many connections: uid {caller.uid} has {per_uid} open",
            all_full=f"too many connections: {READER_CONNECTIONS} of read-only callers are open",
        )

    async def _serve_one(
        self,
        caller: Caller,
        reads_only: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
        except ValueError:
            await _answer(writer, {"ok": False, "error": "request too large"})
            return
        except TimeoutError:
            await _answer(
                writer, {"ok": False, "error": f"no request within {REQUEST_TIMEOUT:g} s"}
            )
            return
        if not line:
            return
        try:
            request = json.loads(line)
            op = request["op"]
            args = request.get("args") or {}
            if not isinstance(op, str) or not isinstance(args, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            await _answer(writer, {"ok": False, "error": "malformed request"})
            return
        except RecursionError:  # [[[[... : no request of rearm's nests more than a few levels
            await _answer(writer, {"ok": False, "error": "malformed request: nested too deeply"})
            return
        refusal = self.access.refusal(caller, op)
        if refusal is not None:
            await _answer(writer, {"ok": False, "error": refusal})
            return
        if op in self.streams:
            refusal = self._admit_stream(caller, reads_only)
            if refusal is not None:
                self.lines.log("streams", logging.WARNING, "control socket: %s", refusal)
                await _answer(writer, {"ok": False, "error": refusal})
                return
            try:
                await self._stream(op, args, caller, reader, writer)
            finally:
                self._end_stream(caller, reads_only)
            return
        handler = self.handlers.get(op)
        if handler is None:
            await _answer(writer, {"ok": False, "error": f"unknown operation '{op}'"})
            return
        try:
            result = await handler(args, caller)
        except ApiError as e:
            await _answer(writer, {"ok": False, "error": str(e)})
            return
        except Exception as e:
            log.exception("operation %s failed", op)
            await _answer(writer, {"ok": False, "error": f"internal error in {op}: {e}"})
            return
        await _answer(writer, {"ok": True, "result": result})

    def _admit_stream(self, caller: Caller, reads_only: bool) -> str | None:
        if reads_only and self._reader_streams >= READER_STREAMS:
            return f"too many live streams: {READER_STREAMS} of read-only callers are open"
        refusal = self._streams.take(
            caller.uid,
            key_full=f"too many live streams: uid {caller.uid} has {STREAMS_PER_UID} open",
            all_full=f"too many live streams: {STREAMS} are open",
        )
        if refusal is None:
            self._reader_streams += reads_only
        return refusal

    def _end_stream(self, caller: Caller, reads_only: bool) -> None:
        self._streams.release(caller.uid)
        self._reader_streams -= reads_only

    async def _stream(
        self,
        op: str,
        args: dict[str, Any],
        caller: Caller,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        hangup = asyncio.ensure_future(_hangup(reader))  # returns when the client goes away
        items = aiter(self.streams[op](args, caller))
        try:
            while True:
                # Waiting for the next item, a client that went away is seen at once: its
                # stream (and its place in the limits) ends then, not at the next event.
                item = asyncio.ensure_future(anext(items))
                await asyncio.wait({item, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if not item.done():
                    item.cancel()
                    break
                try:
                    result = item.result()
                except StopAsyncIteration:
                    break
                await _answer(writer, {"ok": True, "result": result})
        except ApiError as e:
            await _answer(writer, {"ok": False, "error": str(e)})
        finally:
            hangup.cancel()
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):
                    await aclose()


class SlowReader(Exception):
    """The client did not take an answer within SLOW_READER seconds."""


async def _answer(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    writer.write(json.dumps(obj).encode() + b"\n")
    try:
        await asyncio.wait_for(writer.drain(), SLOW_READER)
    except TimeoutError:
        raise SlowReader from None


async def _hangup(reader: asyncio.StreamReader) -> None:
    """Return when the client hangs up, or has sent more than MAX_AFTER_REQUEST since its
    request (then it is hung up on). What it sends is read and dropped, never kept."""
    sent = 0
    while chunk := await reader.read(65536):
        sent += len(chunk)
        if sent > MAX_AFTER_REQUEST:
            return


def _peer(writer: asyncio.StreamWriter) -> Caller:
    sock: socket.socket = writer.get_extra_info("socket")
    return peer_caller(sock)
