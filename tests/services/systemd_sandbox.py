"""A real systemd (the machine's own /lib/systemd/systemd) for tests, booted as PID 1 of private
namespaces, so that a systemd backend can be tested without touching the host's init.

Why and how this works is written up in docs/systemd-testing.md. In short:

* The host's PID 1 is not systemd (and must not be touched), so systemd runs as PID 1 of fresh
  user (identity-mapped, optional), PID, mount, cgroup, network, UTS and IPC namespaces.
* Its root is an overlay whose lower layer is the host's ``/`` and whose upper layer is a tmpfs
  that lives only as long as the namespace: everything installed on the machine is there, and
  nothing the sandbox writes reaches the host's disk. ``/run`` is a host temporary directory
  (``<dir>/run``), so its sockets are reachable from the host too; ``/tmp`` is a fresh tmpfs;
  ``/etc/systemd/system`` is ``<dir>/units`` (the host's own enabled units are hidden);
  ``/proc/sys`` and ``/sys`` are read-only; system generators are hidden.
* cgroups: systemd needs a cgroup v2 tree that it may write to. The helper creates
  ``<cgroup2 mount>/rearm-systemd-sandbox/<id>/sandbox``, starts the namespaces from inside it
  (it becomes the root of the private cgroup namespace) and mounts cgroup2 at
  ``/sys/fs/cgroup`` inside: systemd sees a pure unified hierarchy and only ever writes below
  that directory. The launcher processes live in the sibling ``.../<id>/launcher``.
* systemd boots ``rearm-sandbox.target`` (``default.target`` points to it), which pulls in the
  D-Bus system bus (dbus.socket/dbus.service from the host's package), so
  ``org.freedesktop.systemd1`` is on a real system bus, as on a server.

Teardown sends SIGKILL to the sandbox's PID 1 *by its host PID* (checked against its start
time); the kernel then ends every process of that PID namespace. The helper then checks that the
sandbox's cgroups are empty and that no process is left in its PID namespace, removes the cgroups
it created and the temporary directory. If the test process itself dies, a chain of
parent-death signals (``setpriv --pdeathsig KILL`` at each step) ends the sandbox as well, and
sweep_stale() removes the cgroups and directory left behind at a later start. The shared parent
cgroup ``rearm-systemd-sandbox`` is kept (sandboxes of concurrent test processes use it).

Typical use::

    with systemd_sandbox({"demo.service": "[Service]\\nExecStart=/bin/sleep infinity\\n"}) as sb:
        sb.systemctl("start", "demo.service")
        assert sb.systemctl("is-active", "demo.service").stdout.strip() == "active"
        out = sb.run_python(SCRIPT)          # runs sys.executable inside, on INNER_BUS_ADDRESS
        # or, from the host: dbus_fast MessageBus(bus_address=sb.bus_address)

Needs: Linux, root, util-linux (unshare, nsenter, setpriv), systemd and dbus installed (Debian 12:
systemd 252), a cgroup2 mount (here: the hybrid layout's /sys/fs/cgroup/unified), overlayfs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

SYSTEMD = Path("/lib/systemd/systemd")
#: D-Bus address of the sandbox's system bus, as seen by a process inside the sandbox.
INNER_BUS_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
#: The value of ``$container`` that systemd sees (it must be set: see docs/systemd-testing.md).
CONTAINER_NAME = "rearm-sandbox"
TARGET = "rearm-sandbox.target"
CGROUP_PARENT_NAME = "rearm-systemd-sandbox"
TMP_PREFIX = "rearm-sd-"
INNER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Units of the host's systemd package that are pointless or refused in the sandbox (kernel file
# systems, module loading, audit); masked so that a clean boot ends in state "running".
MASKED_UNITS = (
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "systemd-modules-load.service",
    "modprobe@.service",
    "systemd-journald-audit.socket",
)

TARGET_UNIT = """\
[Unit]
Description=rearm test sandbox
Wants=dbus.socket dbus.service
After=dbus.service
AllowIsolate=yes
"""

# Stage A: real root, first command of a private mount namespace (``unshare --mount``). Builds the
# root file system under $T/root, then starts stage B in new namespaces and, for a user namespace,
# writes its uid/gid maps. Everything is mounted in this private mount namespace only.
STAGE_A = r"""#!/bin/bash
set -euo pipefail
T=$SANDBOX_DIR
R=$T/root
mount -t tmpfs -o mode=0755 rearm-sandbox-upper "$T/upper"
mkdir "$T/upper/data" "$T/upper/work"
mount -t overlay -o "lowerdir=/,upperdir=$T/upper/data,workdir=$T/upper/work" rearm-sandbox "$R"
if [ "$(stat -fc %T "$R")" != overlayfs ]; then echo "stage A: $R is not an overlay" >&2; exit 1; fi
mount --bind "$T/run" "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev rearm-sandbox-tmp "$R/tmp"
mount --bind "$T/units" "$R/etc/systemd/system"
mount -t tmpfs -o ro,mode=0755 rearm-sandbox-none "$R/usr/lib/systemd/system-generators"
# A minimal /dev: a few host device nodes, a console (the helper's pty), devpts comes in stage B.
mount -t tmpfs -o mode=0755,nosuid rearm-sandbox-dev "$R/dev"
for n in null zero full random urandom tty; do
    touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"
done
touch "$R/dev/console"; mount --bind "$(tty)" "$R/dev/console"
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev rearm-sandbox-shm "$R/dev/shm"
ln -s pts/ptmx "$R/dev/ptmx"; ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
# Host directories shared at the same path (the test's files, the virtualenv, the project), or
# at a path of their own inside ("MODE<tab>HOST<tab>INSIDE").
while IFS=$'\t' read -r mode p inside; do
    [ -n "$mode" ] || continue
    mkdir -p "$R$inside"; mount --rbind "$p" "$R$inside"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$R$inside"; fi
done < "$T/binds"
mkdir -p "$R/.oldroot"
mkfifo "$T/state/go"
USERNS=()
if [ "$SANDBOX_USERNS" = 1 ]; then USERNS=(--user); fi
# Stage B is started from inside the sandbox cgroup: that cgroup becomes the root of its cgroup
# namespace. Once its PID 1 exists, the unshare process is moved out to the launcher cgroup.
# Parent-death signals chain the sandbox's life to the test process; the one that unshare
# --kill-child sets is cleared when the gate execs with the capabilities of the new user
# namespace, so it is set again there.
(
    echo "$BASHPID" > "$SANDBOX_CGROUP/cgroup.procs"
    exec setpriv --pdeathsig KILL -- unshare "${USERNS[@]}" --pid --fork --kill-child --mount \
        --cgroup --net --uts --ipc --propagation private -- \
        /bin/bash -c 'read -r _ < "$1" || exit 1; exec setpriv --pdeathsig KILL -- /bin/bash "$2"' \
        gate "$T/state/go" "$T/stage-b.sh"
) &
C=$!
kids=
for _ in $(seq 1000); do
    kids=$(cat "/proc/$C/task/$C/children" 2>/dev/null || true)
    [ -n "$kids" ] && break
    sleep 0.01
done
if [ -z "$kids" ]; then echo "stage A: stage B did not start" >&2; exit 1; fi
if [ "$SANDBOX_USERNS" = 1 ]; then
    echo "0 0 4294967295" > "/proc/$C/uid_map"
    echo "0 0 4294967295" > "/proc/$C/gid_map"
fi
echo "$C" > "$SANDBOX_LAUNCHER_CGROUP/cgroup.procs"
echo "${kids%% *}" > "$T/state/pid1.new"
mv "$T/state/pid1.new" "$T/state/pid1"
echo go > "$T/state/go"
rc=0
wait "$C" || rc=$?
echo "stage A: namespaces ended (status $rc)"
exit "$rc"
"""

# Stage B: PID 1 of the new namespaces. Mounts what belongs to them, switches root, execs systemd.
STAGE_B = r"""#!/bin/bash
set -euo pipefail
T=$SANDBOX_DIR
R=$T/root
# A fresh (not locked) mount of the root, which pivot_root accepts inside a user namespace.
mount --rbind "$R" "$R"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
for p in sys sysrq-trigger irq bus; do
    [ -e "$R/proc/$p" ] || continue
    mount --bind "$R/proc/$p" "$R/proc/$p"; mount -o remount,bind,ro "$R/proc/$p"
done
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
cd "$R"
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot
exec env -i container="$SANDBOX_CONTAINER" PATH="$SANDBOX_PATH" SYSTEMD_COLORS=0 \
    "$SANDBOX_SYSTEMD" --system --log-target=console --log-level="$SANDBOX_LOG_LEVEL" \
    --show-status=yes
"""


class SandboxError(RuntimeError):
    """The sandbox could not be started, or did not end cleanly."""


def unit_object_path(unit: str) -> str:
    """The D-Bus object path of a loaded unit, as systemd escapes it
    (``sleeper.service`` -> ``/org/freedesktop/systemd1/unit/sleeper_2eservice``).

    A client should prefer ``Manager.LoadUnit``/``GetUnit``, which return the path."""
    escaped = "".join(
        c if c.isascii() and (c.isalpha() or (i > 0 and c.isdigit())) else f"_{ord(c):02x}"
        for i, c in enumerate(unit)
    )
    return "/org/freedesktop/systemd1/unit/" + (escaped or "_")


def _start_time(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


def _ns_inode(pid: int | str, ns: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{ns}")
    except OSError:
        return None


def _cgroup2_base() -> Path:
    """The host directory under which the sandboxes' cgroups are created: the cgroup2 mount,
    at the cgroup this process is in (the root here)."""
    mount: Path | None = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        if after.split()[0] == "cgroup2":
            fields = before.split()
            if fields[3] == "/":
                mount = Path(fields[4].replace("\\040", " "))
                break
    if mount is None:
        raise SandboxError("no cgroup2 file system is mounted: systemd needs one")
    own = "/"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            own = line[3:]
    return mount / own.lstrip("/") / CGROUP_PARENT_NAME


def _cgroup_pids(root: Path) -> list[int]:
    pids: list[int] = []
    if not root.is_dir():
        return pids
    for procs in root.rglob("cgroup.procs"):
        with contextlib.suppress(FileNotFoundError):
            pids += [int(x) for x in procs.read_text().split()]
    return pids


def _remove_cgroup_tree(root: Path) -> None:
    if not root.is_dir():
        return
    dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for d in [*dirs, root]:
        with contextlib.suppress(FileNotFoundError):
            d.rmdir()


def sweep_stale(min_age: float = 300.0) -> None:
    """Clean up after sandboxes whose test process was killed (the parent-death signals have
    ended their processes, but not removed their cgroups and temporary directories).

    Only removes what is older than min_age (another test process may be starting a sandbox),
    cgroups without processes (rmdir refuses otherwise) and directories of this helper's
    naming whose cgroup is gone and under which nothing is mounted."""
    now = time.time()
    with contextlib.suppress(SandboxError, OSError):
        base = _cgroup2_base()
        for d in base.iterdir() if base.is_dir() else ():
            if d.is_dir() and now - d.stat().st_mtime > min_age and not _cgroup_pids(d):
                with contextlib.suppress(OSError):
                    _remove_cgroup_tree(d)
    for tmp in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError, SandboxError):
            cgroup_file = tmp / "state" / "cgroup"
            if not cgroup_file.is_file() or now - tmp.stat().st_mtime <= min_age:
                continue
            if not Path(cgroup_file.read_text().strip()).exists():
                _remove_tree(tmp)


@dataclass
class SystemdSandbox:
    """A running sandbox. Paths are host paths unless said otherwise."""

    dir: Path
    #: Host PID of the sandbox's systemd (PID 1 inside).
    pid: int
    cgroup: Path
    launcher_cgroup: Path
    user_namespace: bool
    #: Seconds from launch until systemd was running and on the system bus.
    boot_seconds: float = 0.0
    #: Overall state reported by ``systemctl is-system-running`` after boot.
    system_state: str = ""
    _pid_start: int | None = field(default=None, repr=False)

    # --- addresses and paths --------------------------------------------------------------------
    @property
    def bus_address(self) -> str:
        """D-Bus address of the sandbox's system bus for a client running on the host. Note that
        every PID it reports (MainPID...) is a PID of the sandbox's namespace: see host_pid()."""
        return f"unix:path={self.dir}/run/dbus/system_bus_socket"

    @property
    def inner_bus_address(self) -> str:
        """D-Bus address of the sandbox's system bus for a process running inside it."""
        return INNER_BUS_ADDRESS

    @property
    def unit_dir(self) -> Path:
        """The sandbox's /etc/systemd/system."""
        return self.dir / "units"

    @property
    def shared_dir(self) -> Path:
        """A directory that has the same path on the host and inside the sandbox."""
        return self.dir / "shared"

    @property
    def console_path(self) -> Path:
        return self.dir / "console.log"

    def console_log(self) -> str:
        """What systemd (and the launcher scripts) wrote to the sandbox's console."""
        return _read_console(self.console_path)

    # --- running things inside ------------------------------------------------------------------
    def command(self, argv: Sequence[str]) -> list[str]:
        """The host command line that runs ``argv`` inside the sandbox: in all its namespaces,
        as root, with a clean environment (see env()), placed in the launcher cgroup (outside
        systemd's tree). nsenter ends by SIGKILL if its parent (this process) dies, and the
        command if nsenter dies."""
        if not argv:
            raise ValueError("empty command")
        return [
            "sh",
            "-c",
            'echo $$ > "$0" && exec "$@"',
            str(self.launcher_cgroup / "cgroup.procs"),
            "setpriv",
            "--pdeathsig",
            "KILL",
            "--",
            "nsenter",
            f"--target={self.pid}",
            "--all",
            "--",
            "setpriv",
            "--pdeathsig",
            "KILL",
            "--",
            *argv,
        ]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": INNER_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "SYSTEMD_PAGER": "",
            "SYSTEMD_COLORS": "0",
            "DBUS_SYSTEM_BUS_ADDRESS": INNER_BUS_ADDRESS,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(extra or {})
        return env

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 30.0,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the sandbox and wait for it (text output captured)."""
        self._check_alive()
        result = subprocess.run(
            self.command(argv),
            env=self.env(env),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"in sandbox: {list(argv)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def popen(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the sandbox (e.g. the rearm daemon). Ending the
        returned process (terminate/kill) ends the inner one too (parent-death signal); teardown
        ends it in any case."""
        self._check_alive()
        return subprocess.Popen(
            self.command(argv), env=self.env(env), stdin=stdin, stdout=stdout, stderr=stderr
        )

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def run_python(
        self,
        script: str,
        *args: str,
        check: bool = True,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a Python script inside the sandbox with this interpreter (the project's virtualenv,
        so dbus-fast and rearm are importable). DBUS_SYSTEM_BUS_ADDRESS is set to the sandbox's
        system bus."""
        path = self.shared_dir / f"script-{uuid.uuid4().hex[:8]}.py"
        path.write_text(script)
        return self.run([sys.executable, str(path), *args], check=check, timeout=timeout, env=env)

    def write_unit(self, name: str, text: str, *, reload: bool = True) -> Path:
        """Write /etc/systemd/system/NAME in the sandbox (and daemon-reload)."""
        if "/" in name or name.startswith("."):
            raise ValueError(f"bad unit name {name!r}")
        path = self.unit_dir / name
        path.write_text(text)
        if reload:
            self.systemctl("daemon-reload")
        return path

    def journal(self, unit: str) -> str:
        """The journal of a unit inside the sandbox (for failure messages)."""
        return self.run(
            ["journalctl", "--no-pager", "-o", "short-monotonic", "-u", unit], check=False
        ).stdout

    def host_pid(self, inner_pid: int) -> int:
        """Translate a PID of the sandbox (as D-Bus reports it) into the host's PID."""
        pidns = _ns_inode(self.pid, "pid")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or _ns_inode(entry.name, "pid") != pidns:
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == str(inner_pid):
                    return int(entry.name)
        raise LookupError(f"no process {inner_pid} in the sandbox")

    def processes(self) -> list[int]:
        """Host PIDs of every process in the sandbox's PID namespace."""
        pidns = _ns_inode(self.pid, "pid")
        if pidns is None:
            return []
        return [
            int(e.name)
            for e in Path("/proc").iterdir()
            if e.name.isdigit() and _ns_inode(e.name, "pid") == pidns
        ]

    def kill(self) -> None:
        """End the sandbox now, as a machine dies: SIGKILL to its PID 1 (by its host PID, checked
        against its start time), which ends every process of its namespaces at once. The
        context manager's teardown still checks and cleans up after it."""
        if _start_time(self.pid) == self._pid_start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def _check_alive(self) -> None:
        if _start_time(self.pid) != self._pid_start:
            raise SandboxError(
                "the sandbox's systemd is gone; console:\n" + self.console_log()[-4000:]
            )


#: A host directory shared with the sandbox: at the same path, or (HOST, PATH_INSIDE).
Bind = Path | str | tuple[Path | str, str]


def _sandbox_binds(binds: Sequence[Bind]) -> list[str]:
    """Bind specs "MODE<tab>HOST<tab>INSIDE": the given paths read-write, and read-only what
    running this interpreter and the project needs (wherever it lives, e.g. under /tmp)."""
    specs: list[tuple[str, str, str]] = []
    seen: set[str] = set()

    def add(mode: str, p: Path | str, inside: str | None = None) -> None:
        path = os.path.realpath(p)
        target = path if inside is None else os.path.normpath(inside)
        if target in seen or target == "/" or not os.path.isdir(path):
            return
        if any(c in "\n\t" for c in path + target) or not target.startswith("/"):
            raise ValueError(f"unusable path {path!r} -> {target!r}")
        seen.add(target)
        specs.append((mode, path, target))

    for b in binds:
        if isinstance(b, tuple):
            add("rw", b[0], b[1])
        else:
            add("rw", b)
    project = Path(__file__).resolve().parents[2]
    for p in (sys.prefix, sys.base_prefix, project):
        add("ro", p)
    # Parents first, so that a directory bound inside another one stays visible.
    specs.sort(key=lambda s: s[2].count("/"))
    return ["\t".join(s) for s in specs]


@contextlib.contextmanager
def systemd_sandbox(
    units: Mapping[str, str] | None = None,
    *,
    user_namespace: bool = True,
    binds: Sequence[Bind] = (),
    boot_timeout: float = 20.0,
    log_level: str = "info",
    keep_dir: bool = False,
) -> Iterator[SystemdSandbox]:
    """Boot systemd as PID 1 of private namespaces and yield a SystemdSandbox.

    units: unit files written to the sandbox's /etc/systemd/system before boot.
    user_namespace: also create an identity-mapped user namespace (default; the sandbox's root
        then has no capability over anything the host owns: sysctls, kernel file systems, ...).
    binds: host directories made visible read-write at the same path inside (e.g. tmp_path;
        the sandbox's /tmp is otherwise a private tmpfs), or (HOST, PATH_INSIDE) pairs.
    keep_dir: keep the temporary directory (console log...) after teardown, for debugging.
    """
    if os.geteuid() != 0:
        raise SandboxError("the systemd sandbox needs root")
    if not SYSTEMD.exists():
        raise SandboxError(f"{SYSTEMD} is not installed")
    sweep_stale()
    sandbox_id = uuid.uuid4().hex[:12]
    base = tempfile.gettempdir()
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=base))
    if len(f"{tmp}/run/dbus/system_bus_socket") > 100:
        shutil.rmtree(tmp)
        raise SandboxError(f"temporary directory {tmp} is too long for a unix socket path")
    cg_parent = _cgroup2_base() / sandbox_id
    cgroup, launcher_cgroup = cg_parent / "sandbox", cg_parent / "launcher"
    for d in ("root", "upper", "run", "units", "shared", "state"):
        (tmp / d).mkdir()
    (tmp / "state" / "cgroup").write_text(f"{cg_parent}\n")
    (tmp / "units" / TARGET).write_text(TARGET_UNIT)
    (tmp / "units" / "default.target").symlink_to(TARGET)
    for name in MASKED_UNITS:
        (tmp / "units" / name).symlink_to("/dev/null")
    for name, text in (units or {}).items():
        (tmp / "units" / name).write_text(text)
    (tmp / "binds").write_text("".join(f"{s}\n" for s in _sandbox_binds([*binds, tmp / "shared"])))
    (tmp / "stage-a.sh").write_text(STAGE_A)
    (tmp / "stage-b.sh").write_text(STAGE_B)

    launcher: subprocess.Popen[bytes] | None = None
    master = -1
    pump: threading.Thread | None = None
    sandbox: SystemdSandbox | None = None
    try:
        cgroup.mkdir(parents=True)
        launcher_cgroup.mkdir()
        master, slave = os.openpty()
        env = {
            "PATH": INNER_PATH,
            "LANG": "C.UTF-8",
            "SANDBOX_DIR": str(tmp),
            "SANDBOX_USERNS": "1" if user_namespace else "0",
            "SANDBOX_CGROUP": str(cgroup),
            "SANDBOX_LAUNCHER_CGROUP": str(launcher_cgroup),
            "SANDBOX_CONTAINER": CONTAINER_NAME,
            "SANDBOX_PATH": INNER_PATH,
            "SANDBOX_SYSTEMD": str(SYSTEMD),
            "SANDBOX_LOG_LEVEL": log_level,
        }
        started = time.monotonic()
        try:
            launcher = subprocess.Popen(
                [
                    "sh",
                    "-c",
                    'echo $$ > "$0" && exec "$@"',
                    str(launcher_cgroup / "cgroup.procs"),
                    "setpriv",
                    "--pdeathsig",
                    "KILL",
                    "--",
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "/bin/bash",
                    str(tmp / "stage-a.sh"),
                ],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        log = (tmp / "console.log").open("wb")

        def copy_console() -> None:
            with log:
                while True:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: every holder of the pty's other end is gone
                        return
                    if not chunk:
                        return
                    log.write(chunk)
                    log.flush()

        pump = threading.Thread(target=copy_console, name="sandbox-console", daemon=True)
        pump.start()

        def fail(why: str) -> SandboxError:
            time.sleep(0.2)
            tail = _read_console(tmp / "console.log")[-6000:]
            return SandboxError(f"systemd sandbox: {why}\n--- console ---\n{tail}")

        deadline = started + boot_timeout
        pid_file = tmp / "state" / "pid1"
        while not pid_file.exists():
            if launcher.poll() is not None:
                raise fail(f"the launcher exited ({launcher.returncode}) before boot")
            if time.monotonic() > deadline:
                raise fail("no PID 1 in time")
            time.sleep(0.005)
        pid = int(pid_file.read_text())
        sandbox = SystemdSandbox(
            dir=tmp,
            pid=pid,
            cgroup=cgroup,
            launcher_cgroup=launcher_cgroup,
            user_namespace=user_namespace,
            _pid_start=_start_time(pid),
        )
        private = tmp / "run" / "systemd" / "private"
        while not private.exists():
            if launcher.poll() is not None:
                raise fail(f"systemd exited (launcher status {launcher.returncode})")
            if time.monotonic() > deadline:
                raise fail("systemd did not open its private bus in time")
            time.sleep(0.005)
        left = max(1.0, deadline - time.monotonic())
        state = sandbox.run(
            ["systemctl", "is-system-running", "--wait"], check=False, timeout=left
        ).stdout.strip()
        if state not in ("running", "degraded"):
            raise fail(f"boot ended in state {state!r}")
        sandbox.system_state = state
        # systemd joins the system bus a moment after dbus.service is up.
        while True:
            owner = subprocess.run(
                ["busctl", f"--address={sandbox.bus_address}", "--timeout=2", "call",
                 "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                 "NameHasOwner", "s", "org.freedesktop.systemd1"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            if owner.stdout.strip() == "b true":
                break
            if time.monotonic() > deadline:
                raise fail(f"org.freedesktop.systemd1 not on the system bus: {owner.stderr}")
            time.sleep(0.01)
        sandbox.boot_seconds = time.monotonic() - started
        yield sandbox
    except BaseException as exc:
        problems = _teardown(sandbox, launcher, cgroup, launcher_cgroup, cg_parent)
        _close_console(master, pump)
        if not keep_dir:
            _remove_tree(tmp)
        if problems:
            exc.add_note("systemd sandbox teardown: " + "; ".join(problems))
        raise
    problems = _teardown(sandbox, launcher, cgroup, launcher_cgroup, cg_parent)
    _close_console(master, pump)
    if not keep_dir:
        _remove_tree(tmp)
    if problems:
        raise SandboxError("systemd sandbox teardown: " + "; ".join(problems))


def _close_console(master: int, pump: threading.Thread | None) -> None:
    # The copying thread ends by itself once every process holding the pty is gone.
    if pump is not None:
        pump.join(timeout=5)
    if master >= 0:
        os.close(master)


def _teardown(
    sandbox: SystemdSandbox | None,
    launcher: subprocess.Popen[bytes] | None,
    cgroup: Path,
    launcher_cgroup: Path,
    cg_parent: Path,
) -> list[str]:
    """End the sandbox by its PID 1's host PID and check that nothing is left. Returns problems."""
    problems: list[str] = []
    pidns = _ns_inode(sandbox.pid, "pid") if sandbox else None
    if sandbox is not None and _start_time(sandbox.pid) == sandbox._pid_start:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sandbox.pid, signal.SIGKILL)
    if launcher is not None:
        if sandbox is None and launcher.poll() is None:
            # Boot failed before PID 1 was known: end our own launcher (stage A); the
            # parent-death signals then end stage B and its PID 1.
            launcher.kill()
        try:
            launcher.wait(timeout=10)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _cgroup_pids(cgroup) or _cgroup_pids(launcher_cgroup):
        if time.monotonic() > deadline:
            left = _cgroup_pids(cgroup) + _cgroup_pids(launcher_cgroup)
            problems.append(f"processes left in the sandbox cgroups: {left}")
            # They are in cgroups this helper created, so they are ours: end them.
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    if pidns is not None:
        stragglers = [
            int(e.name)
            for e in Path("/proc").iterdir()
            if e.name.isdigit() and _ns_inode(e.name, "pid") == pidns
        ]
        if stragglers:
            problems.append(f"processes left in the sandbox PID namespace: {stragglers}")
    try:
        _remove_cgroup_tree(cgroup)
        _remove_cgroup_tree(launcher_cgroup)
        _remove_cgroup_tree(cg_parent)
    except OSError as e:
        problems.append(f"could not remove cgroup {e.filename}: {e.strerror}")
    return problems


def _read_console(path: Path) -> str:
    # systemd sets the console's terminal modes itself (ONLCR), so lines end in "\r\r\n".
    try:
        text = path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return text.replace("\r\n", "\n").replace("\r", "")


def _remove_tree(path: Path) -> None:
    """Remove the temporary directory; refuses if anything is still mounted below it."""
    mounts = Path("/proc/self/mountinfo").read_text()
    if re.search(rf" {re.escape(str(path))}(/| )", mounts):
        raise SandboxError(f"{path} still has mounts on the host; not removing it")
    shutil.rmtree(path, ignore_errors=True)


def require_sandbox() -> None:
    """Skip a test that needs the sandbox when it cannot run here; on CI (CI=true) fail instead,
    so that what depends on a real systemd is never shipped untested."""
    why = None
    if os.geteuid() != 0:
        why = "the systemd sandbox needs root"
    elif not SYSTEMD.exists():
        why = f"{SYSTEMD} is not installed"
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"systemd sandbox unavailable on CI: {why}")
    pytest.skip(why)
