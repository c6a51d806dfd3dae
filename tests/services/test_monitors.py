"""Monitors against real servers from Debian's packages, each run by rearm from its template on
loopback (the servers' fixtures of the other test modules): a PostgreSQL stopped with SIGSTOP,
a Redis stuck in DEBUG SLEEP, an nginx answering 502 for a dead upstream, monitoring-plugins'
check_http and check_disk as exec monitors, MariaDB, Postfix and Dovecot.

The monitors are not wired into the daemon yet: the test runs the scheduler itself and checks
the events it would hand to the daemon (the fault that will become the target's recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rearm.monitors import procfs
from rearm.monitors.base import Result, Status
from rearm.monitors.config import MonitorSpec

from ..integration.harness import Cluster
from ..monitors.helpers import exec_spec, probe_once, running, spec, toml_str
from .servers import Scratch, Seen, Server, free_port, need
from .test_mail import mail  # noqa: F401 -- fixtures of the servers
from .test_mariadb import mariadb  # noqa: F401
from .test_nginx import nginx_server
from .test_postgresql import BIN as PG_BIN
from .test_postgresql import postgres  # noqa: F401
from .test_redis import redis_server

PLUGINS = "/usr/lib/nagios/plugins"


# --- PostgreSQL -------------------------------------------------------------------------------
def pg_monitor(server: Server, *lines: str) -> str:
    port = server.values["port"]
    return f'kind = "postgresql"\nport = {port}\nuser = "postgres"\n' + "\n".join(lines) + "\n"


@pytest.mark.asyncio
async def test_postgresql_stopped_with_sigstop_times_out_then_recovers(postgres: Server) -> None:  # noqa: F811
    postgres.import_template()
    main = await asyncio.to_thread(postgres.start)
    s = spec(pg_monitor(postgres, "interval = 1", "timeout = 0.5", "failures = 2"))
    async with running(s) as rec:
        await rec.until(lambda: rec.results, timeout=10)
        assert (rec.results[0].status, rec.results[0].message) == (
            Status.OK,
            "'SELECT 1' returned '1'",
        )
        # The postmaster and every backend and worker. Each of those leads a session of its own
        # (PostgreSQL calls setsid in every child): the tree is found by parent pids.
        stopped = [p.pid for p in procfs.tree(procfs.all_stats(), main)]
        assert len(stopped) > 3
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):  # a backend that just ended
                os.kill(pid, signal.SIGSTOP)
        try:
            await rec.until(rec.faults, timeout=15, what="the fault")
            [fault] = rec.faults()
            assert fault.event.message.startswith(
                "monitor 'm' error: 2 consecutive failures: timed out after 0.5 s"
            )
            assert all(r.latency == 0.5 for r in rec.results[-2:])
        finally:
            # The postmaster last: once it runs it reaps the backends that had ended.
            for pid in reversed(stopped):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        await rec.until(lambda: rec.states()[-1] == "normal", timeout=15)
    assert rec.states() == ["normal", "error", "normal"]
    assert await asyncio.to_thread(postgres.answers)


@pytest.mark.asyncio
async def test_postgresql_md5_and_scram_logins(postgres: Server, scratch: Scratch) -> None:  # noqa: F811
    postgres.import_template()
    await asyncio.to_thread(postgres.start)
    port = postgres.values["port"]
    psql = [f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qtAc"]
    sql = (
        "SET password_encryption = 'md5'; CREATE ROLE mon_md5 LOGIN PASSWORD 'md5-secret';"
        "SET password_encryption = 'scram-sha-256';"
        "CREATE ROLE mon_scram LOGIN PASSWORD 'scram secret é';"
    )
    subprocess.run([*psql, sql], check=True, capture_output=True, timeout=30)
    data = Path(str(postgres.values["datadir"]))
    hba = data / "pg_hba.conf"
    hba.write_text(
        "host all mon_md5 127.0.0.1/32 md5\nhost all mon_scram 127.0.0.1/32 scram-sha-256\n"
        + hba.read_text()
    )
    subprocess.run([*psql, "SELECT pg_reload_conf()"], check=True, capture_output=True, timeout=30)
    folder = scratch.folder("pgpass", mode=0o700)
    for name, password in (("md5", "md5-secret"), ("scram", "scram secret é"), ("bad", "nope")):
        (folder / name).write_text(password + "\n")

    async def login(user: str, password_file: str) -> Result:
        secret = toml_str(str(folder / password_file))
        return await probe_once(
            spec(
                f'kind = "postgresql"\nport = {port}\nuser = "{user}"\ndatabase = "postgres"\n'
                f'password_file = {secret}\nexpect = "^1$"\n'
            )
        )

    md5 = await login("mon_md5", "md5")
    scram = await login("mon_scram", "scram")
    assert (md5.status, scram.status) == (Status.OK, Status.OK), (md5, scram)
    wrong = await login("mon_scram", "bad")
    assert wrong.status is Status.ERROR
    assert 'password authentication failed for user "mon_scram"' in wrong.message
    no_password = await probe_once(
        spec(f'kind = "postgresql"\nport = {port}\nuser = "mon_md5"\ndatabase = "postgres"\n')
    )
    assert "wants a password for mon_md5: set password_file" in no_password.message


# --- Redis ------------------------------------------------------------------------------------
@pytest.fixture
def redis(cluster: Cluster, scratch: Scratch, seen: Seen) -> Server:
    # DEBUG SLEEP, from loopback only.
    return redis_server("redis", cluster, scratch, seen, "enable-debug-command local\n")


def redis_command(port: int, *args: str) -> bytes:
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(payload.encode())
        return s.recv(100)


@pytest.mark.asyncio
async def test_redis_stuck_in_debug_sleep_times_out(redis: Server) -> None:
    redis.import_template()
    await asyncio.to_thread(redis.start)
    port = int(str(redis.values["port"]))
    s = spec(f'kind = "redis"\nport = {port}\ninterval = 0.5\ntimeout = 0.3\nfailures = 2\n')
    async with running(s) as rec:
        await rec.until(lambda: rec.results, timeout=10)
        assert (rec.results[0].status, rec.results[0].message) == (Status.OK, "PONG")
        sleeping = asyncio.create_task(
            asyncio.to_thread(redis_command, port, "DEBUG", "SLEEP", "4")
        )
        await rec.until(rec.faults, timeout=10, what="the fault")
        assert "timed out after 0.3 s (waiting for PONG)" in rec.faults()[0].event.message
        assert await sleeping == b"+OK\r\n"
        await rec.until(lambda: rec.states()[-1] == "normal", timeout=10)


# --- nginx --------------------------------------------------------------------------------------
@asynccontextmanager
async def upstream(port: int) -> AsyncIterator[None]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\napp: ok\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Nginx:
    server: Server
    port: int  # nginx
    app: int  # the application behind it (the test's upstream)


@pytest.fixture
def nginx(cluster: Cluster, scratch: Scratch, seen: Seen) -> Nginx:
    """nginx in front of an application (the test's upstream) at /status."""
    app = free_port()
    location = f"location /status {{ proxy_pass http://127.0.0.1:{app}; }}"
    server = nginx_server("nginx", cluster, scratch, seen, location)
    port = urlsplit(str(server.values["url"])).port
    assert port is not None
    return Nginx(server, port, app)


@pytest.mark.asyncio
async def test_nginx_answering_502_for_a_stopped_upstream_is_an_error(nginx: Nginx) -> None:
    nginx.server.import_template()
    await asyncio.to_thread(nginx.server.start)
    port, app = nginx.port, nginx.app
    s = spec(
        f'kind = "http"\nurl = "http://127.0.0.1:{port}/status"\nexpect = "app: ok"\n'
        "interval = 0.5\ntimeout = 0.4\nfailures = 2\n"
    )
    async with running(s) as rec:
        async with upstream(app):
            await rec.until(lambda: rec.results, timeout=10)
            assert (rec.results[0].status, rec.results[0].message) == (Status.OK, "HTTP 200 OK")
        # The application behind nginx is gone: nginx itself runs and answers, with 502.
        await rec.until(rec.faults, timeout=10, what="the fault")
        [fault] = rec.faults()
        assert fault.event.message.endswith(
            "2 consecutive failures: HTTP 502 Bad Gateway (expected 2xx)"
        )
        async with upstream(app):
            await rec.until(lambda: rec.states()[-1] == "normal", timeout=10)


@pytest.mark.asyncio
async def test_check_http_as_an_exec_monitor(nginx: Nginx) -> None:
    need(f"{PLUGINS}/check_http")
    nginx.server.import_template()
    await asyncio.to_thread(nginx.server.start)
    port, app = nginx.port, nginx.app
    check = [f"{PLUGINS}/check_http", "-H", "127.0.0.1", "-p", str(port), "-t", "3"]

    def monitor(path: str) -> MonitorSpec:
        name = f"name = {toml_str(path.strip('/'))}"
        return exec_spec([*check, "-u", path], name, "interval = 4", "timeout = 4", "failures = 1")

    async with upstream(app):
        ok = await probe_once(monitor("/status"))
        assert ok.status is Status.OK and ok.message.startswith("HTTP OK: HTTP/1.1 200 OK")
    async with running(monitor("/missing"), monitor("/status")) as rec:
        # 404: check_http's WARNING; 502 (no upstream): its CRITICAL.
        await rec.until(lambda: len(rec.changes) >= 4, timeout=15)
    by_state = {c.event.state.value: c for c in rec.changes if c.event.previous.value == "normal"}
    assert by_state["warning"].event.fault is False
    assert "HTTP WARNING: HTTP/1.1 404 Not Found" in by_state["warning"].event.message
    assert by_state["error"].event.fault is True
    assert "HTTP CRITICAL: HTTP/1.1 502 Bad Gateway" in by_state["error"].event.message


@pytest.mark.asyncio
async def test_check_disk_as_an_exec_monitor(tmp_path: Path) -> None:
    need(f"{PLUGINS}/check_disk")

    def check(warning: str, critical: str) -> list[str]:
        return [f"{PLUGINS}/check_disk", "-w", warning, "-c", critical, "-p", str(tmp_path)]

    ok = await probe_once(exec_spec(check("1%", "1%")))
    assert ok.status is Status.OK and ok.message.startswith("DISK OK - free space:")
    warned = exec_spec(check("100%", "0.001%"), 'name = "warned"', "interval = 5")
    failed = exec_spec(check("100%", "100%"), 'name = "failed"', "failures = 1")
    async with running(warned, failed) as rec:
        await rec.until(lambda: len(rec.changes) >= 4, timeout=15)
    last = {c.key: c.event for c in rec.changes}
    assert (last["warned"].state.value, last["warned"].fault) == ("warning", False)
    assert "DISK WARNING - free space:" in last["warned"].message
    assert (last["failed"].state.value, last["failed"].fault) == ("error", True)
    assert "DISK CRITICAL - free space:" in last["failed"].message


# --- MariaDB, Postfix and Dovecot -------------------------------------------------------------
@pytest.mark.asyncio
async def test_mysql_monitor_against_mariadb(mariadb: Server, scratch: Scratch) -> None:  # noqa: F811
    mariadb.import_template()
    await asyncio.to_thread(mariadb.start)
    sock = Path(str(mariadb.values["rundir"])) / "mysqld.sock"
    client = ["/usr/bin/mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-e"]
    subprocess.run(
        [
            *client,
            "CREATE USER mon@'127.0.0.1' IDENTIFIED BY 'm0n';GRANT USAGE ON *.* TO mon@'127.0.0.1'",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    folder = scratch.folder("mypass", mode=0o700)
    (folder / "pass").write_text("m0n\n")
    port = int(
        subprocess.run(
            [*client, "SELECT @@port", "-N"], check=True, capture_output=True, text=True, timeout=30
        ).stdout
    )
    over_tcp = await probe_once(
        spec(
            f'kind = "mysql"\nport = {port}\nuser = "mon"\n'
            f'password_file = {toml_str(str(folder / "pass"))}\nquery = "SELECT 40 + 2"\n'
            'expect = "^42$"\n'
        )
    )
    assert (over_tcp.status, over_tcp.message) == (Status.OK, "'SELECT 40 + 2' returned '42'")
    wrong = await probe_once(spec(f'kind = "mysql"\nport = {port}\nuser = "mon"\n'))
    assert wrong.status is Status.ERROR and "error 1045: Access denied" in wrong.message
    as_root = await probe_once(
        spec(
            f'kind = "mysql"\nsocket = {toml_str(str(sock))}\nuser = "root"\n'
            'query = "SELECT USER()"\n'
        )
    )
    assert as_root.status is Status.OK and "root@localhost" in as_root.message


@pytest.mark.asyncio
async def test_smtp_and_imap_monitors_against_postfix_and_dovecot(mail: Server) -> None:  # noqa: F811
    mail.import_template()
    await asyncio.to_thread(mail.start)
    await asyncio.to_thread(mail.main_pid, "DOVECOT")
    smtp = await probe_once(spec(f'kind = "smtp"\nport = {mail.values["smtp_port"]}\n'))
    assert smtp.status is Status.OK and smtp.message.startswith("220 rearm-test.localdomain ESMTP")
    imap = await probe_once(spec(f'kind = "imap"\nport = {mail.values["imap_port"]}\n'))
    assert imap.status is Status.OK and imap.message.startswith("* OK")
    closed = await probe_once(spec(f'kind = "smtp"\nport = {free_port()}\n'))
    assert closed.status is Status.ERROR and closed.message.endswith("connection refused")
