"""`[[monitors]]` tables of group.toml and service definitions -> MonitorSpec. Pure.

    [[monitors]]
    name = "db"                 # unique in its file; 1-64 of A-Z a-z 0-9 _ . -
    kind = "postgresql"         # one of registry.KINDS
    target = "POSTGRES"         # group.toml: a watch of the group (default: the group itself);
                                # a service definition: always the watch running the service
    interval = 10               # seconds between probes (default 10)
    timeout = 5                 # seconds a probe may take (default: 5, at most the interval)
    start_delay = 30            # seconds after the target (re)starts before the first probe
    failures = 3                # consecutive failed probes that make an error (the fault)
    slow = 1.5                  # optional: an answer slower than this is a warning
    timing = "active"           # "active": only while the target runs; "always"
    recovery = "restart"        # "restart", "script", "final" or "alert"
    script = ["/etc/rearm/fix-db.sh"]   # recovery = "script": run first, then the restart
    ...                         # the kind's own keys (see each rearm/monitors/KIND.py)

Every refusal is one line naming the file, the key, the value and the rule; a file with one bad
monitor is refused whole, so nothing starts half-configured.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from rearm.monitors import keys
from rearm.monitors.base import Options
from rearm.monitors.registry import KINDS, parser
from rearm.requests import WATCH_ID_MAX
from rearm.validate import NAME_RE, NAME_RULE, ConfigError, Table

WATCH_ID_RE = re.compile(rf"^[A-Za-z0-9_]{{1,{WATCH_ID_MAX}}}$")
INTERVAL_MIN = 0.1
DEFAULT_TIMEOUT = 5.0
SCRIPT_TIMEOUT = 60.0


class Timing(enum.StrEnum):
    ACTIVE = "active"  # probe only while the target runs (the group is online)
    ALWAYS = "always"  # probe whenever the daemon runs (and the monitor is not suspended)


class Recovery(enum.StrEnum):
    RESTART = "restart"  # restart the target under its own /R /H /INT; over /R the final action
    SCRIPT = "script"  # run the monitor's script first, then as restart
    FINAL = "final"  # straight to the final action
    ALERT = "alert"  # events and alerts only


@dataclass(frozen=True)
class MonitorSpec:
    name: str
    kind: str
    options: Options
    interval: float
    timeout: float  # continuous kinds: equal to interval (a probe lasts one interval)
    start_delay: float
    failures: int
    slow: float | None
    timing: Timing
    target: str | None  # a watch ID; None: the owner (the group, or the service's watch)
    recovery: Recovery
    script: tuple[str, ...] | None
    script_timeout: float
    where: str  # the file it came from, for messages

    def describe(self) -> str:
        return self.options.describe()


def monitors_from(parent: Table, *, in_service: bool) -> tuple[MonitorSpec, ...]:
    """The `[[monitors]]` of a group.toml (in_service=False) or a service definition."""
    specs = tuple(monitor_from(t, in_service=in_service) for t in parent.tables("monitors"))
    seen: dict[str, int] = {}
    for index, spec in enumerate(specs):
        key = spec.name.lower()
        if key in seen:
            raise ConfigError(
                f"{spec.where}: key 'monitors[{index}].name': got {keys.shown(spec.name)}; "
                f"the name is taken by monitors[{seen[key]}] (names are unique in a file, "
                "case-insensitive)"
            )
        seen[key] = index
    return specs


def monitor_from(t: Table, *, in_service: bool) -> MonitorSpec:
    name = keys.text(t, "name", required=True)
    assert name is not None
    if not NAME_RE.fullmatch(name):
        raise keys.bad(t, "name", name, f"use {NAME_RULE}")
    kind = t.raw("kind")
    if kind is None:
        raise t.error("kind", "is required: one of " + ", ".join(sorted(KINDS)))
    if not isinstance(kind, str) or kind.lower() not in KINDS:
        raise keys.bad(t, "kind", kind, "must be one of " + ", ".join(sorted(KINDS)))
    kind = kind.lower()
    options = parser(kind)(t)

    interval = keys.seconds(t, "interval", options.default_interval, low=INTERVAL_MIN, high=86400)
    assert interval is not None
    bound = options.max_interval
    if bound is not None and interval > bound[0]:
        raise keys.bad(
            t,
            "interval",
            t.raw("interval"),
            f"must not exceed {bound[1]} ({bound[0]:g}): checking "
            f"less often than the {bound[1]} lets a miss go unseen",
        )
    if options.continuous:
        if t.has("timeout"):
            raise keys.bad(
                t,
                "timeout",
                t.raw("timeout"),
                f"{kind} with async = true has no timeout: its "
                "checker runs until it ends, and its end is the failure",
            )
        keys.seconds(t, "timeout", None)  # consumed
        timeout = interval
    else:
        given = keys.seconds(t, "timeout", None, low=0, high=86400, above=True)
        timeout = min(DEFAULT_TIMEOUT, interval) if given is None else given
        if timeout > interval:
            raise keys.bad(
                t,
                "timeout",
                t.raw("timeout"),
                f"must not exceed interval ({interval:g}): a probe still "
                "running when the next is due would overlap it",
            )
    slow = keys.seconds(t, "slow", None, low=0, high=86400, above=True)
    if slow is not None and (options.continuous or slow >= timeout):
        rule = (
            "has no meaning for a checker that runs for good"
            if options.continuous
            else f"must be below timeout ({timeout:g}): slower answers time out"
        )
        raise keys.bad(t, "slow", t.raw("slow"), rule)

    target = keys.text(t, "target")
    if target is not None:
        if in_service:
            raise keys.bad(
                t,
                "target",
                target,
                "a service definition's monitors watch the watch that "
                "runs the service: leave target out",
            )
        if not WATCH_ID_RE.fullmatch(target):
            raise keys.bad(
                t,
                "target",
                target,
                f"must be a watch ID (1-{WATCH_ID_MAX} of "
                "A-Z a-z 0-9 _); leave it out to watch over the group",
            )
    elif options.needs_pid and not in_service:
        raise t.error("target", f"is required: a {kind} monitor looks at a watch's processes")

    recovery = Recovery(keys.choice(t, "recovery", tuple(r.value for r in Recovery), "restart"))
    script = keys.argv(t, "script") if t.has("script") else None
    if recovery is Recovery.SCRIPT and script is None:
        raise t.error("script", 'is required with recovery = "script": the command to run first')
    if script is not None and recovery is not Recovery.SCRIPT:
        raise t.error("script", f'is run only with recovery = "script" (recovery is "{recovery}")')
    script_timeout = keys.seconds(t, "script_timeout", SCRIPT_TIMEOUT, low=0, high=3600, above=True)
    assert script_timeout is not None

    start_delay = keys.seconds(t, "start_delay", 0.0, low=0, high=86400)
    failures = keys.count(t, "failures", options.default_failures, 1, 100)
    assert start_delay is not None and failures is not None
    spec = MonitorSpec(
        name=name,
        kind=kind,
        options=options,
        interval=interval,
        timeout=timeout,
        start_delay=start_delay,
        failures=failures,
        slow=slow,
        timing=Timing(keys.choice(t, "timing", tuple(m.value for m in Timing), "active")),
        target=target,
        recovery=recovery,
        script=script,
        script_timeout=script_timeout,
        where=t.where,
    )
    t.finish()
    return spec


def check_targets(specs: Iterable[MonitorSpec], watch_ids: Iterable[str]) -> None:
    """Each monitor's target must be one of the group's watches (declared in [[watches]] or
    started by an armload line of start.sh)."""
    known = {w.upper() for w in watch_ids}
    for index, spec in enumerate(specs):
        if spec.target is not None and spec.target.upper() not in known:
            shown = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"{spec.where}: key 'monitors[{index}].target': got {keys.shown(spec.target)}; "
                f"no such watch in this group (its watches: {shown})"
            )
