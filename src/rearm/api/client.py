"""The control API client: stdlib only, so that armload and armkill start fast.

The protocol is one JSON object per line over the daemon's Unix socket: the client sends one
request {"op": ..., "args": {...}}; the daemon answers with one object, {"ok": true, ...} or
{"ok": false, "error": "one line"}. Streaming calls (`rearm log --follow`) answer with one
object per line until the client hangs up.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any


class DaemonNotRunning(ConnectionError):
    """No daemon answers on the control socket."""


class ApiFailure(RuntimeError):
    """The daemon refused the request; str() is its one-line reason."""


def _connect(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
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


def _send(sock: socket.socket, op: str, args: dict[str, Any]) -> None:
    sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")


def call(
    path: str, op: str, args: dict[str, Any] | None = None, timeout: float | None = None
) -> Any:
    """One request, one answer. Raises DaemonNotRunning or ApiFailure."""
    sock = _connect(path, timeout)
    try:
        _send(sock, op, args or {})
        reader = sock.makefile("rb")
        line = reader.readline()
    finally:
        sock.close()
    if not line:
        raise ApiFailure("the daemon closed the connection without an answer (see its log)")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ApiFailure(str(answer.get("error", "request refused")))
    return answer.get("result")


def stream(path: str, op: str, args: dict[str, Any] | None = None) -> Iterator[Any]:
    """A request whose answer is a stream of objects (one per line) until either side stops."""
    sock = _connect(path, None)
    try:
        _send(sock, op, args or {})
        reader = sock.makefile("rb")
        for line in reader:
            answer = json.loads(line)
            if not answer.get("ok"):
                raise ApiFailure(str(answer.get("error", "request refused")))
            yield answer.get("result")
    finally:
        sock.close()
