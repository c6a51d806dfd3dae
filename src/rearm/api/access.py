"""Who may do what on the control socket, decided from the caller's kernel-given credentials.

Root, the daemon's own user and members of the cluster's `admin_group` may change things.
Anyone else who can reach the socket (only when `read_access = "everyone"` opens it to all)
may only read: status, events, the live log and the reboot counter.

The credentials, supplementary groups included, are those the caller had when it connected,
as the kernel recorded them then (SO_PEERCRED, SO_PEERGROUPS). They are never looked up later
by the peer's pid: a caller can hold its connection open until it has ended and its pid
belongs to someone else's process (an admin's), whose groups would then be read instead.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass

READ_ONLY_OPS = frozenset({"ping", "status", "events", "follow", "reboots"})

# SO_PEERGROUPS (Linux 4.13) is missing from Python's socket module; its value is fixed.
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
# Python's getsockopt reads at most 1024 bytes: 256 groups. A caller with more is looked up
# by its uid instead (getgrouplist), which is what it was given at login.
_GROUPS_BUFFER = 1024
_GID = struct.Struct("I")


@dataclass(frozen=True)
class Caller:
    pid: int  # for messages and logs only: never a key to anything
    uid: int
    gid: int
    groups: frozenset[int] = frozenset()  # supplementary groups at connect time


def peer_caller(sock: socket.socket) -> Caller:
    """The credentials of the process that connected `sock`, as they were at connect()."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return Caller(pid, uid, gid, frozenset(_peer_groups(sock, uid, gid)))


def _peer_groups(sock: socket.socket, uid: int, gid: int) -> list[int]:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, _GROUPS_BUFFER)
    except OSError as e:
        if e.errno not in (errno.ERANGE, errno.ENOPROTOOPT, errno.EINVAL):
            raise
        return groups_of_uid(uid, gid)
    return [g for (g,) in _GID.iter_unpack(raw[: len(raw) - len(raw) % _GID.size])]


def groups_of_uid(uid: int, gid: int) -> list[int]:
    """The groups the user database gives `uid` (none for a uid without a name)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return []
    return os.getgrouplist(name, gid)


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
        return gid is not None and (caller.gid == gid or gid in caller.groups)

    def refusal(self, caller: Caller, op: str) -> str | None:
        """Why `caller` may not run `op`, or None when it may."""
        if op in READ_ONLY_OPS or self.is_admin(caller):
            return None
        who = f"uid {caller.uid}"
        need = f"root or a member of group '{self.admin_group}'" if self.admin_group else "root"
        return f"permission denied: {who} may only read status and events; '{op}' needs {need}"
