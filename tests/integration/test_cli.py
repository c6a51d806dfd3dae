"""The commands as a user meets them: bad input, no daemon, status and log output (SPEC §4-9)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from .harness import BIN, Cluster, wait_for

# Every bad input of SPEC §4-6, with a word the one-line message must contain.
BAD_ARMLOAD = [
    ([], "watch"),
    (["bad-id", "/bin/sleep", "1"], "A-Z"),
    (["x" * 256, "/bin/sleep", "1"], "255"),
    (["REARM_X", "/bin/sleep", "1"], "reserved"),
    (["W", "/R", "0", "/bin/sleep", "1"], "1 to 9"),
    (["W", "/R", "10", "/bin/sleep", "1"], "1 to 9"),
    (["W", "/R", "x", "/bin/sleep", "1"], "1 to 9"),
    (["W", "/R", "3", "/H", "0", "/bin/sleep", "1"], "1 to 24"),
    (["W", "/R", "3", "/H", "25", "/bin/sleep", "1"], "1 to 24"),
    (["W", "/R", "3", "/INT", "3601", "/bin/sleep", "1"], "3600"),
    (["W", "/WAIT", "-1", "/bin/sleep", "1"], "3600"),
    (["W", "/H", "1", "/bin/sleep", "1"], "/R"),
    (["W", "/SCR", "/bin/sleep", "1"], "/R"),
    (["W", "/INT", "5", "/bin/sleep", "1"], "/R"),
    (["W", "/R", "3", "/R", "4", "/bin/sleep", "1"], "twice"),
    (["W", "/Q", "/bin/sleep", "1"], "unknown option"),
    (["W", "/S"], "service"),
    (["W", "/S", "a", "b"], ""),
    (["W", "/S", "/U", "root", "svc"], "service definition"),
    (["W", "/S", "nosuchservice"], "unknown service"),
    (["W"], ""),
    (["W", "/R", "3", "/no/such/program"], "not found"),
]


@pytest.mark.parametrize(("args", "word"), BAD_ARMLOAD)
def test_bad_armload_refused_cleanly_and_nothing_changes(
    cluster: Cluster, args: list[str], word: str
) -> None:
    cluster.ok("armload", "KEEP", "/R", "1", "/bin/sleep", "1000")
    before = cluster.status()
    events_before = len(cluster.events())
    r = cluster.run("armload", *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("armload: "), r.stderr
    assert word.lower() in lines[0].lower()
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert cluster.status()["watches"] == before["watches"]
    assert len(cluster.events()) == events_before


BAD_ARMKILL = [
    ([], "watch"),
    (["NOSUCH"], "unknown watch"),
    (["KEEP", "/C", "/T", "5"], "together"),
    (["KEEP", "/T", "3601"], "3600"),
    (["KEEP", "/T"], "3600"),
    (["KEEP", "extra"], ""),
    (["KEEP", "/X"], "unknown option"),
]


@pytest.mark.parametrize(("args", "word"), BAD_ARMKILL)
def test_bad_armkill_refused_cleanly(cluster: Cluster, args: list[str], word: str) -> None:
    cluster.ok("armload", "KEEP", "/R", "1", "/bin/sleep", "1000")
    pid = cluster.wait_running("KEEP")["pid"]
    r = cluster.run("armkill", *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("armkill: ") and word.lower() in lines[0].lower()
    assert cluster.watch("KEEP")["pid"] == pid  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["/M", "explode"], "reboot, shutdown, panic, stopgroup, none"),
        (["/M"], "reboot"),
        (["/X", "reboot"], ""),
        (["reboot"], ""),
    ],
)
def test_bad_armem_refused_and_mode_unchanged(cluster: Cluster, args: list[str], word: str) -> None:
    cluster.ok("armem", "/M", "stopgroup")
    text = (cluster.home / "etc" / "cluster.toml").read_bytes()
    r = cluster.run("armem", *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("armem: ") and word in lines[0]
    assert (cluster.home / "etc" / "cluster.toml").read_bytes() == text
    assert cluster.ok("armem").strip() == "stopgroup"


def test_armem_sets_and_prints_and_the_daemon_takes_it(cluster: Cluster) -> None:
    assert cluster.ok("armem", "/m", "REBOOT").strip() == "Command succeeded."
    assert cluster.ok("armem").strip() == "reboot"
    assert cluster.status()["cluster"]["final_action"] == "reboot"
    # Comments written at creation survive the change.
    assert "# drill = true records" in (cluster.home / "etc" / "cluster.toml").read_text()


def test_every_command_says_when_the_daemon_is_not_running(offline_cluster: Cluster) -> None:
    c = offline_cluster
    for args in (
        ["armload", "W", "/bin/sleep", "1"],
        ["armkill", "W"],
        ["rearm", "status"],
        ["rearm", "log", "--follow"],  # without --follow it reads the store (test_log_offline)
        ["rearm", "group", "start", "x"],
        ["rearm", "reload"],
    ):
        r = c.run(*args)
        assert r.returncode == 3, (args, r.stderr)
        assert "daemon is not running" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # armem still works on the configuration, and says when it applies.
    r = c.run("armem", "/M", "none")
    assert r.returncode == 0 and "not running" in r.stderr


def test_help_exits_zero() -> None:
    for cmd in ("armload", "armkill", "armem"):
        r = subprocess.run([str(BIN / cmd), "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and cmd.upper() in r.stdout.upper()
    r = subprocess.run([str(BIN / "rearm"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "cluster" in r.stdout


def test_status_json_matches_the_contract(cluster: Cluster) -> None:
    cluster.write_group("sj", "armload SJW /R 3 /H 2 /INT 4 /bin/sleep 1000")
    cluster.rearm("group", "start", "sj")
    cluster.write_service("sleeper", 'command = ["/bin/sleep", "1003.23"]\n')
    cluster.ok("armload", "SVC", "/S", "sleeper")
    s = cluster.status()
    c = s["cluster"]
    assert c["name"] == "testcl" and c["server"] == "test-server"
    assert isinstance(c["final_action"], str) and c["drill"] is True and "manager_url" in c
    g = next(g for g in s["groups"] if g["name"] == "sj")
    assert g["state"] == "online"
    w = g["watches"][0]
    assert {
        k: w[k]
        for k in (
            "id",
            "kind",
            "state",
            "restarts",
            "faults_in_window",
            "retry",
            "hours",
            "interval",
        )
    } == {
        "id": "SJW",
        "kind": "application",
        "state": "running",
        "restarts": 0,
        "faults_in_window": 0,
        "retry": 3,
        "hours": 2,
        "interval": 4,
    }
    assert isinstance(w["pid"], int) and w["target"] == "/bin/sleep 1000"
    svc = s["watches"][0]
    assert svc["kind"] == "service" and svc["target"] == "sleeper"
    assert svc["retry"] is None and svc["hours"] is None and svc["interval"] == 0


def test_log_json_and_since(cluster: Cluster) -> None:
    cluster.ok("armload", "LOGW", "/bin/true")
    cluster.wait_state("LOGW", "stopped")
    lines = cluster.rearm("log", "--json").splitlines()
    events = [json.loads(line) for line in lines]
    for e in events:
        assert {"ts", "kind", "group", "watch", "message"} <= set(e)
        assert e["ts"].endswith("Z") and "T" in e["ts"]
    assert any(e["kind"] == "watch_start" and e["watch"] == "LOGW" for e in events)
    assert cluster.rearm("log", "--since", "1h").strip()
    assert cluster.rearm("log", "--since", "2099-01-01T00:00:00").strip() == ""
    r = cluster.run("rearm", "log", "--since", "yesterday-ish")
    assert r.returncode == 1 and "ISO 8601" in r.stderr


def test_log_follow_streams_new_events(cluster: Cluster) -> None:
    proc = subprocess.Popen(
        [str(BIN / "rearm"), "log", "--follow", "--json", "-n", "1"],
        env=cluster.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())  # the last past event
        cluster.ok("armload", "FOLLOWED", "/bin/sleep", "1000")
        while True:
            e = json.loads(proc.stdout.readline())
            if e["watch"] == "FOLLOWED":
                assert e["kind"] == "watch_start"
                break
    finally:
        proc.kill()
        proc.wait()


def test_control_socket_is_owner_only(cluster: Cluster) -> None:
    mode = os.stat(cluster.home / "run" / "rearm.sock").st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_second_daemon_refused(cluster: Cluster) -> None:
    r = cluster.run("rearm", "daemon", timeout=30)
    assert r.returncode == 1 and "already running" in r.stderr


def test_daemon_without_cluster_says_what_to_do(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "empty")
    r = c.run("rearm", "daemon", timeout=30)
    assert r.returncode == 2 and "rearm cluster create" in r.stderr


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--name", "a" * 16, "--ip", "127.0.0.1"], "1-15"),
        (["--name", "test-server", "--ip", "127.0.0.1", "--server", "TEST-SERVER"], "hostname"),
        (["--name", "ok", "--ip", "not-an-ip"], "not an IP"),
        (["--name", "ok", "--ip", "10.0.0.1", "--interconnect", "10.0.0.2"], "same network"),
    ],
)
def test_cluster_create_validation(tmp_path: Path, args: list[str], word: str) -> None:
    c = Cluster(tmp_path / "home")
    r = c.run("rearm", "cluster", "create", "--server", "test-server", *args)
    assert r.returncode == 1 and word in r.stderr
    assert not (tmp_path / "home" / "etc" / "cluster.toml").exists()


def test_cluster_set_validates_and_reloads(cluster: Cluster) -> None:
    r = cluster.run("rearm", "cluster", "set", "max_reboots=zero")
    assert r.returncode == 1 and "max_reboots" in r.stderr
    r = cluster.run("rearm", "cluster", "set", "colour=blue")
    assert r.returncode == 1 and "settable" in r.stderr
    out = cluster.rearm("cluster", "set", "return_mode=manual", "interconnect=127.0.1.1")
    assert "applied to the running daemon" in out
    shown = json.loads(cluster.rearm("cluster", "show", "--json"))
    assert shown["return_mode"] == "manual" and shown["interconnect"] == "127.0.1.1"
    assert cluster.status()["cluster"]["return_mode"] == "manual"


def test_reload_with_a_broken_file_keeps_the_running_configuration(cluster: Cluster) -> None:
    path = cluster.home / "etc" / "cluster.toml"
    path.write_text(path.read_text() + "\nfinal_action = \n")
    r = cluster.run("rearm", "reload")
    assert r.returncode == 1 and "kept" in r.stderr
    assert cluster.status()["cluster"]["name"] == "testcl"
    wait_for("a config_error event", lambda: cluster.events("config_error"))


def test_shutdown_exits_with_the_do_not_restart_status(offline_cluster: Cluster) -> None:
    c = offline_cluster
    c.start_daemon()
    assert c.daemon is not None
    c.rearm("shutdown")
    assert c.daemon.wait(timeout=30) == 10  # RestartPreventExitStatus in the systemd unit
    c.start_daemon()
    c.daemon.terminate()  # systemctl stop: an ordinary stop
    assert c.daemon.wait(timeout=30) == 0
