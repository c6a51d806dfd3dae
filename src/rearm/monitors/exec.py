"""`exec`: run a command; its exit status is the result.

    [[monitors]]
    name = "web-http"
    kind = "exec"
    command = ["/usr/lib/nagios/plugins/check_http", "-H", "127.0.0.1", "-p", "8080"]
    exit_codes = "nagios"   # 0 OK, 1 WARNING, 2 CRITICAL (error), 3 UNKNOWN; "plain": 0 or error

Every plugin of Debian's monitoring-plugins package works unchanged: the first line of its
output (before the `|` of performance data) is the message. The command runs in a session of
its own with stdin /dev/null; at the timeout its whole process group is killed (SIGKILL).

`async = true` is the long-running form: the command is a checker that runs for good (a log
watcher, `inotifywait`, a vendor's agent); it is started when monitoring starts, and its exit,
whatever the status, is the failure. It is started again one interval later.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from rearm.monitors import keys
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Status, Target, ok
from rearm.monitors.base import error as error_result
from rearm.monitors.child import ProbeProcess, explain_spawn_error, probe_env
from rearm.validate import Table

EXIT_CODES = ("nagios", "plain")


@dataclass(frozen=True)
class ExecOptions(Options):
    command: tuple[str, ...]
    exit_codes: str = "nagios"
    long_running: bool = False
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def continuous(self) -> bool:
        return self.long_running

    @property
    def spawns(self) -> bool:
        return True

    @property
    def default_failures(self) -> int:
        return 1 if self.long_running else 3

    def build(self, env: ProbeEnv) -> Probe:
        return AsyncCommand(self) if self.long_running else Command(self)

    def describe(self) -> str:
        return ("exec async " if self.long_running else "exec ") + " ".join(self.command)


def parse(t: Table) -> ExecOptions:
    return ExecOptions(
        command=keys.argv(t, "command"),
        exit_codes=keys.choice(t, "exit_codes", EXIT_CODES, "nagios"),
        long_running=t.bool_("async", False),
        environment=t.str_map("environment"),
    )


def _env(options: ExecOptions, target: Target) -> dict[str, str]:
    extra = dict(options.environment)
    extra["REARM_TARGET"] = target.name
    if target.pid is not None:
        extra["REARM_TARGET_PID"] = str(target.pid)
    return probe_env(extra)


def _summary(output: str) -> str:
    """A plugin's first line without its performance data."""
    first = output.strip().splitlines()[0] if output.strip() else ""
    return first.split("|", 1)[0].strip()


class Command:
    def __init__(self, options: ExecOptions) -> None:
        self.options = options
        self.step = ""

    async def probe(self, target: Target, deadline: float) -> Result:
        program = self.options.command[0]
        self.step = f"waiting for {program}"
        try:
            child = await ProbeProcess.start(self.options.command, _env(self.options, target))
        except OSError as e:
            return Result(Status.UNKNOWN, explain_spawn_error(program, e))
        try:
            await child.wait()
        finally:
            if not child.ended:
                child.kill()  # cancelled at the deadline: the whole group goes
        return self._verdict(child)

    def _verdict(self, child: ProbeProcess) -> Result:
        code = child.exit_code
        said = _summary(child.output())
        how = child.describe_exit()
        if code is None:
            return error_result(f"{how}" + (f": {said}" if said else ""))
        if self.options.exit_codes == "nagios":
            status = Status.from_nagios(code)
            if status is None:
                return Result(Status.UNKNOWN, f"{how} (not a Nagios status 0-3): {said}")
        else:
            status = Status.OK if code == 0 else Status.ERROR
        return Result(status, said or how)

    async def close(self) -> None:
        return None


class AsyncCommand:
    """The checker runs across probes; a probe returns at the deadline while it runs."""

    def __init__(self, options: ExecOptions) -> None:
        self.options = options
        self.step = ""
        self._child: ProbeProcess | None = None

    async def probe(self, target: Target, deadline: float) -> Result:
        program = self.options.command[0]
        if self._child is None:
            try:
                self._child = await ProbeProcess.start(
                    self.options.command, _env(self.options, target)
                )
            except OSError as e:
                return Result(Status.UNKNOWN, explain_spawn_error(program, e))
        child = self._child
        self.step = f"{program} running"
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(child.wait(), max(0.0, deadline - loop.time() - 0.01))
        except TimeoutError:
            return ok(f"{program} running (pid {child.pid})")
        self._child = None
        said = _summary(child.output())
        return error_result(
            f"{program} ended ({child.describe_exit()})" + (f": {said}" if said else "")
        )

    async def close(self) -> None:
        if self._child is not None and not self._child.ended:
            self._child.kill()
        self._child = None
