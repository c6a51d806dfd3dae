"""The daemon's side of the heartbeat: beat from the event loop, to something outside it.

Every interval the loop itself writes a byte to the keeper process (rearm.keeper), a keepalive
to the watchdog device when one is configured (the kernel then reboots a hung machine by
itself), and WATCHDOG=1 to systemd when it asked for it. A hung loop stops all three. This timer
is the only periodic wake-up of an idle daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys

from rearm.daemon.notify import notify
from rearm.model import Cluster

log = logging.getLogger("rearm.heartbeat")


def beat_interval(timeout: float, systemd_usec: str | None) -> float:
    """Three beats per timeout, and at least two per systemd watchdog period."""
    interval = timeout / 3
    if systemd_usec and systemd_usec.isdigit():
        interval = min(interval, int(systemd_usec) / 1e6 / 2)
    return max(0.1, interval)


class Heartbeat:
    def __init__(self, state_db: str, drill: bool, home_root: str | None = None) -> None:
        self.state_db = state_db
        self.home_root = home_root
        self.drill = drill
        self.keeper: subprocess.Popen[bytes] | None = None
        self.device: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.settings: tuple[int, str, bool, str | None] | None = None
        self.interval = 1.0

    def start(self, cluster: Cluster, drill: bool) -> None:
        settings = (
            cluster.heartbeat_timeout,
            cluster.heartbeat_action.value,
            drill,
            cluster.watchdog_device,
        )
        if settings == self.settings:
            return
        self.stop()
        self.settings = settings
        self.drill = drill
        self.interval = beat_interval(cluster.heartbeat_timeout, os.environ.get("WATCHDOG_USEC"))
        self._start_keeper(cluster.heartbeat_timeout, cluster.heartbeat_action.value)
        if cluster.watchdog_device:
            # Opening a real watchdog device arms it: from now on the kernel expects beats.
            self.device = os.open(cluster.watchdog_device, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._beat()

    def _start_keeper(self, timeout: int, action: str) -> None:
        argv = [
            sys.executable,
            "-m",
            "rearm.keeper",
            "--db",
            self.state_db,
            "--timeout",
            str(timeout),
            "--action",
            action,
            "--daemon-pid",
            str(os.getpid()),
        ]
        if self.drill:
            argv.append("--drill")
        argv += ["--home", self.home_root or ""]
        self.keeper = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True
        )
        assert self.keeper.stdin is not None
        os.set_blocking(self.keeper.stdin.fileno(), False)

    def _beat(self) -> None:
        if self.keeper is not None and self.keeper.stdin is not None:
            try:
                os.write(self.keeper.stdin.fileno(), b".")
            except BlockingIOError:
                pass  # the keeper is slow to read: it has beats queued already
            except BrokenPipeError:
                log.error(
                    "heartbeat keeper ended (status %s): starting a new one", self.keeper.wait()
                )
                assert self.settings is not None
                self._start_keeper(self.settings[0], self.settings[1])
        if self.device is not None:
            with contextlib.suppress(OSError):
                os.write(self.device, b"\0")
        notify("WATCHDOG=1")
        self.timer = asyncio.get_running_loop().call_later(self.interval, self._beat)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.device is not None:
            # The magic close: a clean stop disarms the watchdog instead of rebooting.
            with contextlib.suppress(OSError):
                os.write(self.device, b"V")
            os.close(self.device)
            self.device = None
        if self.keeper is not None:
            if self.keeper.stdin is not None:
                self.keeper.stdin.close()  # end of file: the keeper leaves quietly
            try:
                self.keeper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.keeper.kill()
                self.keeper.wait()
            self.keeper = None
        self.settings = None
