"""`postgresql`: log in and run a query, speaking PostgreSQL's protocol (version 3).

    [[monitors]]
    name = "db"
    kind = "postgresql"
    host = "127.0.0.1"            # or socket = "/run/postgresql" (the folder of .s.PGSQL.PORT)
    port = 5432
    user = "postgres"
    database = "postgres"         # default: the user's name
    password_file = "/etc/rearm/pg-monitor.pass"   # optional: its first line
    query = "SELECT 1"            # default
    expect = "^1$"                # optional: a regular expression for the first row's first value

The startup message, authentication (trust, password, md5, SCRAM-SHA-256) and one simple query
over asyncio streams: about two hundred lines instead of a driver (asyncpg and psycopg are
larger than all of rearm's monitors together and would be its only reason to exist here). No
TLS: the monitor talks to a server on the same machine; a remote database is the job of that
machine's rearm.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from rearm.monitors import net, sql
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, unknown
from rearm.monitors.secrets import SecretError, read_secret
from rearm.validate import Table

PROTOCOL_3 = 196608
MESSAGE_MAX = 1 << 20


@dataclass(frozen=True)
class PgOptions(Options):
    login: sql.Login

    def build(self, env: ProbeEnv) -> Probe:
        return PgProbe(self.login)

    def describe(self) -> str:
        o = self.login
        where = f"{o.socket}/.s.PGSQL.{o.port}" if o.socket else f"{o.host}:{o.port}"
        return f"postgresql {o.user}@{where}"


def parse(t: Table) -> PgOptions:
    return PgOptions(sql.login(t, 5432))


class PgError(Exception):
    """The server said no (an ErrorResponse), or said something that is not the protocol."""


class PgProbe:
    def __init__(self, login: sql.Login) -> None:
        self.login = login
        self.step = ""
        self._salted: dict[tuple[str, bytes, int], bytes] = {}  # SCRAM: PBKDF2 once, not per probe

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.login
        path = f"{o.socket}/.s.PGSQL.{o.port}" if o.socket else None
        try:
            password = read_secret(o.password_file) if o.password_file else None
            self.step = "connecting"
            async with net.connection(o.host, o.port, path=path) as (reader, writer):
                session = _Session(reader, writer)
                self.step = "logging in"
                await self._login(session, password)
                self.step = "waiting for the query's answer"
                value = await session.query(o.query)
                session.send(b"X", b"")  # Terminate
                await writer.drain()
        except SecretError as e:
            return unknown(str(e))
        except PgError as e:
            return error(str(e))
        except struct.error:
            return error(f"{PgOptions(o).describe()}: not the PostgreSQL protocol")
        except (OSError, EOFError) as e:
            what = net.describe_os_error(e) if isinstance(e, OSError) else "connection closed"
            return error(f"{PgOptions(o).describe()}: {what}")
        return o.verdict(value)

    async def _login(self, s: _Session, password: str | None) -> None:
        o = self.login
        params = {"user": o.user, "database": o.database or o.user}
        params["application_name"] = "rearm-monitor"
        body = struct.pack("!i", PROTOCOL_3) + b"".join(
            k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()
        )
        s.writer.write(struct.pack("!i", len(body) + 5) + body + b"\0")
        scram: _Scram | None = None
        while True:
            kind, data = await s.receive()
            if kind == b"R":
                (code,) = struct.unpack_from("!i", data)
                if code == 0:
                    continue  # AuthenticationOk; parameters and ReadyForQuery follow
                if code in (3, 5, 10) and password is None:
                    raise PgError(f"the server wants a password for {o.user}: set password_file")
                if code == 3:
                    s.send(b"p", (password or "").encode() + b"\0")
                elif code == 5:
                    s.send(b"p", _md5(o.user, password or "", data[4:8]).encode() + b"\0")
                elif code == 10:
                    mechanisms = data[4:].split(b"\0")
                    if b"SCRAM-SHA-256" not in mechanisms:
                        raise PgError(f"no supported SASL mechanism offered: {mechanisms}")
                    scram = _Scram(password or "", self._salted)
                    first = scram.client_first().encode()
                    s.send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
                elif code == 11 and scram is not None:
                    s.send(b"p", scram.client_final(data[4:].decode()).encode())
                elif code == 12 and scram is not None:
                    scram.verify_server(data[4:].decode())
                else:
                    raise PgError(f"unsupported authentication method {code}")
            elif kind == b"Z":
                return
            elif kind not in (b"S", b"K", b"N"):
                raise PgError(f"unexpected message {kind!r} while logging in")

    async def close(self) -> None:
        return None


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, kind: bytes, body: bytes) -> None:
        self.writer.write(kind + struct.pack("!i", len(body) + 4) + body)

    async def receive(self) -> tuple[bytes, bytes]:
        await self.writer.drain()
        head = await self.reader.readexactly(5)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        if not 4 <= length <= MESSAGE_MAX:
            raise PgError(f"not the PostgreSQL protocol (message length {length})")
        data = await self.reader.readexactly(length - 4)
        if kind == b"E":
            raise PgError(_error_text(data))
        return kind, data

    async def query(self, sql: str) -> str | None:
        """The first value of the first row (None: no rows, or NULL)."""
        self.send(b"Q", sql.encode() + b"\0")
        value: str | None = None
        seen_row = False
        while True:
            kind, data = await self.receive()
            if kind == b"D" and not seen_row:
                seen_row = True
                (columns,) = struct.unpack_from("!h", data)
                if columns:
                    (size,) = struct.unpack_from("!i", data, 2)
                    if size >= 0:
                        value = data[6 : 6 + size].decode("utf-8", errors="replace")
            elif kind == b"Z":
                return value


def _error_text(data: bytes) -> str:
    fields = {f[:1]: f[1:].decode("utf-8", errors="replace") for f in data.split(b"\0") if f}
    code = fields.get(b"C", "")
    return f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', 'error')}" + (
        f" (SQLSTATE {code})" if code else ""
    )


def _md5(user: str, password: str, salt: bytes) -> str:
    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
    return "md5" + hashlib.md5(inner + salt).hexdigest()


class _Scram:
    """SCRAM-SHA-256 (RFC 5802, 7677) as PostgreSQL speaks it: no channel binding, the user
    named in the startup message (so `n=` stays empty)."""

    def __init__(self, password: str, cache: dict[tuple[str, bytes, int], bytes]) -> None:
        self.password = password
        self.cache = cache
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def client_first(self) -> str:
        return "n,," + self.first_bare

    def client_final(self, server_first: str) -> str:
        attrs = dict(part.split("=", 1) for part in server_first.split(",") if "=" in part)
        nonce, salt, rounds = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or not salt or not rounds.isdigit():
            raise PgError("SCRAM: the server's first message is not valid")
        key = (self.password, base64.b64decode(salt), int(rounds))
        salted = self.cache.get(key)
        if salted is None:
            salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), key[1], key[2])
            self.cache.clear()
            self.cache[key] = salted
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify_server(self, server_final: str) -> None:
        if not server_final.startswith("v="):
            raise PgError(f"SCRAM: {server_final}")
        if not hmac.compare_digest(base64.b64decode(server_final[2:]), self.server_signature):
            raise PgError("SCRAM: the server's signature is wrong (not the server it claims)")
