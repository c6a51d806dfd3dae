"""Mail alerts received by a real SMTP server (aiosmtpd) on loopback: plain, with AUTH, with
STARTTLS and with implicit TLS against a certificate made for the test."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from rearm.alerts.model import DeliveryError

from .conftest import free_port
from .helpers import alert, sink

USER, PASSWORD = "rearm", "mail-secret"


@dataclass
class Mailbox:
    messages: list[tuple[Envelope, Message, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(
            (
                envelope,
                email.message_from_bytes(content, policy=email.policy.default),
                bool(session.authenticated),
            )
        )
        return "250 OK queued"


def _authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; the client trusts it as its CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class SmtpServer:
    def __init__(self, **options: Any) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.fixture
def plain_server() -> Iterator[SmtpServer]:
    server = SmtpServer(authenticator=_authenticator, auth_require_tls=False)
    yield server
    server.stop()


async def _send(table: dict[str, Any], **kw: Any) -> str:
    s = sink(**table).create()
    try:
        return await s.send(alert(**kw))
    finally:
        await s.close()


@pytest.mark.asyncio
async def test_plain_mail(plain_server: SmtpServer) -> None:
    detail = await _send(
        {
            "type": "mail",
            "host": "127.0.0.1",
            "port": plain_server.port,
            "security": "none",
            "to": ["ops@example.org", "oncall@example.org"],
        },
        kind="threshold",
        severity="critical",
        message="WEB1 ended: exit 1; 4 faults exceed the threshold of 3",
    )
    assert detail.endswith("OK queued")
    ((envelope, msg, authenticated),) = plain_server.mailbox.messages
    assert envelope.mail_from == "rearm@test-server"
    assert envelope.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    assert not authenticated
    assert msg["Subject"] == (
        "[rearm] testcl CRITICAL threshold web/WEB1: "
        "WEB1 ended: exit 1; 4 faults exceed the threshold of 3"
    )
    assert msg["X-Rearm-Event"] == "threshold"
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert b"cluster:  testcl" in body and b"watch:    WEB1" in body


@pytest.mark.asyncio
async def test_auth_on_loopback(plain_server: SmtpServer) -> None:
    table = {
        "type": "mail",
        "host": "127.0.0.1",
        "port": plain_server.port,
        "security": "none",
        "username": USER,
        "password": PASSWORD,
        "to": "ops@example.org",
        "from": "rearm-alerts@example.org",
    }
    await _send(table)
    ((envelope, _, authenticated),) = plain_server.mailbox.messages
    assert authenticated and envelope.mail_from == "rearm-alerts@example.org"
    with pytest.raises(DeliveryError) as failure:
        await _send({**table, "password": "wrong-password"})
    assert failure.value.permanent and "535" in str(failure.value)


@pytest.mark.asyncio
async def test_starttls_with_auth(tls_files: tuple[Path, ssl.SSLContext]) -> None:
    cert, context = tls_files
    server = SmtpServer(
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
    )
    try:
        detail = await _send(
            {
                "type": "mail",
                "host": "127.0.0.1",
                "port": server.port,
                "security": "starttls",
                "ca_file": str(cert),
                "username": USER,
                "password": PASSWORD,
                "to": "ops@example.org",
            }
        )
        assert detail.endswith("OK queued")
        ((_, _, authenticated),) = server.mailbox.messages
        assert authenticated
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_starttls_refuses_an_untrusted_certificate(
    tls_files: tuple[Path, ssl.SSLContext],
) -> None:
    _, context = tls_files
    server = SmtpServer(tls_context=context, require_starttls=True)
    try:
        with pytest.raises(DeliveryError):
            await _send(
                {
                    "type": "mail",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "to": "ops@example.org",
                }
            )
        assert server.mailbox.messages == []
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_implicit_tls(tls_files: tuple[Path, ssl.SSLContext]) -> None:
    cert, context = tls_files
    server = SmtpServer(ssl_context=context)
    try:
        await _send(
            {
                "type": "mail",
                "host": "127.0.0.1",
                "port": server.port,
                "security": "tls",
                "ca_file": str(cert),
                "to": "ops@example.org",
            }
        )
        assert len(server.mailbox.messages) == 1
    finally:
        server.stop()
