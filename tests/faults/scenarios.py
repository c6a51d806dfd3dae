"""Crash scenarios against the real daemon, shared by tests/faults and bench/soak.py.

Each scenario builds N watches, injects faults (SIGKILL of watched processes) and kills the
daemon with SIGKILL at a moment chosen by a seeded random generator, restarts it, waits until
everything settled and then checks the invariants of DESIGN principle 4 ("the store is the
truth"). A scenario returns its figures; a violated invariant raises AssertionError with the
seed-dependent details, so a failure can be replayed with the printed seed.

The kill moment is a condition on the store (e.g. "at least k watches recorded"), read through a
read-only SQLite connection: that hits the interesting windows far more often than a timer.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.harness import BIN, Cluster, start_time, wait_for

SLEEP = "/bin/sleep"
ALIVE_STATES = ("running", "starting", "restarting")


@dataclass
class Figures:
    """What a scenario measured: printed by the soak bench, asserted on by the tests."""

    name: str
    watches: int
    daemon_kills: int = 0
    process_kills: int = 0
    invariants: int = 0  # single facts checked: one per watch and invariant, per event row...
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        extra = f" ({'; '.join(self.notes)})" if self.notes else ""
        return (
            f"{self.name}: N={self.watches} daemon kills={self.daemon_kills} "
            f"process kills={self.process_kills} invariants checked={self.invariants} "
            f"{self.seconds:.1f} s{extra}"
        )


# --- looking at the store and at /proc ---------------------------------------------------------
def db_query(cluster: Cluster, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the state database without taking part in its writes (read-only, WAL readers)."""
    uri = f"file:{cluster.home / 'var' / 'state.db'}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def db_count(cluster: Cluster, sql: str, args: tuple[Any, ...] = ()) -> int:
    try:
        return int(db_query(cluster, sql, args)[0][0])
    except sqlite3.OperationalError:
        return 0  # not created yet, or locked for a moment: the trigger looks again


def target_processes(prefix: str) -> dict[str, list[int]]:
    """Live (non-zombie) processes whose environment carries REARM_WATCH=<prefix...>, by watch.

    rearm puts REARM_WATCH into every target's environment: this finds duplicates and orphans
    without trusting the daemon's own idea of which pid belongs to which watch.
    """
    needle = f"REARM_WATCH={prefix}".encode()
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        for var in environ.split(b"\0"):
            if var.startswith(needle):
                if start_time(pid) is not None:  # a zombie is not a running service
                    found.setdefault(var.split(b"=", 1)[1].decode().upper(), []).append(pid)
                break
    return found


def kill_daemon_when(cluster: Cluster, what: str, check: Any, timeout: float = 60) -> None:
    """SIGKILL the daemon the moment `check()` holds (the fault-injection point)."""
    wait_for(what, check, timeout=timeout, interval=0.005)
    cluster.kill_daemon(signal.SIGKILL)


def kill_daemon_after_faults(cluster: Cluster, faults: int, what: str) -> None:
    """SIGKILL the daemon once `faults` faults in all are recorded in its database."""
    kill_daemon_when(
        cluster, what, lambda: db_count(cluster, "SELECT count(*) FROM faults") >= faults
    )


def settled(cluster: Cluster, prefix: str) -> dict[str, dict[str, Any]] | None:
    """The watches once nothing is in flight: no start, restart or stop pending."""
    watches = {k: w for k, w in cluster.watches().items() if k.startswith(prefix)}
    for w in watches.values():
        if w["state"] in ("starting", "restarting") or w.get("stopping"):
            return None
        if w["state"] == "running" and not w["pid"]:
            return None
    return watches


def wait_settled(cluster: Cluster, prefix: str, timeout: float = 60) -> dict[str, dict[str, Any]]:
    return wait_for(f"watches {prefix}* to settle", lambda: settled(cluster, prefix), timeout)


# --- invariants ----------------------------------------------------------------------------
def check_processes(cluster: Cluster, prefix: str, watches: dict[str, dict[str, Any]]) -> int:
    """Exactly one live process per running watch, at the pid status shows; none otherwise.
    Returns how many facts were checked (one per watch, one per process found)."""
    procs = target_processes(prefix)
    problems = []
    for key, w in sorted(watches.items()):
        pids = procs.pop(key, [])
        if w["state"] == "running":
            if pids != [w["pid"]]:
                problems.append(f"{key}: running as pid {w['pid']} but processes {pids}")
        elif pids:
            problems.append(f"{key}: {w['state']} but processes {pids} still run")
    checked = len(watches) + sum(len(p) for p in procs.values())
    for key, pids in sorted(procs.items()):
        problems.append(f"{key}: orphan processes {pids} (no such watch)")
    assert not problems, f"{len(problems)} process invariant(s) violated: {problems[:10]}"
    return checked


def check_event_log(cluster: Cluster) -> int:
    """No torn record: every events row has its fields and a data column that parses, and the
    database file passes SQLite's integrity check. Returns the rows checked."""
    [(integrity,)] = db_query(cluster, "PRAGMA integrity_check")
    assert integrity == "ok", f"state database damaged: {integrity}"
    rows = db_query(cluster, "SELECT id, ts, kind, severity, message, data FROM events")
    torn = []
    for id_, ts, kind, severity, message, data in rows:
        if not isinstance(ts, float) or not kind or not severity or message is None:
            torn.append(id_)
            continue
        if data is not None:
            try:
                if not isinstance(json.loads(data), dict):
                    torn.append(id_)
            except ValueError:
                torn.append(id_)
    assert not torn, f"torn event rows: {torn[:10]}"
    # `rearm log --json` must read them all as well (it is what users see).
    cluster.events()
    return len(rows)


def check_faults(
    cluster: Cluster, watches: dict[str, dict[str, Any]], expected: dict[str, int]
) -> int:
    """Each watch counted exactly the faults made to it: in status and in the faults table."""
    stored = Counter(
        str(r[0]) for r in db_query(cluster, "SELECT watch FROM faults") if str(r[0]) in expected
    )
    problems = []
    for key, n in sorted(expected.items()):
        w = watches.get(key)
        if w is None:
            problems.append(f"{key}: missing")
            continue
        if w["faults_in_window"] != n or stored[key] != n:
            problems.append(
                f"{key}: {n} fault(s) made, status says {w['faults_in_window']}, "
                f"faults table has {stored[key]} (restarts {w['restarts']}, {w['state']})"
            )
    assert not problems, f"{len(problems)} counter invariant(s) violated: {problems[:10]}"
    return 2 * len(expected)  # status and table, per watch


def check_final_actions(cluster: Cluster, expected: set[str], prefix: str) -> int:
    """Exactly one final action per escalated watch: one row (done) and one event; no other."""
    rows = db_query(cluster, "SELECT watch, done FROM final_actions")
    fired = Counter(str(w).upper() for w, _ in rows if str(w).upper().startswith(prefix))
    undone = [w for w, done in rows if not done]
    events = Counter(
        str(e["watch"]).upper()
        for e in cluster.events("final_action")
        if str(e["watch"]).upper().startswith(prefix)
    )
    problems = [
        f"{key}: {fired[key]} final_actions row(s), {events[key]} final_action event(s)"
        for key in sorted(expected | set(fired) | set(events))
        if fired[key] != (key in expected) or events[key] != (key in expected)
    ]
    if undone:
        problems.append(f"final actions never marked done: {undone[:10]}")
    assert not problems, f"{len(problems)} final-action invariant(s) violated: {problems[:10]}"
    return 2 * len(expected | set(fired) | set(events)) + len(rows)


# --- building watches ----------------------------------------------------------------------
def declare_group(
    cluster: Cluster, group: str, ids: list[str], retry: int, interval: int = 0
) -> None:
    """N watches declared in group.toml: the daemon loads them itself, fast, at group start."""
    decls = "".join(
        f'\n[[watches]]\nid = "{i}"\ncommand = ["{SLEEP}", "1000"]\nretry = {retry}\n'
        f"interval = {interval}\n"
        for i in ids
    )
    cluster.rearm("group", "create", group, "--no-auto-start")
    with open(cluster.home / "etc" / "groups" / group / "group.toml", "a") as f:
        f.write(decls)
    # No script: the declarations are the whole start.
    for name in ("start.sh", "stop.sh"):
        (cluster.home / "etc" / "groups" / group / name).unlink(missing_ok=True)
    cluster.rearm("group", "start", group)


def burst(cluster: Cluster, watches: dict[str, dict[str, Any]]) -> int:
    """SIGKILL every watched process at once (each one checked by its start time first)."""
    n = 0
    for w in watches.values():
        pid = w["pid"]
        if pid and start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)
            n += 1
    return n


def finish(cluster: Cluster, group: str, prefix: str) -> None:
    """Take the group offline; then no process of the scenario may be left (no orphan)."""
    cluster.rearm("group", "stop", group)
    wait_for("no process left", lambda: not target_processes(prefix), timeout=30)


# --- the scenarios ---------------------------------------------------------------------------
def group_start_crash(cluster: Cluster, rng: random.Random, n: int, prefix: str) -> Figures:
    """Kill the daemon while a start script with N armload lines runs.

    The script runs on in its own session: its armload lines fail while no daemon answers and
    succeed again once the new daemon is up. Each line records its exit status, so "armload
    said yes" can be checked against "the watch exists, with one process".
    """
    fig = Figures("group start", n)
    t0 = time.monotonic()
    trace = cluster.home / "trace"
    done = cluster.home / "script.done"
    lines = "\n".join(
        f'armload {prefix}{i} /R 3 {SLEEP} 1000; echo "{prefix}{i} $?" >> {trace}' for i in range(n)
    )
    cluster.write_group("gs", f"{lines}\ntouch {done}")
    client = subprocess.Popen(
        [str(BIN / "rearm"), "group", "start", "gs"],
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        k = rng.randint(1, n - 1)
        kill_daemon_when(
            cluster,
            f"{k} watches recorded",
            lambda: db_count(cluster, "SELECT count(*) FROM watches") >= k,
        )
        fig.daemon_kills += 1
        fig.notes.append(f"killed at >= {k} watches")
        cluster.start_daemon()
        client.wait(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    wait_for("the orphaned start script to finish", done.exists, timeout=60)
    watches = wait_settled(cluster, prefix)
    fig.invariants += check_processes(cluster, prefix, watches)
    said_yes = [
        line.split()[0].upper() for line in trace.read_text().splitlines() if line.endswith(" 0")
    ]
    missing = [i for i in said_yes if i not in watches or watches[i]["state"] != "running"]
    assert not missing, f"armload succeeded but the watch does not run: {missing[:10]}"
    fig.invariants += len(said_yes)
    fig.invariants += check_faults(cluster, watches, {k: 0 for k in watches})
    group = cluster.group("gs")
    assert group is not None and group["state"] == "error", group  # documented: start cut short
    fig.notes.append(f"{len(watches)} watches after restart")
    fig.invariants += check_event_log(cluster)
    finish(cluster, "gs", prefix)
    fig.seconds = time.monotonic() - t0
    return fig


def restart_wait_crash(
    cluster: Cluster, rng: random.Random, n: int, prefix: str, rounds: int = 1
) -> Figures:
    """Kill every process, then the daemon while the restarts wait out their /INT."""
    fig = Figures("restart /INT wait", n)
    t0 = time.monotonic()
    ids = [f"{prefix}{i}" for i in range(n)]
    declare_group(cluster, "gi", ids, retry=9, interval=1)
    watches = wait_settled(cluster, prefix)
    for r in range(1, rounds + 1):
        fig.process_kills += burst(cluster, watches)
        k = rng.randint(0, n)
        # After k faults are recorded, a random part of the /INT wait (1 s) passes as well.
        kill_daemon_after_faults(cluster, (r - 1) * n + k, f"{k} faults of round {r}")
        fig.daemon_kills += 1
        cluster.start_daemon()
        watches = wait_settled(cluster, prefix)
        fig.invariants += check_processes(cluster, prefix, watches)
        fig.invariants += check_faults(cluster, watches, {i.upper(): r for i in ids})
        bad = [k for k, w in watches.items() if w["restarts"] != r or w["state"] != "running"]
        assert not bad, f"round {r}: restarts not {r}: {[(b, watches[b]) for b in bad[:5]]}"
        fig.invariants += len(watches)
    fig.invariants += check_event_log(cluster)
    finish(cluster, "gi", prefix)
    fig.seconds = time.monotonic() - t0
    return fig


def burst_crash(
    cluster: Cluster, rng: random.Random, n: int, prefix: str, rounds: int = 2
) -> Figures:
    """Bursts of faults: every process SIGKILLed at once, the daemon killed while it restarts
    them (after a random number k of the burst's faults were recorded, k = 0 included: then
    most processes die while no daemon watches and count as one fault each when it returns)."""
    fig = Figures("fault bursts", n)
    t0 = time.monotonic()
    ids = [f"{prefix}{i}".upper() for i in range(n)]
    declare_group(cluster, "gb", ids, retry=9, interval=0)
    watches = wait_settled(cluster, prefix)
    for r in range(1, rounds + 1):
        fig.process_kills += burst(cluster, watches)
        k = rng.randint(0, n)
        kill_daemon_after_faults(cluster, (r - 1) * n + k, f"{k} faults of round {r}")
        fig.daemon_kills += 1
        fig.notes.append(f"round {r} killed at >= {k} faults")
        cluster.start_daemon()
        watches = wait_settled(cluster, prefix)
        fig.invariants += check_processes(cluster, prefix, watches)
        fig.invariants += check_faults(cluster, watches, dict.fromkeys(ids, r))
        bad = [k for k, w in watches.items() if w["restarts"] != r or w["state"] != "running"]
        assert not bad, f"round {r}: restarts not {r}: {[(b, watches[b]) for b in bad[:5]]}"
        fig.invariants += len(watches)
    fig.invariants += check_event_log(cluster)
    finish(cluster, "gb", prefix)
    fig.seconds = time.monotonic() - t0
    return fig


def final_action_crash(cluster: Cluster, rng: random.Random, n: int, prefix: str) -> Figures:
    """/R 1 and final action `none`: one burst restarts everything, a second escalates
    everything; the daemon is killed once k watches are recorded as escalated."""
    fig = Figures("final actions", n)
    t0 = time.monotonic()
    cluster.ok("armem", "/M", "none")
    ids = [f"{prefix}{i}".upper() for i in range(n)]
    declare_group(cluster, "gf", ids, retry=1, interval=0)
    watches = wait_settled(cluster, prefix)
    fig.process_kills += burst(cluster, watches)

    def restarted() -> dict[str, dict[str, Any]] | None:
        ws = settled(cluster, prefix)
        return ws if ws and all(w["restarts"] == 1 for w in ws.values()) else None

    watches = wait_for("round 1 restarts", restarted, timeout=60)
    fig.process_kills += burst(cluster, watches)
    k = rng.randint(1, n)
    kill_daemon_when(
        cluster,
        f"{k} watches escalated",
        lambda: db_count(cluster, "SELECT count(*) FROM watches WHERE state='escalated'") >= k,
    )
    fig.daemon_kills += 1
    fig.notes.append(f"killed at >= {k} escalated")
    cluster.start_daemon()
    # A final action recorded but cut short by the crash is finished in the background.
    wait_for(
        "final actions done",
        lambda: db_count(cluster, "SELECT count(*) FROM final_actions WHERE done=0") == 0,
    )
    watches = wait_settled(cluster, prefix)
    fig.invariants += check_processes(cluster, prefix, watches)
    fig.invariants += check_faults(cluster, watches, dict.fromkeys(ids, 2))
    bad = [k for k, w in watches.items() if w["state"] != "escalated"]
    assert not bad, f"not escalated: {[(b, watches[b]['state']) for b in bad[:5]]}"
    fig.invariants += len(watches)
    fig.invariants += check_final_actions(cluster, set(ids), prefix)
    fig.invariants += check_event_log(cluster)
    finish(cluster, "gf", prefix)
    fig.seconds = time.monotonic() - t0
    return fig


def armkill_crash(cluster: Cluster, rng: random.Random, n: int, prefix: str) -> Figures:
    """Kill the daemon while a shell loop armkills half of the N watches, one by one."""
    fig = Figures("armkill", n)
    t0 = time.monotonic()
    ids = [f"{prefix}{i}".upper() for i in range(n)]
    declare_group(cluster, "gk", ids, retry=3, interval=0)
    wait_settled(cluster, prefix)
    doomed = ids[: n // 2]
    trace = cluster.home / "kill.trace"
    script = "".join(f'armkill {i}; echo "{i} $?" >> {trace}\n' for i in doomed)
    killer = subprocess.Popen(
        ["/bin/sh", "-c", script],
        env=cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    cluster.started_pids.append(killer.pid)
    try:
        k = rng.randint(1, len(doomed))
        kill_daemon_when(
            cluster,
            f"{k} watches ended",
            lambda: db_count(cluster, "SELECT count(*) FROM watches") <= n - k,
        )
        fig.daemon_kills += 1
        fig.notes.append(f"killed at >= {k} armkills")
        cluster.start_daemon()
        killer.wait(timeout=120)
    finally:
        if killer.poll() is None:
            os.killpg(killer.pid, signal.SIGKILL)
            killer.wait()
    watches = wait_settled(cluster, prefix)
    fig.invariants += check_processes(cluster, prefix, watches)
    said_yes = {
        line.split()[0].upper() for line in trace.read_text().splitlines() if line.endswith(" 0")
    }
    still = sorted(said_yes & set(watches))
    assert not still, f"armkill succeeded but the watch is still there: {still[:10]}"
    survivors = set(ids[n // 2 :])
    lost = sorted(survivors - set(watches))
    assert not lost, f"watches nobody armkilled are gone: {lost[:10]}"
    fig.invariants += len(said_yes) + len(survivors)
    fig.invariants += check_faults(cluster, watches, {k: 0 for k in watches})
    fig.notes.append(f"{len(said_yes)} armkills answered")
    fig.invariants += check_event_log(cluster)
    finish(cluster, "gk", prefix)
    fig.seconds = time.monotonic() - t0
    return fig


def state_write_crash(cluster: Cluster, rng: random.Random, n: int, prefix: str) -> Figures:
    """Kill the daemon in the middle of a stream of state writes: two shell loops in parallel
    armload watches one by one and armkill each one three steps later, so that the daemon
    commits (watch rows, events, deletions) without pause. The kill falls after a random
    number of events were committed since the loops began -- anywhere in that stream, between
    or during transactions. Afterwards every answer the loops got must hold: an armload that
    said yes runs (once), an armkill that said yes left nothing behind, and the database is
    whole."""
    fig = Figures("state writes", n)
    t0 = time.monotonic()
    lag = 3
    halves = [list(range(0, n // 2)), list(range(n // 2, n))]
    trace = cluster.home / "write.trace"
    scripts = []
    for half in halves:
        lines = []
        for pos, i in enumerate(half):
            load = f"armload {prefix}{i} /R 3 {SLEEP} 1000"
            lines.append(f'{load}; echo "load {prefix}{i} $?" >> {trace}')
            if pos >= lag:
                j = half[pos - lag]
                lines.append(f'armkill {prefix}{j}; echo "kill {prefix}{j} $?" >> {trace}')
        scripts.append("\n".join(lines))
    base = db_count(cluster, "SELECT max(id) FROM events")
    loops = [
        subprocess.Popen(
            ["/bin/sh", "-c", script],
            env=cluster.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        for script in scripts
    ]
    cluster.started_pids.extend(p.pid for p in loops)
    try:
        # An armload commits one event (watch_start), an armkill one (watch_stopped): about
        # 2n in all. Should the loops end before k, the kill comes then (late, but it comes).
        k = rng.randint(1, max(1, int(1.9 * n)))
        kill_daemon_when(
            cluster,
            f"{k} events committed",
            lambda: (
                db_count(cluster, "SELECT max(id) FROM events") >= base + k
                or all(p.poll() is not None for p in loops)
            ),
            timeout=300,
        )
        fig.daemon_kills += 1
        fig.notes.append(f"killed at >= {k} events")
        cluster.start_daemon()
        for p in loops:
            p.wait(timeout=300)
    finally:
        for p in loops:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    watches = wait_settled(cluster, prefix)
    fig.invariants += check_processes(cluster, prefix, watches)
    answers: dict[str, dict[str, str]] = {}
    for line in trace.read_text().splitlines():
        verb, key, code = line.split()
        answers.setdefault(key.upper(), {})[verb] = code
    loaded = {k for k, a in answers.items() if a.get("load") == "0"}
    killed = {k for k, a in answers.items() if a.get("kill") == "0"}
    # An armkill cut off by the crash (answered neither yes nor "no daemon" -- exit status 3,
    # when it could not even connect) may or may not have been carried out.
    unknown = {k for k, a in answers.items() if a.get("kill") not in (None, "0", "3")}
    kept = loaded - killed - unknown

    def told(keys: list[str]) -> str:
        return ", ".join(f"{k} {answers[k]}" for k in keys[:10])

    still = sorted(killed & set(watches))
    assert not still, f"armkill succeeded but the watch is still there: {told(still)}"
    missing = sorted(k for k in kept if k not in watches)
    assert not missing, f"armload succeeded, no armkill did, but the watch is gone: {told(missing)}"
    not_running = sorted(k for k in kept if watches[k]["state"] != "running")
    assert not not_running, f"armload succeeded but the watch does not run: {told(not_running)}"
    fig.invariants += len(kept) + len(killed)
    fig.notes.append(f"{len(unknown)} armkill(s) cut off")
    fig.invariants += check_faults(cluster, watches, {k: 0 for k in watches})
    fig.notes.append(f"{len(loaded)} armloads and {len(killed)} armkills answered yes")
    fig.invariants += check_event_log(cluster)
    for key in sorted(watches):
        cluster.ok("armkill", key)
    wait_for("no process left", lambda: not target_processes(prefix), timeout=60)
    fig.seconds = time.monotonic() - t0
    return fig


SCENARIOS = {
    "group_start": group_start_crash,
    "restart_wait": restart_wait_crash,
    "burst": burst_crash,
    "final_action": final_action_crash,
    "armkill": armkill_crash,
    "state_write": state_write_crash,
}
