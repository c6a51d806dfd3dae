"""Every file rearm writes has the mode it chose, whatever the umask (issue 18, Medium 6).

The commands run with a umask of 000, the laxest there is, and after each one the test walks
the whole home: nothing may be writable by group or others, state and logs may not be readable
by others, and the files that hold secrets (cluster.toml with alert secrets, the state database
with every request's environment, the Manager's users, the licenses) are owner-only. Before the
fix, state.db-wal and -shm were created 0644 (a local user read a service's DB_PASSWORD and the
spawn tokens from them) and every rewrite of cluster.toml made it 0644.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.manager import ADMIN, Client, free_port, passwd

from .harness import Cluster, wait_for
from .unix_users import Accounts

# Exact modes, by path relative to the home (first match wins).
EXACT = [
    ("etc/cluster.toml", 0o600),
    ("etc/manager-users.toml", 0o600),
    ("etc/licenses", 0o700),
    ("etc/licenses/*.toml", 0o600),
    ("etc/groups/*/start.sh", 0o755),
    ("etc/groups/*/stop.sh", 0o755),
    ("etc/groups/*/*.toml", 0o644),
    ("var/state.db", 0o600),
    ("var/state.db-wal", 0o600),
    ("var/state.db-shm", 0o600),
    ("var/log/*/*.log", 0o640),
    ("run/rearm.sock", 0o600),
    ("run/rearm.pid", 0o644),
    ("run/bin/*", 0o755),
]
# Written by the test itself, not by rearm.
NOT_REARMS = ("daemon.log", "etc/license-keys", "etc/license-keys/*")


def problems(home: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(folder, name)
            rel = path.relative_to(home).as_posix()
            if any(fnmatch.fnmatch(rel, p) for p in NOT_REARMS):
                continue
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                found.append(f"{rel}: a symbolic link")
                continue
            want = next((m for p, m in EXACT if fnmatch.fnmatch(rel, p)), None)
            if want is not None and mode != want:
                found.append(f"{rel}: mode {mode:04o}, not {want:04o}")
            elif mode & 0o022:
                found.append(f"{rel}: writable by group or others ({mode:04o})")
            elif rel.startswith("var/") and mode & 0o004 and not stat.S_ISDIR(st.st_mode):
                found.append(f"{rel}: readable by others ({mode:04o})")
            elif stat.S_ISDIR(st.st_mode) and want is None and mode != 0o755:
                found.append(f"{rel}/: mode {mode:04o}, not 0755")
    return found


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """umask 000 for this test and every command it runs (restored after)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _check(home: Path, after: str) -> None:
    found = problems(home)
    assert not found, f"after {after}: " + "; ".join(found)


def _license(c: Cluster, tmp: Path) -> None:
    """A keypair of the test's own, its public half trusted by the home, one license."""
    c.rearm("license", "keygen", "--out", str(tmp / "vendor"))
    keys = c.home / "etc" / "license-keys"
    keys.mkdir(mode=0o755)
    keys.chmod(0o755)
    pub = keys / "test.pub"
    pub.write_bytes((tmp / "vendor" / "rearm-vendor.pub").read_bytes())
    pub.chmod(0o644)
    key = c.rearm(
        "license",
        "issue",
        "--private-key",
        str(tmp / "vendor" / "rearm-vendor.key"),
        "--serial",
        "AA000001",
        "--expires",
        str(dt.date.today() + dt.timedelta(days=30)),
    ).strip()
    c.rearm("license", "register", "--serial", "AA000001", "--key", key)


@pytest.mark.usefixtures("lax_umask")
def test_every_file_rearm_writes_keeps_its_mode_under_umask_000(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "home")
    port = free_port()
    try:
        c.create(manager_port=str(port))
        _check(c.home, "rearm cluster create/set")
        c.ok("armem", "/M", "stopgroup")
        _check(c.home, "armem /M")
        c.rearm("cluster", "set", "heartbeat_timeout=100")
        _check(c.home, "rearm cluster set")
        c.write_group("G", "armload GW /R 3 /bin/sleep 1000")
        for script in ("start.sh", "stop.sh"):  # written by the test: made as rearm makes them
            (c.home / "etc" / "groups" / "G" / script).chmod(0o755)
        _check(c.home, "rearm group create")
        r = passwd(c.home, *ADMIN)
        assert r.returncode == 0, r.stderr
        _check(c.home, "rearm passwd")
        _license(c, tmp_path)
        _check(c.home, "rearm license register")
        c.start_daemon()
        _check(c.home, "the daemon's start")
        c.ok("armload", "W", "/R", "1", "/bin/sleep", "1000")
        c.rearm("group", "start", "G")
        c.wait_running("GW")
        _check(c.home, "armload and a group start")
        client = Client(port)
        client.login(ADMIN)
        reply = client.action("/cluster", {"return_mode": "manual"})
        assert reply.status == 303, reply.body[:300]
        wait_for(
            "the Manager's change",
            lambda: 'return_mode = "manual"' in (c.home / "etc" / "cluster.toml").read_text(),
        )
        _check(c.home, "a change of the cluster in the Manager")
        c.rearm("group", "stop", "G")
        c.rearm(
            "group",
            "template",
            "G",
            "generic",
            "--set",
            "command=/bin/sleep 1000",
            "--set",
            "port=9",
        )
        _check(c.home, "rearm group template")
    finally:
        c.cleanup()


def test_a_rewrite_keeps_the_mode_and_group_the_administrator_chose(
    unix: Accounts, tmp_path: Path
) -> None:
    """cluster.toml made 0640 for a trusted group stays so through every command that
    rewrites it (before the fix each rewrite made it 0644, root's group)."""
    admins = unix.group("radm")
    c = Cluster(tmp_path / "home")
    try:
        c.create()
        path = c.home / "etc" / "cluster.toml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        os.chown(path, -1, admins.gr_gid)
        path.chmod(0o640)
        c.ok("armem", "/M", "none")
        c.rearm("cluster", "set", "max_reboots=4")
        st = path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, admins.gr_gid)
    finally:
        c.cleanup()
