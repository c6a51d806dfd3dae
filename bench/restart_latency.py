#!/usr/bin/env python3
"""Restart latency after SIGKILL (/INT 0): a C floor, supervisord, runit, s6, monit and rearm.

Every supervisor watches the same probe (bench/probe.c). On start the probe sends
"<CLOCK_MONOTONIC ns> <pid>" to a Unix datagram socket the bench has bound. A trial is:
t0 = clock_gettime(CLOCK_MONOTONIC), SIGKILL the probe, wait for the next datagram (t1);
latency = t1 - t0. Both stamps use the same system-wide clock, so the bench's own wakeup
delay after the datagram arrives is not part of the figure.

See bench/README.md for how to run it and how to read the ratios. bench/suite.py runs it as
its first benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    PROJECT_DIR,
    Alive,
    Helpers,
    RearmCluster,
    SetupError,
    build_helpers,
    exited,
    install_signal_handlers,
    is_probe,
    kill_leftover_probes,
    machine_facts,
    machine_line,
    percentile,
    rearm_bindir,
    run,
    show_ratio,
    spawn,
    stop_process,
)
from peers import PEERS, REARM_RETRY, PeerSetup

SUPERVISORS = ("floor", "supervisord", "runit", "s6", "monit", "rearm")
# Compared with rearm, in this order, in the ratios.
OTHERS = ("floor", "supervisord", "runit", "s6", "monit")

# Each rearm watch is killed at most KILLS_PER_WATCH times, one below the /R threshold, so
# a single stray fault still cannot reach the final action.
KILLS_PER_WATCH = REARM_RETRY - 1

# A start without a datagram within this long is a failure, not a slow sample.
DEFAULT_START_TIMEOUT = 30.0


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
    helpers: Helpers
    rng: random.Random


# --------------------------------------------------------------------------- probe link


class ProbeSocket:
    """The bench's end of one probe's datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.pid: int | None = None
        self.started_ns = 0  # when the running probe started (its datagram's stamp)
        self.kills = 0

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)

    @staticmethod
    def _parse(data: bytes) -> tuple[int, int]:
        # "<ns> <pid>[ <tag>]": the tag, when there is one, does not matter here.
        ns, pid = data.split()[:2]
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


@dataclass
class Subject:
    """One supervisor, running, with its probes started and its trial plan."""

    targets: list[ProbeSocket]
    # plan[n] is the index in targets of the probe killed in trial n+1.
    plan: list[int]
    alive: Alive


def await_first_start(targets: Sequence[ProbeSocket], timeout: float, alive: Alive) -> None:
    for t in targets:
        got = t.receive(timeout, alive)
        if got is None:
            raise RestartFailure(
                f"probe for {t.path.name} never started (no datagram in {timeout} s)"
            )
        t.started_ns, t.pid = got


def settle(ctx: Context, target: ProbeSocket) -> None:
    """The untimed wait before a kill: random, and never before the probe's minimum uptime.

    Random: a fixed gap could phase-lock with a supervisor's periodic loop (supervisord
    polls with a 1 s timeout, monit runs a 1 s cycle) and bias every sample the same way.
    Minimum uptime: runsv and s6-supervise wait 1 s before restarting a service that ran for
    less than 1 s (their guard against a crash loop); the same floor for every supervisor
    keeps that guard out of the figures.
    """
    args = ctx.args
    time.sleep(args.settle + ctx.rng.uniform(0.0, args.jitter))
    age = (time.clock_gettime_ns(time.CLOCK_MONOTONIC) - target.started_ns) / 1e9
    if age < args.min_uptime:
        time.sleep(args.min_uptime - age)


def run_trial(ctx: Context, result: Result, subject: Subject, n: int) -> None:
    """Trial n (from 1): kill the planned probe, time its restart; RestartFailure if none."""
    args = ctx.args
    target = subject.targets[subject.plan[n - 1]]
    settle(ctx, target)
    stray = target.drain()
    if stray:
        result.notes.append(
            f"trial {n}: {len(stray)} start(s) of the probe nobody asked for "
            f"(pids {[p for _, p in stray]})"
        )
        target.started_ns, target.pid = stray[-1]
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
    target.started_ns, target.pid = t1, new_pid
    result.samples_ns.append(t1 - t0)
    if args.verbose:
        print(f"  {result.name} trial {n}: {(t1 - t0) / 1e6:.3f} ms", file=sys.stderr)


# --------------------------------------------------------------------------- supervisors


def note_leftovers(result: Result, sock_paths: Sequence[Path]) -> None:
    killed = kill_leftover_probes(sock_paths)
    if killed:
        result.notes.append(f"probes still running after the supervisor stopped, killed: {killed}")


def start_floor(ctx: Context, result: Result, stack: ExitStack, tmp: Path) -> Subject:
    target = ProbeSocket(tmp / "probe.sock")
    stack.callback(target.close)
    log = tmp / "floor.log"
    logf = stack.enter_context(log.open("wb"))
    stack.callback(note_leftovers, result, [target.path])
    cmd = [ctx.helpers.floor, ctx.helpers.probe, target.path]
    proc = spawn(cmd, logf, env=None, cwd=tmp)
    stack.callback(stop_process, proc, "floor", result.notes)
    alive = exited(proc, "floor", log)
    await_first_start([target], ctx.args.start_timeout, alive)
    return Subject([target], [0] * ctx.args.trials, alive)


def start_peer(name: str) -> Starter:
    """A starter for a peer adapter of peers.py (supervisord, runit, s6, monit): one probe."""

    def start(ctx: Context, result: Result, stack: ExitStack, tmp: Path) -> Subject:
        target = ProbeSocket(tmp / "probe.sock")
        stack.callback(target.close)
        setup = PeerSetup(
            tmp=tmp,
            helpers=ctx.helpers,
            sock=target.path,
            tags=["probe1"],
            reinstall=ctx.args.reinstall,
            start_timeout=ctx.args.start_timeout,
        )
        peer = PEERS[name](setup)
        missing = peer.missing()
        if missing:
            raise SetupError(f"{name}: {missing}")
        # Last in, first out: the notes are copied after the stop has added its own.
        stack.callback(lambda: result.notes.extend(peer.notes))
        stack.callback(peer.stop)
        peer.prepare()
        peer.launch()
        result.info["version"] = peer.version()
        await_first_start([target], ctx.args.start_timeout, peer.alive)
        return Subject([target], [0] * ctx.args.trials, peer.alive)

    return start


def start_rearm(ctx: Context, result: Result, stack: ExitStack, tmp: Path) -> Subject:
    """rearm, with watches made by `armload ID /R 9 /H 1 /INT 0 probe SOCKET`."""
    args = ctx.args
    bindir = rearm_bindir(args.rearm_bin, args.project)
    cluster = RearmCluster(bindir, tmp, result.notes)
    result.info.update(cluster.info)
    cluster.create()
    socks: list[ProbeSocket] = []
    # Runs after the daemon has stopped (ExitStack is last-in, first-out).
    stack.callback(lambda: note_leftovers(result, [s.path for s in socks]))
    stack.callback(cluster.stop_daemon)
    cluster.start_daemon(args.start_timeout)
    result.info.update(cluster.info)

    watches = math.ceil(args.trials / KILLS_PER_WATCH)
    ids = [f"BENCH{k + 1}" for k in range(watches)]
    loaded: list[str] = []
    stack.callback(armkill_all, cluster, loaded, result)
    for k, watch in enumerate(ids):
        sock = ProbeSocket(tmp / f"probe{k + 1}.sock")
        socks.append(sock)
        stack.callback(sock.close)
        cluster.ok(
            "armload", watch, "/R", str(REARM_RETRY), "/H", "1", "/INT", "0",
            ctx.helpers.probe, sock.path,
        )  # fmt: skip
        loaded.append(watch)
    # Registered last, so at teardown it runs first: rearm's own counts, while it still runs.
    stack.callback(lambda: result.info.update(rearm_crosscheck(cluster, ids, socks)))
    await_first_start(socks, args.start_timeout, cluster.alive)
    return Subject(socks, [n // KILLS_PER_WATCH for n in range(args.trials)], cluster.alive)


def armkill_all(cluster: RearmCluster, loaded: list[str], result: Result) -> None:
    """Watches end before the daemon does: a daemon stop is meant to leave services running
    (SPEC 3), armkill is what stops them. Never raises: it runs during teardown."""
    for watch in loaded:
        if cluster.alive():
            result.notes.append("daemon gone before armkill; its probes are killed by pid")
            return
        try:
            done = run(cluster.cmd("armkill", watch, "/T", "5"), env=cluster.env, timeout=15)
        except (subprocess.TimeoutExpired, OSError) as exc:
            # A daemon that does not answer will not answer the next armkill either.
            result.notes.append(f"armkill {watch}: {exc}; skipping the rest")
            return
        if done.returncode != 0:
            result.notes.append(f"armkill {watch} failed: {done.stderr.strip()[:200]}")


def rearm_crosscheck(
    cluster: RearmCluster, ids: Sequence[str], socks: Sequence[ProbeSocket]
) -> dict[str, Any]:
    """What rearm itself counted (restarts, final_action events) next to our kill count."""
    info: dict[str, Any] = {
        "kills_per_watch": {w: t.kills for w, t in zip(ids, socks, strict=True)}
    }
    try:
        status = cluster.status(timeout=10)
        watches = [w for g in status.get("groups", []) for w in g.get("watches", [])] + status.get(
            "watches", []
        )
        info["restarts_per_watch"] = {
            w.get("id"): w.get("restarts") for w in watches if isinstance(w, dict)
        }
    except (SetupError, subprocess.TimeoutExpired, OSError) as exc:
        # Never raises: it runs during teardown, where it would hide the real error.
        info["restarts_per_watch"] = f"unavailable: {exc}"
    try:
        log = run(cluster.cmd("rearm", "log", "--json"), env=cluster.env, timeout=10)
        finals = [line for line in log.stdout.splitlines() if '"final_action"' in line]
        info["final_action_events"] = len(finals) if log.returncode == 0 else None
    except (subprocess.TimeoutExpired, OSError):
        info["final_action_events"] = None
    return info


Starter = Callable[[Context, Result, ExitStack, Path], Subject]
STARTERS: dict[str, Starter] = {
    "floor": start_floor,
    "supervisord": start_peer("supervisord"),
    "runit": start_peer("runit"),
    "s6": start_peer("s6"),
    "monit": start_peer("monit"),
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


def ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    if a.get("ok") and b.get("ok") and b.get(key):
        return float(a[key]) / float(b[key])
    return None


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    if "rearm" in results:
        for other in OTHERS:
            if other in results:
                for key in ("median_ms", "p99_ms"):
                    label = f"rearm/{other} {key.removesuffix('_ms')}"
                    out[label] = ratio(results["rearm"], results[other], key)
    return out


def render_table(report: dict[str, Any]) -> list[str]:
    cfg = report["config"]
    lines = [
        f"restart latency after SIGKILL, /INT 0: {cfg['trials']} trials per supervisor "
        f"({cfg['order']}), settle {cfg['settle_s'] * 1000:.0f} ms + "
        f"U(0, {cfg['jitter_s'] * 1000:.0f}) ms before each trial (not timed), probe up at "
        f"least {cfg['min_uptime_s']:g} s; p99 is nearest-rank",
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
    if report["ratios"]:
        lines.append("")
        for key, value in report["ratios"].items():
            lines.append(f"{key:<28} {show_ratio(value)}")
    for name, s in report["results"].items():
        for key, value in s["info"].items():
            if key != "bin":
                lines.append(f"{name}: {key}: {value}")
        for note in s["notes"]:
            lines.append(f"{name}: note: {note}")
        if s["error"]:
            lines.append(f"{name}: ERROR: {s['error']}")
    return lines


def render(report: dict[str, Any]) -> str:
    return "\n".join([machine_line(report["machine"]), *render_table(report)])


def benchmark(args: argparse.Namespace, helpers: Helpers) -> dict[str, Any]:
    """Measure the supervisors of args.only; the report (machine, config, results, ratios)."""
    ctx = Context(args=args, helpers=helpers, rng=random.Random(args.seed))
    machine = machine_facts()
    results = {r.name: summary(r) for r in measure(ctx, args.only)}
    return {
        "machine": machine,
        "config": {
            "trials": args.trials,
            "timeout_s": args.timeout,
            "settle_s": args.settle,
            "jitter_s": args.jitter,
            "min_uptime_s": args.min_uptime,
            "seed": args.seed,
            "percentile_method": "nearest-rank",
            "order": "sequential" if args.sequential else "interleaved",
            "cc": run([args.cc, "-dumpfullversion"]).stdout.strip(),
        },
        "results": results,
        "ratios": ratios(results),
    }


def exit_status(results: dict[str, dict[str, Any]]) -> int:
    failed = [n for n, s in results.items() if not s["ok"]]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    if any(not s["ok"] and s.get("restart_failed") for s in results.values()):
        return 1
    return 2 if failed else 0


# --------------------------------------------------------------------------- main


def installed(name: str) -> bool:
    return name not in PEERS or PEERS[name].missing() is None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=60, help="kills per supervisor (default 60)")
    p.add_argument(
        "--only",
        help=f"comma-separated subset of {','.join(SUPERVISORS)}\n"
        "(default: all of them that are installed; bench/setup.sh installs runit, s6, monit)",
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
    p.add_argument(
        "--min-uptime",
        type=float,
        default=1.1,
        help="s a probe runs at least before it is killed (runit and s6 delay the restart\n"
        "of a service that ran less than 1 s)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the settle jitter")
    p.add_argument("--cc", default="gcc", help="C compiler for the probe, floor and reaper")
    p.add_argument("--reinstall", action="store_true", help="recreate the supervisord venv")
    p.add_argument(
        "--sequential",
        action="store_true",
        help="measure one supervisor after the other instead of interleaving their trials",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = p.parse_args(argv)
    if args.only is None:
        args.only = [s for s in SUPERVISORS if installed(s)]
    else:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(SUPERVISORS))
        if unknown or not wanted:
            p.error(f"--only: unknown {unknown or 'empty list'}; choose from {SUPERVISORS}")
        args.only = [s for s in SUPERVISORS if s in wanted]
    if args.trials < 1:
        p.error("--trials must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    if args.trials < 50:
        print(f"note: {args.trials} trials is below the 50 a p99 needs", file=sys.stderr)
    try:
        helpers = build_helpers(args.cc)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = benchmark(args, helpers)
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return exit_status(report["results"])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
