"""`rearm alert test|list|mib`, run through the parser that alert_cmd.register builds, against
real receivers: the command reads cluster.toml and sends without a daemon."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from rearm.cli import alert_cmd

from .conftest import HookServer, free_port


def _rearm(home: Path, *args: str) -> int:
    parser = argparse.ArgumentParser(prog="rearm")
    parser.add_argument("--home")
    alert_cmd.register(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(["--home", str(home), *args])
    return int(ns.func(ns))


def _cluster(home: Path, alerts: str) -> None:
    (home / "etc").mkdir(parents=True)
    (home / "etc" / "cluster.toml").write_text(
        'name = "testcl"\nserver = "test-server"\nip = "127.0.0.1"\n' + alerts
    )


def test_alert_test_reports_each_sink(
    tmp_path: Path, hook_server: HookServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(5)
        _cluster(
            tmp_path,
            f"""
[[alerts]]
type = "webhook"
name = "ops-hook"
url = "{hook_server.url}"
secret = "hook-secret"

[[alerts]]
type = "webhook"
name = "nobody-home"
url = "http://127.0.0.1:{free_port()}/hook"
timeout = 2

[[alerts]]
type = "syslog"
target = "127.0.0.1:{collector.getsockname()[1]}"
""",
        )
        assert _rearm(tmp_path, "alert", "test") == 1
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 3
        assert lines[0].split()[:4] == ["ops-hook", "webhook", "ok", "HTTP"]
        assert lines[1].split()[:3] == ["nobody-home", "webhook", "failed"]
        assert "Cannot connect" in lines[1] or "refused" in lines[1]
        assert lines[2].split()[:3] == ["syslog", "syslog", "ok"]
        assert b"alert_test" in collector.recv(4096)
        (sent,) = hook_server.received
        assert sent["kind"] == "alert_test" and sent["test"] is True and sent["id"] == 0
        assert hook_server.bad_signatures == 0

        assert _rearm(tmp_path, "alert", "test", "ops-hook") == 0
        assert capsys.readouterr().out.startswith("ops-hook  webhook  ok")
        assert _rearm(tmp_path, "alert", "test", "pager") == 1
        assert "no alert sink 'pager' (configured: ops-hook, nobody-home, syslog)" in (
            capsys.readouterr().err
        )


def test_alert_test_without_sinks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cluster(tmp_path, "")
    assert _rearm(tmp_path, "alert", "test") == 1
    assert "no alert sinks configured" in capsys.readouterr().err


def test_alert_list_and_mib(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cluster(
        tmp_path,
        '[[alerts]]\ntype = "snmp"\ntarget = "127.0.0.1"\nenterprise_oid = "1.3.6.1.4.1.8072.77"\n',
    )
    assert _rearm(tmp_path, "alert", "list") == 0
    out = capsys.readouterr().out
    assert out.startswith("snmp: trap to udp 127.0.0.1:162 (v2c)")
    assert _rearm(tmp_path, "alert", "mib") == 0
    assert "::= { enterprises 8072 77 }" in capsys.readouterr().out
    assert _rearm(tmp_path, "alert", "mib", "--oid", "1.3.6.1.4.1.32473") == 0
    assert "::= { enterprises 32473 }" in capsys.readouterr().out
    assert _rearm(tmp_path, "alert", "mib", "--oid", "1.2.3") == 1


def test_the_installed_rearm_command(tmp_path: Path, hook_server: HookServer) -> None:
    import os
    import subprocess
    import sys

    _cluster(
        tmp_path,
        f'[[alerts]]\ntype = "webhook"\nurl = "{hook_server.url}"\nsecret = "hook-secret"\n',
    )
    rearm = Path(sys.executable).parent / "rearm"
    result = subprocess.run(
        [str(rearm), "alert", "test"],
        env={**os.environ, "REARM_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("webhook  webhook  ok")
    assert hook_server.kinds() == ["alert_test"]
