"""`rearm export pacemaker`: the cluster's groups as Pacemaker resources (a CIB fragment).

Pure: configuration in, text out. One `ocf:rearm:group` primitive per group, its operations'
timeouts from the group's settings, its failure handling mapped from the /R /H of its watches,
and the management address as an `ocf:heartbeat:IPaddr2` primitive that the groups needing it
are colocated with and ordered after. The same model is written as CIB XML and in crm shell
syntax. docs/pacemaker.md explains the mapping and where Pacemaker's semantics differ:

* rearm restarts a watch in place up to /R times within /H hours; Pacemaker sees none of that.
  When a watch goes beyond /R, rearm reports the group failed (under `pacemaker = true`), so the
  first failure Pacemaker sees means "this node has used up its restarts": migration-threshold=1.
* rearm forgets a watch's faults after /H hours: failure-timeout is the longest /H of the group's
  watches that restart. A restarting watch without /H never forgets, and neither does Pacemaker
  then (no failure-timeout: `crm_resource --cleanup` clears the node's fail-count).

Group settings for Pacemaker live in an optional `[pacemaker]` table of group.toml (see
parse_settings); none is needed.
"""

from __future__ import annotations

import shlex
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rearm.arm import ArmUsageError, parse_armload
from rearm.model import Cluster, GroupConfig, LoadRequest
from rearm.validate import ConfigError, Table

AGENT = ("ocf", "rearm", "group")
ADDRESS_AGENT = ("ocf", "heartbeat", "IPaddr2")
ADDRESS_ID = "rearm-address"
# Seconds the agent itself may take beyond the group's own timeouts (socket, status queries).
AGENT_MARGIN = 30
# Pacemaker's default resource-stickiness is 0: a node that comes back could pull groups back to
# it. rearm has no fail-back between servers, so a group stays where it runs.
STICKINESS = 100


@dataclass(frozen=True)
class Settings:
    """The `[pacemaker]` table of a group.toml."""

    address: bool = True  # the group's clients reach it at the management address
    monitor_interval: int = 10
    monitor_timeout: int = 20
    migration_threshold: int | None = None  # None: mapped (1)
    failure_timeout: int | None = None  # seconds, 0: never; None: mapped from /H


def parse_settings(data: Mapping[str, Any] | None, where: str) -> Settings:
    if data is None:
        return Settings()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: key 'pacemaker': must be a table")
    t = Table(data, where, "pacemaker.")
    settings = Settings(
        address=t.bool_("address", True),
        monitor_interval=t.int_("monitor_interval", 10, 1, 86400),
        monitor_timeout=t.int_("monitor_timeout", 20, 1, 86400),
        migration_threshold=t.opt_int("migration_threshold", 1, 1_000_000),
        failure_timeout=t.opt_int("failure_timeout", 0, 365 * 24 * 3600),
    )
    t.finish()
    return settings


def script_watches(text: str) -> list[LoadRequest]:
    """The armload lines of a start script, as armload would parse them. A variable for the
    program or its arguments is fine; a line that does not parse (a variable for the watch ID
    or an option, a continuation) is skipped: the mapping then rests on the other lines and on
    the declared watches."""
    found = []
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words and words[0] == "exec":
            words = words[1:]
        if not words or words[0].rsplit("/", 1)[-1] != "armload":
            continue
        try:
            found.append(parse_armload(words[1:]))
        except ArmUsageError:
            continue
    return found


@dataclass(frozen=True)
class FailurePolicy:
    migration_threshold: int
    failure_timeout: int  # seconds; 0: a failure never expires
    why: str


def map_policy(watches: Sequence[LoadRequest], settings: Settings) -> FailurePolicy:
    """migration-threshold and failure-timeout for a group whose watches are `watches`."""
    restarting = [w for w in watches if w.policy.retry is not None]
    if settings.failure_timeout is not None:
        timeout, why = settings.failure_timeout, "failure_timeout of [pacemaker]"
    elif not restarting:
        timeout, why = 0, "no watch restarts (no /R)"
    elif any(w.policy.hours is None for w in restarting):
        never = sorted(w.watch_id for w in restarting if w.policy.hours is None)
        timeout, why = 0, f"/R without /H: {', '.join(never)}"
    else:
        longest = max(restarting, key=lambda w: w.policy.hours or 0)
        hours = longest.policy.hours or 0
        timeout, why = hours * 3600, f"/H {hours} of {longest.watch_id}"
    threshold = settings.migration_threshold or 1
    because = (
        "rearm restarts in place within /R"
        if settings.migration_threshold is None
        else "migration_threshold of [pacemaker]"
    )
    expiry = f"failure-timeout {timeout}s" if timeout else "no failure-timeout"
    return FailurePolicy(
        threshold, timeout, f"migration-threshold {threshold} ({because}); {expiry} ({why})"
    )


# --- the model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    name: str
    interval: int
    timeout: int


@dataclass(frozen=True)
class Primitive:
    id: str
    agent: tuple[str, str, str]
    params: dict[str, str]
    meta: dict[str, str]
    ops: tuple[Op, ...]
    comment: str = ""


@dataclass(frozen=True)
class Export:
    primitives: list[Primitive] = field(default_factory=list)
    # Resources that run where the management address is, and start after it.
    with_address: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportGroup:
    config: GroupConfig
    settings: Settings
    watches: tuple[LoadRequest, ...]  # declared and found in start.sh


def resource_id(group: str) -> str:
    # Group names may start with a digit; XML IDs may not.
    return f"rearm-{group}"


def build(cluster: Cluster, groups: Iterable[ExportGroup], home: str | None) -> Export:
    export = Export()
    for g in groups:
        c = g.config
        waits = sum(w.wait or 0 for w in g.watches)
        policy = map_policy(g.watches, g.settings)
        meta = {
            "migration-threshold": str(policy.migration_threshold),
            "resource-stickiness": str(STICKINESS),
        }
        if policy.failure_timeout:
            meta["failure-timeout"] = f"{policy.failure_timeout}s"
        params = {"group": c.name}
        if home:
            params["home"] = home
        ops = (
            Op("start", 0, c.script_timeout + waits + AGENT_MARGIN),
            Op("stop", 0, c.script_timeout + c.stop_timeout + AGENT_MARGIN),
            Op("monitor", g.settings.monitor_interval, g.settings.monitor_timeout),
        )
        rid = resource_id(c.name)
        export.primitives.append(Primitive(rid, AGENT, params, meta, ops, policy.why))
        if g.settings.address:
            export.with_address.append(rid)
    if export.with_address:
        address, _, prefix = cluster.ip.partition("/")
        params = {"ip": address}
        if prefix:
            params["cidr_netmask"] = prefix
        ops = (Op("start", 0, 20), Op("stop", 0, 20), Op("monitor", 10, 20))
        export.primitives.insert(
            0,
            Primitive(
                ADDRESS_ID, ADDRESS_AGENT, params, {}, ops, f"management address of {cluster.name}"
            ),
        )
    return export


# --- XML ---------------------------------------------------------------------------------------
def _nvpairs(parent: ET.Element, tag: str, owner: str, values: Mapping[str, str]) -> None:
    if not values:
        return
    kind = tag.replace("_attributes", "")
    block = ET.SubElement(parent, tag, id=f"{owner}-{kind}")
    for name, value in values.items():
        ET.SubElement(block, "nvpair", id=f"{owner}-{kind}-{name}", name=name, value=value)


def _constraints(export: Export) -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for rid in export.with_address:
        out.append(
            (
                "rsc_colocation",
                f"{rid}-with-address",
                {"rsc": rid, "with-rsc": ADDRESS_ID, "score": "INFINITY"},
            )
        )
        out.append(
            (
                "rsc_order",
                f"{rid}-after-address",
                {"first": ADDRESS_ID, "then": rid, "kind": "Mandatory"},
            )
        )
    return out


def to_element(export: Export) -> ET.Element:
    """<configuration> with <resources> and <constraints>, to merge into a CIB."""
    root = ET.Element("configuration")
    resources = ET.SubElement(root, "resources")
    for p in export.primitives:
        if p.comment:
            resources.append(ET.Comment(f" {p.id}: {p.comment} "))
        standard, provider, kind = p.agent
        attrs = {"id": p.id, "class": standard, "provider": provider, "type": kind}
        prim = ET.SubElement(resources, "primitive", attrs)
        _nvpairs(prim, "instance_attributes", p.id, p.params)
        _nvpairs(prim, "meta_attributes", p.id, p.meta)
        ops = ET.SubElement(prim, "operations")
        for op in p.ops:
            ET.SubElement(
                ops,
                "op",
                id=f"{p.id}-{op.name}-{op.interval}s",
                name=op.name,
                interval=f"{op.interval}s",
                timeout=f"{op.timeout}s",
            )
    constraints = ET.SubElement(root, "constraints")
    for tag, cid, attrs in _constraints(export):
        ET.SubElement(constraints, tag, {"id": cid, **attrs})
    return root


def to_xml(export: Export) -> str:
    root = to_element(export)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


# --- crm shell --------------------------------------------------------------------------------
def _crm_value(value: str) -> str:
    if value and all(c.isalnum() or c in "._-/:@%+," for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_crm(export: Export) -> str:
    lines = []
    for p in export.primitives:
        if p.comment:
            lines.append(f"# {p.id}: {p.comment}")
        parts = [f"primitive {p.id} {':'.join(p.agent)}"]
        if p.params:
            parts.append("params " + " ".join(f"{k}={_crm_value(v)}" for k, v in p.params.items()))
        if p.meta:
            parts.append("meta " + " ".join(f"{k}={_crm_value(v)}" for k, v in p.meta.items()))
        for op in p.ops:
            parts.append(f"op {op.name} interval={op.interval}s timeout={op.timeout}s")
        lines.append(" \\\n\t".join(parts))
    for tag, cid, a in _constraints(export):
        if tag == "rsc_colocation":
            lines.append(f"colocation {cid} inf: {a['rsc']} {a['with-rsc']}")
        else:
            lines.append(f"order {cid} {a['kind']}: {a['first']} {a['then']}")
    return "\n".join(lines) + "\n"


# --- checking --------------------------------------------------------------------------------
EMPTY_CIB = """<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1"
     num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <!-- only the export is checked here: the cluster's fencing is not part of it -->
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"""


def merge(cib_text: str, export: Export) -> str:
    """The CIB with the export's resources and constraints in it: an element of the same id is
    replaced, others are added (what `cibadmin --modify --allow-create` does for new ones)."""
    cib = ET.fromstring(cib_text)
    configuration = cib.find("configuration")
    if configuration is None:
        raise ConfigError("the CIB has no <configuration>")
    for section in to_element(export):
        target = configuration.find(section.tag)
        if target is None:
            target = ET.SubElement(configuration, section.tag)
        for child in section:
            if not isinstance(child.tag, str):  # a comment
                continue
            old = target.find(f"*[@id='{child.get('id')}']")
            if old is not None:
                target.remove(old)
            target.append(child)
    return ET.tostring(cib, encoding="unicode")
