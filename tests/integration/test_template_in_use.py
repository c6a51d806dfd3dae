"""A template import never replaces the definition a live watch runs (issue 13).

Before: `rearm group template G2 generic --force` overwrote `etc/services/app.toml`, which
group G1's watch APP used; G1's program was silently replaced at its next restart while
`rearm status` still showed it running. Now the refusal names the watch and its group, the
template takes the watch ID and the service name as values so it can be imported beside, and
status says when a watch runs an older definition than the file on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

from .harness import Cluster
from .template_cli import template_cmd, template_ok
from .test_template_cmd import _answers, _free_port, _generic, site  # noqa: F401 -- fixture


def test_a_definition_in_use_is_never_replaced_and_a_template_imports_beside_it(
    cluster: Cluster,
    site: Path,  # noqa: F811 -- the fixture
) -> None:
    services = cluster.home / "etc" / "services"
    port1, port2 = _free_port(), _free_port()
    for group in ("G1", "G2"):
        cluster.rearm("group", "create", group, "--no-auto-start")
    template_ok(cluster, "group", "template", "G1", "generic", *_generic(port1, site))
    cluster.rearm("group", "start", "G1")
    app = cluster.wait_running("APP")
    first = (services / "app.toml").read_text()

    for force in ([], ["--force"]):
        r = template_cmd(
            cluster, "group", "template", "G2", "generic", *force, *_generic(port2, site)
        )
        assert r.returncode == 1, r.stdout
        assert "etc/services/app.toml is used by watch APP of group G1 (running)" in r.stderr
        assert "--set service=" in r.stderr
        assert (services / "app.toml").read_text() == first
        assert not (services / "app.toml.bak").exists()

    # The same template, under other names, beside it.
    out = template_ok(
        cluster,
        "group",
        "template",
        "G2",
        "generic",
        "--set=watch_id=APP2",
        "--set=service=app2",
        *_generic(port2, site),
    )
    assert "wrote etc/services/app2.toml" in out
    assert "armload APP2 /S" in (cluster.home / "etc/groups/G2/start.sh").read_text()
    assert "armkill APP2" in (cluster.home / "etc/groups/G2/stop.sh").read_text()
    cluster.rearm("group", "start", "G2")
    cluster.wait_running("APP2")
    assert _answers(port1) and _answers(port2)
    assert cluster.watch("APP")["pid"] == app["pid"]  # type: ignore[index]


def test_status_shows_a_watch_running_an_older_definition(cluster: Cluster) -> None:
    definition = cluster.home / "etc" / "services" / "slp.toml"
    cluster.write_service("slp", 'command = ["/bin/sleep", "4713.41"]\n')
    cluster.ok("armload", "SLP", "/S", "/R", "2", "slp")
    pid = cluster.wait_running("SLP")["pid"]
    assert cluster.watch("SLP")["definition_changed"] is False  # type: ignore[index]
    definition.write_text('command = ["/bin/sleep", "4713.42"]\n')  # the admin edits it
    w = cluster.watch("SLP")
    assert w is not None and w["definition_changed"] is True and w["pid"] == pid
    line = next(x for x in cluster.rearm("status").splitlines() if "SLP" in x)
    assert "older definition than the file on disk" in line and "rearm restart SLP" in line
    # Restarting it applies the file; the flag goes.
    cluster.rearm("restart", "SLP")
    w = cluster.wait_running("SLP", other_than=pid)
    assert w["definition_changed"] is False
    # A change back to the exact running content is no change; a restarted daemon still knows.
    cluster.kill_daemon()
    cluster.start_daemon()
    assert cluster.watch("SLP")["definition_changed"] is False  # type: ignore[index]
    definition.write_text('command = ["/bin/sleep", "4713.43"]\n')
    assert json.loads(cluster.rearm("status", "SLP", "--json"))["definition_changed"] is True


def test_a_definition_another_groups_script_uses_is_named_in_the_refusal(
    offline_cluster: Cluster,
    site: Path,  # noqa: F811 -- the fixture
) -> None:
    cluster = offline_cluster
    for group in ("G1", "G2"):
        cluster.rearm("group", "create", group)
    template_ok(cluster, "group", "template", "G1", "generic", *_generic(8081, site))
    r = template_cmd(cluster, "group", "template", "G2", "generic", *_generic(8082, site))
    assert r.returncode == 1
    assert "etc/services/app.toml already exists with other content (used by group G1)" in (
        r.stderr
    )
