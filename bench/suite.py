#!/usr/bin/env python3
"""rearm's benchmark suite (issue 7): rearm beside supervisord, runit, s6 and monit, one run.

    .venv/bin/python bench/suite.py                 # everything, N = 1000 watches (~15 min)
    .venv/bin/python bench/suite.py --quick         # a smoke run (< 2 min)
    .venv/bin/python bench/suite.py --only idle,memory,rearm,s6 --json out.json

Benchmarks (--only takes these names and/or supervisor names):
  latency    restart latency after SIGKILL (/INT 0), median and p99, with the C floor
             (bench/restart_latency.py, run from here)
  startup    N watches started from nothing: rearm group start (declarative [[watches]]
             and a start.sh of N armload lines); the peers, from their own start
  memory     RSS of the main process, PSS of all supervisor processes, at 100 and N
  idle       CPU % of one CPU and wake-ups over a window, N watches idle; rearm per task
  mass       N watched probes SIGKILLed at once: time until all N started again
  roundtrip  a sh script of K armload then K armkill calls vs K bare `python3 -I -S`

Every figure of rearm is printed beside the peers' figures of the same run, with the ratio
rearm/peer, and the machine facts. Everything runs in one temporary directory, with rearm in
drill mode and final action none; see bench/README.md for the method and the rules.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import restart_latency
from common import (
    PROJECT_DIR,
    Helpers,
    RearmCluster,
    SetupError,
    all_pids,
    build_helpers,
    install_signal_handlers,
    is_probe,
    kill_leftover_probes,
    machine_facts,
    machine_line,
    probe_socket_of,
    proc_argv,
    proc_stat,
    rearm_bindir,
    show_ratio,
)
from measure import (
    Collector,
    TaskDelta,
    TaskSample,
    deltas,
    memory_kb,
    now_ns,
    process_label,
    sample_tasks,
    spread,
)
from peers import MONIT_CYCLE, PEERS, REARM_RETRY, Peer, PeerSetup, RearmGroup

BENCHMARKS = ("latency", "startup", "memory", "idle", "mass", "roundtrip")
SUPERVISORS = ("floor", "rearm", "supervisord", "runit", "s6", "monit")
FLEET = ("startup", "memory", "idle", "mass")  # measured on one running set of N watches

# The defaults of a full run, and of --quick (a smoke run: small, not for figures).
FULL = {"watches": 1000, "idle_seconds": 60.0, "trials": 60, "jitter": 1.0,
        "roundtrip_calls": 200, "memory_watches": 100, "monit_watches": 100,
        "settle": 5.0}  # fmt: skip
QUICK = {"watches": 40, "idle_seconds": 8.0, "trials": 8, "jitter": 0.3,
         "roundtrip_calls": 15, "memory_watches": 10, "monit_watches": 20,
         "settle": 2.0}  # fmt: skip


@dataclass
class Config:
    args: argparse.Namespace
    helpers: Helpers
    bindir: Path
    root: Path  # the run's temporary directory: everything of the run lives under it
    benchmarks: list[str]
    supervisors: list[str]
    phases: dict[str, float] = field(default_factory=dict)  # wall time of each part


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def phase(cfg: Config, name: str) -> Iterator[None]:
    """Time one part of the run (printed at the end, to keep the run's length in view)."""
    log(f"--- {name}")
    started = time.monotonic()
    try:
        yield
    finally:
        cfg.phases[name] = time.monotonic() - started


# =========================================================================== 1. latency


def bench_latency(cfg: Config) -> dict[str, Any]:
    """bench/restart_latency.py with this run's settings and supervisors."""
    a = cfg.args
    names = [s for s in restart_latency.SUPERVISORS if s in cfg.supervisors]
    argv = [
        "--only", ",".join(names), "--trials", str(a.trials), "--jitter", str(a.jitter),
        "--seed", str(a.seed), "--rearm-bin", str(cfg.bindir), "--cc", a.cc,
    ]  # fmt: skip
    if a.reinstall:
        argv.append("--reinstall")
    if a.verbose:
        argv.append("-v")
    report = restart_latency.benchmark(restart_latency.parse_args(argv), cfg.helpers)
    report.pop("machine")  # the suite prints its own
    return report


# =========================================================================== the fleet


@dataclass
class Member:
    """One supervisor running N watched probes, with the bench's end of their socket."""

    label: str
    peer: Peer
    collector: Collector
    tags: list[str]
    startup: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def make_member(cfg: Config, name: str, n: int, declarative: bool = True) -> Member:
    if name == "monit":
        # monit starts one service at a time and waits for each (here 0.2-0.5 s apiece, more
        # the more processes the machine runs): 1,000 would take most of an hour to start
        # and again to recover. Its figures are for its own, smaller N, shown as such.
        n = min(n, cfg.args.monit_watches)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}-{n}-", dir=cfg.root))
    tags = [f"P{i + 1}" for i in range(n)]
    collector = Collector(tmp / "probe.sock")
    setup = PeerSetup(
        tmp=tmp,
        helpers=cfg.helpers,
        sock=collector.path,
        tags=tags,
        rearm_bin=cfg.bindir,
        reinstall=cfg.args.reinstall,
        start_timeout=60.0,
    )
    peer: Peer = (
        RearmGroup(setup, declarative=declarative) if name == "rearm" else PEERS[name](setup)
    )
    label = name if declarative else "rearm start.sh"
    return Member(label, peer, collector, tags)


def start_member(cfg: Config, member: Member) -> None:
    """Configure, start and time the start of all N watches (benchmark 5); errors kept."""
    peer, n = member.peer, len(member.tags)
    log(f"{member.label}: starting {n} watches ...")
    try:
        missing = peer.missing()
        if missing:
            raise SetupError(missing)
        peer.prepare()
        t0 = now_ns()
        peer.launch()
        got = member.collector.wait_for(member.tags, t0, cfg.args.startup_timeout, peer.alive)
        command_s = peer.launched(cfg.args.startup_timeout)
        member.startup = {
            "watches": n,
            "started": len(got),
            **spread(got.values(), t0),
            "command_s": command_s,
            "version": peer.version(),
        }
        if len(got) < n:
            raise SetupError(
                f"only {len(got)} of {n} watches started within {cfg.args.startup_timeout:g} s"
            )
        log(f"{member.label}: all {n} started in {member.startup['all_s']:.2f} s")
    except (SetupError, subprocess.TimeoutExpired, OSError) as exc:
        member.error = str(exc)
        log(f"{member.label}: FAILED: {exc}")
        stop_member(member)


def stop_member(member: Member) -> None:
    member.peer.stop()
    member.collector.close()


def quiesce(cfg: Config) -> None:
    """An untimed pause after start-up, so that memory and idle figures see a settled
    supervisor (log writes, monit's first checks) rather than the tail of its start."""
    time.sleep(cfg.args.settle)


# =========================================================================== 3. memory


def memory_of(member: Member) -> dict[str, Any]:
    pids = member.peer.pids()
    main = member.peer.main_pid()
    per = {pid: memory_kb(pid) for pid in pids}
    main_rss = per.get(main, (None, None))[0] if main is not None else None
    pss = [p for _, p in per.values() if p is not None]
    return {
        "watches": len(member.tags),
        "processes": len(pids),
        "main_rss_mb": main_rss / 1024 if main_rss is not None else None,
        "pss_mb": sum(pss) / 1024 if pss else None,
        "rss_sum_mb": sum(r for r, _ in per.values() if r is not None) / 1024,
        # The first few, to show where the memory is (the main process and its helpers).
        "per_process": {
            f"{pid} {process_label(pid)}": {"rss_kb": per[pid][0], "pss_kb": per[pid][1]}
            for pid in pids[:4]
        },
    }


def memory_point(cfg: Config, n: int) -> dict[str, Any]:
    """Each supervisor with n watches, one at a time: start, settle, measure, stop."""
    out: dict[str, Any] = {}
    for name in fleet_names(cfg):
        member = make_member(cfg, name, n)
        try:
            start_member(cfg, member)
            if member.ok:
                quiesce(cfg)
                out[name] = {**memory_of(member), "startup": member.startup}
            else:
                out[name] = {"error": member.error}
        finally:
            stop_member(member)
    return out


# =========================================================================== 2. idle


def idle_window(cfg: Config, members: list[Member]) -> dict[str, Any]:
    """All supervisors idle at once over one window (the same background load for all).

    Counters are per process and per thread, so running together does not mix them up.
    rearm's threads are also sampled every second, to tell which one wakes and when.
    """
    seconds = cfg.args.idle_seconds
    pids = {m.label: m.peer.pids() for m in members}
    before = {label: sample_tasks(p) for label, p in pids.items()}
    rearm = next((m for m in members if m.label == "rearm"), None)
    timeline: list[dict[tuple[int, int], TaskSample]] = []
    if rearm is not None:
        timeline.append(before["rearm"])
    started = time.monotonic()
    for k in range(1, int(seconds) + 1):
        # A measurement window, not a wait for a condition: the bench sleeps through it.
        time.sleep(max(0.0, started + k - time.monotonic()))
        if rearm is not None:
            timeline.append(sample_tasks(pids["rearm"]))
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    elapsed = time.monotonic() - started
    out: dict[str, Any] = {}
    for m in members:
        after = sample_tasks(m.peer.pids())
        tasks, gone = deltas(before[m.label], after)
        cpu = sum(t.cpu_s for t in tasks)
        runs = [t.run_s for t in tasks]
        run = None if any(r is None for r in runs) else sum(r for r in runs if r is not None)
        out[m.label] = {
            "watches": len(m.tags),
            "window_s": elapsed,
            "processes": len({t.pid for t in tasks}),
            "threads": len(tasks),
            "cpu_s": cpu,  # utime + stime: whole clock ticks
            "run_s": run,  # schedstat: exact
            # Of one CPU, from the exact figure where there is one.
            "cpu_pct": 100 * (run if run is not None else cpu) / elapsed,
            "wakes": sum(t.wakes for t in tasks),
            "wakes_per_s": sum(t.wakes for t in tasks) / elapsed,
            "tasks_ended": len(gone),
            "tasks_new": sum(t.new for t in tasks),
        }
        if m is rearm:
            out[m.label]["tasks"] = rearm_tasks(tasks, timeline)
    if rearm is not None:
        out["rearm"]["heartbeat"] = heartbeat_check(rearm, out["rearm"]["tasks"])
    return out


def rearm_tasks(
    tasks: Sequence[TaskDelta], timeline: list[dict[tuple[int, int], TaskSample]]
) -> list[dict[str, Any]]:
    """Each rearm thread: its wake-ups, CPU, and in which seconds of the window it woke."""
    rows = []
    for t in sorted(tasks, key=lambda t: (-t.wakes, t.pid, t.tid)):
        key = (t.pid, t.tid)
        woke = [
            k
            for k in range(1, len(timeline))
            if key in timeline[k]
            and timeline[k][key].wakes > timeline[k - 1].get(key, timeline[k][key]).wakes
        ]
        rows.append(
            {
                "process": t.process,
                "pid": t.pid,
                "tid": t.tid,
                "thread": "main" if t.tid == t.pid else proc_comm(t.pid, t.tid),
                "wakes": t.wakes,
                "cpu_ms": t.cpu_s * 1000,
                "run_ms": None if t.run_s is None else t.run_s * 1000,
                "woke_in_seconds": woke,
                "new": t.new,
            }
        )
    return rows


def proc_comm(pid: int, tid: int) -> str:
    got = proc_stat(pid, tid)
    return f"thread {tid} ({got[0].comm})" if got else f"thread {tid}"


def heartbeat_check(member: Member, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Wake-ups of rearm that are not the heartbeat.

    The keeper wakes only when the daemon beats, so the seconds the keeper woke are the
    beats; any wake of another rearm task more than 1 s away from a beat is something else.
    """
    beats = sorted({s for t in tasks if "keeper" in t["process"] for s in t["woke_in_seconds"]})
    other = []
    for t in tasks:
        if "keeper" in t["process"]:
            continue
        for s in t["woke_in_seconds"]:
            if not any(abs(s - b) <= 1 for b in beats):
                other.append({"thread": f"{t['process']} {t['thread']}", "second": s})
    return {"beat_seconds": beats, "beat_interval_s": beat_interval(member), "other_wakes": other}


def beat_interval(member: Member) -> float | None:
    """The daemon beats three times per heartbeat_timeout (rearm/daemon/heartbeat.py)."""
    peer = member.peer
    if not isinstance(peer, RearmGroup) or peer.cluster is None:
        return None
    with suppress(OSError, ValueError):
        text = (peer.cluster.home / "etc" / "cluster.toml").read_text()
        for line in text.splitlines():
            if line.startswith("heartbeat_timeout"):
                return int(line.split("=")[1].split("#")[0]) / 3
    return None


# =========================================================================== 4. mass failure


def mass_failure(cfg: Config, member: Member) -> dict[str, Any]:
    """SIGKILL every watched probe at once; time until each one has started again."""
    sock = member.collector.path
    latest = member.collector.latest()
    pids = {tag: latest[tag].pid for tag in member.tags if tag in latest}
    not_running = [t for t in member.tags if t not in pids or not is_probe(pids[t], sock)]
    if not_running:
        raise SetupError(f"before the kill: {len(not_running)} probes not running")
    log(f"{member.label}: killing {len(pids)} probes ...")
    t0 = now_ns()
    for pid in pids.values():
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    sent = now_ns()
    got = member.collector.wait_for(member.tags, t0, cfg.args.mass_timeout, member.peer.alive)
    restarted = {tag: s for tag, s in got.items() if s.pid != pids[tag]}
    out = {
        "watches": len(member.tags),
        "kill_loop_ms": (sent - t0) / 1e6,
        "recovered": len(restarted),
        **spread(restarted.values(), t0),
        "complete": len(restarted) == len(member.tags),
    }
    log(
        f"{member.label}: {len(restarted)}/{len(member.tags)} back"
        + (f", all in {out['all_s']:.3f} s" if out["complete"] else "")
    )
    return out


# =========================================================================== the fleet run


def fleet_names(cfg: Config) -> list[str]:
    return [s for s in ("rearm", "supervisord", "runit", "s6", "monit") if s in cfg.supervisors]


def run_fleet(cfg: Config, report: dict[str, Any]) -> None:
    """N watches under every supervisor: start-up, memory, idle, mass failure, in that order.

    Started one after the other (each start-up timed alone), then left running together:
    memory is read, one idle window is measured for all, then each has its mass failure
    alone. Everything is stopped at the end, also on errors and signals.
    """
    n = cfg.args.watches
    wanted = set(cfg.benchmarks)
    members: list[Member] = []
    try:
        with phase(cfg, f"fleet start-up, {n} watches"):
            for name in fleet_names(cfg):
                member = make_member(cfg, name, n)
                members.append(member)
                start_member(cfg, member)
        live = [m for m in members if m.ok]
        quiesce(cfg)
        report["startup"] = {m.label: m.startup or {"error": m.error} for m in members}
        if "memory" in wanted:
            report.setdefault("memory", {})[str(n)] = {
                m.label: memory_of(m) if m.ok else {"error": m.error} for m in members
            }
        if "idle" in wanted and live:
            with phase(cfg, f"idle window, {n} watches"):
                report["idle"] = idle_window(cfg, live)
        if "mass" in wanted:
            with phase(cfg, f"mass failure, {n} watches"):
                report["mass"] = {}
                for m in members:
                    report["mass"][m.label] = mass_or_error(cfg, m)
    finally:
        with phase(cfg, "fleet stop"):
            for m in reversed(members):
                stop_member(m)
        report.setdefault("notes", {}).update({m.label: m.peer.notes for m in members})


def mass_or_error(cfg: Config, member: Member) -> dict[str, Any]:
    if not member.ok:
        return {"error": member.error}
    try:
        return mass_failure(cfg, member)
    except SetupError as exc:
        member.error = str(exc)
        return {"error": str(exc)}


def startup_script(cfg: Config) -> dict[str, Any]:
    """Benchmark 5b: rearm with a start.sh of N armload lines."""
    member = make_member(cfg, "rearm", cfg.args.watches, declarative=False)
    try:
        start_member(cfg, member)
        return member.startup if member.ok else {"error": member.error}
    finally:
        stop_member(member)


# =========================================================================== 6. roundtrip


def script_armload(cluster: RearmCluster, tmp: Path) -> Path:
    """The armload a start script runs: found by a start script of the daemon itself, so
    that any change to the folder the daemon puts first on the scripts' PATH is followed."""
    out = tmp / "armload.path"
    cluster.ok("rearm", "group", "create", "pathcheck", "--no-auto-start")
    start = cluster.home / "etc" / "groups" / "pathcheck" / "start.sh"
    start.write_text(
        '#!/bin/sh\ncase "$REARM_EVENT" in\n'
        f"START) command -v armload > {shlex.quote(str(out))} ;;\nesac\n"
    )
    cluster.ok("rearm", "group", "start", "pathcheck")
    cluster.ok("rearm", "group", "stop", "pathcheck")
    found = out.read_text().strip()
    if not found:
        raise SetupError("no armload on the PATH the daemon gives its start scripts")
    return Path(found)


def shown_path(path: Path, home: Path) -> str:
    """A path under the temporary REARM_HOME as $REARM_HOME/..., with what it is."""
    what = "a script" if path.read_bytes()[:2] == b"#!" else "a binary"
    first = path.read_bytes().split(b"\n", 1)[0][:80].decode(errors="replace")
    where = f"$REARM_HOME/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)
    return f"{where} ({what}" + (f", {first})" if what == "a script" else ")")


def interpreter_of(program: Path) -> tuple[str, str]:
    """The Python that runs `program` (its #! line), for the bare-interpreter comparison."""
    with program.open("rb") as f:
        first = f.readline(256)
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        if words and os.path.basename(words[0]).startswith("python"):
            return words[0], f"the interpreter of {program.name}'s #! line"
    found = shutil.which("python3") or sys.executable
    return found, f"{program.name} is not a Python script: python3 from PATH"


def time_script(tmp: Path, name: str, lines: list[str], env: dict[str, str]) -> float:
    """Wall seconds of `sh` running these lines (set -e: any failure is an error)."""
    path = tmp / f"{name}.sh"
    path.write_text("set -e\n" + "\n".join(lines) + "\n")
    started = time.monotonic()
    done = subprocess.run(
        ["sh", str(path)], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SetupError(f"{name}.sh: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def bench_roundtrip(cfg: Config) -> dict[str, Any]:
    k: int = cfg.args.roundtrip_calls
    tmp = Path(tempfile.mkdtemp(prefix="roundtrip-", dir=cfg.root))
    notes: list[str] = []
    cluster = RearmCluster(cfg.bindir, tmp, notes)
    collector = Collector(tmp / "probe.sock")
    try:
        cluster.create()
        cluster.start_daemon(60)
        in_scripts = script_armload(cluster, tmp)
        variants = {"start-script PATH": in_scripts}
        venv = cfg.bindir / "armload"
        if venv.resolve() != in_scripts.resolve():
            variants["venv"] = venv
        else:
            notes.append(f"the start scripts' armload is {venv} itself: measured once")
        python, why = interpreter_of(in_scripts)
        env = cluster.env

        def per_call(seconds: float) -> float:
            return 1000 * (seconds - empty) / k

        empty = time_script(tmp, "empty", [], env)
        bare = [f"{shlex.quote(python)} -I -S -c pass"] * k
        bare_ms = [per_call(time_script(tmp, "bare", bare, env))]
        rows: dict[str, Any] = {}
        probe = shlex.join([str(cfg.helpers.probe), str(collector.path)])
        for label, armload in variants.items():
            armkill = armload.parent / "armkill"
            ids = [f"RT{i + 1}" for i in range(k)]
            loads = [f"{armload} {w} /R {REARM_RETRY} /H 1 /INT 0 {probe} {w}" for w in ids]
            kills = [f"{armkill} {w}" for w in ids]
            log(f"roundtrip: {k} armload + {k} armkill ({label}: {armload}) ...")
            rows[label] = {
                "armload": str(armload),
                "shown": shown_path(armload, cluster.home),
                "armload_ms": per_call(time_script(tmp, "armload", loads, env)),
                "armkill_ms": per_call(time_script(tmp, "armkill", kills, env)),
            }
        # Again at the end: drifting load shows as a difference between the two.
        bare_ms.append(per_call(time_script(tmp, "bare", bare, env)))
        return {
            "calls": k,
            "python": python,
            "python_why": why,
            "bare_ms": sum(bare_ms) / len(bare_ms),
            "bare_ms_each": bare_ms,
            "shell_start_ms": 1000 * empty,
            "variants": rows,
            "notes": notes,
        }
    finally:
        cluster.shutdown(timeout=120)
        collector.close()
        kill_leftover_probes([collector.path])


# =========================================================================== leftovers


def leftovers(root: Path) -> list[str]:
    """Processes of this run still alive: their argv, working directory or probe socket is
    under the run's temporary directory (so they are ours). Killed, and reported."""
    rootb = os.fsencode(root)
    found = []
    for pid in all_pids():
        if pid == os.getpid():
            continue
        got = proc_stat(pid)
        if got is None or got[0].state in ("Z", "X"):
            continue
        argv = proc_argv(pid)
        try:
            cwd = os.fsencode(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            cwd = b""
        sock = probe_socket_of(pid) or b""
        if any(rootb in a for a in argv) or cwd.startswith(rootb) or sock.startswith(rootb):
            found.append(f"{pid} {b' '.join(argv).decode(errors='replace')[:80]}")
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return found


# =========================================================================== report


def ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b > 0:
        return float(a) / float(b)
    return None


def fmt(value: Any, spec: str = ".3f", unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        return f"{value:{spec}}{unit}"
    return str(value)


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line]
    for r in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return out


def ratio_lines(section: dict[str, Any], key: str, what: str, base: str = "rearm") -> list[str]:
    """rearm/peer for one figure of a section whose rows are keyed by supervisor."""
    mine = section.get(base, {})
    lines = []
    for name, row in section.items():
        # rearm's other variant is a row of its own, not a peer.
        if name.startswith("rearm") or not isinstance(row, dict):
            continue
        line = f"  {base}/{name} {what}: {show_ratio(ratio(mine.get(key), row.get(key)))}"
        if row.get("watches") and mine.get("watches") and row["watches"] != mine["watches"]:
            line += f" (NOT like for like: {name} at {row['watches']} watches)"
        lines.append(line)
    return lines


def render_startup(report: dict[str, Any]) -> list[str]:
    s = report["startup"]
    rows = []
    for name, r in s.items():
        if "error" in r:
            rows.append([name, "-", "-", "-", "-", f"FAILED: {r['error'][:60]}"])
            continue
        rows.append(
            [name, str(r["watches"]), fmt(r["first_s"]), fmt(r["median_s"]), fmt(r["all_s"]),
             fmt(r.get("command_s"))]
        )  # fmt: skip
    out = [
        "5. start-up of N watches: from the start command to the last probe's start datagram",
        *table(["supervisor", "N", "first s", "median s", "all s", "command s"], rows),
        *ratio_lines(s, "all_s", "all started"),
    ]
    if "rearm start.sh" in s:
        out += ratio_lines(s, "all_s", "all started", base="rearm start.sh")
    return out


def render_memory(report: dict[str, Any]) -> list[str]:
    out = ["3. memory: RSS of the main process; PSS summed over all supervisor processes"]
    for n, section in sorted(report["memory"].items(), key=lambda kv: int(kv[0])):
        rows = []
        for name, r in section.items():
            if "error" in r:
                rows.append([name, "-", "-", "-", "-", f"FAILED: {r['error'][:60]}"])
                continue
            rows.append(
                [name, str(r["watches"]), str(r["processes"]), fmt(r["main_rss_mb"], ".1f"),
                 fmt(r["pss_mb"], ".1f"), fmt(r["rss_sum_mb"], ".1f")]
            )  # fmt: skip
        headers = ["supervisor", "N", "processes", "main RSS MB", "PSS MB", "sum RSS MB"]
        out += [f" {n} watches:", *table(headers, rows)]
        out += ratio_lines(section, "main_rss_mb", "main RSS")
        out += ratio_lines(section, "pss_mb", "PSS")
    return out


def render_idle(report: dict[str, Any]) -> list[str]:
    s = report["idle"]
    rows = []
    window = 0.0
    for name, r in s.items():
        window = r["window_s"]
        run_ms = None if r["run_s"] is None else r["run_s"] * 1000
        rows.append(
            [name, str(r["watches"]), str(r["processes"]), str(r["threads"]),
             fmt(r["cpu_s"] * 1000, ".0f"), fmt(run_ms, ".2f"), fmt(r["cpu_pct"], ".4f"),
             str(r["wakes"]), fmt(r["wakes_per_s"], ".2f")]
        )  # fmt: skip
    headers = ["supervisor", "N", "procs", "threads", "CPU ms (stat)", "run ms (schedstat)"]
    headers += ["% of 1 CPU", "wakes", "wakes/s"]
    out = [
        f"2. idle cost over {window:.0f} s (all supervisors idle at once); CPU: utime+stime in"
        " 10 ms ticks, and the exact run time from schedstat (used for the %)",
        *table(headers, rows),
        *ratio_lines(s, "run_s", "CPU (run time)"),
        *ratio_lines(s, "wakes", "wake-ups"),
    ]
    rearm = s.get("rearm")
    if rearm:
        out.append(" rearm, per task (seconds of the window in which it woke):")
        for t in rearm["tasks"][:20]:
            woke = t["woke_in_seconds"]
            shown = ", ".join(map(str, woke[:12])) + (" ..." if len(woke) > 12 else "")
            out.append(
                f"  {t['process']:<18} {t['thread']:<24} {t['wakes']:>6} wakes "
                f"{fmt(t['run_ms'], '.3f'):>9} ms  [{shown}]"
            )
        hb = rearm["heartbeat"]
        out.append(
            f"  heartbeat: beats seen in seconds {hb['beat_seconds']} (interval "
            f"{fmt(hb['beat_interval_s'], '.0f')} s); wakes away from a beat: "
            f"{len(hb['other_wakes'])}"
        )
    return out


def render_mass(report: dict[str, Any]) -> list[str]:
    s = report["mass"]
    rows = []
    for name, r in s.items():
        if "error" in r:
            rows.append([name, "-", "-", "-", "-", "-", f"FAILED: {r['error'][:60]}"])
            continue
        status = "ok" if r["complete"] else "INCOMPLETE"
        rows.append(
            [name, str(r["watches"]), str(r["recovered"]), fmt(r.get("first_s")),
             fmt(r.get("median_s")), fmt(r.get("all_s") if r["complete"] else None), status]
        )  # fmt: skip
    return [
        "4. mass failure: N probes SIGKILLed at once; time (s) until they have started again",
        *table(["supervisor", "N", "back", "first s", "median s", "all s", "status"], rows),
        *ratio_lines(s, "all_s", "all back"),
        f"  (monit: cycle {MONIT_CYCLE} s, the least `set daemon` accepts)",
    ]


def render_roundtrip(report: dict[str, Any]) -> list[str]:
    r = report["roundtrip"]
    rows = [["python3 -I -S -c pass", fmt(r["bare_ms"], ".2f"), "1"]]
    for label, v in r["variants"].items():
        for command in ("armload", "armkill"):
            ms = v[f"{command}_ms"]
            rows.append(
                [f"{command} ({label})", fmt(ms, ".2f"), show_ratio(ratio(ms, r["bare_ms"]))]
            )
    return [
        f"6. round trip from sh: {r['calls']} calls each, ms per call (shell start subtracted)",
        *table(["command", "ms per call", "ratio to bare"], rows),
        *(f"  {label}: {v['shown']}" for label, v in r["variants"].items()),
        f"  bare interpreter: {r['python']} ({r['python_why']}); "
        f"{' then '.join(f'{x:.2f}' for x in r['bare_ms_each'])} ms",
        *(f"  note: {n}" for n in r["notes"]),
    ]


def render(report: dict[str, Any]) -> str:
    lines = [machine_line(report["machine"]), f"rearm: {report['config']['rearm_bin']}", ""]
    if "latency" in report:
        lines += ["1. " + restart_latency.render_table(report["latency"])[0]]
        lines += [*restart_latency.render_table(report["latency"])[1:], ""]
    for key, part in (
        ("startup", render_startup),
        ("memory", render_memory),
        ("idle", render_idle),
        ("mass", render_mass),
        ("roundtrip", render_roundtrip),
    ):
        if key in report:
            lines += [*part(report), ""]
    for name, notes in report.get("notes", {}).items():
        lines += [f"{name}: note: {n}" for n in notes]
    lines += ["issue 7 goals:"] + [
        f"  [{g['verdict']}] {g['goal']}: {g['figure']}" for g in report["goals"]
    ]
    lines += ["", "leftover processes after the run: " + (", ".join(report["leftovers"]) or "none")]
    lines += ["run time: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["phases"].items())]
    return "\n".join(lines)


# =========================================================================== goals


def goals(report: dict[str, Any]) -> list[dict[str, str]]:
    """The targets of issue 7, each met / NOT MET / not measured, with its figure."""
    out: list[dict[str, str]] = []

    def add(goal: str, ok: bool | None, figure: str) -> None:
        verdict = "not measured" if ok is None else ("met" if ok else "NOT MET")
        out.append({"goal": goal, "verdict": verdict, "figure": figure})

    lat = report.get("latency", {}).get("results", {})
    r, f = lat.get("rearm", {}), lat.get("floor", {})
    if "median_ms" in r and "median_ms" in f:
        x = r["median_ms"] / f["median_ms"]
        add(
            "restart median <= 2x floor",
            x <= 2,
            f"rearm {r['median_ms']:.2f} ms = {x:.2f}x floor {f['median_ms']:.2f} ms",
        )
    else:
        add("restart median <= 2x floor", None, "no figure")
    if "p99_ms" in r:
        add("restart p99 < 10 ms", r["p99_ms"] < 10, f"rearm p99 {r['p99_ms']:.2f} ms")
    else:
        add("restart p99 < 10 ms", None, "no figure")

    idle = report.get("idle", {}).get("rearm")
    if idle:
        other = idle["heartbeat"]["other_wakes"]
        add(
            "idle CPU < 0.1 %",
            idle["cpu_pct"] < 0.1,
            f"{idle['cpu_pct']:.4f} % over {idle['window_s']:.0f} s, {idle['watches']} watches",
        )
        add(
            "no periodic wake-ups but the heartbeat",
            not other,
            f"{idle['wakes']} wakes; {len(other)} away from a heartbeat beat"
            + (f" (e.g. {other[0]['thread']})" if other else ""),
        )
    else:
        add("idle CPU < 0.1 %", None, "no figure")

    mem = report.get("memory", {}).get("1000", {}).get("rearm", {})
    if mem.get("main_rss_mb") is not None:
        add(
            "RSS < 60 MB at 1,000 watches",
            mem["main_rss_mb"] < 60,
            f"{mem['main_rss_mb']:.1f} MB (PSS of daemon + keeper {mem['pss_mb']:.1f} MB)",
        )
    else:
        add("RSS < 60 MB at 1,000 watches", None, "not measured at 1,000 watches")

    mass = report.get("mass", {}).get("rearm", {})
    if mass.get("complete"):
        add(
            "mass failure recovered < 1 s",
            mass["all_s"] < 1,
            f"{mass['watches']} back in {mass['all_s']:.3f} s",
        )
    else:
        add(
            "mass failure recovered < 1 s",
            None if not mass else False,
            mass.get("error", "incomplete") if mass else "no figure",
        )

    script = report.get("startup", {}).get("rearm start.sh", {})
    if "all_s" in script and script.get("watches") == 1000:
        add("1,000-line start script < 20 s", script["all_s"] < 20, f"{script['all_s']:.1f} s")
    elif "all_s" in script:
        add(
            "1,000-line start script < 20 s",
            None,
            f"{script['watches']} lines in {script['all_s']:.1f} s (not 1,000)",
        )
    else:
        add("1,000-line start script < 20 s", None, script.get("error", "no figure"))

    rt = report.get("roundtrip")
    if rt:
        v = rt["variants"]["start-script PATH"]
        worst = max(v["armload_ms"], v["armkill_ms"]) / rt["bare_ms"]
        add(
            "armload round trip <= 2x bare interpreter",
            worst <= 2,
            f"armload {v['armload_ms']:.1f} ms, armkill {v['armkill_ms']:.1f} ms, "
            f"bare {rt['bare_ms']:.1f} ms per call ({worst:.2f}x)",
        )
    else:
        add("armload round trip <= 2x bare interpreter", None, "no figure")
    return out


# =========================================================================== main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--only",
        help="comma-separated benchmarks and/or supervisors (default: all)\n"
        f"benchmarks: {','.join(BENCHMARKS)}\nsupervisors: {','.join(SUPERVISORS)}",
    )
    p.add_argument("--watches", type=int, help=f"N (default {FULL['watches']})")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
    p.add_argument(
        "--quick", action="store_true", help="a short smoke run (small N, short windows)"
    )
    p.add_argument(
        "--idle-seconds", type=float, help=f"idle window (default {FULL['idle_seconds']:g})"
    )
    p.add_argument(
        "--trials", type=int, help=f"restart-latency kills each (default {FULL['trials']})"
    )
    p.add_argument("--jitter", type=float, help="random s before each latency trial (default 1)")
    p.add_argument("--roundtrip-calls", type=int, help=f"K (default {FULL['roundtrip_calls']})")
    p.add_argument(
        "--memory-watches",
        type=int,
        help=f"the second memory point (default {FULL['memory_watches']})",
    )
    p.add_argument(
        "--monit-watches",
        type=int,
        help=f"monit's N when N is larger (default {FULL['monit_watches']}: monit starts one\n"
        "service at a time, 0.2-0.5 s each, so 1,000 would take most of an hour)",
    )
    p.add_argument("--settle", type=float, help="s of quiet after start-up (default 5)")
    p.add_argument("--startup-timeout", type=float, default=900.0, help="s for N to start")
    p.add_argument("--mass-timeout", type=float, default=600.0, help="s for N to come back")
    p.add_argument(
        "--rearm-bin",
        default=str(PROJECT_DIR / ".venv" / "bin"),
        metavar="DIR",
        help="rearm, armload, armkill, armem from DIR (default: %(default)s)",
    )
    p.add_argument(
        "--install-rearm",
        action="store_true",
        help="pip install this source tree into bench/.work/rearm-venv and measure that",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the latency jitter")
    p.add_argument("--cc", default="gcc", help="C compiler for bench/*.c")
    p.add_argument("--reinstall", action="store_true", help="recreate the supervisord venv")
    p.add_argument("-v", "--verbose", action="store_true", help="print every latency sample")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    names = [s.strip() for s in (args.only or "").split(",") if s.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS) - set(SUPERVISORS))
    if unknown:
        p.error(f"--only: unknown {unknown}; choose from {BENCHMARKS} and {SUPERVISORS}")
    args.benchmarks = [b for b in BENCHMARKS if b in names] or list(BENCHMARKS)
    chosen = [s for s in SUPERVISORS if s in names] or list(SUPERVISORS)
    args.supervisors = [s for s in SUPERVISORS if s in chosen or s == "rearm"]
    if args.watches < 1 or args.roundtrip_calls < 1 or args.trials < 1:
        p.error("--watches, --roundtrip-calls and --trials must be at least 1")
    return args


def available(names: list[str], notes: list[str]) -> list[str]:
    """The supervisors that are installed; the others are named in the report."""
    out = []
    for name in names:
        missing = PEERS[name].missing() if name in PEERS else None
        if missing:
            notes.append(f"{name}: {missing}: left out")
        else:
            out.append(name)
    return out


def run_suite(cfg: Config, report: dict[str, Any]) -> None:
    wanted = cfg.benchmarks
    if "latency" in wanted:
        with phase(cfg, "restart latency"):
            report["latency"] = bench_latency(cfg)
    if any(b in wanted for b in FLEET):
        run_fleet(cfg, report)
    if "memory" in wanted and cfg.args.memory_watches != cfg.args.watches:
        with phase(cfg, f"memory, {cfg.args.memory_watches} watches"):
            point = memory_point(cfg, cfg.args.memory_watches)
            report.setdefault("memory", {})[str(cfg.args.memory_watches)] = point
    if "startup" in wanted:
        with phase(cfg, f"rearm start.sh, {cfg.args.watches} armload lines"):
            report.setdefault("startup", {})["rearm start.sh"] = startup_script(cfg)
    if "roundtrip" in wanted:
        with phase(cfg, "armload round trip"):
            report["roundtrip"] = bench_roundtrip(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    notes: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="rearm-suite-"))
    try:
        # The helpers of this run, in its own folder: another run rebuilding bench/.work/
        # meanwhile cannot swap the probe under the supervisors.
        helpers = build_helpers(args.cc, root / "bin")
        bindir = rearm_bindir(None if args.install_rearm else args.rearm_bin, str(PROJECT_DIR))
    except SetupError as exc:
        log(f"error: {exc}")
        shutil.rmtree(root, ignore_errors=True)
        return 2
    # restart_latency.py makes its temporary directories with tempfile too: under root.
    tempfile.tempdir = str(root)
    cfg = Config(args, helpers, bindir, root, args.benchmarks, available(args.supervisors, notes))
    report: dict[str, Any] = {
        "machine": machine_facts(),
        "config": {
            "watches": args.watches,
            "benchmarks": cfg.benchmarks,
            "supervisors": cfg.supervisors,
            "idle_seconds": args.idle_seconds,
            "trials": args.trials,
            "roundtrip_calls": args.roundtrip_calls,
            "memory_watches": args.memory_watches,
            "monit_watches": args.monit_watches,
            "quick": args.quick,
            "rearm_bin": str(bindir),
        },
        "notes": {"suite": notes},
    }
    started = time.monotonic()
    try:
        run_suite(cfg, report)
    finally:
        report["leftovers"] = leftovers(root)
        tempfile.tempdir = None
        shutil.rmtree(root, ignore_errors=True)
    cfg.phases["total"] = time.monotonic() - started
    report["phases"] = cfg.phases
    report["goals"] = goals(report)
    if args.json:  # first: a figure is kept even if printing it fails
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(render(report))
    return 1 if report["leftovers"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        sys.exit(130)
