"""Where rearm keeps its files (SPEC §2). Cheap to import: the arm commands use it."""

from __future__ import annotations

import os
from dataclasses import dataclass

SYSTEM_ETC = "/etc/rearm"
SYSTEM_VAR = "/var/lib/rearm"
SYSTEM_RUN = "/run/rearm"


@dataclass(frozen=True)
class Home:
    """The three roots. With REARM_HOME=DIR they are DIR/etc, DIR/var and DIR/run."""

    etc: str
    var: str
    run: str
    root: str | None = None  # REARM_HOME, when set

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
