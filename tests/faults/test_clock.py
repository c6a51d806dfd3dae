"""Clock jumps against the real daemon (issue 8): the /H window and /INT hold when the wall clock
is stepped while the daemon runs, while it is down, and across a reboot with the clock set back.

The machine's clock is never touched. The daemon's wall clock is moved by a file it reads in
drill mode only (REARM_TEST_WALL_OFFSET_FILE, see supervisor.make_clock); a reboot is played
with a new boot id (REARM_TEST_BOOT_ID, drill mode only) and a time namespace whose boot clock
starts near zero, as a fresh boot's does (`unshare --time --boottime`).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import BIN, Cluster, wait_for

SLEEP = "/bin/sleep"
HOUR = 3600


class ClockCluster(Cluster):
    """A cluster whose daemon reads its wall clock through an offset file, and may run in a time
    namespace whose CLOCK_BOOTTIME reads `uptime` seconds (a machine that just booted)."""

    def __init__(self, home: Path) -> None:
        self.offset_file = home.parent / "wall-offset"
        self.offset_file.write_text("0")
        super().__init__(home, {"REARM_TEST_WALL_OFFSET_FILE": str(self.offset_file)})
        self.uptime: float | None = None

    def db_undone(self) -> int:
        db = sqlite3.connect(f"file:{self.home / 'var' / 'state.db'}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM final_actions WHERE done=0").fetchone()[0])
        finally:
            db.close()

    def jump(self, seconds: float) -> None:
        """Set the daemon's wall clock `seconds` away from the machine's (from now on)."""
        self.offset_file.write_text(str(seconds))

    def reboot(self, boot_id: str, wall_offset: float, uptime: float) -> None:
        """As after a reboot: no service left, a new boot id, the boot clock near `uptime`."""
        self.stop_daemon(stop_groups=True)
        self.env["REARM_TEST_BOOT_ID"] = boot_id
        self.jump(wall_offset)
        self.uptime = uptime
        self.start_daemon()

    def start_daemon(self) -> None:
        assert self.daemon is None or self.daemon.poll() is not None
        argv = [str(BIN / "rearm"), "daemon"]
        if self.uptime is not None:
            real = float(Path("/proc/uptime").read_text().split()[0])
            offset = int(self.uptime - real)
            # --kill-child: a SIGKILL of unshare takes the daemon with it, as the harness expects.
            argv = ["unshare", "--time", "--fork", "--kill-child", f"--boottime={offset}", *argv]
        log = open(self.daemon_log, "ab")  # noqa: SIM115 -- held by the child
        self.daemon = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        wait_for(
            "the daemon to answer",
            lambda: self.run("rearm", "status").returncode == 0 or self._died(),
        )


@pytest.fixture
def clock_cluster(tmp_path: Path) -> Iterator[ClockCluster]:
    c = ClockCluster(tmp_path / "home")
    c.create()
    c.start_daemon()
    try:
        yield c
    finally:
        c.cleanup()


def kill(c: Cluster, watch_id: str) -> int:
    """SIGKILL the watch's process; returns its pid."""
    w = c.wait_running(watch_id)
    os.kill(w["pid"], signal.SIGKILL)
    return int(w["pid"])


def test_wall_clock_jumps_while_running_do_not_move_the_window(clock_cluster: ClockCluster) -> None:
    c = clock_cluster
    c.ok("armload", "WEB", "/R", "2", "/H", "1", "/INT", "0", SLEEP, "1000")
    pid = kill(c, "WEB")
    pid = c.wait_running("WEB", other_than=pid)["pid"]
    # Two hours forward: by the wall clock alone the first fault would have aged out.
    c.jump(2 * HOUR)
    assert c.watch("WEB")["faults_in_window"] == 1  # type: ignore[index]
    pid = kill(c, "WEB")
    w = c.wait_running("WEB", other_than=pid)
    assert (w["restarts"], w["faults_in_window"]) == (2, 2)
    # Four hours back: nothing changes either; the third fault is over /R 2 within the hour.
    c.jump(-2 * HOUR)
    assert c.watch("WEB")["faults_in_window"] == 2  # type: ignore[index]
    kill(c, "WEB")
    w = c.wait_state("WEB", "escalated")
    assert w["faults_in_window"] == 3


def test_a_restart_pending_over_a_daemon_crash_and_a_clock_jump_is_not_early(
    clock_cluster: ClockCluster,
) -> None:
    c = clock_cluster
    c.ok("armload", "WEB", "/R", "9", "/H", "1", "/INT", "4", SLEEP, "1000")
    pid = kill(c, "WEB")
    killed = time.monotonic()
    c.wait_state("WEB", "restarting")
    c.kill_daemon(signal.SIGKILL)
    # While no daemon runs, the clock jumps two hours forward (a wall-time due would be past).
    c.jump(2 * HOUR)
    c.start_daemon()
    w = c.watch("WEB")
    assert w is not None and w["state"] == "restarting"
    assert w["faults_in_window"] == 1  # the fault still counts: same boot, boot clock
    w = c.wait_running("WEB", other_than=pid)
    assert time.monotonic() - killed >= 4 - 0.2, "the restart came before its /INT was over"
    assert (w["restarts"], w["faults_in_window"]) == (1, 1)


def test_reboot_loop_guard_across_reboots_with_the_clock_set_back(
    clock_cluster: ClockCluster,
) -> None:
    if not shutil.which("unshare") or os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root and unshare (time namespace)")
        pytest.skip("needs root and unshare (time namespace)")
    probe = subprocess.run(
        ["unshare", "--time", "--fork", "--boottime=0", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no time namespaces: {probe.stderr}")
        pytest.skip(f"no time namespaces here: {probe.stderr.strip()}")
    c = clock_cluster
    c.ok("armem", "/M", "reboot")
    c.rearm("cluster", "set", "max_reboots=1", "reboot_window=3600")
    c.write_group("loop", "")

    def escalate(watch_id: str) -> dict[str, object]:
        c.rearm("group", "start", "loop")
        r = c.run(
            "armload", watch_id, "/R", "1", "/INT", "0", SLEEP, "1000", env={"REARM_GROUP": "loop"}
        )
        assert r.returncode == 0, r.stderr
        pid = kill(c, watch_id)
        c.wait_running(watch_id, other_than=pid)
        kill(c, watch_id)
        # (A stopgroup takes the group offline and ends the watch: look at the event.)
        [event] = wait_for(
            f"the final action for {watch_id}",
            lambda: [e for e in c.events("final_action") if e["watch"] == watch_id],
        )
        wait_for("the final action done", lambda: c.db_undone() == 0)
        return dict(event["data"])

    assert escalate("L0")["action"] == "reboot"  # drill: recorded, not executed
    # The machine comes back with its clock two days slow; it has been up for a minute.
    c.reboot("boot-b", wall_offset=-2 * 24 * HOUR, uptime=60)
    second = escalate("L1")
    # The reboot before counts (it was, at most, a little over a minute ago): guarded.
    assert (second["action"], second["guarded"]) == ("stopgroup", True)
    # Another boot, the clock still two days slow, but up for two hours: the first reboot is
    # over an hour old whatever the wall clock says, so it no longer counts (by the wall clock
    # alone it would look two days in the future and count for two more days).
    c.reboot("boot-c", wall_offset=-2 * 24 * HOUR, uptime=2 * HOUR)
    third = escalate("L2")
    assert (third["action"], third["guarded"]) == ("reboot", False)
