"""Who may do what on the control socket, decided from the caller's kernel-given credentials.

Root, the daemon's own user and members of the cluster's `admin_group` may change things.
Anyone else who can reach the socket (only when `read_access = "everyone"` opens it to all)
may only read: status, events, the live log and the reboot counter.
"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass

READ_ONLY_OPS = frozenset({"ping", "status", "events", "follow", "reboots"})


@dataclass(frozen=True)
class Caller:
    pid: int
    uid: int
    gid: int


def _groups_of(pid: int) -> set[int]:
    """The caller's supplementary groups, as the kernel sees them now."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


@dataclass(frozen=True)
class AccessPolicy:
    admin_group: str | None = None

    def admin_gid(self) -> int | None:
        if self.admin_group is None:
            return None
        try:
            return grp.getgrnam(self.admin_group).gr_gid
        except KeyError:
            return None

    def is_admin(self, caller: Caller) -> bool:
        if caller.uid in (0, os.geteuid()):
            return True
        gid = self.admin_gid()
        return gid is not None and (caller.gid == gid or gid in _groups_of(caller.pid))

    def refusal(self, caller: Caller, op: str) -> str | None:
        """Why `caller` may not run `op`, or None when it may."""
        if op in READ_ONLY_OPS or self.is_admin(caller):
            return None
        who = f"uid {caller.uid}"
        need = f"root or a member of group '{self.admin_group}'" if self.admin_group else "root"
        return f"permission denied: {who} may only read status and events; '{op}' needs {need}"
