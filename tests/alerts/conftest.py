"""Real receivers on loopback for the alert tests: snmptrapd, an SMTP server, a web server, and
syslog sockets. Each listens on 127.0.0.1 with a port of its own, keeps its files in the test's
tmp dir, and is ended (by its own PID, for processes) when the test ends.

A missing tool skips a test on a developer's machine, and fails it in CI (CI=true): there the
tool must be installed (scripts/test-deps.sh does it).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Debian's net-snmp and libsmi come without the IETF base modules (they are in the non-free
# snmp-mibs-downloader); erlang-snmp ships SNMPv2-SMI, -TC, -CONF and -MIB as plain text.
BASE_MIBS = ("SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "SNMPv2-MIB")


def missing(what: str) -> None:
    """Skip -- or, in CI, fail: there a missing tool is a broken set-up, not a reason to skip."""
    message = f"{what} (scripts/test-deps.sh installs it)"
    if IN_CI:
        pytest.fail(f"missing in CI: {message}")
    pytest.skip(f"not installed: {message}")


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        missing(name)
    assert path is not None
    return path


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


async def eventually(what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
    """wait_for for async tests: polls without blocking the loop the code under test runs on."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


@pytest.fixture
def mib_dir(tmp_path: Path) -> Path:
    """REARM-MIB as the package ships it, beside the SMIv2 base modules it imports."""
    found = sorted(glob.glob("/usr/lib/erlang/lib/snmp-*/mibs"))
    if not found:
        missing("the SMIv2 base MIB modules (Debian package erlang-snmp)")
    folder = tmp_path / "mibs"
    folder.mkdir()
    for name in BASE_MIBS:
        shutil.copy(os.path.join(found[-1], f"{name}.mib"), folder / f"{name}.txt")
    mib = files("rearm").joinpath("mib", "REARM-MIB.txt").read_text()
    (folder / "REARM-MIB.txt").write_text(mib)
    return folder


class TrapReceiver:
    """snmptrapd in the foreground on 127.0.0.1:PORT, with REARM-MIB loaded, logging to a file.

    It accepts v2c with COMMUNITY, v3 traps from USER at ENGINE_ID (the sender is authoritative
    for traps), and v3 informs from USER (snmptrapd is authoritative for informs).
    """

    COMMUNITY = "rearm-test"
    USER = "rearmops"
    AUTH = "auth-secret-1"
    PRIV = "priv-secret-1"
    ENGINE_ID = "80007ed904726561726d2e74657374"  # 80007ed9 04 "rearm.test"

    def __init__(self, folder: Path, mibs: Path) -> None:
        self.port = free_port(socket.SOCK_DGRAM)
        self.log = folder / "traps.log"
        conf = folder / "snmptrapd.conf"
        conf.write_text(
            f"authCommunity log {self.COMMUNITY}\n"
            f"createUser -e 0x{self.ENGINE_ID} {self.USER} SHA {self.AUTH} AES {self.PRIV}\n"
            f"createUser {self.USER} SHA {self.AUTH} AES {self.PRIV}\n"
            f"authUser log {self.USER} priv\n"
        )
        persistent = folder / "persist"
        persistent.mkdir()
        self.proc = subprocess.Popen(
            [
                tool("snmptrapd"),
                "-f",  # foreground: the PID we hold is snmptrapd's own
                "-Lf",
                str(self.log),
                "-C",  # no system configuration files
                "-c",
                str(conf),
                "-M",
                str(mibs),
                "-m",
                "SNMPv2-MIB:REARM-MIB",
                f"udp:127.0.0.1:{self.port}",
            ],
            # Its state (engine boots, users) stays in the tmp dir; no ~/.snmp from the user.
            env={**os.environ, "SNMP_PERSISTENT_DIR": str(persistent), "HOME": str(folder)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("snmptrapd to start", lambda: "NET-SNMP version" in self.text() or self._died())

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"snmptrapd exited ({self.proc.returncode}): {self.text()}")
        return False

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def trap_receiver(tmp_path: Path, mib_dir: Path) -> Iterator[TrapReceiver]:
    receiver = TrapReceiver(tmp_path, mib_dir)
    try:
        yield receiver
    finally:
        receiver.stop()


class HookServer:
    """A webhook receiver in a thread of its own (for tests whose sender runs elsewhere: the
    CLI's asyncio.run, the daemon). Checks each signature with `secret`, keeps what it got."""

    def __init__(self, secret: str | None = None) -> None:
        import hashlib
        import hmac
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.secret = secret
        self.received: list[dict[str, object]] = []
        self.arrival: list[float] = []
        self.bad_signatures = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if outer.secret is not None:
                    mac = hmac.new(outer.secret.encode(), body, hashlib.sha256).hexdigest()
                    given = self.headers.get("X-Rearm-Signature", "")
                    if not hmac.compare_digest(given, f"sha256={mac}"):
                        outer.bad_signatures += 1
                        self.send_response(401)
                        self.end_headers()
                        return
                outer.received.append(json.loads(body))
                outer.arrival.append(time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kinds(self) -> list[object]:
        return [r["kind"] for r in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer(secret="hook-secret")
    try:
        yield server
    finally:
        server.stop()


class BlackHole:
    """A TCP port that completes connections and never answers (the kernel accepts into the
    backlog; nobody reads), and a UDP port that swallows datagrams: receivers that hang."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(1000)
        self.tcp_port = int(self.tcp.getsockname()[1])
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp_port = int(self.udp.getsockname()[1])

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()
