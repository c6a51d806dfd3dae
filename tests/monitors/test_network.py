"""`tcp` and `http` against small servers on loopback: send/expect, statuses, bodies (by
length, chunks, until the close), redirects, headers, and TLS with a CA, a wrong CA and
skip-verify. The protocol kinds against real servers are in tests/services/test_monitors.py."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rearm.monitors.base import Result, Status

from .helpers import probe_once, spec, toml_str


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = (await reader.readuntil(b"\r\n\r\n")).decode()
    path = request.split()[1]
    head = "HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"
    if path == "/ok":
        body = "all good, database: ok"
        writer.write((head.format(n=len(body)) + body).encode())
    elif path == "/bad":
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad")
    elif path == "/chunked":
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nstatus\r\n9\r\n: healthy\r\n0\r\n\r\n"
        )
    elif path == "/until-close":
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nstreamed: healthy")
    elif path == "/redirect":
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n")
    elif path == "/loop":
        writer.write(b"HTTP/1.1 301 Moved\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")
    elif path == "/headers":
        body = request
        writer.write((head.format(n=len(body)) + body).encode())
    elif path == "/hang":
        await reader.read()
    await writer.drain()
    writer.close()


@asynccontextmanager
async def server(tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    srv = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=tls)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()


async def http(url: str, *lines: str) -> Result:
    return await probe_once(
        spec(
            f'kind = "http"\nurl = {toml_str(url)}\ninterval = 3\ntimeout = 2\n' + "\n".join(lines)
        )
    )


@pytest.mark.asyncio
async def test_http_status_and_body() -> None:
    async with server() as port:
        base = f"http://127.0.0.1:{port}"
        ok = await http(f"{base}/ok", 'expect = "database: ok"')
        assert (ok.status, ok.message) == (Status.OK, "HTTP 200 OK")
        bad = await http(f"{base}/bad")
        assert (bad.status, bad.message) == (Status.ERROR, "HTTP 502 Bad Gateway (expected 2xx)")
        assert (await http(f"{base}/bad", "status = [200, 502]")).status is Status.OK
        wrong = await http(f"{base}/ok", 'expect = "database: down"')
        assert wrong.status is Status.ERROR and "does not match /database: down/" in wrong.message
        for path in ("/chunked", "/until-close"):
            assert (await http(f"{base}{path}", 'expect = ": healthy"')).status is Status.OK, path


@pytest.mark.asyncio
async def test_http_redirect_rules() -> None:
    async with server() as port:
        base = f"http://127.0.0.1:{port}"
        accepted = await http(f"{base}/redirect")
        assert (accepted.status, accepted.message) == (
            Status.OK,
            "HTTP 302 Found (a redirect: accepted)",
        )
        followed = await http(f"{base}/redirect", 'redirects = "follow"', 'expect = "all good"')
        assert followed.status is Status.OK and followed.message.endswith(f"from {base}/ok")
        refused = await http(f"{base}/redirect", 'redirects = "error"')
        assert refused.status is Status.ERROR and "redirected to /ok" in refused.message
        looping = await http(f"{base}/loop", 'redirects = "follow"')
        assert looping.status is Status.ERROR and "more than 5 redirects" in looping.message


@pytest.mark.asyncio
async def test_http_headers_method_and_body_are_sent() -> None:
    async with server() as port:
        result = await http(
            f"http://127.0.0.1:{port}/headers",
            'method = "POST"',
            'body = "{}"',
            'headers = { Host = "shop.example", Authorization = "Bearer t0ken" }',
            'expect = "(?s)^POST /headers HTTP/1.1.*Host: shop.example.*Bearer t0ken"',
        )
    assert result.status is Status.OK, result


@pytest.mark.asyncio
async def test_http_timeouts_and_refusals_say_where_they_stopped() -> None:
    async with server() as port:
        hung = await http(f"http://127.0.0.1:{port}/hang")
    assert hung.status is Status.ERROR
    assert hung.message == "timed out after 2 s (waiting for the status line)"
    refused = await http(f"http://127.0.0.1:{port}/ok")  # the server is gone
    assert refused.message == f"http://127.0.0.1:{port}/ok: connection refused"


@pytest.mark.asyncio
async def test_tcp_connect_send_and_expect() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(b"VERSION 1.6.18\r\n" if line == b"version\r\n" else b"ERROR\r\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    base = f'kind = "tcp"\nport = {port}\ninterval = 3\ntimeout = 2\n'
    try:
        assert (await probe_once(spec(base))).message == f"connected to 127.0.0.1:{port}"
        good = await probe_once(spec(base + 'send = "version\\r\\n"\nexpect = "^VERSION "\n'))
        assert (good.status, good.message) == (Status.OK, "answered 'VERSION 1.6.18'")
        bad = await probe_once(spec(base + 'send = "stats\\r\\n"\nexpect = "^VERSION "\n'))
        assert bad.status is Status.ERROR and "does not match /^VERSION /: 'ERROR'" in bad.message
    finally:
        srv.close()


# --- TLS ----------------------------------------------------------------------------------------
def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_pki(folder: Path) -> tuple[ssl.SSLContext, Path, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("rearm test CA", ca_key, None, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("127.0.0.1", key, ca.subject, ca_key, ca=False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("another CA", other_key, None, None, ca=True)
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "other.pem").write_bytes(other.public_bytes(pem))
    (folder / "server.pem").write_bytes(
        cert.public_bytes(pem)
        + key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem")
    return context, folder / "ca.pem", folder / "other.pem"


@pytest.mark.asyncio
async def test_https_with_a_ca_a_wrong_ca_and_skip_verify(tmp_path: Path) -> None:
    context, ca, other = make_pki(tmp_path)
    async with server(context) as port:
        url = f"https://127.0.0.1:{port}/ok"
        good = await http(url, f"ca_file = {toml_str(str(ca))}", 'expect = "all good"')
        assert (good.status, good.message) == (Status.OK, "HTTP 200 OK")
        wrong = await http(url, f"ca_file = {toml_str(str(other))}")
        assert wrong.status is Status.ERROR and "TLS certificate not accepted" in wrong.message
        system = await http(url)  # the system's CAs do not know the test CA
        assert system.status is Status.ERROR and "certificate" in system.message
        skipped = await http(url, "verify = false", 'expect = "all good"')
        assert skipped.status is Status.OK
