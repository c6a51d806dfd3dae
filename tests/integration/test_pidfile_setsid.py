"""A forking daemon whose pid file is written before the daemon leads its own process group.

Debian's nginx 1.22 daemonizes this way (seen with strace): the launching parent forks, writes
the *child's* pid into the pid file, and exits; only then does the child call setsid(). A
supervisor that looks at the pid file in between sees the real daemon still in the launcher's
process group. The daemon below does the same, with the gap widened so the test is
deterministic, and forks a worker once it leads its group (as nginx forks its workers).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from .harness import Cluster, alive, wait_for

PARENT_WRITES = """
import os, sys, time
pidfile, workerfile = sys.argv[1], sys.argv[2]
child = os.fork()
if child:
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{child}\\n")
    os.rename(pidfile + ".tmp", pidfile)
    os._exit(0)
time.sleep(0.5)  # nginx's child gets here after its parent exits; widened for the test
os.setsid()
worker = os.fork()
if worker == 0:
    while True:
        time.sleep(1000)
with open(workerfile, "w") as f:
    f.write(f"{worker}\\n")
while True:
    time.sleep(1000)
"""


def test_workers_of_a_daemon_that_setsids_after_its_pid_file_are_ended(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = tmp_path / "parent_writes.py"
    script.write_text(PARENT_WRITES)
    pidfile, workerfile = tmp_path / "d.pid", tmp_path / "worker.pid"
    cluster.write_service(
        "late",
        f'command = ["{sys.executable}", "{script}", "{pidfile}", "{workerfile}"]\n'
        f'pidfile = "{pidfile}"\n',
    )
    cluster.ok("armload", "LATE", "/S", "/R", "1", "/INT", "30", "/WAIT", "20", "late")
    main = cluster.wait_running("LATE")["pid"]
    worker = wait_for("the worker", lambda: workerfile.exists() and int(workerfile.read_text()))
    cluster.started_pids.append(worker)  # ended by the clean-up whatever happens
    assert os.getpgid(worker) == main  # the daemon leads its group by now
    os.kill(main, signal.SIGKILL)
    wait_for("the worker of the dead daemon to be ended", lambda: not alive(worker), timeout=5)
