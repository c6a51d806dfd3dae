"""The small findings of issue 18 (Low), each played as the user who could exploit it.

Deep nesting on the socket and in TOML, a bad `environment` name, descriptors inherited by the
daemon, ready and stop commands of a service user's, root's environment reaching a /U target,
and /A taking another user's process with the same command line.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .harness import Cluster, alive, wait_for
from .unix_users import Accounts, as_user

DEEP = 100_000  # far beyond Python's recursion limit of 1,000


def _cluster(home: Path, **props: str) -> Cluster:
    c = Cluster(home)
    c.create(**props)
    c.start_daemon()
    return c


def _send_as(user: object, sock: str, raw: bytes) -> bytes:
    """Send raw bytes to the socket from a process of `user`; its first answer line."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        "s.sendall(sys.stdin.buffer.read())\n"
        "sys.stdout.buffer.write(s.makefile('rb').readline())\n"
    )
    r = subprocess.run(
        ["/usr/bin/python3", "-c", code, sock],
        input=raw,
        capture_output=True,
        timeout=30,
        **as_user(user),  # type: ignore[arg-type]
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_deeply_nested_request_gets_one_clear_line(unix: Accounts, open_dir: Path) -> None:
    """Before the fix the parser's RecursionError escaped: the connection closed without a word
    (and a traceback went to the daemon's log)."""
    user = unix.user("rjs")
    c = _cluster(open_dir / "home", read_access="everyone")
    try:
        sock = str(c.home / "run" / "rearm.sock")
        raw = b'{"op": "status", "args": ' + b"[" * DEEP + b"\n"
        answer = json.loads(_send_as(user, sock, raw))
        assert answer == {"ok": False, "error": "malformed request: nested too deeply"}
        assert c.status()["daemon"]["pid"] == c.daemon.pid  # type: ignore[union-attr]
        assert "Traceback" not in c.daemon_log.read_text()
    finally:
        c.cleanup()


def test_deeply_nested_toml_is_one_clear_line(tmp_path: Path) -> None:
    c = _cluster(tmp_path / "home")
    try:
        c.write_service("deep", 'command = ["/bin/sleep", "1000"]\nx = ' + "[" * DEEP + "\n")
        r = c.run("armload", "DEEP", "/S", "deep")
        assert r.returncode != 0
        assert r.stderr.strip().endswith("not valid TOML: nested too deeply"), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert c.watch("DEEP") is None
        cluster_toml = c.home / "etc" / "cluster.toml"
        good = cluster_toml.read_text()
        cluster_toml.write_text(good + "x = " + "{a = " * DEEP + "\n")
        r = c.run("rearm", "reload")
        assert r.returncode != 0 and "nested too deeply" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert c.status()["cluster"]["name"] == "testcl"
        c.stop_daemon()
        r = c.run("rearm", "daemon", timeout=30)
        assert r.returncode == 2
        assert r.stderr.strip().endswith("not valid TOML: nested too deeply"), r.stderr
        assert "Traceback" not in r.stderr
        cluster_toml.write_text(good)
    finally:
        c.cleanup()


def test_a_bad_environment_name_is_refused_and_leaves_no_watch_starting(tmp_path: Path) -> None:
    """Before the fix posix_spawn's ValueError escaped the start: armload said "internal
    error" and the watch stayed `starting` for good."""
    c = _cluster(tmp_path / "home")
    try:
        c.write_service(
            "badenv", 'command = ["/bin/sleep", "1000"]\nenvironment = { "A=B" = "1" }\n'
        )
        r = c.run("armload", "BADENV", "/S", "badenv")
        assert r.returncode != 0
        assert "key 'environment': 'A=B' is not a variable name" in r.stderr, r.stderr
        assert c.watch("BADENV") is None
        from rearm.api.client import ApiFailure, call

        sock = str(c.home / "run" / "rearm.sock")
        request = {"watch_id": "BADCALL", "argv": ["/bin/sleep", "1000"]}
        try:
            call(sock, "armload", {"request": request, "env": {"X\u0000Y": "1"}})
            raise AssertionError("a NUL byte in a name was accepted")
        except ApiFailure as e:
            assert "is not a variable name" in str(e)
        assert c.watch("BADCALL") is None
    finally:
        c.cleanup()


def test_descriptors_inherited_by_the_daemon_do_not_reach_a_target(
    unix: Accounts, tmp_path: Path
) -> None:
    """Whoever started the daemon may have left a descriptor open on a root-only file (here
    fd N on a 0600 file of root's): before the fix every target got it, a /U target too."""
    user = unix.user("rfd")
    secret = tmp_path / "root-only"
    secret.write_text("root's secret\n")
    secret.chmod(0o600)
    fd = os.open(secret, os.O_RDONLY)
    c = Cluster(tmp_path / "home")
    c.create()
    try:
        c.start_daemon(pass_fds=(fd,))
        os.close(fd)
        peek = (
            "import os, sys\n"
            "try:\n    print(os.read(int(sys.argv[1]), 100))\n"
            "except OSError as e:\n    print(e)\n"
            "print('done')"
        )
        c.ok("armload", "PEEK", "/U", user.pw_name, "/usr/bin/python3", "-c", peek, str(fd))
        log = c.home / "var" / "log" / "watches" / "PEEK.log"
        wait_for("the target's output", lambda: log.exists() and "done" in log.read_text())
        text = log.read_text()
        assert "root's secret" not in text
        assert "Bad file descriptor" in text, text
    finally:
        c.cleanup()


def test_ready_and_stop_commands_run_as_the_services_user(unix: Accounts, open_dir: Path) -> None:
    """A service's ready and stop commands are often the service's own scripts, which its user
    may change: before the fix they ran as root."""
    svc = unix.user("rsvc")
    own = open_dir / "svc"
    own.mkdir()
    os.chown(own, svc.pw_uid, svc.pw_gid)
    for name in ("ready", "stop"):
        script = own / f"{name}.sh"
        script.write_text(
            f'#!/bin/sh\nid -u > {own}/{name}.uid\necho "$USER" >> {own}/{name}.uid\n'
        )
        script.chmod(0o755)
        os.chown(script, svc.pw_uid, svc.pw_gid)  # the service user's own scripts
    c = _cluster(open_dir / "home")
    try:
        c.write_service(
            "mine",
            f'command = ["/bin/sleep", "1000"]\nuser = "{svc.pw_name}"\n'
            f'stop_command = ["{own}/stop.sh"]\nready = {{ command = ["{own}/ready.sh"] }}\n',
        )
        c.ok("armload", "MINE", "/S", "/WAIT", "20", "mine")
        assert (own / "ready.uid").read_text().split() == [str(svc.pw_uid), svc.pw_name]
        c.ok("armkill", "MINE", "/T", "1")
        assert (own / "stop.uid").read_text().split() == [str(svc.pw_uid), svc.pw_name]
    finally:
        c.cleanup()


def test_a_U_target_gets_a_login_environment_not_the_callers(
    unix: Accounts, tmp_path: Path
) -> None:
    """armload /U typed by root passed root's whole environment to the other user's target
    (before the fix): secrets of root's shell became that user's to read."""
    user = unix.user("renv")
    c = _cluster(tmp_path / "home")
    try:
        r = c.run(
            "armload",
            "SEE",
            "/U",
            user.pw_name,
            "/usr/bin/env",
            env={"ROOT_SECRET": "s3cr3t", "HOME": "/root"},
        )
        assert r.returncode == 0, r.stderr
        log = c.home / "var" / "log" / "watches" / "SEE.log"
        wait_for(
            "the target's environment", lambda: log.exists() and "REARM_WATCH=" in log.read_text()
        )
        env = dict(line.split("=", 1) for line in log.read_text().splitlines() if "=" in line)
        assert "ROOT_SECRET" not in env
        assert env["HOME"] == user.pw_dir and env["USER"] == env["LOGNAME"] == user.pw_name
        assert env["SHELL"] == user.pw_shell
        assert env["REARM_WATCH"] == "SEE"
    finally:
        c.cleanup()


def test_slash_A_does_not_adopt_another_users_process(unix: Accounts, tmp_path: Path) -> None:
    """Anyone can run /bin/sleep 4242: before the fix `armload /A` as root took such a process
    of another user's for the target (and would signal it, and restart it as root)."""
    user = unix.user("rado")
    theirs = subprocess.Popen(
        ["/bin/sleep", "4242"],
        start_new_session=True,
        **as_user(user),  # type: ignore[arg-type]
    )
    c = _cluster(tmp_path / "home")
    try:
        wait_for("their process", lambda: alive(theirs.pid))
        c.ok("armload", "MINE", "/A", "/R", "1", "/bin/sleep", "4242")
        w = c.wait_running("MINE")
        assert w["pid"] != theirs.pid
        assert not [e for e in c.events("watch_adopt") if e["watch"] == "MINE"]
        c.ok("armkill", "MINE")
        assert alive(theirs.pid)
    finally:
        theirs.kill()
        theirs.wait()
        c.cleanup()
