"""sd_notify over $NOTIFY_SOCKET: a datagram per message, nothing when not run by systemd."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(path)
            sock.sendall(message.encode())
        except OSError:
            return False
    return True
