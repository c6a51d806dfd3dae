"""`rearm export pacemaker`: crm_verify accepts every export (loaded into a CIB the documented
way, with cibadmin), --check reports crm_verify's errors, and crm_simulate on the exported CIB
with injected monitor failures moves the group after the mapped migration-threshold, and lets
the node have it again after the failure-timeout mapped from /H."""

from __future__ import annotations

import datetime
import re
import subprocess
from pathlib import Path

import pytest

from ..integration.harness import Cluster
from .conftest import tool

TWO_NODES = """<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1"
     num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="{stonith}"/>
      </cluster_property_set>
    </crm_config>
    <nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"""


@pytest.fixture
def home(tmp_path: Path) -> Cluster:
    """Groups covering what the export maps (no daemon needed)."""
    c = Cluster(tmp_path / "home")
    c.create(pacemaker="true")
    # /R with /H in the start script: failure-timeout from the longest /H.
    c.write_group("web", "armload WEB /R 2 /H 3 /INT 5 /WAIT 10 /bin/sleep 1000\n"
                  "armload LOG /R 1 /H 1 /bin/sleep 1001")  # fmt: skip
    # Declarative watches, /R without /H (no expiry), its own monitor interval, no address.
    c.write_group(
        "db.main",
        "",
        extra="[pacemaker]\naddress = false\nmonitor_interval = 5\nmonitor_timeout = 30\n"
        '[[watches]]\nid = "DB"\ncommand = ["/bin/sleep", "1000"]\nretry = 1\n',
    )
    # A name starting with a digit (not an XML ID by itself) and explicit overrides.
    c.write_group(
        "2nd", "armload TWO /R 1 /H 1 /bin/sleep 1000",
        extra="[pacemaker]\nmigration_threshold = 3\nfailure_timeout = 600\n",
    )  # fmt: skip
    return c


def export(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return c.run("rearm", "export", "pacemaker", *args)


def load(cib: Path, export_xml: str, tmp_path: Path) -> None:
    """The documented load: cibadmin --modify --allow-create --scope configuration."""
    fragment = tmp_path / "fragment.xml"
    fragment.write_text(export_xml)
    r = subprocess.run(
        [tool("cibadmin"), "--modify", "--allow-create", "--scope", "configuration",
         "--xml-file", str(fragment)],
        env={"CIB_file": str(cib), "PATH": "/usr/sbin:/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr


def verify(cib: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("crm_verify"), "--xml-file", str(cib), "--verbose"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_crm_verify_accepts_every_export(home: Cluster, tmp_path: Path) -> None:
    variants: list[tuple[str, ...]] = [(), ("web",), ("db.main",), ("2nd",), ("web", "2nd")]
    for groups in variants:
        r = export(home, *groups)
        assert r.returncode == 0, r.stderr
        cib = tmp_path / "cib.xml"
        cib.write_text(TWO_NODES.format(stonith="false"))
        load(cib, r.stdout, tmp_path)
        v = verify(cib)
        assert v.returncode == 0, f"{groups}: {v.stdout}{v.stderr}"
        text = cib.read_text()
        for g in groups or ("web", "db.main", "2nd"):
            assert f'id="rearm-{g}"' in text
        # Loading it again changes nothing (the ids are stable): the admin can re-export.
        load(cib, r.stdout, tmp_path)
        assert verify(cib).returncode == 0
        # rearm's own check says the same.
        checked = export(home, *groups, "--check")
        assert checked.returncode == 0, checked.stderr
        assert "crm_verify: the export is valid" in checked.stderr


def test_the_mapping(home: Cluster) -> None:
    xml = export(home).stdout
    # web: /H 3 -> failure-timeout 3 h; start = script_timeout 300 + /WAIT 10 + 30.
    assert re.search(r'name="failure-timeout" value="10800s"', xml)
    assert 'id="rearm-web-start-0s" name="start" interval="0s" timeout="340s"' in xml
    assert 'id="rearm-web-stop-0s" name="stop" interval="0s" timeout="370s"' in xml
    # db.main: no /H, so no failure-timeout; its own monitor; not with the address.
    db = xml[xml.index('<primitive id="rearm-db.main"') :].split("</primitive>")[0]
    assert "failure-timeout" not in db and 'name="migration-threshold" value="1"' in db
    assert 'name="monitor" interval="5s" timeout="30s"' in db
    assert "rearm-db.main-with-address" not in xml
    # 2nd: the overrides.
    second = xml[xml.index('<primitive id="rearm-2nd"') :].split("</primitive>")[0]
    assert 'name="migration-threshold" value="3"' in second
    assert 'name="failure-timeout" value="600s"' in second
    # The management address, and the groups that need it after and with it.
    assert 'type="IPaddr2"' in xml and 'name="ip" value="127.0.0.1"' in xml
    assert '<rsc_colocation id="rearm-web-with-address" rsc="rearm-web" ' in xml
    assert 'first="rearm-address" then="rearm-web" kind="Mandatory"' in xml


def test_check_reports_crm_verify_errors(home: Cluster, tmp_path: Path) -> None:
    cib = tmp_path / "fenced.xml"
    cib.write_text(TWO_NODES.format(stonith="true"))  # fencing on, and no fencing device
    r = export(home, "--check", "--cib", str(cib))
    assert r.returncode == 1
    assert "crm_verify found errors" in r.stderr and "STONITH" in r.stderr


# --- crm_simulate ------------------------------------------------------------------------------
def simulate(cib: Path, out: Path, *args: str) -> str:
    r = subprocess.run(
        [tool("crm_simulate"), "--xml-file", str(cib), "--quorum", "1", "--simulate",
         "--save-output", str(out), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def placement(cib: Path) -> dict[str, str]:
    """Where each resource runs in a saved state ({id: node}, or "Stopped"/"FAILED node")."""
    r = subprocess.run(
        [tool("crm_simulate"), "--xml-file", str(cib), "--quorum", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.findall(r"^\s*\* (rearm-\S+)\s+\(ocf:\S+\):\s+(.+?)\s*$", r.stdout, re.M)
    return {rid: where.removeprefix("Started ") for rid, where in found}


def running_cluster(home: Cluster, tmp_path: Path, *groups: str) -> tuple[Path, dict[str, str]]:
    cib = tmp_path / "start.xml"
    cib.write_text(TWO_NODES.format(stonith="false"))
    load(cib, export(home, *groups).stdout, tmp_path)
    state = tmp_path / "state0.xml"
    simulate(cib, state, "--node-up", "node1", "--node-up", "node2")
    where = placement(state)
    assert all(w in ("node1", "node2") for w in where.values()), where
    return state, where


def test_crm_simulate_moves_the_group_after_one_reported_failure(
    home: Cluster, tmp_path: Path
) -> None:
    state, where = running_cluster(home, tmp_path, "web", "db.main")
    first = where["rearm-web"]
    other = "node2" if first == "node1" else "node1"
    assert where["rearm-address"] == first  # the group runs with its address
    out = simulate(
        state, tmp_path / "state1.xml", "--op-inject", f"rearm-web_monitor_10000@{first}=1"
    )
    # migration-threshold 1: the first failure Pacemaker sees (rearm has used /R) moves it,
    # with the address; db.main does not depend on the address and stays where it was.
    assert re.search(rf"Recover\s+rearm-web\s+\( {first} -> {other} \)", out), out
    after = placement(tmp_path / "state1.xml")
    assert after["rearm-web"] == other and after["rearm-address"] == other
    assert after["rearm-db.main"] == where["rearm-db.main"]


def test_crm_simulate_honours_a_higher_threshold(home: Cluster, tmp_path: Path) -> None:
    state, where = running_cluster(home, tmp_path, "2nd")
    first = where["rearm-2nd"]
    # migration_threshold = 3: two failures are recovered in place, the third moves it.
    for n in (1, 2, 3):
        out_state = tmp_path / f"fail{n}.xml"
        out = simulate(state, out_state, "--op-inject", f"rearm-2nd_monitor_10000@{first}=1")
        now = placement(out_state)["rearm-2nd"]
        if n < 3:
            assert re.search(rf"Recover\s+rearm-2nd\s+\( {first} \)", out), out
            assert now == first
        else:
            assert now != first, out
        state = out_state


def test_crm_simulate_expires_the_failure_after_h(home: Cluster, tmp_path: Path) -> None:
    state, where = running_cluster(home, tmp_path, "web")
    first = where["rearm-web"]
    moved = tmp_path / "moved.xml"
    simulate(state, moved, "--op-inject", f"rearm-web_monitor_10000@{first}=1")
    stamp = re.search(r'name="last-failure-rearm-web#monitor_10000" value="(\d+)"',
                      moved.read_text())  # fmt: skip
    assert stamp is not None
    failed_at = int(stamp.group(1))

    def at(seconds: int) -> str:
        when = datetime.datetime.fromtimestamp(failed_at + seconds, datetime.UTC)
        return simulate(moved, tmp_path / "later.xml", "--set-datetime", when.isoformat())

    # /H 3 of WEB: the fail-count on the first node is kept for 3 hours, then cleared.
    assert f"clear_failcount for rearm-web on {first}" not in at(3 * 3600 - 60)
    assert f"clear_failcount for rearm-web on {first}" in at(3 * 3600 + 60)
