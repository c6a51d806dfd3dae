"""`process`: how many processes match a name or a command line (the original's psw).

    [[monitors]]
    name = "workers"
    kind = "process"
    process = "php-fpm8.2"     # the program's name (/proc/PID/comm: at most 15 characters)
    cmdline = "pool www"       # or/and: a regular expression searched in the command line
    user = "www-data"          # optional: only processes running as this user
    min = 2                    # default 1: fewer is an error
    max = 50                   # optional: more is an error

Zombies are not counted (they have ended). /proc is read in a thread (monitors.offload).
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass

from rearm.monitors import keys, procfs
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok, unknown
from rearm.monitors.offload import Offload, Stuck
from rearm.validate import Table

COMM_MAX = 15


@dataclass(frozen=True)
class ProcessOptions(Options):
    process: str | None = None
    cmdline: re.Pattern[str] | None = None
    user: str | None = None
    minimum: int = 1
    maximum: int | None = None

    def build(self, env: ProbeEnv) -> Probe:
        return ProcessProbe(self)

    def describe(self) -> str:
        what = [f"name {self.process}"] * bool(self.process)
        if self.cmdline is not None:
            what.append(f"cmdline /{self.cmdline.pattern}/")
        bounds = f"{self.minimum}..{'' if self.maximum is None else self.maximum}"
        return f"process {' '.join(what)} count {bounds}"


def parse(t: Table) -> ProcessOptions:
    options = ProcessOptions(
        process=keys.text(t, "process"),
        cmdline=keys.pattern(t, "cmdline"),
        user=keys.text(t, "user"),
        minimum=keys.count(t, "min", 1, 0, 1_000_000) or 0,
        maximum=keys.count(t, "max", None, 1, 1_000_000),
    )
    if options.process is None and options.cmdline is None:
        raise t.error("process", "give process (a program's name) or cmdline (a pattern)")
    if options.process is not None and len(options.process) > COMM_MAX:
        raise keys.bad(
            t,
            "process",
            options.process,
            f"a name is at most {COMM_MAX} characters (the "
            "kernel's comm); match a longer one with cmdline",
        )
    if options.maximum is not None and options.maximum < options.minimum:
        raise keys.bad(t, "max", options.maximum, f"must not be below min ({options.minimum})")
    return options


def matching(options: ProcessOptions, uid: int | None) -> list[int]:
    me = os.getpid()
    found = []
    for s in procfs.all_stats():
        if s.state in ("Z", "X") or s.pid == me:
            continue
        if options.process is not None and s.comm != options.process:
            continue
        if uid is not None and procfs.real_uid(s.pid) != uid:
            continue
        if options.cmdline is not None:
            line = procfs.cmdline(s.pid)
            if line is None or not options.cmdline.search(line):
                continue
        found.append(s.pid)
    return found


class ProcessProbe:
    def __init__(self, options: ProcessOptions) -> None:
        self.options = options
        self.step = "reading /proc"
        self._offload = Offload("process")

    async def probe(self, target: Target, deadline: float) -> Result:
        o = self.options
        uid = None
        if o.user is not None:
            try:
                uid = int(o.user) if o.user.isdigit() else pwd.getpwnam(o.user).pw_uid
            except KeyError:
                return unknown(f"no such user {o.user}")
        try:
            pids = await self._offload.run(lambda: matching(o, uid))
        except Stuck as e:
            return error(str(e))
        n = len(pids)
        shown = ", ".join(map(str, pids[:5])) + (" ..." if n > 5 else "")
        said = f"{n} process{'es' * (n != 1)}" + (f" ({shown})" if n else "")
        if n < o.minimum:
            return error(f"{said}: fewer than {o.minimum}")
        if o.maximum is not None and n > o.maximum:
            return error(f"{said}: more than {o.maximum}")
        return ok(said)

    async def close(self) -> None:
        return None
