"""Webhook: the alert as JSON in an HTTP POST, optionally signed with HMAC-SHA256.

Keys of an `[[alerts]]` table with `type = "webhook"`:
    url = "https://..."               http:// or https:// (required)
    secret / secret_file              signs the body: X-Rearm-Signature: sha256=<hex>
    headers = { Authorization = "Bearer ..." }   extra request headers
    verify_tls = true                 check the server's certificate (https)
    ca_file = "/path/ca.pem"          trust this CA (e.g. a private one) for https

The body is the event as `rearm log --json` prints it, plus source, cluster, server and test.
A receiver checks the signature over the exact bytes it received, before parsing them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from rearm.alerts import fields
from rearm.alerts.model import Alert, DeliveryError
from rearm.alerts.preload import import_off_loop
from rearm.validate import Table

SIGNATURE_HEADER = "X-Rearm-Signature"
# Statuses worth another try; any other 4xx says the request itself is wrong.
RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    verify_tls: bool = True
    ca_file: str | None = None

    def describe(self) -> str:
        signed = ", signed" if self.secret else ""
        return f"POST {self.url}{signed}"

    def create(self, timeout: float) -> WebhookSink:
        return WebhookSink(self, timeout)


def parse(t: Table, base_dir: str, server: str) -> WebhookSettings:
    url = t.req_str("url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise t.error("url", "must be an http:// or https:// URL, e.g. http://127.0.0.1:8080/hook")
    headers = t.str_map("headers")
    for name in headers:
        if name.lower() in ("content-type", "content-length", SIGNATURE_HEADER.lower()):
            raise t.error("headers", f"'{name}' is set by rearm and cannot be changed")
    ca_file = t.str_("ca_file")
    if ca_file is not None:
        ca_file = os.path.join(base_dir, ca_file)
    return WebhookSettings(
        url=url,
        secret=fields.secret(t, "secret", base_dir),
        headers=headers,
        verify_tls=t.bool_("verify_tls", True),
        ca_file=ca_file,
    )


def signature(secret: str, body: bytes) -> str:
    """The X-Rearm-Signature value: 'sha256=' and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def body(alert: Alert) -> bytes:
    return json.dumps(alert.as_json(), ensure_ascii=False, separators=(",", ":")).encode()


class WebhookSink:
    def __init__(self, settings: WebhookSettings, timeout: float) -> None:
        self.s = settings
        self.timeout = timeout
        self._session: Any = None

    async def open(self) -> None:
        if self._session is None:
            await import_off_loop("aiohttp")
            import aiohttp

            tls: ssl.SSLContext | bool = True
            if not self.s.verify_tls:
                tls = False
            elif self.s.ca_file:
                tls = ssl.create_default_context(cafile=self.s.ca_file)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls, limit=2),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "rearm"},
            )

    async def send(self, alert: Alert) -> str:
        await self.open()
        import aiohttp

        data = body(alert)
        headers = {**self.s.headers, "Content-Type": "application/json"}
        if self.s.secret:
            headers[SIGNATURE_HEADER] = signature(self.s.secret, data)
        try:
            # No redirects: a POST re-sent elsewhere (or turned into a GET) is not delivery.
            async with self._session.post(
                self.s.url, data=data, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                reason = response.reason or ""
        except aiohttp.ClientError as e:
            raise DeliveryError(f"POST {self.s.url}: {e or type(e).__name__}") from None
        if 200 <= status < 300:
            return f"HTTP {status} {reason}".strip()
        permanent = 300 <= status < 500 and status not in RETRYABLE
        raise DeliveryError(
            f"POST {self.s.url}: HTTP {status} {reason}".strip(), permanent=permanent
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
