"""PostgreSQL from Debian's package, run by rearm from the postgresql template.

The database cluster is made by initdb in a scratch folder owned by `postgres`; the server runs
as `postgres` (as in production: PostgreSQL refuses root) on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from rearm.templates import DETECTORS

from ..integration.harness import Cluster
from .conftest import record_recovery
from .servers import Scratch, Seen, Server, assert_reboot_drilled, free_port, need, run_as, user_of

VERSION = DETECTORS["postgresql-version"]() or "15"
BIN = f"/usr/lib/postgresql/{VERSION}/bin"


@pytest.fixture
def postgres(cluster: Cluster, scratch: Scratch, seen: Seen) -> Server:
    need(f"{BIN}/postgres", f"{BIN}/initdb", f"{BIN}/psql", f"{BIN}/pg_isready")
    top = scratch.folder("pg", owner="postgres", mode=0o700)
    data, sockets = top / "data", top / "sockets"
    run_as(
        "postgres",
        [f"{BIN}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
        cwd=top,
    )
    port = free_port()
    with open(data / "postgresql.conf", "a") as f:
        f.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{sockets}'\n"
        )

    def answers() -> bool:
        psql = [f"{BIN}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        r = subprocess.run(
            [*psql, "-d", "postgres", "-tAc", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "PGCONNECT_TIMEOUT": "2"},
        )
        return r.returncode == 0 and r.stdout.strip() == "1"

    values = {"datadir": data, "config_file": data / "postgresql.conf", "socket_dir": sockets}
    return Server(cluster, "postgresql", {**values, "port": port}, "POSTGRES", answers, seen)


def test_killed_postmaster_is_restarted_after_int_and_answers(postgres: Server) -> None:
    postgres.import_template()
    postgres.start()
    assert user_of(postgres.main_pid()) == "postgres"
    took = postgres.crash()
    assert took >= 5, "restarted before /INT 5 was over"
    w = postgres.cluster.watch("POSTGRES")
    assert w is not None and w["restarts"] == 1 and w["retry"] == 3 and w["hours"] == 1
    record_recovery("postgresql", 5, [took])


def test_fourth_kill_within_the_hour_fires_the_final_action(postgres: Server) -> None:
    postgres.import_template(interval=1)
    postgres.start()
    times = postgres.crash_past_threshold(retry=3)
    assert_reboot_drilled(postgres.cluster, "POSTGRES")
    assert not postgres.answers()
    record_recovery("postgresql", 1, times)


def test_group_stop_shuts_the_server_down(postgres: Server) -> None:
    postgres.import_template()
    postgres.start()
    postgres.cluster.rearm("group", "stop", postgres.group)
    assert postgres.cluster.group(postgres.group)["state"] == "offline"  # type: ignore[index]
    assert not postgres.answers()
    log = (postgres.cluster.home / "var" / "log" / "watches" / "POSTGRES.log").read_text()
    # SIGINT is PostgreSQL's fast shutdown: a clean stop, no crash recovery needed next time.
    assert "fast shutdown request" in log and "database system is shut down" in log, log[-2000:]
