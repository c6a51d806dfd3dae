"""The NOTIFY_SOCKET rearm gives a service: sd_notify datagrams in, heartbeats out.

One datagram socket per target (the daemon binds it at e.g. run/notify/WATCHID.sock and starts
the service with NOTIFY_SOCKET naming it): a datagram on it speaks for that target, whichever
of its processes sent it -- no guessing from the sender's pid, which for a short-lived
`systemd-notify` is often gone before it could be looked up. The socket file belongs to the
service's user (mode 0600), and the sender's credentials (SO_PASSCRED) must be that user's or
root's. Descriptors passed along (FDSTORE=1) are closed: rearm keeps none.

    WATCHDOG=1        a heartbeat (monitors.beats)
    WATCHDOG=trigger  the service asks for its own recovery at the next probe
    READY=1, STATUS=..., STOPPING=1 ...   handed to `on_message` (readiness, status text)
    BARRIER=1         answered by closing the descriptor it carries (systemd-notify waits)
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Callable

from rearm.monitors.beats import Beats

DATAGRAM_MAX = 4096
UCRED = struct.Struct("3i")  # pid, uid, gid
FDS_MAX = 16
PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


def parse_notify(data: bytes) -> dict[str, str]:
    """sd_notify's datagram: newline-separated KEY=VALUE lines (the last one wins)."""
    fields = {}
    for line in data.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key and key.replace("_", "").isalnum() and key.isupper():
            fields[key] = value
    return fields


class NotifySockets:
    def __init__(
        self,
        beats: Beats,
        on_message: Callable[[str, dict[str, str]], None] | None = None,
    ) -> None:
        self.beats = beats
        self.on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._open: dict[str, tuple[socket.socket, str, int | None]] = {}

    def open(self, name: str, path: str, *, uid: int | None = None, gid: int | None = None) -> str:
        """Bind the socket of target `name` at `path` (replacing a stale file); returns the
        value for NOTIFY_SOCKET. `uid`/`gid`: the service's user, who may write to it."""
        if len(os.fsencode(path)) > PATH_MAX:
            raise ValueError(f"{path}: longer than the {PATH_MAX} bytes a socket path may have")
        self.close(name)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            sock.bind(path)
            os.chmod(path, 0o600)
            if uid is not None:
                os.chown(path, uid, -1 if gid is None else gid)
        except BaseException:
            sock.close()
            raise
        self._open[name] = (sock, path, uid)
        self._loop.add_reader(sock.fileno(), self._receive, name)
        return path

    def close(self, name: str) -> None:
        entry = self._open.pop(name, None)
        if entry is None:
            return
        sock, path, _ = entry
        self._loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def close_all(self) -> None:
        for name in list(self._open):
            self.close(name)

    def _receive(self, name: str) -> None:
        entry = self._open.get(name)
        if entry is None:
            return
        sock, _, uid = entry
        room = socket.CMSG_SPACE(UCRED.size) + socket.CMSG_SPACE(FDS_MAX * 4)
        while True:
            try:
                data, ancillary, _, _ = sock.recvmsg(DATAGRAM_MAX, room)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sender_uid = None
            for level, kind, payload in ancillary:
                if level != socket.SOL_SOCKET:
                    continue
                if kind == socket.SCM_CREDENTIALS and len(payload) >= UCRED.size:
                    sender_uid = UCRED.unpack_from(payload)[1]
                elif kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    for fd in fds:
                        with contextlib.suppress(OSError):
                            os.close(fd)
            if sender_uid is None or sender_uid not in (0, uid if uid is not None else 0):
                continue  # not the service's user: ignored
            self._handle(name, parse_notify(data))

    def _handle(self, name: str, fields: dict[str, str]) -> None:
        # BARRIER=1 comes with a descriptor whose close (done above) is the whole answer:
        # systemd-notify waits for it to know its message was read.
        fields.pop("BARRIER", None)
        watchdog = fields.get("WATCHDOG")
        if watchdog == "1":
            self.beats.beat(name, self._loop.time())
        elif watchdog == "trigger":
            self.beats.trigger(name, "WATCHDOG=trigger")
        if self.on_message is not None and fields:
            self.on_message(name, fields)
