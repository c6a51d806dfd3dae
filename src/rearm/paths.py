"""Where rearm keeps its files (SPEC §2). Cheap to import: the arm commands use it."""

from __future__ import annotations

import os

SYSTEM_ETC = "/etc/rearm"
SYSTEM_VAR = "/var/lib/rearm"
SYSTEM_RUN = "/run/rearm"


class Home:
    """The three roots. With REARM_HOME=DIR they are DIR/etc, DIR/var and DIR/run.

    A plain class, not a dataclass: armload imports this, and dataclasses costs ~10 ms.
    """

    __slots__ = ("etc", "root", "run", "var")

    def __init__(self, etc: str, var: str, run: str, root: str | None = None) -> None:
        self.etc = etc
        self.var = var
        self.run = run
        self.root = root  # REARM_HOME, when set

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Home):
            return NotImplemented
        return (self.etc, self.var, self.run, self.root) == (
            other.etc,
            other.var,
            other.run,
            other.root,
        )

    def __hash__(self) -> int:
        return hash((self.etc, self.var, self.run, self.root))

    def __repr__(self) -> str:
        return f"Home(etc={self.etc!r}, var={self.var!r}, run={self.run!r}, root={self.root!r})"

    @classmethod
    def from_env(cls, home: str | None = None) -> Home:
        root = home if home is not None else os.environ.get("REARM_HOME") or None
        if root is None:
            return cls(SYSTEM_ETC, SYSTEM_VAR, SYSTEM_RUN)
        root = os.path.abspath(root)
        return cls(
            os.path.join(root, "etc"), os.path.join(root, "var"), os.path.join(root, "run"), root
        )

    @property
    def socket(self) -> str:
        return os.path.join(self.run, "rearm.sock")

    @property
    def pidfile(self) -> str:
        return os.path.join(self.run, "rearm.pid")

    @property
    def cluster_file(self) -> str:
        return os.path.join(self.etc, "cluster.toml")

    @property
    def groups_dir(self) -> str:
        return os.path.join(self.etc, "groups")

    @property
    def services_dir(self) -> str:
        return os.path.join(self.etc, "services")

    @property
    def state_db(self) -> str:
        return os.path.join(self.var, "state.db")

    @property
    def watch_logs(self) -> str:
        return os.path.join(self.var, "log", "watches")

    @property
    def group_logs(self) -> str:
        return os.path.join(self.var, "log", "groups")

    def group_dir(self, name: str) -> str:
        return os.path.join(self.groups_dir, name)

    def service_file(self, name: str) -> str:
        return os.path.join(self.services_dir, name + ".toml")

    def watch_log(self, watch_id: str) -> str:
        return os.path.join(self.watch_logs, watch_id.upper() + ".log")


def make_folders(folder: str, mode: int = 0o755) -> None:
    """mkdir -p giving every folder it creates exactly `mode`, whatever the umask: 0755
    (os.makedirs gives the mode to the last one only, and through the umask). Made 0700 first
    and widened after, so that no other user can put anything in it meanwhile; with a umask
    such as 002 it would stay group-writable, and the daemon refuses files in such folders
    (rearm.trust)."""
    parent = os.path.dirname(folder)
    if parent != folder and not os.path.isdir(parent):
        make_folders(parent)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        return
    os.chmod(folder, mode)
