"""`mysql`: log in to MariaDB or MySQL and run a query, speaking their client protocol.

    [[monitors]]
    name = "db"
    kind = "mysql"
    host = "127.0.0.1"            # or socket = "/run/mysqld/mysqld.sock"
    port = 3306
    user = "monitor"
    password_file = "/etc/rearm/mysql-monitor.pass"   # optional: its first line
    database = "shop"             # optional
    query = "SELECT 1"            # default
    expect = "^1$"                # optional: a regular expression for the first row's first value

The handshake (protocol 10), mysql_native_password (MariaDB's default), unix_socket (root over
the socket on Debian) and caching_sha2_password's fast path (MySQL 8, once the account logged
in over TLS or RSA before), then one COM_QUERY. No TLS (a local server), no driver.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from dataclasses import dataclass

from rearm.monitors import net, sql
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, unknown
from rearm.monitors.secrets import SecretError, read_secret
from rearm.validate import Table

LONG_PASSWORD = 0x1
CONNECT_WITH_DB = 0x8
PROTOCOL_41 = 0x200
SECURE_CONNECTION = 0x8000
PLUGIN_AUTH = 0x80000
UTF8MB4 = 45
PACKET_MAX = 1 << 24


@dataclass(frozen=True)
class MysqlOptions(Options):
    login: sql.Login

    def build(self, env: ProbeEnv) -> Probe:
        return MysqlProbe(self.login)

    def describe(self) -> str:
        o = self.login
        return f"mysql {o.user}@{o.socket or f'{o.host}:{o.port}'}"


def parse(t: Table) -> MysqlOptions:
    return MysqlOptions(sql.login(t, 3306))


class MysqlError(Exception):
    pass


class MysqlProbe:
    def __init__(self, login: sql.Login) -> None:
        self.login = login
        self.step = ""

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.login
        try:
            password = read_secret(o.password_file) if o.password_file else ""
            self.step = "connecting"
            async with net.connection(o.host, o.port, path=o.socket) as (reader, writer):
                wire = _Wire(reader, writer)
                self.step = "waiting for the greeting"
                await self._login(wire, password)
                self.step = "waiting for the query's answer"
                value = await wire.query(o.query)
                wire.send(b"\x01", reset=True)  # COM_QUIT
                await writer.drain()
        except SecretError as e:
            return unknown(str(e))
        except (MysqlError, struct.error, IndexError) as e:
            return error(str(e) or "not the MySQL protocol")
        except (OSError, EOFError) as e:
            what = net.describe_os_error(e) if isinstance(e, OSError) else "connection closed"
            return error(f"{MysqlOptions(o).describe()}: {what}")
        return o.verdict(value)

    async def _login(self, wire: _Wire, password: str) -> None:
        o = self.login
        greeting = await wire.receive()
        if greeting[0] != 10:
            raise MysqlError(f"not a MySQL greeting (protocol {greeting[0]})")
        end = greeting.index(b"\0", 1)
        version = greeting[1:end].decode(errors="replace")
        pos = end + 1 + 4  # connection id
        scramble = greeting[pos : pos + 8]
        pos += 8 + 1  # filler
        (caps_low,) = struct.unpack_from("<H", greeting, pos)
        pos += 2 + 1 + 2  # charset, status
        caps_high, auth_len = struct.unpack_from("<HB", greeting, pos)
        pos += 3 + 10  # reserved
        capabilities = caps_low | caps_high << 16
        if not capabilities & PROTOCOL_41:
            raise MysqlError(f"server {version} is too old (no protocol 4.1)")
        rest = max(13, auth_len - 8)
        scramble += greeting[pos : pos + rest].rstrip(b"\0")
        pos += rest
        plugin = "mysql_native_password"
        if capabilities & PLUGIN_AUTH and pos < len(greeting):
            plugin = greeting[pos:].split(b"\0")[0].decode()
        flags = LONG_PASSWORD | PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH
        if o.database:
            flags |= CONNECT_WITH_DB
        answer = _auth(plugin, password, scramble)
        packet = struct.pack("<IIB23x", flags, PACKET_MAX, UTF8MB4)
        packet += o.user.encode() + b"\0" + bytes([len(answer)]) + answer
        if o.database:
            packet += o.database.encode() + b"\0"
        packet += plugin.encode() + b"\0"
        wire.send(packet)
        self.step = "logging in"
        while True:
            reply = await wire.receive()
            if reply[0] == 0x00:
                return
            if reply[0] == 0xFE:  # AuthSwitchRequest
                end = reply.index(b"\0", 1)
                plugin = reply[1:end].decode()
                wire.send(_auth(plugin, password, reply[end + 1 :].rstrip(b"\0")))
            elif reply[0] == 0x01 and plugin == "caching_sha2_password":
                if reply[1:2] == b"\x04":
                    raise MysqlError(
                        "caching_sha2_password wants a full login (TLS or RSA): log the "
                        "account in once with the mysql client, or use mysql_native_password"
                    )
                # 0x03: fast path accepted; the OK packet follows
            else:
                raise MysqlError(f"unexpected reply {reply[:1].hex()} while logging in")

    async def close(self) -> None:
        return None


def _auth(plugin: str, password: str, scramble: bytes) -> bytes:
    if plugin == "mysql_native_password":
        if not password:
            return b""
        stage1 = hashlib.sha1(password.encode()).digest()
        stage2 = hashlib.sha1(stage1).digest()
        mix = hashlib.sha1(scramble[:20] + stage2).digest()
        return bytes(a ^ b for a, b in zip(stage1, mix, strict=True))
    if plugin == "caching_sha2_password":
        if not password:
            return b""
        p1 = hashlib.sha256(password.encode()).digest()
        p2 = hashlib.sha256(hashlib.sha256(p1).digest() + scramble[:20]).digest()
        return bytes(a ^ b for a, b in zip(p1, p2, strict=True))
    if plugin in ("unix_socket", "auth_socket"):
        return b""  # the server checks who is on the other end of the socket
    if plugin == "mysql_clear_password":
        return password.encode() + b"\0"
    raise MysqlError(f"unsupported authentication plugin {plugin}")


class _Wire:
    """Packets: a 3-byte length, a sequence number, the payload."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seq = 0

    def send(self, payload: bytes, *, reset: bool = False) -> None:
        if reset:
            self.seq = 0
        self.writer.write(struct.pack("<I", len(payload))[:3] + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF

    async def receive(self) -> bytes:
        await self.writer.drain()
        head = await self.reader.readexactly(4)
        length = head[0] | head[1] << 8 | head[2] << 16
        self.seq = (head[3] + 1) & 0xFF
        payload = await self.reader.readexactly(length)
        if not payload:
            raise MysqlError("an empty packet")
        if payload[0] == 0xFF:
            (code,) = struct.unpack_from("<H", payload, 1)
            text = payload[3:]
            if text.startswith(b"#"):
                text = text[6:]
            raise MysqlError(f"error {code}: {text.decode(errors='replace')}")
        return payload

    async def query(self, sql: str) -> str | None:
        """The first value of the first row (None: no rows, NULL, or no result set)."""
        self.send(b"\x03" + sql.encode(), reset=True)
        first = await self.receive()
        if first[0] == 0x00:
            return None  # OK: a statement without rows
        columns, _ = _lenenc(first, 0)
        for _ in range(columns):
            await self.receive()  # column definitions
        await self.receive()  # EOF
        value: str | None = None
        row = 0
        while True:
            packet = await self.receive()
            if packet[0] == 0xFE and len(packet) < 9:
                return value  # EOF: end of rows
            if row == 0 and packet[0] != 0xFB:
                size, pos = _lenenc(packet, 0)
                value = packet[pos : pos + size].decode("utf-8", errors="replace")
            row += 1


def _lenenc(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0xFB:
        return first, pos + 1
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if width is None:
        raise MysqlError(f"bad length-encoded integer {first:#x}")
    return int.from_bytes(data[pos + 1 : pos + 1 + width], "little"), pos + 1 + width
