"""One small adapter per supervisor: configure N watched probes, start, list its processes, stop.

Every adapter supervises the same program, bench/probe.c, once per tag, with the probes
reporting to one Unix datagram socket (`sock`). To add a supervisor: subclass Peer, write
`prepare` (configuration), `launch` (start supervising everything; the bench times from just
before it), `_stop` (its own clean stop) and, when the supervisor's main process is not the
one the bench started, `main_pid`; then add it to PEERS.

What an adapter counts as "the supervisor" (`pids`) is its main process and the helpers it
keeps (runsv, s6-supervise, rearm's keeper), never the watched programs. Everything runs in
the adapter's temporary directory, in a session of its own, with the restart counters and
final actions set so that nothing can ever reboot (rearm: drill mode and final action none).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from common import (
    STOP_GRACE,
    Helpers,
    RearmCluster,
    SetupError,
    descendants,
    ensure_supervisord,
    exited,
    kill_leftover_probes,
    kill_recorded,
    probes_of,
    process_table,
    run,
    same_process,
    spawn,
    stop_process,
    supervisor_tree,
    supervisord_conf,
    tail,
    wait_until,
)

# rearm's restart threshold: /R 9 within /H 1. The benchmarks kill each probe a few times
# at most, far below it, so no final action (none, in drill mode, anyway) ever fires.
REARM_RETRY = 9
# monit's shortest cycle: `set daemon` takes whole seconds, and 1 is the least it accepts.
MONIT_CYCLE = 1


@dataclass
class PeerSetup:
    tmp: Path  # the adapter's own temporary directory
    helpers: Helpers
    sock: Path  # where every probe reports its start
    tags: list[str]  # one watched probe per tag; also its name in the supervisor
    rearm_bin: Path | None = None
    reinstall: bool = False
    start_timeout: float = 30.0


@dataclass
class Peer:
    """Base adapter. Subclasses set `name`, `programs` and the hooks below."""

    setup: PeerSetup
    name: ClassVar[str] = ""
    # Executables it needs on PATH (bench/setup.sh installs them).
    programs: ClassVar[tuple[str, ...]] = ()
    # monit does not stop its services when it exits: the bench kills them (by identity).
    leaves_probes: ClassVar[bool] = False
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    # Every supervisor process seen (pid -> start time), to kill any that outlive the stop.
    seen: dict[int, int] = field(default_factory=dict)

    @classmethod
    def missing(cls) -> str | None:
        absent = [p for p in cls.programs if shutil.which(p) is None]
        return f"not installed: {', '.join(absent)} (run bench/setup.sh)" if absent else None

    @property
    def log_path(self) -> Path:
        return self.setup.tmp / f"{self.name}.log"

    def spawn(self, cmd: Sequence[str | Path], env: dict[str, str] | None) -> None:
        """Start the supervisor's top process, in a session of its own, output to its log."""
        with self.log_path.open("ab") as log:  # the child holds its own copy
            self.proc = spawn(cmd, log, env=env, cwd=self.setup.tmp)

    def probe_argv(self, tag: str) -> list[str]:
        return [str(self.setup.helpers.probe), str(self.setup.sock), tag]

    # --- hooks ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Write the configuration; nothing is supervised yet."""

    def launch(self) -> None:
        """Start supervising every tag. The start-up figure is timed from just before."""
        raise NotImplementedError

    def launched(self, timeout: float) -> float | None:
        """Seconds the start command took, for supervisors started by a command that returns
        (rearm group start); None for those that are simply running."""
        return None

    def main_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def _stop(self) -> None:
        """The supervisor's own clean stop (its services too); the base class then makes sure."""

    # --- common ---------------------------------------------------------------------------
    def alive(self) -> str | None:
        if self.proc is None:
            return f"{self.name} was not started"
        return exited(self.proc, self.name, self.log_path)()

    def pids(self) -> list[int]:
        """The supervisor's processes now: its main process and helpers, not the probes."""
        main = self.main_pid()
        if main is None:
            return []
        found, table = supervisor_tree(main, [self.setup.sock])
        self.seen.update({p: table[p].start for p in found})
        return found

    def stop(self) -> None:
        """Stop everything this adapter started; never raises (it runs during teardown)."""
        try:
            self._stop()
        except (SetupError, subprocess.TimeoutExpired, OSError) as exc:
            self.notes.append(f"stop: {exc}")
        if self.proc is not None:
            stop_process(self.proc, self.name, self.notes, self.stop_grace)
        leftovers = kill_recorded(self.seen)
        if leftovers:
            self.notes.append(f"supervisor processes left after the stop, killed: {leftovers}")
        probes = kill_leftover_probes([self.setup.sock])
        if probes and not self.leaves_probes:
            self.notes.append(f"probes still running after the stop, killed: {len(probes)}")

    @property
    def stop_grace(self) -> float:
        """How long the clean stop may take: some stop their services one at a time."""
        return STOP_GRACE + 0.01 * len(self.setup.tags)

    def _probes_gone(self) -> bool:
        return not probes_of([self.setup.sock])

    def version(self) -> str:
        return ""


# ------------------------------------------------------------------------------- rearm


@dataclass
class RearmGroup(Peer):
    """rearm: one group with every watch, brought online by `rearm group start bench`.

    `declarative`: the watches as a [[watches]] list in group.toml (no start script);
    otherwise a start.sh of one `armload` line per watch, as an administrator writes it.
    """

    name: ClassVar[str] = "rearm"
    declarative: bool = True
    cluster: RearmCluster | None = None
    command: subprocess.Popen[bytes] | None = None
    # CLOCK_MONOTONIC ns when `rearm group start` was run and when it returned, its status.
    command_started: int = 0
    command_done: tuple[int, int] | None = None
    _waiter: threading.Thread | None = None

    @classmethod
    def missing(cls) -> str | None:
        return None  # rearm's commands are checked by rearm_bindir

    @property
    def log_path(self) -> Path:
        return self.setup.tmp / "daemon.log"  # RearmCluster's

    def prepare(self) -> None:
        assert self.setup.rearm_bin is not None
        cluster = RearmCluster(self.setup.rearm_bin, self.setup.tmp, self.notes)
        self.cluster = cluster
        self.info.update(cluster.info)
        cluster.create()
        cluster.ok("rearm", "group", "create", "bench", "--no-auto-start")
        folder = cluster.home / "etc" / "groups" / "bench"
        if self.declarative:
            (folder / "start.sh").unlink()
            (folder / "group.toml").write_text(self._group_toml())
        else:
            (folder / "start.sh").write_text(self._start_sh())
            # A long start script must not be cut by the 300 s default: the bench's own
            # deadline decides when it has waited long enough.
            toml = folder / "group.toml"
            text, count = re.subn(
                r"(?m)^script_timeout\s*=.*$", "script_timeout = 86400", toml.read_text()
            )
            toml.write_text(text if count else text + "\nscript_timeout = 86400\n")
        cluster.start_daemon(self.setup.start_timeout)
        self.proc = cluster.daemon
        self.info.update(cluster.info)

    def _group_toml(self) -> str:
        lines = ["auto_start = false", "script_timeout = 86400", ""]
        for tag in self.setup.tags:
            argv = ", ".join(f'"{a}"' for a in self.probe_argv(tag))
            lines += [
                "[[watches]]",
                f'id = "{tag}"',
                f"command = [{argv}]",
                f"retry = {REARM_RETRY}",
                "hours = 1",
                "interval = 0",
                "",
            ]
        return "\n".join(lines)

    def _start_sh(self) -> str:
        # `armload` by name: the daemon puts its own commands first on the script's PATH.
        lines = [
            f"armload {tag} /R {REARM_RETRY} /H 1 /INT 0 {shlex.join(self.probe_argv(tag))}"
            for tag in self.setup.tags
        ]
        body = "\n".join(lines)
        return f'#!/bin/sh\ncase "$REARM_EVENT" in\nSTART)\n{body}\n;;\nesac\nexit 0\n'

    def launch(self) -> None:
        assert self.cluster is not None
        out = (self.setup.tmp / "group-start.out").open("wb")
        self.command_started = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        command = spawn(
            self.cluster.cmd("rearm", "group", "start", "bench"),
            out,
            env=self.cluster.env,
            cwd=self.setup.tmp,
        )
        out.close()
        self.command = command

        def await_exit() -> None:
            # The instant it returns, while the bench is busy receiving the probes' starts.
            code = command.wait()
            self.command_done = (time.clock_gettime_ns(time.CLOCK_MONOTONIC), code)

        self._waiter = threading.Thread(target=await_exit, daemon=True)
        self._waiter.start()

    def launched(self, timeout: float) -> float | None:
        assert self._waiter is not None
        self._waiter.join(timeout)
        if self.command_done is None:
            raise SetupError(f"rearm group start still running after {timeout:g} s")
        done, code = self.command_done
        if code != 0:
            out = tail(self.setup.tmp / "group-start.out")
            raise SetupError(f"rearm group start: exit {code}: {out}\n{tail(self.log_path)}")
        return (done - self.command_started) / 1e9

    def alive(self) -> str | None:
        if self.cluster is None:
            return "rearm was not started"
        if self.command_done is not None and self.command_done[1] != 0:
            out = tail(self.setup.tmp / "group-start.out")
            return f"rearm group start: exit {self.command_done[1]}: {out}"
        return self.cluster.alive()

    def pids(self) -> list[int]:
        if self.cluster is None:
            return []
        found, table = self.cluster.pids([self.setup.sock])
        self.seen.update({p: table[p].start for p in found})
        return found

    def _stop(self) -> None:
        if self.command is not None and self.command.poll() is None:
            stop_process(self.command, "rearm group start", self.notes)
        if self.cluster is not None:
            # Generous: ending 1,000 watches one by one takes a while; the figure is not timed.
            self.cluster.shutdown(timeout=300)

    def version(self) -> str:
        if self.cluster is None:
            return ""
        try:
            return str(self.cluster.status().get("daemon", {}).get("version", ""))
        except SetupError:
            return ""


# ------------------------------------------------------------------------------- supervisord


@dataclass
class Supervisord(Peer):
    name: ClassVar[str] = "supervisord"
    exe: Path | None = None

    @classmethod
    def missing(cls) -> str | None:
        return None  # installed into its own venv on first use

    def prepare(self) -> None:
        self.exe = ensure_supervisord(self.setup.reinstall)
        programs = {tag: self.probe_argv(tag) for tag in self.setup.tags}
        self.conf = self.setup.tmp / "supervisord.conf"
        self.conf.write_text(supervisord_conf(self.setup.tmp, programs))

    def launch(self) -> None:
        assert self.exe is not None
        cmd: list[str | Path] = [self.exe, "--nodaemon", "--configuration", self.conf]
        self.spawn(cmd, None)

    # SIGTERM (the base class's stop_process) makes supervisord stop its programs and exit.

    def version(self) -> str:
        assert self.exe is not None
        return run([self.exe, "--version"]).stdout.strip()


# ------------------------------------------------------------------------------- runit, s6


def service_dirs(root: Path, tags: list[str], probe: Path, notify_fd: int | None = None) -> None:
    """One service directory per tag, `run` a symbolic link to the probe (no shell between:
    the probe takes its socket from $PROBE_SOCKET and its tag from the directory's name).
    With notify_fd, s6's readiness notification on that descriptor (notification-fd)."""
    root.mkdir()
    for tag in tags:
        (root / tag).mkdir()
        (root / tag / "run").symlink_to(probe)
        if notify_fd is not None:
            (root / tag / "notification-fd").write_text(f"{notify_fd}\n")


@dataclass
class Runit(Peer):
    """runsvdir on a service directory of its own; one runsv per service."""

    name: ClassVar[str] = "runit"
    programs: ClassVar[tuple[str, ...]] = ("runsvdir", "runsv")

    def prepare(self) -> None:
        self.svdir = self.setup.tmp / "service"
        service_dirs(self.svdir, self.setup.tags, self.setup.helpers.probe)

    def launch(self) -> None:
        env = {**os.environ, "PROBE_SOCKET": str(self.setup.sock)}
        # -P: each runsv in a session of its own, as Debian's runit service runs it.
        cmd = ["runsvdir", "-P", str(self.svdir)]
        self.spawn(cmd, env)

    def _stop(self) -> None:
        """Services down ("d" to each runsv), then SIGHUP: runsvdir TERMs every runsv, which
        exits since its service is down, and exits itself. (A runsv told to exit while
        runsvdir runs is simply started again by runsvdir.)"""
        for tag in self.setup.tags:
            control = self.svdir / tag / "supervise" / "control"
            with suppress(OSError):  # no runsv (ENXIO) or no fifo yet: nothing to stop
                fd = os.open(control, os.O_WRONLY | os.O_NONBLOCK)
                try:
                    os.write(fd, b"d")
                finally:
                    os.close(fd)
        with suppress(SetupError):
            wait_until("runit's services to go down", self._probes_gone, self.stop_grace)
        main = self.main_pid()
        if main is None or self.proc is None:
            return
        table = process_table()
        runsv = [p for p in descendants(main, table) if table[p].comm == "runsv"]
        self.seen.update({p: table[p].start for p in runsv})
        self.proc.send_signal(signal.SIGHUP)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(self.stop_grace)
        with suppress(SetupError):
            wait_until(
                "every runsv to exit",
                lambda: not any(same_process(p, self.seen[p]) for p in runsv),
                self.stop_grace,
            )

    def version(self) -> str:
        return _dpkg_version("runit")


# s6-supervise restarts at once only a service that was *ready* for a second; without
# readiness notification it always pauses 1 s first. The probe notifies readiness on this
# descriptor, as an s6-aware daemon does, so s6 is measured at its best.
S6_NOTIFY_FD = 3


@dataclass
class S6(Peer):
    """s6-svscan on a scan directory of its own; one s6-supervise per service."""

    name: ClassVar[str] = "s6"
    programs: ClassVar[tuple[str, ...]] = ("s6-svscan", "s6-supervise")

    def prepare(self) -> None:
        self.scandir = self.setup.tmp / "scan"
        service_dirs(self.scandir, self.setup.tags, self.setup.helpers.probe, S6_NOTIFY_FD)

    def launch(self) -> None:
        env = {
            **os.environ,
            "PROBE_SOCKET": str(self.setup.sock),
            "PROBE_NOTIFY_FD": str(S6_NOTIFY_FD),
        }
        # -c: room for every service (its default is sized for a few hundred).
        cap = max(1000, 2 * len(self.setup.tags) + 10)
        cmd = ["s6-svscan", "-c", str(cap), str(self.scandir)]
        self.spawn(cmd, env)

    # SIGTERM makes s6-svscan bring every service down, wait for its s6-supervise processes
    # and exit: the base class's stop_process.

    def version(self) -> str:
        return _dpkg_version("s6")


# ------------------------------------------------------------------------------- monit


@dataclass
class Monit(Peer):
    """monit in the foreground with a control file of its own: no mail, no httpd.

    monit watches pid files and starts services as daemons (the probe forks and writes its
    pid file). A daemon's parent is then the nearest child subreaper: monit runs under
    bench/reaper.c, which reaps at once, as init does; the reaper is not counted as monit.
    """

    name: ClassVar[str] = "monit"
    programs: ClassVar[tuple[str, ...]] = ("monit",)
    leaves_probes: ClassVar[bool] = True

    def prepare(self) -> None:
        tmp = self.setup.tmp
        self.rc = tmp / "monitrc"
        (tmp / "pids").mkdir()
        lines = [
            f"set daemon {MONIT_CYCLE}",
            f"set log {tmp / 'monit.log'}",
            f"set pidfile {tmp / 'monit.pid'}",
            f"set idfile {tmp / 'monit.id'}",
            f"set statefile {tmp / 'monit.state'}",
            "",
        ]
        for tag in self.setup.tags:
            pidfile = tmp / "pids" / f"{tag}.pid"
            start = shlex.join([*self.probe_argv(tag), str(pidfile)])
            lines += [
                f"check process {tag} with pidfile {pidfile}",
                f'  start program = "{start}"',
                "",
            ]
        self.rc.write_text("\n".join(lines))
        self.rc.chmod(stat.S_IRUSR | stat.S_IWUSR)  # monit refuses a control file others read
        check = run(["monit", "-t", "-c", self.rc])
        if check.returncode != 0:
            raise SetupError(f"monit -t: {check.stdout.strip()} {check.stderr.strip()}")

    def launch(self) -> None:
        cmd: list[str | Path] = [self.setup.helpers.reaper, "monit", "-I", "-c", self.rc]
        self.spawn(cmd, None)

    def main_pid(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        table = process_table()
        monit = [p for p in descendants(self.proc.pid, table) if table[p].comm == "monit"]
        return monit[0] if monit else None

    def version(self) -> str:
        return run(["monit", "-V"]).stdout.splitlines()[0].strip()


def _dpkg_version(package: str) -> str:
    out = run(["dpkg-query", "-W", "-f=${Version}", package])
    return f"{package} {out.stdout.strip()}" if out.returncode == 0 else package


PEERS: dict[str, type[Peer]] = {
    "rearm": RearmGroup,
    "supervisord": Supervisord,
    "runit": Runit,
    "s6": S6,
    "monit": Monit,
}
