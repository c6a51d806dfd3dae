"""The machine's own kinds: process counts, a process tree's resources, disk space and memory,
network links (a veth pair in a network namespace of the test's own), and real disk I/O."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rearm.monitors.base import Status, Target

from ..integration.harness import start_time
from .helpers import probe_once, running, spec, toml_str

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_root(why: str) -> None:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"needs root: {why}")
        pytest.skip(f"needs root: {why}")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; ended (by pid) at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def start(procs: list[subprocess.Popen[bytes]], *argv: str) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.PIPE)
    procs.append(p)
    return p


# --- process --------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_process_counts_by_name_and_command_line(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    marker = f"{random.randrange(10**6, 10**7)}.5"  # a sleep no one else runs
    for _ in range(3):
        start(procs, "/bin/sleep", marker)
    base = f'kind = "process"\nprocess = "sleep"\ncmdline = {toml_str(f"^/bin/sleep {marker}$")}\n'
    three = await probe_once(spec(base + 'min = 2\nmax = 5\nuser = "root"\n'))
    assert three.status is Status.OK and three.message.startswith("3 processes (")
    over = await probe_once(spec(base + "max = 2\n"))
    assert (over.status, over.message.endswith(": more than 2")) == (Status.ERROR, True)
    for p in procs:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    gone = await probe_once(spec(base))
    assert (gone.status, gone.message) == (Status.ERROR, "0 processes: fewer than 1")


# --- resource -------------------------------------------------------------------------------
GROWER = """
import sys, threading, os, time
held = []
child = os.fork()
if child == 0:
    time.sleep(1000)
    os._exit(0)
for line in sys.stdin:
    what, _, n = line.partition(" ")
    n = int(n)
    if what == "grow":       # n MiB more, 1 MiB a time, touched so that it is resident
        for _ in range(n):
            held.append(bytearray(1 << 20))
            time.sleep(0.005)
    elif what == "files":
        held += [open("/dev/null") for _ in range(n)]
    elif what == "threads":
        for _ in range(n):
            threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
    elif what == "zombies":
        for _ in range(n):
            if os.fork() == 0:
                os._exit(0)
    elif what == "spin":
        end = time.monotonic() + n
        while time.monotonic() < end:
            pass
    print("done", flush=True)
"""


class Grower:
    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-c", GROWER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        procs.append(self.p)

    @property
    def target(self) -> Target:
        return Target("APP", pid=self.p.pid)

    async def do(self, command: str, wait: bool = True) -> None:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write(f"{command}\n".encode())
        self.p.stdin.flush()
        if wait:
            line = await asyncio.to_thread(self.p.stdout.readline)
            assert line == b"done\n"


def resource(*limits: str) -> str:
    return 'kind = "resource"\ninterval = 0.2\nfailures = 1\n' + "\n".join(limits)


@pytest.mark.asyncio
async def test_resource_catches_a_program_whose_rss_grows_past_the_limit(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    app = Grower(procs)
    s = spec(resource('rss_max = "120M"', 'rss_warning = "80M"'))
    async with running(s, target=app.target) as rec:
        await rec.until(lambda: rec.results, timeout=5)
        first = rec.results[0]
        assert first.status is Status.OK and first.message.startswith("2 processes: rss ")
        await app.do("grow 70", wait=False)  # about 80 MiB: a warning on the way
        await rec.until(lambda: "warning" in rec.states(), timeout=15)
        await app.do("grow 60", wait=False)
        await rec.until(rec.faults, timeout=15)
    [fault] = rec.faults()
    assert "rss " in fault.event.message and "above 120.0 MiB" in fault.event.message
    assert rec.states() == ["normal", "warning", "error"]


@pytest.mark.asyncio
async def test_resource_rss_growth_over_a_window(procs: list[subprocess.Popen[bytes]]) -> None:
    app = Grower(procs)
    s = spec(resource('rss_growth_max = "40M"', "growth_window = 1"))
    async with running(s, target=app.target) as rec:
        # A window of history first: growth is only judged against a sample a window old.
        await rec.until(lambda: len(rec.results) >= 8, timeout=10)
        assert set(rec.statuses()) == {Status.OK}
        await app.do("grow 60")
        await rec.until(rec.faults, timeout=10)
    assert "rss_growth " in rec.faults()[0].event.message


@pytest.mark.asyncio
async def test_resource_files_threads_zombies_and_cpu(procs: list[subprocess.Popen[bytes]]) -> None:
    app = Grower(procs)
    await app.do("files 50")
    await app.do("threads 10")
    await app.do("zombies 3")
    target = app.target
    fds = await probe_once(spec(resource("fds_max = 40")), target)
    assert fds.status is Status.ERROR and "above 40" in fds.message, fds
    threads = await probe_once(spec(resource("threads_warning = 5", "threads_max = 100")), target)
    assert threads.status is Status.WARNING and "threads 12 above the warning 5" in threads.message
    zombies = await probe_once(spec(resource("zombies_max = 2")), target)
    assert zombies.status is Status.ERROR and "zombies 3 above 2" in zombies.message
    async with running(spec(resource("cpu_max = 50")), target=target) as rec:
        await app.do("spin 3", wait=False)
        await rec.until(rec.faults, timeout=10)
    assert "cpu " in rec.faults()[0].event.message


@pytest.mark.asyncio
async def test_resource_of_a_target_that_is_not_running_is_unknown() -> None:
    result = await probe_once(spec(resource('rss_max = "1G"')), Target("APP"))
    assert (result.status, result.message) == (Status.UNKNOWN, "APP is not running")


# --- system ---------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_system_disk_space_memory_swap_and_load(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    path = f"path = {toml_str(str(tmp_path))}\n"
    fine = await probe_once(
        spec(
            'kind = "system"\n' + path + 'free_min = "1M"\ninodes_free_min = 10\n'
            'memory_available_min = "1M"\nswap_used_max = "100%"\nload_max = 100000\n'
        )
    )
    assert fine.status is Status.OK and "free " in fine.message and "load " in fine.message
    short = await probe_once(spec('kind = "system"\n' + path + f"free_min = {free + 2**40}\n"))
    assert short.status is Status.ERROR and "free " in short.message and "below" in short.message
    warn = await probe_once(
        spec('kind = "system"\n' + path + f'free_min = "1M"\nfree_warning = {free + 2**40}\n')
    )
    assert warn.status is Status.WARNING and "below the warning" in warn.message
    missing = await probe_once(spec('kind = "system"\npath = "/no/such/path"\nfree_min = "1%"\n'))
    assert missing.status is Status.ERROR and "No such file" in missing.message


# --- link -----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_link_of_loopback_and_of_a_missing_interface() -> None:
    lo = await probe_once(spec('kind = "link"\ninterface = "lo"\n'))
    assert (lo.status, lo.message) == (Status.OK, "lo: carrier, operstate unknown")
    none = await probe_once(spec('kind = "link"\ninterface = "rearm-none0"\n'))
    assert (none.status, none.message) == (Status.ERROR, "rearm-none0: no such interface")


LINK_IN_NAMESPACE = """
import json, sys
from rearm.monitors.link import link_state
result = link_state(sys.argv[1])
print(json.dumps({"state": result.status.value, "message": result.message}))
"""


def test_link_loses_its_carrier_when_the_peer_goes_down() -> None:
    """A veth pair in a network namespace of the test's own (with its own sysfs in a private
    mount namespace): the probe sees carrier, then none when the peer is down, then admin down."""
    need_root("a network namespace and a veth pair")
    if shutil.which("ip") is None:
        pytest.fail("needs ip (iproute2)")
    probe = f"{sys.executable} -c {shlex.quote(LINK_IN_NAMESPACE)} rearm-a"
    script = (
        "set -e\nmount -t sysfs sysfs /sys\n"
        "ip link add rearm-a type veth peer name rearm-b\n"
        "ip link set rearm-a up\nip link set rearm-b up\n"
        f"{probe}\nip link set rearm-b down\n{probe}\nip link set rearm-a down\n{probe}\n"
    )
    r = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )
    assert r.returncode == 0, r.stderr
    up, peer_down, down = (json.loads(line) for line in r.stdout.splitlines())
    assert up == {"state": "ok", "message": "rearm-a: carrier, operstate up"}
    assert peer_down["state"] == "error" and "no carrier" in peer_down["message"]
    assert down["state"] == "error" and "administratively down" in down["message"]


# --- disk -----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_disk_writes_syncs_and_reads_back(tmp_path: Path) -> None:
    probe_file = tmp_path / "probe"
    result = await probe_once(spec(f'kind = "disk"\nfile = {toml_str(str(probe_file))}\n'))
    assert result.status is Status.OK and "write+fsync" in result.message, result
    assert probe_file.stat().st_size == 4096
    bad = await probe_once(spec('kind = "disk"\nfile = "/no/such/folder/probe"\n'))
    assert bad.status is Status.ERROR and "No such file or directory" in bad.message


def test_no_probe_process_is_left_behind() -> None:
    """Every test above ended its probes' processes (their sessions are gone)."""
    me = os.getpid()
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == me]
    assert [c for c in children if start_time(c) is not None] == []


def _parent(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[1])
