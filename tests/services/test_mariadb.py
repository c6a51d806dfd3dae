"""MariaDB from Debian's package, run by rearm from the mariadb template.

The data directory is made by mariadb-install-db in a scratch folder owned by `mysql`; the
server runs as `mysql` (as Debian runs it) on 127.0.0.1 and a free port, its socket and pid
file in the scratch folder too.
"""

from __future__ import annotations

import subprocess

import pytest

from ..integration.harness import Cluster
from .conftest import record_recovery
from .servers import Scratch, Seen, Server, free_port, need, run_as, user_of


@pytest.fixture
def mariadb(cluster: Cluster, scratch: Scratch, seen: Seen) -> Server:
    need("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb")
    top = scratch.folder("mariadb", owner="mysql", mode=0o750)
    data, run = top / "data", top / "run"
    run_as(
        "mysql",
        [
            "/usr/bin/mariadb-install-db",
            "--no-defaults",
            f"--datadir={data}",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
        ],
        cwd=top,
    )
    port = free_port()
    config = top / "my.cnf"
    config.write_text(
        f"[mysqld]\nport = {port}\nbind-address = 127.0.0.1\nskip-name-resolve\n"
        f"log-error = {top}/error.log\ninnodb_buffer_pool_size = 16M\n"
    )

    def answers() -> bool:
        client = ["/usr/bin/mariadb", "--no-defaults", f"--socket={run}/mysqld.sock", "-u", "root"]
        r = subprocess.run(
            [*client, "--connect-timeout=2", "-N", "-e", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return r.returncode == 0 and r.stdout.strip() == "1"

    values = {"defaults_file": config, "datadir": data, "rundir": run}
    return Server(cluster, "mariadb", values, "MARIADB", answers, seen)


def test_killed_mariadbd_is_restarted_after_int_and_answers(mariadb: Server) -> None:
    mariadb.import_template()
    first = mariadb.start()
    assert user_of(first) == "mysql"
    took = mariadb.crash()
    assert took >= 5, "restarted before /INT 5 was over"
    assert mariadb.cluster.watch("MARIADB")["restarts"] == 1  # type: ignore[index]
    record_recovery("mariadb", 5, [took])
    mariadb.cluster.rearm("group", "stop", mariadb.group)
    assert not mariadb.answers()
