"""Mail over SMTP, with STARTTLS or implicit TLS, and authentication.

Keys of an `[[alerts]]` table with `type = "mail"`:
    host = "smtp.example.com"         required
    port = 587                        default 587 (starttls), 465 (tls), 25 (none)
    security = "starttls" | "tls" | "none"   default "starttls" (required, not opportunistic)
    username, password / password_file       SMTP AUTH; refused without TLS unless host is loopback
    from = "rearm@SERVER"             default rearm@<server name>
    to = "ops@example.com" or [..]    required
    subject_prefix = "[rearm]"
    verify_tls = true, ca_file = "/path/ca.pem"

aiosmtplib rather than smtplib in a thread: a thread blocked on a silent server cannot be
cancelled, and the default executor that ran it would hold up the daemon's exit. A coroutine is
cancelled by the dispatcher's timeout like every other sink.
"""

from __future__ import annotations

import email.utils
import os
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

from rearm.alerts import fields
from rearm.alerts.model import Alert, DeliveryError
from rearm.alerts.preload import import_off_loop
from rearm.store import iso8601
from rearm.validate import Table

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    security: str
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    subject_prefix: str = "[rearm]"
    verify_tls: bool = True
    ca_file: str | None = None

    def describe(self) -> str:
        return f"smtp {self.host}:{self.port} ({self.security}) to {', '.join(self.recipients)}"

    def create(self, timeout: float) -> MailSink:
        return MailSink(self, timeout)


def parse(t: Table, base_dir: str, server: str) -> MailSettings:
    host = t.req_str("host")
    security = fields.one_of(t, "security", ("starttls", "tls", "none"), "starttls")
    port = t.int_("port", DEFAULT_PORTS[security], 1, 65535)
    username = t.str_("username")
    password = fields.secret(t, "password", base_dir)
    if (username is None) != (password is None):
        raise t.error("password" if username else "username", "give both username and password")
    if username and security == "none" and not fields.is_loopback(host):
        # A password sent in the clear crosses the network: only to this machine.
        raise t.error(
            "security", 'must be "starttls" or "tls" when authenticating to a remote host'
        )
    recipients = fields.text_list(t, "to", required=True)
    sender = t.str_("from") or f"rearm@{server}"
    for key, address in [("from", sender), *(("to", r) for r in recipients)]:
        if "@" not in address or any(c in address for c in "\r\n<>,"):
            raise t.error(key, f"'{address}' is not a mail address (user@domain)")
    ca_file = t.str_("ca_file")
    return MailSettings(
        host=host,
        port=port,
        security=security,
        sender=sender,
        recipients=recipients,
        username=username,
        password=password,
        subject_prefix=t.str_("subject_prefix", "[rearm]", empty_ok=True) or "",
        verify_tls=t.bool_("verify_tls", True),
        ca_file=None if ca_file is None else os.path.join(base_dir, ca_file),
    )


def message(s: MailSettings, alert: Alert) -> EmailMessage:
    e = alert.event
    msg = EmailMessage()
    prefix = f"{s.subject_prefix} " if s.subject_prefix else ""
    subject = f"{prefix}{alert.cluster} {e.severity.upper()} {alert.summary()}"
    msg["Subject"] = subject if len(subject) <= 200 else subject[:197] + "..."
    msg["From"] = s.sender
    msg["To"] = ", ".join(s.recipients)
    msg["Date"] = email.utils.formatdate(e.ts, localtime=False)
    msg["Message-ID"] = email.utils.make_msgid("rearm")
    msg["X-Rearm-Event"] = e.kind
    lines = [
        e.message,
        "",
        f"cluster:  {alert.cluster}",
        f"server:   {alert.server}",
        f"event:    {e.kind} ({e.severity}), #{e.id} at {iso8601(e.ts)}",
    ]
    if e.group:
        lines.append(f"group:    {e.group}")
    if e.watch:
        lines.append(f"watch:    {e.watch}")
    for key, value in e.data.items():
        lines.append(f"{key + ':':<9} {value}")
    lines += ["", "-- ", "rearm application recovery; see 'rearm log' on the server."]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class MailSink:
    def __init__(self, settings: MailSettings, timeout: float) -> None:
        self.s = settings
        self.timeout = timeout

    async def open(self) -> None:
        await import_off_loop("aiosmtplib")

    def _tls(self) -> ssl.SSLContext | None:
        if self.s.security == "none":
            return None
        context = ssl.create_default_context(cafile=self.s.ca_file)
        if not self.s.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def send(self, alert: Alert) -> str:
        await self.open()
        import aiosmtplib

        s = self.s
        try:
            # One connection per alert: alerts are rare, and a kept connection would be closed
            # by the server's idle timeout between them anyway.
            _, reply = await aiosmtplib.send(
                message(s, alert),
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=self._tls(),
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as e:
            # 5xx: the server refused (bad login, unknown recipient); 4xx: try again later.
            raise DeliveryError(
                f"smtp {s.host}:{s.port}: {e.code} {e.message}", permanent=e.code >= 500
            ) from None
        except (aiosmtplib.SMTPException, OSError) as e:
            raise DeliveryError(f"smtp {s.host}:{s.port}: {e}") from None
        return f"accepted by {s.host}:{s.port}: {reply}"

    async def close(self) -> None:
        return None
