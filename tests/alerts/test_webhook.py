"""Webhook alerts received by a real HTTP server on loopback, which checks the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from rearm.alerts.model import DeliveryError

from .helpers import alert, sink

SECRET = "s3cret-for-hmac"


@dataclass
class Receiver:
    """Answers with the statuses in `replies` (then 200), keeps what it got, verifies signatures."""

    url: str = ""
    replies: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Rearm-Signature", "")
        if given and not hmac.compare_digest(given, expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.headers.append(dict(request.headers))
        self.received.append(json.loads(body))
        return web.Response(status=self.replies.pop(0) if self.replies else 200)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield r
    finally:
        await runner.cleanup()


async def _send(table: dict[str, Any], base_dir: Path | str = "/nonexistent", **kw: Any) -> str:
    s = sink(base_dir, **table).create()
    try:
        return await s.send(alert(**kw))
    finally:
        await s.close()


@pytest.mark.asyncio
async def test_signed_json_post(receiver: Receiver) -> None:
    detail = await _send(
        {"type": "webhook", "url": receiver.url, "secret": SECRET}, kind="restart", severity="info"
    )
    assert detail == "HTTP 200 OK"
    assert receiver.bad_signatures == 0
    (body,) = receiver.received
    assert body["source"] == "rearm" and body["test"] is False
    assert (body["cluster"], body["server"]) == ("testcl", "test-server")
    assert (body["kind"], body["severity"], body["group"], body["watch"]) == (
        "restart",
        "info",
        "web",
        "WEB1",
    )
    assert body["ts"].endswith("Z") and isinstance(body["id"], int)
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert receiver.headers[0]["X-Rearm-Signature"].startswith("sha256=")


@pytest.mark.asyncio
async def test_secret_from_a_file_and_extra_headers(receiver: Receiver, tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    await _send(
        {
            "type": "webhook",
            "url": receiver.url,
            "secret_file": "hook.secret",
            "headers": {"Authorization": "Bearer abc"},
        },
        base_dir=tmp_path,
    )
    assert receiver.bad_signatures == 0 and len(receiver.received) == 1
    assert receiver.headers[0]["Authorization"] == "Bearer abc"


@pytest.mark.asyncio
async def test_a_wrong_secret_is_refused_by_the_receiver(receiver: Receiver) -> None:
    with pytest.raises(DeliveryError) as failure:
        await _send({"type": "webhook", "url": receiver.url, "secret": "not-the-secret"})
    assert receiver.bad_signatures == 1 and receiver.received == []
    assert "HTTP 401" in str(failure.value) and failure.value.permanent


@pytest.mark.asyncio
async def test_server_errors_are_retryable_client_errors_are_not(receiver: Receiver) -> None:
    receiver.replies = [503, 404, 429]
    for permanent in (False, True, False):
        with pytest.raises(DeliveryError) as failure:
            await _send({"type": "webhook", "url": receiver.url})
        assert failure.value.permanent is permanent


@pytest.mark.asyncio
async def test_connection_refused_is_a_retryable_failure() -> None:
    from .conftest import free_port

    with pytest.raises(DeliveryError) as failure:
        await _send({"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"})
    assert not failure.value.permanent
