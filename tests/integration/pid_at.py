"""Start a process with a chosen pid (clone3 with set_tid; Linux 5.5, root), to play pid reuse.

An attacker waits for the pid to come round again; a test cannot wait for 32,768 (or 4 million)
processes, so it asks the kernel for that very pid instead: what the daemon sees is the same.
The clone3 call happens in a helper interpreter of its own, never in the test's process.
"""

from __future__ import annotations

import subprocess
import sys

from .harness import wait_for

_HELPER = r"""
import ctypes, os, signal, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
tids = (ctypes.c_int * 1)(int(sys.argv[1]))
# struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
# set_tid, set_tid_size, cgroup
args = struct.pack("11Q", 0, 0, 0, 0, signal.SIGCHLD, 0, 0, 0, ctypes.addressof(tids), 1, 0)
buf = ctypes.create_string_buffer(args, len(args))
pid = libc.syscall(435, buf, ctypes.c_size_t(len(args)))  # SYS_clone3 (x86_64, aarch64)
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
if pid < 0:
    sys.exit("clone3: " + os.strerror(ctypes.get_errno()))
print(pid, flush=True)
os.waitpid(pid, 0)
"""


def process_at_pid(pid: int, argv: list[str]) -> subprocess.Popen[str]:
    """Run argv as process `pid` (which must be free). The returned helper waits for it; kill
    the process itself (by `pid`) to end both."""
    helper = subprocess.Popen(
        [sys.executable, "-c", _HELPER, str(pid), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert helper.stdout is not None
    line = helper.stdout.readline().strip()
    if line != str(pid):
        helper.wait(timeout=10)
        raise AssertionError(f"could not start a process as pid {pid}: {helper.stderr.read()}")
    return helper


def wait_exec(pid: int, program: str) -> None:
    """Wait until process `pid` runs `program` (the helper's exec is done)."""

    def done() -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().split(b"\0")[0].decode() == program
        except OSError:
            return False

    wait_for(f"pid {pid} to run {program}", done)
