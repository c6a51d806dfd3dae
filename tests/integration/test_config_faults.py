"""Faults of the configuration are not crashes (issue 13, docs/spec-additions.md): a program
that is not found, not executable, a user that does not exist, a definition that is gone, or a
program that exits by itself within a second of every start stops the watch as `failed` with a
critical `config_fault` event. It is not restarted, not counted toward /R, and the final action
does not fire -- the healthy server is not rebooted for a typo.

Each case first shows a real crash being counted (the first SIGKILL), then breaks the
configuration so that the restart cannot run: with /R 1, counting that would be the second
fault and the final action.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import Cluster, wait_for


def _config_fault(cluster: Cluster, watch_id: str, words: str) -> dict[str, object]:
    w = cluster.wait_state(watch_id, "failed")
    assert str(w["detail"]).startswith("configuration fault:") and words in str(w["detail"])
    event = wait_for(
        "a config_fault event",
        lambda: [e for e in cluster.events("config_fault") if e["watch"] == watch_id],
    )[-1]
    assert event["severity"] == "critical" and words in event["message"]
    assert "not counted toward /R" in event["message"]
    assert not cluster.events("final_action")
    return w


def _crash_once(cluster: Cluster, watch_id: str, break_it: Callable[[], None]) -> None:
    """A crash (counted), with the configuration broken before the restart."""
    pid = cluster.wait_running(watch_id)["pid"]
    break_it()
    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("cause", "words"),
    [("not found", "no such file"), ("permission denied", "not an executable file")],
)
def test_a_program_that_cannot_run_fails_the_watch(
    cluster: Cluster, tmp_path: Path, cause: str, words: str
) -> None:
    cluster.ok("armem", "/M", "reboot")
    program = tmp_path / "app"
    shutil.copy("/bin/sleep", program)
    cluster.ok("armload", "APP", "/R", "1", "/INT", "0", str(program), "1000")

    def break_it() -> None:
        if cause == "not found":
            program.unlink()
        else:
            program.chmod(0o644)

    _crash_once(cluster, "APP", break_it)
    w = _config_fault(cluster, "APP", words)
    assert w["faults_in_window"] == 1 and w["restarts"] == 1 and w["pid"] is None


def test_a_user_that_does_not_exist_fails_the_watch(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.write_service("svc", 'command = ["/bin/sleep", "4713.21"]\nuser = "nobody"\n')
    cluster.ok("armload", "SVC", "/S", "/R", "1", "/INT", "0", "svc")
    _crash_once(
        cluster,
        "SVC",
        lambda: cluster.write_service(
            "svc", 'command = ["/bin/sleep", "4713.21"]\nuser = "no_such_user_r13"\n'
        ),
    )
    assert _config_fault(cluster, "SVC", "no such user")["faults_in_window"] == 1


def test_a_definition_that_is_gone_fails_the_watch(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.write_service("svc", 'command = ["/bin/sleep", "4713.22"]\n')
    cluster.ok("armload", "SVC", "/S", "/R", "1", "/INT", "0", "svc")
    definition = cluster.home / "etc" / "services" / "svc.toml"
    _crash_once(cluster, "SVC", definition.unlink)
    assert _config_fault(cluster, "SVC", "unknown service 'svc'")["faults_in_window"] == 1


def test_an_exit_within_a_second_of_every_start_fails_the_watch(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.ok(
        "armload", "EARLY", "/R", "1", "/INT", "0", "/bin/sh", "-c", "echo bad option >&2; exit 2"
    )
    w = _config_fault(cluster, "EARLY", "exit status 2")
    assert w["faults_in_window"] == 0 and w["restarts"] == 0


def test_an_exit_after_a_lasting_start_still_counts(cluster: Cluster) -> None:
    cluster.ok("armem", "/M", "reboot")
    cluster.ok("armload", "LATE", "/R", "1", "/INT", "0", "/bin/sh", "-c", "sleep 1.3; exit 1")
    cluster.wait_state("LATE", "escalated", timeout=20)
    assert wait_for("the final action", lambda: cluster.events("final_action"))
    assert not cluster.events("config_fault")
