"""`rearm install` / `rearm uninstall` into a temporary unit directory, checked by systemd itself.

Safety: every test writes into tmp_path and passes --no-systemctl (or, in-process, a fake
runner): no test runs systemctl, reloads this machine's systemd or writes below /etc/systemd.
`systemd-analyze verify` only reads the unit file (and the system's target units it names).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from rearm.install import (
    DISABLE_COMMAND,
    INSTALL_COMMANDS,
    RELOAD_COMMAND,
    UnitParams,
    find_rearm_script,
    install,
    uninstall,
    unit_text,
)
from rearm.validate import ConfigError

from .harness import BIN, Cluster

SYSTEMD_ANALYZE = "systemd-analyze"  # Debian: in the `systemd` package, /usr/bin


def lifecycle(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.run("rearm", "--home", str(cluster.home), *args)


def install_ok(cluster: Cluster, units: Path) -> str:
    r = lifecycle(cluster, "install", "--unit-dir", str(units), "--no-systemctl")
    assert r.returncode == 0, r.stderr
    return r.stdout


def verify(unit: Path) -> None:
    """`systemd-analyze verify` on the file: exit 0 and not one complaint about our unit.

    Parse problems are only warnings for systemd (the exit status stays 0), so stderr is read.
    --recursive-errors=no keeps problems of the system's own units out of the verdict, and
    --man=no keeps man(1) out of it.
    """
    program = shutil.which(SYSTEMD_ANALYZE) or (
        "/usr/bin/systemd-analyze" if os.path.exists("/usr/bin/systemd-analyze") else None
    )
    if program is None:
        message = "systemd-analyze is missing: apt-get install systemd"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    r = subprocess.run(
        [program, "verify", "--man=no", "--recursive-errors=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    ours = [line for line in (r.stdout + r.stderr).splitlines() if unit.name in line]
    assert r.returncode == 0 and not ours, f"systemd-analyze verify {unit}:\n{r.stderr}{r.stdout}"


@pytest.fixture
def units(tmp_path: Path) -> Path:
    folder = tmp_path / "units"
    folder.mkdir()
    return folder


def test_install_writes_a_unit_systemd_accepts(offline_cluster: Cluster, units: Path) -> None:
    r = lifecycle(offline_cluster, "install", "--unit-dir", str(units), "--no-systemctl")
    assert r.returncode == 0, r.stderr
    unit = units / "rearm.service"
    assert r.stdout.splitlines()[0] == f"installed {unit}"
    assert "not run (--no-systemctl): systemctl daemon-reload" in r.stdout
    assert "not run (--no-systemctl): systemctl enable --now rearm.service" in r.stdout
    text = unit.read_text()
    assert f"ExecStart={BIN / 'rearm'} daemon\n" in text
    assert f'Environment="REARM_HOME={offline_cluster.home}"\n' in text
    assert "WatchdogSec=30\n" in text
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    verify(unit)


def test_the_installed_command_is_this_interpreters_rearm() -> None:
    assert find_rearm_script() == str(BIN / "rearm")


def test_reinstall_is_idempotent_and_says_what_changed(
    offline_cluster: Cluster, units: Path
) -> None:
    unit = units / "rearm.service"
    install_ok(offline_cluster, units)
    before = unit.stat()
    again = lifecycle(offline_cluster, "install", "--unit-dir", str(units), "--no-systemctl")
    assert again.returncode == 0 and f"{unit} is up to date" in again.stdout
    assert unit.stat().st_ino == before.st_ino  # not even rewritten

    offline_cluster.rearm("cluster", "set", "heartbeat_timeout=30")
    changed = lifecycle(offline_cluster, "install", "--unit-dir", str(units), "--no-systemctl")
    assert changed.returncode == 0, changed.stderr
    lines = [line.strip() for line in changed.stdout.splitlines()]
    assert lines[:3] == [f"updated {unit}:", "- WatchdogSec=30", "+ WatchdogSec=10"]
    assert "WatchdogSec=10\n" in unit.read_text()
    verify(unit)


def test_a_home_with_awkward_characters_is_quoted_for_systemd(tmp_path: Path, units: Path) -> None:
    c = Cluster(tmp_path / 'my "rearm" 100% home')
    c.create()
    try:
        r = lifecycle(c, "install", "--unit-dir", str(units), "--no-systemctl")
        assert r.returncode == 0, r.stderr
        text = (units / "rearm.service").read_text()
        assert f'Environment="REARM_HOME={tmp_path}/my \\"rearm\\" 100%% home"\n' in text
        verify(units / "rearm.service")
    finally:
        c.cleanup()


@pytest.mark.parametrize("folder", ["with space", "100%", "dollar$sign", "ünï cöde"])
def test_systemd_reads_the_executable_path_back_exactly(
    tmp_path: Path, units: Path, folder: str
) -> None:
    # verify fails when the path it parsed is not an executable file: only the exact path is.
    bin_dir = tmp_path / folder / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "rearm").symlink_to(BIN / "rearm")
    unit = units / "rearm.service"
    unit.write_text(unit_text(UnitParams(rearm=str(bin_dir / "rearm"), home=str(tmp_path))))
    verify(unit)


def test_install_refuses_without_a_cluster(tmp_path: Path, units: Path) -> None:
    c = Cluster(tmp_path / "empty")
    r = lifecycle(c, "install", "--unit-dir", str(units), "--no-systemctl")
    assert r.returncode == 1
    assert r.stderr.startswith("rearm: no cluster configured") and len(r.stderr.splitlines()) == 1
    assert list(units.iterdir()) == []


def test_uninstall_removes_the_unit_and_is_idempotent(
    offline_cluster: Cluster, units: Path
) -> None:
    install_ok(offline_cluster, units)
    r = lifecycle(offline_cluster, "uninstall", "--unit-dir", str(units), "--no-systemctl")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "not run (--no-systemctl): systemctl disable --now rearm.service",
        f"removed {units / 'rearm.service'}",
        "not run (--no-systemctl): systemctl daemon-reload",
    ]
    assert list(units.iterdir()) == []
    again = lifecycle(offline_cluster, "uninstall", "--unit-dir", str(units), "--no-systemctl")
    assert again.returncode == 0 and "is not installed" in again.stdout


def test_no_systemctl_never_runs_systemctl(
    offline_cluster: Cluster, units: Path, tmp_path: Path
) -> None:
    # A systemctl that only leaves a trace, first on PATH: it must never be called.
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    trace = tmp_path / "systemctl-called"
    fake = fake_bin / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{trace}"\nexit 0\n')
    fake.chmod(0o755)
    offline_cluster.env["PATH"] = f"{fake_bin}:{offline_cluster.env['PATH']}"
    for command in ("install", "install", "uninstall"):
        r = lifecycle(offline_cluster, command, "--unit-dir", str(units), "--no-systemctl")
        assert r.returncode == 0, r.stderr
    assert not trace.exists()


# --- the systemctl sequence, with a runner that records instead of running ---------------------


class Recorder:
    def __init__(self, unit: Path, fail_on: tuple[str, ...] | None = None) -> None:
        self.unit = unit
        self.fail_on = fail_on
        self.calls: list[tuple[tuple[str, ...], bool]] = []  # (argv, unit file present)

    def __call__(self, argv: Sequence[str]) -> None:
        self.calls.append((tuple(argv), self.unit.exists()))
        if tuple(argv) == self.fail_on:
            raise ConfigError(f"'{' '.join(argv)}' failed (status 1): refused")


def test_install_reloads_then_enables_now(tmp_path: Path, units: Path) -> None:
    unit = units / "rearm.service"
    runner = Recorder(unit)
    out: list[str] = []
    params = UnitParams(rearm=str(BIN / "rearm"), home=str(tmp_path))
    install(params, str(units), runner, out.append, booted=lambda: True)
    assert runner.calls == [(argv, True) for argv in INSTALL_COMMANDS]
    assert runner.calls[-1][0] == ("systemctl", "enable", "--now", "rearm.service")


def test_uninstall_disables_first_and_reloads_after(tmp_path: Path, units: Path) -> None:
    unit = units / "rearm.service"
    params = UnitParams(rearm=str(BIN / "rearm"), home=str(tmp_path))
    install(params, str(units), None, lambda line: None)
    runner = Recorder(unit)
    out: list[str] = []
    assert uninstall(str(units), runner, out.append, booted=lambda: True)
    assert runner.calls == [(DISABLE_COMMAND, True), (RELOAD_COMMAND, False)]
    assert "keep running, unwatched" in out[-1]


def test_a_failed_disable_keeps_the_unit(tmp_path: Path, units: Path) -> None:
    unit = units / "rearm.service"
    install(UnitParams(rearm=str(BIN / "rearm")), str(units), None, lambda line: None)
    with pytest.raises(ConfigError, match="disable --now"):
        uninstall(str(units), Recorder(unit, DISABLE_COMMAND), lambda line: None, lambda: True)
    assert unit.exists()


def test_without_systemd_nothing_is_written(units: Path) -> None:
    params = UnitParams(rearm=str(BIN / "rearm"))
    with pytest.raises(ConfigError, match="does not run systemd"):
        install(params, str(units), Recorder(units / "x"), lambda line: None, lambda: False)
    assert list(units.iterdir()) == []


def test_an_unwritable_unit_dir_is_a_one_line_refusal(
    offline_cluster: Cluster, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    r = lifecycle(offline_cluster, "install", "--unit-dir", str(not_a_dir), "--no-systemctl")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"rearm: cannot write {not_a_dir}/rearm.service: ")
