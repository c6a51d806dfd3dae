"""What the benchmarks share: commands, the compiled helpers, processes, machine facts.

Process identity is the rule everywhere: the bench signals only processes it started, found
by PID (checked against their start time) or by this run's own temporary socket path, never
by name alone. Other test runs may be going on on the same machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
PROJECT_DIR = BENCH_DIR.parent

# Bound on every helper command (pip excepted), so a hung CLI cannot hang the bench.
COMMAND_TIMEOUT = 60.0
# How long a supervisor gets to stop after SIGTERM before its process group is SIGKILLed.
STOP_GRACE = 10.0
# Seconds per clock tick of /proc/PID/stat's utime and stime.
CLOCK_TICK = 1.0 / os.sysconf("SC_CLK_TCK")

Alive = Callable[[], str | None]


class SetupError(Exception):
    """A supervisor could not be installed, configured or started."""


# --------------------------------------------------------------------------- commands


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


def spawn(
    cmd: Sequence[str | Path], log: BinaryIO, *, env: dict[str, str] | None, cwd: Path
) -> subprocess.Popen[bytes]:
    """A supervisor, in a session of its own: its process group is ours to kill, no other."""
    return subprocess.Popen(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def compile_c(cc: str, source: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename, so a concurrent or interrupted run never
    # executes a half-written binary.
    tmp = output.with_name(f"{output.name}.{os.getpid()}.tmp")
    run_checked(f"compile {source.name}", [cc, "-O2", "-Wall", "-Wextra", "-o", tmp, source])
    tmp.replace(output)


@dataclass(frozen=True)
class Helpers:
    """The C programs of bench/, compiled into bench/.work/."""

    probe: Path
    floor: Path
    reaper: Path


def build_helpers(cc: str, folder: Path = WORK_DIR) -> Helpers:
    out = {name: folder / name for name in ("probe", "floor", "reaper")}
    for name, path in out.items():
        compile_c(cc, BENCH_DIR / f"{name}.c", path)
    return Helpers(**out)


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the daemon's Manager binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, alive: Alive | None = None
) -> None:
    """Poll `check` until it holds; SetupError at the deadline or when `alive` says died."""
    deadline = time.monotonic() + timeout
    while not check():
        problem = alive() if alive else None
        if problem:
            raise SetupError(f"while waiting for {what}: {problem}")
        if time.monotonic() > deadline:
            raise SetupError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- processes


def proc_argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def proc_environ(pid: int, name: bytes) -> bytes | None:
    try:
        data = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = name + b"="
    for item in data.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :]
    return None


def probe_socket_of(pid: int) -> bytes | None:
    """The socket path a probe reports to, or None when pid is not a probe.

    A probe is `probe SOCKET ...`, or, in a runit/s6 service directory, `run` (a symbolic
    link to the probe) with the path in $PROBE_SOCKET (s6-supervise passes the service name
    as run's first argument, which is why the name decides and not the argument count).
    """
    argv = proc_argv(pid)
    if not argv or not argv[0]:
        return None
    if os.path.basename(argv[0]) == b"run":
        return proc_environ(pid, b"PROBE_SOCKET")
    return argv[1] if len(argv) >= 2 and argv[1] else None


def is_probe(pid: int, sock_path: Path) -> bool:
    """True if pid is a live probe reporting to sock_path (our unique temp path).

    Checked before every kill so a recycled PID can never make us signal a stranger.
    """
    return probe_socket_of(pid) == os.fsencode(sock_path)


def all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def probes_of(sock_paths: Iterable[Path]) -> list[int]:
    """Live probes reporting to one of these sockets (this run's temporary paths)."""
    wanted = {os.fsencode(p) for p in sock_paths}
    return [pid for pid in all_pids() if probe_socket_of(pid) in wanted]


def kill_leftover_probes(sock_paths: Sequence[Path]) -> list[int]:
    """SIGKILL probes still reporting to our sockets once their supervisor is gone.

    Matching on this run's temporary socket paths selects only processes this run started
    (through a supervisor), never anything else.
    """
    killed: list[int] = []
    for pid in probes_of(sock_paths):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    start: int  # start time in clock ticks after boot: with pid, a process's identity
    comm: str
    state: str


def proc_stat(pid: int, tid: int | None = None) -> tuple[ProcStat, list[bytes]] | None:
    """The parsed /proc/PID[/task/TID]/stat, with the fields after comm (None if gone)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    # comm may hold spaces and parentheses: it ends at the last ')'.
    close = data.rindex(b")")
    comm = data[data.index(b"(") + 1 : close].decode(errors="replace")
    fields = data[close + 2 :].split()
    stat = ProcStat(
        pid=pid, ppid=int(fields[1]), start=int(fields[19]), comm=comm, state=fields[0].decode()
    )
    return stat, fields


def process_table() -> dict[int, ProcStat]:
    table: dict[int, ProcStat] = {}
    for pid in all_pids():
        got = proc_stat(pid)
        if got is not None:
            table[pid] = got[0]
    return table


def descendants(root: int, table: dict[int, ProcStat]) -> list[int]:
    children: dict[int, list[int]] = {}
    for st in table.values():
        children.setdefault(st.ppid, []).append(st.pid)
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def supervisor_tree(main: int, sock_paths: Iterable[Path]) -> tuple[list[int], dict[int, ProcStat]]:
    """`main` and its descendants except the watched programs (the probes reporting to one of
    `sock_paths`), with the process table they were found in.

    By socket, not by binary: another run may rebuild bench/.work/probe meanwhile, and the
    running probes' /proc/PID/exe then reads "... (deleted)".
    """
    table = process_table()
    wanted = {os.fsencode(p) for p in sock_paths}
    found = [main] if main in table else []
    for pid in descendants(main, table):
        if table[pid].state not in ("Z", "X") and probe_socket_of(pid) not in wanted:
            found.append(pid)
    return found, table


def same_process(pid: int, start: int) -> bool:
    got = proc_stat(pid)
    return got is not None and got[0].start == start and got[0].state not in ("Z", "X")


def kill_recorded(seen: dict[int, int]) -> list[int]:
    """SIGKILL processes recorded earlier as ours (pid -> start time) that still live.

    The start time check means a pid reused by another process is never touched.
    """
    killed = []
    for pid, start in seen.items():
        if same_process(pid, start):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def stop_process(
    proc: subprocess.Popen[bytes], name: str, notes: list[str], grace: float = STOP_GRACE
) -> None:
    """SIGTERM by PID; after `grace`, SIGKILL its process group (its own session)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
        return
    except subprocess.TimeoutExpired:
        pass
    notes.append(
        f"{name} (pid {proc.pid}) did not exit within {grace:g} s of SIGTERM: "
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


# --------------------------------------------------------------------------- supervisord


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


def supervisord_conf(tmp: Path, programs: dict[str, list[str]]) -> str:
    """supervisord.conf for `programs` (name -> argv), each restarted at once when it dies."""

    def q(value: Path | str) -> str:
        # supervisord expands %(name)s in values, so a literal % must be doubled.
        return str(value).replace("%", "%%")

    # supervisord keeps a pipe and a log file open per program: raise its descriptor limit
    # (minfds), as anyone running hundreds of programs under it must.
    minfds = max(1024, 4 * len(programs) + 256)
    text = f"""\
[unix_http_server]
file={q(tmp / "supervisor.sock")}
chmod=0700

[supervisord]
nodaemon=true
logfile={q(tmp / "supervisord.log")}
pidfile={q(tmp / "supervisord.pid")}
childlogdir={q(tmp)}
loglevel=info
minfds={minfds}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{q(tmp / "supervisor.sock")}
"""
    for name, argv in programs.items():
        text += f"""
[program:{name}]
command={q(shlex.join(argv))}
directory={q(tmp)}
autostart=true
autorestart=true
; startsecs=0: a probe killed right after its start is an ordinary exit, not a failed
; start, so supervisord never goes to BACKOFF (whose delay would not be a restart cost).
startsecs=0
startretries=1000000
stopsignal=TERM
stopwaitsecs=5
redirect_stderr=true
stdout_logfile={q(tmp / f"{name}.out")}
"""
    return text


# --------------------------------------------------------------------------- rearm


def rearm_bindir(rearm_bin: str | None, project: str) -> Path:
    """rearm's commands: --rearm-bin DIR, or a venv with `project` pip-installed afresh."""
    if rearm_bin:
        bindir = Path(rearm_bin).resolve()
    else:
        venv = WORK_DIR / "rearm-venv"
        bindir = venv / "bin"
        if not (bindir / "python").exists():
            run_checked("create rearm venv", [sys.executable, "-m", "venv", venv])
        # Installed afresh every run (pip rebuilds a local directory each time): the
        # daemon is under development and a stale copy would measure old code.
        run_checked(
            f"pip install {project}",
            [bindir / "python", "-m", "pip", "install", "--quiet", project],
            timeout=600,
        )
    missing = [n for n in ("rearm", "armload", "armkill", "armem") if not (bindir / n).exists()]
    if missing:
        raise SetupError(f"rearm: {', '.join(missing)} not found in {bindir}")
    return bindir


class RearmCluster:
    """A rearm daemon in drill mode with a temporary REARM_HOME, and its commands.

    Never able to reboot anything: drill mode is set in cluster.toml and in the daemon's
    environment, the final action is set to none, and both are checked before any watch is
    made (start_daemon refuses otherwise).
    """

    def __init__(self, bindir: Path, tmp: Path, notes: list[str]) -> None:
        self.bindir = bindir
        self.tmp = tmp
        self.notes = notes
        self.home = tmp / "home"
        self.home.mkdir()
        # Inherited REARM_* settings must not leak in (a real REARM_HOME above all).
        env = {k: v for k, v in os.environ.items() if not k.startswith("REARM_")}
        env["REARM_HOME"] = str(self.home)
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        env["REARM_DRILL"] = "1"
        self.env = env
        self.daemon: subprocess.Popen[bytes] | None = None
        self.log = tmp / "daemon.log"
        self.info: dict[str, Any] = {"bin": str(bindir)}

    def cmd(self, *args: str | Path) -> list[str | Path]:
        """One of rearm's commands (rearm, armload, armkill, armem) with its arguments."""
        return [self.bindir / str(args[0]), *args[1:]]

    def ok(self, *args: str | Path, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run one of rearm's commands; SetupError unless it succeeds."""
        return run_checked(
            shlex.join(map(str, args[:3])), self.cmd(*args), env=self.env, timeout=timeout
        ).stdout

    def create(self) -> None:
        self.ok("rearm", "cluster", "create", "--name", "bench", "--ip", "127.0.0.1")
        # The Manager on a port of its own: several benchmark daemons may run at once, and
        # one that cannot bind would run without its web server, unlike a real one.
        self.ok("rearm", "cluster", "set", "drill=true", f"manager_port={free_port()}")

    def start_daemon(self, timeout: float) -> None:
        with self.log.open("ab") as log:  # the daemon holds its own copy
            self.daemon = spawn([self.bindir / "rearm", "daemon"], log, env=self.env, cwd=self.tmp)

        def ready() -> bool:
            return run(self.cmd("rearm", "status", "--json"), env=self.env).returncode == 0

        wait_until("the rearm daemon to answer", ready, timeout, self.alive)
        armem = run(self.cmd("armem", "/M", "none"), env=self.env)
        if armem.returncode != 0:
            self.notes.append(f"'armem /M none' failed: {armem.stderr.strip()[:200]}")
        cluster = self.status().get("cluster", {})
        self.info["final_action"] = cluster.get("final_action")
        self.info["drill"] = cluster.get("drill")
        if cluster.get("drill") is not True and cluster.get("final_action") != "none":
            raise SetupError(
                "refusing to kill rearm-watched processes: 'rearm status --json' shows "
                f"drill={cluster.get('drill')!r}, final_action={cluster.get('final_action')!r}"
            )

    def status(self, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        out = self.ok("rearm", "status", "--json", timeout=timeout)
        try:
            status = json.loads(out)
        except json.JSONDecodeError as exc:
            raise SetupError(f"rearm status --json printed no JSON: {out[:200]!r}") from exc
        if not isinstance(status, dict):
            raise SetupError(f"rearm status --json printed {type(status).__name__}")
        return status

    def alive(self) -> str | None:
        if self.daemon is None:
            return "the rearm daemon was not started"
        code = self.daemon.poll()
        if code is None:
            return None
        return f"rearm daemon exited with status {code}; last log lines:\n{tail(self.log)}"

    def pids(self, sock_paths: Iterable[Path]) -> tuple[list[int], dict[int, ProcStat]]:
        """The daemon and its own helpers (the keeper), not the probes it watches."""
        if self.daemon is None or self.daemon.poll() is not None:
            return [], {}
        return supervisor_tree(self.daemon.pid, sock_paths)

    def shutdown(self, timeout: float) -> None:
        """`rearm shutdown --stop-groups`: every group offline, then the daemon exits.

        Never raises: it runs during teardown, where an exception would hide the real error.
        A daemon that does not go is stopped by SIGTERM (it then leaves services running,
        which the caller kills by identity).
        """
        daemon = self.daemon
        if daemon is None or daemon.poll() is not None:
            return
        try:
            cmd = self.cmd("rearm", "shutdown", "--stop-groups")
            done = run(cmd, env=self.env, timeout=timeout)
            if done.returncode != 0:
                self.notes.append(f"rearm shutdown failed: {done.stderr.strip()[:200]}")
            else:
                daemon.wait(timeout)
        except (subprocess.TimeoutExpired, OSError) as exc:
            self.notes.append(f"rearm shutdown: {exc}")
        self.stop_daemon()

    def stop_daemon(self) -> None:
        """SIGTERM (then SIGKILL to its group): the daemon leaves its services running."""
        if self.daemon is not None:
            stop_process(self.daemon, "rearm daemon", self.notes)


# --------------------------------------------------------------------------- report


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: an observed sample, never an interpolation."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


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


def machine_line(m: dict[str, Any]) -> str:
    load = m["loadavg_at_start"]
    return (
        f"machine: {m['cpu_model']}, nproc {m['nproc']} (usable {m['cpus_usable']}), "
        f"{m['kernel']}, {m['python']}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def show_ratio(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0x"
    if value < 1:
        # A plain 0.00x would hide the size of the difference.
        return f"{value:.3g}x (1/{1 / value:.3g})"
    return f"{value:.2f}x"


# --------------------------------------------------------------------------- signals


def _raise_on_signal(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM/SIGHUP into an exception so every finally/ExitStack stops what it started.
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    # Explicit, because a shell starts background jobs with SIGINT ignored and Python
    # then installs no handler; Ctrl-C and kill -INT must both clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_on_signal)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # respect nohup
        signal.signal(signal.SIGHUP, _raise_on_signal)
