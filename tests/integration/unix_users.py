"""Unix users and groups made for one test, with unique names, and removed after it.

Other helpers run tests on the same machine at the same time: every name carries random hex,
and only what this module created is removed. Needs root (CI runs as root): without it a test
that asks for a user fails rather than skips, since a skipped security test proves nothing.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def _run(*argv: str) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{' '.join(argv)} failed: {r.stderr.strip()}"


@dataclass
class Accounts:
    """Users and groups created so far; `remove` deletes them (and only them)."""

    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def group(self, prefix: str = "rg") -> grp.struct_group:
        assert os.geteuid() == 0, "creating a group needs root (CI runs as root)"
        name = f"{prefix}{secrets.token_hex(5)}"
        _run("groupadd", "--system", name)
        self.groups.append(name)
        return grp.getgrnam(name)

    def user(self, prefix: str = "ru", groups: tuple[str, ...] = ()) -> pwd.struct_passwd:
        """A system user with a group of its own name, no home and no login shell."""
        assert os.geteuid() == 0, "creating a user needs root (CI runs as root)"
        name = f"{prefix}{secrets.token_hex(5)}"
        argv = ["useradd", "--system", "--user-group", "--no-create-home"]
        argv += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
        if groups:
            argv += ["--groups", ",".join(groups)]
        _run(*argv, name)
        self.users.append(name)
        return pwd.getpwnam(name)

    def remove(self) -> None:
        for name in self.users:
            _end_processes_of(pwd.getpwnam(name).pw_uid)
        for name in reversed(self.users):
            subprocess.run(["userdel", name], capture_output=True, timeout=60)
            if _exists(grp.getgrnam, name):  # its own group, when userdel left it
                subprocess.run(["groupdel", name], capture_output=True, timeout=60)
        for name in reversed(self.groups):
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)
        left = [n for n in self.users if _exists(pwd.getpwnam, n)]
        left += [n for n in self.groups if _exists(grp.getgrnam, n)]
        assert not left, f"could not remove the test's users and groups: {left}"


def _end_processes_of(uid: int) -> None:
    """SIGKILL every process running as `uid`, one by one by pid: the user was made by this
    test with a unique name, so each of them was started by the test (a failed test may leave
    some, and userdel refuses a user that still runs something)."""
    for _ in range(50):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except FileNotFoundError:
                continue
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)  # zombies of a parent that is not this test: let them be reaped


def _exists(lookup: object, name: str) -> bool:
    try:
        lookup(name)  # type: ignore[operator]
    except KeyError:
        return False
    return True


@contextmanager
def accounts() -> Iterator[Accounts]:
    made = Accounts()
    try:
        yield made
    finally:
        made.remove()


@contextmanager
def open_folder(prefix: str = "rearm-sec-") -> Iterator[Path]:
    """A temporary folder other users may walk into (pytest's tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def as_user(user: pwd.struct_passwd) -> dict[str, object]:
    """Popen keywords that run the child as `user`, with its own groups and none of root's."""
    return {
        "user": user.pw_uid,
        "group": user.pw_gid,
        "extra_groups": os.getgrouplist(user.pw_name, user.pw_gid),
    }
