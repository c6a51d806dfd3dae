"""Every monitor kind, by the name a `[[monitors]]` table gives in `kind`.

Adding a kind: one module beside this one (parse + Options + the probe), one line here. A
kind's module is imported when a configuration names it, so reading a group.toml without
monitors (as the CLI does for `rearm group show`) loads neither asyncio nor ssl.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from rearm.monitors.base import Options
from rearm.validate import Table

KINDS: dict[str, str] = {
    "exec": "rearm.monitors.exec",
    "tcp": "rearm.monitors.tcp",
    "http": "rearm.monitors.http",
    "postgresql": "rearm.monitors.postgresql",
    "mysql": "rearm.monitors.mysql",
    "redis": "rearm.monitors.redis",
    "smtp": "rearm.monitors.smtp",
    "imap": "rearm.monitors.imap",
    "process": "rearm.monitors.process",
    "resource": "rearm.monitors.resource",
    "system": "rearm.monitors.system",
    "disk": "rearm.monitors.disk",
    "link": "rearm.monitors.link",
    "heartbeat": "rearm.monitors.heartbeat",
}


def parser(kind: str) -> Callable[[Table], Options]:
    """The kind's `parse(table) -> Options`."""
    parse: Callable[[Table], Options] = importlib.import_module(KINDS[kind]).parse
    return parse
