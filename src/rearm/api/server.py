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

log = logging.getLogger("rearm.api")

MAX_REQUEST = 1 << 20  # a request is a command line, never more than this


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
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caller = _peer(writer)
        try:
            line = await reader.readline()
        except ValueError:
            await _answer(writer, {"ok": False, "error": "request too large"})
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
            await self._stream(op, args, caller, reader, writer)
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

    async def _stream(
        self,
        op: str,
        args: dict[str, Any],
        caller: Caller,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        hangup = asyncio.ensure_future(reader.read())  # returns when the client goes away
        try:
            async for item in self.streams[op](args, caller):
                if hangup.done():
                    break
                await _answer(writer, {"ok": True, "result": item})
        except ApiError as e:
            await _answer(writer, {"ok": False, "error": str(e)})
        finally:
            hangup.cancel()


async def _answer(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    writer.write(json.dumps(obj).encode() + b"\n")
    await writer.drain()


def _peer(writer: asyncio.StreamWriter) -> Caller:
    sock: socket.socket = writer.get_extra_info("socket")
    return peer_caller(sock)
