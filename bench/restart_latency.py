#!/usr/bin/env python3
"""Restart latency after SIGKILL (/INT 0): a C floor, supervisord and rearm, in one run.

Every supervisor watches the same probe (bench/probe.c). On start the probe sends
"<CLOCK_MONOTONIC ns> <pid>" to a Unix datagram socket the bench has bound. A trial is:
t0 = clock_gettime(CLOCK_MONOTONIC), SIGKILL the probe, wait for the next datagram (t1);
latency = t1 - t0. Both stamps use the same system-wide clock, so the bench's own wakeup
delay after the datagram arrives is not part of the figure.

See bench/README.md for how to run it and how to read the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
PROJECT_DIR = BENCH_DIR.parent
SUPERVISORS = ("floor", "supervisord", "rearm")

# rearm allows at most /R restarts per /H hours per watch, then fires the final action.
# Each watch is killed at most KILLS_PER_WATCH times, one below the threshold, so a
# single stray fault still cannot reach the final action.
REARM_RETRY = 9
KILLS_PER_WATCH = REARM_RETRY - 1

# A start without a datagram within this long is a failure, not a slow sample.
DEFAULT_START_TIMEOUT = 30.0
# How long a supervisor gets to stop after SIGTERM before its process group is SIGKILLed.
STOP_GRACE = 10.0
# Bound on every helper command (pip excepted), so a hung CLI cannot hang the bench.
COMMAND_TIMEOUT = 60.0

Alive = Callable[[], str | None]


class SetupError(Exception):
    """A supervisor could not be installed, configured or started."""


class RestartFailure(Exception):
    """A supervisor did not restart the probe (or died) during the measurement."""


@dataclass
class Result:
    name: str
    samples_ns: list[int] = field(default_factory=list)
    error: str | None = None
    # True when the failure is "the supervisor did not restart the probe" (exit 1),
    # False when the supervisor could not even be set up (exit 2).
    restart_failed: bool = False
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    args: argparse.Namespace
    probe: Path
    floor: Path | None
    rng: random.Random


@dataclass
class Subject:
    """One supervisor, running, with its probes started and its trial plan."""

    targets: list[ProbeSocket]
    # plan[n] is the index in targets of the probe killed in trial n+1.
    plan: list[int]
    alive: Alive


# --------------------------------------------------------------------------- helpers


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def run(
    cmd: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = COMMAND_TIMEOUT,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_checked(
    what: str,
    cmd: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = COMMAND_TIMEOUT,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    try:
        proc = run(cmd, env=env, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        shown = shlex.join(map(str, cmd))
        raise SetupError(f"{what}: timed out after {timeout} s: {shown}") from exc
    except OSError as exc:
        raise SetupError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        out = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-10:]
        raise SetupError(
            f"{what}: exit {proc.returncode}: {shlex.join(map(str, cmd))}\n  " + "\n  ".join(out)
        )
    return proc


def compile_c(cc: str, source: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename, so a concurrent or interrupted run never
    # executes a half-written binary.
    tmp = output.with_name(output.name + ".tmp")
    run_checked(f"compile {source.name}", [cc, "-O2", "-Wall", "-Wextra", "-o", tmp, source])
    tmp.replace(output)


def proc_argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def is_probe(pid: int, sock_path: Path) -> bool:
    """True if pid is a live probe reporting to sock_path (our unique temp path).

    Checked before every kill so a recycled PID can never make us signal a stranger.
    """
    argv = proc_argv(pid)
    return len(argv) >= 2 and argv[1] == os.fsencode(sock_path)


def kill_leftover_probes(sock_paths: Sequence[Path]) -> list[int]:
    """SIGKILL probes still reporting to our sockets once their supervisor is gone.

    Matching on argv[1] == one of this run's temporary socket paths selects only
    processes this run started (through a supervisor), never anything else.
    """
    wanted = {os.fsencode(p) for p in sock_paths}
    killed: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = proc_argv(pid)
        if len(argv) >= 2 and argv[1] in wanted:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def stop_process(proc: subprocess.Popen[bytes], name: str, result: Result) -> None:
    """SIGTERM by PID; after STOP_GRACE, SIGKILL its process group (its own session)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE)
        return
    except subprocess.TimeoutExpired:
        pass
    result.notes.append(
        f"{name} (pid {proc.pid}) did not exit within {STOP_GRACE} s of SIGTERM: "
        "SIGKILLed its process group"
    )
    # start_new_session=True made proc.pid its group id; the leader is not reaped yet,
    # so the id cannot have been reused.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)


def exited(proc: subprocess.Popen[bytes], name: str, log: Path) -> Alive:
    def check() -> str | None:
        code = proc.poll()
        if code is None:
            return None
        return f"{name} exited with status {code}; last log lines:\n{tail(log)}"

    return check


# --------------------------------------------------------------------------- probe link


class ProbeSocket:
    """The bench's end of one probe's datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.pid: int | None = None
        self.kills = 0

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)

    @staticmethod
    def _parse(data: bytes) -> tuple[int, int]:
        ns, pid = data.split()
        return int(ns), int(pid)

    def receive(self, timeout: float, alive: Alive) -> tuple[int, int] | None:
        """Next (t_ns, pid), or None when timeout passes; checks the supervisor meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # Short slices so a supervisor that died is reported at once, not at timeout.
            self.sock.settimeout(min(remaining, 0.2))
            try:
                return self._parse(self.sock.recv(256))
            except TimeoutError:
                problem = alive()
                if problem:
                    raise RestartFailure(problem) from None

    def drain(self) -> list[tuple[int, int]]:
        """Datagrams already waiting: each one is a start the bench did not cause."""
        self.sock.setblocking(False)
        got: list[tuple[int, int]] = []
        try:
            while True:
                got.append(self._parse(self.sock.recv(256)))
        except BlockingIOError:
            pass
        return got


def await_first_start(targets: Sequence[ProbeSocket], timeout: float, alive: Alive) -> None:
    for t in targets:
        got = t.receive(timeout, alive)
        if got is None:
            raise RestartFailure(
                f"probe for {t.path.name} never started (no datagram in {timeout} s)"
            )
        t.pid = got[1]


def run_trial(ctx: Context, result: Result, subject: Subject, n: int) -> None:
    """Trial n (from 1): kill the planned probe, time its restart; RestartFailure if none."""
    args = ctx.args
    target = subject.targets[subject.plan[n - 1]]
    # Random settle: a fixed gap could phase-lock with a supervisor's periodic loop
    # (supervisord polls with a 1 s timeout) and bias every sample the same way.
    time.sleep(args.settle + ctx.rng.uniform(0.0, args.jitter))
    stray = target.drain()
    if stray:
        result.notes.append(
            f"trial {n}: {len(stray)} start(s) of the probe nobody asked for "
            f"(pids {[p for _, p in stray]})"
        )
        target.pid = stray[-1][1]
    problem = subject.alive()
    if problem:
        raise RestartFailure(f"before trial {n}: {problem}")
    pid = target.pid
    if pid is None or not is_probe(pid, target.path):
        raise RestartFailure(f"before trial {n}: probe pid {pid} is not running")
    t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    try:
        os.kill(pid, signal.SIGKILL)
        target.kills += 1
    except ProcessLookupError as exc:
        raise RestartFailure(f"trial {n}: probe pid {pid} vanished before the kill") from exc
    got = target.receive(args.timeout, subject.alive)
    if got is None:
        raise RestartFailure(
            f"trial {n}: no restart within {args.timeout} s after SIGKILL of probe pid {pid}"
        )
    t1, new_pid = got
    if t1 <= t0 or new_pid == pid:
        raise RestartFailure(
            f"trial {n}: datagram (t={t1}, pid={new_pid}) does not come from a restart "
            f"after the kill (t0={t0}, pid={pid})"
        )
    target.pid = new_pid
    result.samples_ns.append(t1 - t0)
    if args.verbose:
        print(f"  {result.name} trial {n}: {(t1 - t0) / 1e6:.3f} ms", file=sys.stderr)


# --------------------------------------------------------------------------- supervisors


def start_floor(ctx: Context, result: Result, stack: ExitStack, tmp: Path) -> Subject:
    assert ctx.floor is not None
    target = ProbeSocket(tmp / "probe.sock")
    stack.callback(target.close)
    log = tmp / "floor.log"
    logf: BinaryIO = stack.enter_context(log.open("wb"))
    stack.callback(note_leftovers, result, [target.path])
    proc = subprocess.Popen(
        [str(ctx.floor), str(ctx.probe), str(target.path)],
        cwd=tmp,
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(stop_process, proc, "floor", result)
    alive = exited(proc, "floor", log)
    await_first_start([target], ctx.args.start_timeout, alive)
    return Subject([target], [0] * ctx.args.trials, alive)


def ensure_supervisord(reinstall: bool) -> Path:
    venv = WORK_DIR / "supervisord-venv"
    exe = venv / "bin" / "supervisord"
    # Reused across runs: supervisor does not change under us, and this spares PyPI.
    if exe.exists() and not reinstall:
        return exe
    run_checked("create supervisord venv", [sys.executable, "-m", "venv", "--clear", venv])
    run_checked(
        "pip install supervisor",
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "supervisor"],
        timeout=600,
    )
    return exe


def supervisord_conf(tmp: Path, probe: Path, sock: Path) -> str:
    def q(value: Path | str) -> str:
        # supervisord expands %(name)s in values, so a literal % must be doubled.
        return str(value).replace("%", "%%")

    command = q(shlex.join([str(probe), str(sock)]))
    return f"""\
[unix_http_server]
file={q(tmp / "supervisor.sock")}
chmod=0700

[supervisord]
nodaemon=true
logfile={q(tmp / "supervisord.log")}
pidfile={q(tmp / "supervisord.pid")}
childlogdir={q(tmp)}
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{q(tmp / "supervisor.sock")}

[program:probe]
command={command}
directory={q(tmp)}
autostart=true
autorestart=true
; startsecs=0: a probe killed right after its start is an ordinary exit, not a failed
; start, so supervisord never goes to BACKOFF (whose delay would not be a restart cost).
startsecs=0
startretries=1000000
stopsignal=TERM
stopwaitsecs=5
stdout_logfile={q(tmp / "probe.out")}
stderr_logfile={q(tmp / "probe.err")}
"""


def start_supervisord(ctx: Context, result: Result, stack: ExitStack, tmp: Path) -> Subject:
    exe = ensure_supervisord(ctx.args.reinstall)
    version = run_checked("supervisord --version", [exe, "--version"]).stdout.strip()
    result.info["version"] = version
    target = ProbeSocket(tmp / "probe.sock")
    stack.callback(target.close)
    conf = tmp / "supervisord.conf"
    conf.write_text(supervisord_conf(tmp, ctx.probe, target.path))
    log = tmp / "supervisord.out"
    logf: BinaryIO = stack.enter_context(log.open("wb"))
    stack.callback(note_leftovers, result, [target.path])
    proc = subprocess.Popen(
        [str(exe), "--nodaemon", "--configuration", str(conf)],
        cwd=tmp,
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(stop_process, proc, "supervisord", result)
    alive = exited(proc, "supervisord", log)
    await_first_start([target], ctx.args.start_timeout, alive)
    return Subject([target], [0] * ctx.args.trials, alive)


def rearm_bindir(args: argparse.Namespace) -> Path:
    if args.rearm_bin:
        bindir = Path(args.rearm_bin).resolve()
    else:
        venv = WORK_DIR / "rearm-venv"
        bindir = venv / "bin"
        if not (bindir / "python").exists():
            run_checked("create rearm venv", [sys.executable, "-m", "venv", venv])
        # Installed afresh every run (pip rebuilds a local directory each time): the
        # daemon is under development and a stale copy would measure old code.
        run_checked(
            f"pip install {args.project}",
            [bindir / "python", "-m", "pip", "install", "--quiet", args.project],
            timeout=600,
        )
    missing = [n for n in ("rearm", "armload", "armkill", "armem") if not (bindir / n).exists()]
    if missing:
        raise SetupError(f"rearm: {', '.join(missing)} not found in {bindir}")
    return bindir


def rearm_status(
    bindir: Path, env: dict[str, str], timeout: float = COMMAND_TIMEOUT
) -> dict[str, Any]:
    cmd: list[str | Path] = [bindir / "rearm", "status", "--json"]
    proc = run_checked("rearm status --json", cmd, env=env, timeout=timeout)
    try:
        status = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise SetupError(f"rearm status --json printed no JSON: {proc.stdout[:200]!r}") from exc
    if not isinstance(status, dict):
        raise SetupError(f"rearm status --json printed {type(status).__name__}, not an object")
    return status


def start_rearm(ctx: Context, result: Result, stack: ExitStack, tmp: Path) -> Subject:
    args = ctx.args
    bindir = rearm_bindir(args)
    result.info["bin"] = str(bindir)
    rearm = bindir / "rearm"
    home = tmp / "home"
    home.mkdir()
    # Inherited REARM_* settings must not leak in (a real REARM_HOME above all).
    env = {k: v for k, v in os.environ.items() if not k.startswith("REARM_")}
    env["REARM_HOME"] = str(home)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    # Drill mode: reboot/shutdown/panic are only recorded. Set twice (configuration and
    # the daemon's environment) and checked below before any kill.
    env["REARM_DRILL"] = "1"

    run_checked(
        "rearm cluster create",
        [rearm, "cluster", "create", "--name", "bench", "--ip", "127.0.0.1"],
        env=env,
    )
    drill_set = run([rearm, "cluster", "set", "drill=true"], env=env)
    if drill_set.returncode != 0:
        result.notes.append(
            f"'rearm cluster set drill=true' failed (exit {drill_set.returncode}): "
            f"{drill_set.stderr.strip()[:200]}; relying on REARM_DRILL=1"
        )

    log = tmp / "daemon.log"
    logf: BinaryIO = stack.enter_context(log.open("wb"))
    socks: list[ProbeSocket] = []
    # Runs after the daemon has stopped (ExitStack is last-in, first-out).
    stack.callback(lambda: note_leftovers(result, [s.path for s in socks]))
    daemon = subprocess.Popen(
        [str(rearm), "daemon"],
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.callback(stop_process, daemon, "rearm daemon", result)
    alive = exited(daemon, "rearm daemon", log)

    deadline = time.monotonic() + args.start_timeout
    while True:
        problem = alive()
        if problem:
            raise SetupError(problem)
        ready = run([rearm, "status", "--json"], env=env)
        if ready.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise SetupError(
                f"rearm daemon not ready after {args.start_timeout} s: 'rearm status --json' "
                f"exit {ready.returncode}: {ready.stderr.strip()[:300]}\n{tail(log)}"
            )
        time.sleep(0.2)

    armem = run([bindir / "armem", "/M", "none"], env=env)
    if armem.returncode != 0:
        result.notes.append(f"'armem /M none' failed: {armem.stderr.strip()[:200]}")
    cluster = rearm_status(bindir, env).get("cluster", {})
    result.info["final_action"] = cluster.get("final_action")
    result.info["drill"] = cluster.get("drill")
    if cluster.get("drill") is not True and cluster.get("final_action") != "none":
        raise SetupError(
            "refusing to kill rearm-watched processes: 'rearm status --json' shows "
            f"drill={cluster.get('drill')!r}, final_action={cluster.get('final_action')!r}"
        )

    watches = math.ceil(args.trials / KILLS_PER_WATCH)
    ids = [f"BENCH{k + 1}" for k in range(watches)]
    loaded: list[str] = []

    def armkill_all() -> None:
        # Watches end before the daemon does: a daemon stop is meant to leave services
        # running (SPEC 3), armkill is what stops them.
        # Never raises: an exception here would replace the error being reported.
        for watch in loaded:
            if daemon.poll() is not None:
                result.notes.append("daemon gone before armkill; its probes are killed by pid")
                return
            try:
                done = run([bindir / "armkill", watch, "/T", "5"], env=env, timeout=15)
            except (subprocess.TimeoutExpired, OSError) as exc:
                # A daemon that does not answer will not answer the next armkill either.
                result.notes.append(f"armkill {watch}: {exc}; skipping the rest")
                return
            if done.returncode != 0:
                result.notes.append(f"armkill {watch} failed: {done.stderr.strip()[:200]}")

    stack.callback(armkill_all)
    for k, watch in enumerate(ids):
        sock = ProbeSocket(tmp / f"probe{k + 1}.sock")
        socks.append(sock)
        stack.callback(sock.close)
        cmd: list[str | Path] = [
            bindir / "armload", watch, "/R", str(REARM_RETRY), "/H", "1", "/INT", "0",
            ctx.probe, sock.path,
        ]  # fmt: skip
        run_checked(f"armload {watch}", cmd, env=env)
        loaded.append(watch)
    # Registered last, so at teardown it runs first: rearm's own counts, while it still runs.
    stack.callback(lambda: result.info.update(rearm_crosscheck(bindir, env, ids, socks)))
    await_first_start(socks, args.start_timeout, alive)
    return Subject(socks, [n // KILLS_PER_WATCH for n in range(args.trials)], alive)


def rearm_crosscheck(
    bindir: Path, env: dict[str, str], ids: Sequence[str], socks: Sequence[ProbeSocket]
) -> dict[str, Any]:
    """What rearm itself counted (restarts, final_action events) next to our kill count."""
    info: dict[str, Any] = {
        "kills_per_watch": {w: t.kills for w, t in zip(ids, socks, strict=True)}
    }
    try:
        status = rearm_status(bindir, env, timeout=10)
        info["restarts_per_watch"] = {
            w.get("id"): w.get("restarts") for w in status.get("watches", []) if isinstance(w, dict)
        }
    except (SetupError, subprocess.TimeoutExpired, OSError) as exc:
        # Never raises: it runs during teardown, where it would hide the real error.
        info["restarts_per_watch"] = f"unavailable: {exc}"
    try:
        log = run([bindir / "rearm", "log", "--json"], env=env, timeout=10)
        finals = [line for line in log.stdout.splitlines() if '"final_action"' in line]
        info["final_action_events"] = len(finals) if log.returncode == 0 else None
    except (subprocess.TimeoutExpired, OSError):
        info["final_action_events"] = None
    return info


def note_leftovers(result: Result, sock_paths: Sequence[Path]) -> None:
    killed = kill_leftover_probes(sock_paths)
    if killed:
        result.notes.append(f"probes still running after the supervisor stopped, killed: {killed}")


STARTERS: dict[str, Callable[[Context, Result, ExitStack, Path], Subject]] = {
    "floor": start_floor,
    "supervisord": start_supervisord,
    "rearm": start_rearm,
}


class Runner:
    """One supervisor's life in the bench: start, trials, stop; errors land in result."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx = ctx
        self.result = Result(name)
        self.stack = ExitStack()
        self.subject: Subject | None = None

    def _fail(self, exc: BaseException) -> None:
        self.result.error = str(exc)
        self.result.restart_failed = isinstance(exc, RestartFailure)
        self.subject = None
        self.stop()

    @property
    def active(self) -> bool:
        return self.subject is not None

    def start(self) -> None:
        name = self.result.name
        print(f"starting {name} ...", file=sys.stderr, flush=True)
        try:
            tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix=f"rb-{name}-")))
            self.subject = STARTERS[name](self.ctx, self.result, self.stack, tmp)
        except (RestartFailure, SetupError, subprocess.TimeoutExpired, OSError) as exc:
            self._fail(exc)

    def trial(self, n: int) -> None:
        if self.subject is None:
            return
        try:
            run_trial(self.ctx, self.result, self.subject, n)
        except (RestartFailure, OSError) as exc:
            # A failed supervisor is stopped at once; the others go on being measured.
            self._fail(exc)

    def stop(self) -> None:
        """Idempotent (ExitStack runs each callback once); safe from finally blocks."""
        self.subject = None
        try:
            self.stack.close()
        except (subprocess.TimeoutExpired, OSError) as exc:
            self.result.notes.append(f"teardown: {exc}")


def measure(ctx: Context, names: Sequence[str]) -> list[Result]:
    """Measure every supervisor; always stops everything it started, also on Ctrl-C."""
    runners = [Runner(ctx, name) for name in names]
    trials = ctx.args.trials
    try:
        if ctx.args.sequential:
            for runner in runners:
                runner.start()
                for n in range(1, trials + 1):
                    runner.trial(n)
                runner.stop()
        else:
            # Interleaved: all supervisors run at once and trial n of each is taken in the
            # same round, in shuffled order, so drifting background load (other jobs on the
            # machine) weighs on all of them alike instead of on whichever ran last.
            for runner in runners:
                runner.start()
            print(f"{trials} interleaved rounds ...", file=sys.stderr, flush=True)
            for n in range(1, trials + 1):
                live = [r for r in runners if r.active]
                ctx.rng.shuffle(live)
                for runner in live:
                    runner.trial(n)
    finally:
        for runner in reversed(runners):
            runner.stop()
    return [r.result for r in runners]


# --------------------------------------------------------------------------- report


def percentile(sorted_ns: Sequence[int], pct: float) -> int:
    """Nearest-rank percentile: an observed sample, never an interpolation."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_ns)))
    return sorted_ns[rank - 1]


def summary(result: Result) -> dict[str, Any]:
    s = sorted(result.samples_ns)
    out: dict[str, Any] = {
        "trials": len(s),
        "ok": result.error is None,
        "restart_failed": result.restart_failed,
        "error": result.error,
        "notes": result.notes,
        "info": result.info,
    }
    if s:
        out.update(
            median_ms=statistics.median(s) / 1e6,
            p99_ms=percentile(s, 99) / 1e6,
            min_ms=s[0] / 1e6,
            max_ms=s[-1] / 1e6,
            mean_ms=statistics.fmean(s) / 1e6,
            samples_ms=[x / 1e6 for x in result.samples_ns],
        )
    return out


def machine_facts() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uname = os.uname()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_model": cpu,
        "loadavg_at_start": list(os.getloadavg()),
    }


def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    if a.get("ok") and b.get("ok") and b.get(key):
        return float(a[key]) / float(b[key])
    return None


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    cfg = report["config"]
    lines = [
        f"machine: {m['cpu_model']}, nproc {m['nproc']} (usable {m['cpus_usable']}), "
        f"{m['kernel']}, {m['python']}, load {m['loadavg_at_start'][0]:.2f}",
        f"restart latency after SIGKILL, /INT 0: {cfg['trials']} trials per supervisor "
        f"({cfg['order']}), settle {cfg['settle_s'] * 1000:.0f} ms + "
        f"U(0, {cfg['jitter_s'] * 1000:.0f}) ms before each trial (not timed); "
        "p99 is nearest-rank",
        "",
        f"{'supervisor':<12} {'trials':>6} {'median ms':>10} {'p99 ms':>10} "
        f"{'min ms':>10} {'max ms':>10}  status",
    ]
    for name, s in report["results"].items():
        if "median_ms" in s:
            figures = (
                f"{s['median_ms']:>10.3f} {s['p99_ms']:>10.3f} {s['min_ms']:>10.3f} "
                f"{s['max_ms']:>10.3f}"
            )
        else:
            figures = f"{'-':>10} {'-':>10} {'-':>10} {'-':>10}"
        status = "ok" if s["ok"] else "FAILED"
        lines.append(f"{name:<12} {s['trials']:>6} {figures}  {status}")
    ratios = report["ratios"]
    if ratios:
        lines.append("")
        for key, value in ratios.items():
            if value is None:
                shown = "n/a"
            elif value < 1:
                # A plain 0.00x would hide the size of the difference.
                shown = f"{value:.3g}x (1/{1 / value:.3g})"
            else:
                shown = f"{value:.2f}x"
            lines.append(f"{key:<28} {shown}")
    for name, s in report["results"].items():
        for key, value in s["info"].items():
            if key != "bin":
                lines.append(f"{name}: {key}: {value}")
        for note in s["notes"]:
            lines.append(f"{name}: note: {note}")
        if s["error"]:
            lines.append(f"{name}: ERROR: {s['error']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=60, help="kills per supervisor (default 60)")
    p.add_argument(
        "--only",
        default=",".join(SUPERVISORS),
        help="comma-separated subset of floor,supervisord,rearm (default: all three)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    p.add_argument("--rearm-bin", metavar="DIR", help="use rearm/armload/armkill from DIR")
    p.add_argument(
        "--project",
        default=str(PROJECT_DIR),
        help="rearm source tree to pip install into bench/.work/rearm-venv (default: %(default)s)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="s to wait for each restart")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=DEFAULT_START_TIMEOUT,
        help="s to wait for a supervisor to start and for the probe's first start",
    )
    p.add_argument("--settle", type=float, default=0.05, help="fixed s between trials")
    p.add_argument("--jitter", type=float, default=1.0, help="random extra s between trials")
    p.add_argument("--seed", type=int, default=1, help="seed of the settle jitter")
    p.add_argument("--cc", default="gcc", help="C compiler for probe.c and floor.c")
    p.add_argument("--reinstall", action="store_true", help="recreate the supervisord venv")
    p.add_argument(
        "--sequential",
        action="store_true",
        help="measure one supervisor after the other instead of interleaving their trials",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SUPERVISORS))
    if unknown or not wanted:
        p.error(f"--only: unknown {unknown or 'empty list'}; choose from {','.join(SUPERVISORS)}")
    args.only = [s for s in SUPERVISORS if s in wanted]
    if args.trials < 1:
        p.error("--trials must be at least 1")
    return args


def _raise_on_signal(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM/SIGHUP into an exception so every finally/ExitStack stops what it started.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Explicit, because a shell starts background jobs with SIGINT ignored and Python
    # then installs no handler; Ctrl-C and kill -INT must both clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # respect nohup
        signal.signal(signal.SIGHUP, _raise_on_signal)
    if args.trials < 50:
        print(f"note: {args.trials} trials is below the 50 a p99 needs", file=sys.stderr)

    try:
        probe = WORK_DIR / "probe"
        compile_c(args.cc, BENCH_DIR / "probe.c", probe)
        floor: Path | None = None
        if "floor" in args.only:
            floor = WORK_DIR / "floor"
            compile_c(args.cc, BENCH_DIR / "floor.c", floor)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ctx = Context(args=args, probe=probe, floor=floor, rng=random.Random(args.seed))

    machine = machine_facts()
    results = {r.name: summary(r) for r in measure(ctx, args.only)}

    ratios: dict[str, float | None] = {}
    if "rearm" in results:
        for other in ("floor", "supervisord"):
            if other in results:
                for key in ("median_ms", "p99_ms"):
                    label = f"rearm/{other} {key.removesuffix('_ms')}"
                    ratios[label] = ratio(results["rearm"], results[other], key)
    report = {
        "machine": machine,
        "config": {
            "trials": args.trials,
            "timeout_s": args.timeout,
            "settle_s": args.settle,
            "jitter_s": args.jitter,
            "seed": args.seed,
            "percentile_method": "nearest-rank",
            "order": "sequential" if args.sequential else "interleaved",
            "cc": run([args.cc, "-dumpfullversion"]).stdout.strip(),
        },
        "results": results,
        "ratios": ratios,
    }
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")

    failed = [n for n, s in results.items() if not s["ok"]]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    if any(not s["ok"] and s.get("restart_failed") for s in results.values()):
        return 1
    return 2 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
