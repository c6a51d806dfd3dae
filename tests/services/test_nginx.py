"""nginx from Debian's package, run by rearm from the nginx and nginx-forking templates.

As on Debian, the master runs as root and its workers as www-data; the configuration, pid
file, logs and temporary folders are in a scratch folder, the listener on 127.0.0.1 and a free
port. Once in the foreground, once daemonizing itself with rearm following its pid file.
"""

from __future__ import annotations

import http.client

import pytest

from ..integration.harness import Cluster
from .conftest import record_recovery
from .servers import (
    Scratch,
    Seen,
    Server,
    assert_reboot_drilled,
    free_port,
    need,
    session_members,
    user_of,
)

MODES = {"foreground": "nginx", "forking": "nginx-forking"}
PAGE = b"rearm-nginx-test\n"


def nginx_server(
    template: str, cluster: Cluster, scratch: Scratch, seen: Seen, locations: str = ""
) -> Server:
    """nginx serving a page at / (and `locations`, nginx.conf text inside its server block)."""
    need("/usr/sbin/nginx")
    top = scratch.folder("nginx")
    (top / "www").mkdir()
    (top / "www" / "index.html").write_bytes(PAGE)
    port = free_port()
    temp = " ".join(
        f"{kind}_temp_path {top}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (top / "nginx.conf").write_text(
        f"user www-data;\nworker_processes 2;\npid {top}/nginx.pid;\n"
        f"error_log {top}/error.log;\nevents {{ worker_connections 64; }}\n"
        f"http {{ access_log off; {temp}\n"
        f"  server {{ listen 127.0.0.1:{port}; root {top}/www; {locations} }} }}\n"
    )
    values = {
        "config": top / "nginx.conf",
        "error_log": top / "error.log",
        "url": f"http://127.0.0.1:{port}/",
    }
    if template == "nginx-forking":
        values["pidfile"] = top / "nginx.pid"

    def answers() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            return response.status == 200 and response.read() == PAGE
        except OSError:
            return False
        finally:
            conn.close()

    return Server(cluster, template, values, "NGINX", answers, seen)


@pytest.fixture(params=sorted(MODES))
def nginx(request: pytest.FixtureRequest, cluster: Cluster, scratch: Scratch, seen: Seen) -> Server:
    return nginx_server(MODES[request.param], cluster, scratch, seen)


def test_killed_nginx_master_is_restarted_after_int_and_answers(nginx: Server) -> None:
    nginx.import_template()
    first = nginx.start()
    assert user_of(first) == "root"
    took = nginx.crash()
    assert took >= 5, "restarted before /INT 5 was over"
    w = nginx.cluster.watch("NGINX")
    assert w is not None and w["restarts"] == 1 and w["pid"] != first
    workers = [p for p in session_members(w["pid"]) if p != w["pid"]]
    assert workers and all(user_of(p) == "www-data" for p in workers)
    if nginx.template == "nginx-forking":
        assert int(nginx.values["pidfile"].read_text()) == w["pid"]  # type: ignore[attr-defined]
    record_recovery(nginx.template, 5, [took])


def test_fourth_kill_within_the_hour_fires_the_final_action(nginx: Server) -> None:
    nginx.import_template(interval=1)
    nginx.start()
    times = nginx.crash_past_threshold(retry=3)
    assert_reboot_drilled(nginx.cluster, "NGINX")
    # The workers of the dead master were ended too: nothing answers any more.
    assert not nginx.answers()
    record_recovery(nginx.template, 1, times)


def test_a_bad_configuration_fails_the_group_start(
    cluster: Cluster, scratch: Scratch, seen: Seen
) -> None:
    nginx = nginx_server("nginx", cluster, scratch, seen)
    nginx.import_template()
    config = nginx.values["config"]
    config.write_text(config.read_text() + "nonsense;\n")  # type: ignore[attr-defined]
    r = nginx.cluster.run("rearm", "group", "start", nginx.group)
    assert r.returncode == 1 and "start.sh exited with status 1" in r.stderr
    assert nginx.cluster.group(nginx.group)["state"] == "error"  # type: ignore[index]
    log = (nginx.cluster.home / "var" / "log" / "groups" / f"{nginx.group}.log").read_text()
    assert "nonsense" in log
