"""`http`: one request; the status, and optionally the body, decide.

    [[monitors]]
    name = "web"
    kind = "http"
    url = "https://127.0.0.1:8443/status"
    method = "GET"                  # or HEAD, POST (with body = "...")
    status = [200, 204]             # default: any 2xx; "2xx" and "3xx" are allowed too
    expect = "database: ok"         # optional: a regular expression the body must contain
    headers = { Host = "shop.example.com", Authorization = "Bearer ..." }
    redirects = "accept"            # a 3xx answer is OK; "follow" (up to 5), or "error"
    verify = true                   # TLS: check the certificate (false: skip-verify)
    ca_file = "/etc/rearm/ca.pem"   # TLS: the CA that signed it (default: the system's)

HTTP/1.1 over asyncio streams with `Connection: close`, one connection per probe. A small
client of our own rather than aiohttp's: a probe needs one request, a status line, headers and
at most BODY_MAX bytes of body, and at 1,000 monitors a second the client's own cost is the
monitor's cost.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from rearm.monitors import keys, net
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok
from rearm.validate import Table

BODY_MAX = 1 << 18
HEADERS_MAX = 100
REDIRECTS_MAX = 5
METHODS = ("get", "head", "post")
REDIRECTS = ("accept", "follow", "error")
STATUS_RULE = 'must be a status (200), a class ("2xx") or a list of those, from 100 to 599'


@dataclass(frozen=True)
class HttpOptions(Options):
    url: str
    method: str = "GET"
    status: frozenset[int] = frozenset(range(200, 300))
    expect: re.Pattern[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    redirects: str = "accept"
    verify: bool = True
    ca_file: str | None = None

    def build(self, env: ProbeEnv) -> Probe:
        return HttpProbe(self)

    def describe(self) -> str:
        return f"http {self.method} {self.url}"


def parse(t: Table) -> HttpOptions:
    url = keys.text(t, "url", required=True)
    assert url is not None
    _check_url(t, "url", url)
    headers = t.str_map("headers")
    for name, value in headers.items():
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or re.search(r"[\r\n\0]", value):
            raise keys.bad(t, "headers", name, "header names are tokens, values one line")
    body = keys.text(t, "body", empty_ok=True)
    method = keys.choice(t, "method", METHODS, "get").upper()
    if body is not None and method != "POST":
        raise t.error("body", 'a body is sent with method = "POST" only')
    return HttpOptions(
        url=url,
        method=method,
        status=_statuses(t),
        expect=keys.pattern(t, "expect"),
        headers=headers,
        body=None if body is None else body.encode("utf-8"),
        redirects=keys.choice(t, "redirects", REDIRECTS, "accept"),
        verify=t.bool_("verify", True),
        ca_file=keys.abs_path(t, "ca_file"),
    )


def _check_url(t: Table, key: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as e:
        raise keys.bad(t, key, url, f"must be an http:// or https:// URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise keys.bad(t, key, url, "must be an http:// or https:// URL with a host")


def _statuses(t: Table) -> frozenset[int]:
    value = t.raw("status")
    if value is None:
        return frozenset(range(200, 300))
    items = value if isinstance(value, list) else [value]
    found: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            found.add(item)
        elif isinstance(item, str) and re.fullmatch(r"[1-5]xx", item.lower()):
            first = int(item[0]) * 100
            found.update(range(first, first + 100))
        else:
            raise keys.bad(t, "status", item, STATUS_RULE)
    if not found:
        raise keys.bad(t, "status", value, STATUS_RULE)
    return frozenset(found)


@dataclass
class Answer:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class HttpProbe:
    def __init__(self, options: HttpOptions) -> None:
        self.options = options
        self.step = ""
        self._tls: ssl.SSLContext | None = None

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:  # made once: loading the CA store takes milliseconds
            self._tls = net.tls_context(self.options.verify, self.options.ca_file)
        return self._tls

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.options
        url = o.url
        for hop in range(REDIRECTS_MAX + 1):
            try:
                answer = await self._request(url)
            except (OSError, ValueError, EOFError) as e:
                what = net.describe_os_error(e) if isinstance(e, OSError) else str(e)
                if isinstance(e, EOFError):
                    what = "the connection was closed mid-answer"
                return error(f"{url}: {what}")
            if 300 <= answer.status < 400 and answer.status != 304:
                location = answer.headers.get("location")
                if o.redirects == "accept":
                    return ok(f"HTTP {answer.status} {answer.reason} (a redirect: accepted)")
                if o.redirects == "error":
                    return error(f"HTTP {answer.status} {answer.reason}: redirected to {location}")
                if not location:
                    return error(f"HTTP {answer.status} without a Location to follow")
                if hop == REDIRECTS_MAX:
                    return error(f"more than {REDIRECTS_MAX} redirects (last to {location})")
                url = urljoin(url, location)
                continue
            return self._verdict(answer, url)
        raise AssertionError("unreachable")

    def _verdict(self, answer: Answer, url: str) -> Result:
        o = self.options
        said = f"HTTP {answer.status} {answer.reason}".rstrip()
        if url != o.url:
            said += f" from {url}"
        if answer.status not in o.status:
            return error(f"{said} (expected {_show_statuses(o.status)})")
        if o.expect is not None:
            text = answer.body.decode("utf-8", errors="replace")
            if not o.expect.search(text):
                return error(f"{said}, but the body does not match /{o.expect.pattern}/")
        return ok(said)

    async def _request(self, url: str) -> Answer:
        o = self.options
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"cannot follow a redirect to {url}")
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.netloc, "User-Agent": "rearm-monitor", "Accept": "*/*"}
        headers.update(o.headers)
        headers["Connection"] = "close"
        if o.body is not None:
            headers["Content-Length"] = str(len(o.body))
        head = f"{o.method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        tls = self._context() if https else None
        self.step = f"connecting to {parts.netloc}"
        async with net.connection(parts.hostname, port, tls=tls) as (reader, writer):
            writer.write(head.encode("latin-1") + b"\r\n" + (o.body or b""))
            await writer.drain()
            self.step = "waiting for the status line"
            status, reason = _status_line(await net.read_line(reader))
            self.step = "reading the headers"
            answer = Answer(status, reason, await _headers(reader), b"")
            if o.expect is not None and _has_body(o.method, status):
                self.step = "reading the body"
                answer.body = await _body(reader, answer.headers)
            return answer

    async def close(self) -> None:
        return None


def _show_statuses(statuses: frozenset[int]) -> str:
    classes = [c for c in range(1, 6) if set(range(c * 100, c * 100 + 100)) <= statuses]
    rest = sorted(s for s in statuses if s // 100 not in classes)
    return ", ".join([f"{c}xx" for c in classes] + [str(s) for s in rest])


def _status_line(line: bytes) -> tuple[int, str]:
    fields = line.decode("latin-1").split(" ", 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise ValueError(f"not an HTTP answer: {line[:60]!r}")
    return int(fields[1]), fields[2] if len(fields) > 2 else ""


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(HEADERS_MAX):
        line = await net.read_line(reader)
        if not line:
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise ValueError(f"more than {HEADERS_MAX} headers")


def _has_body(method: str, status: int) -> bool:
    return method != "HEAD" and status >= 200 and status not in (204, 304)


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """Up to BODY_MAX bytes of the body: by Content-Length, chunks, or until the close."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while len(body) < BODY_MAX:
            size_line = await net.read_line(reader)
            try:
                size = int(size_line.split(b";")[0].strip() or b"x", 16)
            except ValueError:
                raise ValueError(f"bad chunk size {size_line[:20]!r}") from None
            if size == 0:
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)  # CR LF after each chunk
        return body[:BODY_MAX]
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        try:
            return await reader.readexactly(min(int(length), BODY_MAX))
        except asyncio.IncompleteReadError as e:
            raise ConnectionError(
                f"the body ended after {len(e.partial)} of {length} bytes"
            ) from None
    body = b""
    while len(body) < BODY_MAX:
        chunk = await reader.read(BODY_MAX - len(body))
        if not chunk:
            break
        body += chunk
    return body
