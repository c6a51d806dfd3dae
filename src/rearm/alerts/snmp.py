"""SNMP notifications (v2c, or v3 with USM auth/priv), as described by REARM-MIB.

Keys of an `[[alerts]]` table with `type = "snmp"`:
    target = "HOST[:PORT]"            receiver, port 162 by default ([IPv6]:PORT in brackets)
    version = "2c" | "3"              default "2c"
    notify = "trap" | "inform"        default "trap"; an inform is acknowledged by the receiver
    community / community_file        v2c, default "public"
    user                              v3 user name (required for v3)
    auth_protocol                     md5, sha (default), sha224, sha256, sha384, sha512
    auth_password / auth_password_file   v3 authentication (at least 8 characters)
    priv_protocol                     des, aes (default), aes192, aes256, aes192c, aes256c
    priv_password / priv_password_file   v3 privacy; needs authentication
    engine_id = "80007ed904..."       v3 sender engine ID in hex (see `default_engine_id`)
    enterprise_oid = "1.3.6.1.4.1.32473"  where REARM-MIB's rearmMIB sits

pysnmp is imported in `open()`, in a worker thread: importing it and building an SNMP engine
costs ~150 ms of CPU, which must not stall the daemon's loop while a restart is due.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from rearm.alerts import fields
from rearm.alerts.model import TEST_KIND, Alert, DeliveryError, cut_utf8
from rearm.validate import Table

# RFC 5612 reserves enterprise number 32473 for documentation: a placeholder nobody owns, so a
# site with a private enterprise number of its own moves rearm under it with `enterprise_oid`.
DOCUMENTATION_PEN = 32473
DEFAULT_ENTERPRISE_OID = f"1.3.6.1.4.1.{DOCUMENTATION_PEN}"
ENTERPRISES = "1.3.6.1.4.1"
# An arc under enterprises (1.3.6.1.4.1.N...): where private MIB modules live.
OID_RE = re.compile(r"^1\.3\.6\.1\.4\.1(\.(0|[1-9][0-9]{0,9})){1,20}$")

# REARM-MIB: rearmNotifications (rearmMIB.0.N) by event kind; any other kind is rearmEvent.
NOTIFICATIONS = {
    "daemon_start": 1,
    "daemon_stop": 2,
    "fault": 3,
    "restart": 4,
    "threshold": 5,
    "final_action": 6,
    "final_action_resumed": 6,
    "reboot_loop_guard": 6,
    "group_error": 7,
    "heartbeat_timeout": 8,
    TEST_KIND: 10,
}
OTHER_EVENT = 9
# REARM-MIB: rearmObjects (rearmMIB.1.N), each sent as the scalar instance N.0.
CLUSTER, SERVER, GROUP, WATCH, KIND, SEVERITY, MESSAGE, EVENT_ID, EVENT_TIME = range(1, 10)
SEVERITY_VALUES = {"info": 1, "warning": 2, "error": 3, "critical": 4}
TEXT_LIMIT = 255  # RearmText is OCTET STRING (SIZE (0..255))

AUTH_PROTOCOLS = {
    "md5": "USM_AUTH_HMAC96_MD5",
    "sha": "USM_AUTH_HMAC96_SHA",
    "sha224": "USM_AUTH_HMAC128_SHA224",
    "sha256": "USM_AUTH_HMAC192_SHA256",
    "sha384": "USM_AUTH_HMAC256_SHA384",
    "sha512": "USM_AUTH_HMAC384_SHA512",
}
# Net-SNMP's AES192/AES256 use Blumenthal key extension; Cisco's (Net-SNMP's AES192C) Reeder's.
PRIV_PROTOCOLS = {
    "des": "USM_PRIV_CBC56_DES",
    "aes": "USM_PRIV_CFB128_AES",
    "aes192": "USM_PRIV_CFB192_AES_BLUMENTHAL",
    "aes256": "USM_PRIV_CFB256_AES_BLUMENTHAL",
    "aes192c": "USM_PRIV_CFB192_AES",
    "aes256c": "USM_PRIV_CFB256_AES",
}


@dataclass(frozen=True)
class SnmpSettings:
    host: str
    port: int
    version: str
    notify: str
    enterprise_oid: str
    engine_id: bytes
    community: str = field(repr=False)
    user: str | None = None
    auth_protocol: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    priv_protocol: str | None = None
    priv_password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        security = f"v3 user {self.user}" if self.version == "3" else "v2c"
        return f"{self.notify} to udp {_address(self.host, self.port)} ({security})"

    def create(self, timeout: float) -> SnmpSink:
        return SnmpSink(self, timeout)


def parse(t: Table, base_dir: str, server: str) -> SnmpSettings:
    host, port = fields.host_port(t, "target", 162)
    version = fields.one_of(t, "version", ("2c", "3"), "2c")
    notify = fields.one_of(t, "notify", ("trap", "inform"), "trap")
    oid = t.str_("enterprise_oid", DEFAULT_ENTERPRISE_OID) or DEFAULT_ENTERPRISE_OID
    if not OID_RE.fullmatch(oid):
        raise t.error(
            "enterprise_oid", "must be a numeric OID under enterprises: 1.3.6.1.4.1.NUMBER[...]"
        )
    engine_text = t.str_("engine_id")
    engine_id = (
        default_engine_id(oid, server) if engine_text is None else _engine_id(t, engine_text)
    )
    if version == "2c":
        for key in ("user", "auth_password", "priv_password", "auth_protocol", "priv_protocol"):
            if t.has(key) or t.has(f"{key}_file"):
                raise t.error(key, 'is for SNMP v3: set version = "3" or remove it')
        community = fields.secret(t, "community", base_dir) or "public"
        return SnmpSettings(host, port, version, notify, oid, engine_id, community)
    if t.has("community") or t.has("community_file"):
        raise t.error("community", "is for SNMP v2c: v3 uses user, auth_password, priv_password")
    user = t.req_str("user")
    auth = fields.secret(t, "auth_password", base_dir)
    priv = fields.secret(t, "priv_password", base_dir)
    auth_proto = fields.one_of(t, "auth_protocol", tuple(AUTH_PROTOCOLS), "sha")
    priv_proto = fields.one_of(t, "priv_protocol", tuple(PRIV_PROTOCOLS), "aes")
    for key, value in (("auth_password", auth), ("priv_password", priv)):
        if value is not None and len(value) < 8:
            raise t.error(key, "must be at least 8 characters (RFC 3414)")
    if priv is not None and auth is None:
        raise t.error("priv_password", "needs auth_password as well (no privacy without auth)")
    return SnmpSettings(
        host,
        port,
        version,
        notify,
        oid,
        engine_id,
        community="",
        user=user,
        auth_protocol=auth_proto if auth else None,
        auth_password=auth,
        priv_protocol=priv_proto if priv else None,
        priv_password=priv,
    )


def _engine_id(t: Table, text: str) -> bytes:
    hex_text = text.lower().removeprefix("0x").replace(":", "")
    try:
        value = bytes.fromhex(hex_text)
    except ValueError:
        value = b""
    if not 5 <= len(value) <= 32:
        raise t.error("engine_id", "must be 5 to 32 octets in hex, e.g. 80007ed9047265617266")
    return value


def default_engine_id(enterprise_oid: str, server: str) -> bytes:
    """RFC 3411 format 4 (text): the enterprise number of `enterprise_oid`, then 'rearm.SERVER'.

    Stable across daemon restarts, so a receiver's `createUser -e ENGINEID` keeps matching.
    """
    pen = int(enterprise_oid[len(ENTERPRISES) + 1 :].split(".")[0]) & 0x7FFFFFFF
    return struct.pack(">I", 0x80000000 | pen) + b"\x04" + f"rearm.{server}".encode()[:27]


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def date_and_time(ts: float) -> bytes:
    """SNMPv2-TC DateAndTime, 11 octets, in UTC."""
    t = time.gmtime(ts)
    deci = int(ts % 1 * 10)
    return struct.pack(
        ">HBBBBBBcBB",
        t.tm_year,
        t.tm_mon,
        t.tm_mday,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        deci,
        b"+",
        0,
        0,
    )


def notification_oid(root: str, kind: str) -> str:
    return f"{root}.0.{NOTIFICATIONS.get(kind, OTHER_EVENT)}"


def varbinds(root: str, alert: Alert) -> list[tuple[str, str, bytes | int]]:
    """The trap's objects after sysUpTime and snmpTrapOID: (OID, SMI type, value)."""
    e = alert.event

    def text(n: int, value: str | None) -> tuple[str, str, bytes]:
        return f"{root}.1.{n}.0", "OctetString", cut_utf8(value or "", TEXT_LIMIT)

    return [
        text(CLUSTER, alert.cluster),
        text(SERVER, alert.server),
        text(GROUP, e.group),
        text(WATCH, e.watch),
        text(KIND, e.kind),
        (f"{root}.1.{SEVERITY}.0", "Integer", SEVERITY_VALUES.get(e.severity, 1)),
        text(MESSAGE, e.message),
        (f"{root}.1.{EVENT_ID}.0", "Unsigned32", e.id & 0xFFFFFFFF),
        (f"{root}.1.{EVENT_TIME}.0", "OctetString", date_and_time(e.ts)),
    ]


class SnmpSink:
    def __init__(self, settings: SnmpSettings, timeout: float) -> None:
        self.s = settings
        self.timeout = timeout
        self._engine: Any = None
        self._auth: Any = None
        self._target: Any = None

    async def open(self) -> None:
        if self._engine is None:
            self._engine, self._auth = await asyncio.to_thread(self._build)

    def _build(self) -> tuple[Any, Any]:
        from pysnmp.hlapi.v3arch import asyncio as hl  # type: ignore[import-untyped]
        from pysnmp.hlapi.varbinds import NotificationOriginatorVarBinds  # type: ignore[import-untyped]
        from pysnmp.proto.rfc1902 import OctetString  # type: ignore[import-untyped]

        s = self.s
        engine = hl.SnmpEngine(snmpEngineID=OctetString(s.engine_id))
        if s.version == "2c":
            auth = hl.CommunityData(s.community, mpModel=1)
        else:
            auth = hl.UsmUserData(
                s.user,
                authKey=s.auth_password,
                privKey=s.priv_password,
                authProtocol=getattr(hl, AUTH_PROTOCOLS[s.auth_protocol])
                if s.auth_protocol
                else hl.USM_AUTH_NONE,
                privProtocol=getattr(hl, PRIV_PROTOCOLS[s.priv_protocol])
                if s.priv_protocol
                else hl.USM_PRIV_NONE,
            )
        # Load the MIB view now, in this thread, rather than at the first send on the loop.
        NotificationOriginatorVarBinds().get_mib_view_controller(engine.cache)
        return engine, auth

    async def send(self, alert: Alert) -> str:
        from pysnmp.error import PySnmpError  # type: ignore[import-untyped]
        from pysnmp.hlapi.v3arch import asyncio as hl
        from pysnmp.proto import rfc1902  # type: ignore[import-untyped]

        await self.open()
        s = self.s
        if self._target is None:
            cls = hl.Udp6TransportTarget if ":" in s.host else hl.UdpTransportTarget
            try:
                # One try per send: the dispatcher retries, with backoff, for every sink alike.
                self._target = await cls.create((s.host, s.port), timeout=self.timeout, retries=0)
            except PySnmpError as e:  # the host name does not resolve
                raise DeliveryError(f"snmp target {_address(s.host, s.port)}: {e}") from None
        root = s.enterprise_oid
        notification = hl.NotificationType(
            hl.ObjectIdentity(notification_oid(root, alert.event.kind))
        ).add_varbinds(
            *(
                hl.ObjectType(hl.ObjectIdentity(oid), getattr(rfc1902, smi_type)(value))
                for oid, smi_type, value in varbinds(root, alert)
            )
        )
        try:
            error, status, index, _ = await hl.send_notification(
                self._engine,
                self._auth,
                self._target,
                hl.ContextData(),
                s.notify,
                notification,
                lookupMib=False,
            )
        except OSError as e:
            raise DeliveryError(f"cannot send to {_address(s.host, s.port)}: {e}") from None
        if error:
            raise DeliveryError(f"{s.notify} to {_address(s.host, s.port)}: {error}")
        if status:
            raise DeliveryError(f"{s.notify} refused: {status.prettyPrint()} at {index}")
        if s.notify == "inform":
            return f"inform acknowledged by {_address(s.host, s.port)}"
        engine = f", engine ID {s.engine_id.hex()}" if s.version == "3" else ""
        return f"trap sent to {_address(s.host, s.port)} (traps are not acknowledged{engine})"

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
