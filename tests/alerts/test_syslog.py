"""Syslog alerts received on loopback: a UDP collector (RFC 5424) and a unix datagram socket
standing in for /dev/log (RFC 3164); and a receiver that stops reading does not block."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rearm.alerts.model import DeliveryError

from .helpers import alert, sink


@pytest.fixture
def udp_collector() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        yield s


@pytest.fixture
def dev_log(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.setblocking(False)
        yield path, s


async def _receive(s: socket.socket) -> bytes:
    async with asyncio.timeout(5):
        return await asyncio.get_running_loop().sock_recv(s, 65536)


async def _send(table: dict[str, Any], **kw: Any) -> str:
    s = sink(**table).create()
    try:
        return await s.send(alert(**kw))
    finally:
        await s.close()


@pytest.mark.asyncio
async def test_rfc5424_over_udp(udp_collector: socket.socket) -> None:
    port = udp_collector.getsockname()[1]
    await _send(
        {"type": "syslog", "target": f"127.0.0.1:{port}", "facility": "local3"},
        kind="group_error",
        severity="error",
        watch=None,
        message='start script of web failed: exit 3 "quoted]"',
    )
    line = (await _receive(udp_collector)).decode()
    # <PRI>1 TIMESTAMP HOST APP PID MSGID [SD] MSG; local3 (19) * 8 + error (3) = 155
    m = re.match(r"^<155>1 \S+Z \S+ rearm \d+ group_error (\[.*?[^\\]\]) \ufeff(.*)$", line)
    assert m, line
    assert re.fullmatch(
        r'\[rearm@32473 cluster="testcl" server="test-server" kind="group_error" group="web"'
        r' event="\d+"\]',
        m.group(1),
    )
    assert m.group(2) == 'group_error web: start script of web failed: exit 3 "quoted]"'


@pytest.mark.asyncio
async def test_rfc3164_to_a_local_socket(dev_log: tuple[str, socket.socket]) -> None:
    path, receiver = dev_log
    await _send({"type": "syslog", "target": path}, kind="fault", severity="warning")
    line = (await _receive(receiver)).decode()
    # daemon (3) * 8 + warning (4) = 28
    assert re.match(
        r"^<28>\w{3} [ \d]\d \d\d:\d\d:\d\d rearm\[\d+\]: \[testcl\] fault web/WEB1: ", line
    )


@pytest.mark.asyncio
async def test_a_missing_socket_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError):
        await _send({"type": "syslog", "target": str(tmp_path / "nobody")})


@pytest.mark.asyncio
async def test_a_receiver_that_stopped_reading_times_out_without_blocking_the_loop(
    dev_log: tuple[str, socket.socket],
) -> None:
    path, _ = dev_log  # bound, never read: its buffer fills and sending would block
    config = sink(type="syslog", target=path, timeout=1)
    s = config.create()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(config.timeout):
            for _ in range(100_000):
                await s.send(alert(message="x" * 1500))
    task.cancel()
    await s.close()
    elapsed = time.monotonic() - start
    assert elapsed < 3
    assert ticks > elapsed / 0.01 * 0.5  # the loop kept running while the socket was full
