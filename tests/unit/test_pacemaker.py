"""The Pacemaker export's pure parts (rearm.pacemaker) and the agent's installation text."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from importlib.machinery import SourceFileLoader
from importlib.resources import files
from types import ModuleType

import pytest

from rearm import pacemaker as pm
from rearm.arm import parse_armload
from rearm.cli.pacemaker_cmd import agent_path, agent_text
from rearm.model import Cluster, GroupConfig
from rearm.validate import NAME_RE, ConfigError

CLUSTER = Cluster(name="cl", server="host1", ip="10.1.2.3/24")


def watch(line: str) -> pm.LoadRequest:
    return parse_armload(line.split())


def test_threshold_is_one_and_failure_timeout_is_the_longest_h() -> None:
    policy = pm.map_policy(
        [watch("A /R 2 /H 2 /bin/x"), watch("B /R 1 /H 5 /bin/y"), watch("C /bin/z")],
        pm.Settings(),
    )
    assert (policy.migration_threshold, policy.failure_timeout) == (1, 5 * 3600)
    assert "/H 5 of B" in policy.why


def test_without_h_failures_never_expire() -> None:
    policy = pm.map_policy([watch("A /R 2 /H 2 /bin/x"), watch("B /R 1 /bin/y")], pm.Settings())
    assert policy.failure_timeout == 0 and "/R without /H: B" in policy.why
    assert pm.map_policy([watch("C /bin/z")], pm.Settings()).failure_timeout == 0
    assert pm.map_policy([], pm.Settings()).failure_timeout == 0


def test_settings_override_the_mapping() -> None:
    settings = pm.parse_settings({"migration_threshold": 3, "failure_timeout": 600}, "g.toml")
    policy = pm.map_policy([watch("A /R 2 /H 2 /bin/x")], settings)
    assert (policy.migration_threshold, policy.failure_timeout) == (3, 600)


def test_settings_are_checked() -> None:
    assert pm.parse_settings(None, "g.toml") == pm.Settings()
    with pytest.raises(ConfigError, match=r"unknown key 'pacemaker.adress'"):
        pm.parse_settings({"adress": False}, "g.toml")
    with pytest.raises(ConfigError, match=r"'pacemaker.monitor_interval': must be a whole"):
        pm.parse_settings({"monitor_interval": 0}, "g.toml")
    with pytest.raises(ConfigError, match="must be a table"):
        pm.parse_settings(3, "g.toml")  # type: ignore[arg-type]


def test_armload_lines_of_a_start_script() -> None:
    script = """#!/bin/sh
case "$REARM_EVENT" in
START)
    armload TEL /S /A /R 2 /H 1 /INT 5 tlntsvr   # the guide's example
    exec /run/rearm/bin/armload DB /R 1 /WAIT 30 /usr/bin/db --data "/var/lib/my db"
    # armload OLD /R 9 /bin/old
    armload BAD /R 99 /bin/bad
    echo armload NOT /bin/x
    armload "$ID" /R 3 /H 4 /bin/var
    armload VAR /R 3 /H 4 "$PROGRAM" --flag
    armload UNCLOSED "/bin/x
;;
esac
"""
    found = {w.watch_id: w for w in pm.script_watches(script)}
    assert set(found) == {"TEL", "DB", "VAR"}
    assert (found["TEL"].policy.retry, found["TEL"].policy.hours) == (2, 1)
    assert found["DB"].wait == 30 and found["VAR"].policy.hours == 4


def group(name: str, **settings: object) -> pm.ExportGroup:
    return pm.ExportGroup(
        GroupConfig(name=name, script_timeout=60, stop_timeout=10),
        pm.Settings(**settings),  # type: ignore[arg-type]
        (watch("W /R 1 /H 2 /WAIT 15 /bin/w"),),
    )


def test_build() -> None:
    export = pm.build(CLUSTER, [group("1st"), group("solo", address=False)], "/srv/rearm")
    ids = [p.id for p in export.primitives]
    assert ids == ["rearm-address", "rearm-1st", "rearm-solo"]
    address, first = export.primitives[0], export.primitives[1]
    assert address.params == {"ip": "10.1.2.3", "cidr_netmask": "24"}
    assert first.params == {"group": "1st", "home": "/srv/rearm"}
    assert first.meta == {
        "migration-threshold": "1",
        "resource-stickiness": "100",
        "failure-timeout": "7200s",
    }
    assert first.ops == (
        pm.Op("start", 0, 60 + 15 + pm.AGENT_MARGIN),
        pm.Op("stop", 0, 60 + 10 + pm.AGENT_MARGIN),
        pm.Op("monitor", 10, 20),
    )
    assert export.with_address == ["rearm-1st"]
    # No group needs the address: no IPaddr2. The system layout: no home parameter.
    alone = pm.build(
        Cluster(name="cl", server="h", ip="10.1.2.3"), [group("g", address=False)], None
    )
    assert [p.id for p in alone.primitives] == ["rearm-g"]
    assert alone.primitives[0].params == {"group": "g"}


def test_xml_and_crm_say_the_same() -> None:
    export = pm.build(CLUSTER, [group("web")], "/srv/re arm")
    root = ET.fromstring(pm.to_xml(export))
    web = root.find("resources/primitive[@id='rearm-web']")
    assert web is not None and web.get("provider") == "rearm" and web.get("type") == "group"
    home = web.find("instance_attributes/nvpair[@name='home']")
    assert home is not None and home.get("value") == "/srv/re arm"
    colocation = root.find("constraints/rsc_colocation")
    assert colocation is not None and colocation.attrib == {
        "id": "rearm-web-with-address",
        "rsc": "rearm-web",
        "with-rsc": "rearm-address",
        "score": "INFINITY",
    }
    crm = pm.to_crm(export)
    assert 'params group=web home="/srv/re arm"' in crm
    assert "op monitor interval=10s timeout=20s" in crm
    assert "colocation rearm-web-with-address inf: rearm-web rearm-address" in crm
    assert "order rearm-web-after-address Mandatory: rearm-address rearm-web" in crm


def test_merge_replaces_by_id_and_adds() -> None:
    export = pm.build(CLUSTER, [group("web")], None)
    base = pm.EMPTY_CIB.replace(
        "<resources/>",
        '<resources><primitive id="rearm-web" class="ocf" provider="x" '
        'type="old"/><primitive id="other" class="ocf" provider="y" type="z"/></resources>',
    )
    cib = ET.fromstring(pm.merge(base, export))
    primitives = {p.get("id"): p.get("type") for p in cib.iter("primitive")}
    assert primitives == {"rearm-web": "group", "other": "z", "rearm-address": "IPaddr2"}
    assert len(cib.findall("configuration/constraints/*")) == 2


def test_agent_install_text() -> None:
    text = agent_text("/usr/bin/python3")
    assert text.startswith("#!/usr/bin/python3 -IS\n") and "def main(" in text
    with pytest.raises(ConfigError, match="cannot be named"):
        agent_text("/opt/my python/bin/python3")
    assert agent_path("/") == "/usr/lib/ocf/resource.d/rearm/group"
    assert agent_path("/tmp/stage") == "/tmp/stage/usr/lib/ocf/resource.d/rearm/group"


def agent_module() -> ModuleType:
    """The shipped agent (a program without .py), loaded as a module."""
    path = str(files("rearm").joinpath("ocf", "group"))
    loader = SourceFileLoader("rearm_ocf_group", path)
    module = ModuleType(loader.name)
    loader.exec_module(module)
    return module


def test_the_agent_knows_rearms_group_names() -> None:
    agent = agent_module()
    assert f"^{agent.GROUP_NAME.pattern}$" == NAME_RE.pattern


@pytest.mark.parametrize("tomllib", [True, False])
def test_the_agent_reads_the_pacemaker_property(
    tomllib: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not tomllib:  # a python3 older than 3.11 on the node
        monkeypatch.setitem(sys.modules, "tomllib", None)
    read = agent_module().pacemaker_property
    assert read(b'name = "c"\npacemaker = true\n[manager]\nport = 1\n') is True
    assert read(b'name = "c"\n[[alerts]]\npacemaker = true\n') is None
    assert read(b"pacemaker = false\n") is False
