"""The `[[alerts]]` tables of cluster.toml -> one `SinkConfig` each, validated as a whole.

Keys every sink has (the type's own keys are listed in its module):
    type = "snmp" | "mail" | "webhook" | "syslog"   required
    name = "ops-pager"                the name `rearm alert test NAME` and /metrics use;
                                      default: the type, then type-2, type-3 ...
    enabled = true
    kinds = ["fault", "final_action", "group_*"]   event kinds or patterns; "*" is every kind;
                                      default: the important ones (model.DEFAULT_KINDS)
    min_severity = "info"             info, warning, error or critical
    timeout = 5                       seconds for one delivery attempt (1-60)
    retries = 3                       further attempts after a failed one (0-10)
    backoff = 1                       seconds before the first retry, doubling each time (0-60)
    queue_size = 1000                 alerts waiting for this sink; beyond, the least severe
                                      oldest one is dropped and counted (10-100000)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rearm.alerts import fields, mail, snmp, syslog, webhook
from rearm.alerts.model import DEFAULT_KINDS, KNOWN_KINDS, SEVERITIES, EventFilter, Sink
from rearm.config import read_toml
from rearm.paths import Home
from rearm.validate import NAME_RE, NAME_RULE, ConfigError, Table

KIND_PATTERN_RE = re.compile(r"^[a-z0-9_*?]{1,64}$")


class Settings(Protocol):
    def describe(self) -> str: ...

    def create(self, timeout: float) -> Sink: ...


# Adding a sink type is one module with a `parse` and a settings class, and one line here.
TYPES: dict[str, Callable[[Table, str, str], Settings]] = {
    "snmp": snmp.parse,
    "mail": mail.parse,
    "webhook": webhook.parse,
    "syslog": syslog.parse,
}


@dataclass(frozen=True)
class SinkConfig:
    name: str
    type: str
    settings: Settings
    filter: EventFilter = field(default_factory=EventFilter)
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 1.0
    queue_size: int = 1000

    def create(self) -> Sink:
        return self.settings.create(self.timeout)

    def describe(self) -> str:
        return self.settings.describe()


def load_sinks(home: Home) -> list[SinkConfig]:
    """The enabled sinks of etc/cluster.toml; ConfigError names file, key and rule."""
    path = home.cluster_file
    shown = os.path.relpath(path, home.root) if home.root else path
    try:
        data = read_toml(home, path)
    except FileNotFoundError:
        raise ConfigError(
            f"no cluster configured ({shown} is missing): "
            "run 'rearm cluster create --name NAME --ip ADDR' first"
        ) from None
    return sinks_from_table(Table(data, shown), home.etc)


def sinks_from_table(cluster: Table, base_dir: str) -> list[SinkConfig]:
    """The sinks of a parsed cluster.toml. `base_dir` anchors relative *_file and ca_file paths."""
    server = cluster.raw("server")
    server = server if isinstance(server, str) and server else "localhost"
    sinks: list[SinkConfig] = []
    names: set[str] = set()
    for t in cluster.tables("alerts"):
        sink, enabled = _sink(t, base_dir, server, names)
        names.add(sink.name)
        if enabled:
            sinks.append(sink)
    return sinks


def _sink(t: Table, base_dir: str, server: str, taken: set[str]) -> tuple[SinkConfig, bool]:
    kind = fields.one_of(t, "type", tuple(TYPES), "")
    if not kind:
        raise t.error("type", "is required: " + ", ".join(f'"{k}"' for k in TYPES))
    name = t.str_("name")
    if name is None:
        name = kind
        n = 2
        while name in taken:
            name, n = f"{kind}-{n}", n + 1
    elif not NAME_RE.fullmatch(name):
        raise t.error("name", f"use {NAME_RULE}")
    elif name in taken:
        raise t.error("name", f"'{name}' is already the name of another alert sink")
    enabled = t.bool_("enabled", True)
    sink = SinkConfig(
        name=name,
        type=kind,
        settings=TYPES[kind](t, base_dir, server),
        filter=EventFilter(
            kinds=_kinds(t), min_severity=fields.one_of(t, "min_severity", SEVERITIES, "info")
        ),
        timeout=fields.seconds(t, "timeout", 5.0, 1, 60),
        retries=t.int_("retries", 3, 0, 10),
        backoff=fields.seconds(t, "backoff", 1.0, 0, 60),
        queue_size=t.int_("queue_size", 1000, 10, 100_000),
    )
    t.finish()
    return sink, enabled


def _kinds(t: Table) -> tuple[str, ...]:
    if not t.has("kinds"):
        t.raw("kinds")
        return DEFAULT_KINDS
    kinds = fields.text_list(t, "kinds")
    from fnmatch import fnmatchcase

    for pattern in kinds:
        if not KIND_PATTERN_RE.fullmatch(pattern) or not any(
            fnmatchcase(k, pattern) for k in KNOWN_KINDS
        ):
            raise t.error(
                "kinds",
                f"'{pattern}' is no event kind; use \"*\" or kinds (or patterns of them) from: "
                + ", ".join(sorted(KNOWN_KINDS)),
            )
    return kinds
