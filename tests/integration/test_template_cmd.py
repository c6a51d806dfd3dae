"""`rearm template list|show` and `rearm group template GROUP TEMPLATE` (SPEC §8), with the
generic template watching a real program (Python's HTTP server) from import to recovery."""

from __future__ import annotations

import grp
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Cluster, alive, wait_for
from .template_cli import template_cmd, template_ok


@pytest.fixture
def site() -> Iterator[Path]:
    """A folder the HTTP server serves, readable by `nobody` (pytest's tmp_path is not)."""
    folder = Path(tempfile.mkdtemp(prefix="rearm-site-"))
    folder.chmod(0o755)
    (folder / "index.html").write_text("generic-ok\n")
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


# Debian's own python3: the venv's may live where `nobody` cannot read (/root, /work).
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def _generic(port: int, site: Path, **more: str) -> list[str]:
    command = f"{PYTHON} -m http.server {port} --bind 127.0.0.1 --directory {site}"
    sets = {"command": command, "port": str(port), **more}
    if os.geteuid() != 0:  # only root can run it as nobody: run it as ourselves instead
        sets["user"] = pwd.getpwuid(os.geteuid()).pw_name
        sets["group"] = grp.getgrgid(os.getegid()).gr_name
    return [f"--set={k}={v}" for k, v in sets.items()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read() == b"generic-ok\n"
    except OSError:
        return False
    finally:
        conn.close()


def test_list_names_every_template_with_its_services_and_watches(cluster: Cluster) -> None:
    rows = {r["name"]: r for r in json.loads(template_ok(cluster, "template", "list", "--json"))}
    assert rows["postgresql"]["services"] == ["postgresql"]
    assert rows["mail"]["watches"] == ["POSTFIX", "DOVECOT"]
    assert rows["redis-forking"]["extends"] == "redis"
    generic = {v["name"]: v for v in rows["generic"]["variables"]}
    assert generic["command"]["required"] and generic["interval"]["value"] == "5"
    text = template_ok(cluster, "template", "list")
    assert all(name in text for name in rows)


def test_show_prints_the_scripts_filled_in_with_the_defaults(cluster: Cluster) -> None:
    out = template_ok(cluster, "template", "show", "postgresql")
    assert "armload POSTGRES /S /A /R 3 /H 1 /INT 5 /WAIT 60 postgresql" in out
    assert "==> services/postgresql.toml  (imported as etc/services/postgresql.toml) <==" in out
    out = template_ok(cluster, "template", "show", "redis", "--set", "port=6380")
    assert '"-p", "6380"' in out
    shown = json.loads(template_ok(cluster, "template", "show", "generic", "--json"))
    assert "${command}" in shown["files"]["services/app.toml"]
    r = template_cmd(cluster, "template", "show", "oracle")
    assert r.returncode == 1 and "unknown template 'oracle'" in r.stderr


def test_import_start_crash_and_recover(cluster: Cluster, site: Path) -> None:
    port = _free_port()
    cluster.rearm("group", "create", "apps", "--no-auto-start")
    folder = cluster.home / "etc" / "groups" / "apps"
    out = template_ok(
        cluster, "group", "template", "apps", "generic", *_generic(port, site, interval="1")
    )
    assert "wrote etc/services/app.toml" in out
    assert "wrote etc/groups/apps/start.sh (the old one is kept as start.sh.bak)" in out
    assert "# armload WATCHID" in (folder / "start.sh.bak").read_text()  # group create's
    assert os.access(folder / "start.sh", os.X_OK)
    cluster.rearm("group", "start", "apps")
    assert _answers(port)
    w = cluster.wait_running("APP")
    assert (w["retry"], w["hours"], w["interval"]) == (3, 1, 1)
    os.kill(w["pid"], signal.SIGKILL)
    again = cluster.wait_running("APP", other_than=w["pid"])
    wait_for("the server to answer again", lambda: _answers(port))
    assert again["restarts"] == 1
    cluster.rearm("group", "stop", "apps")
    assert not alive(again["pid"])


def test_import_is_refused_while_the_group_is_online(cluster: Cluster, site: Path) -> None:
    cluster.rearm("group", "create", "busy", "--no-auto-start")
    cluster.rearm("group", "start", "busy")
    args = ["group", "template", "busy", "generic", *_generic(_free_port(), site)]
    r = template_cmd(cluster, *args)
    assert r.returncode == 1 and "is online: stop it first" in r.stderr
    assert not (cluster.home / "etc" / "services" / "app.toml").exists()
    cluster.rearm("group", "stop", "busy")
    template_ok(cluster, *args)


def test_another_definition_of_the_service_is_kept_unless_forced(
    offline_cluster: Cluster, site: Path
) -> None:
    """With no daemon running the import is allowed; it never overwrites a service silently."""
    cluster = offline_cluster
    cluster.rearm("group", "create", "a")
    cluster.rearm("group", "create", "b")
    template_ok(cluster, "group", "template", "a", "generic", *_generic(8081, site))
    service = cluster.home / "etc" / "services" / "app.toml"
    first = service.read_text()
    again = template_ok(cluster, "group", "template", "a", "generic", *_generic(8081, site))
    assert "unchanged etc/services/app.toml" in again
    r = template_cmd(cluster, "group", "template", "b", "generic", *_generic(8082, site))
    assert r.returncode == 1 and "etc/services/app.toml already exists" in r.stderr
    assert "--force" in r.stderr and service.read_text() == first
    assert "start.sh.bak" not in os.listdir(cluster.home / "etc" / "groups" / "b")
    out = template_ok(
        cluster, "group", "template", "b", "generic", "--force", *_generic(8082, site)
    )
    assert "wrote etc/services/app.toml (the old one is kept as app.toml.bak)" in out
    assert (service.parent / "app.toml.bak").read_text() == first and "8082" in service.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchgroup", "redis"], "no group named 'nosuchgroup'"),
        (["g", "oracle"], "unknown template 'oracle'"),
        (["g", "redis", "--set", "port=6379;reboot"], "port="),
        (["g", "redis", "--set", "prot=1"], "no variable 'prot'"),
        (["g", "redis", "--set", "port"], "KEY=VALUE"),
        (["g", "generic"], "needs a value for command, port"),
    ],
)
def test_bad_imports_are_refused_in_one_line(
    offline_cluster: Cluster, args: list[str], message: str
) -> None:
    offline_cluster.rearm("group", "create", "g")
    r = template_cmd(offline_cluster, "group", "template", *args)
    assert r.returncode == 1 and message in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("rearm: ")
    assert list((offline_cluster.home / "etc" / "services").glob("*.toml")) == []
