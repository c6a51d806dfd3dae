"""The control API client: stdlib only, so that armload and armkill start fast.

The protocol is one JSON object per line over the daemon's Unix socket: the client sends one
request {"op": ..., "args": {...}}; the daemon answers with one object, {"ok": true, ...} or
{"ok": false, "error": "one line"}. Streaming calls (`rearm log --follow`) answer with one
object per line until the client hangs up.

armload and armkill are this client's hottest users, so it imports only C modules and
rearm.api.wire: `_socket` rather than `socket` (which imports enum, selectors and more).
"""

from __future__ import annotations

import _socket

from rearm.api.wire import decode, encode

TYPE_CHECKING = False
if TYPE_CHECKING:  # only for the checker: typing costs milliseconds at run time
    from collections.abc import Iterator
    from typing import Any


class DaemonNotRunning(ConnectionError):
    """No daemon answers on the control socket."""


class ApiFailure(RuntimeError):
    """The daemon refused the request; str() is its one-line reason."""


def _connect(path: str, timeout: float | None) -> _socket.socket:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise DaemonNotRunning(
            f"the rearm daemon is not running (no answer on {path}): start it with 'rearm daemon'"
        ) from None
    except PermissionError:
        sock.close()
        raise DaemonNotRunning(
            f"permission denied on {path}: run as root or as a member of the cluster's admin_group"
        ) from None
    return sock


def _send(sock: _socket.socket, op: str, args: dict[str, Any]) -> None:
    sock.sendall(encode({"op": op, "args": args}).encode() + b"\n")


def _lines(sock: _socket.socket) -> Iterator[bytes]:
    """The answer's lines as they arrive (a plain socket has no makefile)."""
    pending = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            if pending:
                yield pending
            return
        pending += chunk
        while (end := pending.find(b"\n")) >= 0:
            yield pending[: end + 1]
            pending = pending[end + 1 :]


def _answer(line: bytes) -> Any:
    answer = decode(line.decode("utf-8", "surrogateescape"))
    if not isinstance(answer, dict):
        raise ApiFailure("the daemon sent an answer that is not a JSON object (see its log)")
    if not answer.get("ok"):
        raise ApiFailure(str(answer.get("error", "request refused")))
    return answer.get("result")


def call(
    path: str, op: str, args: dict[str, Any] | None = None, timeout: float | None = None
) -> Any:
    """One request, one answer. Raises DaemonNotRunning or ApiFailure."""
    sock = _connect(path, timeout)
    try:
        _send(sock, op, args or {})
        line = next(_lines(sock), b"")
    finally:
        sock.close()
    if not line:
        raise ApiFailure("the daemon closed the connection without an answer (see its log)")
    return _answer(line)


def stream(path: str, op: str, args: dict[str, Any] | None = None) -> Iterator[Any]:
    """A request whose answer is a stream of objects (one per line) until either side stops."""
    sock = _connect(path, None)
    try:
        _send(sock, op, args or {})
        for line in _lines(sock):
            yield _answer(line)
    finally:
        sock.close()
