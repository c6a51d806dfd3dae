"""One service, one watch (SPEC §4, issue 13): a second armload of a service that a live watch
holds -- by definition name, or through a pid file another definition shares -- is refused in
one line naming the watch and group that hold it; with /A it says so and changes nothing.

Before this, `armload TEL3 /S tel` beside `TEL` started a second copy whose readiness the first
copy answered; the copy died on the busy port, its faults counted, and the final action fired.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.web.manager import free_port

from .harness import Cluster, alive
from .test_pidfile import FORKER


def _tel(cluster: Cluster) -> int:
    port = free_port()
    cluster.write_service(
        "tel",
        f'command = ["{sys.executable}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]\n'
        f'ready = {{ tcp = "127.0.0.1:{port}" }}\n',
    )
    return port


def test_a_second_watch_of_a_watched_service_is_refused_naming_the_holder(
    cluster: Cluster,
) -> None:
    _tel(cluster)
    cluster.write_group("SRE-GRP", "armload TEL /S /R 2 /H 1 /INT 5 /WAIT 20 tel")
    cluster.rearm("group", "start", "SRE-GRP")
    first = cluster.wait_running("TEL")
    for extra in ([], ["/WAIT", "20"]):
        r = cluster.run("armload", "TEL3", "/S", "/R", "2", *extra, "tel")
        assert r.returncode == 1, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert "TEL" in lines[0] and "group SRE-GRP" in lines[0] and "service tel" in lines[0]
    # The name of a service is case-insensitive: TEL is the same service.
    assert cluster.run("armload", "TEL4", "/S", "TEL").returncode == 1
    assert cluster.watch("TEL3") is None and cluster.watch("TEL4") is None
    # With /A: not an error, and nothing changes.
    out = cluster.ok("armload", "TEL3", "/S", "/A", "/R", "2", "tel")
    assert "already watched by TEL" in out and "nothing changed" in out
    assert cluster.watch("TEL3") is None
    now = cluster.watch("TEL")
    assert now is not None and now["pid"] == first["pid"] and now["restarts"] == 0
    assert not cluster.events("final_action") and not cluster.events("fault")


def test_two_definitions_sharing_a_pid_file_are_one_service(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = tmp_path / "forker.py"
    script.write_text(FORKER)
    pidfile = tmp_path / "shared.pid"
    for name in ("forky", "forky2"):
        command = f'command = ["{sys.executable}", "{script}", "{pidfile}"]\n'
        cluster.write_service(name, command + f'pidfile = "{pidfile}"\n')
    cluster.ok("armload", "F1", "/S", "/R", "1", "/WAIT", "20", "forky")
    pid = cluster.wait_running("F1")["pid"]
    r = cluster.run("armload", "F2", "/S", "/R", "1", "/WAIT", "20", "forky2")
    assert r.returncode == 1
    assert f"pid file {pidfile}" in r.stderr and "F1" in r.stderr and "no group" in r.stderr
    assert "already watched by F1" in cluster.ok("armload", "F2", "/S", "/A", "forky2")
    assert cluster.watch("F2") is None
    assert alive(pid) and int(pidfile.read_text()) == pid
    # Once F1 is gone, the service is free to be watched again.
    cluster.ok("armkill", "F1")
    cluster.ok("armload", "F2", "/S", "/R", "1", "/WAIT", "20", "forky2")
    cluster.wait_running("F2")
