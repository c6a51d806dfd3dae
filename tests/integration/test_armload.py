"""armload and armkill against a real daemon and real processes (SPEC §4-5)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from .harness import Cluster, alive, wait_for


def test_restart_after_interval(cluster: Cluster) -> None:
    cluster.ok("armload", "APP", "/R", "3", "/INT", "2", "/bin/sleep", "1000")
    first = cluster.wait_running("APP")
    killed_at = time.monotonic()
    os.kill(first["pid"], signal.SIGKILL)
    restarting = cluster.wait_state("APP", "restarting")
    assert restarting["pid"] is None and restarting["faults_in_window"] == 1
    second = cluster.wait_running("APP", other_than=first["pid"])
    waited = time.monotonic() - killed_at
    assert waited >= 2.0, f"restarted after {waited:.2f} s, before /INT 2"
    assert second["restarts"] == 1
    assert waited < 6.0
    assert not alive(first["pid"])


def test_exceeding_retry_fires_final_action_in_drill(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.ok("armload", "APP", "/R", "2", "/H", "1", "/INT", "0", "/bin/sleep", "1000")
    pid = cluster.wait_running("APP")["pid"]
    for n in (1, 2):
        os.kill(pid, signal.SIGKILL)
        pid = cluster.wait_running("APP", other_than=pid)["pid"]
        assert cluster.watch("APP")["restarts"] == n  # type: ignore[index]
        assert not cluster.events("final_action")
    os.kill(pid, signal.SIGKILL)  # the third fault within /H: 3 > /R 2
    escalated = cluster.wait_state("APP", "escalated")
    assert escalated["faults_in_window"] == 3 and escalated["restarts"] == 2
    actions = wait_for("a final_action event", lambda: cluster.events("final_action"))
    assert len(actions) == 1
    assert actions[0]["watch"] == "APP"
    assert actions[0]["data"]["action"] == "reboot"
    assert actions[0]["data"]["drill"] is True
    assert "reboot" in actions[0]["message"] and "drill" in actions[0]["message"]
    # Escalated watches are not restarted.
    time.sleep(0.3)
    assert cluster.watch("APP")["pid"] is None  # type: ignore[index]


def test_without_retry_the_end_is_logged_and_nothing_restarts(cluster: Cluster) -> None:
    cluster.ok("armload", "ONCE", "/bin/sh", "-c", "exit 3")
    w = cluster.wait_state("ONCE", "failed")
    assert w["detail"] == "exit status 3" and w["restarts"] == 0
    cluster.ok("armload", "CLEAN", "/bin/true")
    assert cluster.wait_state("CLEAN", "stopped")["detail"] == "exit status 0"
    assert not cluster.events("final_action")
    assert {e["watch"] for e in cluster.events("fault")} == {"ONCE", "CLEAN"}


def test_window_expiry_with_a_short_hour(tmp_path: Path) -> None:
    """/H 1 with a 2-second hour (REARM_TEST_HOUR_SECONDS, honoured in drill mode only)."""
    c = Cluster(tmp_path / "home", {"REARM_TEST_HOUR_SECONDS": "2"})
    c.create()
    c.start_daemon()
    try:
        c.ok("armload", "WIN", "/R", "1", "/H", "1", "/INT", "0", "/bin/sleep", "1000")
        pid = c.wait_running("WIN")["pid"]
        os.kill(pid, signal.SIGKILL)
        pid = c.wait_running("WIN", other_than=pid)["pid"]
        wait_for(
            "the first fault to age out", lambda: c.watch("WIN")["faults_in_window"] == 0, timeout=5
        )  # type: ignore[index]
        os.kill(pid, signal.SIGKILL)  # 1 fault in window again: restarted, not escalated
        w = c.wait_running("WIN", other_than=pid)
        assert w["restarts"] == 2 and w["faults_in_window"] == 1
        os.kill(w["pid"], signal.SIGKILL)  # 2 faults within 2 s: over /R 1
        c.wait_state("WIN", "escalated")
    finally:
        c.cleanup()


def test_adopt_running_service(cluster: Cluster) -> None:
    cluster.write_service("sleeper", 'command = ["/bin/sleep", "4242.17"]\n')
    mine = cluster.spawn("/bin/sleep", "4242.17")
    wait_for("the process to exist", lambda: alive(mine.pid))
    r = cluster.run("armload", "SLP", "/S", "sleeper")
    assert r.returncode == 1
    assert "already running" in r.stderr and "/A" in r.stderr and str(mine.pid) in r.stderr
    assert cluster.watch("SLP") is None
    cluster.ok("armload", "SLP", "/S", "/A", "/R", "2", "sleeper")
    w = cluster.wait_running("SLP")
    assert w["pid"] == mine.pid and w["kind"] == "service"
    assert cluster.events("watch_adopt")
    # Its death is noticed and it is restarted by rearm (an adopted process is no child of
    # the daemon: the pidfd tells the end, the status is unknown).
    os.kill(mine.pid, signal.SIGKILL)
    mine.wait()
    again = cluster.wait_running("SLP", other_than=mine.pid)
    assert again["restarts"] == 1


def test_adopt_application_with_a_flag(cluster: Cluster) -> None:
    mine = cluster.spawn("/bin/sleep", "4343")
    wait_for("the process to exist", lambda: alive(mine.pid))
    cluster.ok("armload", "APPA", "/A", "/bin/sleep", "4343")
    assert cluster.wait_running("APPA")["pid"] == mine.pid


READY_LATER = (
    "import socket, sys, time\n"
    "time.sleep(1.0)\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "while True: s.accept()[0].close()\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_wait_returns_only_when_ready(cluster: Cluster, tmp_path: Path) -> None:
    port = _free_port()
    script = tmp_path / "ready_later.py"
    script.write_text(READY_LATER)
    cluster.write_service(
        "late",
        f'command = ["{sys.executable}", "{script}", "{port}"]\n'
        f'ready = {{ tcp = "127.0.0.1:{port}" }}\n',
    )
    began = time.monotonic()
    cluster.ok("armload", "LATE", "/S", "/WAIT", "20", "late")
    assert time.monotonic() - began >= 1.0
    socket.create_connection(("127.0.0.1", port), timeout=2).close()  # it answers right away
    assert cluster.watch("LATE")["state"] == "running"  # type: ignore[index]


def test_wait_times_out_with_nonzero_exit(cluster: Cluster, tmp_path: Path) -> None:
    port = _free_port()
    cluster.write_service(
        "never", f'command = ["/bin/sleep", "1000.18"]\nready = {{ tcp = "127.0.0.1:{port}" }}\n'
    )
    r = cluster.run("armload", "NEVER", "/S", "/WAIT", "1", "never")
    assert r.returncode == 1 and "did not start within 1 s" in r.stderr
    assert cluster.watch("NEVER")["state"] == "starting"  # type: ignore[index]


def test_without_wait_returns_at_once(cluster: Cluster) -> None:
    port = _free_port()
    cluster.write_service(
        "never", f'command = ["/bin/sleep", "1000.19"]\nready = {{ tcp = "127.0.0.1:{port}" }}\n'
    )
    began = time.monotonic()
    cluster.ok("armload", "NOW", "/S", "never")
    assert time.monotonic() - began < 1.0


def test_scr_reruns_start_script_with_recover(cluster: Cluster, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    cluster.write_group(
        "grp",
        f'echo "$REARM_EVENT ${{REARM_WATCH:-}}" >> {trace}\n'
        "armload SCRW /R 2 /SCR /INT 0 /bin/sleep 1000\n"
        "armload PLAIN /R 2 /bin/sleep 1001",
    )
    cluster.rearm("group", "start", "grp")
    first = cluster.wait_running("SCRW")
    plain = cluster.wait_running("PLAIN")
    assert trace.read_text() == "START \n"
    os.kill(first["pid"], signal.SIGKILL)
    again = cluster.wait_running("SCRW", other_than=first["pid"])
    assert again["restarts"] == 1
    assert trace.read_text() == "START \nRECOVER SCRW\n"
    # The other watch of the script was left alone (already running).
    assert cluster.watch("PLAIN")["pid"] == plain["pid"]  # type: ignore[index]
    assert cluster.group("grp")["state"] == "online"  # type: ignore[index]


def test_scr_needs_a_group(cluster: Cluster) -> None:
    r = cluster.run("armload", "X", "/R", "1", "/SCR", "/bin/sleep", "5")
    assert r.returncode == 1 and "/SCR needs a group" in r.stderr


def test_armkill_t_kills_a_process_ignoring_sigterm_and_its_children(
    cluster: Cluster, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    cluster.ok(
        "armload",
        "STUBBORN",
        "/R",
        "3",
        "/bin/sh",
        "-c",
        f"trap '' TERM; /bin/sleep 1000 & echo $! > {pids}; echo $$ >> {pids}; wait",
    )
    w = cluster.wait_running("STUBBORN")
    child, parent = (
        int(x)
        for x in wait_for(
            "the pids", lambda: len(pids.read_text().split()) == 2 and pids.read_text().split()
        )
    )
    assert parent == w["pid"]
    began = time.monotonic()
    out = cluster.ok("armkill", "STUBBORN", "/T", "1")
    took = time.monotonic() - began
    assert 1.0 <= took < 5.0
    assert "SIGKILL" in out
    wait_for("both processes gone", lambda: not alive(parent) and not alive(child), timeout=5)
    assert cluster.watch("STUBBORN") is None
    assert not cluster.events("fault")  # an armkill is no fault


def test_armkill_stops_gracefully(cluster: Cluster) -> None:
    cluster.ok("armload", "GENTLE", "/R", "3", "/bin/sleep", "1000")
    pid = cluster.wait_running("GENTLE")["pid"]
    began = time.monotonic()
    out = cluster.ok("armkill", "gentle")  # IDs are case-insensitive
    assert time.monotonic() - began < 2.0 and out == ""
    assert not alive(pid) and cluster.watch("GENTLE") is None
    assert not cluster.events("fault")


def test_armkill_c_leaves_it_running(cluster: Cluster) -> None:
    cluster.ok("armload", "KEEP", "/R", "3", "/bin/sleep", "1000")
    pid = cluster.wait_running("KEEP")["pid"]
    cluster.ok("armkill", "KEEP", "/C")
    assert cluster.watch("KEEP") is None
    assert alive(pid)
    os.killpg(pid, signal.SIGKILL)  # ours to end now: rearm no longer watches it
    time.sleep(0.2)
    assert not cluster.events("restart")


def test_stop_signal_and_stop_command_of_a_service(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    cluster.write_service("svc", 'command = ["/bin/sleep", "1000.21"]\nstop_signal = "INT"\n')
    cluster.ok("armload", "SVC", "/S", "svc")
    cluster.wait_running("SVC")
    cluster.ok("armkill", "SVC")
    assert "killed by SIGINT" in cluster.events("watch_stopped")[-1]["message"]
    cluster.write_service(
        "svc2",
        'command = ["/bin/sleep", "1001.22"]\n'
        f'stop_command = ["/bin/sh", "-c", "touch {marker}"]\n',
    )
    cluster.ok("armload", "SVC2", "/S", "svc2")
    pid = cluster.wait_running("SVC2")["pid"]
    # The stop command does not stop it: armkill /T 2 then kills it and says so.
    out = cluster.ok("armkill", "SVC2", "/T", "2")
    assert marker.exists() and "SIGKILL" in out and not alive(pid)


def test_duplicate_id_refused_while_alive(cluster: Cluster) -> None:
    cluster.ok("armload", "DUP", "/bin/sleep", "1000")
    r = cluster.run("armload", "dup", "/bin/sleep", "5")
    assert r.returncode == 1 and "already in use" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_logs_go_to_a_file_per_watch(cluster: Cluster) -> None:
    cluster.ok(
        "armload", "TALK", "/R", "1", "/bin/sh", "-c", "echo hello; echo oops >&2; sleep 1000"
    )
    log = cluster.home / "var" / "log" / "watches" / "TALK.log"
    wait_for("the log lines", lambda: log.exists() and "oops" in log.read_text())
    assert log.read_text().splitlines()[:2] == ["hello", "oops"]


def test_application_gets_callers_environment(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "env"
    r = cluster.run(
        "armload",
        "ENVY",
        "/bin/sh",
        "-c",
        f"echo $GREETING $REARM_WATCH > {out}",
        env={"GREETING": "bonjour"},
    )
    assert r.returncode == 0, r.stderr
    wait_for("the output", lambda: out.exists() and out.read_text().strip())
    assert out.read_text().split() == ["bonjour", "ENVY"]


def test_relative_program_is_resolved_by_the_caller(cluster: Cluster) -> None:
    cluster.ok("armload", "REL", "sleep", "1000")
    w = cluster.wait_running("REL")
    assert w["target"].split()[0].startswith("/") and w["target"].endswith("sleep 1000")


@pytest.mark.parametrize("program", ["/nonexistent/prog", "/etc/hostname"])
def test_unstartable_program_refused_and_nothing_recorded(cluster: Cluster, program: str) -> None:
    r = cluster.run("armload", "NOPE", "/R", "3", program)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert cluster.watch("NOPE") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")
def test_u_runs_the_application_as_that_user(cluster: Cluster) -> None:
    import pwd
    import tempfile

    shared = tempfile.TemporaryDirectory(prefix="rearm-test-u-")  # reachable by nobody
    os.chmod(shared.name, 0o777)
    out = Path(shared.name) / "ids"
    cluster.ok(
        "armload", "ASUSER", "/U", "nobody", "/bin/sh", "-c", f"id -u > {out}; id -G >> {out}"
    )
    wait_for("the output", lambda: out.exists() and len(out.read_text().splitlines()) == 2)

    nobody = pwd.getpwnam("nobody")
    uid, groups = out.read_text().splitlines()
    assert int(uid) == nobody.pw_uid
    assert "0" not in groups.split(), "root's groups must be dropped"
    r = cluster.run("armload", "NOUSER", "/U", "no_such_user_x", "/bin/true")
    assert r.returncode == 1 and "no_such_user_x" in r.stderr
    shared.cleanup()


def test_services_start_with_default_signal_dispositions(cluster: Cluster) -> None:
    cluster.ok("armload", "SIGS", "/bin/sleep", "1000")
    pid = cluster.wait_running("SIGS")["pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(
        next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16
    )
    assert not ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE must not be ignored"
    assert not ignored & (1 << (signal.SIGXFSZ - 1)), "SIGXFSZ must not be ignored"
