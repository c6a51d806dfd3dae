"""Which configuration files the daemon may act on: only those no untrusted user can change.

The daemon runs as root and does what its files say: it runs the group scripts and the commands
of service definitions and declarative watches, and cluster.toml decides who may use the control
socket. A file that another user can change is therefore a way to become root. A file is trusted
when it, and every folder on the way to it from `/`, can only be changed by a trusted user: root
or the daemon's own user (the same rule as OpenSSH's StrictModes).

- The file and each folder must belong to a trusted user: an owner may always chmod.
- The file must not be writable by its group or others.
- A folder must not be writable by its group or others, since whoever can write a folder can
  rename the file (or a folder on its path) away and put their own in its place. The one
  exception is a sticky folder such as /tmp: there only an entry's owner may rename it, so it is
  safe when the entry in it on the way to the file belongs to a trusted user.
- A symbolic link is not checked by itself (no one can change a link, only replace it, which
  its folder governs), but what it points to is: both the written path and the resolved path are
  walked.

`findings()` decides from plain stat facts, without I/O; `check()` and `problems()` gather the
facts for one path. The file is judged each time it is used, so a file made writable later is
refused from then on.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from rearm.validate import ConfigError

# Write access for the group or for others.
_SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UntrustedFile(ConfigError):
    """A script or configuration file that an untrusted user could change. One line."""


@dataclass(frozen=True)
class Entry:
    """The stat facts of one path on the way to a file (from lstat: a link is a link)."""

    path: str
    mode: int  # st_mode
    uid: int
    owner: str  # the owner's user name, or the uid as text when it has none


@dataclass(frozen=True)
class Finding:
    """One thing that makes a file untrusted, with the command that fixes it."""

    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.problem}; fix: {self.fix}"


def _writers(mode: int) -> tuple[str, str]:
    """("g", "its group") and the like for the shared write bits of `mode`."""
    who = ("g" if mode & stat.S_IWGRP else "") + ("o" if mode & stat.S_IWOTH else "")
    whom = {"g": "its group", "o": "others", "go": "its group and others"}[who]
    return who, whom


def _facts(entry: Entry) -> str:
    return f"mode {stat.S_IMODE(entry.mode):04o}, owner {entry.owner}"


def findings(chain: Sequence[Entry], trusted: Collection[int], chown_to: str) -> list[Finding]:
    """What makes the file untrusted; [] when it may be used.

    `chain` is the file first, then the folders that hold it, nearest first, up to `/` (several
    chains, for the written and the resolved path, may follow one another: each starts with a
    non-folder or with a folder whose child is not in the list before it). `trusted` are the
    uids that may own them; `chown_to` is the user name the fix hands a file to.
    """
    found: list[Finding] = []
    for index, entry in enumerate(chain):
        child = chain[index - 1] if index > 0 else None
        if child is not None and os.path.dirname(child.path) != entry.path:
            child = None  # the first entry of another chain: a file, not a folder of the last
        if stat.S_ISLNK(entry.mode):
            continue  # see the module's notes: its folder governs it, its target is walked
        kind = "folder" if stat.S_ISDIR(entry.mode) else "file"
        if entry.uid not in trusted:
            found.append(
                Finding(
                    entry.path,
                    f"{entry.path} belongs to uid {entry.uid} ({entry.owner}), not to root or "
                    f"the daemon's user, and its owner can change it ({_facts(entry)})",
                    f"chown {chown_to} {entry.path}",
                )
            )
        shared = entry.mode & _SHARED_WRITE
        if not shared:
            continue
        who, whom = _writers(entry.mode)
        if kind == "file" or child is None:
            found.append(
                Finding(
                    entry.path,
                    f"{entry.path} is writable by {whom} ({_facts(entry)})",
                    f"chmod {who}-w {entry.path}",
                )
            )
            continue
        if entry.mode & stat.S_ISVTX:
            # Sticky: only the owner of `child` may rename it. Its owner was judged above
            # (or, for a link, is judged here, as a link has no checks of its own).
            if stat.S_ISLNK(child.mode) and child.uid not in trusted:
                found.append(
                    Finding(
                        child.path,
                        f"{child.path} is a link owned by uid {child.uid} ({child.owner}) in "
                        f"{entry.path}, which is writable by {whom}: its owner can replace it",
                        f"chown -h {chown_to} {child.path}",
                    )
                )
            continue
        found.append(
            Finding(
                entry.path,
                f"{entry.path} is a folder writable by {whom} ({_facts(entry)}): they can "
                f"replace {os.path.basename(child.path)} in it",
                f"chmod {who}-w {entry.path}",
            )
        )
    return _unique(found)


def _unique(found: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in found:
        if (f.path, f.problem) not in seen:
            seen.add((f.path, f.problem))
            out.append(f)
    return out


def refusal(what: str, found: Sequence[Finding], runs_as: str) -> str:
    """The one-line message of a refused file, every finding with its fix."""
    reasons = "; ".join(str(f) for f in found)
    return f"{what} refused (others could change what rearm runs as {runs_as}): {reasons}"


# --- the facts of a path -------------------------------------------------------------------------


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _walk(path: str) -> list[Entry]:
    """lstat of `path` and of each folder above it, up to `/`. Raises FileNotFoundError."""
    entries = []
    current = path
    while True:
        st = os.lstat(current)
        entries.append(Entry(current, st.st_mode, st.st_uid, _user_name(st.st_uid)))
        parent = os.path.dirname(current)
        if parent == current:
            return entries
        current = parent


def chain_of(path: str) -> list[Entry]:
    """The written path's chain, then (when links are involved) the resolved path's."""
    written = os.path.abspath(path)
    chain = _walk(written)
    resolved = os.path.realpath(written)
    if resolved != written:
        known = {e.path for e in chain}
        chain += [e for e in _walk(resolved) if e.path not in known]
    return chain


def trusted_uids() -> frozenset[int]:
    return frozenset({0, os.geteuid()})


def daemon_user() -> str:
    return _user_name(os.geteuid())


def problems(path: str) -> list[Finding]:
    """What makes `path` untrusted for this process; [] when it may be used.

    Raises FileNotFoundError when the path (or a folder on it) does not exist.
    """
    return findings(chain_of(path), trusted_uids(), daemon_user())


def check(path: str, what: str) -> None:
    """Raise UntrustedFile naming `what` (e.g. 'start.sh of group web') when `path` is not
    trusted. Raises FileNotFoundError when it does not exist."""
    found = problems(path)
    if found:
        raise UntrustedFile(refusal(what, found, daemon_user()))
